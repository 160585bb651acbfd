package dashboard

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"gatehouse"
)

// TestBrowserForms submits every form of the dashboard in headless Chromium,
// once with JavaScript on (htmx) and once with it off, and reads what each
// saved back through the admin API. axe-core checks every screen it passes,
// in both modes, for serious and critical violations.
func TestBrowserForms(t *testing.T) {
	for _, js := range []bool{true, false} {
		t.Run(mode(js), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Config{GatewayURL: "http://127.0.0.1:8080"})
			b := newBrowser(t, e, js)
			b.login()
			groupForms(t, b)
			serviceForms(t, b)
			keyForms(t, b)
			pluginForms(t, b)
			deleteForms(t, b)
			b.clickTo("log out", sel("logout"), sel("login-form"))
			t.Logf("axe checked %d screens", len(b.axed))
		})
	}
}

func groupForms(t *testing.T, b *browser) {
	b.clickTo("groups", sel("nav-groups"), sel("new-group"))
	b.axe("groups")
	b.clickTo("new group", sel("new-group"), sel("group-form"))
	b.axe("group form")
	// Two refusals at once: an id with a space and an empty name.
	b.fill(sel("field-id"), "bad id")
	b.fill(sel("field-description"), "typed")
	b.do("submit the refused group", chromedp.Click(chromedp.CSS(sel("submit"))))
	b.until("group errors", `document.querySelector('[data-testid="error-name"]') && document.querySelector('[data-testid="error-id"]')`)
	b.wantFocus("refused group", "f-name")
	if b.value(sel("field-description")) != "typed" {
		t.Error("typed description lost")
	}
	b.axe("group form with errors")
	b.fill(sel("field-name"), "Storefront")
	b.fill(sel("field-id"), "storefront")
	b.fill(sel("field-description"), "Public APIs of the shop")
	b.clickTo("create group", sel("submit"), sel("new-service"))
	b.flash("Group “Storefront” created.")
	g := apiGet[gatehouse.Group](b, "/api/groups/storefront")
	if g.Name != "Storefront" || g.Description != "Public APIs of the shop" {
		t.Errorf("group as saved: %+v", g)
	}
	b.axe("group page")
	b.clickTo("edit group", sel("edit-group"), sel("group-form"))
	b.fill(sel("field-description"), "The shop's public APIs")
	b.clickTo("update group", sel("submit"), sel("new-service"))
	b.flash("updated")
	if g := apiGet[gatehouse.Group](b, "/api/groups/storefront"); g.Description != "The shop's public APIs" {
		t.Errorf("group after the edit: %+v", g)
	}
}

