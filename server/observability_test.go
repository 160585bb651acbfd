package server

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"gatehouse"
)

var traceparentRe = `^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`

func TestTraceparentToUpstream(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	up := newUpstream(t)
	h.group("g")
	h.service(newService("api", "g", "api.test", up, func(s *gatehouse.Service) { s.PublicPatterns = []string{"/.*"} }))

	const client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	cases := []struct {
		name        string
		traceparent []string
		tracestate  string
		sameTrace   bool
	}{
		{"continues a valid trace", []string{client}, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", true},
		{"new trace without one", nil, "", false},
		{"new trace for garbage", []string{"00-xyz"}, "vendor=1", false},
		{"new trace for upper-case hex", []string{strings.ToUpper(client)}, "", false},
		{"new trace for an all-zero trace id", []string{"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, "", false},
		{"new trace for version ff", []string{"ff" + client[2:]}, "", false},
		{"new trace for two headers", []string{client, client}, "", false},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		resp := h.call("GET", "api.test", "/x", func(r *http.Request) {
			r.Header["Traceparent"] = c.traceparent
			if c.tracestate != "" {
				r.Header.Set("Tracestate", c.tracestate)
			}
		})
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", c.name, resp.StatusCode)
		}
		got := up.lastRequest().Header.Values("Traceparent")
		if len(got) != 1 || !regexpMatch(traceparentRe, got[0]) {
			t.Fatalf("%s: upstream traceparent %q", c.name, got)
		}
		tp := got[0]
		if c.sameTrace {
			if tp[3:35] != client[3:35] || tp[36:52] == client[36:52] || tp[53:] != "01" {
				t.Fatalf("%s: %s does not continue %s with a new span id", c.name, tp, client)
			}
		} else if len(c.traceparent) > 0 && strings.Contains(c.traceparent[0], tp[3:35]) {
			t.Fatalf("%s: %s kept the client's trace id", c.name, tp)
		}
		if seen[tp[3:35]+tp[36:52]] {
			t.Fatalf("%s: span %s used twice", c.name, tp)
		}
		seen[tp[3:35]+tp[36:52]] = true
		if ts := up.lastRequest().Header.Get("Tracestate"); ts != c.tracestate {
			t.Fatalf("%s: tracestate %q, want %q unchanged", c.name, ts, c.tracestate)
		}
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// otlpReceiver is an OTLP/HTTP collector: it decodes what it is sent.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	paths []string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	o := &otlpReceiver{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "bad request", 400)
			return
		}
		o.mu.Lock()
		o.paths = append(o.paths, r.URL.Path)
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				o.spans = append(o.spans, ss.Spans...)
			}
		}
		o.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Write(b)
	}))
	t.Cleanup(o.Close)
	return o
}

func spanAttrs(s *tracepb.Span) map[string]any {
	m := map[string]any{}
	for _, kv := range s.Attributes {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = v.IntValue
		case *commonpb.AnyValue_DoubleValue:
			m[kv.Key] = v.DoubleValue
		}
	}
	return m
}

func TestSpansExportedOverOTLP(t *testing.T) {
	t.Parallel()
	col := newOTLPReceiver(t)
	h := newHarness(t, func(c *Config) { c.OTLPEndpoint = col.URL })
	up := newUpstream(t)
	h.group("g")
	h.service(newService("api", "g", "api.test", up))
	h.key(newKey("k1", "super-secret-1", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }))

	const client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	resp := h.call("GET", "api.test", "/orders?token=abc", func(r *http.Request) {
		r.SetBasicAuth("k1", "super-secret-1")
		r.Header.Set("Traceparent", client)
	})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	upstreamTP := up.lastRequest().Header.Get("Traceparent")
	if resp := h.call("GET", "api.test", "/x", nil); resp.StatusCode != 401 {
		t.Fatalf("no key: %d", resp.StatusCode)
	}
	// Closing the exporter sends what it holds: the signal the spans are in.
	if err := h.srv.closeObservers(context.Background()); err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.spans) != 2 || col.paths[0] != "/v1/traces" {
		t.Fatalf("collector got %d spans at %v, want 2 at /v1/traces", len(col.spans), col.paths)
	}
	s := col.spans[0]
	if hex.EncodeToString(s.TraceId) != client[3:35] || hex.EncodeToString(s.ParentSpanId) != client[36:52] ||
		hex.EncodeToString(s.SpanId) != upstreamTP[36:52] {
		t.Fatalf("span %x/%x parent %x; client %s, upstream got %s", s.TraceId, s.SpanId, s.ParentSpanId, client, upstreamTP)
	}
	if upstreamTP[53:] != "01" {
		t.Fatalf("an exported span is sampled: upstream got %s", upstreamTP)
	}
	if s.Kind != tracepb.Span_SPAN_KIND_SERVER || s.Name != "GET /" {
		t.Fatalf("span kind %v name %q", s.Kind, s.Name)
	}
	a := spanAttrs(s)
	want := map[string]any{"http.request.method": "GET", "url.path": "/orders", "http.route": "/",
		"http.response.status_code": int64(200), "gatehouse.service": "api", "gatehouse.client_id": "k1",
		"server.address": "api.test", "client.address": "127.0.0.1"}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("attribute %s = %#v, want %#v", k, a[k], v)
		}
	}
	for _, k := range []string{"gatehouse.proxy_ms", "gatehouse.upstream_ms", "gatehouse.request_id"} {
		if _, ok := a[k]; !ok {
			t.Errorf("no attribute %s", k)
		}
	}
	for _, sp := range col.spans {
		raw, _ := proto.Marshal(sp)
		if strings.Contains(string(raw), "super-secret-1") || strings.Contains(string(raw), "token=abc") {
			t.Fatalf("a span holds a secret or the query: %v", sp)
		}
	}
	if b := spanAttrs(col.spans[1]); b["http.response.status_code"] != int64(401) || b["gatehouse.error"] != "no apikey" {
		t.Fatalf("401 span attributes %v", b)
	}
}

