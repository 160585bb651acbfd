package admin

import (
	"net/http"
	"testing"

	"gatehouse"
)

func TestGroups(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)

	// Create: a generated id, or the given one; duplicates are 409.
	gen := decode[gatehouse.Group](t, a.expect(a.do("POST", "/api/groups", "", `{"name":"Generated"}`), http.StatusCreated))
	if len(gen.ID) != 16 || gen.Name != "Generated" {
		t.Errorf("created %+v", gen)
	}
	g := decode[gatehouse.Group](t, a.expect(a.do("POST", "/api/groups", "",
		`{"id":"team","name":"Team","description":"the team"}`), http.StatusCreated))
	if g != (gatehouse.Group{ID: "team", Name: "Team", Description: "the team"}) {
		t.Errorf("created %+v", g)
	}
	a.expect(a.do("POST", "/api/groups", "", `{"id":"team","name":"Again"}`), http.StatusConflict)

	// Bad bodies: 400 naming the field, nothing written.
	a.expectInvalid(a.do("POST", "/api/groups", "", `{"id":"x","name":""}`), "name")
	a.expectInvalid(a.do("POST", "/api/groups", "", `{"id":"x","name":7}`), "name")
	a.expectInvalid(a.do("POST", "/api/groups", "", `{"id":"x",`), "")
	a.expectInvalid(a.do("POST", "/api/groups", "", `[]`), "")
	a.expectInvalid(a.do("POST", "/api/groups", "", ``), "")
	a.expect(a.do("GET", "/api/groups/x", "", ""), http.StatusNotFound)

	// Read.
	if got := decode[gatehouse.Group](t, a.expect(a.do("GET", "/api/groups/team", "", ""), 200)); got != g {
		t.Errorf("get %+v", got)
	}
	r := a.expect(a.do("GET", "/api/groups", "", ""), 200)
	if list := decode[[]gatehouse.Group](t, r); len(list) != 2 || list[0].ID != gen.ID || list[1].ID != "team" {
		t.Errorf("list %+v", list)
	}
	if r.header.Get("X-Total-Count") != "2" {
		t.Errorf("X-Total-Count %q", r.header.Get("X-Total-Count"))
	}

	// PUT replaces: the absent description takes its default.
	got := decode[gatehouse.Group](t, a.expect(a.do("PUT", "/api/groups/team", "", `{"name":"Renamed"}`), 200))
	if got != (gatehouse.Group{ID: "team", Name: "Renamed"}) {
		t.Errorf("put %+v", got)
	}
	if got := decode[gatehouse.Group](t, a.do("GET", "/api/groups/team", "", "")); got.Name != "Renamed" || got.Description != "" {
		t.Errorf("after put %+v", got)
	}
	a.expect(a.do("GET", "/api/groups/other", "", ""), http.StatusNotFound)
	a.expect(a.do("PUT", "/api/groups/missing", "", `{"name":"x"}`), http.StatusNotFound)
	a.expectInvalid(a.do("PUT", "/api/groups/team", "", `{"name":"  "}`), "name")

	// PATCH.
	got = decode[gatehouse.Group](t, a.expect(a.do("PATCH", "/api/groups/team", "", `{"description":"patched"}`), 200))
	if got != (gatehouse.Group{ID: "team", Name: "Renamed", Description: "patched"}) {
		t.Errorf("patch %+v", got)
	}
	a.expect(a.do("PATCH", "/api/groups/missing", "", `{"description":"x"}`), http.StatusNotFound)

	// Services of a group.
	a.mustService("svc", "team")
	r = a.expect(a.do("GET", "/api/groups/team/services", "", ""), 200)
	if list := decode[[]gatehouse.Service](t, r); len(list) != 1 || list[0].ID != "svc" || r.header.Get("X-Total-Count") != "1" {
		t.Errorf("group services %s", r.body)
	}
	if list := decode[[]gatehouse.Service](t, a.expect(a.do("GET", "/api/groups/"+gen.ID+"/services", "", ""), 200)); len(list) != 0 {
		t.Errorf("empty group lists %+v", list)
	}

	// Delete: 409 while it has services, then 200, then 404.
	a.expect(a.do("DELETE", "/api/groups/team", "", ""), http.StatusConflict)
	a.expectDeleted(a.do("DELETE", "/api/services/svc", "", ""))
	a.expectDeleted(a.do("DELETE", "/api/groups/team", "", ""))
	a.expect(a.do("DELETE", "/api/groups/team", "", ""), http.StatusNotFound)
	a.expect(a.do("GET", "/api/groups/team", "", ""), http.StatusNotFound)
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	big := `{"name":"x","description":"` + string(make([]byte, maxJSONBody)) + `"}`
	r := a.expect(a.do("POST", "/api/groups", "", big), http.StatusRequestEntityTooLarge)
	// The rest of the oversized body is not read: the connection is closed.
	if !r.close {
		t.Errorf("413 without Connection: close")
	}
	if list := decode[[]gatehouse.Group](t, a.do("GET", "/api/groups", "", "")); len(list) != 0 {
		t.Errorf("oversized body wrote %+v", list)
	}
}
