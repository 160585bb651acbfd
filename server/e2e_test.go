package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"gatehouse"
	"gatehouse/server/dashboard/browsertest"
)

// Dashboard credentials of the browser tests.
const (
	e2eUser     = "admin"
	e2ePassword = "correct horse battery staple"
)

// dashboardHarness is the real server on a real SQLite file with the real
// clock, its admin handler served on loopback and a dashboard user.
func dashboardHarness(t *testing.T) (*harness, *httptest.Server) {
	t.Helper()
	h := newHarness(t, func(c *Config) {
		c.Now = time.Now
		// Only the curl lines read it (the harness serves the gateway itself):
		// a realistic address makes them read as in production.
		c.ProxyAddr = "127.0.0.1:8080"
	})
	admin := httptest.NewServer(h.srv.Admin())
	t.Cleanup(admin.Close)
	hash, err := bcrypt.GenerateFromPassword([]byte(e2ePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.st.CreateUser(context.Background(), e2eUser, string(hash)); err != nil {
		t.Fatal(err)
	}
	return h, admin
}

// browser is one headless Chromium tab on the dashboard.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string // the admin listener's URL
}

const (
	desktopW, desktopH = browsertest.DesktopW, browsertest.DesktopH
	mobileW, mobileH   = browsertest.MobileW, browsertest.MobileH
	stepTimeout        = 15 * time.Second
)

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	ctx := browsertest.Start(t)
	b := &browser{t: t, ctx: ctx, base: base}
	return b
}

// do runs steps under one deadline and stops the test at the first failure.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// get runs one action that returns a value.
func get[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// tid selects elements by data-testid; more narrows it with a CSS suffix.
func tid(name string, more ...string) chromedp.CSS {
	return chromedp.CSS(`[data-testid="` + name + `"]` + strings.Join(more, ""))
}

// pageReady waits until sel is visible and the page's deferred scripts
// (htmx, app.js) have run, so a click goes through htmx as a user's would.
func pageReady(sel chromedp.CSS) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(sel),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`document.readyState === "complete" && !!window.htmx`, chromedp.WithPollingTimeout(stepTimeout))(ctx, t)
			return err
		}),
	)
}

// typeInto replaces an input's value with keystrokes, as a user types.
// The field is emptied by script: chromedp's SetValue reports a failure for
// "" (an empty string result reads back as undefined).
func typeInto(sel chromedp.CSS, text string) chromedp.Action[chromedp.Void] {
	clear := `document.querySelector(` + strconv.Quote(string(sel)) + `).value = ""`
	return chromedp.Steps(chromedp.WaitVisible(sel), chromedp.Evaluate[chromedp.Void](clear), chromedp.SendKeys(sel, text))
}

// until waits for a JavaScript condition on the current page.
func until(cond string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(stepTimeout))(ctx, t)
		return err
	})
}

func (b *browser) text(sel chromedp.CSS) string {
	b.t.Helper()
	return strings.TrimSpace(get(b, "text of "+string(sel), chromedp.Text(sel)))
}

func (b *browser) value(sel chromedp.CSS) string {
	b.t.Helper()
	return get(b, "value of "+string(sel), chromedp.Value(sel))
}

func (b *browser) attr(sel chromedp.CSS, name string) string {
	b.t.Helper()
	return get(b, name+" of "+string(sel), chromedp.AttributeValue(sel, name)).Value
}

// besideField checks that field's error message sits in the field's own
// box and that the input points to it for screen readers.
func (b *browser) besideField(field string) {
	b.t.Helper()
	js := `(() => { const e = document.querySelector('[data-testid="error-` + field + `"]'), box = e && e.closest(".field");
		const in_ = box && box.querySelector('[data-testid="field-` + field + `"]');
		return !!in_ && in_.getAttribute("aria-describedby") === e.id; })()`
	if !get(b, "error beside "+field, chromedp.Evaluate[bool](js)) {
		b.t.Errorf("the message of %s is not beside its input", field)
	}
}

func (b *browser) count(sel chromedp.CSS) int {
	b.t.Helper()
	return get(b, "count "+string(sel), chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(string(sel))+`).length`))
}