// A collector that does not answer, or is not there, never slows a
// request: spans are dropped and counted.
func TestDeadCollectorDropsSpans(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there any more: connection refused
	h := newHarness(t, func(c *Config) { c.OTLPEndpoint = dead })
	up := newUpstream(t)
	h.group("g")
	h.service(newService("api", "g", "api.test", up, func(s *gatehouse.Service) { s.PublicPatterns = []string{"/.*"} }))
	const n = 50
	for i := 0; i < n; i++ {
		if resp := h.call("GET", "api.test", "/", nil); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if err := h.srv.closeObservers(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(h.srv.metrics.otlpDropped); got != n {
		t.Fatalf("gatehouse_otlp_dropped_spans_total = %v, want %d", got, n)
	}
}

// blockingExporter holds every export until released.
type blockingExporter struct {
	release chan struct{}
	mu      sync.Mutex
	got     int
}

func (b *blockingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.mu.Lock()
	b.got += len(spans)
	b.mu.Unlock()
	return nil
}
func (b *blockingExporter) Shutdown(context.Context) error { return nil }

// A collector that hangs fills the queue: the next spans are dropped at
// once, without waiting, and counted.
func TestHungCollectorDropsWithoutWaiting(t *testing.T) {
	t.Parallel()
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "d"})
	exp := &blockingExporter{release: make(chan struct{})}
	e := startSpanExporter(exp, dropped, slog.New(slog.NewTextHandler(io.Discard, nil)), 4, 1, time.Hour, time.Hour)
	rec := requestRecord{start: time.Now(), end: time.Now(), method: "GET", trace: newTraceContext(nil, true)}
	for i := 0; i < 20; i++ {
		e.offer(&rec) // returns at once although nothing is exported
	}
	if d := testutil.ToFloat64(dropped); d < 15 || d > 16 {
		t.Fatalf("dropped %v of 20 with a queue of 4 and one span in export, want 15 or 16", d)
	}
	close(exp.release)
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if exp.got+int(testutil.ToFloat64(dropped)) != 20 {
		t.Fatalf("exported %d + dropped %v != 20", exp.got, testutil.ToFloat64(dropped))
	}
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	logPath := filepath.Join(t.TempDir(), "access.log")
	h := newHarness(t, func(c *Config) { c.AccessLog = logPath })
	up := newUpstream(t)
	h.group("g")
	h.service(newService("api", "g", "api.test", up))
	h.key(newKey("k1", "super-secret-1", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }))
	h.key(newKey("k2", "super-secret-2", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }))
	h.key(newKey("k3", "super-secret-3", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }))
	token := hs256(t, "super-secret-2", jwt.MapClaims{"iss": "k2"})

	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	calls := []struct {
		method, target string
		body           string
		setup          func(*http.Request)
	}{
		{"POST", "/orders/1?basic_auth=a1:super-secret-1&x=2", "hello body", func(r *http.Request) {
			r.SetBasicAuth("k1", "super-secret-1")
			r.Header.Set("Cookie", "session=cookie-secret")
			r.Header.Set("Traceparent", tp)
			r.Header.Set("X-Forwarded-For", "203.0.113.9") // not trusted: the peer is the client
		}},
		{"GET", "/a/../b?bearer_auth=" + token, "", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }},
		{"GET", "/c", "", func(r *http.Request) {
			r.Header.Set("Otoroshi-Client-Id", "k3")
			r.Header.Set("Otoroshi-Client-Secret", "super-secret-3")
		}},
		{"GET", "/d", "", basic("k1", "wrong-secret-9")},
		{"GET", "/e", "", nil},
	}
	for _, c := range calls {
		req, _ := http.NewRequest(c.method, h.gw.URL+c.target, strings.NewReader(c.body))
		req.Host = "api.test:8080" // the log's host is the host alone, without the port
		if c.setup != nil {
			c.setup(req)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// Unrouted: no service.
	h.call("GET", "nowhere.test", "/z?q=1", nil)

	if err := h.srv.closeObservers(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"super-secret-1", "super-secret-2", "super-secret-3", "wrong-secret-9", token,
		"cookie-secret", "basic_auth", "bearer_auth", "x=2", "q=1", "?"} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("the access log holds %q:\n%s", secret, raw)
		}
	}
	lines := readLines(t, logPath)
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 6:\n%s", len(lines), raw)
	}
	fields := []string{"time", "req_id", "trace_id", "method", "host", "path", "status", "service", "client_id",
		"client_ip", "proxy_ms", "upstream_ms", "bytes_in", "bytes_out", "error"}
	want := []map[string]any{
		{"method": "POST", "host": "api.test", "path": "/orders/1", "status": 200.0, "service": "api", "client_id": "k1",
			"client_ip": "127.0.0.1", "bytes_in": 10.0, "bytes_out": 2.0, "error": "", "trace_id": tp[3:35]},
		{"method": "GET", "path": "/b", "status": 200.0, "service": "api", "client_id": "k2", "bytes_in": 0.0, "error": ""},
		{"method": "GET", "path": "/c", "status": 200.0, "client_id": "k3", "error": ""},
		{"method": "GET", "path": "/d", "status": 401.0, "service": "api", "client_id": "", "error": "bad apikey", "upstream_ms": 0.0},
		{"method": "GET", "path": "/e", "status": 401.0, "client_id": "", "error": "no apikey"},
		{"method": "GET", "host": "nowhere.test", "path": "/z", "status": 404.0, "service": "", "error": "no route found"},
	}
	for i, l := range lines {
		keys := make([]string, 0, len(l))
		for k := range l {
			keys = append(keys, k)
		}
		if len(keys) != len(fields) {
			t.Errorf("line %d has fields %v, want %v", i, keys, fields)
		}
		for _, f := range fields {
			if _, ok := l[f]; !ok {
				t.Errorf("line %d lacks %s", i, f)
			}
		}
		for k, v := range want[i] {
			if !reflect.DeepEqual(l[k], v) {
				t.Errorf("line %d: %s = %#v, want %#v", i, k, l[k], v)
			}
		}
		if ts, err := time.Parse(time.RFC3339Nano, l["time"].(string)); err != nil || !ts.Equal(h.clock.Now()) {
			t.Errorf("line %d: time %v (%v), want the request's start", i, l["time"], err)
		}
		if id, _ := l["trace_id"].(string); len(id) != 32 {
			t.Errorf("line %d: trace_id %q", i, id)
		}
		if id, _ := l["req_id"].(string); id == "" {
			t.Errorf("line %d: no req_id", i)
		}
	}
	// The request id is the one the upstream and the client saw.
	if got := up.lastRequest().Header.Get("Otoroshi-Request-Id"); got != lines[2]["req_id"] {
		t.Errorf("upstream request id %q, log %v", got, lines[2]["req_id"])
	}
}

