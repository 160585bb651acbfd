package plugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse"
)

// Test guests, built once in TestMain: name -> module bytes.
var (
	wasmOf   = map[string][]byte{}
	cacheDir string // one wazero compilation cache for the whole package
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-plugins-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cacheDir = filepath.Join(dir, "wasm-cache")
	if err := buildGuests(dir); err != nil {
		fmt.Fprintln(os.Stderr, "building test guests:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildGuests builds every test guest (Go, C, Rust) with
// internal/buildguests, the one builder the test packages share. Under
// -race it also fills the compilation cache from that process: compiling is
// pure Go work that -race slows tenfold, and the machine code is the same.
// A test binary carries no module versions, so wazero names its cache
// "dev": the builder must too. Missing toolchains fail the run loudly.
func buildGuests(dir string) error {
	args := []string{"run"}
	if raceEnabled {
		args = append(args, "-ldflags=-X github.com/tetratelabs/wazero/internal/version.version=dev")
	}
	args = append(args, "./internal/buildguests", "-out", dir)
	if raceEnabled {
		args = append(args, "-cache", cacheDir)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.wasm"))
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		wasmOf[strings.TrimSuffix(filepath.Base(f), ".wasm")] = b
	}
	return nil
}

// logBuffer collects the host's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// fakeClock is the injected clock of suspensions.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

type testHost struct {
	*Host
	logs  *logBuffer
	clock *fakeClock
}

func newTestHost(t testing.TB) *testHost {
	t.Helper()
	logs := &logBuffer{}
	clock := &fakeClock{}
	clock.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	h, err := NewHost(context.Background(), Config{
		CacheDir: cacheDir,
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Now:      clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return &testHost{Host: h, logs: logs, clock: clock}
}

// load loads guest name as plugin id name with default limits changed by opts.
func (h *testHost) load(t testing.TB, name string, opts ...func(*gatehouse.Plugin)) {
	t.Helper()
	p := gatehouse.DefaultPlugin()
	p.ID, p.Name = name, name
	for _, o := range opts {
		o(&p)
	}
	if err := h.Load(context.Background(), p, wasmOf[name]); err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
}

// received is what the upstream saw.
type received struct {
	Method, URI, Host string
	Header            http.Header
	Body              string
}

// gateway is a test proxy: Chain.Serve around an httputil.ReverseProxy to
// an httptest upstream, with the server's error mapping.
type gateway struct {
	srv      *httptest.Server
	chain    atomic.Pointer[Chain]
	upCalls  atomic.Int64
	lastMu   sync.Mutex
	last     received
	upstream http.HandlerFunc // what the upstream answers
}

func newGateway(t testing.TB, h *testHost, service string, refs ...gatehouse.PluginRef) *gateway {
	t.Helper()
	g := &gateway{}
	g.upstream = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Up", "up")
		_, _ = io.WriteString(w, "upstream body")
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.upCalls.Add(1)
		b, _ := io.ReadAll(r.Body)
		g.lastMu.Lock()
		g.last = received{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: string(b)}
		g.lastMu.Unlock()
		g.upstream(w, r)
	}))
	t.Cleanup(up.Close)
	target, _ := url.Parse(up.URL)
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
	}}
	g.rebuild(t, h, service, refs...)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := g.chain.Load().Serve(w, r, "203.0.113.9", proxy)
		switch {
		case err == nil:
		case errors.Is(err, ErrBusy):
			http.Error(w, "plugin busy", http.StatusServiceUnavailable)
		case errors.Is(err, ErrBodyTooLarge):
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
		case errors.Is(err, ErrFailure):
			http.Error(w, "plugin failure", http.StatusBadGateway)
		default:
			http.Error(w, "internal", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) rebuild(t testing.TB, h *testHost, service string, refs ...gatehouse.PluginRef) {
	t.Helper()
	c, err := h.Chain(service, refs)
	if err != nil {
		t.Fatal(err)
	}
	g.chain.Store(c)
}

func (g *gateway) received() received {
	g.lastMu.Lock()
	defer g.lastMu.Unlock()
	return g.last
}

type response struct {
	Status  int
	Header  http.Header
	Trailer http.Header
	Body    string
}

// do sends a request through the gateway.
func (g *gateway) do(t testing.TB, method, path string, body string, header ...string) response {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, g.srv.URL+path, rb)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := g.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Trailer: res.Trailer, Body: string(b)}
}

func ref(id, config string) gatehouse.PluginRef { return gatehouse.PluginRef{Ref: id, Config: config} }