// login signs in through the form and lands on the services list.
func (b *browser) login() {
	b.t.Helper()
	b.do("open the dashboard", chromedp.Navigate(b.base+"/"), pageReady(tid("login-form")))
	b.do("sign in",
		typeInto(tid("login-username"), e2eUser),
		typeInto(tid("login-password"), e2ePassword),
		chromedp.Click(tid("login-submit")),
		pageReady(tid("services-table")),
	)
	if got := b.text(tid("current-user")); got != e2eUser {
		b.t.Errorf("signed in as %q, want %q", got, e2eUser)
	}
}

// gatewayCall calls the service through the gateway with Basic credentials.
func gatewayCall(h *harness, host, id, secret string) *http.Response {
	h.t.Helper()
	return h.call("GET", host, "/hello", basic(id, secret))
}

func wantAnswer(t *testing.T, what string, resp *http.Response, status int, msg string) {
	t.Helper()
	if resp.StatusCode != status || resp.Header.Get("Otoroshi-Error-Msg") != msg {
		t.Fatalf("%s: gateway answered %d %q, want %d %q", what, resp.StatusCode, resp.Header.Get("Otoroshi-Error-Msg"), status, msg)
	}
}

// minimalPlugin is the smallest module the plugin host accepts: it exports
// its memory, handle_request (returns 1: go on) and handle_response.
var minimalPlugin = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	// types: () -> i64, (i32, i32) -> ()
	0x01, 0x0a, 0x02, 0x60, 0x00, 0x01, 0x7e, 0x60, 0x02, 0x7f, 0x7f, 0x00,
	// functions: type 0, type 1
	0x03, 0x03, 0x02, 0x00, 0x01,
	// memory: one page
	0x05, 0x03, 0x01, 0x00, 0x01,
	// exports
	0x07, 0x2d, 0x03,
	0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00,
	0x0e, 'h', 'a', 'n', 'd', 'l', 'e', '_', 'r', 'e', 'q', 'u', 'e', 's', 't', 0x00, 0x00,
	0x0f, 'h', 'a', 'n', 'd', 'l', 'e', '_', 'r', 'e', 's', 'p', 'o', 'n', 's', 'e', 0x00, 0x01,
	// code: i64.const 1; nothing
	0x0a, 0x09, 0x02, 0x04, 0x00, 0x42, 0x01, 0x0b, 0x02, 0x00, 0x0b,
}

