package admin

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"gatehouse"
)

// The security routes (contract section 14) join the authentication table.
func init() {
	allRoutes = append(allRoutes, []struct{ method, path string }{
		{"POST", "/api/apikeys/k/rotate"}, {"GET", "/api/audit"},
		{"GET", "/api/users"}, {"POST", "/api/users"},
		{"GET", "/api/users/admin"}, {"PATCH", "/api/users/admin"}, {"DELETE", "/api/users/admin"},
	}...)
}

func TestRotateRoute(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g")
	k := a.mustKey("/api/groups/g/apikeys", `{"clientId":"k","clientSecret":"first","rotation":{"gracePeriod":5}}`)
	if k.Rotation != (gatehouse.Rotation{Enabled: false, RotationEvery: 744, GracePeriod: 5}) || k.PreviousSecretValidUntil != nil {
		t.Fatalf("created key rotation = %+v, previous %v", k.Rotation, k.PreviousSecretValidUntil)
	}

	// No body: a generated secret, the key's own grace period.
	before := time.Now().UnixMilli()
	got := decode[gatehouse.APIKey](t, a.expect(a.do("POST", "/api/apikeys/k/rotate", "", ""), 200))
	if len(got.ClientSecret) != 64 || got.ClientSecret == "first" || got.PreviousSecretValidUntil == nil ||
		*got.PreviousSecretValidUntil < before+5*3_600_000 || *got.PreviousSecretValidUntil > time.Now().UnixMilli()+5*3_600_000 {
		t.Fatalf("rotate without body = %+v", got)
	}
	r := a.do("GET", "/api/apikeys/k", "", "")
	if strings.Contains(string(r.body), "first") {
		t.Errorf("the previous secret is shown: %s", r.body)
	}
	if g := decode[gatehouse.APIKey](t, r); g.ClientSecret != got.ClientSecret || *g.PreviousSecretValidUntil != *got.PreviousSecretValidUntil {
		t.Errorf("GET after rotate = %+v", g)
	}

	// A given secret and grace period; 0 revokes the old one at once.
	got = decode[gatehouse.APIKey](t, a.expect(a.do("POST", "/api/apikeys/k/rotate", "", `{"clientSecret":"chosen","gracePeriod":0}`), 200))
	if got.ClientSecret != "chosen" || got.PreviousSecretValidUntil != nil {
		t.Errorf("rotate with grace 0 = %+v", got)
	}
	// A PUT carrying previousSecretValidUntil (read-only) leaves it be.
	put := decode[gatehouse.APIKey](t, a.expect(a.do("PUT", "/api/apikeys/k", "", `{"clientName":"x","previousSecretValidUntil":123}`), 200))
	if put.PreviousSecretValidUntil != nil {
		t.Errorf("PUT set previousSecretValidUntil: %+v", put)
	}

	a.expectInvalid(a.do("POST", "/api/apikeys/k/rotate", "", `{"gracePeriod":-1}`), "gracePeriod")
	a.expectInvalid(a.do("POST", "/api/apikeys/k/rotate", "", `{"gracePerod":1}`), "gracePerod")
	a.expectInvalid(a.do("POST", "/api/apikeys/k/rotate", "", `{"clientSecret":"enc:v1:x"}`), "clientSecret")
	a.expect(a.do("POST", "/api/apikeys/nope/rotate", "", ""), 404)
	a.expect(a.do("GET", "/api/apikeys/k/rotate", "", ""), 405)
	a.expectInvalid(a.do("PATCH", "/api/apikeys/k", "application/merge-patch+json", `{"rotation":{"rotationEvery":0}}`), "rotation.rotationEvery")
	a.expectInvalid(a.do("PATCH", "/api/apikeys/k", "application/merge-patch+json", `{"rotation":{"every":1}}`), "rotation.every")
}

func TestAuditRoute(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.expect(a.do("POST", "/api/groups", "", `{"id":"g","name":"a <b> & c"}`), 201)
	a.expect(a.do("PATCH", "/api/groups/g", "application/merge-patch+json", `{"description":"d"}`), 200)
	a.mustKey("/api/groups/g/apikeys", `{"clientId":"k","clientSecret":"secret-one"}`)
	a.expect(a.do("POST", "/api/apikeys/k/rotate", "", `{"clientSecret":"secret-two"}`), 200)

	r := a.expect(a.do("GET", "/api/audit", "", ""), 200)
	if r.header.Get("X-Total-Count") != "4" {
		t.Fatalf("X-Total-Count %q; %s", r.header.Get("X-Total-Count"), r.body)
	}
	if !strings.Contains(string(r.body), `"a <b> & c"`) {
		t.Errorf("<, > or & escaped in %s", r.body)
	}
	for _, s := range []string{"secret-one", "secret-two"} {
		if strings.Contains(string(r.body), s) {
			t.Errorf("the audit log shows the secret %q", s)
		}
	}
	es := decode[[]gatehouse.AuditEntry](t, r)
	if es[0].Action != "rotate" || es[0].Actor != "apikey:"+testClientID || es[0].IP == nil || *es[0].IP != "127.0.0.1" ||
		string(es[0].Changes["clientSecret"][0]) != `"REDACTED"` || len(es[0].Hash) != 64 {
		t.Errorf("newest entry = %+v", es[0])
	}
	if es[2].Action != "update" || string(es[2].Changes["description"][0]) != `""` || string(es[2].Changes["description"][1]) != `"d"` || len(es[2].Changes) != 1 {
		t.Errorf("group update entry = %+v", es[2])
	}

	for q, want := range map[string]string{
		"kind=group":        "update,create",
		"kind=apikey&id=k":  "rotate,create",
		"since=2":           "rotate,create",
		"actor=cli":         "",
		"pageSize=1&page=2": "create",
	} {
		es := decode[[]gatehouse.AuditEntry](t, a.expect(a.do("GET", "/api/audit?"+q, "", ""), 200))
		var got []string
		for _, e := range es {
			got = append(got, e.Action)
		}
		if strings.Join(got, ",") != want {
			t.Errorf("?%s = %v, want %s", q, got, want)
		}
	}
	a.expectInvalid(a.do("GET", "/api/audit?since=x", "", ""), "since")
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		a.expect(a.do(m, "/api/audit", "", "{}"), 405)
	}
}

