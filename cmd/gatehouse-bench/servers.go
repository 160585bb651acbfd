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
	"syscall"
	"time"

	"gatehouse/server"
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

// newBaselineProxy is the least a Go reverse proxy does: rewrite the URL to
// the upstream and set X-Forwarded-*; no routing, no keys, no quotas.
func newBaselineProxy(upstream *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
		},
		// The gateway's own transport and buffer pool: the comparison is only
		// fair when both proxies dial, pool and time out alike.
		Transport:  server.NewTransport(30 * time.Second),
		BufferPool: server.NewBufferPool(),
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
