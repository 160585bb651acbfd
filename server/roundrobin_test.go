package server

import (
	"testing"

	"gatehouse"
)

// TestRoundRobinAcrossAdminWrites: an admin write rebuilds the routing
// table; a service's round robin goes on where it was instead of starting
// over at its first target.
func TestRoundRobinAcrossAdminWrites(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := newUpstream(t), newUpstream(t)
	h.group("g")
	h.service(newService("api", "g", "api.test", a, func(s *gatehouse.Service) {
		s.Targets = append(s.Targets, gatehouse.Target{Host: b.host(), Scheme: "http"})
		s.PublicPatterns = []string{"/.*"}
	}))
	for i, id := range []string{"other1", "other2", "other3"} {
		if resp := h.call("GET", "api.test", "/", nil); resp.StatusCode != 200 {
			t.Fatalf("call %d: status %d", i+1, resp.StatusCode)
		}
		h.service(newService(id, "g", id+".test", a)) // an admin write between calls
	}
	if got := []int64{a.hits.Load(), b.hits.Load()}; got[0] != 2 || got[1] != 1 {
		t.Errorf("targets got %v calls, want [2 1]: round robin restarted on each write", got)
	}
}
