package dashboard

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"gatehouse"
)

// TestBrowserSecurityScreens submits every form of the security screens
// (contract section 14) in headless Chromium, with JavaScript on and off:
// sign-in (refused, then accepted), rotate secret, the audit log's filter,
// users (create, refused and accepted; change role; delete), the own
// password, sign-out. Each outcome is read back through the admin API, the
// audit log's entries included; axe-core checks every screen on the way.
func TestBrowserSecurityScreens(t *testing.T) {
	for _, js := range []bool{true, false} {
		t.Run(mode(js), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Config{})
			e.seed()
			b := newBrowser(t, e, js)
			signInForm(t, b)
			rotateForm(t, b)
			auditScreen(t, b)
			userForms(t, b)
			newPassword := passwordForm(t, b)
			signOut(t, b, newPassword)
			t.Logf("axe checked %d screens", len(b.axed))
		})
	}
}

// newestAudit is the newest entry of the audit log that query selects, as
// the admin API answers it.
func newestAudit(b *browser, query url.Values) gatehouse.AuditEntry {
	b.t.Helper()
	query.Set("pageSize", "1")
	es := apiGet[[]gatehouse.AuditEntry](b, "/api/audit?"+query.Encode())
	if len(es) != 1 {
		b.t.Fatalf("no audit entry for %v", query)
	}
	return es[0]
}

// wantAudit checks the newest entry of kind and id: its action, actor and,
// for each field named, the [before, after] pair as JSON.
func wantAudit(b *browser, kind, id, action, actor string, changes map[string]string) {
	b.t.Helper()
	en := newestAudit(b, url.Values{"kind": {kind}, "id": {id}})
	if en.Action != action || en.Actor != actor {
		b.t.Errorf("newest audit entry of %s %s: %s by %s, want %s by %s", kind, id, en.Action, en.Actor, action, actor)
	}
	for field, want := range changes {
		c, ok := en.Changes[field]
		if got := "[" + string(c[0]) + "," + string(c[1]) + "]"; !ok || got != want {
			b.t.Errorf("audit %s %s %s: %s changed %s, want %s", kind, id, action, field, got, want)
		}
	}
}

const me = "user:" + testUser

func signInForm(t *testing.T, b *browser) {
	b.open("/", sel("login-form"))
	b.axe("login")
	b.fill(sel("login-username"), testUser)
	b.fill(sel("login-password"), "not the password")
	b.clickTo("refused sign-in", sel("login-submit"), sel("login-error"))
	if got := b.text(sel("login-error")); got != "Wrong username or password." {
		t.Errorf("refused sign-in says %q", got)
	}
	if got := b.value(sel("login-username")); got != testUser {
		t.Errorf("the username typed is not kept: %q", got)
	}
	b.axe("login refused")
	wantAudit(b, gatehouse.KindSession, testUser, gatehouse.ActionSignInFailed, me, nil)

	b.fill(sel("login-password"), testPassword)
	b.clickTo("sign in", sel("login-submit"), sel("services-table"))
	if got := b.text(sel("current-user")); got != testUser {
		t.Errorf("signed in as %q", got)
	}
	wantAudit(b, gatehouse.KindSession, testUser, gatehouse.ActionSignIn, me, nil)
}

func rotateForm(t *testing.T, b *browser) {
	b.open("/apikeys/mobile01", sel("rotate-form"))
	b.axe("key page")
	if got := b.text(`[data-testid="key-status"] [data-testid="status"]`); got != "enabled" {
		t.Errorf("status before rotation: %q", got)
	}
	before := time.Now()
	b.fill(sel("rotate-grace"), "2")
	b.clickTo("rotate secret", sel("rotate-secret"), sel("rotate-form"))
	b.flash("Secret of “Mobile app” rotated; the old one works until")
	k := apiGet[gatehouse.APIKey](b, "/api/apikeys/mobile01")
	if len(k.ClientSecret) != 64 || k.ClientSecret == "s3cret" {
		t.Errorf("secret after rotation: %q", k.ClientSecret)
	}
	const grace = 2 * time.Hour
	if u := k.PreviousSecretValidUntil; u == nil || *u < before.Add(grace).UnixMilli() || *u > time.Now().Add(grace).UnixMilli() {
		t.Errorf("previousSecretValidUntil %v, want two hours from %v", u, before)
	}
	if got := b.text(`[data-testid="key-status"] [data-testid="status"]`); got != "rotating" {
		t.Errorf("status after rotation: %q", got)
	}
	b.axe("key page rotating")
	wantAudit(b, gatehouse.KindAPIKey, "mobile01", gatehouse.OpRotate, me, map[string]string{"clientSecret": `["REDACTED","REDACTED"]`})
}

