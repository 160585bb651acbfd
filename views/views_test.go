package views

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/a-h/templ"

	"gatehouse"
	"gatehouse/assets"
)

// render renders c with a CSRF token in the context and parses the result.
func render(t *testing.T, c templ.Component) (*goquery.Document, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(WithCSRF(context.Background(), "tok-123"), &buf); err != nil {
		t.Fatalf("render: %v", err)
	}
	html := buf.String()
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(html))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return doc, html
}

func tid(doc *goquery.Document, id string) *goquery.Selection {
	return doc.Find(`[data-testid="` + id + `"]`)
}

func mustOne(t *testing.T, doc *goquery.Document, id string) *goquery.Selection {
	t.Helper()
	s := tid(doc, id)
	if s.Length() != 1 {
		t.Fatalf("data-testid=%q: found %d elements, want 1", id, s.Length())
	}
	return s
}

func attr(s *goquery.Selection, name string) string {
	v, _ := s.Attr(name)
	return v
}

var svc = gatehouse.Service{ID: "svc1", GroupID: "grp1", Name: "Orders API", Env: "prod", Subdomain: "orders", Domain: "example.com",
	Targets: []gatehouse.Target{{Host: "127.0.0.1:9001", Scheme: "http"}}, Root: "/", Enabled: true}

func TestPageLayout(t *testing.T) {
	t.Parallel()
	shell := Shell{Title: "All services", Nav: NavServices, User: "admin", Search: "ord", Sidebar: []gatehouse.Service{svc}}
	doc, html := render(t, Page(shell, ErrorPage(404, "nothing here")))

	if !strings.HasPrefix(html, "<!doctype html>") {
		t.Errorf("page does not start with a doctype: %.40q", html)
	}
	if got := attr(doc.Find(`script[src*="htmx"]`), "src"); got != assets.Path("htmx.min.js") || !strings.Contains(got, "/assets/htmx.") {
		t.Errorf("htmx script src = %q, want the hashed %q", got, assets.Path("htmx.min.js"))
	}
	if doc.Find(`script[src^="http"], link[href^="http"]`).Length() != 0 {
		t.Error("page loads something from another origin (no CDN allowed)")
	}
	cfg := attr(doc.Find(`meta[name="htmx-config"]`), "content")
	if !strings.Contains(cfg, `"code":"422","swap":true`) {
		t.Errorf("htmx-config does not swap 422 answers: %s", cfg)
	}
	if got := attr(doc.Find("body"), "hx-headers"); got != `{"X-CSRF-Token":"tok-123"}` {
		t.Errorf("body hx-headers = %q", got)
	}
	all := mustOne(t, doc, "nav-all-services")
	if all.Text() != "All services" || attr(all, "href") != "/services" || attr(all, "aria-current") != "page" {
		t.Errorf("All services link: text %q href %q aria-current %q", all.Text(), attr(all, "href"), attr(all, "aria-current"))
	}
	search := mustOne(t, doc, "sidebar-search")
	for k, want := range map[string]string{"hx-get": "/search", "hx-trigger": "input changed delay:200ms, search",
		"hx-target": "#search-results", "name": "q", "value": "ord"} {
		if got := attr(search, k); got != want {
			t.Errorf("search box %s = %q, want %q", k, got, want)
		}
	}
	if attr(search.Closest("form"), "action") != "/services" {
		t.Error("search box is not in a form that works without JavaScript")
	}
	if r := tid(doc, "search-result"); r.Length() != 1 || r.Text() != "Orders API" || attr(r, "href") != "/services/svc1" {
		t.Errorf("sidebar results: %d, %q", r.Length(), r.Text())
	}
	if tid(doc, "current-user").Text() != "admin" {
		t.Error("current user not shown")
	}
	if v := attr(tid(doc, "logout").Closest("form").Find(`input[name="csrf"]`), "value"); v != "tok-123" {
		t.Errorf("logout form csrf = %q", v)
	}
	if tid(doc, "nav-service-keys").Length() != 0 {
		t.Error("service entries shown without a service")
	}
	if mustOne(t, doc, "main").Find(`[data-testid="error-message"]`).Text() != "nothing here" {
		t.Error("content not inside #main")
	}
}