func serviceForms(t *testing.T, b *browser) {
	// From the group's page: the group is preselected, the admin group not offered.
	b.clickTo("new service", sel("new-service"), sel("service-form"))
	if got := b.value(sel("field-groupId")); got != "storefront" {
		t.Errorf("new service from the group's page preselects %q", got)
	}
	if n := b.count(`[data-testid="field-groupId"] option[value="` + gatehouse.AdminGroupID + `"]`); n != 0 {
		t.Error("the admin API group is offered for a service")
	}
	b.axe("service form")
	b.shot("service-form", desktopW)

	// Every refusal at once, focus on the first, everything typed kept.
	b.fill(sel("field-name"), "")
	b.fill(sel("field-id"), "catalog")
	b.fill(sel("field-domain"), "shop.test")
	b.fill(sel("field-root"), "no-slash")
	b.fill(sel("field-ipFiltering.whitelist"), "10.0.0.0/8\nnot-an-ip")
	b.do("submit the refused service", chromedp.Click(chromedp.CSS(sel("submit"))))
	b.until("service errors", `document.querySelector('[data-testid="error-name"]')`)
	for _, f := range []string{"name", "targets", "root", "ipFiltering.whitelist"} {
		if b.count(sel("error-"+f)) != 1 {
			t.Errorf("no message beside %s; page: %s", f, b.text(sel("service-form")))
		}
	}
	b.wantFocus("refused service", "f-name")
	if b.value(sel("field-root")) != "no-slash" || b.value(sel("field-ipFiltering.whitelist")) != "10.0.0.0/8\nnot-an-ip" {
		t.Error("typed values lost")
	}
	b.axe("service form with errors")
	if st := b.e.api("/api/services/catalog", nil); st != 404 {
		t.Fatalf("refused service saved: %d", st)
	}

	// Rows: Add adds exactly one and focuses it; Remove takes one away.
	b.fill(sel("field-name"), "Catalog API")
	b.fill(sel("field-root"), "/v1")
	b.fill(sel("field-ipFiltering.whitelist"), "10.0.0.0/8")
	b.fill(`#target-host-0`, "127.0.0.1:9001")
	addRow := func(button, rows string, want int) {
		t.Helper()
		b.do("add a row", chromedp.Click(chromedp.CSS(sel(button))))
		b.until("row added", `document.querySelectorAll('`+sel(rows)+`').length === `+strconv.Itoa(want)+` && document.readyState === "complete"`)
	}
	addRow("add-target", "target-row", 2)
	b.wantFocus("Add target", "target-host-1")
	b.fill(`#target-host-1`, "127.0.0.1:9002")
	b.choose(`#target-scheme-1`, "https")
	addRow("add-target", "target-row", 3)
	b.fill(`#target-host-2`, "127.0.0.1:9003")
	b.do("remove the second target", chromedp.Click(chromedp.CSS(`#target-host-1 ~ [data-testid="remove-target"]`)))
	b.until("row removed", `document.querySelectorAll('[data-testid="target-row"]').length === 2 && document.querySelector("#target-host-1").value === "127.0.0.1:9003"`)
	b.fill(`#additionalHeaders-key-0`, "X-Team")
	b.fill(`#additionalHeaders-value-0`, "catalog")
	addRow("additionalHeaders-add", "additionalHeaders-row", 2)
	b.wantFocus("add a header row", "additionalHeaders-key-1")
	b.fill(`#additionalHeaders-key-1`, "X-Env")
	b.fill(`#additionalHeaders-value-1`, "test")
	b.fill(`#matchingHeaders-key-0`, "X-Tenant")
	b.fill(`#matchingHeaders-value-0`, "acme")
	b.fill(sel("field-ipFiltering.blacklist"), "10.6.6.6")
	b.check(sel("field-maintenanceMode"), true)
	b.clickTo("create service", sel("submit"), sel("service-facts"))
	b.flash("Service “Catalog API” created.")
	if got := b.text(sel("service-status")); got != "maintenance" {
		t.Errorf("status of a service in maintenance: %q", got)
	}
	b.axe("service page")
	b.shot("service", desktopW)
	s := apiGet[gatehouse.Service](b, "/api/services/catalog")
	wantTargets := []gatehouse.Target{{Host: "127.0.0.1:9001", Scheme: "http"}, {Host: "127.0.0.1:9003", Scheme: "http"}}
	if s.Name != "Catalog API" || s.GroupID != "storefront" || s.Host() != "shop.test" || s.Root != "/v1" || !slices.Equal(s.Targets, wantTargets) ||
		s.AdditionalHeaders["X-Team"] != "catalog" || s.AdditionalHeaders["X-Env"] != "test" || len(s.AdditionalHeaders) != 2 ||
		s.MatchingHeaders["X-Tenant"] != "acme" || !slices.Equal(s.IPFiltering.Whitelist, []string{"10.0.0.0/8"}) ||
		!slices.Equal(s.IPFiltering.Blacklist, []string{"10.6.6.6"}) || !s.MaintenanceMode || !s.Enabled {
		t.Errorf("service as saved: %s", fmtJSON(s))
	}

	// Edit: out of maintenance, into build mode, a header row removed.
	b.clickTo("edit service", sel("edit-service"), sel("service-form"))
	b.axe("edit service")
	b.check(sel("field-maintenanceMode"), false)
	b.check(sel("field-buildMode"), true)
	b.do("remove a header row", chromedp.Click(chromedp.CSS(`#additionalHeaders-key-0 ~ [data-testid="additionalHeaders-remove"]`)))
	b.until("header row removed", `document.querySelectorAll('[data-testid="additionalHeaders-row"]').length === 1 && document.readyState === "complete"`)
	b.clickTo("update service", sel("submit"), sel("service-facts"))
	b.flash("updated")
	if got := b.text(sel("service-status")); got != "under construction" {
		t.Errorf("status in build mode: %q", got)
	}
	s = apiGet[gatehouse.Service](b, "/api/services/catalog")
	// Rows are sorted by header name: row 1 was X-Env.
	if s.MaintenanceMode || !s.BuildMode || len(s.AdditionalHeaders) != 1 || s.AdditionalHeaders["X-Team"] != "catalog" {
		t.Errorf("service after the edit: %s", fmtJSON(s))
	}

	// The list says what the gateway does, and its filter matches the host shown.
	b.clickTo("all services", sel("nav-all-services"), sel("services-table"))
	if got := b.text(`[data-testid="service-row"][data-id="catalog"] [data-testid="status"]`); got != "under construction" {
		t.Errorf("list status %q", got)
	}
	b.axe("services")
	b.shot("services", desktopW)
	b.fill(sel("services-filter"), "shop.test")
	b.clickTo("filter by host", `form[role="search"].panel button`, sel("services-table"))
	if n := b.count(sel("service-row")); n != 1 {
		t.Errorf("filter by the host shown: %d services", n)
	}
}