// blockingWriter holds every write until released.
type blockingWriter struct{ release chan struct{} }

func (b blockingWriter) Write(p []byte) (int, error) { <-b.release; return len(p), nil }

// A sink that cannot keep up never holds a request: lines are dropped at
// once and counted.
func TestAccessLogDropsWhenTheSinkIsStuck(t *testing.T) {
	t.Parallel()
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "d"})
	w := blockingWriter{release: make(chan struct{})}
	a := startAccessLog(w, nil, dropped, slog.New(slog.NewTextHandler(io.Discard, nil)), 4)
	rec := requestRecord{start: time.Now(), method: "GET"}
	for i := 0; i < 20; i++ {
		a.offer(&rec)
	}
	if d := testutil.ToFloat64(dropped); d < 15 || d > 16 {
		t.Fatalf("dropped %v of 20 with a queue of 4 and one line in the write, want 15 or 16", d)
	}
	close(w.release)
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestAccessLogStdoutAndOff(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	h := newHarness(t, func(c *Config) { c.AccessLog = "stdout"; c.Stdout = &out })
	h.call("GET", "nowhere.test", "/", nil)
	if err := h.srv.closeObservers(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, `"path":"/"`) || strings.Count(s, "\n") != 1 {
		t.Fatalf("stdout access log: %q", s)
	}
	off := newHarness(t)
	if off.srv.gateway.accessLog != nil || off.srv.gateway.spans != nil {
		t.Fatal("access log or exporter on by default")
	}
}
