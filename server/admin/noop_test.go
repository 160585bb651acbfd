package admin

import (
	"context"
	"net/http"
	"strconv"
	"testing"
)

// auditHead is what the admin API says of the audit log: how many entries
// it holds and the revision of the newest.
func (a *testAPI) auditHead() (total string, newest int64) {
	a.t.Helper()
	r := a.expect(a.do("GET", "/api/audit?pageSize=1", "", ""), http.StatusOK)
	es := decode[[]struct {
		Revision int64 `json:"revision"`
	}](a.t, r)
	if len(es) == 1 {
		newest = es[0].Revision
	}
	return r.header.Get("X-Total-Count"), newest
}

// A write whose result equals the stored entity commits nothing: no
// revision, no audit entry; it answers 200 with the entity and the current
// revision. A real change after it still makes one revision.
func TestWriteThatChangesNothingMakesNoRevision(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g")
	a.mustService("s", "g")
	a.mustKey("/api/groups/g/apikeys", `{"clientId":"k","clientSecret":"the-secret","metadata":{"b":"2","a":"1"},"tags":["x"]}`)
	// A rotated key: its previousSecretValidUntil must survive a no-op too.
	a.expect(a.do("POST", "/api/apikeys/k/rotate", "", `{"clientSecret":"the-new-secret","gracePeriod":2}`), http.StatusOK)
	p := a.mustPlugin("p")
	a.expect(a.do("PATCH", "/api/services/s", "application/merge-patch+json",
		`{"plugins":[{"ref":"`+p.ID+`","config":"cfg"}],"publicPatterns":["^/pub"],"additionalHeaders":{"X-A":"1"}}`), http.StatusOK)
	a.expect(a.do("POST", "/api/users", "", `{"name":"viv","role":"viewer","password":"long enough password"}`), http.StatusCreated)

	const merge, jsonPatch, wasm = "application/merge-patch+json", "application/json-patch+json", "application/wasm"
	cases := []struct {
		name, method, path, ct string
		body                   string // "" sends the entity as GET answers it
		change                 string // a merge patch that does change it
	}{
		{"group PUT", "PUT", "/api/groups/g", "", "", `{"description":"new"}`},
		{"group PATCH merge", "PATCH", "/api/groups/g", merge, "", `{"name":"renamed"}`},
		{"group PATCH json-patch", "PATCH", "/api/groups/g", jsonPatch, `[{"op":"replace","path":"/name","value":"renamed"}]`, `{"name":"again"}`},
		{"group PATCH empty", "PATCH", "/api/groups/g", merge, `{}`, `{"description":"newer"}`},
		{"service PUT", "PUT", "/api/services/s", "", "", `{"maintenanceMode":true}`},
		{"service PATCH merge", "PATCH", "/api/services/s", merge, "", `{"root":"/v1"}`},
		{"service PATCH same plugins", "PATCH", "/api/services/s", merge, `{"plugins":[{"ref":"` + p.ID + `","config":"cfg"}]}`, `{"plugins":[{"ref":"` + p.ID + `","config":"other"}]}`},
		{"key PUT", "PUT", "/api/apikeys/k", "", "", `{"dailyQuota":5}`},
		{"key PUT without secret", "PUT", "/api/apikeys/k", "", "-secret", `{"clientSecret":"a-third-secret"}`},
		{"key PATCH merge", "PATCH", "/api/apikeys/k", merge, "", `{"metadata":{"c":"3"}}`},
		{"key PATCH same metadata", "PATCH", "/api/apikeys/k", merge, `{"metadata":{"a":"1","b":"2","c":"3"}}`, `{"tags":["y"]}`},
		{"scoped key PUT", "PUT", "/api/groups/g/apikeys/k", "", "", `{"enabled":false}`},
		{"plugin PATCH merge", "PATCH", "/api/plugins/" + p.ID, merge, "", `{"timeoutMs":50}`},
		{"plugin PATCH json-patch", "PATCH", "/api/plugins/" + p.ID, jsonPatch, `[{"op":"replace","path":"/poolSize","value":8}]`, `{"poolSize":2}`},
		{"plugin PUT same bytes", "PUT", "/api/plugins/" + p.ID, wasm, wasmBytes, ""},
		{"user PATCH same role", "PATCH", "/api/users/viv", merge, `{"role":"viewer"}`, `{"role":"admin"}`},
		{"user PATCH merge", "PATCH", "/api/users/viv", merge, "", `{"password":"another long password"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func(parent *testing.T) { a.t = parent }(a.t)
			a.t = t // the helpers fail the subtest that calls them
			before := a.expect(a.do("GET", c.path, "", ""), http.StatusOK)
			wantRev, err := a.b.Revision(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			total, newest := a.auditHead()
			if newest != wantRev {
				t.Fatalf("newest audit entry at revision %d, store at %d", newest, wantRev)
			}

			body := c.body
			switch body {
			case "":
				body = string(before.body)
			case "-secret":
				k := decode[map[string]any](t, before)
				delete(k, "clientSecret")
				body = string(mustJSON(t, k))
			}
			r := a.expect(a.do(c.method, c.path, c.ct, body), http.StatusOK)
			if got := r.header.Get("Gatehouse-Revision"); got != strconv.FormatInt(wantRev, 10) {
				t.Errorf("Gatehouse-Revision %q, want the current %d", got, wantRev)
			}
			if !jsonEqual(t, r.body, before.body) {
				t.Errorf("answered %s, want the entity as it was: %s", r.body, before.body)
			}
			if after := a.expect(a.do("GET", c.path, "", ""), http.StatusOK); !jsonEqual(t, after.body, before.body) {
				t.Errorf("entity now %s, was %s", after.body, before.body)
			}
			if gotTotal, gotNewest := a.auditHead(); gotTotal != total || gotNewest != newest {
				t.Errorf("audit log: %s entries up to revision %d, was %s up to %d", gotTotal, gotNewest, total, newest)
			}
			if rev, _ := a.b.Revision(context.Background()); rev != wantRev {
				t.Errorf("store revision %d, want %d", rev, wantRev)
			}

			if c.change == "" {
				return
			}
			r = a.expect(a.do("PATCH", c.path, merge, c.change), http.StatusOK)
			if got := r.header.Get("Gatehouse-Revision"); got != strconv.FormatInt(wantRev+1, 10) {
				t.Errorf("a real change: Gatehouse-Revision %q, want %d", got, wantRev+1)
			}
			n, _ := strconv.Atoi(total)
			if gotTotal, gotNewest := a.auditHead(); gotTotal != strconv.Itoa(n+1) || gotNewest != wantRev+1 {
				t.Errorf("a real change: audit log %s entries up to revision %d, want %d up to %d", gotTotal, gotNewest, n+1, wantRev+1)
			}
		})
	}
}
