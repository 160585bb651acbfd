package admin

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"gatehouse"
)

// FuzzPatch sends arbitrary PATCH bodies with arbitrary content types at a
// group, a service, a key (plain and under its group) and a plugin: the
// answer is never a 5xx and nothing panics.
func FuzzPatch(f *testing.F) {
	b := newTestBackend(f)
	ctx := context.Background()
	g := gatehouse.Group{ID: "g", Name: "g"}
	s := gatehouse.DefaultService()
	s.ID, s.GroupID, s.Name, s.Domain = "s", "g", "s", "s.example.com"
	s.Targets = []gatehouse.Target{{Host: "127.0.0.1:1"}}
	k := gatehouse.DefaultAPIKey()
	k.ClientID, k.AuthorizedEntities = "k", []string{"group_g"}
	p := gatehouse.DefaultPlugin()
	p.ID, p.Name = "p", "p"
	for _, err := range []error{
		b.CreateGroup(ctx, &g), b.CreateService(ctx, &s), b.CreateAPIKey(ctx, &k),
		b.CreatePlugin(ctx, &p, []byte(wasmBytes)),
	} {
		if err != nil {
			f.Fatal(err)
		}
	}
	h := newRouter(b, io.Discard)
	paths := []string{"/api/groups/g", "/api/services/s", "/api/apikeys/k", "/api/groups/g/apikeys/k", "/api/plugins/p"}

	f.Add(uint8(1), "application/json-patch+json", []byte(`[{"op":"replace","path":"/name","value":"x"}]`))
	f.Add(uint8(2), "application/merge-patch+json", []byte(`{"dailyQuota":1}`))
	f.Add(uint8(0), "application/json", []byte(`{"description":null}`))

	f.Fuzz(func(t *testing.T, target uint8, contentType string, body []byte) {
		path := paths[int(target)%len(paths)]
		req := httptest.NewRequest(http.MethodPatch, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set(authHeader, authValue)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("PATCH %s (%q) %q: %d %s", path, contentType, body, rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
	})
}