func TestPageServiceSidebar(t *testing.T) {
	t.Parallel()
	s := svc
	doc, _ := render(t, Page(Shell{Title: "x", Nav: NavServiceKeys, Service: &s}, ErrorPage(404, "x")))
	keys := mustOne(t, doc, "nav-service-keys")
	if keys.Text() != "API keys" || attr(keys, "href") != "/services/svc1/apikeys" || attr(keys, "aria-current") != "page" {
		t.Errorf("API keys entry: %q %q %q", keys.Text(), attr(keys, "href"), attr(keys, "aria-current"))
	}
	if attr(mustOne(t, doc, "nav-all-services"), "aria-current") != "" {
		t.Error("All services highlighted on a key page")
	}
}

func TestSearchResultsEmpty(t *testing.T) {
	t.Parallel()
	doc, _ := render(t, SearchResults(nil, "zzz"))
	if got := mustOne(t, doc, "search-empty").Text(); !strings.Contains(got, "zzz") {
		t.Errorf("empty message = %q", got)
	}
}

func keysData() KeysData {
	return KeysData{
		Service: svc, GroupName: "Shop",
		Rows: []KeyRow{
			{Scope: KeyScope{"svc1"}, Key: gatehouse.APIKey{ClientID: "cid1", ClientSecret: "s3cret", ClientName: "Mobile app", Enabled: true,
				ThrottlingQuota: 100, DailyQuota: 1000, MonthlyQuota: 30000},
				Usage: gatehouse.QuotaUsage{CurrentCallsPerDay: 250, CurrentCallsPerMonth: 4000}},
			{Scope: KeyScope{"svc1"}, Key: gatehouse.APIKey{ClientID: "cid2", ClientSecret: "other", Enabled: false, DailyQuota: 0, MonthlyQuota: 5}},
		},
		Pager: Pager{Page: 1, PageSize: 50, Total: 2, Base: "/services/svc1/apikeys"},
	}
}

func TestKeysPage(t *testing.T) {
	t.Parallel()
	doc, _ := render(t, KeysPage(keysData()))
	rows := tid(doc, "key-row")
	if rows.Length() != 2 {
		t.Fatalf("%d key rows, want 2", rows.Length())
	}
	r := rows.First()
	if attr(r, "id") != "key-cid1" || attr(r, "data-client-id") != "cid1" {
		t.Errorf("row id %q data-client-id %q", attr(r, "id"), attr(r, "data-client-id"))
	}
	if got := r.Find(`[data-testid="key-name"]`).Text(); got != "Mobile app" {
		t.Errorf("name = %q", got)
	}
	if got := r.Find(`[data-testid="key-client-id"]`).Text(); got != "cid1" {
		t.Errorf("client id = %q", got)
	}
	sec := r.Find(`[data-testid="key-secret"]`)
	if goquery.NodeName(sec) != "details" || sec.AttrOr("open", "closed") != "closed" {
		t.Error("secret is not hidden in a closed <details>")
	}
	if sec.Find(`[data-testid="key-secret-value"]`).Text() != "s3cret" || attr(sec.Find(`[data-testid="key-secret-copy"]`), "data-copy") != "secret-cid1" {
		t.Error("secret value or copy button missing")
	}
	tog := r.Find(`[data-testid="key-toggle"]`)
	if attr(tog, "role") != "switch" || attr(tog, "aria-checked") != "true" || !strings.Contains(attr(tog, "aria-label"), "Mobile app") || attr(tog, "id") != "toggle-cid1" {
		t.Errorf("toggle role %q aria-checked %q label %q id %q", attr(tog, "role"), attr(tog, "aria-checked"), attr(tog, "aria-label"), attr(tog, "id"))
	}
	if got := r.Find(`[data-testid="status"]`).Text(); got != "enabled" {
		t.Errorf("status %q", got)
	}
	form := tog.Closest("form")
	if attr(form, "hx-post") != "/services/svc1/apikeys/cid1/toggle" || attr(form, "action") != "/services/svc1/apikeys/cid1/toggle" ||
		attr(form, "hx-target") != "closest tr" || attr(form, "method") != "post" {
		t.Errorf("toggle form: %v", form.Nodes[0].Attr)
	}
	if attr(form.Find(`input[name="enabled"]`), "value") != "false" || attr(form.Find(`input[name="csrf"]`), "value") != "tok-123" {
		t.Error("toggle of an enabled key must post enabled=false with the csrf token")
	}
	if got := r.Find(`[data-testid="usage-daily"]`).Text(); got != "250" {
		t.Errorf("daily usage = %q", got)
	}
	if got := r.Find(`[data-testid="quota-daily"]`).Text(); !strings.Contains(got, "1,000") {
		t.Errorf("daily quota text = %q", got)
	}
	if m := r.Find(`[data-testid="quota-daily"] meter`); attr(m, "value") != "250" || attr(m, "max") != "1000" {
		t.Errorf("daily meter value %q max %q", attr(m, "value"), attr(m, "max"))
	}
	if got := r.Find(`[data-testid="usage-monthly"]`).Text(); got != "4,000" {
		t.Errorf("monthly usage = %q", got)
	}
	if got := r.Find(`[data-testid="quota-throttling"]`).Text(); !strings.Contains(got, "100/s") {
		t.Errorf("throttling = %q", got)
	}
	second := rows.Eq(1)
	if attr(second.Find(`[data-testid="key-toggle"]`), "data-enabled") != "false" ||
		attr(second.Find(`input[name="enabled"]`), "value") != "true" {
		t.Error("disabled key's toggle must offer enabling")
	}
	if attr(mustOne(t, doc, "new-key"), "href") != "/services/svc1/apikeys/new" {
		t.Error("new key link")
	}
	if tid(doc, "pager").Length() != 0 {
		t.Error("pager shown for a single page")
	}
}

