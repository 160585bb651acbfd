package dashboard

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/mux"

	"gatehouse"
)

// Every screen answers a whole page to a browser and only its content to
// htmx, and says so in Vary.
func TestFragmentOrPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	g, s, k := e.seed()
	p := gatehouse.DefaultPlugin()
	p.Name = "auth"
	if err := e.st.CreatePlugin(t.Context(), &p, []byte("\x00asm\x01\x00\x00\x00")); err != nil {
		t.Fatal(err)
	}
	keyPath := "/services/" + s.ID + "/apikeys/" + k.ClientID
	pages := []struct {
		path, title string
	}{
		{"/services", "All services"},
		{"/services?q=orders", "All services"},
		{"/services/new", "New service"},
		{"/services/" + s.ID, "Orders API"},
		{"/services/" + s.ID + "/edit", "Edit service"},
		{"/services/" + s.ID + "/delete", "Delete service"},
		{"/services/" + s.ID + "/plugins", "Plugins"},
		{"/services/" + s.ID + "/apikeys", "API keys"},
		{"/services/" + s.ID + "/apikeys/new", "New API key"},
		{keyPath, "Mobile app"},
		{keyPath + "/edit", "Edit API key"},
		{keyPath + "/delete", "Delete API key"},
		{"/groups", "Service groups"},
		{"/groups/new", "New group"},
		{"/groups/" + g.ID, "Shop"},
		{"/groups/" + g.ID + "/edit", "Edit group"},
		{"/groups/" + g.ID + "/delete", "Delete group"},
		{"/plugins", "Plugins"},
		{"/plugins/" + p.ID + "/delete", "Delete plugin"},
		{"/plugins/" + p.ID, "auth"},
		{keyPath + "/reset-quotas", "Reset quotas"},
		{"/apikeys", "All API keys"},
		{"/apikeys?q=mob&sort=name", "All API keys"},
		{"/apikeys/new", "New API key"},
		{"/apikeys/" + k.ClientID, "Mobile app"},
		{"/apikeys/" + k.ClientID + "/edit", "Edit API key"},
		{"/apikeys/" + k.ClientID + "/delete", "Delete API key"},
	}
	for _, pg := range pages {
		t.Run(pg.path, func(t *testing.T) {
			full := e.get(pg.path, false)
			wantStatus(t, full, http.StatusOK)
			frag := e.get(pg.path, true)
			wantStatus(t, frag, http.StatusOK)
			for _, r := range []resp{full, frag} {
				if !slices.Contains(r.Header.Values("Vary"), "HX-Request") {
					t.Errorf("Vary %q lacks HX-Request", r.Header.Values("Vary"))
				}
				if r.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
					t.Errorf("headers %v", r.Header)
				}
			}
			fd := full.doc(t)
			if !strings.HasPrefix(full.body, "<!doctype html>") || tid(fd, "sidebar").Length() != 1 || tid(fd, "main").Length() != 1 {
				t.Error("browser request did not get the whole page")
			}
			if got := strings.TrimSpace(tid(fd, "page-title").Text()); !strings.Contains(got, pg.title) && !strings.Contains(tid(fd, "main").Text(), pg.title) {
				t.Errorf("page title %q, want %q", got, pg.title)
			}
			hd := frag.doc(t)
			if strings.Contains(frag.body, "<html") || strings.Contains(frag.body, "<!doctype") || tid(hd, "sidebar").Length() != 0 {
				t.Error("htmx request got the whole page")
			}
			if !strings.Contains(hd.Text(), pg.title) {
				t.Errorf("fragment lacks %q", pg.title)
			}
		})
	}
}

func TestHistoryRestoreGetsWholePage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	req, _ := http.NewRequest("GET", e.srv.URL+"/groups", nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("HX-History-Restore-Request", "true")
	if r := e.do(req); !strings.HasPrefix(r.body, "<!doctype html>") {
		t.Error("history restore got a fragment")
	}
}

func TestSearch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	e.seed()
	other := gatehouse.DefaultService()
	other.ID, other.GroupID, other.Name, other.Domain = "billing", "shop", "Billing", "billing.example.com"
	other.Targets = []gatehouse.Target{{Host: "127.0.0.1:9999", Scheme: "http"}}
	if err := e.st.CreateService(t.Context(), &other); err != nil {
		t.Fatal(err)
	}
	r := e.get("/search?q=bill", true)
	wantStatus(t, r, http.StatusOK)
	res := tid(r.doc(t), "search-result")
	if res.Length() != 1 || res.Text() != "Billing" || attr(res, "href") != "/services/billing" {
		t.Errorf("results: %d %q", res.Length(), res.Text())
	}
	if strings.Contains(r.body, "<html") {
		t.Error("search fragment is a whole page")
	}
	r = e.get("/search?q=zzz", true)
	if tid(r.doc(t), "search-empty").Length() != 1 {
		t.Error("no empty message")
	}
	// Without JavaScript the search box's form lands on the filtered list.
	r = e.get("/search?q=bill", false)
	wantStatus(t, r, http.StatusSeeOther)
	if r.Header.Get("Location") != "/services?q=bill" {
		t.Errorf("Location %q", r.Header.Get("Location"))
	}
	list := e.get("/services?q=bill", false).doc(t)
	if rows := tid(list, "service-row"); rows.Length() != 1 || attr(rows, "data-id") != "billing" {
		t.Errorf("filtered list has %d rows", rows.Length())
	}
	if attr(tid(list, "sidebar-search"), "value") != "bill" {
		t.Error("search box lost its query")
	}
}

