package dashboard

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"golang.org/x/crypto/bcrypt"

	"gatehouse"
)

// loginAs signs in as name and keeps the session's csrf token.
func (e *env) loginAs(name, password string) {
	e.t.Helper()
	res := e.post("/login", url.Values{"username": {name}, "password": {password}}, false)
	if res.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login %s: status %d", name, res.StatusCode)
	}
	tok, _ := e.get("/services", false).doc(e.t).Find(`input[name="csrf"]`).First().Attr("value")
	e.csrf = tok
}

func (e *env) addUser(name, role, password string) {
	e.t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.AddUser(context.Background(), gatehouse.User{Name: name, Role: role}, string(h)); err != nil {
		e.t.Fatal(err)
	}
}

func TestViewerSeesNoSecretAndWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	_, _, k := e.seed()
	ctx := context.Background()
	p := gatehouse.DefaultPlugin()
	p.ID, p.Name = "p1", "auth"
	if err := e.st.CreatePlugin(ctx, &p, []byte("\x00asm\x01\x00\x00\x00")); err != nil {
		t.Fatal(err)
	}
	svc, _ := e.st.GetService(ctx, "orders")
	svc.Plugins = []gatehouse.PluginRef{{Ref: "p1", Config: "plugin-config-secret"}}
	if err := e.st.UpdateService(ctx, &svc); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.RotateAPIKey(ctx, k.ClientID, "rotated-s3cret-two", 1); err != nil {
		t.Fatal(err)
	}
	e.addUser("vera", gatehouse.RoleViewer, "viewer password")
	e.loginAs("vera", "viewer password")

	pages := []string{"/services", "/services/orders", "/services/orders/apikeys", "/services/orders/plugins",
		"/apikeys", "/apikeys/mobile01", "/services/orders/apikeys/mobile01", "/groups", "/groups/shop",
		"/plugins", "/plugins/p1", "/audit", "/audit?kind=apikey"}
	for _, path := range pages {
		for _, hx := range []bool{false, true} {
			r := e.get(path, hx)
			wantStatus(t, r, http.StatusOK)
			for _, secret := range []string{"s3cret", "rotated-s3cret-two", "plugin-config-secret"} {
				if strings.Contains(r.body, secret) {
					t.Errorf("GET %s (htmx %v) shows the secret %q to a viewer", path, hx, secret)
				}
			}
			doc := r.doc(t)
			for _, id := range []string{"key-secret-value", "key-secret-copy", "curl-full", "curl-copy", "new-key", "key-edit",
				"key-delete", "key-reset", "key-toggle", "rotate-secret", "new-service", "edit-service", "delete-service",
				"new-group", "group-edit", "group-delete", "plugin-delete"} {
				if tid(doc, id).Length() > 0 {
					t.Errorf("GET %s (htmx %v) shows %s to a viewer", path, hx, id)
				}
			}
			doc.Find(`form[method="post"]`).Each(func(_ int, f *goquery.Selection) {
				if a, _ := f.Attr("action"); a != "/logout" {
					t.Errorf("GET %s (htmx %v) holds a form posting to %s", path, hx, a)
				}
			})
		}
	}
	if doc := e.get("/apikeys/mobile01", false).doc(t); tid(doc, "key-secret-hidden").Length() != 1 || tid(doc, "curl-hidden").Length() != 1 {
		t.Errorf("the key page does not say the secret is hidden")
	}

	rev, _ := e.st.Revision(ctx)
	writes := []string{"/services", "/services/orders", "/services/orders/delete", "/services/orders/plugins",
		"/services/orders/apikeys", "/services/orders/apikeys/mobile01", "/services/orders/apikeys/mobile01/toggle",
		"/services/orders/apikeys/mobile01/delete", "/services/orders/apikeys/mobile01/reset-quotas",
		"/services/orders/apikeys/mobile01/rotate", "/apikeys", "/apikeys/mobile01", "/apikeys/mobile01/toggle",
		"/apikeys/mobile01/delete", "/apikeys/mobile01/reset-quotas", "/apikeys/mobile01/rotate",
		"/groups", "/groups/shop", "/groups/shop/delete", "/plugins", "/plugins/p1", "/plugins/p1/wasm", "/plugins/p1/delete"}
	for _, path := range writes {
		r := e.post(path, url.Values{"name": {"changed"}, "enabled": {"false"}, "clientName": {"x"}}, false)
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", path, r.StatusCode)
		}
	}
	for _, path := range []string{"/services/new", "/services/orders/edit", "/services/orders/delete", "/apikeys/new",
		"/apikeys/mobile01/edit", "/apikeys/mobile01/delete", "/apikeys/mobile01/reset-quotas", "/groups/new", "/groups/shop/edit",
		"/plugins/p1/delete"} {
		if r := e.get(path, false); r.StatusCode != http.StatusForbidden {
			t.Errorf("viewer GET %s: %d, want 403", path, r.StatusCode)
		}
	}
	if now, _ := e.st.Revision(ctx); now != rev {
		t.Errorf("viewer writes made revisions %d to %d", rev, now)
	}
	// A viewer still signs out.
	if r := e.post("/logout", nil, false); r.StatusCode != http.StatusSeeOther {
		t.Errorf("viewer logout: %d", r.StatusCode)
	}
}

