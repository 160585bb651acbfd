package store

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"gatehouse"
)

// recorder is a Follower that keeps what it is handed. Each Prepare sees the
// write's uncommitted state; each install runs after the commit.
type recorder struct {
	mu        sync.Mutex
	rev       int64
	changes   []gatehouse.Change
	fail      error                      // returned by Prepare when set
	inPrepare func(v *View)              // called inside Prepare
	inInstall func(c []gatehouse.Change) // called inside install
}

func (r *recorder) Revision() int64 { r.mu.Lock(); defer r.mu.Unlock(); return r.rev }

func (r *recorder) Prepare(ctx context.Context, v *View, cs []gatehouse.Change) (func(), error) {
	if r.inPrepare != nil {
		r.inPrepare(v)
	}
	if r.fail != nil {
		return nil, r.fail
	}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.changes = append(r.changes, cs...)
		r.rev = cs[len(cs)-1].Revision
		if r.inInstall != nil {
			r.inInstall(cs)
		}
	}, nil
}

func (r *recorder) Abandoned(context.Context) {}

func (r *recorder) take() []gatehouse.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := r.changes
	r.changes = nil
	return cs
}

func TestChangeLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	seedGroup(t, s, "g0") // before any follower: a revision the follower never sees
	f := &recorder{rev: 1}
	s.SetFollower(f)

	// Installs run after the commit: what they were handed is readable
	// through the reader pool.
	f.inInstall = func(cs []gatehouse.Change) {
		for _, c := range cs {
			if c.Kind == gatehouse.KindAPIKey && c.Op == gatehouse.OpCreate {
				if _, err := s.GetAPIKey(ctx, c.ID); err != nil {
					t.Errorf("in install, key %s not committed: %v", c.ID, err)
				}
			}
		}
	}

	k := gatehouse.APIKey{ClientID: "k1", AuthorizedEntities: []string{"group_g1"}}
	p := gatehouse.DefaultPlugin()
	p.ID, p.Name = "p1", "P"
	steps := []struct {
		name  string
		write func(ctx context.Context) error
		want  []gatehouse.Change // nil: the write fails and makes no revision
	}{
		{"create group", func(ctx context.Context) error { return s.CreateGroup(ctx, &gatehouse.Group{ID: "g1", Name: "G"}) },
			[]gatehouse.Change{{Kind: "group", ID: "g1", Op: "create"}}},
		{"duplicate group", func(ctx context.Context) error { return s.CreateGroup(ctx, &gatehouse.Group{ID: "g1", Name: "G"}) }, nil},
		{"update group", func(ctx context.Context) error { return s.UpdateGroup(ctx, &gatehouse.Group{ID: "g1", Name: "G2"}) },
			[]gatehouse.Change{{Kind: "group", ID: "g1", Op: "update"}}},
		{"update missing group", func(ctx context.Context) error { return s.UpdateGroup(ctx, &gatehouse.Group{ID: "zz", Name: "G"}) }, nil},
		{"create key", func(ctx context.Context) error { return s.CreateAPIKey(ctx, &k) },
			[]gatehouse.Change{{Kind: "apikey", ID: "k1", Op: "create"}}},
		{"update key", func(ctx context.Context) error { k.ClientName = "n"; return s.UpdateAPIKey(ctx, &k) },
			[]gatehouse.Change{{Kind: "apikey", ID: "k1", Op: "update"}}},
		{"reset quotas", func(ctx context.Context) error { return s.ResetQuotas(ctx, "k1") },
			[]gatehouse.Change{{Kind: "apikey", ID: "k1", Op: "reset-quotas"}}},
		{"reset quotas of no key", func(ctx context.Context) error { return s.ResetQuotas(ctx, "nope") }, nil},
		{"create plugin", func(ctx context.Context) error { return s.CreatePlugin(ctx, &p, []byte("w")) },
			[]gatehouse.Change{{Kind: "plugin", ID: "p1", Op: "create"}}},
		{"replace wasm", func(ctx context.Context) error { _, err := s.ReplacePluginWasm(ctx, "p1", []byte("w2")); return err },
			[]gatehouse.Change{{Kind: "plugin", ID: "p1", Op: "update"}}},
		{"delete key", func(ctx context.Context) error { return s.DeleteAPIKey(ctx, "k1") },
			[]gatehouse.Change{{Kind: "apikey", ID: "k1", Op: "delete"}}},
		{"delete missing key", func(ctx context.Context) error { return s.DeleteAPIKey(ctx, "k1") }, nil},
		{"delete plugin", func(ctx context.Context) error { return s.DeletePlugin(ctx, "p1") },
			[]gatehouse.Change{{Kind: "plugin", ID: "p1", Op: "delete"}}},
		{"create user", func(ctx context.Context) error { return s.CreateUser(ctx, "ann", "h") },
			[]gatehouse.Change{{Kind: "user", ID: "ann", Op: "create"}}},
		{"delete group", func(ctx context.Context) error { return s.DeleteGroup(ctx, "g1") },
			[]gatehouse.Change{{Kind: "group", ID: "g1", Op: "delete"}}},
	}
	rev := int64(1)
	for _, st := range steps {
		wctx, rec := gatehouse.WithRevisionRecorder(gatehouse.WithActor(ctx, "apikey:admin"))
		err := st.write(wctx)
		got := f.take()
		if st.want == nil {
			if err == nil {
				t.Fatalf("%s: succeeded, want an error", st.name)
			}
			if len(got) != 0 || rec.Revision() != 0 {
				t.Fatalf("%s: failed write made changes %v, revision %d", st.name, got, rec.Revision())
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		rev++
		for i := range st.want {
			st.want[i].Revision = rev
		}
		if !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s: follower got %+v, want %+v", st.name, got, st.want)
		}
		if rec.Revision() != rev {
			t.Fatalf("%s: recorded revision %d, want %d", st.name, rec.Revision(), rev)
		}
	}
	if head, err := s.Revision(ctx); err != nil || head != rev {
		t.Fatalf("Revision = %d, %v; want %d", head, err, rev)
	}
	var actor string
	if err := s.r.QueryRow("SELECT actor FROM revisions WHERE revision = ?", rev).Scan(&actor); err != nil || actor != "apikey:admin" {
		t.Fatalf("actor = %q, %v", actor, err)
	}

	// Counters, sessions and meta are not configuration: no revision.
	must(t, s.SetMeta(ctx, "a", "b"))
	must(t, s.AddCounters(ctx, []gatehouse.Counter{{ClientID: "x", Period: "2025-01", Count: 1}}))
	if head, _ := s.Revision(ctx); head != rev || len(f.take()) != 0 {
		t.Fatalf("unrelated writes made revision %d (was %d)", head, rev)
	}

	// Changes reads the log back for a reader that holds a revision.
	cs, err := s.Changes(ctx, 1, 2)
	must(t, err)
	if len(cs) != 2 || cs[0].Revision != 2 || cs[1].Revision != 3 || cs[0].ID != "g1" {
		t.Fatalf("Changes(1, 2) = %+v", cs)
	}
}