func TestKeysScreen(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	_, s, k := e.seed()
	e.b.usage[k.ClientID] = gatehouse.QuotaUsage{CurrentCallsPerDay: 123, CurrentCallsPerMonth: 4567}
	// A key of another group is not listed.
	if err := e.st.CreateGroup(t.Context(), &gatehouse.Group{ID: "elsewhere", Name: "Elsewhere"}); err != nil {
		t.Fatal(err)
	}
	stranger := gatehouse.DefaultAPIKey()
	stranger.ClientID, stranger.AuthorizedEntities = "stranger", []string{"group_elsewhere"}
	if err := e.st.CreateAPIKey(t.Context(), &stranger); err != nil {
		t.Fatal(err)
	}
	doc := e.get("/services/"+s.ID+"/apikeys", false).doc(t)
	rows := tid(doc, "key-row")
	if rows.Length() != 1 || attr(rows, "data-client-id") != k.ClientID {
		t.Fatalf("rows: %d", rows.Length())
	}
	for id, want := range map[string]string{"key-name": "Mobile app", "key-client-id": "mobile01", "key-secret-value": "s3cret", "usage-daily": "123", "usage-monthly": "4,567"} {
		if got := rows.Find(`[data-testid="` + id + `"]`).Text(); got != want {
			t.Errorf("%s = %q, want %q", id, got, want)
		}
	}
	if attr(tid(doc, "nav-service-keys"), "aria-current") != "page" {
		t.Error("sidebar API keys entry not current")
	}
	// Another service's path does not reach this group's key.
	wantStatus(t, e.get("/services/"+s.ID+"/apikeys/stranger/edit", false), http.StatusNotFound)
}

func TestKeyCreateUpdateToggleDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	_, s, _ := e.seed()
	keys := "/services/" + s.ID + "/apikeys"

	// The create form comes prefilled with generated credentials.
	doc := e.get(keys+"/new", false).doc(t)
	cid, secret := attr(tid(doc, "field-clientId"), "value"), attr(tid(doc, "field-clientSecret"), "value")
	if len(cid) != 16 || len(secret) != 64 {
		t.Fatalf("prefilled client id %q secret %q", cid, secret)
	}
	if attr(tid(doc, "field-dailyQuota"), "value") != "10000000" {
		t.Error("quotas not prefilled with defaults")
	}

	form := url.Values{"clientName": {"Partner"}, "clientId": {cid}, "clientSecret": {secret},
		"throttlingQuota": {"50"}, "dailyQuota": {"1,000"}, "monthlyQuota": {"20000"}, "enabled": {"true"},
		"authorizedEntities": {"group_shop"}}
	r := e.post(keys, form, false)
	wantStatus(t, r, http.StatusSeeOther)
	if r.Header.Get("Location") != keys+"/"+cid {
		t.Errorf("Location %q", r.Header.Get("Location"))
	}
	got, err := e.st.GetAPIKey(t.Context(), cid)
	if err != nil {
		t.Fatal(err)
	}
	if got.ClientName != "Partner" || got.ClientSecret != secret || got.ThrottlingQuota != 50 || got.DailyQuota != 1000 ||
		got.MonthlyQuota != 20000 || !got.Enabled || !slices.Equal(got.AuthorizedEntities, []string{"group_shop"}) {
		t.Errorf("created key %+v", got)
	}

	// With htmx the same post answers with HX-Redirect.
	form.Set("clientId", "htmxkey")
	r = e.post(keys, form, true)
	wantStatus(t, r, http.StatusOK)
	if r.Header.Get("HX-Redirect") != keys+"/htmxkey" {
		t.Errorf("HX-Redirect %q", r.Header.Get("HX-Redirect"))
	}

	// Update: new values, client id fixed, unchecked box disables.
	r = e.post(keys+"/"+cid, url.Values{"clientName": {"Partner 2"}, "clientId": {"ignored"}, "clientSecret": {"newsecret"},
		"throttlingQuota": {"5"}, "dailyQuota": {"6"}, "monthlyQuota": {"7"}, "authorizedEntities": {"group_shop"}}, false)
	wantStatus(t, r, http.StatusSeeOther)
	got, _ = e.st.GetAPIKey(t.Context(), cid)
	if got.ClientName != "Partner 2" || got.ClientSecret != "newsecret" || got.DailyQuota != 6 || got.Enabled ||
		!slices.Equal(got.AuthorizedEntities, []string{"group_shop"}) {
		t.Errorf("updated key %+v", got)
	}
	if _, err := e.st.GetAPIKey(t.Context(), "ignored"); err == nil {
		t.Error("update created a key under a new client id")
	}
	edit := e.get(keys+"/"+cid+"/edit", false).doc(t)
	if strings.TrimSpace(tid(edit, "submit").Text()) != "Update API key" || attr(tid(edit, "field-clientName"), "value") != "Partner 2" {
		t.Error("edit form")
	}

	// Toggle from the table: htmx gets the row back.
	r = e.post(keys+"/"+cid+"/toggle", url.Values{"enabled": {"true"}}, true)
	wantStatus(t, r, http.StatusOK)
	if !strings.HasPrefix(strings.TrimSpace(r.body), "<tr") {
		t.Errorf("toggle answered %.200q, want a table row", r.body)
	}
	row := r.doc(t).Find(`[data-testid="key-toggle"]`)
	if attr(row, "data-enabled") != "true" {
		t.Error("row does not show the key enabled")
	}
	if got, _ = e.st.GetAPIKey(t.Context(), cid); !got.Enabled {
		t.Error("toggle did not enable")
	}
	r = e.post(keys+"/"+cid+"/toggle", url.Values{"enabled": {"false"}}, false)
	wantStatus(t, r, http.StatusSeeOther)
	if got, _ = e.st.GetAPIKey(t.Context(), cid); got.Enabled {
		t.Error("toggle without htmx did not disable")
	}

	// Delete: the confirmation names the key; cancel is a link that writes nothing.
	conf := e.get(keys+"/"+cid+"/delete", false).doc(t)
	if tid(conf, "confirm-delete-name").Text() != "Partner 2" || attr(tid(conf, "cancel-delete"), "href") != keys {
		t.Error("confirmation")
	}
	if _, err := e.st.GetAPIKey(t.Context(), cid); err != nil {
		t.Error("showing the confirmation deleted the key")
	}
	r = e.post(keys+"/"+cid+"/delete", nil, true)
	wantStatus(t, r, http.StatusOK)
	if r.Header.Get("HX-Redirect") != keys {
		t.Error("delete HX-Redirect")
	}
	if _, err := e.st.GetAPIKey(t.Context(), cid); gatehouse.KindOf(err) != gatehouse.KindNotFound {
		t.Errorf("key not deleted: %v", err)
	}
	wantStatus(t, e.post(keys+"/htmxkey/delete", nil, false), http.StatusSeeOther)
}

func TestKeyFormInvalidInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	_, s, k := e.seed()
	keys := "/services/" + s.ID + "/apikeys"
	base := url.Values{"clientName": {"Typed name"}, "clientId": {"typedid"}, "clientSecret": {"typedsecret"},
		"throttlingQuota": {"10"}, "dailyQuota": {"20"}, "monthlyQuota": {"30"}, "enabled": {"true"}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range base {
			f[kk] = slices.Clone(vv)
		}
		f.Set(k, v)
		return f
	}
	tests := []struct {
		name, field, value, msg string
	}{
		{"not a number", "dailyQuota", "lots", "must be a whole number"},
		{"negative", "monthlyQuota", "-1", "must not be negative"},
		{"bad client id", "clientId", "has space", "may hold only"},
		{"duplicate client id", "clientId", k.ClientID, "already exists"},
		{"empty secret", "clientSecret", "", "must not be empty"},
	}
	for _, tc := range tests {
		for _, hx := range []bool{true, false} {
			t.Run(tc.name+map[bool]string{true: " htmx", false: " plain"}[hx], func(t *testing.T) {
				r := e.post(keys, with(tc.field, tc.value), hx)
				wantStatus(t, r, http.StatusUnprocessableEntity)
				doc := r.doc(t)
				msg := tid(doc, "error-"+tc.field)
				if !strings.Contains(msg.Text(), tc.msg) {
					t.Errorf("error beside %s = %q, want %q", tc.field, msg.Text(), tc.msg)
				}
				if msg.Parent().Find(`[name="`+tc.field+`"]`).Length() == 0 && msg.Parent().Parent().Find(`[name="`+tc.field+`"]`).Length() == 0 {
					t.Error("message is not beside its field")
				}
				for f, v := range with(tc.field, tc.value) {
					if f == "enabled" {
						continue
					}
					if got := attr(tid(doc, "field-"+f), "value"); got != v[0] {
						t.Errorf("%s = %q, want typed %q", f, got, v[0])
					}
				}
				if hx == strings.Contains(r.body, "<html") {
					t.Errorf("htmx=%v but whole page=%v", hx, !hx)
				}
				if hx && tid(doc, "key-form").Length() != 1 {
					t.Error("fragment is not the form")
				}
			})
		}
	}
	if _, n, _ := e.st.ListAPIKeys(t.Context(), gatehouse.KeyFilter{}, pageAll); n != 1 {
		t.Errorf("%d keys stored after invalid posts, want 1", n)
	}
}

