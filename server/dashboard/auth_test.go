package dashboard

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gatehouse/assets"
)

func TestUnauthenticatedRedirectsToLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	for _, path := range []string{"/", "/services", "/services/x/apikeys", "/groups", "/plugins", "/nope"} {
		r := e.get(path, false)
		wantStatus(t, r, http.StatusSeeOther)
		if loc := r.Header.Get("Location"); !strings.HasPrefix(loc, "/login") {
			t.Errorf("GET %s: Location %q", path, loc)
		}
	}
	if loc := e.get("/services?q=a", false).Header.Get("Location"); loc != "/login?next="+url.QueryEscape("/services?q=a") {
		t.Errorf("next not kept: %q", loc)
	}
	r := e.get("/services", true)
	wantStatus(t, r, http.StatusUnauthorized)
	if got := r.Header.Get("HX-Redirect"); !strings.HasPrefix(got, "/login") {
		t.Errorf("htmx request: HX-Redirect %q", got)
	}
	r = e.post("/groups", url.Values{"name": {"x"}}, false)
	wantStatus(t, r, http.StatusSeeOther)
	if groups, _, _ := e.st.ListGroups(t.Context(), pageAll); len(groups) != 0 {
		t.Error("anonymous post wrote a group")
	}
	// The login page and the assets need no session.
	wantStatus(t, e.get("/login", false), http.StatusOK)
	a := e.get(assets.Path("htmx.min.js"), false)
	wantStatus(t, a, http.StatusOK)
	if a.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("asset Cache-Control %q", a.Header.Get("Cache-Control"))
	}
	// The admin API's paths are not the dashboard's.
	if r := e.get("/api/groups", false); r.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Errorf("/api/groups answered by the dashboard: %d %q", r.StatusCode, r.body)
	}
}

func TestLoginLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	r := e.post("/login", url.Values{"username": {testUser}, "password": {"wrong"}}, false)
	wantStatus(t, r, http.StatusUnauthorized)
	if got := tid(r.doc(t), "login-error").Text(); got != "Wrong username or password." {
		t.Errorf("error %q", got)
	}
	if attr(tid(r.doc(t), "login-username"), "value") != testUser {
		t.Error("username not kept")
	}
	r = e.post("/login", url.Values{"username": {"nobody"}, "password": {"x"}}, false)
	wantStatus(t, r, http.StatusUnauthorized)

	r = e.post("/login", url.Values{"username": {testUser}, "password": {testPassword}, "next": {"/groups"}}, false)
	wantStatus(t, r, http.StatusSeeOther)
	if r.Header.Get("Location") != "/groups" {
		t.Errorf("Location %q", r.Header.Get("Location"))
	}
	var c *http.Cookie
	for _, ck := range r.Cookies() {
		if ck.Name == "gatehouse_session" {
			c = ck
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure || c.Path != "/" || c.MaxAge != 12*3600 {
		t.Fatalf("session cookie %+v", c)
	}
	// Only a hash of the token is stored.
	if _, err := e.st.GetSession(t.Context(), c.Value); err == nil {
		t.Error("the raw token is stored")
	}
	if _, err := e.st.GetSession(t.Context(), hashToken(c.Value)); err != nil {
		t.Errorf("session not stored under the token's hash: %v", err)
	}
	page := e.get("/groups", false)
	wantStatus(t, page, http.StatusOK)
	e.csrf = attr(page.doc(t).Find(`input[name="csrf"]`).First(), "value")

	r = e.post("/logout", nil, false)
	wantStatus(t, r, http.StatusSeeOther)
	if r.Header.Get("Location") != "/login" {
		t.Errorf("logout Location %q", r.Header.Get("Location"))
	}
	wantStatus(t, e.get("/groups", false), http.StatusSeeOther)
	if _, err := e.st.GetSession(t.Context(), hashToken(c.Value)); err == nil {
		t.Error("session survived logout")
	}
}

func TestLoginOffSiteNextIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	for _, next := range []string{"//evil.example/x", "https://evil.example", "/\\evil.example"} {
		r := e.post("/login", url.Values{"username": {testUser}, "password": {testPassword}, "next": {next}}, false)
		if r.Header.Get("Location") != "/services" {
			t.Errorf("next %q: Location %q", next, r.Header.Get("Location"))
		}
	}
}

