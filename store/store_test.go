package store

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"gatehouse"
)

// tables are every table the schema creates, for before/after row counts.
var tables = []string{"groups", "services", "apikeys", "apikey_entities", "plugins", "counters", "users", "sessions", "meta",
	"revisions", "changes", "usage_days", "key_last_used"}

func openAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// newStore opens a fresh database file under t.TempDir, closed at cleanup.
func newStore(t *testing.T) *Store {
	t.Helper()
	s := openAt(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func rowCounts(t *testing.T, s *Store) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, tb := range tables {
		var n int
		if err := s.r.QueryRow("SELECT COUNT(*) FROM " + tb).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", tb, err)
		}
		m[tb] = n
	}
	return m
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr checks err is a *gatehouse.Error of kind, and of field when field != "-".
func wantErr(t *testing.T, err error, kind gatehouse.ErrorKind, field string) *gatehouse.Error {
	t.Helper()
	e := gatehouse.AsError(err)
	if e == nil {
		t.Fatalf("err = %v, want *gatehouse.Error of kind %d", err, kind)
	}
	if e.Kind != kind {
		t.Fatalf("kind = %d (%v), want %d", e.Kind, e, kind)
	}
	if field != "-" && e.Field != field {
		t.Fatalf("field = %q (%v), want %q", e.Field, e, field)
	}
	return e
}

func seedGroup(t *testing.T, s *Store, id string) gatehouse.Group {
	t.Helper()
	g := gatehouse.Group{ID: id, Name: "Group " + id, Description: "about " + id}
	must(t, s.CreateGroup(context.Background(), &g))
	return g
}

func seedGroups(t *testing.T, s *Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		seedGroup(t, s, id)
	}
}

func seedService(t *testing.T, s *Store, id, groupID string) gatehouse.Service {
	t.Helper()
	sv := gatehouse.DefaultService()
	sv.ID, sv.GroupID, sv.Name, sv.Domain = id, groupID, "Service "+id, id+".example.com"
	sv.Targets = []gatehouse.Target{{Host: "127.0.0.1:9999"}}
	must(t, s.CreateService(context.Background(), &sv))
	return sv
}

func seedKey(t *testing.T, s *Store, id string, entities ...string) gatehouse.APIKey {
	t.Helper()
	k := gatehouse.DefaultAPIKey()
	k.ClientID, k.ClientName = id, "Key "+id
	k.AuthorizedEntities = entities
	must(t, s.CreateAPIKey(context.Background(), &k))
	return k
}

func seedPlugin(t *testing.T, s *Store, id string) gatehouse.Plugin {
	t.Helper()
	p := gatehouse.DefaultPlugin()
	p.ID, p.Name = id, "Plugin "+id
	must(t, s.CreatePlugin(context.Background(), &p, []byte("\x00asm\x01\x00\x00\x00"+id)))
	return p
}

func TestOpenRejectsMemory(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", ":memory:"} {
		if s, err := Open(context.Background(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", p)
		}
	}
}

func TestGroupCRUD(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)

	g := gatehouse.Group{Name: "Payments", Description: "money"}
	must(t, s.CreateGroup(ctx, &g))
	if len(g.ID) != 16 {
		t.Fatalf("generated id %q, want 16 characters", g.ID)
	}
	got, err := s.GetGroup(ctx, g.ID)
	must(t, err)
	if got != g {
		t.Fatalf("GetGroup = %+v, want %+v", got, g)
	}

	wantErr(t, s.CreateGroup(ctx, &gatehouse.Group{ID: g.ID, Name: "again"}), gatehouse.KindConflict, "")

	g.Name, g.Description = "Payments v2", ""
	must(t, s.UpdateGroup(ctx, &g))
	got, err = s.GetGroup(ctx, g.ID)
	must(t, err)
	if got != g {
		t.Fatalf("after update GetGroup = %+v, want %+v", got, g)
	}
	wantErr(t, s.UpdateGroup(ctx, &gatehouse.Group{ID: "nope", Name: "x"}), gatehouse.KindNotFound, "")

	must(t, s.DeleteGroup(ctx, g.ID))
	_, err = s.GetGroup(ctx, g.ID)
	wantErr(t, err, gatehouse.KindNotFound, "")
	wantErr(t, s.DeleteGroup(ctx, g.ID), gatehouse.KindNotFound, "")
}

