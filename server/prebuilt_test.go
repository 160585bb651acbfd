package server

import (
	"fmt"
	"log/slog"
	"testing"

	"gatehouse/server/keys"
	"gatehouse/store"
)

// The snapshot's prebuilt index is taken only for its own revision and
// only when it holds as many keys as the snapshot wrote; otherwise the
// follower reads the keys back (nil).
func TestPrebuiltIndexIsTakenOnlyWhole(t *testing.T) {
	s := &Server{keys: keys.NewIndex(), log: slog.New(slog.DiscardHandler)}
	build := func(rev int64, n int) {
		ch := s.prebuild(rev)
		for i := range n {
			ch <- &store.ReplicaKey{ClientID: fmt.Sprintf("k%d", i), Secret: "s", Enabled: true, Entities: `["group_g"]`}
		}
		close(ch)
	}
	build(7, 3)
	if ix := s.takePrebuilt(8, 3); ix != nil {
		t.Fatal("taken for another revision")
	}
	if ix := s.takePrebuilt(7, 3); ix != nil {
		t.Fatal("taken twice: the first take, for another revision, dropped it")
	}
	build(7, 3)
	if ix := s.takePrebuilt(7, 4); ix != nil {
		t.Fatal("taken with 3 keys where the snapshot wrote 4")
	}
	build(9, 3)
	ix := s.takePrebuilt(9, 3)
	if ix == nil {
		t.Fatal("a whole index was not taken")
	}
	s.keys.Replace(ix)
	if k, ok := s.keys.Get("k2"); !ok || !k.InGroup("g") || !k.Enabled {
		t.Fatalf("k2 after the swap: %+v %v", k, ok)
	}
	build(10, 1)
	ch := s.prebuild(11) // a key whose entities do not decode: not taken
	ch <- &store.ReplicaKey{ClientID: "bad", Entities: `[1`}
	close(ch)
	if ix := s.takePrebuilt(11, 1); ix != nil {
		t.Fatal("an index with a key that did not decode was taken")
	}
}