// A write the follower cannot prepare is rolled back whole: nothing of it,
// nor its revision, is committed.
func TestChangeLogPrepareFailureRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	seedGroup(t, s, "g")
	f := &recorder{rev: 1, fail: errors.New("cannot build the routing table")}
	s.SetFollower(f)
	var sawUncommitted bool
	f.inPrepare = func(v *View) {
		// Prepare reads the write's own, uncommitted state.
		svs, err := v.AllServices(ctx)
		sawUncommitted = err == nil && len(svs) == 1 && svs[0].ID == "s"
	}
	before := rowCounts(t, s)
	sv := gatehouse.DefaultService()
	sv.ID, sv.GroupID, sv.Name, sv.Domain = "s", "g", "S", "s.example.com"
	sv.Targets = []gatehouse.Target{{Host: "127.0.0.1:1"}}
	if err := s.CreateService(ctx, &sv); err == nil || gatehouse.KindOf(err) != gatehouse.KindInternal {
		t.Fatalf("CreateService = %v, want the follower's internal error", err)
	}
	if !sawUncommitted {
		t.Fatal("Prepare did not see the write's uncommitted service")
	}
	if after := rowCounts(t, s); !reflect.DeepEqual(before, after) {
		t.Fatalf("rows changed: %v -> %v", before, after)
	}
	if _, err := s.GetService(ctx, "s"); gatehouse.KindOf(err) != gatehouse.KindNotFound {
		t.Fatalf("service committed: %v", err)
	}
}

// Writes made by another process on the same file reach the follower through
// Follow, in revision order, each once.
func TestFollowOtherWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s := openAt(t, path)
	defer s.Close()
	other := openAt(t, path) // as `gatehouse admin` would open it
	defer other.Close()
	f := &recorder{}
	s.SetFollower(f)

	must(t, s.Follow(ctx)) // nothing to hand over yet
	seedGroup(t, other, "g")
	seedKey(t, other, "k", "group_g")
	must(t, other.DeleteAPIKey(ctx, "k"))
	must(t, s.Follow(ctx))
	got := f.take()
	want := []gatehouse.Change{
		{Revision: 1, Kind: "group", ID: "g", Op: "create"},
		{Revision: 2, Kind: "apikey", ID: "k", Op: "create"},
		{Revision: 3, Kind: "apikey", ID: "k", Op: "delete"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Follow handed %+v, want %+v", got, want)
	}
	must(t, s.Follow(ctx))
	if got := f.take(); len(got) != 0 {
		t.Fatalf("second Follow handed %+v again", got)
	}
	// A write through s itself hands over the other writer's changes first.
	seedGroup(t, other, "g2")
	seedGroup(t, s, "g3")
	got = f.take()
	if len(got) != 2 || got[0].ID != "g2" || got[1].ID != "g3" || got[0].Revision != 4 || got[1].Revision != 5 {
		t.Fatalf("write after another's handed %+v", got)
	}
}
