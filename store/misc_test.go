package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"reflect"
	"testing"
	"testing/fstest"
	"time"

	"gatehouse"
)

func TestPluginCRUD(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)

	wasm := []byte("\x00asm\x01\x00\x00\x00first")
	p := gatehouse.Plugin{Name: "auth", MemoryLimitPages: 32, TimeoutMs: 50, PoolSize: 2}
	must(t, s.CreatePlugin(ctx, &p, wasm))
	sum := sha256.Sum256(wasm)
	if p.ID == "" || p.SHA256 != hex.EncodeToString(sum[:]) || p.ABI != gatehouse.PluginABI {
		t.Fatalf("created plugin %+v", p)
	}
	got, err := s.GetPlugin(ctx, p.ID)
	must(t, err)
	if got != p {
		t.Fatalf("GetPlugin = %+v, want %+v", got, p)
	}
	b, err := s.PluginWasm(ctx, p.ID)
	must(t, err)
	if !bytes.Equal(b, wasm) {
		t.Fatalf("PluginWasm = %q", b)
	}
	dup := p
	wantErr(t, s.CreatePlugin(ctx, &dup, wasm), gatehouse.KindConflict, "")

	// Update changes name and limits only, whatever else the caller sends.
	upd := gatehouse.Plugin{ID: p.ID, Name: "auth2", MemoryLimitPages: 64, TimeoutMs: 70, PoolSize: 3, ABI: gatehouse.PluginABI, SHA256: "forged"}
	must(t, s.UpdatePlugin(ctx, &upd))
	want := gatehouse.Plugin{ID: p.ID, Name: "auth2", SHA256: p.SHA256, ABI: gatehouse.PluginABI, MemoryLimitPages: 64, TimeoutMs: 70, PoolSize: 3}
	if upd != want {
		t.Fatalf("UpdatePlugin wrote back %+v, want %+v", upd, want)
	}
	got, err = s.GetPlugin(ctx, p.ID)
	must(t, err)
	if got != want {
		t.Fatalf("after update GetPlugin = %+v, want %+v", got, want)
	}
	wantErr(t, s.UpdatePlugin(ctx, &gatehouse.Plugin{ID: "ghost", Name: "x", MemoryLimitPages: 1, TimeoutMs: 1, PoolSize: 1}), gatehouse.KindNotFound, "")

	wasm2 := []byte("\x00asm\x01\x00\x00\x00second")
	got, err = s.ReplacePluginWasm(ctx, p.ID, wasm2)
	must(t, err)
	sum = sha256.Sum256(wasm2)
	want.SHA256 = hex.EncodeToString(sum[:])
	if got != want {
		t.Fatalf("ReplacePluginWasm = %+v, want %+v", got, want)
	}
	b, err = s.PluginWasm(ctx, p.ID)
	must(t, err)
	if !bytes.Equal(b, wasm2) {
		t.Fatalf("PluginWasm after replace = %q", b)
	}
	_, err = s.ReplacePluginWasm(ctx, "ghost", wasm2)
	wantErr(t, err, gatehouse.KindNotFound, "")

	seedPlugin(t, s, "p2")
	ps, err := s.ListPlugins(ctx)
	must(t, err)
	if len(ps) != 2 || ps[0] != want || ps[1].ID != "p2" {
		t.Fatalf("ListPlugins = %+v", ps)
	}

	must(t, s.DeletePlugin(ctx, p.ID))
	_, err = s.GetPlugin(ctx, p.ID)
	wantErr(t, err, gatehouse.KindNotFound, "")
	_, err = s.PluginWasm(ctx, p.ID)
	wantErr(t, err, gatehouse.KindNotFound, "")
	wantErr(t, s.DeletePlugin(ctx, p.ID), gatehouse.KindNotFound, "")
}

func ctr(id, period string, n int64) gatehouse.Counter {
	return gatehouse.Counter{ClientID: id, Period: period, Count: n}
}