func TestKeyFormCreateAndErrors(t *testing.T) {
	t.Parallel()
	f := KeyForm{Scope: KeyScope{svc.ID}, Service: &svc, ClientName: "Mobile", ClientID: "genid", ClientSecret: "gensecret",
		Throttling: "10", Daily: "abc", Monthly: "100", Enabled: true,
		Errors: FormErrors{"dailyQuota": "must be a whole number"}}
	doc, _ := render(t, KeyFormEl(f))
	form := mustOne(t, doc, "key-form")
	if attr(form, "action") != "/services/svc1/apikeys" || attr(form, "hx-post") != "/services/svc1/apikeys" || attr(form, "hx-swap") != "outerHTML" {
		t.Errorf("form attrs: %v", form.Nodes[0].Attr)
	}
	if got := strings.TrimSpace(mustOne(t, doc, "submit").Text()); got != "Create API key" {
		t.Errorf("submit = %q", got)
	}
	for field, want := range map[string]string{"clientName": "Mobile", "clientId": "genid", "clientSecret": "gensecret",
		"throttlingQuota": "10", "dailyQuota": "abc", "monthlyQuota": "100"} {
		if got := attr(mustOne(t, doc, "field-"+field), "value"); got != want {
			t.Errorf("field %s = %q, want %q (typed input must be kept)", field, got, want)
		}
	}
	if _, ro := mustOne(t, doc, "field-clientId").Attr("readonly"); ro {
		t.Error("client id read-only on create")
	}
	if attr(mustOne(t, doc, "field-clientSecret"), "type") != "password" {
		t.Error("secret field not hidden")
	}
	if _, ok := mustOne(t, doc, "field-enabled").Attr("checked"); !ok {
		t.Error("active toggle not checked")
	}
	for _, b := range []string{"regenerate-clientId", "regenerate-clientSecret"} {
		btn := mustOne(t, doc, b)
		if attr(btn, "type") != "submit" || attr(btn, "name") != "_action" || attr(btn, "value") != b {
			t.Errorf("%s button: %v", b, btn.Nodes[0].Attr)
		}
	}
	msg := mustOne(t, doc, "error-dailyQuota")
	if msg.Text() != "must be a whole number" {
		t.Errorf("error text = %q", msg.Text())
	}
	if msg.Parent().Find(`[data-testid="field-dailyQuota"]`).Length() != 1 {
		t.Error("error is not beside its field")
	}
	if !msg.Parent().HasClass("invalid") || attr(mustOne(t, doc, "field-dailyQuota"), "aria-invalid") != "true" {
		t.Error("invalid field not marked")
	}
	if tid(doc, "error-monthlyQuota").Length() != 0 || tid(doc, "form-error").Length() != 0 || tid(doc, "form-errors").Length() != 1 {
		t.Error("errors shown for valid fields")
	}
}

