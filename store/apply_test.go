package store

import (
	"context"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gatehouse"
)

// seedConfig is a small configuration with every kind of entity, and an
// admin group and key that export and apply leave alone.
func seedConfig(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	must(t, s.CreateGroup(ctx, &gatehouse.Group{ID: gatehouse.AdminGroupID, Name: "Admin API"}))
	seedKey(t, s, "admin1", gatehouse.GroupEntity(gatehouse.AdminGroupID))
	seedGroups(t, s, "shop", "billing")
	seedPlugin(t, s, "stamp")
	sv := seedService(t, s, "orders", "shop")
	sv.Plugins = []gatehouse.PluginRef{{Ref: "stamp", Config: "x"}}
	must(t, s.UpdateService(ctx, &sv))
	seedService(t, s, "invoices", "billing")
	seedKey(t, s, "k1", gatehouse.GroupEntity("shop"))
	seedKey(t, s, "k2", gatehouse.ServiceEntity("invoices"))
}

func export(t *testing.T, s *Store) gatehouse.Document {
	t.Helper()
	doc, err := s.Export(context.Background())
	must(t, err)
	return doc
}

func ids(doc gatehouse.Document) []string {
	var out []string
	for _, g := range doc.Groups {
		out = append(out, "group/"+g.ID)
	}
	for _, p := range doc.Plugins {
		out = append(out, "plugin/"+p.ID)
	}
	for _, sv := range doc.Services {
		out = append(out, "service/"+sv.ID)
	}
	for _, k := range doc.APIKeys {
		out = append(out, "apikey/"+k.ClientID)
	}
	return out
}

func TestExportApplyRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	seedConfig(t, src)
	doc := export(t, src)
	if got, want := ids(doc), []string{"group/shop", "group/billing", "plugin/stamp", "service/orders",
		"service/invoices", "apikey/k1", "apikey/k2"}; !slices.Equal(got, want) {
		t.Fatalf("export = %v, want %v (admin group and key left out)", got, want)
	}
	if doc.Format != gatehouse.DocumentFormat || doc.APIKeys[0].ClientSecret == "" || len(doc.Plugins[0].Wasm) == 0 {
		t.Fatalf("export lacks format, a secret or the wasm: %+v", doc)
	}

	dst := newStore(t)
	must(t, dst.CreateGroup(ctx, &gatehouse.Group{ID: gatehouse.AdminGroupID, Name: "Admin API"}))
	before, _ := dst.Revision(ctx)
	// Order inside the document does not matter: keys and services first.
	shuffled := doc
	shuffled.Groups = []gatehouse.Group{doc.Groups[1], doc.Groups[0]}
	shuffled.Services = []gatehouse.Service{doc.Services[1], doc.Services[0]}
	in := clone(t, shuffled)
	res, err := dst.Apply(ctx, &in, ApplyOptions{})
	must(t, err)
	if len(res.Created) != 7 || len(res.Updated) != 0 || len(res.Deleted) != 0 || res.Revision != before+1 {
		t.Fatalf("apply to empty = %+v, want 7 created in revision %d", res, before+1)
	}
	// Same entities (creation order follows the document's).
	again := export(t, dst)
	want := clone(t, shuffled)
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("export after apply:\n%+v\nwant\n%+v", again, want)
	}

	// The same document again: nothing to do, no revision.
	in = clone(t, shuffled)
	res, err = dst.Apply(ctx, &in, ApplyOptions{Prune: true})
	must(t, err)
	if len(res.Created)+len(res.Updated)+len(res.Deleted) != 0 || res.Revision != before+1 {
		t.Fatalf("second apply = %+v, want nothing at revision %d", res, before+1)
	}
	if rev, _ := dst.Revision(ctx); rev != before+1 {
		t.Fatalf("revision = %d after an empty apply, want %d", rev, before+1)
	}
}

func clone(t *testing.T, doc gatehouse.Document) gatehouse.Document {
	t.Helper()
	out := doc
	out.Groups = slices.Clone(doc.Groups)
	out.Services = slices.Clone(doc.Services)
	out.APIKeys = slices.Clone(doc.APIKeys)
	out.Plugins = slices.Clone(doc.Plugins)
	return out
}