func TestKeyRegenerate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	_, s, _ := e.seed()
	form := url.Values{"clientName": {"Kept"}, "clientId": {"keptid"}, "clientSecret": {"oldsecret"},
		"throttlingQuota": {"1"}, "dailyQuota": {"2"}, "monthlyQuota": {"3"}, "_action": {"regenerate-clientSecret"}}
	r := e.post("/services/"+s.ID+"/apikeys", form, true)
	wantStatus(t, r, http.StatusOK)
	doc := r.doc(t)
	if sec := attr(tid(doc, "field-clientSecret"), "value"); sec == "oldsecret" || len(sec) != 64 {
		t.Errorf("secret not regenerated: %q", sec)
	}
	if attr(tid(doc, "field-clientId"), "value") != "keptid" || attr(tid(doc, "field-clientName"), "value") != "Kept" {
		t.Error("other fields not kept")
	}
	form.Set("_action", "regenerate-clientId")
	r = e.post("/services/"+s.ID+"/apikeys", form, false)
	wantStatus(t, r, http.StatusOK)
	if id := attr(tid(r.doc(t), "field-clientId"), "value"); id == "keptid" || len(id) != 16 {
		t.Errorf("client id not regenerated: %q", id)
	}
	if _, err := e.st.GetAPIKey(t.Context(), "keptid"); err == nil {
		t.Error("regenerate saved the key")
	}
}

func TestKeyDetail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{GatewayURL: "http://gw.local:8080/"})
	e.login()
	_, s, k := e.seed()
	today := e.clock.Now().UTC()
	yesterday := today.AddDate(0, 0, -1)
	err := e.st.AddCounters(t.Context(), []gatehouse.Counter{
		{ClientID: k.ClientID, Period: today.Format("2006-01-02"), Count: 40, Calls: 40, LastUsed: today.UnixMilli()},
		{ClientID: k.ClientID, Period: yesterday.Format("2006-01-02"), Count: 20, Calls: 20},
		{ClientID: k.ClientID, Period: today.Format("2006-01"), Count: 999},
		{ClientID: k.ClientID, Period: today.AddDate(0, 0, -40).Format("2006-01-02"), Count: 7, Calls: 7},
	})
	if err != nil {
		t.Fatal(err)
	}
	doc := e.get("/services/"+s.ID+"/apikeys/"+k.ClientID, false).doc(t)
	// Shown: the commands with the secret masked; the whole ones only once revealed.
	lines, full := tid(doc, "curl-line"), tid(doc, "curl-full")
	if lines.Length() != 3 || full.Length() != 3 {
		t.Fatalf("%d curl lines, %d revealed ones, want 3 (Basic, headers, JWT)", lines.Length(), full.Length())
	}
	for i := range 3 {
		if strings.Contains(lines.Eq(i).Text(), "s3cret") || !strings.Contains(lines.Eq(i).Text(), "••••••••") {
			t.Errorf("masked line %d shows the secret: %q", i, lines.Eq(i).Text())
		}
		if full.Eq(i).Closest("details").Length() != 1 || full.Eq(i).Closest("details").AttrOr("open", "closed") != "closed" {
			t.Errorf("revealed line %d is not inside a closed <details>", i)
		}
	}
	basic, headers, jwt := full.Eq(0).Text(), full.Eq(1).Text(), full.Eq(2).Text()
	if basic != "curl -i 'http://gw.local:8080/' -H 'Host: orders.example.com' -u 'mobile01:s3cret'" {
		t.Errorf("basic line %q", basic)
	}
	if !strings.Contains(headers, "-H 'Otoroshi-Client-Id: mobile01' -H 'Otoroshi-Client-Secret: s3cret'") {
		t.Errorf("headers line %q", headers)
	}
	if !strings.Contains(jwt, "-H 'Authorization: Bearer ey") {
		t.Errorf("JWT line %q", jwt)
	}
	bars := tid(doc, "usage-bar")
	if bars.Length() != 30 {
		t.Fatalf("%d bars, want 30", bars.Length())
	}
	last, prev := bars.Eq(29), bars.Eq(28)
	if attr(last, "data-day") != today.Format("2006-01-02") || attr(last, "data-count") != "40" || attr(prev, "data-count") != "20" {
		t.Errorf("last bars: %s=%s, %s", attr(last, "data-day"), attr(last, "data-count"), attr(prev, "data-count"))
	}
	if !strings.Contains(tid(doc, "usage-chart").Text(), "60 calls in total") {
		t.Errorf("total: %q", tid(doc, "usage-chart").Text())
	}
	if got := tid(doc, "key-last-used").Text(); got != today.Format("2006-01-02 15:04 MST") {
		t.Errorf("last used %q", got)
	}

	// Reset quotas: a confirmation first, then the counters go, the history stays.
	reset := "/services/" + s.ID + "/apikeys/" + k.ClientID + "/reset-quotas"
	if conf := e.get(reset, false).doc(t); tid(conf, "confirm-reset-name").Text() != "Mobile app" {
		t.Error("reset confirmation does not name the key")
	}
	if c, _ := e.st.KeyCounters(t.Context(), k.ClientID, today.Format("2006-01-02"), today.Format("2006-01-02")); len(c) != 1 {
		t.Fatal("showing the confirmation reset the quotas")
	}
	r := e.post(reset, nil, false)
	wantStatus(t, r, http.StatusSeeOther)
	if c, _ := e.st.KeyCounters(t.Context(), k.ClientID, today.Format("2006-01-02"), today.Format("2006-01-02")); len(c) != 0 {
		t.Errorf("quota counters after reset: %v", c)
	}
	doc = e.get(r.Header.Get("Location"), false).doc(t)
	if !strings.Contains(tid(doc, "usage-chart").Text(), "60 calls in total") || !strings.Contains(tid(doc, "flash").Text(), "reset") {
		t.Errorf("after reset: chart %q flash %q", tid(doc, "usage-chart").Text(), tid(doc, "flash").Text())
	}
}