func TestKeyFormEdit(t *testing.T) {
	t.Parallel()
	doc, _ := render(t, KeyFormEl(KeyForm{Scope: KeyScope{svc.ID}, Service: &svc, Edit: true, ClientID: "cid1", ClientSecret: "s"}))
	if got := strings.TrimSpace(mustOne(t, doc, "submit").Text()); got != "Update API key" {
		t.Errorf("submit = %q", got)
	}
	if _, ro := mustOne(t, doc, "field-clientId").Attr("readonly"); !ro {
		t.Error("client id editable on edit")
	}
	if attr(mustOne(t, doc, "key-form"), "action") != "/services/svc1/apikeys/cid1" {
		t.Error("edit form posts elsewhere")
	}
	if tid(doc, "regenerate-clientId").Length() != 0 || tid(doc, "regenerate-clientSecret").Length() != 1 {
		t.Error("edit form: only the secret can be regenerated")
	}
}

func TestFormErrorForHiddenField(t *testing.T) {
	t.Parallel()
	errs := ErrorsFrom(gatehouse.Invalid("rotation", "bad"), KeyFormFields...)
	doc, _ := render(t, KeyFormEl(KeyForm{Scope: KeyScope{svc.ID}, Service: &svc, Errors: errs}))
	if got := mustOne(t, doc, "form-error").Text(); got != "rotation: bad" {
		t.Errorf("form error = %q", got)
	}
}

func TestConfirmDelete(t *testing.T) {
	t.Parallel()
	doc, _ := render(t, ConfirmDeletePage(ConfirmDelete{Kind: "API key", Name: "Mobile app", Action: "/services/svc1/apikeys/cid1/delete", CancelURL: "/services/svc1/apikeys"}))
	if got := mustOne(t, doc, "confirm-delete-name").Text(); got != "Mobile app" {
		t.Errorf("name = %q", got)
	}
	del := mustOne(t, doc, "confirm-delete")
	if strings.TrimSpace(del.Text()) != "Delete" || attr(del, "type") != "submit" {
		t.Error("Delete button")
	}
	form := del.Closest("form")
	if attr(form, "method") != "post" || attr(form, "action") != "/services/svc1/apikeys/cid1/delete" || attr(form.Find(`input[name="csrf"]`), "value") != "tok-123" {
		t.Errorf("delete form: %v", form.Nodes[0].Attr)
	}
	if attr(mustOne(t, doc, "cancel-delete"), "href") != "/services/svc1/apikeys" {
		t.Error("cancel link")
	}
}

func TestUsageChart(t *testing.T) {
	t.Parallel()
	days := []DayCount{{"2025-01-01", 0}, {"2025-01-02", 50}, {"2025-01-03", 100}}
	doc, _ := render(t, UsageChart(days))
	bars := tid(doc, "usage-bar")
	if bars.Length() != 3 {
		t.Fatalf("%d bars", bars.Length())
	}
	h := func(i int) string { return attr(bars.Eq(i), "height") }
	if h(0) != "0" || h(2) != "130" || h(1) != "65" {
		t.Errorf("bar heights %s %s %s, want 0 65 130", h(0), h(1), h(2))
	}
	if attr(bars.Eq(1), "data-day") != "2025-01-02" || attr(bars.Eq(1), "data-count") != "50" {
		t.Error("bar data attributes")
	}
	if !strings.Contains(bars.Eq(2).Find("title").Text(), "100 calls") {
		t.Error("bar tooltip")
	}
}

func TestKeyDetailCurl(t *testing.T) {
	t.Parallel()
	d := KeyDetailData{Service: &svc, Scope: KeyScope{svc.ID}, Key: gatehouse.APIKey{ClientID: "cid1", ClientName: "Mobile"},
		Curl: []CurlLine{{Label: "Basic", Command: "curl -u 'a:b' x", Masked: "curl -u 'a:••••••••' x"}}, Days: []DayCount{{"2025-01-01", 3}}}
	doc, _ := render(t, KeyDetailPage(d))
	if got := mustOne(t, doc, "curl-line").Text(); got != "curl -u 'a:••••••••' x" {
		t.Errorf("masked curl line = %q", got)
	}
	if got := mustOne(t, doc, "curl-full").Text(); got != "curl -u 'a:b' x" {
		t.Errorf("curl line = %q", got)
	}
	if attr(mustOne(t, doc, "curl-copy"), "data-copy") != attr(mustOne(t, doc, "curl-full"), "id") {
		t.Error("copy button not wired to its line")
	}
	mustOne(t, doc, "usage-svg")
}