func TestCounters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	seedKey(t, s, "a")
	seedKey(t, s, "b")

	must(t, s.AddCounters(ctx, []gatehouse.Counter{
		{ClientID: "a", Period: "2025-01-30", Count: 3, Calls: 3, LastUsed: 1000},
		{ClientID: "a", Period: "2025-01-31", Count: 4, Calls: 4, LastUsed: 2000},
		{ClientID: "a", Period: "2025-01", Count: 7},
		{ClientID: "b", Period: "2025-01-31", Count: 1, Calls: 1, LastUsed: 1500},
		{ClientID: "gone", Period: "2025-01-31", Count: 9, Calls: 9, LastUsed: 9}, // no such key: skipped
	}))
	// Increments: a second flush adds to what is stored.
	must(t, s.AddCounters(ctx, []gatehouse.Counter{
		{ClientID: "a", Period: "2025-01-31", Count: 6, Calls: 6, LastUsed: 1900}, // an older last use changes nothing
		{ClientID: "a", Period: "2025-01", Count: 6},
		{ClientID: "a", Period: "2025-02-01", Count: 2, Calls: 2},
		{ClientID: "a", Period: "2025-02", Count: 2},
	}))

	got, err := s.KeyCounters(ctx, "a", "2025-01-01", "2025-01-31")
	must(t, err)
	want := []gatehouse.Counter{ctr("a", "2025-01-30", 3), ctr("a", "2025-01-31", 10)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("day history = %+v, want %+v", got, want)
	}
	got, err = s.KeyCounters(ctx, "a", "2025-01", "2025-02")
	must(t, err)
	want = []gatehouse.Counter{ctr("a", "2025-01", 13), ctr("a", "2025-02", 2)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("month history = %+v, want only months %+v", got, want)
	}
	got, err = s.KeyCounters(ctx, "a", "2025-01-15", "2025-02-28")
	must(t, err)
	want = []gatehouse.Counter{ctr("a", "2025-01-30", 3), ctr("a", "2025-01-31", 10), ctr("a", "2025-02-01", 2)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("day history across a month = %+v, want only days %+v", got, want)
	}
	got, err = s.KeyCounters(ctx, "nobody", "0", "9")
	must(t, err)
	if got == nil || len(got) != 0 {
		t.Fatalf("empty history = %#v, want []", got)
	}

	scanned := map[gatehouse.Counter]bool{}
	must(t, s.ScanCounters(ctx, []string{"2025-01-31", "2025-01"}, func(c gatehouse.Counter) { scanned[c] = true }))
	wantScan := map[gatehouse.Counter]bool{ctr("a", "2025-01-31", 10): true, ctr("a", "2025-01", 13): true, ctr("b", "2025-01-31", 1): true}
	if !reflect.DeepEqual(scanned, wantScan) {
		t.Fatalf("ScanCounters = %v, want %v", scanned, wantScan)
	}

	last, err := s.LastUsed(ctx, "a", "b", "gone", "never")
	must(t, err)
	if !reflect.DeepEqual(last, map[string]int64{"a": 2000, "b": 1500}) {
		t.Fatalf("LastUsed = %v", last)
	}

	must(t, s.ResetQuotas(ctx, "a"))
	for _, r := range [][2]string{{"0000-00", "9999-99"}, {"0000-00-00", "9999-99-99"}} {
		got, err = s.KeyCounters(ctx, "a", r[0], r[1])
		must(t, err)
		if len(got) != 0 {
			t.Fatalf("after ResetQuotas: %+v", got)
		}
	}
	got, err = s.KeyCounters(ctx, "b", "0000-00-00", "9999-99-99")
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("ResetQuotas touched another key: %+v", got)
	}
	// The usage history survives the reset; a reset's own increments count
	// calls for the history only.
	must(t, s.AddCounters(ctx, []gatehouse.Counter{{ClientID: "a", Period: "2025-02-01", Count: 0, Calls: 5}}))
	got, err = s.UsageDays(ctx, "a", "2025-01-01", "2025-02-28")
	must(t, err)
	want = []gatehouse.Counter{ctr("a", "2025-01-30", 3), ctr("a", "2025-01-31", 10), ctr("a", "2025-02-01", 7)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("UsageDays after reset = %+v, want %+v", got, want)
	}
	if got, _ := s.KeyCounters(ctx, "a", "0000-00-00", "9999-99-99"); len(got) != 0 {
		t.Fatalf("history-only increments reached the quota counters: %+v", got)
	}

	// Sorting by last use: most recent first, never-used keys last.
	seedKey(t, s, "c")
	ks, _, err := s.ListAPIKeys(ctx, gatehouse.KeyFilter{Sort: gatehouse.SortLastUsed}, gatehouse.Page{})
	must(t, err)
	if len(ks) != 3 || ks[0].ClientID != "a" || ks[1].ClientID != "b" || ks[2].ClientID != "c" {
		t.Fatalf("sort by last use: %v", ks)
	}
	_, _, err = s.ListAPIKeys(ctx, gatehouse.KeyFilter{Sort: "size"}, gatehouse.Page{})
	wantErr(t, err, gatehouse.KindInvalid, "sort")
}