func TestGroupsCRUD(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	e.seed()
	r := e.post("/groups", url.Values{"id": {"team-a"}, "name": {"Team A"}, "description": {"first"}}, false)
	wantStatus(t, r, http.StatusSeeOther)
	if r.Header.Get("Location") != "/groups/team-a" {
		t.Errorf("Location %q", r.Header.Get("Location"))
	}
	g, err := e.st.GetGroup(t.Context(), "team-a")
	if err != nil || g.Name != "Team A" || g.Description != "first" {
		t.Fatalf("group %+v %v", g, err)
	}
	list := e.get("/groups", false).doc(t)
	if tid(list, "group-row").Length() != 2 {
		t.Errorf("%d group rows", tid(list, "group-row").Length())
	}

	// Invalid and duplicate input keep what was typed.
	r = e.post("/groups", url.Values{"id": {"team-b"}, "name": {"  "}, "description": {"typed"}}, true)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	doc := r.doc(t)
	if tid(doc, "error-name").Text() != "must not be empty" || tid(doc, "field-description").Text() != "typed" || attr(tid(doc, "field-id"), "value") != "team-b" {
		t.Errorf("422 form: %.500s", r.body)
	}
	r = e.post("/groups", url.Values{"id": {"team-a"}, "name": {"Again"}}, false)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if !strings.Contains(tid(r.doc(t), "error-id").Text(), "already exists") {
		t.Error("duplicate id message")
	}

	r = e.post("/groups/team-a", url.Values{"name": {"Team A+"}, "description": {"second"}}, true)
	wantStatus(t, r, http.StatusOK)
	if r.Header.Get("HX-Redirect") != "/groups/team-a" {
		t.Error("update HX-Redirect")
	}
	if g, _ = e.st.GetGroup(t.Context(), "team-a"); g.Name != "Team A+" || g.Description != "second" {
		t.Errorf("updated %+v", g)
	}

	// A group with services cannot go; the confirmation says why.
	r = e.post("/groups/shop/delete", nil, true)
	wantStatus(t, r, http.StatusConflict)
	if !strings.Contains(tid(r.doc(t), "form-error").Text(), "still has services") || strings.Contains(r.body, "<html") {
		t.Errorf("conflict answer %.300s", r.body)
	}
	wantStatus(t, e.post("/groups/team-a/delete", nil, false), http.StatusSeeOther)
	if _, err := e.st.GetGroup(t.Context(), "team-a"); gatehouse.KindOf(err) != gatehouse.KindNotFound {
		t.Error("group not deleted")
	}
	wantStatus(t, e.get("/groups/team-a", false), http.StatusNotFound)
}