// TestDashboardEndToEnd walks through the dashboard in headless Chromium as
// an operator does: sign in, create a group, a service and an API key, use
// the key through the gateway, change its quota, switch it off, delete it.
func TestDashboardEndToEnd(t *testing.T) {
	h, admin := dashboardHarness(t)
	up := newUpstream(t)
	b := newBrowser(t, admin.URL)
	ctx := context.Background()

	b.login()

	// A group, through its form.
	b.do("create a group",
		chromedp.Click(tid("nav-groups")),
		pageReady(tid("new-group")),
		chromedp.Click(tid("new-group")),
		pageReady(tid("group-form")),
		typeInto(tid("field-name"), "Storefront"),
		typeInto(tid("field-id"), "storefront"),
		typeInto(tid("field-description"), "Public APIs of the shop"),
		chromedp.Click(tid("submit")),
		pageReady(tid("new-service")), // the new group's page
	)
	if _, err := h.st.GetGroup(ctx, "storefront"); err != nil {
		t.Fatalf("group not in the store: %v", err)
	}

	// Two services, so that the search has something to filter out.
	createService := func(name, id, domain string) {
		t.Helper()
		b.do("create service "+id,
			chromedp.Click(tid("nav-all-services")),
			pageReady(tid("new-service")),
			chromedp.Click(tid("new-service")),
			pageReady(tid("service-form")),
			typeInto(tid("field-name"), name),
			typeInto(tid("field-id"), id),
			chromedp.SetValue(tid("field-groupId"), "storefront"),
			typeInto(tid("field-domain"), domain),
			typeInto(tid("field-targetHost"), up.host()),
			chromedp.Click(tid("submit")),
			pageReady(tid("service-facts")), // the new service's page
			chromedp.Click(tid("nav-all-services")),
			pageReady(tid("service-row", `[data-id="`+id+`"]`)),
		)
	}
	createService("Billing API", "billing", "billing.test")
	createService("E2E catalog", "e2e", "e2e.test")
	svc, err := h.st.GetService(ctx, "e2e")
	if err != nil {
		t.Fatalf("service not in the store: %v", err)
	}
	if svc.Host() != "e2e.test" || svc.GroupID != "storefront" || len(svc.Targets) != 1 || svc.Targets[0].Host != up.host() {
		t.Fatalf("service as stored: host %q group %q targets %v", svc.Host(), svc.GroupID, svc.Targets)
	}
	if n := b.count(tid("service-row")); n != 2 {
		t.Errorf("%d services listed, want 2", n)
	}

	// The sidebar search filters as you type.
	b.do("search billing",
		typeInto(tid("sidebar-search"), "billing"),
		until(`(() => { const r = [...document.querySelectorAll('[data-testid="search-result"]')].map(e => e.textContent.trim());
			return r.length === 1 && r[0] === "Billing API"; })()`),
	)
	b.do("search nothing",
		typeInto(tid("sidebar-search"), "nothing-like-this"),
		until(`!!document.querySelector('[data-testid="search-empty"]') && !document.querySelector('[data-testid="search-result"]')`),
	)
	b.do("search e2e and open it",
		typeInto(tid("sidebar-search"), "e2e"),
		until(`(() => { const r = [...document.querySelectorAll('[data-testid="search-result"]')].map(e => e.textContent.trim());
			return r.length === 1 && r[0] === "E2E catalog"; })()`),
		chromedp.Click(tid("search-result")),
		pageReady(tid("service-host")),
	)
	if got := b.text(tid("service-host")); got != "e2e.test" {
		t.Errorf("service page host %q", got)
	}

	// A key, through the create form: a bad quota first.
	b.do("open the new key form",
		chromedp.Click(tid("nav-service-keys")),
		pageReady(tid("keys-empty")),
		chromedp.Click(tid("new-key")),
		pageReady(tid("key-form")),
	)
	clientID, secret := b.value(tid("field-clientId")), b.value(tid("field-clientSecret"))
	if len(clientID) != 16 || len(secret) != 64 {
		t.Fatalf("form not prefilled with generated credentials: %q, %d chars of secret", clientID, len(secret))
	}
	b.do("submit a negative daily quota",
		typeInto(tid("field-clientName"), "Mobile app"),
		typeInto(tid("field-dailyQuota"), "-5"),
		chromedp.Click(tid("submit")),
		chromedp.WaitVisible(tid("error-dailyQuota")),
	)
	if msg := b.text(tid("error-dailyQuota")); !strings.Contains(msg, "negative") {
		t.Errorf("daily quota message %q", msg)
	}
	b.besideField("dailyQuota")
	for field, want := range map[string]string{"field-dailyQuota": "-5", "field-clientName": "Mobile app", "field-clientId": clientID, "field-clientSecret": secret} {
		if got := b.value(tid(field)); got != want {
			t.Errorf("after the refused create, %s holds %q, want %q", field, got, want)
		}
	}
	if _, err := h.st.GetAPIKey(ctx, clientID); gatehouse.KindOf(err) != gatehouse.KindNotFound {
		t.Fatalf("refused key stored anyway: %v", err)
	}
	row := tid("key-row", `[data-client-id="`+clientID+`"]`)
	b.do("create the key",
		typeInto(tid("field-dailyQuota"), "1000"),
		chromedp.Click(tid("submit")),
		pageReady(tid("key-facts")), // the new key's page
		chromedp.Click(tid("nav-service-keys")),
		pageReady(row),
	)
	b.do("narrow viewport", chromedp.EmulateViewport(mobileW, mobileH), chromedp.WaitVisible(row))
	b.do("desktop viewport", chromedp.EmulateViewport(desktopW, desktopH))

	wantAnswer(t, "first call", gatewayCall(h, "e2e.test", clientID, secret), 200, "")
	day := time.Now().UTC().Format("2006-01-02")

	// The edit form: a quota that is not a number is refused beside the field.
	b.do("edit with a daily quota of abc",
		chromedp.Click(chromedp.CSS(string(row)+` [data-testid="key-edit"]`)),
		pageReady(tid("key-form")),
	)
	if got := b.text(tid("submit")); got != "Update API key" {
		t.Errorf("edit form button %q", got)
	}
	b.do("submit abc",
		typeInto(tid("field-dailyQuota"), "abc"),
		chromedp.Click(tid("submit")),
		chromedp.WaitVisible(tid("error-dailyQuota")),
	)
	if msg := b.text(tid("error-dailyQuota")); !strings.Contains(msg, "whole number") {
		t.Errorf("daily quota message %q", msg)
	}
	b.besideField("dailyQuota")
	if got := b.value(tid("field-dailyQuota")); got != "abc" {
		t.Errorf("typed quota not kept: %q", got)
	}
	if k, _ := h.st.GetAPIKey(ctx, clientID); k.DailyQuota != 1000 {
		t.Fatalf("refused edit changed the quota to %d", k.DailyQuota)
	}
	b.do("set the daily quota to 1",
		typeInto(tid("field-dailyQuota"), "1"),
		chromedp.Click(tid("submit")),
		pageReady(tid("key-facts")),
		chromedp.Click(tid("nav-service-keys")),
		pageReady(row),
	)
	if got := b.text(chromedp.CSS(string(row) + ` [data-testid="quota-daily"]`)); !strings.Contains(got, "1 / 1") {
		t.Errorf("daily usage shows %q, want 1 / 1", got)
	}
	// Exactly N calls a day get through, and today's counter already holds
	// the call above: the next call is the second of the day, refused.
	resp := gatewayCall(h, "e2e.test", clientID, secret)
	if time.Now().UTC().Format("2006-01-02") != day {
		t.Log("the day turned during the test: the daily quota started over")
	} else {
		wantAnswer(t, "call over the daily quota", resp, 429, "too many requests: daily quota")
		if got := resp.Header.Get("Otoroshi-Daily-Calls-Remaining"); got != "0" {
			t.Errorf("Otoroshi-Daily-Calls-Remaining %q", got)
		}
	}
	if hits := up.hits.Load(); hits != 1 {
		t.Errorf("upstream got %d calls, want 1", hits)
	}

	// Switched off from the table: the row is redrawn in place, the page
	// (and the marker set on it) stays.
	b.do("switch the key off",
		chromedp.Evaluate[chromedp.Void](`window.e2eSamePage = true`),
		chromedp.Click(chromedp.CSS(string(row)+` [data-testid="key-toggle"]`)),
		chromedp.WaitVisible(chromedp.CSS(string(row)+` [data-testid="key-toggle"][data-enabled="false"]`)),
	)
	if !get(b, "same page", chromedp.Evaluate[bool](`window.e2eSamePage === true`)) {
		t.Error("the toggle reloaded the page instead of redrawing the row")
	}
	if k, _ := h.st.GetAPIKey(ctx, clientID); k.Enabled {
		t.Fatal("key still enabled in the store")
	}
	wantAnswer(t, "call with the key off", gatewayCall(h, "e2e.test", clientID, secret), 401, "bad apikey")

	// Delete: cancel first, then confirm.
	b.do("ask to delete",
		chromedp.Click(chromedp.CSS(string(row)+` [data-testid="key-delete"]`)),
		pageReady(tid("confirm-delete-panel")),
	)
	if got := b.text(tid("confirm-delete-name")); got != "Mobile app" {
		t.Errorf("confirmation names %q", got)
	}
	b.do("cancel", chromedp.Click(tid("cancel-delete")), pageReady(row))
	if _, err := h.st.GetAPIKey(ctx, clientID); err != nil {
		t.Fatalf("cancelled delete removed the key: %v", err)
	}
	b.do("delete for real",
		chromedp.Click(chromedp.CSS(string(row)+` [data-testid="key-delete"]`)),
		pageReady(tid("confirm-delete-panel")),
		chromedp.Click(tid("confirm-delete")),
		pageReady(tid("keys-empty")),
		chromedp.WaitNotPresent(row),
	)
	if _, err := h.st.GetAPIKey(ctx, clientID); gatehouse.KindOf(err) != gatehouse.KindNotFound {
		t.Fatalf("deleted key still in the store: %v", err)
	}
	wantAnswer(t, "call with the deleted key", gatewayCall(h, "e2e.test", clientID, secret), 401, "invalid apikey")

	// Plugins: upload a module and see its ABI and hash.
	wasmFile := filepath.Join(t.TempDir(), "pass-through.wasm")
	if err := os.WriteFile(wasmFile, minimalPlugin, 0o644); err != nil {
		t.Fatal(err)
	}
	b.do("upload a plugin",
		chromedp.Click(tid("nav-plugins")),
		pageReady(tid("plugin-form")),
		chromedp.SetUploadFiles(tid("field-wasm"), []string{wasmFile}),
		typeInto(tid("field-name"), "pass-through"),
		chromedp.Click(chromedp.CSS(`#plugin-form [type="submit"]`)),
		pageReady(tid("plugin-facts")), // the new plugin's page
		chromedp.Click(tid("nav-plugins")),
		pageReady(tid("plugin-row")),
	)
	sum := sha256.Sum256(minimalPlugin)
	if got := b.text(tid("plugin-abi")); got != gatehouse.PluginABI {
		t.Errorf("plugin ABI %q", got)
	}
	if got := b.attr(tid("plugin-sha256"), "title"); got != hex.EncodeToString(sum[:]) {
		t.Errorf("plugin hash %q", got)
	}
}

