package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gatehouse"
)

// BenchmarkObservability measures, in one run, what trace propagation and
// the access log cost a proxied request: three gateways on the same routes,
// keys and loopback upstream, one without trace context (the baseline),
// one as it runs by default (traceparent propagated, no exporter) and one
// with the access log to a file as well. The requests go round robin
// between them, so a busy machine slows all three alike, and the ratios of
// their throughputs are reported (issue 12: at least 0.95 and 0.90).
func BenchmarkObservability(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	h := newHarness(b, func(c *Config) { c.Now = time.Now })
	h.group("g")
	h.service(newService("api", "g", "api.test", nil, func(s *gatehouse.Service) {
		s.Targets = []gatehouse.Target{{Host: up.Listener.Addr().String(), Scheme: "http"}}
	}))
	h.key(newKey("k", "s3cret", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }))

	logFile, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	al := startAccessLog(logFile, logFile, prometheus.NewCounter(prometheus.CounterOpts{Name: "d"}), quiet, accessLogQueueSize)
	defer al.Close(b.Context())
	variant := func(cfg GatewayConfig) *Gateway {
		cfg.Now, cfg.Logger, cfg.UpstreamTimeout = time.Now, quiet, 30*time.Second
		// The routes' forwarders are the harness gateway's; the pipeline
		// that runs (and so the trace context and the access log) is this one's.
		return newGateway(cfg, &h.srv.routes, h.srv.keys, h.srv.quotas, h.srv.metrics)
	}
	gateways := []struct {
		name string
		h    http.Handler
		dur  time.Duration
	}{
		{name: "untraced", h: variant(GatewayConfig{noTrace: true})},
		{name: "traced", h: h.srv.Gateway()},
		{name: "traced+accesslog", h: variant(GatewayConfig{accessLog: al})},
	}
	call := func(g http.Handler) {
		req := httptest.NewRequest("GET", "http://api.test/x", nil)
		req.SetBasicAuth("k", "s3cret")
		w := &discardWriter{h: http.Header{}}
		g.ServeHTTP(w, req)
		if w.status != 200 {
			b.Fatalf("status %d %s", w.status, w.h.Get("Otoroshi-Error-Msg"))
		}
	}
	for i := range gateways {
		for range 200 { // warm the connections and pools
			call(gateways[i].h)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := range b.N {
		// Rotate who goes first, so no variant always meets a cold cache.
		for j := range gateways {
			g := &gateways[(n+j)%len(gateways)]
			start := time.Now()
			call(g.h)
			g.dur += time.Since(start)
		}
	}
	b.StopTimer()
	base := gateways[0].dur.Seconds()
	for _, g := range gateways {
		b.ReportMetric(float64(g.dur.Nanoseconds())/float64(b.N), g.name+"-ns/req")
	}
	b.ReportMetric(base/gateways[1].dur.Seconds(), "traced/untraced")
	b.ReportMetric(base/gateways[2].dur.Seconds(), "accesslog/untraced")
}
