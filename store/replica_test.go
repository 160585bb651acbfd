package store

import (
	"context"
	"fmt"
	"testing"

	"gatehouse"
)

// copySnapshot hands src's snapshot to dst, as a worker takes its leader's.
func copySnapshot(t *testing.T, src, dst *Store) {
	t.Helper()
	ctx := context.Background()
	var rev int64
	var ents []*ReplicaEntity
	if err := src.Snapshot(ctx, func(r int64) error { rev = r; return nil }, func(e *ReplicaEntity) error {
		c := *e
		if e.APIKey != nil {
			k := *e.APIKey
			c.APIKey = &k
		}
		ents = append(ents, &c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	i := 0
	if err := dst.ApplySnapshot(ctx, rev, func() (*ReplicaEntity, error) {
		if i == len(ents) {
			return nil, nil
		}
		i++
		return ents[i-1], nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotCopiesEveryKeyWithItsEntities(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	leader, worker := newStore(t), newStore(t)
	for _, g := range []string{"g1", "g2"} {
		grp := gatehouse.Group{ID: g, Name: g}
		if err := leader.CreateGroup(ctx, &grp); err != nil {
			t.Fatal(err)
		}
	}
	// 250 keys: two whole batches and a remainder; every third on both groups.
	var ks []gatehouse.APIKey
	for i := range 250 {
		k := gatehouse.DefaultAPIKey()
		k.ClientID, k.ClientSecret = fmt.Sprintf("k%03d", i), "s"
		k.AuthorizedEntities = []string{"group_g1"}
		if i%3 == 0 {
			k.AuthorizedEntities = append(k.AuthorizedEntities, "group_g2")
		}
		k.Metadata = map[string]string{"n": fmt.Sprint(i)}
		ks = append(ks, k)
	}
	if err := leader.CreateAPIKeys(ctx, ks); err != nil {
		t.Fatal(err)
	}
	// The worker had a key the leader does not: it goes.
	gone := gatehouse.DefaultAPIKey()
	gone.ClientID, gone.ClientSecret = "gone", "s"
	if err := worker.CreateAPIKey(ctx, &gone); err != nil {
		t.Fatal(err)
	}
	copySnapshot(t, leader, worker)

	for _, c := range []struct {
		f    gatehouse.KeyFilter
		want int
	}{{gatehouse.KeyFilter{}, 250}, {gatehouse.KeyFilter{GroupID: "g1"}, 250}, {gatehouse.KeyFilter{GroupID: "g2"}, 84}} {
		_, n, err := worker.ListAPIKeys(ctx, c.f, gatehouse.Page{Page: 1, PageSize: 10})
		if err != nil || n != c.want {
			t.Errorf("worker keys %+v: %d (%v), want %d", c.f, n, err, c.want)
		}
	}
	k, err := worker.GetAPIKey(ctx, "k248")
	if err != nil || k.Metadata["n"] != "248" || len(k.AuthorizedEntities) != 1 {
		t.Fatalf("k248 on the worker: %+v %v", k, err)
	}
	if _, err := worker.GetAPIKey(ctx, "gone"); gatehouse.KindOf(err) != gatehouse.KindNotFound {
		t.Fatalf("a key the leader never had survived the snapshot: %v", err)
	}
	lr, _ := leader.Revision(ctx)
	if wr, _ := worker.Revision(ctx); wr != lr {
		t.Fatalf("worker at revision %d, leader at %d", wr, lr)
	}
}

func TestReplicaChangesApplyInOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	leader, worker := newStore(t), newStore(t)
	g := gatehouse.Group{ID: "g", Name: "g"}
	if err := leader.CreateGroup(ctx, &g); err != nil {
		t.Fatal(err)
	}
	copySnapshot(t, leader, worker)
	from, _ := worker.Revision(ctx)
	k := gatehouse.DefaultAPIKey()
	k.ClientID, k.ClientSecret, k.AuthorizedEntities = "k", "s", []string{"group_g"}
	if err := leader.CreateAPIKey(ctx, &k); err != nil {
		t.Fatal(err)
	}
	k.ClientName = "renamed"
	if err := leader.UpdateAPIKey(ctx, &k); err != nil {
		t.Fatal(err)
	}
	if err := leader.DeleteGroup(ctx, "g"); gatehouse.KindOf(err) != gatehouse.KindConflict {
		t.Fatalf("delete a group a key names: %v", err)
	}
	revs, ents, err := leader.ReplicaChanges(ctx, from, 100)
	if err != nil || len(revs) != 2 || len(ents) != 1 || ents[0].APIKey == nil || ents[0].APIKey.ClientName != "renamed" {
		t.Fatalf("changes after %d: %d revisions, %+v, %v", from, len(revs), ents, err)
	}
	if err := worker.ApplyReplicated(ctx, revs, ents); err != nil {
		t.Fatal(err)
	}
	got, err := worker.GetAPIKey(ctx, "k")
	if err != nil || got.ClientName != "renamed" {
		t.Fatalf("worker's key: %+v %v", got, err)
	}
	// The same batch again changes nothing; a gap is refused.
	if err := worker.ApplyReplicated(ctx, revs, ents); err != nil {
		t.Fatal(err)
	}
	if err := worker.ApplyReplicated(ctx, []ReplicaRevision{{Revision: revs[1].Revision + 5}}, nil); err == nil {
		t.Fatal("a batch after a gap was applied")
	}
	head, _ := leader.Revision(ctx)
	if _, _, err := leader.ReplicaChanges(ctx, head+3, 100); err != ErrNoChanges {
		t.Fatalf("changes after a revision the leader never had: %v", err)
	}
}
