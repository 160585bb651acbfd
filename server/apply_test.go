package server

import (
	"encoding/json"
	"net/http"
	"testing"

	"gatehouse"
)

// An apply's plugins go through the real plugin host: a module it would
// refuse on upload is refused in the document, nothing is written, and a
// plugin created with its service in one document is serving when the apply
// answers.
func TestApplyPluginsReachTheGateway(t *testing.T) {
	h := newPluginHarness(t)
	up := newUpstream(t)
	w := guests(t)
	svc := newService("deny", "g", "deny.test", up, func(s *gatehouse.Service) {
		s.PublicPatterns = []string{"/.*"}
		s.Plugins = []gatehouse.PluginRef{{Ref: "d1", Config: `{"status": 451, "body": "go away"}`}}
	})
	doc := map[string]any{
		"format":   "gatehouse/v1",
		"groups":   []any{map[string]any{"id": "g", "name": "g"}},
		"services": []any{svc},
		"plugins":  []any{map[string]any{"id": "d1", "name": "deny", "wasm": w["noexports"]}},
	}
	body, _ := json.Marshal(doc)
	var e map[string]any
	if code := h.api("POST", "/api/apply", "application/json", body, &e); code != http.StatusBadRequest ||
		e["field"] != "plugins[0].wasm" {
		t.Fatalf("a module without exports: %d %v", code, e)
	}
	if a := h.send("GET", "deny.test", "/x"); a.status != http.StatusNotFound {
		t.Fatalf("the refused apply wrote: the service answers %d", a.status)
	}

	doc["plugins"] = []any{map[string]any{"id": "d1", "name": "deny", "wasm": w["deny"]}}
	body, _ = json.Marshal(doc)
	var res gatehouse.ApplyResult
	if code := h.api("POST", "/api/apply", "application/json", body, &res); code != http.StatusOK ||
		len(res.Created) != 2 || len(res.Updated) != 0 {
		// g exists already, as the document has it (the harness made it).
		t.Fatalf("apply: %d %+v", code, res)
	}
	if a := h.send("GET", "deny.test", "/x"); a.status != 451 || a.body != "go away" {
		t.Fatalf("the applied plugin answers %d %q", a.status, a.body)
	}
	if up.hits.Load() != 0 {
		t.Fatal("the upstream was called behind a denying plugin")
	}
}