func TestApplyPlan(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	seedConfig(t, s)
	doc := export(t, s)
	rev, _ := s.Revision(ctx)

	// Change one group, one key (dropping its secret: it is kept), drop k2
	// and invoices and billing, add a group.
	doc.Groups[0].Description = "changed"
	doc.Groups = append(doc.Groups[:1], gatehouse.Group{ID: "new", Name: "New"})
	doc.Services = doc.Services[:1]
	secret := doc.APIKeys[0].ClientSecret
	doc.APIKeys[0].ClientSecret = ""
	doc.APIKeys[0].DailyQuota = 5
	doc.APIKeys = doc.APIKeys[:1]

	counts := rowCounts(t, s)
	dry := clone(t, doc)
	res, err := s.Apply(ctx, &dry, ApplyOptions{DryRun: true, Prune: true})
	must(t, err)
	wantCreated, wantUpdated := []string{"group/new"}, []string{"group/shop", "apikey/k1"}
	wantDeleted := []string{"apikey/k2", "service/invoices", "group/billing"}
	if !slices.Equal(res.Created, wantCreated) || !slices.Equal(res.Updated, wantUpdated) ||
		!slices.Equal(res.Deleted, wantDeleted) || res.Revision != rev {
		t.Fatalf("dry run = %+v", res)
	}
	if got := rowCounts(t, s); !reflect.DeepEqual(got, counts) {
		t.Fatalf("dry run wrote: %v, was %v", got, counts)
	}

	real := clone(t, doc)
	res2, err := s.Apply(ctx, &real, ApplyOptions{Prune: true})
	must(t, err)
	if !slices.Equal(res2.Created, wantCreated) || !slices.Equal(res2.Updated, wantUpdated) ||
		!slices.Equal(res2.Deleted, wantDeleted) || res2.Revision != rev+1 {
		t.Fatalf("apply = %+v, want the dry run's plan at revision %d", res2, rev+1)
	}
	k, err := s.GetAPIKey(ctx, "k1")
	must(t, err)
	if k.ClientSecret != secret || k.DailyQuota != 5 {
		t.Fatalf("k1 = %+v, want its secret kept and dailyQuota 5", k)
	}
	// Prune never touches the admin group or the admin key.
	if _, err := s.GetGroup(ctx, gatehouse.AdminGroupID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAPIKey(ctx, "admin1"); err != nil {
		t.Fatal(err)
	}
	// One revision with every change.
	cs, err := s.Changes(ctx, rev, 10)
	must(t, err)
	if len(cs) != 6 || cs[0].Revision != rev+1 || cs[5].Revision != rev+1 {
		t.Fatalf("changes = %+v, want 6 in revision %d", cs, rev+1)
	}
}

func TestApplyInvalidWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	seedConfig(t, s)
	base := export(t, s)
	cases := []struct {
		name   string
		edit   func(d *gatehouse.Document)
		opt    ApplyOptions
		kind   gatehouse.ErrorKind
		field  string
		entity string
	}{
		{"bad format", func(d *gatehouse.Document) { d.Format = "v2" }, ApplyOptions{}, gatehouse.KindInvalid, "format", ""},
		{"service without target", func(d *gatehouse.Document) { d.Services[1].Targets[0].Host = "" }, ApplyOptions{},
			gatehouse.KindInvalid, "services[1].targets", "service/invoices"},
		{"group missing", func(d *gatehouse.Document) { d.Services[0].GroupID = "nope" }, ApplyOptions{},
			gatehouse.KindInvalid, "services[0].groupId", "service/orders"},
		{"negative quota", func(d *gatehouse.Document) { d.APIKeys[1].DailyQuota = -1 }, ApplyOptions{},
			gatehouse.KindInvalid, "apikeys[1].dailyQuota", "apikey/k2"},
		{"dangling entity", func(d *gatehouse.Document) { d.APIKeys[0].AuthorizedEntities = []string{"group_zzz"} }, ApplyOptions{},
			gatehouse.KindInvalid, "apikeys[0].authorizedEntities", "apikey/k1"},
		{"admin group", func(d *gatehouse.Document) {
			d.Groups = append(d.Groups, gatehouse.Group{ID: gatehouse.AdminGroupID, Name: "x"})
		},
			ApplyOptions{}, gatehouse.KindInvalid, "groups[2].id", "group/admin-api-group"},
		{"admin key", func(d *gatehouse.Document) {
			d.APIKeys = append(d.APIKeys, gatehouse.APIKey{ClientID: "admin1", ClientSecret: "s"})
		}, ApplyOptions{}, gatehouse.KindInvalid, "apikeys[2].clientId", "apikey/admin1"},
		{"duplicate id", func(d *gatehouse.Document) { d.Groups[1].ID = "shop" }, ApplyOptions{},
			gatehouse.KindInvalid, "groups[1].id", "group/shop"},
		{"pruned group still used", func(d *gatehouse.Document) { d.Groups = d.Groups[:1] }, ApplyOptions{Prune: true},
			gatehouse.KindInvalid, "services[1].groupId", "service/invoices"},
		{"sha256 not the wasm's", func(d *gatehouse.Document) { d.Plugins[0].SHA256 = "00" }, ApplyOptions{},
			gatehouse.KindInvalid, "plugins[0].sha256", "plugin/stamp"},
		{"plugin check refuses", func(d *gatehouse.Document) { d.Plugins[0].TimeoutMs = 7 }, ApplyOptions{
			CheckPlugin: func(context.Context, gatehouse.Plugin, []byte) error {
				return gatehouse.Invalid("wasm", "not a plugin")
			}}, gatehouse.KindInvalid, "plugins[0].wasm", "plugin/stamp"},
		// A valid change before the bad one is rolled back with it.
		{"late failure", func(d *gatehouse.Document) {
			d.Groups[0].Name = "renamed"
			d.APIKeys[1].AuthorizedEntities = []string{"service_gone"}
		}, ApplyOptions{}, gatehouse.KindInvalid, "apikeys[1].authorizedEntities", "apikey/k2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := clone(t, base)
			doc.Services = nil
			for _, sv := range base.Services {
				sv.Targets = slices.Clone(sv.Targets)
				doc.Services = append(doc.Services, sv)
			}
			c.edit(&doc)
			counts := rowCounts(t, s)
			_, err := s.Apply(ctx, &doc, c.opt)
			e := wantErr(t, err, c.kind, c.field)
			if c.entity != "" && !strings.Contains(e.Message, c.entity) {
				t.Fatalf("message %q does not name %s", e.Message, c.entity)
			}
			if got := rowCounts(t, s); !reflect.DeepEqual(got, counts) {
				t.Fatalf("wrote: %v, was %v", got, counts)
			}
			if g, _ := s.GetGroup(ctx, "shop"); g.Name != "Group shop" {
				t.Fatalf("group shop = %+v: a failed apply wrote", g)
			}
		})
	}
}