func TestUsersRoutes(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.b.CreateUser(context.Background(), "admin", "$2a$10$bootstrap"))

	r := a.expect(a.do("POST", "/api/users", "", `{"name":"vic","role":"viewer","password":"long-enough"}`), 201)
	if strings.Contains(string(r.body), "password") || strings.Contains(string(r.body), "long-enough") {
		t.Errorf("create answered the password: %s", r.body)
	}
	a.expect(a.do("POST", "/api/users", "", `{"name":"vic","role":"viewer","password":"long-enough"}`), 409)
	a.expectInvalid(a.do("POST", "/api/users", "", `{"name":"x","role":"boss","password":"long-enough"}`), "role")
	a.expectInvalid(a.do("POST", "/api/users", "", `{"name":"x","password":"short"}`), "password")
	a.expectInvalid(a.do("POST", "/api/users", "", `{"name":"x","password":"long-enough","admin":true}`), "admin")

	list := a.expect(a.do("GET", "/api/users", "", ""), 200)
	us := decode[[]gatehouse.User](t, list)
	if len(us) != 2 || us[0] != (gatehouse.User{Name: "admin", Role: "admin"}) || us[1] != (gatehouse.User{Name: "vic", Role: "viewer"}) {
		t.Errorf("users = %+v", us)
	}
	if strings.Contains(string(list.body), "$2a$") {
		t.Errorf("the list shows a password hash")
	}
	hash, err := a.b.UserPasswordHash(context.Background(), "vic")
	must(err)
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("long-enough")) != nil {
		t.Errorf("stored hash %q is not bcrypt of the password", hash)
	}

	// The last admin can be neither deleted nor made a viewer.
	a.expect(a.do("DELETE", "/api/users/admin", "", ""), 409)
	a.expect(a.do("PATCH", "/api/users/admin", "application/merge-patch+json", `{"role":"viewer"}`), 409)
	// With a second admin both work.
	u := decode[gatehouse.User](t, a.expect(a.do("PATCH", "/api/users/vic", "application/merge-patch+json", `{"role":"admin","password":"another-one"}`), 200))
	if u != (gatehouse.User{Name: "vic", Role: "admin"}) {
		t.Errorf("patched = %+v", u)
	}
	hash, _ = a.b.UserPasswordHash(context.Background(), "vic")
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("another-one")) != nil {
		t.Errorf("password not changed")
	}
	a.expectInvalid(a.do("PATCH", "/api/users/vic", "application/merge-patch+json", `{"name":"other"}`), "name")
	a.expect(a.do("PATCH", "/api/users/admin", "application/merge-patch+json", `{"role":"viewer"}`), 200)
	a.expect(a.do("DELETE", "/api/users/vic", "", ""), 409) // now vic is the last admin
	a.expect(a.do("PATCH", "/api/users/admin", "application/merge-patch+json", `{"role":"admin"}`), 200)
	a.expectDeleted(a.do("DELETE", "/api/users/vic", "", ""))
	a.expect(a.do("GET", "/api/users/vic", "", ""), 404)

	// A read-only admin key reads users and writes none.
	req, _ := http.NewRequest("POST", a.srv.URL+"/api/users", strings.NewReader(`{"name":"ro","password":"long-enough"}`))
	req.Header.Set(authHeader, readOnlyValue)
	res, err := a.srv.Client().Do(req)
	must(err)
	res.Body.Close()
	if res.StatusCode != 403 {
		t.Errorf("read-only POST /api/users: %d", res.StatusCode)
	}
	// Every user write is in the audit log, without a password.
	audit := a.expect(a.do("GET", "/api/audit?kind=user", "", ""), 200)
	es := decode[[]gatehouse.AuditEntry](t, audit)
	if len(es) != 6 || strings.Contains(string(audit.body), "$2a$") || strings.Contains(string(audit.body), "another-one") {
		t.Errorf("user audit = %s", audit.body)
	}
}