// auditRows is what the audit table shows: each row's action and entity.
func auditRows(b *browser) []string {
	b.t.Helper()
	return eval[[]string](b, `[...document.querySelectorAll('[data-testid="audit-row"]')].map(r =>
		r.querySelector('[data-testid="audit-action"]').textContent.trim() + " " +
		r.querySelector('[data-testid="audit-entity"]').textContent.trim())`)
}

func apiRows(b *browser, query string) []string {
	b.t.Helper()
	var out []string
	for _, en := range apiGet[[]gatehouse.AuditEntry](b, "/api/audit?"+query) {
		out = append(out, en.Action+" "+en.Kind+" "+en.ID)
	}
	return out
}

func auditScreen(t *testing.T, b *browser) {
	b.clickTo("audit log", sel("nav-audit"), sel("audit-table"))
	b.axe("audit log")
	if got, want := auditRows(b), apiRows(b, "pageSize=50"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit log shows %q, the admin API %q", got, want)
	}
	b.choose(sel("audit-kind"), gatehouse.KindAPIKey)
	b.fill(sel("audit-id"), "mobile01")
	b.clickTo("filter the audit log", sel("audit-apply"), sel("audit-table"))
	got, want := auditRows(b), apiRows(b, "kind=apikey&id=mobile01")
	if len(want) != 2 || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("filtered audit log shows %q, the admin API %q (want rotate and create)", got, want)
	}
	if b.value(sel("audit-kind")) != gatehouse.KindAPIKey || b.value(sel("audit-id")) != "mobile01" {
		t.Error("the filter does not show what it filters by")
	}
	b.axe("audit log filtered")
}

func userForms(t *testing.T, b *browser) {
	b.clickTo("users", sel("nav-users"), sel("users-table"))
	b.axe("users")

	// Refused: every invalid field says why at once, the name typed is kept.
	b.fill(sel("field-name"), "bad name!")
	b.fill(sel("field-password"), "short")
	b.clickTo("refused user", sel("submit"), sel("error-name"))
	if b.count(sel("error-password")) != 1 {
		t.Errorf("no message beside the password; form: %s", b.text(sel("user-form")))
	}
	b.wantFocus("refused user", "f-name")
	if got := b.value(sel("field-name")); got != "bad name!" {
		t.Errorf("the name typed is not kept: %q", got)
	}
	b.axe("users with errors")
	if us := apiGet[[]gatehouse.User](b, "/api/users"); len(us) != 1 {
		t.Fatalf("a refused user was saved: %+v", us)
	}

	b.fill(sel("field-name"), "viv")
	b.choose(sel("field-role"), gatehouse.RoleViewer)
	b.fill(sel("field-password"), "viv's long password")
	b.clickTo("create user", sel("submit"), sel("users-table"))
	b.flash("User viv created (viewer).")
	if u := apiGet[gatehouse.User](b, "/api/users/viv"); u.Role != gatehouse.RoleViewer {
		t.Errorf("user as saved: %+v", u)
	}
	wantAudit(b, gatehouse.KindUser, "viv", gatehouse.OpCreate, me,
		map[string]string{"role": `[null,"viewer"]`, "password": `[null,"REDACTED"]`})
	b.axe("users after create")

	b.choose("#role-viv", gatehouse.RoleAdmin)
	b.clickTo("change role", `#role-viv ~ [data-testid="user-save"]`, sel("users-table"))
	b.flash("User viv is now admin.")
	if u := apiGet[gatehouse.User](b, "/api/users/viv"); u.Role != gatehouse.RoleAdmin {
		t.Errorf("user after the role change: %+v", u)
	}
	wantAudit(b, gatehouse.KindUser, "viv", gatehouse.OpUpdate, me, map[string]string{"role": `["viewer","admin"]`})
	if got := b.value("#role-viv"); got != gatehouse.RoleAdmin {
		t.Errorf("the users table shows viv as %q", got)
	}

	// Saving the role viv has already changes nothing: no revision.
	rev := newestAudit(b, url.Values{}).Revision
	b.clickTo("save the same role", `#role-viv ~ [data-testid="user-save"]`, sel("users-table"))
	if now := newestAudit(b, url.Values{}).Revision; now != rev {
		t.Errorf("saving the same role made revision %d (was %d)", now, rev)
	}

	b.clickTo("delete user", `form[action="/users/viv/delete"] [data-testid="user-delete"]`, sel("users-table"))
	b.flash("User viv deleted.")
	if st := b.e.api("/api/users/viv", nil); st != 404 {
		t.Errorf("GET /api/users/viv after delete: %d", st)
	}
	if n := b.count(`form[action="/users/viv"]`); n != 0 {
		t.Error("the users table still lists viv")
	}
	wantAudit(b, gatehouse.KindUser, "viv", gatehouse.OpDelete, me, map[string]string{"role": `["admin",null]`})
	// Nobody deletes themselves from here: the signed-in admin has no Delete.
	if n := b.count(`form[action="/users/` + testUser + `/delete"]`); n != 0 {
		t.Error("the signed-in user is offered a Delete of themselves")
	}
}