func keyForms(t *testing.T, b *browser) {
	b.open("/services/catalog/apikeys", sel("new-key"))
	b.axe("service keys (empty)")
	b.clickTo("new key", sel("new-key"), sel("key-form"))
	b.axe("key form")
	cid := b.value(sel("field-clientId"))
	if len(cid) != 16 || len(b.value(sel("field-clientSecret"))) != 64 {
		t.Fatalf("key form not prefilled with generated credentials: %q", cid)
	}
	if !eval[bool](b, `document.querySelector('[data-testid="entity-choice"][value="group_storefront"]').checked`) {
		t.Error("a key made from a service's screen does not start on its group")
	}

	// Three refusals at once; focus on the first in the form's order.
	b.fill(sel("field-clientSecret"), "")
	b.fill(sel("field-dailyQuota"), "-5")
	b.fill(sel("field-monthlyQuota"), "lots")
	b.fill(sel("field-clientName"), "Mobile app")
	b.do("submit the refused key", chromedp.Click(chromedp.CSS(sel("submit"))))
	b.until("key errors", `document.querySelector('[data-testid="error-monthlyQuota"]')`)
	for _, f := range []string{"clientSecret", "dailyQuota", "monthlyQuota"} {
		if b.count(sel("error-"+f)) != 1 {
			t.Errorf("no message beside %s", f)
		}
	}
	b.wantFocus("refused key", "f-clientSecret")
	if b.value(sel("field-clientName")) != "Mobile app" || b.value(sel("field-monthlyQuota")) != "lots" || b.value(sel("field-clientId")) != cid {
		t.Error("typed values lost")
	}
	b.axe("key form with errors")
	b.shot("key-create-error", desktopW)

	// A key for this single service, expired, read only, with tags and metadata.
	b.do("regenerate the secret", chromedp.Click(chromedp.CSS(sel("regenerate-clientSecret"))))
	b.until("secret regenerated", `document.querySelector('[data-testid="field-clientSecret"]').value.length === 64`)
	secret := b.value(sel("field-clientSecret"))
	b.fill(sel("field-dailyQuota"), "3")
	b.fill(sel("field-monthlyQuota"), "1,000")
	b.fill(sel("field-description"), "The iOS and Android apps")
	b.check(`[data-testid="entity-choice"][value="group_storefront"]`, false)
	b.check(`[data-testid="entity-choice"][value="service_catalog"]`, true)
	past := time.Now().Add(-48 * time.Hour).UTC()
	b.choose(sel("field-validUntil"), past.Format("2006-01-02T15:04"))
	b.fill(sel("field-tags"), "mobile, beta")
	b.fill(`#metadata-key-0`, "owner")
	b.fill(`#metadata-value-0`, "team-a")
	b.do("add a metadata row", chromedp.Click(chromedp.CSS(sel("metadata-add"))))
	b.until("metadata row", `document.querySelectorAll('[data-testid="metadata-row"]').length === 2 && document.readyState === "complete"`)
	b.fill(`#metadata-key-1`, "tier")
	b.fill(`#metadata-value-1`, "gold")
	b.check(sel("field-readOnly"), true)
	b.check(sel("field-allowClientIdOnly"), true)
	b.clickTo("create key", sel("submit"), sel("key-facts"))
	b.flash("API key “Mobile app” created.")
	if got := b.text(`[data-testid="key-status"] [data-testid="status"]`); got != "expired" {
		t.Errorf("status of a key past validUntil: %q", got)
	}
	b.axe("key page")
	k := apiGet[gatehouse.APIKey](b, "/api/services/catalog/apikeys/"+cid)
	if k.ClientName != "Mobile app" || k.ClientSecret != secret || k.Description != "The iOS and Android apps" || k.DailyQuota != 3 ||
		k.MonthlyQuota != 1000 || !slices.Equal(k.AuthorizedEntities, []string{"service_catalog"}) || k.ValidUntil == nil ||
		*k.ValidUntil != past.Truncate(time.Minute).UnixMilli() || !slices.Equal(k.Tags, []string{"mobile", "beta"}) ||
		k.Metadata["owner"] != "team-a" || k.Metadata["tier"] != "gold" || len(k.Metadata) != 2 || !k.ReadOnly || !k.AllowClientIDOnly || !k.Enabled {
		t.Errorf("key as saved: %s", fmtJSON(k))
	}
	// The curl lines hide the secret until revealed.
	if strings.Contains(b.text(sel("curl-lines")), secret) && !eval[bool](b, `[...document.querySelectorAll("details.curl")].some(d => d.open)`) {
		if eval[bool](b, `[...document.querySelectorAll('[data-testid="curl-line"]')].some(e => e.textContent.includes(`+q(secret)+`))`) {
			t.Error("a curl line shows the secret before Reveal")
		}
	}
	if eval[bool](b, `[...document.querySelectorAll('[data-testid="curl-full"]')].some(e => e.checkVisibility())`) {
		t.Error("a whole curl line is visible before Reveal")
	}
	b.do("reveal a curl line", chromedp.Click(chromedp.CSS(`details.curl summary`)))
	b.until("curl line revealed", `document.querySelector('[data-testid="curl-full"]').checkVisibility()`)
	if got := b.text(sel("curl-full")); !strings.Contains(got, cid+":"+secret) {
		t.Errorf("revealed line %q", got)
	}

	// Edit: no expiry, not read only, a metadata row removed.
	b.clickTo("edit key", sel("key-edit"), sel("key-form"))
	b.axe("edit key")
	if got := b.value(sel("field-validUntil")); got != past.Format("2006-01-02T15:04") {
		t.Errorf("validUntil shown as %q", got)
	}
	b.choose(sel("field-validUntil"), "")
	b.check(sel("field-readOnly"), false)
	b.do("remove a metadata row", chromedp.Click(chromedp.CSS(`#metadata-key-0 ~ [data-testid="metadata-remove"]`)))
	b.until("metadata row removed", `document.querySelectorAll('[data-testid="metadata-row"]').length === 1 && document.readyState === "complete"`)
	b.fill(sel("field-description"), "Apps")
	b.clickTo("update key", sel("submit"), sel("key-facts"))
	b.flash("updated")
	k = apiGet[gatehouse.APIKey](b, "/api/services/catalog/apikeys/"+cid)
	if k.ValidUntil != nil || k.ReadOnly || len(k.Metadata) != 1 || k.Metadata["tier"] != "gold" || k.Description != "Apps" {
		t.Errorf("key after the edit: %s", fmtJSON(k))
	}
	if got := b.text(`[data-testid="key-status"] [data-testid="status"]`); got != "enabled" {
		t.Errorf("status after clearing validUntil: %q", got)
	}

	// The switch in the table: keyboard, focus kept, confirmation.
	b.e.b.mu.Lock()
	b.e.b.usage[cid] = gatehouse.QuotaUsage{CurrentCallsPerDay: 3, CurrentCallsPerMonth: 3}
	b.e.b.mu.Unlock()
	row := `[data-testid="key-row"][data-client-id="` + cid + `"]`
	b.open("/services/catalog/apikeys", row)
	if got := eval[string](b, `document.querySelector('`+row+` [data-testid="quota-daily"]').dataset.level`); got != "full" {
		t.Errorf("3 of 3 calls today: bar level %q, want full", got)
	}
	b.axe("service keys")
	b.shot("keys", desktopW)
	toggle := row + ` [data-testid="key-toggle"]`
	b.mark()
	b.do("switch the key off from the keyboard", chromedp.Focus(chromedp.CSS(toggle)), chromedp.KeyEvent(" "))
	b.until("switched off", `document.querySelector('`+toggle+`') && document.querySelector('`+toggle+`').getAttribute("aria-checked") === "false" && document.readyState === "complete"`)
	b.flash("disabled")
	if b.js {
		if !eval[bool](b, `window.__sameDoc === true`) {
			t.Error("with htmx the switch reloaded the page instead of redrawing its row")
		}
		b.wantFocus("the switch", "toggle-"+cid)
	}
	if got := b.text(row + ` [data-testid="status"]`); got != "disabled" {
		t.Errorf("row status %q", got)
	}
	if k = apiGet[gatehouse.APIKey](b, "/api/services/catalog/apikeys/"+cid); k.Enabled {
		t.Error("the switch did not disable the key")
	}
	b.do("switch it back on", chromedp.Click(chromedp.CSS(toggle)))
	b.until("switched on", `document.querySelector('`+toggle+`') && document.querySelector('`+toggle+`').getAttribute("aria-checked") === "true" && document.readyState === "complete"`)
	if k = apiGet[gatehouse.APIKey](b, "/api/services/catalog/apikeys/"+cid); !k.Enabled {
		t.Error("the switch did not enable the key")
	}

	// Reset quotas, confirmed; the history stays.
	if err := b.e.st.AddCounters(context.Background(), []gatehouse.Counter{{ClientID: cid, Period: time.Now().UTC().Format("2006-01-02"), Count: 3, Calls: 3, LastUsed: time.Now().UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	b.open("/apikeys/"+cid, sel("key-facts"))
	if got := b.text(sel("key-last-used")); got == "never" {
		t.Error("last use not shown")
	}
	b.clickTo("reset quotas", sel("key-reset"), sel("confirm-reset-panel"))
	b.axe("reset quotas")
	b.clickTo("cancel the reset", sel("cancel-reset"), sel("key-facts"))
	if c, _ := b.e.st.KeyCounters(context.Background(), cid, "2000-01-01", "2999-12-31"); len(c) == 0 {
		t.Fatal("cancel reset the quotas")
	}
	b.clickTo("reset quotas", sel("key-reset"), sel("confirm-reset-panel"))
	b.clickTo("confirm the reset", sel("confirm-reset"), sel("key-facts"))
	b.flash("reset")
	var u gatehouse.QuotaUsage
	if st := b.e.api("/api/apikeys/"+cid+"/quotas", &u); st != 200 || u.CurrentCallsPerDay != 0 {
		t.Errorf("quotas after the reset: %d %+v", st, u)
	}
	if c, _ := b.e.st.KeyCounters(context.Background(), cid, "2000-01-01", "2999-12-31"); len(c) != 0 {
		t.Errorf("quota counters after the reset: %v", c)
	}
	if got := eval[string](b, `document.querySelector('[data-testid="usage-bar"]:last-of-type').dataset.count`); got != "3" {
		t.Errorf("today's bar after the reset counts %s, want the 3 calls kept", got)
	}
	b.shot("key-detail", desktopW)

	// All API keys: admin keys marked, search, sort, paging.
	allKeys(t, b, cid)

	// Delete: cancel leaves it, Delete removes it.
	b.open("/services/catalog/apikeys", row)
	b.clickTo("ask to delete", row+` [data-testid="key-delete"]`, sel("confirm-delete-panel"))
	b.axe("delete key")
	b.shot("key-delete", desktopW)
	b.clickTo("cancel", sel("cancel-delete"), row)
	if st := b.e.api("/api/services/catalog/apikeys/"+cid, nil); st != 200 {
		t.Fatalf("cancel deleted the key: %d", st)
	}
	b.clickTo("ask to delete", row+` [data-testid="key-delete"]`, sel("confirm-delete-panel"))
	b.clickTo("delete", sel("confirm-delete"), sel("flash"))
	b.flash("deleted")
	if b.count(row) != 0 {
		t.Error("the deleted key is still listed")
	}
	if st := b.e.api("/api/services/catalog/apikeys/"+cid, nil); st != 404 {
		t.Errorf("deleted key still there: %d", st)
	}
}

func allKeys(t *testing.T, b *browser, cid string) {
	ctx := context.Background()
	if _, err := b.e.st.GetGroup(ctx, gatehouse.AdminGroupID); err != nil {
		admin := gatehouse.Group{ID: gatehouse.AdminGroupID, Name: "Admin API"}
		if err := b.e.st.CreateGroup(ctx, &admin); err != nil {
			t.Fatal(err)
		}
	}
	adminKey := gatehouse.DefaultAPIKey()
	adminKey.ClientID, adminKey.ClientSecret, adminKey.ClientName = "ops-admin", "s", "Ops console"
	adminKey.AuthorizedEntities = []string{gatehouse.GroupEntity(gatehouse.AdminGroupID)}
	if err := b.e.st.CreateAPIKey(ctx, &adminKey); err != nil {
		t.Fatal(err)
	}
	var many []gatehouse.APIKey
	for i := range 55 {
		k := gatehouse.DefaultAPIKey()
		k.ClientID, k.ClientSecret, k.ClientName = "fleet"+strconv.Itoa(100+i), "s", "Fleet "+strconv.Itoa(100+i)
		k.AuthorizedEntities = []string{"group_storefront"}
		many = append(many, k)
	}
	if err := b.e.st.CreateAPIKeys(ctx, many); err != nil {
		t.Fatal(err)
	}
	b.clickTo("all keys", sel("nav-all-keys"), sel("keys-table"))
	b.axe("all keys")
	if n := b.count(sel("key-row")); n != 50 {
		t.Errorf("first page lists %d keys, want 50", n)
	}
	if b.count(`[data-testid="key-row"][data-client-id="ops-admin"] [data-testid="admin-key"]`) != 1 {
		t.Error("the admin API key is not marked")
	}
	if b.count(`[data-testid="admin-key"]`) != 1 {
		t.Error("keys that are not admin keys are marked")
	}
	b.clickTo("next page", sel("pager-next"), sel("keys-table"))
	if n := b.count(sel("key-row")); n != 7 {
		t.Errorf("second page lists %d keys, want 7 (57 in all)", n)
	}
	b.open("/apikeys", sel("keys-table"))
	b.fill(sel("keys-filter"), "ops")
	b.choose(sel("keys-sort"), gatehouse.SortName)
	b.clickTo("search", sel("keys-filter-submit"), sel("keys-table"))
	if n, id := b.count(sel("key-row")), b.text(sel("key-client-id")); n != 1 || id != "ops-admin" {
		t.Errorf("search ops: %d keys, first %q", n, id)
	}
	b.fill(sel("keys-filter"), "o")
	b.clickTo("search o", sel("keys-filter-submit"), sel("keys-table"))
	b.shot("all-keys", desktopW)
	b.fill(sel("keys-filter"), "")
	b.clickTo("sort by name", sel("keys-filter-submit"), sel("keys-table"))
	if id := b.text(sel("key-client-id")); id != "fleet100" {
		t.Errorf("sorted by name, the first key is %q, want fleet100 (Fleet 100)", id)
	}
	b.choose(sel("keys-sort"), gatehouse.SortLastUsed)
	b.clickTo("sort by last use", sel("keys-filter-submit"), sel("keys-table"))
	if id := b.text(sel("key-client-id")); id != cid {
		t.Errorf("sorted by last use, the first key is %q, want the one just used, %s", id, cid)
	}
	if got := b.text(`[data-testid="key-row"][data-client-id="` + cid + `"] [data-testid="key-last-used"]`); got == "never" {
		t.Error("last use not shown in the list")
	}
	b.clickTo("open a key from All API keys", `[data-testid="key-row"][data-client-id="ops-admin"] [data-testid="key-name"]`, sel("key-facts"))
	if b.count(`[data-testid="key-status"] [data-testid="admin-key"]`) != 1 {
		t.Error("admin key page does not say so")
	}

	// An admin API key made from All API keys: tick the built-in group.
	b.open("/apikeys", sel("new-key"))
	b.clickTo("new key from All API keys", sel("new-key"), sel("key-form"))
	if n := b.count(`[data-testid="entity-choice"]:checked`); n != 0 {
		t.Errorf("a key made from All API keys starts on %d entities, want none", n)
	}
	adminID := b.value(sel("field-clientId"))
	b.fill(sel("field-clientName"), "CI deployer")
	b.check(`[data-testid="entity-choice"][value="group_`+gatehouse.AdminGroupID+`"]`, true)
	b.clickTo("create the admin key", sel("submit"), sel("key-facts"))
	b.flash("created")
	if b.count(`[data-testid="key-status"] [data-testid="admin-key"]`) != 1 {
		t.Error("the new admin key's page does not mark it")
	}
	var ks []gatehouse.APIKey
	if st := b.e.api("/api/apikeys?q="+adminID, &ks); st != 200 || len(ks) != 1 ||
		!slices.Equal(ks[0].AuthorizedEntities, []string{"group_" + gatehouse.AdminGroupID}) || ks[0].ClientName != "CI deployer" {
		t.Errorf("admin key as saved: %d %s", st, fmtJSON(ks))
	}
}

func pluginForms(t *testing.T, b *browser) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "auth.wasm"), filepath.Join(dir, "auth-v2.wasm")
	if err := os.WriteFile(first, wasmBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(second, append(append([]byte{}, wasmBytes...), 0, 2, 1, 'x'), 0o644); err != nil {
		t.Fatal(err)
	}
	b.clickTo("plugins", sel("nav-plugins"), sel("plugin-form"))
	b.axe("plugins (empty)")
	b.do("choose a module", chromedp.SetUploadFiles(chromedp.CSS(`#f-wasm`), []string{first}))
	b.fill(`#plugin-form [data-testid="field-poolSize"]`, "0")
	b.fill(`#plugin-form [data-testid="field-timeoutMs"]`, "soon")
	b.do("upload with bad limits", chromedp.Click(chromedp.CSS(`#plugin-form [data-testid="submit"]`)))
	b.until("upload errors", `document.querySelector('#plugin-form [data-testid="error-poolSize"]') && document.querySelector('#plugin-form [data-testid="error-timeoutMs"]')`)
	b.wantFocus("refused upload", "f-timeoutMs")
	b.axe("plugins with errors")
	b.do("choose the module again", chromedp.SetUploadFiles(chromedp.CSS(`#f-wasm`), []string{first}))
	b.fill(`#plugin-form [data-testid="field-poolSize"]`, "8")
	b.fill(`#plugin-form [data-testid="field-timeoutMs"]`, "100")
	b.clickTo("upload", `#plugin-form [data-testid="submit"]`, sel("plugin-facts"))
	b.flash("Plugin “auth” uploaded.")
	id := strings.TrimPrefix(run(b, "location", chromedp.Location()), b.e.srv.URL+"/plugins/")
	p := apiGet[gatehouse.Plugin](b, "/api/plugins/"+id)
	if p.Name != "auth" || p.PoolSize != 8 {
		t.Errorf("plugin as uploaded: %+v", p)
	}
	b.axe("plugin page")
	b.shot("plugin", desktopW)
	b.open("/plugins", sel("plugin-row"))
	b.axe("plugins")
	b.shot("plugins", desktopW)
	b.open("/plugins/"+id, sel("plugin-facts"))

	// Limits.
	b.fill(`#plugin-edit-form [data-testid="field-memoryLimitPages"]`, "128")
	b.fill(`#plugin-edit-form [data-testid="field-timeoutMs"]`, "250")
	b.fill(`#plugin-edit-form [data-testid="field-poolSize"]`, "4")
	b.clickTo("save limits", `#plugin-edit-form [data-testid="submit"]`, sel("plugin-facts"))
	b.flash("Limits of “auth” saved.")
	if p = apiGet[gatehouse.Plugin](b, "/api/plugins/"+id); p.MemoryLimitPages != 128 || p.TimeoutMs != 250 || p.PoolSize != 4 {
		t.Errorf("plugin limits as saved: %+v", p)
	}
	// Module replacement.
	oldSum := p.SHA256
	b.do("choose a new module", chromedp.SetUploadFiles(chromedp.CSS(`#f-replace-wasm`), []string{second}))
	b.clickTo("replace the module", sel("submit-replace"), sel("plugin-facts"))
	b.flash("replaced")
	if p = apiGet[gatehouse.Plugin](b, "/api/plugins/"+id); p.SHA256 == oldSum || p.SHA256 == "" {
		t.Errorf("module not replaced: sha256 %s", p.SHA256)
	}

	// Attached to a service, saved twice: the chain stays (the blocker).
	b.open("/services/catalog/plugins", sel("service-plugins-form"))
	b.axe("service plugins")
	b.choose(`#ref-0`, id)
	b.fill(`#config-0`, `{"realm":"shop"}`)
	b.clickTo("save plugins", sel("submit"), sel("service-plugins-form"))
	b.flash("1 plugin")
	want := []gatehouse.PluginRef{{Ref: id, Config: `{"realm":"shop"}`}}
	if s := apiGet[gatehouse.Service](b, "/api/services/catalog"); !slices.Equal(s.Plugins, want) {
		t.Fatalf("plugins after the first save: %s", fmtJSON(s.Plugins))
	}
	b.clickTo("save plugins again", sel("submit"), sel("service-plugins-form"))
	if s := apiGet[gatehouse.Service](b, "/api/services/catalog"); !slices.Equal(s.Plugins, want) {
		t.Fatalf("saving the Plugins page unchanged left %s, want the chain kept", fmtJSON(s.Plugins))
	}
	b.shot("service-plugins", desktopW)

	// Deleting it while attached names the service and links to detach it.
	b.open("/plugins/"+id+"/delete", sel("confirm-delete-panel"))
	b.do("delete the attached plugin", chromedp.Click(chromedp.CSS(sel("confirm-delete"))))
	b.until("conflict", `document.querySelector('[data-testid="conflict-link"]')`)
	if got := b.text(sel("form-error")); !strings.Contains(got, "Catalog API") {
		t.Errorf("409 message %q does not name the service", got)
	}
	b.axe("plugin delete refused")
	b.clickTo("detach", sel("conflict-link"), sel("service-plugins-form"))
	b.choose(`#ref-0`, "")
	b.clickTo("save without the plugin", sel("submit"), sel("service-plugins-form"))
	if s := apiGet[gatehouse.Service](b, "/api/services/catalog"); len(s.Plugins) != 0 {
		t.Errorf("plugin not detached: %s", fmtJSON(s.Plugins))
	}
	b.open("/plugins/"+id+"/delete", sel("confirm-delete-panel"))
	b.clickTo("delete the plugin", sel("confirm-delete"), sel("plugin-form"))
	b.flash("deleted")
	if st := b.e.api("/api/plugins/"+id, nil); st != 404 {
		t.Errorf("deleted plugin still there: %d", st)
	}
}

func deleteForms(t *testing.T, b *browser) {
	// A group that still has services cannot go: the refusal links them.
	b.open("/groups/storefront/delete", sel("confirm-delete-panel"))
	b.do("delete a group with services", chromedp.Click(chromedp.CSS(sel("confirm-delete"))))
	b.until("conflict", `document.querySelector('[data-testid="conflict-link"]')`)
	if got := b.text(sel("conflict-links")); !strings.Contains(got, "Catalog API") {
		t.Errorf("409 links %q", got)
	}
	b.axe("group delete refused")
	b.clickTo("open the service", sel("conflict-link"), sel("service-facts"))
	b.clickTo("delete the service", sel("delete-service"), sel("confirm-delete-panel"))
	b.axe("delete service")
	b.clickTo("confirm", sel("confirm-delete"), sel("services-table"))
	b.flash("deleted")
	if st := b.e.api("/api/services/catalog", nil); st != 404 {
		t.Errorf("deleted service: %d", st)
	}
	// The fleet keys of the group stand in the way now: delete them first.
	for i := range 55 {
		if err := b.e.st.DeleteAPIKey(context.Background(), "fleet"+strconv.Itoa(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	b.open("/groups/storefront/delete", sel("confirm-delete-panel"))
	b.clickTo("delete the group", sel("confirm-delete"), sel("groups-table"))
	b.flash("deleted")
	if st := b.e.api("/api/groups/storefront", nil); st != 404 {
		t.Errorf("deleted group: %d", st)
	}
	b.open("/no/such/page", sel("error-page"))
	b.axe("not found")
}