func TestRotateSecretFromTheDashboard(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.st.SetClock(e.clock.Now) // as the server does: the store stamps rotations with the dashboard's clock
	_, _, k := e.seed()
	e.login()
	doc := e.get("/apikeys/mobile01", false).doc(t)
	if attr(tid(doc, "rotate-grace"), "value") != "168" || tid(doc, "rotate-secret").Length() != 1 {
		t.Fatalf("no rotate form with the key's grace period on the key page")
	}
	r := e.post("/apikeys/mobile01/rotate", url.Values{"gracePeriod": {"2"}}, false)
	wantStatus(t, r, http.StatusSeeOther)
	got, err := e.st.GetAPIKey(context.Background(), k.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ClientSecret == k.ClientSecret || got.PreviousSecret != k.ClientSecret || got.PreviousSecretValidUntil == nil ||
		*got.PreviousSecretValidUntil != e.clock.Now().Add(2*time.Hour).UnixMilli() {
		t.Fatalf("after rotate: %+v", got)
	}
	doc = e.get(r.Header.Get("Location"), false).doc(t)
	if s := tid(doc, "key-status").Text(); !strings.Contains(s, "rotating") || tid(doc, "rotating-until").Length() != 1 {
		t.Errorf("key status after rotate = %q", s)
	}
	if !strings.Contains(doc.Text(), "rotated; the old one works until") {
		t.Errorf("no flash after rotate")
	}
	e.clock.Advance(2 * time.Hour)
	if s := tid(e.get("/apikeys/mobile01", false).doc(t), "key-status").Text(); strings.Contains(s, "rotating") {
		t.Errorf("still rotating after the grace period: %q", s)
	}
	r = e.post("/apikeys/mobile01/rotate", url.Values{"gracePeriod": {"-3"}}, false)
	if r.StatusCode != http.StatusBadRequest && r.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("negative grace period: %d", r.StatusCode)
	}
}

func TestAuditLogPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.seed()
	if r := e.post("/login", url.Values{"username": {testUser}, "password": {"wrong"}}, false); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", r.StatusCode)
	}
	e.login()
	r := e.post("/apikeys/mobile01/toggle", url.Values{"enabled": {"false"}}, false)
	if r.StatusCode >= 400 {
		t.Fatalf("toggle: %d", r.StatusCode)
	}
	if r := e.post("/logout", nil, false); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	es, _, err := e.st.ListAudit(context.Background(), gatehouse.AuditFilter{Kind: "session"}, gatehouse.Page{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, en := range es {
		actions = append(actions, en.Action+" "+en.Actor+" "+*en.IP)
	}
	if strings.Join(actions, ",") != "sign-out user:admin 127.0.0.1,sign-in user:admin 127.0.0.1,sign-in-failed user:admin 127.0.0.1" {
		t.Errorf("session entries = %v", actions)
	}

	e.login()
	doc := e.get("/audit?kind=apikey&id=mobile01", false).doc(t)
	rows := tid(doc, "audit-row")
	if rows.Length() != 2 {
		t.Fatalf("apikey mobile01 rows = %d", rows.Length())
	}
	first := rows.First()
	if first.Find(`[data-testid="audit-actor-cell"]`).Text() != "user:admin" || first.Find(`[data-testid="audit-action"]`).Text() != "update" {
		t.Errorf("newest row = %q", first.Text())
	}
	ch := first.Find(`[data-testid="audit-change"]`)
	if ch.Length() != 1 || ch.Find("th").Text() != "enabled" || ch.Find(`[data-testid="audit-before"]`).Text() != "true" ||
		ch.Find(`[data-testid="audit-after"]`).Text() != "false" {
		t.Errorf("change of the toggle = %q", ch.Text())
	}
	body := e.get("/audit", false).body
	if strings.Contains(body, "s3cret") || !strings.Contains(body, "REDACTED") {
		t.Errorf("the audit page shows a secret, or no REDACTED creation")
	}
	if r := e.get("/audit?since=x", false); r.StatusCode != http.StatusBadRequest && r.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("since=x: %d", r.StatusCode)
	}
}

func TestUsersAndOwnPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	ctx := context.Background()
	if r := e.post("/users/admin/delete", nil, false); r.StatusCode != http.StatusConflict {
		t.Errorf("deleting the last admin: %d", r.StatusCode)
	}
	if r := e.post("/users/admin", url.Values{"role": {"viewer"}}, false); r.StatusCode != http.StatusConflict {
		t.Errorf("the last admin made a viewer: %d", r.StatusCode)
	}
	r := e.post("/users", url.Values{"name": {"vic"}, "role": {"viewer"}, "password": {"short"}}, false)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if doc := r.doc(t); tid(doc, "error-password").Length() != 1 || attr(tid(doc, "field-name"), "value") != "vic" {
		t.Errorf("short password: no message beside the field, or the name typed is lost")
	}
	wantStatus(t, e.post("/users", url.Values{"name": {"vic"}, "role": {"viewer"}, "password": {"viewer password"}}, false), http.StatusSeeOther)
	if r := e.post("/users", url.Values{"name": {"vic"}, "role": {"viewer"}, "password": {"viewer password"}}, false); r.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("duplicate user: %d", r.StatusCode)
	}
	doc := e.get("/users", false).doc(t)
	if n := tid(doc, "user-row").Length(); n != 2 || strings.Contains(doc.Text(), "$2a$") {
		t.Fatalf("users page rows %d", n)
	}
	if u, err := e.st.GetUser(ctx, "vic"); err != nil || u.Role != "viewer" {
		t.Fatalf("vic = %+v %v", u, err)
	}

	// The viewer: no Users page, its own password yes.
	v := newEnvClient(e)
	v.loginAs("vic", "viewer password")
	if r := v.get("/users", false); r.StatusCode != http.StatusForbidden {
		t.Errorf("viewer GET /users: %d", r.StatusCode)
	}
	if tid(v.get("/services", false).doc(t), "nav-users").Length() != 0 {
		t.Errorf("a viewer's sidebar links to Users")
	}
	r = v.post("/account/password", url.Values{"current": {"wrong"}, "password": {"a new password"}}, false)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if tid(r.doc(t), "error-current").Length() != 1 {
		t.Errorf("wrong current password: no message")
	}
	wantStatus(t, v.post("/account/password", url.Values{"current": {"viewer password"}, "password": {"a new password"}}, false), http.StatusSeeOther)
	v2 := newEnvClient(e)
	v2.loginAs("vic", "a new password")

	// Roles change and the last admin rule holds across users.
	wantStatus(t, e.post("/users/vic", url.Values{"role": {"admin"}}, false), http.StatusSeeOther)
	wantStatus(t, e.post("/users/admin", url.Values{"role": {"viewer"}}, false), http.StatusSeeOther)
	if r := v2.post("/users/vic/delete", nil, false); r.StatusCode != http.StatusConflict {
		t.Errorf("deleting the now last admin: %d", r.StatusCode)
	}
	es, _, _ := e.st.ListAudit(ctx, gatehouse.AuditFilter{Kind: "user", ID: "vic"}, gatehouse.Page{})
	if len(es) != 3 || es[0].Actor != "user:admin" || es[1].Actor != "user:vic" {
		t.Errorf("vic's audit entries = %+v", es)
	}
}

// newEnvClient is another browser on e's dashboard: its own cookies.
func newEnvClient(e *env) *env {
	jar, _ := cookiejar.New(nil)
	c := *e
	c.client = &http.Client{Jar: jar, CheckRedirect: e.client.CheckRedirect}
	c.csrf = ""
	return &c
}
