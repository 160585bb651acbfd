package plugins

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"gatehouse"
)

// The benchmarks serve in-process (httptest.ResponseRecorder, an upstream
// handler that writes a small answer), so that the difference between them
// is the plugin chain: compare ns/op and allocs/op of the two.

// benchLimits gives the benchmarks' guests a time limit that a loaded
// machine's stalls do not reach: they measure the cost of a call, not the
// limit (which costs the same whatever its length).
func benchLimits(p *gatehouse.Plugin) { p.TimeoutMs = 10_000 }

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
	h.load(b, "noop", benchLimits)
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
	h.load(b, "c", benchLimits)
	c, err := h.Chain("svc", []gatehouse.PluginRef{{Ref: "c"}})
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, c)
}

func BenchmarkEchoPlugin(b *testing.B) {
	h := newTestHost(b)
	h.load(b, "echo", benchLimits)
	c, err := h.Chain("svc", []gatehouse.PluginRef{{Ref: "echo"}})
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, c)
}

// noopInstance is an instance of the noop guest, held for the benchmark.
func noopInstance(b *testing.B) *instance {
	h := newTestHost(b)
	h.load(b, "noop", benchLimits)
	c, err := h.Chain("svc", []gatehouse.PluginRef{{Ref: "noop"}})
	if err != nil {
		b.Fatal(err)
	}
	in, err := c.steps[0].slot.acquire()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(in.release)
	return in
}

// BenchmarkGuestCall is one guest call and nothing else: the noop guest's
// handle_response, under its plugin's time limit, as the chain makes it.
func BenchmarkGuestCall(b *testing.B) {
	in := noopInstance(b)
	ex := getExchange(httptest.NewRequest("GET", "http://gw.test/", nil), "203.0.113.9")
	defer putExchange(ex)
	b.ReportAllocs()
	for b.Loop() {
		if err := ex.callResponse(in, 0, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGuestCallDeadline puts the watchdog's bound on a guest call next
// to the per-call context it replaced (context.WithTimeout and WithValue
// around each call), in alternating blocks of calls on the same instance,
// so that a loaded machine's noise falls on both alike. A third block
// calls with the instance's context and nothing watching: the floor, what
// wazero's call costs by itself. It reports the mean of each and the ratio
// of the first two.
func BenchmarkGuestCallDeadline(b *testing.B) {
	in := noopInstance(b)
	perCallContext := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), in.ver.timeout)
		defer cancel()
		return in.hresp.CallWithStack(context.WithValue(ctx, instKey{}, in), in.stack[:])
	}
	watchdog := func() error { return in.call(in.hresp, in.stack[:]) }
	unbounded := func() error { return in.hresp.CallWithStack(&in.ctx, in.stack[:]) }
	const block = 500
	var spent [3]time.Duration
	calls := 0
	for b.Loop() {
		for i, call := range []func() error{perCallContext, watchdog, unbounded} {
			start := time.Now()
			for range block {
				in.stack[0], in.stack[1] = 0, 0
				if err := call(); err != nil {
					b.Fatal(err)
				}
			}
			spent[i] += time.Since(start)
		}
		calls += block
	}
	b.ReportMetric(float64(spent[0].Nanoseconds())/float64(calls), "ns/context-call")
	b.ReportMetric(float64(spent[1].Nanoseconds())/float64(calls), "ns/watchdog-call")
	b.ReportMetric(float64(spent[2].Nanoseconds())/float64(calls), "ns/unbounded-call")
	b.ReportMetric(float64(spent[1])/float64(spent[0]), "watchdog/context")
}