// TestDashboardKeyUsageAndCurl checks in the browser that a key's page shows
// today's calls in its usage chart and curl lines that name its service and
// credentials.
func TestDashboardKeyUsageAndCurl(t *testing.T) {
	h, admin := dashboardHarness(t)
	up := newUpstream(t)
	h.group("shop")
	h.service(newService("orders", "shop", "orders.test", up))
	k := h.key(newKey("mobile01", "s3cret", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_shop"} }))
	for range 3 {
		wantAnswer(t, "call", gatewayCall(h, "orders.test", k.ClientID, k.ClientSecret), 200, "")
	}
	// The chart reads the counters SQLite holds: write them as the flush loop would.
	if err := h.srv.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Format("2006-01-02")

	b := newBrowser(t, admin.URL)
	b.login()
	b.do("open the key table", chromedp.Navigate(admin.URL+"/services/orders/apikeys"), pageReady(tid("key-row")))
	if got := b.text(tid("usage-daily")); got != "3" {
		t.Errorf("table shows %q calls today, want 3", got)
	}
	if got := get(b, "daily meter", chromedp.Evaluate[int](`document.querySelector('[data-testid="quota-daily"] meter').value`)); got != 3 {
		t.Errorf("daily meter at %d, want 3", got)
	}
	b.do("open the key", chromedp.Click(tid("key-name")), pageReady(tid("usage-chart")))
	if n := b.count(tid("usage-bar")); n != 30 {
		t.Errorf("%d usage bars, want 30", n)
	}
	last := tid("usage-bar", ":last-of-type")
	if got := b.attr(last, "data-day"); got != day {
		t.Errorf("last bar is %s, want today %s", got, day)
	}
	if got := b.attr(last, "data-count"); got != "3" {
		t.Errorf("last bar counts %s calls, want 3", got)
	}
	if height := get(b, "last bar height", chromedp.Evaluate[float64](`document.querySelector('[data-testid="usage-bar"]:last-of-type').getBBox().height`)); height <= 0 {
		t.Errorf("today's bar is not drawn (height %v)", height)
	}
	if n := b.count(tid("curl-full")); n != 3 {
		t.Fatalf("%d curl lines, want 3 (Basic, headers, JWT)", n)
	}
	lines := get(b, "curl lines", chromedp.Evaluate[[]string](`[...document.querySelectorAll('[data-testid="curl-full"]')].map(e => e.textContent)`))
	want := "curl -i 'http://localhost:8080/' -H 'Host: orders.test' -u 'mobile01:s3cret'"
	if lines[0] != want {
		t.Errorf("basic curl line\n got %s\nwant %s", lines[0], want)
	}
	if !strings.Contains(lines[1], "-H 'Otoroshi-Client-Id: mobile01' -H 'Otoroshi-Client-Secret: s3cret'") {
		t.Errorf("headers curl line %s", lines[1])
	}
	b.do("curl lines visible", chromedp.WaitVisible(tid("curl-line", ":last-of-type")))
}
