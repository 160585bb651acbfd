package store

import (
	"context"
	"testing"

	"gatehouse"
)

// An update that leaves an entity as stored writes nothing: no revision,
// no change for the follower, no audit entry, and it reports the current
// revision to the caller. It holds with secrets sealed at rest, where the
// stored bytes differ on every write of the same secret.
func TestUpdateThatChangesNothing(t *testing.T) {
	t.Parallel()
	for _, sealed := range []bool{false, true} {
		t.Run(map[bool]string{false: "clear", true: "sealed"}[sealed], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := newStore(t)
			if sealed {
				must(t, s.UseSecretsKey(ctx, newKey32(t)))
			}
			seedGroup(t, s, "g")
			seedPlugin(t, s, "p")
			sv := seedService(t, s, "s", "g")
			sv.Plugins = []gatehouse.PluginRef{{Ref: "p", Config: "secret-config"}}
			must(t, s.UpdateService(ctx, &sv))
			seedKey(t, s, "k", "group_g")
			_, err := s.RotateAPIKey(ctx, "k", "second-secret", 3)
			must(t, err)
			must(t, s.AddUser(ctx, gatehouse.User{Name: "u", Role: gatehouse.RoleViewer}, "$2a$10$hash"))
			f := &recorder{}
			f.rev, err = s.Revision(ctx)
			must(t, err)
			s.SetFollower(f)

			same := []struct {
				name  string
				write func(ctx context.Context) error
			}{
				{"group", func(ctx context.Context) error {
					g, err := s.GetGroup(ctx, "g")
					must(t, err)
					return s.UpdateGroup(ctx, &g)
				}},
				{"service", func(ctx context.Context) error {
					sv, err := s.GetService(ctx, "s")
					must(t, err)
					return s.UpdateService(ctx, &sv)
				}},
				{"apikey", func(ctx context.Context) error {
					k, err := s.GetAPIKey(ctx, "k")
					must(t, err)
					want := *k.PreviousSecretValidUntil
					err = s.UpdateAPIKey(ctx, &k)
					if k.PreviousSecretValidUntil == nil || *k.PreviousSecretValidUntil != want {
						t.Errorf("apikey: previousSecretValidUntil %v after the no-op, want %d", k.PreviousSecretValidUntil, want)
					}
					return err
				}},
				{"plugin limits", func(ctx context.Context) error {
					p, err := s.GetPlugin(ctx, "p")
					must(t, err)
					return s.UpdatePlugin(ctx, &p)
				}},
				{"plugin bytes", func(ctx context.Context) error {
					p, err := s.GetPlugin(ctx, "p")
					must(t, err)
					got, err := s.ReplacePluginWasm(ctx, "p", []byte("\x00asm\x01\x00\x00\x00p"))
					if got != p {
						t.Errorf("plugin bytes: answered %+v, want %+v", got, p)
					}
					return err
				}},
				{"user role", func(ctx context.Context) error { return s.UpdateUser(ctx, "u", gatehouse.RoleViewer, "") }},
				{"user nothing", func(ctx context.Context) error { return s.UpdateUser(ctx, "u", "", "") }},
			}
			for _, c := range same {
				rev, err := s.Revision(ctx)
				must(t, err)
				rows := rowCounts(t, s)
				rows["audit"], rows["audit_state"] = count(t, s, "audit"), count(t, s, "audit_state")
				wctx, rec := gatehouse.WithRevisionRecorder(ctx)
				if err := c.write(wctx); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if got, _ := s.Revision(ctx); got != rev {
					t.Errorf("%s: revision %d, want %d", c.name, got, rev)
				}
				if rec.Revision() != rev {
					t.Errorf("%s: the caller is told revision %d, want the current %d", c.name, rec.Revision(), rev)
				}
				if cs := f.take(); len(cs) != 0 {
					t.Errorf("%s: the follower was handed %v", c.name, cs)
				}
				now := rowCounts(t, s)
				now["audit"], now["audit_state"] = count(t, s, "audit"), count(t, s, "audit_state")
				for tb, n := range now {
					if rows[tb] != n {
						t.Errorf("%s: table %s has %d rows, had %d", c.name, tb, n, rows[tb])
					}
				}
			}
			entries, _, err := s.ListAudit(ctx, gatehouse.AuditFilter{}, gatehouse.Page{})
			must(t, err)
			rev, _ := s.Revision(ctx)
			if len(entries) == 0 || entries[0].Revision != rev {
				t.Fatalf("newest audit entry is not of revision %d: %+v", rev, entries)
			}

			// A real change still makes exactly one revision.
			g, err := s.GetGroup(ctx, "g")
			must(t, err)
			g.Description = "changed"
			must(t, s.UpdateGroup(ctx, &g))
			if cs := f.take(); len(cs) != 1 || cs[0] != (gatehouse.Change{Revision: rev + 1, Kind: gatehouse.KindGroup, ID: "g", Op: gatehouse.OpUpdate}) {
				t.Errorf("a real change handed the follower %v", cs)
			}
			must(t, s.UpdateUser(ctx, "u", gatehouse.RoleAdmin, ""))
			if got, _ := s.Revision(ctx); got != rev+2 {
				t.Errorf("after two real changes: revision %d, want %d", got, rev+2)
			}
		})
	}
}

func count(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.r.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}