func TestApplyPluginWithoutWasmKeepsModule(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, filepath.Join(t.TempDir(), "g.db"))
	defer s.Close()
	seedPlugin(t, s, "stamp")
	doc := export(t, s)
	doc.Plugins[0].Wasm = nil
	doc.Plugins[0].PoolSize = 3
	var checked []byte
	res, err := s.Apply(ctx, &doc, ApplyOptions{CheckPlugin: func(_ context.Context, p gatehouse.Plugin, wasm []byte) error {
		if p.PoolSize != 3 {
			t.Errorf("checked under pool size %d, want 3", p.PoolSize)
		}
		checked = wasm
		return nil
	}})
	must(t, err)
	if !slices.Equal(res.Updated, []string{"plugin/stamp"}) || string(checked) != "\x00asm\x01\x00\x00\x00stamp" {
		t.Fatalf("apply = %+v, checked %q", res, checked)
	}
	p, err := s.GetPlugin(ctx, "stamp")
	must(t, err)
	if p.PoolSize != 3 {
		t.Fatalf("plugin = %+v", p)
	}
}

func TestApplyNewKeyWithoutSecretGetsOne(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	seedGroups(t, s, "g")
	doc := export(t, s)
	k := gatehouse.DefaultAPIKey()
	k.ClientID, k.AuthorizedEntities = "fresh", []string{"group_g"}
	doc.APIKeys = []gatehouse.APIKey{k}
	res, err := s.Apply(ctx, &doc, ApplyOptions{})
	must(t, err)
	got, err := s.GetAPIKey(ctx, "fresh")
	must(t, err)
	if !slices.Equal(res.Created, []string{"apikey/fresh"}) || len(got.ClientSecret) != 64 {
		t.Fatalf("apply = %+v, key = %+v: want a generated 64-character secret", res, got)
	}
}

// With secrets encrypted at rest, export shows them in clear and the same
// document applied again changes nothing (a sealed secret is never the same
// twice, so keys are compared in clear).
func TestApplyWithSecretsAtRest(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	key := make([]byte, SecretsKeySize)
	for i := range key {
		key[i] = byte(i + 1)
	}
	must(t, s.UseSecretsKey(ctx, key))
	seedConfig(t, s)
	doc := export(t, s)
	if doc.APIKeys[0].ClientSecret == "" || strings.HasPrefix(doc.APIKeys[0].ClientSecret, "enc") {
		t.Fatalf("exported secret %q", doc.APIKeys[0].ClientSecret)
	}
	rev, _ := s.Revision(ctx)
	again := clone(t, doc)
	res, err := s.Apply(ctx, &again, ApplyOptions{Prune: true})
	must(t, err)
	if len(res.Created)+len(res.Updated)+len(res.Deleted) != 0 || res.Revision != rev {
		t.Fatalf("re-apply with secrets at rest = %+v, want nothing at revision %d", res, rev)
	}
}