func TestServiceForm(t *testing.T) {
	t.Parallel()
	f := ServiceForm{Name: "S", Domain: "Bad Domain", Targets: []TargetRow{{Host: "a:1", Scheme: "https"}},
		Groups: []gatehouse.Group{{ID: "g1", Name: "One"}, {ID: "g2", Name: "Two"}}, GroupID: "g2",
		PublicPatterns: "/public/.*\n/health", Errors: FormErrors{"domain": "may hold only a-z"}}
	doc, _ := render(t, ServiceFormEl(f))
	rows := tid(doc, "target-row")
	if rows.Length() != 1 || rows.Find(`[data-testid="remove-target"]`).Length() != 1 {
		t.Fatalf("%d target rows, want the one target with its Remove button", rows.Length())
	}
	if attr(rows.First().Find(`input[name="targetHost"]`), "value") != "a:1" ||
		attr(rows.First().Find(`option[selected]`), "value") != "https" {
		t.Error("first target row")
	}
	if attr(doc.Find(`select[name="groupId"] option[selected]`), "value") != "g2" {
		t.Error("group not selected")
	}
	if mustOne(t, doc, "field-publicPatterns").Text() != "/public/.*\n/health" {
		t.Errorf("patterns = %q", mustOne(t, doc, "field-publicPatterns").Text())
	}
	if mustOne(t, doc, "error-domain").Text() != "may hold only a-z" || attr(mustOne(t, doc, "field-domain"), "value") != "Bad Domain" {
		t.Error("domain error or typed value")
	}
	if strings.TrimSpace(mustOne(t, doc, "submit").Text()) != "Create service" {
		t.Error("submit text")
	}
}

func TestGroupFormAndList(t *testing.T) {
	t.Parallel()
	doc, _ := render(t, GroupFormEl(GroupForm{Edit: true, ID: "g1", Name: "", Errors: FormErrors{"name": "must not be empty"}}))
	if mustOne(t, doc, "error-name").Text() != "must not be empty" || strings.TrimSpace(mustOne(t, doc, "submit").Text()) != "Update group" {
		t.Error("group form")
	}
	doc, _ = render(t, GroupsPage(GroupsData{Groups: []gatehouse.Group{{ID: "g1", Name: "One"}}, Services: map[string]int{"g1": 3},
		Pager: Pager{Page: 1, PageSize: 50, Total: 1}}))
	row := mustOne(t, doc, "group-row")
	if row.Find(`[data-testid="group-link"]`).Text() != "One" || !strings.Contains(row.Text(), "3") {
		t.Error("group row")
	}
}

func TestPluginsPage(t *testing.T) {
	t.Parallel()
	sum := strings.Repeat("ab", 32)
	doc, _ := render(t, PluginsPage(PluginsData{
		Plugins: []gatehouse.Plugin{{ID: "p1", Name: "auth", SHA256: sum, ABI: "http-wasm", MemoryLimitPages: 256, TimeoutMs: 100, PoolSize: 8}},
		UsedBy:  map[string][]gatehouse.Service{"p1": {svc}},
		Form:    PluginForm{Errors: FormErrors{"wasm": "choose a file"}},
	}))
	row := mustOne(t, doc, "plugin-row")
	if row.Find(`[data-testid="plugin-abi"]`).Text() != "http-wasm" || attr(row.Find(`[data-testid="plugin-sha256"]`), "title") != sum {
		t.Error("abi or sha256")
	}
	if !strings.Contains(row.Text(), "Orders API") {
		t.Error("attachment not listed")
	}
	form := mustOne(t, doc, "plugin-form")
	if attr(form, "enctype") != "multipart/form-data" || attr(form, "hx-encoding") != "multipart/form-data" {
		t.Error("upload form is not multipart")
	}
	if mustOne(t, doc, "error-wasm").Text() != "choose a file" {
		t.Error("wasm error")
	}
}

func TestServicePluginsForm(t *testing.T) {
	t.Parallel()
	f := ServicePluginsForm{Service: svc, Rows: []PluginRow{{Position: "1", Ref: "p2", Config: "{}", FailOpen: true}},
		Plugins: []gatehouse.Plugin{{ID: "p1", Name: "one"}, {ID: "p2", Name: "two"}}}
	doc, _ := render(t, ServicePluginsFormEl(f))
	rows := tid(doc, "plugin-attachment")
	if rows.Length() != 2 {
		t.Fatalf("%d rows", rows.Length())
	}
	first := rows.First()
	if attr(first.Find("option[selected]"), "value") != "p2" || attr(first.Find(`input[name="config"]`), "value") != "{}" {
		t.Error("first row")
	}
	if _, ok := first.Find(`input[name="failOpen"]`).Attr("checked"); !ok {
		t.Error("failOpen")
	}
	if attr(rows.Eq(1).Find(`input[name="position"]`), "value") != "2" {
		t.Error("empty row position")
	}
}