func TestListGroupsPaging(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)

	gs, total, err := s.ListGroups(ctx, gatehouse.Page{})
	must(t, err)
	if gs == nil || len(gs) != 0 || total != 0 {
		t.Fatalf("empty ListGroups = %#v, %d; want [] and 0", gs, total)
	}
	// Ids in reverse alphabetical order: lists must follow creation, not id.
	ids := []string{"g5", "g4", "g3", "g2", "g1"}
	for _, id := range ids {
		seedGroup(t, s, id)
	}
	tests := []struct {
		page gatehouse.Page
		want []string
	}{
		{gatehouse.Page{}, ids},
		{gatehouse.Page{Page: 1, PageSize: 2}, []string{"g5", "g4"}},
		{gatehouse.Page{Page: 2, PageSize: 2}, []string{"g3", "g2"}},
		{gatehouse.Page{Page: 3, PageSize: 2}, []string{"g1"}},
		{gatehouse.Page{Page: 4, PageSize: 2}, []string{}},
	}
	for _, tt := range tests {
		gs, total, err := s.ListGroups(ctx, tt.page)
		must(t, err)
		got := []string{}
		for _, g := range gs {
			got = append(got, g.ID)
		}
		if !reflect.DeepEqual(got, tt.want) || total != 5 {
			t.Errorf("ListGroups(%+v) = %v, %d; want %v, 5", tt.page, got, total, tt.want)
		}
	}
}

func TestServiceCRUD(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	seedGroup(t, s, "g1")
	seedGroup(t, s, "g2")
	seedPlugin(t, s, "p1")

	root := "/api"
	sv := gatehouse.Service{
		GroupID: "g1", Name: "Orders", Env: "PREPROD", Domain: "Example.com", Subdomain: "orders",
		Targets:           []gatehouse.Target{{Host: "10.0.0.1:80"}, {Host: "10.0.0.2:443", Scheme: "https"}},
		MatchingRoot:      &root,
		Enabled:           true,
		PublicPatterns:    []string{"/public/.*"},
		AdditionalHeaders: map[string]string{"X-Env": "pre"},
		IPFiltering:       gatehouse.IPFiltering{Whitelist: []string{"10.0.0.0/8"}},
		Plugins:           []gatehouse.PluginRef{{Ref: "p1", Config: "{}", FailOpen: true}},
	}
	must(t, s.CreateService(ctx, &sv))
	if sv.ID == "" || sv.Env != "preprod" || sv.Domain != "example.com" || sv.Targets[0].Scheme != "http" || sv.Root != "/" {
		t.Fatalf("defaults not filled in place: %+v", sv)
	}
	got, err := s.GetService(ctx, sv.ID)
	must(t, err)
	if !reflect.DeepEqual(got, sv) {
		t.Fatalf("GetService =\n%+v\nwant\n%+v", got, sv)
	}

	dup := sv
	dup.Plugins = nil
	wantErr(t, s.CreateService(ctx, &dup), gatehouse.KindConflict, "")

	sv.GroupID, sv.Name, sv.MatchingRoot, sv.Plugins = "g2", "Orders v2", nil, []gatehouse.PluginRef{}
	must(t, s.UpdateService(ctx, &sv))
	got, err = s.GetService(ctx, sv.ID)
	must(t, err)
	if !reflect.DeepEqual(got, sv) {
		t.Fatalf("after update GetService =\n%+v\nwant\n%+v", got, sv)
	}
	missing := sv
	missing.ID = "nope"
	wantErr(t, s.UpdateService(ctx, &missing), gatehouse.KindNotFound, "")

	all, err := s.AllServices(ctx)
	must(t, err)
	if len(all) != 1 || all[0].ID != sv.ID {
		t.Fatalf("AllServices = %+v", all)
	}

	must(t, s.DeleteService(ctx, sv.ID))
	_, err = s.GetService(ctx, sv.ID)
	wantErr(t, err, gatehouse.KindNotFound, "")
	wantErr(t, s.DeleteService(ctx, sv.ID), gatehouse.KindNotFound, "")
	all, err = s.AllServices(ctx)
	must(t, err)
	if all == nil || len(all) != 0 {
		t.Fatalf("AllServices after delete = %#v, want []", all)
	}
}

