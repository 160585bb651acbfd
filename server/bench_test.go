package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"gatehouse"
)

// BenchmarkGateway measures the whole pipeline in-process against a loopback
// upstream, next to a bare httputil.ReverseProxy on the same transport
// settings: the difference is what Gatehouse adds per request (-benchmem
// shows the allocations it adds).
func BenchmarkGateway(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	h := newHarness(b, func(c *Config) { c.Now = time.Now })
	h.group("g")
	h.service(newService("api", "g", "api.test", nil, func(s *gatehouse.Service) {
		s.Targets = []gatehouse.Target{{Host: up.Listener.Addr().String(), Scheme: "http"}}
		s.PublicPatterns = []string{"/public/.*"}
	}))
	h.key(newKey("k", "s3cret", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }))
	tok := hs256(b, "s3cret", jwt.MapClaims{"clientId": "k"})

	target, _ := url.Parse(up.URL)
	baseline := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport:  NewTransport(30 * time.Second),
		BufferPool: NewBufferPool(),
	}
	cases := []struct {
		name    string
		handler http.Handler
		path    string
		setup   func(*http.Request)
	}{
		{"baseline", baseline, "/public/x", nil},
		{"public", h.srv.Gateway(), "/public/x", nil},
		{"basic", h.srv.Gateway(), "/x", func(r *http.Request) { r.SetBasicAuth("k", "s3cret") }},
		{"jwt", h.srv.Gateway(), "/x", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			// Every case builds the same request (the baseline forwards the
			// credential untouched), so allocs/op differ by what the proxy does.
			setup := c.setup
			if setup == nil {
				setup = func(r *http.Request) { r.SetBasicAuth("k", "s3cret") }
			}
			b.ReportAllocs()
			// allocs/op rounds down (101.9 shows as 101); mallocs/op is the
			// same count with its fraction, for comparing the rows.
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			for range b.N {
				req := httptest.NewRequest("GET", "http://api.test"+c.path, nil)
				setup(req)
				w := &discardWriter{h: http.Header{}}
				c.handler.ServeHTTP(w, req)
				if w.status != 200 {
					b.Fatalf("status %d %s", w.status, w.h.Get("Otoroshi-Error-Msg"))
				}
			}
			runtime.ReadMemStats(&m1)
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N), "mallocs/op")
		})
	}
}

// discardWriter is a ResponseWriter that keeps the status and drops the body:
// unlike httptest.ResponseRecorder it copies no headers, so allocs/op are
// the proxy's own.
type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}
func (d *discardWriter) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.status = 200
	}
	return len(b), nil
}

// BenchmarkGatewayManyKeys is the Basic-key row with 1,000,000 other keys in
// the index: what a large index costs a request (mostly garbage collection
// marking the index), next to BenchmarkGateway/basic.
func BenchmarkGatewayManyKeys(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	h := newHarness(b, func(c *Config) { c.Now = time.Now })
	h.group("g")
	h.service(newService("api", "g", "api.test", nil, func(s *gatehouse.Service) {
		s.Targets = []gatehouse.Target{{Host: up.Listener.Addr().String(), Scheme: "http"}}
	}))
	h.key(newKey("k", "s3cret", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }))
	src := gatehouse.DefaultAPIKey()
	src.AuthorizedEntities = []string{"group_g"}
	for i := range 1_000_000 {
		src.ClientID = fmt.Sprintf("%016x", i)
		src.ClientSecret = fmt.Sprintf("%064x", i)
		h.srv.keys.PutAPIKey(&src)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req := httptest.NewRequest("GET", "http://api.test/x", nil)
		req.SetBasicAuth("k", "s3cret")
		rec := httptest.NewRecorder()
		h.srv.Gateway().ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
