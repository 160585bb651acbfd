package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// upstreamBody is what the minimal upstream answers: small, so the benchmark
// measures the proxies and not the copying of bodies.
var upstreamBody = []byte(`{"ok":true}` + "\n")

// newServer gives every listener of the benchmark the gateway's listener
// limits (contract section 1), so the baseline pays what the gateway pays.
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// serveUntilSignal listens on addr, prints "listening <addr>" on stdout for
// the parent to read, and serves until SIGTERM or SIGINT.
func serveUntilSignal(addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := newServer(h)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	fmt.Printf("listening %s\n", ln.Addr())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

func runUpstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	return serveUntilSignal(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		w.Write(upstreamBody)
	}))
}

// newUpstreamTransport is the baseline's transport, the same settings as the
// gateway's (server/gateway.go): the comparison is only fair when both
// proxies dial, pool and time out alike. Keep the two in step.
func newUpstreamTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
}

// bufferPool recycles the ReverseProxy's 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

var _ httputil.BufferPool = (*bufferPool)(nil)

// newBaselineProxy is the least a Go reverse proxy does: rewrite the URL to
// the upstream and set X-Forwarded-*; no routing, no keys, no quotas.
func newBaselineProxy(upstream *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
		},
		Transport:  newUpstreamTransport(),
		BufferPool: new(bufferPool),
	}
}

func runBaselineProxy(args []string) error {
	fs := flag.NewFlagSet("baseline-proxy", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	up := fs.String("upstream", "", "upstream host:port")
	if err := fs.Parse(args); err != nil || *up == "" {
		return errUsage
	}
	u, err := url.Parse("http://" + *up)
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	return serveUntilSignal(*addr, newBaselineProxy(u))
}