func TestLoginPage(t *testing.T) {
	t.Parallel()
	doc, _ := render(t, LoginPage(LoginData{Username: "admin", Next: "/groups", Error: "Wrong username or password."}))
	if mustOne(t, doc, "login-error").Text() != "Wrong username or password." || attr(mustOne(t, doc, "login-username"), "value") != "admin" {
		t.Error("login error or username")
	}
	if attr(doc.Find(`input[name="next"]`), "value") != "/groups" || attr(mustOne(t, doc, "login-form"), "method") != "post" {
		t.Error("login form")
	}
}

func TestPager(t *testing.T) {
	t.Parallel()
	p := Pager{Page: 2, PageSize: 50, Total: 120, Base: "/services", Query: map[string][]string{"q": {"x y"}}}
	if p.PrevURL() != "/services?q=x+y" || p.NextURL() != "/services?page=3&q=x+y" || p.From() != 51 || p.To() != 100 {
		t.Errorf("prev %q next %q from %d to %d", p.PrevURL(), p.NextURL(), p.From(), p.To())
	}
	doc, _ := render(t, pager(p))
	if attr(mustOne(t, doc, "pager-next"), "href") != "/services?page=3&q=x+y" {
		t.Error("pager link")
	}
}

func TestQuotaLevel(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		used, limit int64
		want        string
	}{
		{0, 3, LevelOK}, {2, 3, LevelOK}, {3, 3, LevelFull}, {4, 3, LevelFull},
		{8, 10, LevelOK}, {9, 10, LevelWarn}, {899, 1000, LevelOK}, {900, 1000, LevelWarn},
		{0, 0, LevelFull}, {1, 1, LevelFull}, {0, 1, LevelOK},
		{9_000_000, 10_000_000, LevelWarn}, {8_999_999, 10_000_000, LevelOK},
	} {
		if got := QuotaLevel(c.used, c.limit); got != c.want {
			t.Errorf("QuotaLevel(%d, %d) = %s, want %s", c.used, c.limit, got, c.want)
		}
	}
}

func TestStatuses(t *testing.T) {
	t.Parallel()
	past, future := int64(1_000), int64(3_000)
	now := int64(2_000)
	for _, c := range []struct {
		k    gatehouse.APIKey
		want string
	}{
		{gatehouse.APIKey{Enabled: true}, StatusEnabled},
		{gatehouse.APIKey{Enabled: false}, StatusDisabled},
		{gatehouse.APIKey{Enabled: true, ValidUntil: &past}, StatusExpired},
		{gatehouse.APIKey{Enabled: false, ValidUntil: &past}, StatusDisabled},
		{gatehouse.APIKey{Enabled: true, ValidUntil: &future}, StatusEnabled},
	} {
		if got := KeyStatus(c.k, now); got != c.want {
			t.Errorf("KeyStatus(%+v) = %s, want %s", c.k, got, c.want)
		}
	}
	for _, c := range []struct {
		s    gatehouse.Service
		want string
	}{
		{gatehouse.Service{Enabled: true}, StatusEnabled},
		{gatehouse.Service{Enabled: false, MaintenanceMode: true}, StatusDisabled},
		{gatehouse.Service{Enabled: true, MaintenanceMode: true, BuildMode: true}, StatusMaintenance},
		{gatehouse.Service{Enabled: true, BuildMode: true}, StatusConstruction},
	} {
		if got := ServiceStatus(c.s); got != c.want {
			t.Errorf("ServiceStatus(%+v) = %s, want %s", c.s, got, c.want)
		}
	}
}

