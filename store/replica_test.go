package store

import (
	"context"
	"fmt"
	"reflect"
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
		if e.Key != nil {
			k := *e.Key
			c.Key = &k
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
	if err != nil || len(revs) != 2 || len(ents) != 1 || ents[0].Key == nil || ents[0].Key.Name != "renamed" {
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

// A rotating key reaches a worker with its previous secret and when that
// stops, by snapshot and by changes alike; each file seals secrets with its
// own key (the leader's and the worker's secrets keys differ).
func TestReplicationCarriesPreviousSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	leader, worker := newStore(t), newStore(t)
	for i, s := range []*Store{leader, worker} {
		key := make([]byte, SecretsKeySize)
		key[0] = byte(i + 1)
		must(t, s.UseSecretsKey(ctx, key))
	}
	g := gatehouse.Group{ID: "g", Name: "g"}
	must(t, leader.CreateGroup(ctx, &g))
	for _, id := range []string{"snap", "poll"} {
		k := gatehouse.DefaultAPIKey()
		k.ClientID, k.ClientSecret, k.AuthorizedEntities = id, "first-"+id, []string{"group_g"}
		must(t, leader.CreateAPIKey(ctx, &k))
	}
	if _, err := leader.RotateAPIKey(ctx, "snap", "second-snap", 24); err != nil {
		t.Fatal(err)
	}
	copySnapshot(t, leader, worker)
	from, _ := worker.Revision(ctx)
	if _, err := leader.RotateAPIKey(ctx, "poll", "second-poll", 48); err != nil {
		t.Fatal(err)
	}
	revs, ents, err := leader.ReplicaChanges(ctx, from, 100)
	if err != nil {
		t.Fatal(err)
	}
	must(t, worker.ApplyReplicated(ctx, revs, ents))

	for _, id := range []string{"snap", "poll"} {
		want, err := leader.GetAPIKey(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := worker.GetAPIKey(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.ClientSecret != "second-"+id || got.PreviousSecret != "first-"+id ||
			got.PreviousSecretValidUntil == nil || *got.PreviousSecretValidUntil != *want.PreviousSecretValidUntil {
			t.Errorf("%s on the worker: secret %q, previous %q until %v; the leader's previous is until %d",
				id, got.ClientSecret, got.PreviousSecret, got.PreviousSecretValidUntil, *want.PreviousSecretValidUntil)
		}
	}
	var n int
	must(t, worker.ScanPreviousSecrets(ctx, 0, func(string, string, int64) { n++ }))
	if n != 2 {
		t.Errorf("the worker's file accepts %d previous secrets, want 2", n)
	}
	// Sealed with the worker's own key: the leader's ciphertext is not there.
	var lsec, wsec string
	must(t, leader.r.QueryRowContext(ctx, "SELECT previous_secret FROM apikeys WHERE client_id = 'poll'").Scan(&lsec))
	must(t, worker.r.QueryRowContext(ctx, "SELECT previous_secret FROM apikeys WHERE client_id = 'poll'").Scan(&wsec))
	if !isSealed(wsec) || lsec == wsec {
		t.Errorf("the worker stores the previous secret as %q (the leader: %q): want its own sealing", wsec, lsec)
	}
}

// Keys at their defaults and keys that are not, in runs longer and shorter
// than a batch, arrive as the leader has them.
func TestSnapshotOfPlainAndOtherKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	leader, worker := newStore(t), newStore(t)
	g := gatehouse.Group{ID: "g", Name: "g"}
	must(t, leader.CreateGroup(ctx, &g))
	var ks []gatehouse.APIKey
	for i := range 700 {
		k := gatehouse.DefaultAPIKey()
		k.ClientID, k.ClientSecret, k.AuthorizedEntities = fmt.Sprintf("k%04d", i), fmt.Sprintf("s%d", i), []string{"group_g"}
		switch {
		case i >= 210 && i < 215:
			k.Description = "not plain"
		case i == 500:
			k.Tags = []string{"t"}
		case i == 650:
			k.ReadOnly = true
		}
		ks = append(ks, k)
	}
	must(t, leader.CreateAPIKeys(ctx, ks))
	copySnapshot(t, leader, worker)
	for _, k := range ks {
		a, err := leader.GetAPIKey(ctx, k.ClientID)
		must(t, err)
		b, err := worker.GetAPIKey(ctx, k.ClientID)
		must(t, err)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s differs:\nleader %+v\nworker %+v", k.ClientID, a, b)
		}
	}
	if _, n, _ := worker.ListAPIKeys(ctx, gatehouse.KeyFilter{GroupID: "g"}, gatehouse.Page{Page: 1, PageSize: 1}); n != 700 {
		t.Fatalf("the worker finds %d keys in the group, want 700", n)
	}
}