// passwordForm changes the signed-in user's password and returns the new one.
func passwordForm(t *testing.T, b *browser) string {
	b.clickTo("your password", sel("nav-password"), sel("password-form"))
	b.axe("password")
	rev := newestAudit(b, url.Values{}).Revision

	b.fill(sel("field-current"), "not my password")
	b.fill(sel("field-password"), "short")
	b.clickTo("refused password", sel("submit"), sel("error-current"))
	if b.count(sel("error-password")) != 1 {
		t.Errorf("no message beside the new password; form: %s", b.text(sel("password-form")))
	}
	b.wantFocus("refused password", "f-current")
	b.axe("password with errors")
	if now := newestAudit(b, url.Values{}).Revision; now != rev {
		t.Errorf("a refused password change made revision %d", now)
	}

	const next = "a brand new passphrase"
	b.fill(sel("field-current"), testPassword)
	b.fill(sel("field-password"), next)
	b.clickTo("change password", sel("submit"), sel("password-form"))
	b.flash("Password changed.")
	wantAudit(b, gatehouse.KindUser, testUser, gatehouse.OpUpdate, me, map[string]string{"password": `["REDACTED","REDACTED"]`})
	if now := newestAudit(b, url.Values{}).Revision; now != rev+1 {
		t.Errorf("the password change is revision %d, want %d", now, rev+1)
	}
	return next
}

// signOut signs out, finds the dashboard closed, and signs in again with
// the new password (the old one is refused).
func signOut(t *testing.T, b *browser, password string) {
	b.clickTo("sign out", sel("logout"), sel("login-form"))
	wantAudit(b, gatehouse.KindSession, testUser, gatehouse.ActionSignOut, me, nil)
	b.axe("login after sign-out")
	b.open("/users", sel("login-form"))

	signIn := func(what, pw, want string) {
		t.Helper()
		b.fill(sel("login-username"), testUser)
		b.fill(sel("login-password"), pw)
		b.clickTo(what, sel("login-submit"), want)
	}
	signIn("sign in with the old password", testPassword, sel("login-error"))
	signIn("sign in with the new password", password, sel("users-table"))
	wantAudit(b, gatehouse.KindSession, testUser, gatehouse.ActionSignIn, me, nil)
	sessions := apiRows(b, "kind=session&pageSize=10")
	want := []string{"sign-in", "sign-in-failed", "sign-out", "sign-in", "sign-in-failed"}
	for i := range sessions {
		sessions[i], _, _ = strings.Cut(sessions[i], " ")
	}
	if strings.Join(sessions, ",") != strings.Join(want, ",") {
		t.Errorf("session entries, newest first: %v, want %v", sessions, want)
	}
}