func TestServiceReferences(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	seedGroup(t, s, "g1")
	seedPlugin(t, s, "p1")
	seedService(t, s, "s1", "g1")

	sv := gatehouse.DefaultService()
	sv.ID, sv.GroupID, sv.Name, sv.Domain = "s2", "missing", "S2", "s2.example.com"
	sv.Targets = []gatehouse.Target{{Host: "127.0.0.1:9999", Scheme: "http"}}
	before := rowCounts(t, s)
	wantErr(t, s.CreateService(ctx, &sv), gatehouse.KindInvalid, "groupId")

	sv.GroupID = "g1"
	sv.Plugins = []gatehouse.PluginRef{{Ref: "p1"}, {Ref: "ghost"}}
	wantErr(t, s.CreateService(ctx, &sv), gatehouse.KindInvalid, "plugins")

	upd, err := s.GetService(ctx, "s1")
	must(t, err)
	upd.GroupID = "missing"
	wantErr(t, s.UpdateService(ctx, &upd), gatehouse.KindInvalid, "groupId")
	upd.GroupID = "g1"
	upd.Plugins = []gatehouse.PluginRef{{Ref: "ghost"}}
	wantErr(t, s.UpdateService(ctx, &upd), gatehouse.KindInvalid, "plugins")
	if after := rowCounts(t, s); !reflect.DeepEqual(before, after) {
		t.Fatalf("rows changed on refused writes: %v -> %v", before, after)
	}
	if got, _ := s.GetService(ctx, "s1"); len(got.Plugins) != 0 {
		t.Fatalf("refused update changed s1: %+v", got)
	}

	// A group with services cannot go; once they are gone it can.
	wantErr(t, s.DeleteGroup(ctx, "g1"), gatehouse.KindConflict, "")
	if _, err := s.GetGroup(ctx, "g1"); err != nil {
		t.Fatalf("group deleted despite conflict: %v", err)
	}

	// A plugin attached to a service cannot go either.
	upd.Plugins = []gatehouse.PluginRef{{Ref: "p1", Config: "a"}}
	must(t, s.UpdateService(ctx, &upd))
	wantErr(t, s.DeletePlugin(ctx, "p1"), gatehouse.KindConflict, "")
	if _, err := s.GetPlugin(ctx, "p1"); err != nil {
		t.Fatalf("plugin deleted despite conflict: %v", err)
	}
	must(t, s.DeleteService(ctx, "s1"))
	must(t, s.DeletePlugin(ctx, "p1"))
	must(t, s.DeleteGroup(ctx, "g1"))
}

func TestListServicesFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	seedGroup(t, s, "g1")
	seedGroup(t, s, "g2")
	for _, sv := range []struct{ id, group, name, domain, sub string }{
		{"a1", "g1", "Billing", "pay.io", ""},
		{"a2", "g1", "Orders", "shop.io", "api"},
		{"a3", "g2", "Catalog", "shop.io", "billing"},
		{"a4", "g2", "Search_100%", "find.io", ""},
	} {
		v := gatehouse.DefaultService()
		v.ID, v.GroupID, v.Name, v.Domain, v.Subdomain = sv.id, sv.group, sv.name, sv.domain, sv.sub
		v.Targets = []gatehouse.Target{{Host: "127.0.0.1:9999", Scheme: "http"}}
		must(t, s.CreateService(ctx, &v))
	}
	tests := []struct {
		name      string
		f         gatehouse.ServiceFilter
		p         gatehouse.Page
		want      []string
		wantTotal int
	}{
		{"all", gatehouse.ServiceFilter{}, gatehouse.Page{}, []string{"a1", "a2", "a3", "a4"}, 4},
		{"group", gatehouse.ServiceFilter{GroupID: "g2"}, gatehouse.Page{}, []string{"a3", "a4"}, 2},
		{"q name or subdomain, any case", gatehouse.ServiceFilter{Q: "BILL"}, gatehouse.Page{}, []string{"a1", "a3"}, 2},
		{"q id", gatehouse.ServiceFilter{Q: "a2"}, gatehouse.Page{}, []string{"a2"}, 1},
		{"q domain", gatehouse.ServiceFilter{Q: "shop"}, gatehouse.Page{}, []string{"a2", "a3"}, 2},
		{"q with group", gatehouse.ServiceFilter{GroupID: "g1", Q: "shop"}, gatehouse.Page{}, []string{"a2"}, 1},
		{"q wildcards are literal", gatehouse.ServiceFilter{Q: "_1"}, gatehouse.Page{}, []string{"a4"}, 1},
		{"q percent is literal", gatehouse.ServiceFilter{Q: "%"}, gatehouse.Page{}, []string{"a4"}, 1},
		{"paged", gatehouse.ServiceFilter{}, gatehouse.Page{Page: 2, PageSize: 3}, []string{"a4"}, 4},
		{"nothing", gatehouse.ServiceFilter{Q: "zzz"}, gatehouse.Page{}, []string{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svs, total, err := s.ListServices(ctx, tt.f, tt.p)
			must(t, err)
			if svs == nil {
				t.Fatal("nil slice, want []")
			}
			got := []string{}
			for _, sv := range svs {
				got = append(got, sv.ID)
			}
			if !reflect.DeepEqual(got, tt.want) || total != tt.wantTotal {
				t.Errorf("got %v total %d, want %v total %d", got, total, tt.want, tt.wantTotal)
			}
		})
	}
}

