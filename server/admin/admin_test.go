package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/mux"

	"gatehouse"
	"gatehouse/store"
)

// testBackend is the real store plus in-memory quota usage and a CheckWasm
// that accepts anything with the WebAssembly magic number.
type testBackend struct {
	*store.Store
	mu    sync.Mutex
	daily map[string]int64
}

func (b *testBackend) Usage(ctx context.Context, clientID string) (gatehouse.QuotaUsage, error) {
	k, err := b.GetAPIKey(ctx, clientID)
	if err != nil {
		return gatehouse.QuotaUsage{}, err
	}
	b.mu.Lock()
	n := b.daily[clientID]
	b.mu.Unlock()
	return gatehouse.QuotaUsage{
		AuthorizedCallsPerDay: k.DailyQuota, CurrentCallsPerDay: n, RemainingCallsPerDay: k.DailyQuota - n,
	}, nil
}

func (b *testBackend) ResetUsage(_ context.Context, clientID string) error {
	b.mu.Lock()
	delete(b.daily, clientID)
	b.mu.Unlock()
	return nil
}

func (b *testBackend) CheckWasm(_ context.Context, wasm []byte) error {
	if !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		return gatehouse.Invalid("wasm", "not a WebAssembly module")
	}
	return nil
}

// The test credentials: authHeader with authValue is a full admin key,
// with readOnlyValue a readOnly one.
const (
	authHeader    = "X-Test-Admin"
	authValue     = "let-me-in"
	readOnlyValue = "look-only"

	testClientID     = "test-admin"
	readOnlyClientID = "test-viewer"
)

func testAuthenticate(r *http.Request) (Caller, error) {
	switch r.Header.Get(authHeader) {
	case authValue:
		return Caller{ClientID: testClientID}, nil
	case readOnlyValue:
		return Caller{ClientID: readOnlyClientID, ReadOnly: true}, nil
	}
	return Caller{}, errors.New("admin api key required")
}

type testAPI struct {
	t   *testing.T
	srv *httptest.Server
	b   *testBackend
	log *bytes.Buffer
}

func newTestBackend(t testing.TB) *testBackend {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return &testBackend{Store: st, daily: map[string]int64{}}
}

// newRouter mounts the admin API on a fresh router, as the lead will.
func newRouter(b Backend, logs io.Writer) *mux.Router {
	r := mux.NewRouter().SkipClean(true)
	Register(r, Config{
		Backend:      b,
		Authenticate: testAuthenticate,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			io.WriteString(w, "gatehouse_counter_flushes_total 3\n")
		}),
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Nodes: func() []ClusterNode {
			return []ClusterNode{{Name: "leader-1", Role: "leader", Address: "127.0.0.1:9000", Revision: 3,
				LastSeen: 1767225600000, Leader: "connected", Redis: "connected"}}
		},
	})
	return r
}

func newTestAPI(t *testing.T) *testAPI {
	t.Helper()
	b := newTestBackend(t)
	var logs bytes.Buffer
	srv := httptest.NewServer(newRouter(b, &syncWriter{w: &logs}))
	t.Cleanup(srv.Close)
	return &testAPI{t: t, srv: srv, b: b, log: &logs}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

type response struct {
	status int
	header http.Header
	body   []byte
	close  bool // the server closes the connection after this answer
}

// json decodes the body into a fresh T.
func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, r.body, err)
	}
	return v
}

// do sends an authenticated request; body is sent as is, with content type
// ct (application/json when empty and a body is given).
func (a *testAPI) do(method, path, ct, body string) response {
	a.t.Helper()
	return a.send(method, path, ct, strings.NewReader(body), true)
}

