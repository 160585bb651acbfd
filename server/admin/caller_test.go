package admin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gorilla/mux"

	"gatehouse"
)

// A readOnly admin key may use GET only: every other method on every route
// is 403, and nothing is written.
func TestReadOnlyAdminKey(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g")
	a.mustService("s", "g")
	a.mustKey("/api/groups/g/apikeys", `{"clientId":"k"}`)
	a.mustPlugin("p")
	snapshot := func() string {
		var b strings.Builder
		for _, path := range []string{"/api/groups", "/api/services", "/api/apikeys", "/api/plugins"} {
			b.Write(a.expect(a.do("GET", path, "", ""), http.StatusOK).body)
		}
		return b.String()
	}
	before := snapshot()

	reads, writes := 0, 0
	for _, rt := range allRoutes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			a := &testAPI{t: t, srv: a.srv, b: a.b}
			req, err := http.NewRequest(rt.method, a.srv.URL+rt.path, strings.NewReader(`{"name":"changed"}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(authHeader, readOnlyValue)
			req.Header.Set("Content-Type", "application/json")
			res, err := a.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			r := response{status: res.StatusCode, header: res.Header, body: body}
			if rt.method == http.MethodGet {
				reads++
				if r.status == http.StatusForbidden || r.status == http.StatusUnauthorized {
					t.Fatalf("a read answered %d: %s", r.status, body)
				}
				return
			}
			writes++
			a.expect(r, http.StatusForbidden)
			if e := decode[map[string]string](t, r); !strings.Contains(e["error"], "read-only") {
				t.Errorf("403 body %s", body)
			}
		})
	}
	if after := snapshot(); after != before {
		t.Errorf("a read-only key wrote:\n%s\nwas\n%s", after, before)
	}
	if reads < 15 || writes < 25 {
		t.Errorf("table covers %d reads and %d writes", reads, writes)
	}
}

// recordingBackend stands for the store: each write records the next
// revision on its context, as the store does after its commit, and notes
// the actor the context carries.
type recordingBackend struct {
	*testBackend
	rev atomic.Int64

	mu     sync.Mutex
	actors []string
}

func (b *recordingBackend) wrote(ctx context.Context, err error) error {
	if err != nil {
		return err
	}
	gatehouse.RecordRevision(ctx, b.rev.Add(1))
	b.mu.Lock()
	b.actors = append(b.actors, gatehouse.ActorOf(ctx))
	b.mu.Unlock()
	return nil
}

func (b *recordingBackend) CreateGroup(ctx context.Context, g *gatehouse.Group) error {
	return b.wrote(ctx, b.testBackend.CreateGroup(ctx, g))
}
func (b *recordingBackend) UpdateGroup(ctx context.Context, g *gatehouse.Group) error {
	return b.wrote(ctx, b.testBackend.UpdateGroup(ctx, g))
}
func (b *recordingBackend) DeleteGroup(ctx context.Context, id string) error {
	return b.wrote(ctx, b.testBackend.DeleteGroup(ctx, id))
}
func (b *recordingBackend) CreateService(ctx context.Context, s *gatehouse.Service) error {
	return b.wrote(ctx, b.testBackend.CreateService(ctx, s))
}
func (b *recordingBackend) UpdateService(ctx context.Context, s *gatehouse.Service) error {
	return b.wrote(ctx, b.testBackend.UpdateService(ctx, s))
}
func (b *recordingBackend) DeleteService(ctx context.Context, id string) error {
	return b.wrote(ctx, b.testBackend.DeleteService(ctx, id))
}
func (b *recordingBackend) CreateAPIKey(ctx context.Context, k *gatehouse.APIKey) error {
	return b.wrote(ctx, b.testBackend.CreateAPIKey(ctx, k))
}
func (b *recordingBackend) CreateAPIKeys(ctx context.Context, ks []gatehouse.APIKey) error {
	return b.wrote(ctx, b.testBackend.CreateAPIKeys(ctx, ks))
}
func (b *recordingBackend) UpdateAPIKey(ctx context.Context, k *gatehouse.APIKey) error {
	return b.wrote(ctx, b.testBackend.UpdateAPIKey(ctx, k))
}
func (b *recordingBackend) DeleteAPIKey(ctx context.Context, clientID string) error {
	return b.wrote(ctx, b.testBackend.DeleteAPIKey(ctx, clientID))
}
func (b *recordingBackend) ResetUsage(ctx context.Context, clientID string) error {
	return b.wrote(ctx, b.testBackend.ResetUsage(ctx, clientID))
}
func (b *recordingBackend) CreatePlugin(ctx context.Context, p *gatehouse.Plugin, wasm []byte) error {
	return b.wrote(ctx, b.testBackend.CreatePlugin(ctx, p, wasm))
}
func (b *recordingBackend) UpdatePlugin(ctx context.Context, p *gatehouse.Plugin) error {
	return b.wrote(ctx, b.testBackend.UpdatePlugin(ctx, p))
}
func (b *recordingBackend) ReplacePluginWasm(ctx context.Context, id string, wasm []byte) (gatehouse.Plugin, error) {
	p, err := b.testBackend.ReplacePluginWasm(ctx, id, wasm)
	return p, b.wrote(ctx, err)
}
func (b *recordingBackend) DeletePlugin(ctx context.Context, id string) error {
	return b.wrote(ctx, b.testBackend.DeletePlugin(ctx, id))
}

// Every write's answer carries the revision it committed in
// Gatehouse-Revision, and the write's context carries the admin key as
// its actor; reads and refused writes carry no revision.
func TestRevisionHeaderAndActor(t *testing.T) {
	t.Parallel()
	b := &recordingBackend{testBackend: newTestBackend(t)}
	srv := httptest.NewServer(newRouter(b, io.Discard))
	t.Cleanup(srv.Close)
	a := &testAPI{t: t, srv: srv}

	p := decode[gatehouse.Plugin](t, a.expect(a.do("POST", "/api/plugins?name=p", "application/wasm", wasmBytes), http.StatusCreated))
	if got := a.do("GET", "/api/plugins/"+p.ID, "", ""); got.header.Get("Gatehouse-Revision") != "" {
		t.Errorf("a read answered Gatehouse-Revision %q", got.header.Get("Gatehouse-Revision"))
	}
	// Every write route, in an order where each one succeeds; the plugin's
	// upload above was revision 1.
	for i, tc := range []struct {
		method, path, ct, body string
		status                 int
	}{
		{"POST", "/api/groups", "", `{"id":"g","name":"g"}`, http.StatusCreated},
		{"PATCH", "/api/groups/g", "", `{"description":"d"}`, http.StatusOK},
		{"PATCH", "/api/groups/g", "", `{}`, http.StatusOK},
		{"PUT", "/api/groups/g", "", `{"name":"G"}`, http.StatusOK},
		{"POST", "/api/services", "", `{"id":"s","groupId":"g","name":"s","domain":"s.example.com","targets":[{"host":"127.0.0.1:1"}]}`, http.StatusCreated},
		{"PATCH", "/api/services/s", "", `{"maintenanceMode":true}`, http.StatusOK},
		{"PUT", "/api/services/s", "", `{"groupId":"g","name":"s","domain":"s.example.com","targets":[{"host":"127.0.0.1:2"}]}`, http.StatusOK},
		{"POST", "/api/apikeys/_bulk", "", `[{"clientId":"k1","authorizedGroup":"g"},{"clientId":"k2"}]`, http.StatusCreated},
		{"POST", "/api/groups/g/apikeys", "", `{"clientId":"k3"}`, http.StatusCreated},
		{"POST", "/api/services/s/apikeys", "", `{"clientId":"k4"}`, http.StatusCreated},
		{"PUT", "/api/groups/g/apikeys/k1", "", `{"clientName":"one"}`, http.StatusOK},
		{"PATCH", "/api/services/s/apikeys/k3", "", `{"clientName":"three"}`, http.StatusOK},
		{"PUT", "/api/apikeys/k2", "", `{"clientName":"two"}`, http.StatusOK},
		{"PATCH", "/api/apikeys/k2", "", `{"dailyQuota":3}`, http.StatusOK},
		{"DELETE", "/api/apikeys/k2/quotas", "", ``, http.StatusOK},
		{"DELETE", "/api/groups/g/apikeys/k1", "", ``, http.StatusOK},
		{"DELETE", "/api/services/s/apikeys/k3", "", ``, http.StatusOK},
		{"DELETE", "/api/apikeys/k4", "", ``, http.StatusOK},
		{"DELETE", "/api/services/s", "", ``, http.StatusOK},
		{"DELETE", "/api/groups/g", "", ``, http.StatusOK},
		{"PATCH", "/api/plugins/" + p.ID, "", `{"name":"renamed"}`, http.StatusOK},
		{"PUT", "/api/plugins/" + p.ID, "application/wasm", wasmBytes + "\x00", http.StatusOK},
		{"DELETE", "/api/plugins/" + p.ID, "", ``, http.StatusOK},
	} {
		r := a.expect(a.do(tc.method, tc.path, tc.ct, tc.body), tc.status)
		if got, want := r.header.Get("Gatehouse-Revision"), fmt.Sprint(i+2); got != want {
			t.Errorf("%s %s: Gatehouse-Revision %q, want %s", tc.method, tc.path, got, want)
		}
	}
	a.mustGroup("g")
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/api/groups/g", "", http.StatusOK},
		{"GET", "/api/apikeys", "", http.StatusOK},
		{"POST", "/api/groups", `{"id":"g","name":"again"}`, http.StatusConflict},
		{"PATCH", "/api/groups/g", `{"nmae":"x"}`, http.StatusBadRequest},
		{"PUT", "/api/groups/missing", `{"name":"x"}`, http.StatusNotFound},
		{"DELETE", "/api/apikeys/missing", "", http.StatusNotFound},
	} {
		r := a.expect(a.do(tc.method, tc.path, "", tc.body), tc.status)
		if got := r.header.Get("Gatehouse-Revision"); got != "" {
			t.Errorf("%s %s: Gatehouse-Revision %q on an answer that committed nothing", tc.method, tc.path, got)
		}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.actors) != 25 {
		t.Fatalf("%d writes recorded, want 25", len(b.actors))
	}
	for i, actor := range b.actors {
		if actor != gatehouse.APIKeyActor(testClientID) {
			t.Errorf("write %d: actor %q, want %q", i+1, actor, gatehouse.APIKeyActor(testClientID))
		}
	}
}

func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		rev   int64
		ready bool
	)
	r := mux.NewRouter().SkipClean(true)
	Register(r, Config{
		Backend:      newTestBackend(t),
		Authenticate: testAuthenticate,
		Health: func() (string, int64, bool) {
			mu.Lock()
			defer mu.Unlock()
			return "worker", rev, ready
		},
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	a := &testAPI{t: t, srv: srv}

	for _, tc := range []struct {
		rev    int64
		ready  bool
		status int
	}{
		{0, false, http.StatusServiceUnavailable},
		{7, true, http.StatusOK},
		{12, false, http.StatusServiceUnavailable},
	} {
		mu.Lock()
		rev, ready = tc.rev, tc.ready
		mu.Unlock()
		// No credential is needed, and a wrong one changes nothing.
		h := decode[map[string]any](t, a.expect(a.send("GET", "/health", "", nil, false), http.StatusOK))
		if h["status"] != "ok" || h["role"] != "worker" || h["revision"] != float64(tc.rev) || len(h) != 3 {
			t.Errorf("rev %d ready %t: health %v", tc.rev, tc.ready, h)
		}
		got := decode[map[string]any](t, a.expect(a.send("GET", "/ready", "", nil, false), tc.status))
		if got["ready"] != tc.ready {
			t.Errorf("rev %d ready %t: ready %v", tc.rev, tc.ready, got)
		}
	}
	a.expect(a.send("POST", "/ready", "", nil, false), http.StatusMethodNotAllowed)
	a.expect(a.send("DELETE", "/health", "", nil, false), http.StatusMethodNotAllowed)
}

// errorBackend answers every group call with the error under test.
type errorBackend struct {
	*testBackend
	err error
}

func (b errorBackend) CreateGroup(context.Context, *gatehouse.Group) error { return b.err }

// Errors become answers in one place, by their kind's status.
func TestErrorKinds(t *testing.T) {
	t.Parallel()
	tb := newTestBackend(t)
	for _, tc := range []struct {
		name   string
		err    error
		status int
		body   string
	}{
		{"invalid", gatehouse.Invalid("name", "too long"), 400, `{"error":"too long","field":"name"}`},
		{"forbidden", gatehouse.Forbidden("group %q is built in", "admin-api-group"), 403, `{"error":"group \"admin-api-group\" is built in"}`},
		{"not found", gatehouse.NotFound("group not found"), 404, `{"error":"group not found"}`},
		{"conflict", gatehouse.Conflict("group %q exists", "g"), 409, `{"error":"group \"g\" exists"}`},
		{"storage full", fmt.Errorf("create group: %w", gatehouse.ErrStorageFull), 507, `{"error":"storage full"}`},
		{"wrapped conflict", fmt.Errorf("create group: %w", gatehouse.Conflict("taken")), 409, `{"error":"taken"}`},
		{"internal kind", gatehouse.Errorf(gatehouse.KindInternal, "", "sqlite at /secret/path"), 500, `{"error":"internal error"}`},
		{"plain error", fmt.Errorf("begin: disk I/O error at /secret/path"), 500, `{"error":"internal error"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(newRouter(errorBackend{tb, tc.err}, io.Discard))
			defer srv.Close()
			a := &testAPI{t: t, srv: srv}
			r := a.expect(a.do("POST", "/api/groups", "", `{"name":"x"}`), tc.status)
			if got := strings.TrimSpace(string(r.body)); got != tc.body {
				t.Errorf("body %s, want %s", got, tc.body)
			}
		})
	}
}