func TestAPIKeyCRUD(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	seedGroups(t, s, "g1", "g2")
	seedService(t, s, "s9", "g1")

	until := int64(1_900_000_000_000)
	k := gatehouse.APIKey{
		ClientName: "Mobile", Description: "the app",
		AuthorizedEntities: []string{"group_g1", "service_s9"},
		Enabled:            true, AllowClientIDOnly: true, ReadOnly: true,
		ThrottlingQuota: 10, DailyQuota: 0, MonthlyQuota: 300,
		ValidUntil: &until,
		Metadata:   map[string]string{"team": "mobile"},
		Tags:       []string{"beta"},
	}
	must(t, s.CreateAPIKey(ctx, &k))
	if len(k.ClientID) != 16 || len(k.ClientSecret) != 64 {
		t.Fatalf("generated id %q secret %q", k.ClientID, k.ClientSecret)
	}
	got, err := s.GetAPIKey(ctx, k.ClientID)
	must(t, err)
	if !reflect.DeepEqual(got, k) {
		t.Fatalf("GetAPIKey =\n%+v\nwant\n%+v", got, k)
	}

	// Nil collections come back as empty ones.
	bare := gatehouse.APIKey{ClientID: "bare", ClientSecret: "s"}
	must(t, s.CreateAPIKey(ctx, &bare))
	got, err = s.GetAPIKey(ctx, "bare")
	must(t, err)
	if got.AuthorizedEntities == nil || got.Metadata == nil || got.Tags == nil || got.ValidUntil != nil {
		t.Fatalf("bare key = %#v", got)
	}

	before := rowCounts(t, s)
	dup := gatehouse.DefaultAPIKey()
	dup.ClientID = k.ClientID
	wantErr(t, s.CreateAPIKey(ctx, &dup), gatehouse.KindConflict, "")
	if after := rowCounts(t, s); !reflect.DeepEqual(before, after) {
		t.Fatalf("duplicate wrote rows: %v -> %v", before, after)
	}

	k.Enabled, k.ValidUntil, k.AuthorizedEntities = false, nil, []string{"group_g2"}
	k.Metadata = map[string]string{}
	must(t, s.UpdateAPIKey(ctx, &k))
	got, err = s.GetAPIKey(ctx, k.ClientID)
	must(t, err)
	if !reflect.DeepEqual(got, k) {
		t.Fatalf("after update GetAPIKey =\n%+v\nwant\n%+v", got, k)
	}
	// The entity index follows the update.
	ks, _, err := s.ListAPIKeys(ctx, gatehouse.KeyFilter{GroupID: "g1"}, gatehouse.Page{})
	must(t, err)
	if len(ks) != 0 {
		t.Fatalf("old entity still indexed: %+v", ks)
	}
	ks, _, err = s.ListAPIKeys(ctx, gatehouse.KeyFilter{GroupID: "g2"}, gatehouse.Page{})
	must(t, err)
	if len(ks) != 1 || ks[0].ClientID != k.ClientID {
		t.Fatalf("new entity not indexed: %+v", ks)
	}
	ghost := gatehouse.DefaultAPIKey()
	ghost.ClientID, ghost.ClientSecret = "ghost", "x"
	wantErr(t, s.UpdateAPIKey(ctx, &ghost), gatehouse.KindNotFound, "")

	n, err := s.CountAPIKeys(ctx)
	must(t, err)
	if n != 2 {
		t.Fatalf("CountAPIKeys = %d, want 2", n)
	}

	must(t, s.AddCounters(ctx, []gatehouse.Counter{{ClientID: k.ClientID, Period: "2025-01-02", Count: 5, Calls: 5, LastUsed: 1}}))
	must(t, s.DeleteAPIKey(ctx, k.ClientID))
	_, err = s.GetAPIKey(ctx, k.ClientID)
	wantErr(t, err, gatehouse.KindNotFound, "")
	wantErr(t, s.DeleteAPIKey(ctx, k.ClientID), gatehouse.KindNotFound, "")
	after := rowCounts(t, s)
	if after["counters"] != 0 || after["apikey_entities"] != 0 || after["apikeys"] != 1 {
		t.Fatalf("delete left rows behind: %v", after)
	}
}

func TestValidationWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	seedGroup(t, s, "g1")
	seedService(t, s, "s1", "g1")
	seedKey(t, s, "k1", "group_g1")
	seedPlugin(t, s, "p1")

	svc := func(mod func(*gatehouse.Service)) *gatehouse.Service {
		sv := gatehouse.DefaultService()
		sv.ID, sv.GroupID, sv.Name, sv.Domain = "s2", "g1", "S2", "s2.io"
		sv.Targets = []gatehouse.Target{{Host: "127.0.0.1:9999", Scheme: "http"}}
		mod(&sv)
		return &sv
	}
	key := func(mod func(*gatehouse.APIKey)) *gatehouse.APIKey {
		k := gatehouse.DefaultAPIKey()
		k.ClientID = "k2"
		mod(&k)
		return &k
	}
	plugin := func(mod func(*gatehouse.Plugin)) *gatehouse.Plugin {
		p := gatehouse.DefaultPlugin()
		p.ID, p.Name = "p2", "P2"
		mod(&p)
		return &p
	}
	wasm := []byte("\x00asm")
	tests := []struct {
		name  string
		write func() error
		field string
	}{
		{"group empty name", func() error { return s.CreateGroup(ctx, &gatehouse.Group{Name: " "}) }, "name"},
		{"group bad id", func() error { return s.CreateGroup(ctx, &gatehouse.Group{ID: "a b", Name: "x"}) }, "id"},
		{"group update empty name", func() error { return s.UpdateGroup(ctx, &gatehouse.Group{ID: "g1"}) }, "name"},
		{"service no host", func() error { return s.CreateService(ctx, svc(func(v *gatehouse.Service) { v.Domain = "" })) }, "domain"},
		{"service target without host", func() error {
			return s.CreateService(ctx, svc(func(v *gatehouse.Service) { v.Targets = []gatehouse.Target{{}} }))
		}, "targets"},
		{"service bad regexp", func() error {
			return s.CreateService(ctx, svc(func(v *gatehouse.Service) { v.PublicPatterns = []string{"("} }))
		}, "publicPatterns"},
		{"service update bad root", func() error {
			return s.UpdateService(ctx, svc(func(v *gatehouse.Service) { v.ID, v.Root = "s1", "x" }))
		}, "root"},
		{"key negative daily quota", func() error { return s.CreateAPIKey(ctx, key(func(k *gatehouse.APIKey) { k.DailyQuota = -1 })) }, "dailyQuota"},
		{"key bad entity", func() error {
			return s.CreateAPIKey(ctx, key(func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"team_x"} }))
		}, "authorizedEntities"},
		{"key update negative monthly", func() error {
			return s.UpdateAPIKey(ctx, key(func(k *gatehouse.APIKey) { k.ClientID, k.MonthlyQuota = "k1", -5 }))
		}, "monthlyQuota"},
		{"key update no id", func() error { return s.UpdateAPIKey(ctx, key(func(k *gatehouse.APIKey) { k.ClientID = "" })) }, "clientId"},
		{"plugin zero pool", func() error { return s.CreatePlugin(ctx, plugin(func(p *gatehouse.Plugin) { p.PoolSize = 0 }), wasm) }, "poolSize"},
		{"plugin empty wasm", func() error { return s.CreatePlugin(ctx, plugin(func(p *gatehouse.Plugin) {}), nil) }, "wasm"},
		{"plugin update timeout", func() error {
			return s.UpdatePlugin(ctx, plugin(func(p *gatehouse.Plugin) { p.ID, p.TimeoutMs = "p1", 0 }))
		}, "timeoutMs"},
		{"plugin replace empty wasm", func() error { _, err := s.ReplacePluginWasm(ctx, "p1", nil); return err }, "wasm"},
		{"bulk bad key", func() error {
			return s.CreateAPIKeys(ctx, []gatehouse.APIKey{*key(func(*gatehouse.APIKey) {}), *key(func(k *gatehouse.APIKey) { k.ClientID, k.ThrottlingQuota = "k3", -1 })})
		}, "[1].throttlingQuota"},
		{"user empty name", func() error { return s.CreateUser(ctx, "", "hash") }, "username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := rowCounts(t, s)
			wantErr(t, tt.write(), gatehouse.KindInvalid, tt.field)
			if after := rowCounts(t, s); !reflect.DeepEqual(before, after) {
				t.Fatalf("rows changed: %v -> %v", before, after)
			}
		})
	}
	// Refused updates left the stored rows as they were.
	if g, _ := s.GetGroup(ctx, "g1"); g.Name != "Group g1" {
		t.Errorf("group changed: %+v", g)
	}
	if k, _ := s.GetAPIKey(ctx, "k1"); k.MonthlyQuota != gatehouse.DefaultQuota {
		t.Errorf("key changed: %+v", k)
	}
	if p, _ := s.GetPlugin(ctx, "p1"); p.TimeoutMs != gatehouse.DefaultPluginTimeoutMs {
		t.Errorf("plugin changed: %+v", p)
	}
}

// CountAPIKeys (for tests) returns how many keys are stored.
func (s *Store) CountAPIKeys(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM apikeys").Scan(&n); err != nil {
		return 0, fmt.Errorf("count apikeys: %w", err)
	}
	return n, nil
}