func TestAllKeysPage(t *testing.T) {
	t.Parallel()
	admin := gatehouse.APIKey{ClientID: "ops", ClientName: "Ops", Enabled: true, AuthorizedEntities: []string{"group_" + gatehouse.AdminGroupID}}
	past := int64(1)
	expired := gatehouse.APIKey{ClientID: "old", Enabled: true, ValidUntil: &past, AuthorizedEntities: []string{"group_shop"}}
	d := AllKeysData{Sort: gatehouse.SortName, Q: "o",
		Rows:  []KeyRow{{Key: admin, Wide: true, LastUsed: 1_700_000_000_000}, {Key: expired, Wide: true, NowMs: 2}},
		Pager: Pager{Page: 1, PageSize: 50, Total: 120, Base: "/apikeys", Query: map[string][]string{"q": {"o"}, "sort": {"name"}}}}
	doc, _ := render(t, AllKeysPage(d))
	rows := tid(doc, "key-row")
	if rows.Length() != 2 || rows.Eq(0).Find(`[data-testid="admin-key"]`).Length() != 1 || rows.Eq(1).Find(`[data-testid="admin-key"]`).Length() != 0 {
		t.Error("admin keys are not the ones marked")
	}
	if got := rows.Eq(1).Find(`[data-testid="status"]`).Text(); got != "expired" {
		t.Errorf("status of an expired key %q", got)
	}
	if got := rows.Eq(0).Find(`[data-testid="key-last-used"]`).Text(); got != "2023-11-14 22:13 UTC" {
		t.Errorf("last used %q", got)
	}
	if got := rows.Eq(1).Find(`[data-testid="key-last-used"]`).Text(); got != "never" {
		t.Errorf("never used: %q", got)
	}
	if attr(rows.Eq(0).Find(`[data-testid="key-name"]`), "href") != "/apikeys/ops" {
		t.Error("key link leaves All API keys")
	}
	if attr(doc.Find(`[data-testid="keys-sort"] option[selected]`), "value") != gatehouse.SortName {
		t.Error("sort not selected")
	}
	if got := attr(mustOne(t, doc, "pager-next"), "href"); got != "/apikeys?page=2&q=o&sort=name" {
		t.Errorf("next page %q keeps neither search nor sort", got)
	}
}

func TestKeyFormEveryField(t *testing.T) {
	t.Parallel()
	f := KeyForm{Scope: KeyScope{}, ClientID: "c", ClientSecret: "s", Description: "d", Entities: []string{"service_s1"},
		Groups:     []EntityChoice{{Entity: "group_g1", Label: "G1"}},
		Services:   []EntityChoice{{Entity: "service_s1", Label: "S1", Hint: "s1.test"}},
		ValidUntil: "2030-01-02T03:04", TimeZone: "Europe/Paris", Tags: "a, b", Metadata: []KVRow{{"k1", "v1"}, {"k2", "v2"}},
		ReadOnly: true, AllowClientIDOnly: true, FocusRow: -1,
		Errors: FormErrors{"metadata": "\"k1\" is given twice", "tags": "bad"}.Focus(KeyFormFields...)}
	doc, _ := render(t, KeyFormEl(f))
	if attr(mustOne(t, doc, "key-form"), "action") != "/apikeys" {
		t.Error("create from All API keys posts elsewhere")
	}
	checked := doc.Find(`[data-testid="entity-choice"]:checked`)
	if checked.Length() != 1 || attr(checked, "value") != "service_s1" {
		t.Error("authorized entities not ticked as given")
	}
	if attr(mustOne(t, doc, "field-validUntil"), "type") != "datetime-local" || attr(mustOne(t, doc, "field-validUntil"), "value") != "2030-01-02T03:04" {
		t.Error("validUntil is not a date-time picker holding the value")
	}
	if !strings.Contains(doc.Find("#hint-validUntil").Text(), "Europe/Paris") {
		t.Error("validUntil does not say its time zone")
	}
	if n := tid(doc, "metadata-row").Length(); n != 2 || attr(tid(doc, "metadata-key").Eq(1), "value") != "k2" || tid(doc, "metadata-remove").Length() != 2 {
		t.Errorf("%d metadata rows", n)
	}
	for _, id := range []string{"field-readOnly", "field-allowClientIdOnly"} {
		if _, ok := mustOne(t, doc, id).Attr("checked"); !ok {
			t.Errorf("%s not checked", id)
		}
	}
	// The first invalid field in the form's order gets the focus: tags comes before metadata.
	if _, ok := mustOne(t, doc, "field-tags").Attr("autofocus"); !ok || doc.Find("[autofocus]").Length() != 1 {
		t.Error("focus is not on the first invalid field alone")
	}
	if got := mustOne(t, doc, "form-errors").Text(); !strings.Contains(got, "2 fields") {
		t.Errorf("summary %q", got)
	}
}