func TestSecureCookie(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{Secure: true})
	r := e.post("/login", url.Values{"username": {testUser}, "password": {testPassword}}, false)
	wantStatus(t, r, http.StatusSeeOther)
	if cs := r.Cookies(); len(cs) != 1 || !cs[0].Secure {
		t.Errorf("cookie not Secure: %+v", cs)
	}
}

func TestSessionExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	e.clock.Advance(11 * time.Hour)
	wantStatus(t, e.get("/services", false), http.StatusOK)
	e.clock.Advance(time.Hour + time.Second)
	wantStatus(t, e.get("/services", false), http.StatusSeeOther)
}

func TestLoginBackoff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	bad := url.Values{"username": {testUser}, "password": {"guess"}}
	good := url.Values{"username": {testUser}, "password": {testPassword}}
	for i := range 5 {
		if r := e.post("/login", bad, false); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d", i+1, r.StatusCode)
		}
	}
	// Locked: even the right password waits, and the answer says how long.
	r := e.post("/login", good, false)
	wantStatus(t, r, http.StatusTooManyRequests)
	if r.Header.Get("Retry-After") != "30" {
		t.Errorf("Retry-After %q, want 30", r.Header.Get("Retry-After"))
	}
	if !strings.Contains(tid(r.doc(t), "login-error").Text(), "30 seconds") {
		t.Errorf("message %q", tid(r.doc(t), "login-error").Text())
	}
	// Another username from the same address is not locked.
	wantStatus(t, e.post("/login", url.Values{"username": {"other"}, "password": {"x"}}, false), http.StatusUnauthorized)

	e.clock.Advance(31 * time.Second)
	wantStatus(t, e.post("/login", bad, false), http.StatusUnauthorized) // 6th failure: 60 s now
	r = e.post("/login", good, false)
	wantStatus(t, r, http.StatusTooManyRequests)
	if r.Header.Get("Retry-After") != "60" {
		t.Errorf("second lockout Retry-After %q, want 60", r.Header.Get("Retry-After"))
	}
	e.clock.Advance(61 * time.Second)
	wantStatus(t, e.post("/login", good, false), http.StatusSeeOther)
	// Success forgets the failures.
	wantStatus(t, e.post("/login", bad, false), http.StatusUnauthorized)
}

func TestCrossSiteForgeryRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	_, s, k := e.seed()
	path := "/services/" + s.ID + "/apikeys/" + k.ClientID + "/toggle"
	form := url.Values{"enabled": {"false"}, "csrf": {e.csrf}}

	tests := []struct {
		name    string
		headers map[string]string
		csrf    string
	}{
		{"sec-fetch-site cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}, e.csrf},
		{"sec-fetch-site same-site", map[string]string{"Sec-Fetch-Site": "same-site"}, e.csrf},
		{"foreign origin", map[string]string{"Origin": "http://evil.example"}, e.csrf},
		{"missing token", nil, "-"},
		{"wrong token", nil, "not-the-token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := url.Values{"enabled": form["enabled"]}
			if tc.csrf != "-" {
				f.Set("csrf", tc.csrf)
			}
			req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(f.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			r := e.do(req)
			wantStatus(t, r, http.StatusForbidden)
			got, _ := e.st.GetAPIKey(t.Context(), k.ClientID)
			if !got.Enabled {
				t.Fatal("a refused request changed the key")
			}
		})
	}
	// The same request from the dashboard's own page goes through.
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", e.srv.URL)
	wantStatus(t, e.do(req), http.StatusSeeOther)
	// A cross-site login attempt (login CSRF) is refused too.
	req, _ = http.NewRequest("POST", e.srv.URL+"/login", strings.NewReader(url.Values{"username": {testUser}, "password": {testPassword}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	wantStatus(t, e.do(req), http.StatusForbidden)
}
