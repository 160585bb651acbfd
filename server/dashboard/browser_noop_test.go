package dashboard

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"gatehouse"
)

// TestBrowserUnchangedFormsMakeNoRevision submits every edit form of the
// dashboard as it comes, with JavaScript on and off, over entities that
// use every field the form shows: each answers as an update does, and
// writes nothing (the revision, the audit log and the entity, read through
// the admin API, stay as they were).
func TestBrowserUnchangedFormsMakeNoRevision(t *testing.T) {
	for _, js := range []bool{true, false} {
		t.Run(mode(js), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Config{})
			e.seed()
			seedEverything(t, e)
			b := newBrowser(t, e, js)
			b.login()
			forms := []struct {
				name, page, form, api string
			}{
				{"group", "/groups/shop/edit", "group-form", "/api/groups/shop"},
				{"service", "/services/orders/edit", "service-form", "/api/services/orders"},
				{"key", "/apikeys/mobile01/edit", "key-form", "/api/apikeys/mobile01"},
				{"key under its service", "/services/orders/apikeys/mobile01/edit", "key-form", "/api/apikeys/mobile01"},
				{"service plugins", "/services/orders/plugins", "service-plugins-form", "/api/services/orders"},
				{"plugin limits", "/plugins/p1", "plugin-edit-form", "/api/plugins/p1"},
			}
			for _, f := range forms {
				before := apiGet[json.RawMessage](b, f.api)
				rev := newestAudit(b, url.Values{}).Revision
				b.open(f.page, sel(f.form))
				b.clickTo("submit the "+f.name+" form unchanged", sel(f.form, ` [data-testid="submit"]`), sel("flash"))
				if now := newestAudit(b, url.Values{}).Revision; now != rev {
					t.Errorf("%s form submitted unchanged: newest audit entry at revision %d, was %d", f.name, now, rev)
				}
				if after := apiGet[json.RawMessage](b, f.api); string(after) != string(before) {
					t.Errorf("%s form submitted unchanged: %s\nwas %s", f.name, after, before)
				}
			}
			if rev, _ := e.st.Revision(context.Background()); rev != newestAudit(b, url.Values{}).Revision {
				t.Errorf("store at revision %d, audit log at %d", rev, newestAudit(b, url.Values{}).Revision)
			}
		})
	}
}

// seedEverything gives e.seed's group, service and key a value in every
// field their forms show, and attaches a plugin.
func seedEverything(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	g := gatehouse.Group{ID: "shop", Name: "Shop", Description: "Everything we sell"}
	mustDo(t, e.st.UpdateGroup(ctx, &g))
	p := gatehouse.DefaultPlugin()
	p.ID, p.Name, p.TimeoutMs, p.PoolSize = "p1", "auth", 250, 3
	mustDo(t, e.st.CreatePlugin(ctx, &p, []byte("\x00asm\x01\x00\x00\x00")))

	sv, err := e.st.GetService(ctx, "orders")
	mustDo(t, err)
	root := "/orders"
	sv.Env, sv.Root, sv.MatchingRoot = "staging", "/v2", &root
	sv.Targets = append(sv.Targets, gatehouse.Target{Host: "127.0.0.1:9002", Scheme: "https"})
	sv.PublicPatterns, sv.PrivatePatterns = []string{"^/public/.*", "^/health$"}, []string{"^/public/admin.*"}
	sv.AdditionalHeaders = map[string]string{"X-From": "gatehouse", "X-Team": "shop"}
	sv.MatchingHeaders = map[string]string{"X-Tenant": "acme"}
	sv.ForceHTTPS, sv.SendOtoroshiHeadersBack = true, false
	sv.IPFiltering = gatehouse.IPFiltering{Whitelist: []string{"10.0.0.0/8", "192.168.1.7"}, Blacklist: []string{"10.6.6.6"}}
	sv.Plugins = []gatehouse.PluginRef{{Ref: "p1", Config: `{"realm":"shop"}`, FailOpen: true}}
	mustDo(t, e.st.UpdateService(ctx, &sv))

	k, err := e.st.GetAPIKey(ctx, "mobile01")
	mustDo(t, err)
	until := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Minute).UnixMilli() // the form shows minutes
	k.Description, k.ValidUntil = "The iOS app", &until
	k.AuthorizedEntities = []string{gatehouse.GroupEntity("shop"), gatehouse.ServiceEntity("orders")}
	k.AllowClientIDOnly, k.ReadOnly = true, true
	k.ThrottlingQuota, k.MonthlyQuota = 20, 30000
	k.Metadata = map[string]string{"owner": "team-a", "tier": "gold"}
	k.Tags = []string{"mobile", "ios"}
	k.Rotation = gatehouse.Rotation{Enabled: true, RotationEvery: 48, GracePeriod: 6}
	mustDo(t, e.st.UpdateAPIKey(ctx, &k))
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