func (a *testAPI) send(method, path, ct string, body io.Reader, auth bool) response {
	a.t.Helper()
	var reqBody []byte
	if body != nil {
		var err error
		if reqBody, err = io.ReadAll(body); err != nil {
			a.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, a.srv.URL+path, bytes.NewReader(reqBody))
	if err != nil {
		a.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if auth {
		req.Header.Set(authHeader, authValue)
	}
	res, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	checkOpenAPI(a.t, req, reqBody, res.StatusCode, res.Header, raw)
	return response{status: res.StatusCode, header: res.Header, body: raw, close: res.Close}
}

// expect asserts the status and that the answer is JSON.
func (a *testAPI) expect(r response, status int) response {
	a.t.Helper()
	if r.status != status {
		a.t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		a.t.Fatalf("Content-Type %q, want application/json", ct)
	}
	if !json.Valid(r.body) {
		a.t.Fatalf("body is not JSON: %q", r.body)
	}
	return r
}

// expectInvalid asserts a 400 naming field.
func (a *testAPI) expectInvalid(r response, field string) {
	a.t.Helper()
	a.expect(r, http.StatusBadRequest)
	e := decode[map[string]any](a.t, r)
	if e["field"] != field {
		a.t.Fatalf("field %v, want %q; body %s", e["field"], field, r.body)
	}
	if s, _ := e["error"].(string); s == "" {
		a.t.Fatalf("400 without error message: %s", r.body)
	}
}

func (a *testAPI) expectDeleted(r response) {
	a.t.Helper()
	a.expect(r, http.StatusOK)
	if got := decode[map[string]any](a.t, r); len(got) != 1 || got["deleted"] != true {
		a.t.Fatalf("delete answered %s", r.body)
	}
}

func (a *testAPI) mustGroup(id string) {
	a.t.Helper()
	a.expect(a.do("POST", "/api/groups", "", `{"id":"`+id+`","name":"group `+id+`"}`), http.StatusCreated)
}

func (a *testAPI) mustService(id, groupID string) {
	a.t.Helper()
	a.expect(a.do("POST", "/api/services", "", `{"id":"`+id+`","groupId":"`+groupID+`","name":"svc `+id+
		`","domain":"`+id+`.example.com","targets":[{"host":"127.0.0.1:9999"}]}`), http.StatusCreated)
}

func (a *testAPI) mustKey(path, body string) gatehouse.APIKey {
	a.t.Helper()
	return decode[gatehouse.APIKey](a.t, a.expect(a.do("POST", path, "", body), http.StatusCreated))
}

func (a *testAPI) mustPlugin(name string) gatehouse.Plugin {
	a.t.Helper()
	return decode[gatehouse.Plugin](a.t, a.expect(a.do("POST", "/api/plugins?name="+name, "application/wasm", wasmBytes), http.StatusCreated))
}

const wasmBytes = "\x00asm\x01\x00\x00\x00"

// allRoutes is every route and method of contract section 8 (and the
// /api/apikeys/{clientId} extension), for the authentication table.
var allRoutes = []struct{ method, path string }{
	{"GET", "/api/groups"}, {"POST", "/api/groups"},
	{"GET", "/api/groups/g"}, {"PUT", "/api/groups/g"}, {"PATCH", "/api/groups/g"}, {"DELETE", "/api/groups/g"},
	{"GET", "/api/groups/g/services"},
	{"GET", "/api/services"}, {"POST", "/api/services"},
	{"GET", "/api/services/s"}, {"PUT", "/api/services/s"}, {"PATCH", "/api/services/s"}, {"DELETE", "/api/services/s"},
	{"GET", "/api/groups/g/apikeys"}, {"POST", "/api/groups/g/apikeys"},
	{"GET", "/api/services/s/apikeys"}, {"POST", "/api/services/s/apikeys"},
	{"GET", "/api/groups/g/apikeys/k"}, {"PUT", "/api/groups/g/apikeys/k"},
	{"PATCH", "/api/groups/g/apikeys/k"}, {"DELETE", "/api/groups/g/apikeys/k"},
	{"GET", "/api/services/s/apikeys/k"}, {"PUT", "/api/services/s/apikeys/k"},
	{"PATCH", "/api/services/s/apikeys/k"}, {"DELETE", "/api/services/s/apikeys/k"},
	{"GET", "/api/apikeys"},
	{"GET", "/api/apikeys/k"}, {"PUT", "/api/apikeys/k"}, {"PATCH", "/api/apikeys/k"}, {"DELETE", "/api/apikeys/k"},
	{"GET", "/api/apikeys/k/quotas"}, {"DELETE", "/api/apikeys/k/quotas"},
	{"GET", "/api/plugins"}, {"POST", "/api/plugins?name=p"},
	{"GET", "/api/plugins/p"}, {"PATCH", "/api/plugins/p"}, {"PUT", "/api/plugins/p"}, {"DELETE", "/api/plugins/p"},
	{"POST", "/api/apikeys/_bulk"},
	{"GET", "/api/export"}, {"POST", "/api/apply"},
	{"GET", "/metrics"},
	// Unknown paths and methods are refused before they are told apart.
	{"GET", "/api/nope"}, {"DELETE", "/api/groups"},
}

func TestEveryRouteNeedsAuthentication(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g")
	a.mustService("s", "g")
	k := a.mustKey("/api/groups/g/apikeys", `{"clientId":"k"}`)
	a.mustPlugin("p")
	before := decode[[]gatehouse.APIKey](t, a.do("GET", "/api/apikeys", "", ""))

	for _, rt := range allRoutes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			a := &testAPI{t: t, srv: a.srv, b: a.b}
			// A body that would succeed if it were let through.
			body := `{"name":"changed"}`
			r := a.send(rt.method, rt.path, "application/json", strings.NewReader(body), false)
			a.expect(r, http.StatusUnauthorized)
			if e := decode[map[string]string](t, r); e["error"] == "" {
				t.Fatalf("401 without error: %s", r.body)
			}
			// A wrong credential is no better than none.
			req, _ := http.NewRequest(rt.method, a.srv.URL+rt.path, strings.NewReader(body))
			req.Header.Set(authHeader, "wrong")
			res, err := a.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong credential: status %d", res.StatusCode)
			}
		})
	}

	// Nothing was written by the refused calls.
	if g := decode[gatehouse.Group](t, a.expect(a.do("GET", "/api/groups/g", "", ""), 200)); g.Name != "group g" {
		t.Errorf("group changed by refused calls: %+v", g)
	}
	after := decode[[]gatehouse.APIKey](t, a.do("GET", "/api/apikeys", "", ""))
	if len(after) != len(before) || after[0].ClientSecret != k.ClientSecret {
		t.Errorf("keys changed by refused calls: %+v", after)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r := a.expect(a.send("GET", "/health", "", nil, false), http.StatusOK)
	if got := decode[map[string]any](t, r); got["status"] != "ok" || got["role"] != "standalone" || got["revision"] != 0.0 || len(got) != 3 {
		t.Errorf("health without Config.Health: %s", r.body)
	}
	r = a.expect(a.send("GET", "/ready", "", nil, false), http.StatusOK)
	if got := decode[map[string]any](t, r); got["ready"] != true {
		t.Errorf("ready without Config.Health: %s", r.body)
	}
	a.expect(a.send("POST", "/health", "", nil, false), http.StatusMethodNotAllowed)

	r = a.do("GET", "/metrics", "", "")
	if r.status != 200 || !strings.Contains(string(r.body), "gatehouse_counter_flushes_total") {
		t.Errorf("metrics: %d %s", r.status, r.body)
	}
	a.expect(a.do("POST", "/metrics", "", ""), http.StatusMethodNotAllowed)
}

