package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"gatehouse"
	"gatehouse/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newReplicaOf serves leader's cluster routes on loopback and returns a
// replica of them writing into worker.
func newReplicaOf(t *testing.T, leader, worker *store.Store) *Replica {
	t.Helper()
	l := NewLeader(LeaderConfig{Store: leader, Token: "t", Logger: slog.New(slog.DiscardHandler),
		Revision: func() int64 {
			rev, _ := leader.Revision(context.Background())
			return rev
		},
		WaitRevision: func(int64) <-chan struct{} { return nil }})
	srv := httptest.NewServer(l.Handler())
	t.Cleanup(srv.Close)
	r, err := NewReplica(ReplicaConfig{Leader: srv.URL, Token: "t", Store: worker, PollWait: time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	must(t, err)
	return r
}

// The leader's configuration reaches a worker's file through both routes:
// a snapshot, then changes; every key field, the previous secret of a
// rotation included, arrives as the leader has it.
func TestSnapshotThenChangesOverTheWire(t *testing.T) {
	ctx := context.Background()
	leader, worker := openStore(t), openStore(t)
	g := gatehouse.Group{ID: "g", Name: "g"}
	must(t, leader.CreateGroup(ctx, &g))
	sv := gatehouse.DefaultService()
	sv.ID, sv.GroupID, sv.Name, sv.Domain = "s", "g", "s", "example.test"
	sv.Targets = []gatehouse.Target{{Host: "127.0.0.1:1", Scheme: "http"}}
	must(t, leader.CreateService(ctx, &sv))
	until := time.Now().Add(time.Hour).UnixMilli()
	var ks []gatehouse.APIKey
	for i := range 600 { // three batches of the snapshot writer and a remainder
		k := gatehouse.DefaultAPIKey()
		k.ClientID, k.ClientSecret = fmt.Sprintf("k%03d", i), fmt.Sprintf("secret-%d", i)
		k.ClientName, k.Description = "name é "+k.ClientID, "desc"
		k.AuthorizedEntities = []string{"group_g", "service_s"}
		k.Metadata, k.Tags = map[string]string{"i": fmt.Sprint(i)}, []string{"t1", "t2"}
		k.ThrottlingQuota, k.DailyQuota, k.MonthlyQuota = int64(i), int64(i)*10, 1<<40
		k.Enabled, k.ReadOnly, k.AllowClientIDOnly = i%2 == 0, i%3 == 0, i%5 == 0
		if i%7 == 0 {
			k.ValidUntil = &until
		}
		ks = append(ks, k)
	}
	must(t, leader.CreateAPIKeys(ctx, ks))
	if _, err := leader.RotateAPIKey(ctx, "k001", "rotated", 24); err != nil {
		t.Fatal(err)
	}
	r := newReplicaOf(t, leader, worker)
	must(t, r.step(ctx)) // an empty file: a snapshot
	sameKeys(t, leader, worker, 600)

	k := ks[2]
	k.ClientName, k.Tags = "renamed", []string{"new"}
	must(t, leader.UpdateAPIKey(ctx, &k))
	must(t, leader.DeleteAPIKey(ctx, "k003"))
	if _, err := leader.RotateAPIKey(ctx, "k004", "rotated-4", 48); err != nil {
		t.Fatal(err)
	}
	must(t, r.step(ctx)) // changes
	sameKeys(t, leader, worker, 599)
	lr, _ := leader.Revision(ctx)
	if wr, _ := worker.Revision(ctx); wr != lr {
		t.Fatalf("worker at revision %d, leader at %d", wr, lr)
	}
}

func sameKeys(t *testing.T, leader, worker *store.Store, want int) {
	t.Helper()
	ctx := context.Background()
	lk, n, err := leader.ListAPIKeys(ctx, gatehouse.KeyFilter{}, gatehouse.Page{Page: 1, PageSize: 1000})
	must(t, err)
	wk, m, err := worker.ListAPIKeys(ctx, gatehouse.KeyFilter{}, gatehouse.Page{Page: 1, PageSize: 1000})
	must(t, err)
	if n != want || m != want {
		t.Fatalf("leader has %d keys, worker %d, want %d", n, m, want)
	}
	for i := range lk {
		a, err := leader.GetAPIKey(ctx, lk[i].ClientID)
		must(t, err)
		b, err := worker.GetAPIKey(ctx, wk[i].ClientID)
		must(t, err)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("key %d differs:\nleader %+v\nworker %+v", i, a, b)
		}
	}
	_, n, _ = worker.ListAPIKeys(ctx, gatehouse.KeyFilter{ServiceID: "s"}, gatehouse.Page{Page: 1, PageSize: 1})
	if n != want {
		t.Fatalf("the worker finds %d keys by service, want %d", n, want)
	}
}

// Every key field survives the binary form, and every truncation of it is
// refused.
func TestKeyRecordRoundTrip(t *testing.T) {
	a, b, c := int64(1), int64(-2), int64(1<<50)
	for _, k := range []store.ReplicaKey{
		{ClientID: "x"},
		{ClientID: "id", Secret: "s", Name: "n", Description: "d", Enabled: true, ClientIDOnly: true, ReadOnly: true,
			Throttling: -1, Daily: 1 << 62, Monthly: 3, ValidUntil: &a, Entities: `["group_g"]`, Metadata: `{"a":"b"}`,
			Tags: `[]`, RotationEnabled: true, RotationEvery: 744, RotationGrace: 168, PreviousSecret: "old",
			PreviousUntil: &b, RotatedAt: &c},
	} {
		enc := appendKey(nil, &k)
		got, err := decodeKey(enc)
		if err != nil || !reflect.DeepEqual(*got, k) {
			t.Fatalf("round trip of %+v: %+v, %v", k, got, err)
		}
		for n := range len(enc) {
			if _, err := decodeKey(enc[:n]); err == nil {
				t.Fatalf("%d of %d bytes decoded", n, len(enc))
			}
		}
	}
}

// wireSample is a whole changes answer, for the fuzzer's seed.
func wireSample(t testing.TB) []byte {
	var buf bytes.Buffer
	v := int64(5)
	err := writeChanges(&buf, 7, []store.ReplicaRevision{{Revision: 7, At: 1, Actor: "a",
		Changes: []gatehouse.Change{{Revision: 7, Kind: gatehouse.KindAPIKey, ID: "k", Op: gatehouse.OpUpdate}}}},
		[]store.ReplicaEntity{{Kind: gatehouse.KindAPIKey, ID: "k", Key: &store.ReplicaKey{ClientID: "k", ValidUntil: &v,
			Entities: "[]", Metadata: "{}", Tags: "[]"}}, {Kind: gatehouse.KindGroup, ID: "gone"}})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A stream cut anywhere before its end is refused, never applied in part.
func TestChangesCutShortAreRefused(t *testing.T) {
	b := wireSample(t)
	head, revs, ents, err := readChanges(bytes.NewReader(b))
	if err != nil || head != 7 || len(revs) != 1 || len(ents) != 2 || ents[0].Key.ClientID != "k" || *ents[0].Key.ValidUntil != 5 {
		t.Fatalf("readChanges: %d %+v %+v %v", head, revs, ents, err)
	}
	for n := range len(b) {
		if _, _, _, err := readChanges(bytes.NewReader(b[:n])); err == nil {
			t.Fatalf("a stream cut at %d of %d bytes was read", n, len(b))
		}
	}
}

// The worker parses what a leader sends: whatever the bytes, it answers
// an error or a stream that encodes back to an equal one, never a panic.
func FuzzReadChanges(f *testing.F) {
	f.Add(wireSample(f))
	f.Add([]byte(wireMagic + "H\x01\x00Z\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		head, revs, ents, err := readChanges(bytes.NewReader(b))
		if err != nil {
			return
		}
		var again bytes.Buffer
		if err := writeChanges(&again, head, revs, ents); err != nil {
			t.Fatal(err)
		}
		h2, r2, e2, err := readChanges(&again)
		if err != nil || h2 != head || len(r2) != len(revs) || len(e2) != len(ents) {
			t.Fatalf("re-encoded stream: %d %d %d %v", h2, len(r2), len(e2), err)
		}
		_, _ = io.Copy(io.Discard, &again)
	})
}