func TestUsersSessionsMeta(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)

	must(t, s.CreateUser(ctx, "admin", "hash1"))
	wantErr(t, s.CreateUser(ctx, "admin", "hash2"), gatehouse.KindConflict, "")
	h, err := s.UserPasswordHash(ctx, "admin")
	must(t, err)
	if h != "hash1" {
		t.Fatalf("hash = %q", h)
	}
	must(t, s.SetUserPassword(ctx, "admin", "hash3"))
	if h, _ = s.UserPasswordHash(ctx, "admin"); h != "hash3" {
		t.Fatalf("hash after set = %q", h)
	}
	wantErr(t, s.SetUserPassword(ctx, "ghost", "x"), gatehouse.KindNotFound, "")
	_, err = s.UserPasswordHash(ctx, "ghost")
	wantErr(t, err, gatehouse.KindNotFound, "")

	now := time.Now().Unix()
	live := gatehouse.Session{TokenHash: "t1", Username: "admin", CSRFToken: "c1", ExpiresAt: now + 3600}
	old := gatehouse.Session{TokenHash: "t2", Username: "admin", CSRFToken: "c2", ExpiresAt: now - 1}
	must(t, s.CreateSession(ctx, live))
	must(t, s.CreateSession(ctx, old))
	wantErr(t, s.CreateSession(ctx, gatehouse.Session{TokenHash: "t3", Username: "ghost", ExpiresAt: now + 10}), gatehouse.KindNotFound, "")

	got, err := s.GetSession(ctx, "t1")
	must(t, err)
	live.Role = gatehouse.RoleAdmin // GetSession reads the user's role
	if got != live {
		t.Fatalf("GetSession = %+v, want %+v", got, live)
	}
	_, err = s.GetSession(ctx, "t2")
	wantErr(t, err, gatehouse.KindNotFound, "")
	_, err = s.GetSession(ctx, "nope")
	wantErr(t, err, gatehouse.KindNotFound, "")

	// Expiry is exclusive: a session is gone at its expires_at second.
	if _, err := s.getSession(ctx, "t1", live.ExpiresAt-1); err != nil {
		t.Fatalf("session one second before expiry: %v", err)
	}
	_, err = s.getSession(ctx, "t1", live.ExpiresAt)
	wantErr(t, err, gatehouse.KindNotFound, "")

	must(t, s.DeleteExpiredSessions(ctx, now))
	if n := rowCounts(t, s)["sessions"]; n != 1 {
		t.Fatalf("sessions after DeleteExpiredSessions = %d, want 1", n)
	}
	must(t, s.DeleteSession(ctx, "t1"))
	must(t, s.DeleteSession(ctx, "t1")) // logging out twice is fine
	_, err = s.GetSession(ctx, "t1")
	wantErr(t, err, gatehouse.KindNotFound, "")

	_, ok, err := s.GetMeta(ctx, "bootstrapped")
	must(t, err)
	if ok {
		t.Fatal("unset meta reported set")
	}
	must(t, s.SetMeta(ctx, "bootstrapped", "1"))
	must(t, s.SetMeta(ctx, "bootstrapped", "2"))
	v, ok, err := s.GetMeta(ctx, "bootstrapped")
	must(t, err)
	if !ok || v != "2" {
		t.Fatalf("GetMeta = %q, %v", v, ok)
	}
}

