package server

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// NewTransport is the one upstream transport every route shares (and the
// benchmark's baseline proxy too, so the comparison is fair).
func NewTransport(responseHeaderTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // upstreams are addressed directly, never through an env proxy
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true, // pass Accept-Encoding and bodies through as client and upstream chose
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256, // Go's default of 2 makes a busy gateway redial constantly
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: responseHeaderTimeout,
	}
}

// bufferPool lends the reverse proxy its copy buffers, so streaming a body
// allocates nothing per request.
type bufferPool struct{ p sync.Pool }

// NewBufferPool returns an httputil.BufferPool of 32 KiB buffers.
func NewBufferPool() httputil.BufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(v []byte) { b.p.Put(&v) }

// newRequestPrefix makes request ids unique across restarts: a random prefix
// per process, then a counter.
func newRequestPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "-"
}
