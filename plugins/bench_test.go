package plugins

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"gatehouse"
)

// The benchmarks serve in-process (httptest.ResponseRecorder, an upstream
// handler that writes a small answer), so that the difference between them
// is the plugin chain: compare ns/op and allocs/op of the two.

var benchUpstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "hello")
})

func benchServe(b *testing.B, c *Chain) {
	req := httptest.NewRequest("GET", "http://gw.test/api/items?x=1", nil)
	req.Header.Set("X-Echo", "bench")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		if err := c.Serve(w, req, "203.0.113.9", benchUpstream); err != nil {
			b.Fatal(err)
		}
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}

func BenchmarkNoPlugin(b *testing.B) {
	h := newTestHost(b)
	c, err := h.Chain("svc", nil)
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, c)
}

func BenchmarkNoopPlugin(b *testing.B) {
	h := newTestHost(b)
	h.load(b, "noop")
	c, err := h.Chain("svc", []gatehouse.PluginRef{{Ref: "noop"}})
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, c)
}

// BenchmarkCPlugin runs the C test guest: two header reads and writes, a
// malloc and a log line per request.
func BenchmarkCPlugin(b *testing.B) {
	h := newTestHost(b)
	h.load(b, "c")
	c, err := h.Chain("svc", []gatehouse.PluginRef{{Ref: "c"}})
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, c)
}

func BenchmarkEchoPlugin(b *testing.B) {
	h := newTestHost(b)
	h.load(b, "echo")
	c, err := h.Chain("svc", []gatehouse.PluginRef{{Ref: "echo"}})
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, c)
}