func TestServicesCRUD(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	e.seed()
	form := url.Values{"id": {"users"}, "name": {"Users"}, "groupId": {"shop"}, "subdomain": {"users"}, "env": {"prod"},
		"domain": {"example.com"}, "root": {"/v1"}, "matchingRoot": {"/users"}, "enabled": {"true"}, "sendOtoroshiHeadersBack": {"true"},
		"targetHost": {"10.0.0.1:80", "", "10.0.0.2:443"}, "targetScheme": {"http", "http", "https"},
		"publicPatterns": {"/health\n\n  /docs/.*  \n"}, "privatePatterns": {""}}
	r := e.post("/services", form, false)
	wantStatus(t, r, http.StatusSeeOther)
	s, err := e.st.GetService(t.Context(), "users")
	if err != nil {
		t.Fatal(err)
	}
	wantTargets := []gatehouse.Target{{Host: "10.0.0.1:80", Scheme: "http"}, {Host: "10.0.0.2:443", Scheme: "https"}}
	if s.Name != "Users" || s.GroupID != "shop" || s.Host() != "users.example.com" || s.Root != "/v1" || s.MatchingRoot == nil ||
		*s.MatchingRoot != "/users" || !s.Enabled || !slices.Equal(s.Targets, wantTargets) ||
		!slices.Equal(s.PublicPatterns, []string{"/health", "/docs/.*"}) || len(s.PrivatePatterns) != 0 || !s.SendOtoroshiHeadersBack || s.ForceHTTPS {
		t.Errorf("created %+v", s)
	}

	// Invalid: the message sits beside the field, the rows typed stay.
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("id", "users2")
	bad.Set("domain", "Not A Domain")
	r = e.post("/services", bad, true)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	doc := r.doc(t)
	if !strings.Contains(tid(doc, "error-domain").Text(), "may hold only") || attr(tid(doc, "field-domain"), "value") != "Not A Domain" {
		t.Errorf("domain error: %q", tid(doc, "error-domain").Text())
	}
	if hosts := doc.Find(`input[name="targetHost"]`); hosts.Length() != 3 || attr(hosts.Eq(2), "value") != "10.0.0.2:443" {
		t.Errorf("target rows not kept: %d", hosts.Length())
	}
	bad.Set("domain", "example.com")
	bad.Set("groupId", "missing")
	r = e.post("/services", bad, false)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if !strings.Contains(tid(r.doc(t), "error-groupId").Text(), "does not exist") {
		t.Error("group error")
	}

	// "Add target" redraws the form with exactly one more row, focused, and
	// saves nothing; "Remove" takes that row away.
	bad.Set("_action", "add-targets")
	r = e.post("/services", bad, true)
	wantStatus(t, r, http.StatusOK)
	hosts := r.doc(t).Find(`input[name="targetHost"]`)
	if hosts.Length() != 4 {
		t.Errorf("%d target rows after add, want 4", hosts.Length())
	}
	if _, ok := hosts.Eq(3).Attr("autofocus"); !ok {
		t.Error("the added row does not get the focus")
	}
	bad.Set("_action", "remove-targets-0")
	r = e.post("/services", bad, false)
	wantStatus(t, r, http.StatusOK)
	if hosts := r.doc(t).Find(`input[name="targetHost"]`); hosts.Length() != 2 || attr(hosts.Eq(0), "value") != "" || attr(hosts.Eq(1), "value") != "10.0.0.2:443" {
		t.Errorf("after removing row 1: %d rows", hosts.Length())
	}
	if _, err := e.st.GetService(t.Context(), "users2"); gatehouse.KindOf(err) != gatehouse.KindNotFound {
		t.Error("a row button saved the service")
	}

	// Update keeps what the form does not show (plugins) and saves the headers it shows.
	s.Plugins = []gatehouse.PluginRef{}
	form.Set("name", "Users v2")
	form.Del("enabled")
	form["additionalHeadersKey"] = []string{"X-Team", ""}
	form["additionalHeadersValue"] = []string{"a", ""}
	r = e.post("/services/users", form, false)
	wantStatus(t, r, http.StatusSeeOther)
	s, _ = e.st.GetService(t.Context(), "users")
	if s.Name != "Users v2" || s.Enabled || s.AdditionalHeaders["X-Team"] != "a" || len(s.AdditionalHeaders) != 1 {
		t.Errorf("updated %+v", s)
	}
	if doc := e.get("/services/users", false).doc(t); tid(doc, "service-host").Text() != "users.example.com" {
		t.Error("service page host")
	}
	r = e.post("/services/users/delete", nil, false)
	wantStatus(t, r, http.StatusSeeOther)
	if _, err := e.st.GetService(t.Context(), "users"); gatehouse.KindOf(err) != gatehouse.KindNotFound {
		t.Error("service not deleted")
	}
}

var wasmBytes = []byte("\x00asm\x01\x00\x00\x00")