func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s := openAt(t, path)
	g := seedGroup(t, s, "g1")
	p := seedPlugin(t, s, "p1")
	sv := gatehouse.DefaultService()
	sv.ID, sv.GroupID, sv.Name, sv.Domain = "s1", "g1", "S", "s.io"
	sv.Targets = []gatehouse.Target{{Host: "127.0.0.1:9999", Scheme: "http"}}
	sv.Plugins = []gatehouse.PluginRef{{Ref: "p1", Config: "cfg"}}
	must(t, s.CreateService(ctx, &sv))
	k := seedKey(t, s, "k1", "group_g1")
	must(t, s.AddCounters(ctx, []gatehouse.Counter{{ClientID: "k1", Period: "2025-03", Count: 42}}))
	must(t, s.CreateUser(ctx, "admin", "h"))
	se := gatehouse.Session{TokenHash: "t", Username: "admin", CSRFToken: "c", ExpiresAt: time.Now().Unix() + 3600}
	must(t, s.CreateSession(ctx, se))
	must(t, s.SetMeta(ctx, "m", "v"))
	must(t, s.Close())

	s = openAt(t, path)
	defer s.Close()
	if got, err := s.GetGroup(ctx, "g1"); err != nil || got != g {
		t.Errorf("group after reopen = %+v, %v", got, err)
	}
	if got, err := s.GetPlugin(ctx, "p1"); err != nil || got != p {
		t.Errorf("plugin after reopen = %+v, %v", got, err)
	}
	if got, err := s.GetService(ctx, "s1"); err != nil || !reflect.DeepEqual(got, sv) {
		t.Errorf("service after reopen = %+v, %v", got, err)
	}
	if got, err := s.GetAPIKey(ctx, "k1"); err != nil || !reflect.DeepEqual(got, k) {
		t.Errorf("key after reopen = %+v, %v", got, err)
	}
	if ks, _, err := s.ListAPIKeys(ctx, gatehouse.KeyFilter{ServiceID: "s1"}, gatehouse.Page{}); err != nil || len(ks) != 1 {
		t.Errorf("key index after reopen = %+v, %v", ks, err)
	}
	if cs, err := s.KeyCounters(ctx, "k1", "2025-03", "2025-03"); err != nil || len(cs) != 1 || cs[0].Count != 42 {
		t.Errorf("counters after reopen = %+v, %v", cs, err)
	}
	if h, err := s.UserPasswordHash(ctx, "admin"); err != nil || h != "h" {
		t.Errorf("user after reopen = %q, %v", h, err)
	}
	se.Role = gatehouse.RoleAdmin
	if got, err := s.GetSession(ctx, "t"); err != nil || got != se {
		t.Errorf("session after reopen = %+v, %v", got, err)
	}
	if v, ok, err := s.GetMeta(ctx, "m"); err != nil || !ok || v != "v" {
		t.Errorf("meta after reopen = %q %v %v", v, ok, err)
	}
	var versions int
	must(t, s.r.QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&versions))
	if all, _ := loadMigrations(migrationsFS); versions != len(all) {
		t.Errorf("schema_migrations rows = %d after reopen, want %d", versions, len(all))
	}
	var mode string
	must(t, s.w.QueryRow("PRAGMA journal_mode").Scan(&mode))
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	var fk int
	must(t, s.r.QueryRow("PRAGMA foreign_keys").Scan(&fk))
	if fk != 1 {
		t.Errorf("reader foreign_keys = %d", fk)
	}
	if _, err := s.r.Exec("DELETE FROM meta"); err == nil {
		t.Error("reader pool accepted a write")
	}
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s := openAt(t, path)
	defer s.Close()

	versions := func() []int {
		rows, err := s.w.Query("SELECT version FROM schema_migrations ORDER BY version")
		must(t, err)
		defer rows.Close()
		vs := []int{}
		for rows.Next() {
			var v int
			must(t, rows.Scan(&v))
			vs = append(vs, v)
		}
		return vs
	}
	init1, err := loadMigrations(migrationsFS)
	must(t, err)

	fsys := fstest.MapFS{"0090_extra.sql": {Data: []byte("CREATE TABLE extra (x INTEGER); INSERT INTO extra VALUES (1);")}}
	var want []int
	for _, m := range init1 {
		fsys[m.name] = &fstest.MapFile{Data: []byte(m.sql)}
		want = append(want, m.version)
	}
	want = append(want, 90)
	// Only 0090 is new: the others would fail if replayed (their tables exist).
	must(t, migrate(ctx, s.w, fsys))
	must(t, migrate(ctx, s.w, fsys))
	if vs := versions(); !reflect.DeepEqual(vs, want) {
		t.Fatalf("versions = %v, want %v", vs, want)
	}
	var n int
	must(t, s.w.QueryRow("SELECT COUNT(*) FROM extra").Scan(&n))
	if n != 1 {
		t.Fatalf("0002 applied %d times", n)
	}

	// A failing migration leaves nothing behind: not its first statement, not its version.
	fsys["0091_bad.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE half (x INTEGER); SELECT * FROM no_such_table;")}
	if err := migrate(ctx, s.w, fsys); err == nil {
		t.Fatal("bad migration succeeded")
	}
	if vs := versions(); !reflect.DeepEqual(vs, want) {
		t.Fatalf("versions after failure = %v", vs)
	}
	if ok, err := exists(ctx, s.w, "SELECT 1 FROM sqlite_master WHERE name = 'half'"); err != nil || ok {
		t.Fatalf("failed migration left table half: %v %v", ok, err)
	}

	// A file from a newer binary is refused, by migrate and by Open.
	_, err = s.w.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, '0099_future.sql', 0)")
	must(t, err)
	if err := migrate(ctx, s.w, migrationsFS); err == nil {
		t.Fatal("migrate accepted a newer schema")
	}
	if s2, err := Open(ctx, path); err == nil {
		s2.Close()
		t.Fatal("Open accepted a newer schema")
	}

	for name, files := range map[string]fstest.MapFS{
		"no version":   {"init.sql": {}},
		"same version": {"0001_a.sql": {}, "1_b.sql": {}},
	} {
		if _, err := loadMigrations(files); err == nil {
			t.Errorf("%s: loadMigrations accepted %v", name, files)
		}
	}
}

func TestConcurrentWritesAndReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	const writers, each = 8, 25
	errs := make(chan error, writers*2)
	for w := 0; w < writers; w++ {
		go func() {
			for i := 0; i < each; i++ {
				k := gatehouse.DefaultAPIKey()
				if err := s.CreateAPIKey(ctx, &k); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
		go func() {
			for i := 0; i < each; i++ {
				if _, _, err := s.ListAPIKeys(ctx, gatehouse.KeyFilter{}, gatehouse.Page{PageSize: 10}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for i := 0; i < writers*2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.CountAPIKeys(ctx)
	must(t, err)
	if n != writers*each {
		t.Fatalf("CountAPIKeys = %d, want %d", n, writers*each)
	}
}