func TestNotFoundAndMethodNotAllowedAreJSON(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/api/nope", 404, ""},
		{"GET", "/api", 404, ""},
		{"GET", "/api/groups/g/nope", 404, ""},
		{"GET", "/api/groups/", 404, ""},
		{"GET", "/api/groups/missing", 404, ""},
		{"GET", "/api/services/missing", 404, ""},
		{"GET", "/api/plugins/missing", 404, ""},
		{"GET", "/api/apikeys/missing", 404, ""},
		{"GET", "/api/groups/missing/apikeys", 404, ""},
		{"GET", "/api/services/missing/apikeys", 404, ""},
		{"GET", "/api/groups/missing/services", 404, ""},
		{"DELETE", "/api/groups", 405, "GET, POST"},
		{"POST", "/api/groups/g", 405, "DELETE, GET, PATCH, PUT"},
		{"GET", "/api/apikeys/_bulk", 405, "POST"},
		{"POST", "/api/apikeys", 405, "GET"},
		{"PUT", "/api/apikeys/k/quotas", 405, "DELETE, GET"},
		{"PUT", "/api/plugins", 405, "GET, POST"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			a := &testAPI{t: t, srv: a.srv, b: a.b}
			r := a.expect(a.do(tc.method, tc.path, "", ""), tc.status)
			if e := decode[map[string]string](t, r); e["error"] == "" {
				t.Errorf("no error message: %s", r.body)
			}
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
}

// Internal errors are logged, never shown.
type failingBackend struct{ *testBackend }

func (failingBackend) ListGroups(context.Context, gatehouse.Page) ([]gatehouse.Group, int, error) {
	return nil, 0, errors.New("disk on fire at /var/secret/path")
}

func TestInternalErrorsAreHidden(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	srv := httptest.NewServer(newRouter(failingBackend{newTestBackend(t)}, &syncWriter{w: &logs}))
	defer srv.Close()
	a := &testAPI{t: t, srv: srv}
	r := a.expect(a.do("GET", "/api/groups", "", ""), http.StatusInternalServerError)
	if string(bytes.TrimSpace(r.body)) != `{"error":"internal error"}` {
		t.Errorf("body %s", r.body)
	}
	if !strings.Contains(logs.String(), "disk on fire") {
		t.Errorf("real error not logged: %s", logs.String())
	}
}

func TestFailClosedWithoutAuthenticate(t *testing.T) {
	t.Parallel()
	r := mux.NewRouter().SkipClean(true)
	Register(r, Config{Backend: newTestBackend(t)})
	srv := httptest.NewServer(r)
	defer srv.Close()
	a := &testAPI{t: t, srv: srv}
	a.expect(a.do("GET", "/api/groups", "", ""), http.StatusUnauthorized)
	a.expect(a.do("GET", "/metrics", "", ""), http.StatusUnauthorized)
	a.expect(a.send("GET", "/health", "", nil, false), http.StatusOK)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