func TestPlugins(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	_, s, _ := e.seed()

	r := e.postMultipart("/plugins", map[string]string{"name": "", "memoryLimitPages": "128", "timeoutMs": "50", "poolSize": "4"}, "auth.wasm", wasmBytes, false)
	wantStatus(t, r, http.StatusSeeOther)
	r = e.postMultipart("/plugins", map[string]string{"name": "Second", "memoryLimitPages": "256", "timeoutMs": "100", "poolSize": "8"}, "x.wasm", wasmBytes, true)
	wantStatus(t, r, http.StatusOK)
	plugins, _ := e.st.ListPlugins(t.Context())
	if len(plugins) != 2 || plugins[0].Name != "auth" || plugins[0].MemoryLimitPages != 128 || plugins[0].TimeoutMs != 50 || plugins[0].PoolSize != 4 || plugins[1].Name != "Second" {
		t.Fatalf("plugins %+v", plugins)
	}
	doc := e.get("/plugins", false).doc(t)
	row := tid(doc, "plugin-row").First()
	if row.Find(`[data-testid="plugin-abi"]`).Text() != "http-wasm" || attr(row.Find(`[data-testid="plugin-sha256"]`), "title") != plugins[0].SHA256 {
		t.Error("abi or sha256 not shown")
	}

	// A file that is not wasm, or no file at all: 422 beside the file input.
	for _, hx := range []bool{true, false} {
		r = e.postMultipart("/plugins", map[string]string{"name": "typed", "memoryLimitPages": "256", "timeoutMs": "100", "poolSize": "8"}, "bad.wasm", []byte("MZ"), hx)
		wantStatus(t, r, http.StatusUnprocessableEntity)
		if !strings.Contains(tid(r.doc(t), "error-wasm").Text(), "not a WebAssembly module") || attr(tid(r.doc(t), "field-name"), "value") != "typed" {
			t.Errorf("bad wasm answer: %.300s", r.body)
		}
	}
	r = e.postMultipart("/plugins", map[string]string{"name": "n", "memoryLimitPages": "0", "timeoutMs": "100", "poolSize": "8"}, "a.wasm", wasmBytes, true)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if !strings.Contains(tid(r.doc(t), "error-memoryLimitPages").Text(), "between") {
		t.Errorf("limit error: %.300s", r.body)
	}
	r = e.postMultipart("/plugins", map[string]string{"name": "n", "memoryLimitPages": "1", "timeoutMs": "1", "poolSize": "1"}, "", nil, true)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if tid(r.doc(t), "error-wasm").Length() != 1 {
		t.Error("missing file not reported")
	}

	// Attach both in an order given by the position fields.
	sp := "/services/" + s.ID + "/plugins"
	r = e.post(sp, url.Values{"position": {"2", "1", "3"}, "ref": {plugins[0].ID, plugins[1].ID, ""},
		"config": {"cfg-a", "cfg-b", ""}, "failOpen": {"1"}}, false)
	wantStatus(t, r, http.StatusSeeOther)
	svc, _ := e.st.GetService(t.Context(), s.ID)
	want := []gatehouse.PluginRef{{Ref: plugins[1].ID, Config: "cfg-b", FailOpen: true}, {Ref: plugins[0].ID, Config: "cfg-a"}}
	if !slices.Equal(svc.Plugins, want) {
		t.Errorf("plugins %+v, want %+v", svc.Plugins, want)
	}
	doc = e.get(sp, false).doc(t)
	if rows := tid(doc, "plugin-attachment"); rows.Length() != 3 || attr(rows.First().Find("option[selected]"), "value") != plugins[1].ID {
		t.Error("attachment form does not show the saved order")
	}
	r = e.post(sp, url.Values{"position": {"x"}, "ref": {plugins[0].ID}, "config": {"c"}}, true)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if !strings.Contains(tid(r.doc(t), "error-plugins").Text(), "whole number") {
		t.Error("bad position")
	}

	// An attached plugin cannot be deleted; a detached one can.
	r = e.post("/plugins/"+plugins[0].ID+"/delete", nil, false)
	wantStatus(t, r, http.StatusConflict)
	wantStatus(t, e.post(sp, url.Values{"position": {"1"}, "ref": {""}, "config": {""}}, false), http.StatusSeeOther)
	wantStatus(t, e.post("/plugins/"+plugins[0].ID+"/delete", nil, false), http.StatusSeeOther)
	if ps, _ := e.st.ListPlugins(t.Context()); len(ps) != 1 {
		t.Errorf("%d plugins left", len(ps))
	}
}

// failingBackend makes the service list fail with an internal error.
type failingBackend struct{ *testBackend }

func (failingBackend) AllServices(context.Context) ([]gatehouse.Service, error) {
	return nil, errors.New("disk on fire at /var/secret/path")
}

func TestInternalErrorNotShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	r2 := mux.NewRouter()
	New(Config{Backend: failingBackend{e.b}, Now: e.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Register(r2)
	srv := httptest.NewServer(r2)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/groups", nil)
	for _, c := range e.client.Jar.Cookies(e.srvURL()) {
		req.AddCookie(c)
	}
	r := e.do(req)
	wantStatus(t, r, http.StatusOK) // the sidebar failing does not break the page
	req, _ = http.NewRequest("GET", srv.URL+"/services", nil)
	for _, c := range e.client.Jar.Cookies(e.srvURL()) {
		req.AddCookie(c)
	}
	r = e.do(req)
	wantStatus(t, r, http.StatusInternalServerError)
	if strings.Contains(r.body, "disk on fire") || strings.Contains(r.body, "/var/secret") {
		t.Error("internal error text shown")
	}
	if !strings.Contains(r.body, "Something went wrong") {
		t.Error("no error page")
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	for _, p := range []string{"/services/nope", "/services/nope/apikeys", "/groups/nope/edit", "/no/such/page"} {
		r := e.get(p, false)
		wantStatus(t, r, http.StatusNotFound)
		if tid(r.doc(t), "error-page").Length() != 1 {
			t.Errorf("%s: no error page", p)
		}
	}
}

// The blocker of issue 10: with JavaScript on, htmx sends the anti-forgery
// token in a header and the form in the body; the session middleware must
// still parse the body, or "Save plugins" detaches every plugin.
func TestSavePluginsWithTokenInHeader(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	_, s, _ := e.seed()
	p := gatehouse.DefaultPlugin()
	p.Name = "auth"
	if err := e.st.CreatePlugin(t.Context(), &p, wasmBytes); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"position": {"1", "2"}, "ref": {p.ID, ""}, "config": {"cfg", ""}, "failOpen": {"0"}}
	req, _ := http.NewRequest("POST", e.srv.URL+"/services/"+s.ID+"/plugins", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", e.csrf)
	r := e.do(req)
	wantStatus(t, r, http.StatusOK)
	got, _ := e.st.GetService(t.Context(), s.ID)
	want := []gatehouse.PluginRef{{Ref: p.ID, Config: "cfg", FailOpen: true}}
	if !slices.Equal(got.Plugins, want) {
		t.Fatalf("plugins after a save with the token in the header: %+v, want %+v", got.Plugins, want)
	}
	// A body without the form's rows is refused, never read as "no plugins".
	req, _ = http.NewRequest("POST", e.srv.URL+"/services/"+s.ID+"/plugins", strings.NewReader(""))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", e.csrf)
	wantStatus(t, e.do(req), http.StatusBadRequest)
	if got, _ = e.st.GetService(t.Context(), s.ID); !slices.Equal(got.Plugins, want) {
		t.Fatalf("an empty post changed the plugins to %+v", got.Plugins)
	}
}

// A form reports every invalid field at once, the first one focused.
func TestEveryErrorAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	_, s, _ := e.seed()
	r := e.post("/services/"+s.ID+"/apikeys", url.Values{"clientName": {"x"}, "clientId": {"bad id"}, "clientSecret": {""},
		"throttlingQuota": {"-1"}, "dailyQuota": {"abc"}, "monthlyQuota": {"-3"}, "validUntil": {"tomorrow"},
		"metadataKey": {""}, "metadataValue": {"orphan"}}, false)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	doc := r.doc(t)
	for _, f := range []string{"clientId", "clientSecret", "throttlingQuota", "dailyQuota", "monthlyQuota", "validUntil", "metadata"} {
		if tid(doc, "error-"+f).Length() != 1 {
			t.Errorf("no message for %s", f)
		}
	}
	if _, ok := tid(doc, "field-clientId").Attr("autofocus"); !ok {
		t.Error("the first invalid field (clientId) is not focused")
	}
	if n := doc.Find("[autofocus]").Length(); n != 1 {
		t.Errorf("%d elements with autofocus, want 1", n)
	}
	r = e.post("/services", url.Values{"name": {""}, "env": {"Prod!"}, "domain": {""}, "root": {"x"}, "matchingRoot": {"y"},
		"publicPatterns": {"("}, "ipFiltering.blacklist": {"nope"}, "additionalHeadersKey": {"bad header"}, "additionalHeadersValue": {"v"},
		"groupId": {"shop"}}, false)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	doc = r.doc(t)
	for _, f := range []string{"name", "env", "targets", "root", "matchingRoot", "publicPatterns", "ipFiltering.blacklist", "additionalHeaders"} {
		if tid(doc, "error-"+f).Length() != 1 {
			t.Errorf("no message for %s", f)
		}
	}
}

// actorBackend records the actor each group write carries.
type actorBackend struct {
	*testBackend
	mu     sync.Mutex
	actors []string
}

func (b *actorBackend) CreateGroup(ctx context.Context, g *gatehouse.Group) error {
	b.mu.Lock()
	b.actors = append(b.actors, gatehouse.ActorOf(ctx))
	b.mu.Unlock()
	return b.testBackend.CreateGroup(ctx, g)
}

// A dashboard write carries its user as the actor of the change log.
func TestWritesCarryTheUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.login()
	ab := &actorBackend{testBackend: e.b}
	r2 := mux.NewRouter()
	New(Config{Backend: ab, Now: e.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Register(r2)
	srv := httptest.NewServer(r2)
	defer srv.Close()
	form := url.Values{"csrf": {e.csrf}, "id": {"g1"}, "name": {"G1"}}
	req, _ := http.NewRequest("POST", srv.URL+"/groups", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range e.client.Jar.Cookies(e.srvURL()) {
		req.AddCookie(c)
	}
	wantStatus(t, e.do(req), http.StatusSeeOther)
	if !slices.Equal(ab.actors, []string{gatehouse.UserActor(testUser)}) {
		t.Errorf("actors %q, want %q", ab.actors, gatehouse.UserActor(testUser))
	}
}
