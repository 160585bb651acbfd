package cluster

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/server/cluster/clustertest"
	"gatehouse/server/quota"
)

// At most N, when a node gives its slice back: calls the node admits while
// the give-back is on its way must not be taken from the slice Redis is
// taking back (Redis frees all of it), or another node admits them again.
// The give-back is the idle one (the node's clock moved 11 s), held on its
// way by Redis stopped for a moment.
func TestCallsDuringAGiveBackAreNotAdmittedTwice(t *testing.T) {
	r := clustertest.StartRedis(t)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func(c *QuotaConfig) { c.Now = func() time.Time { return time.Unix(0, now.Load()) } }
	a := newNode(t, r.URL, "a", true, clock)
	b := newNode(t, r.URL, "b", false, clock)
	const n = 1000
	l := quota.Limits{Throttling: 1_000_000, Daily: n, Monthly: 1_000_000}
	total := int64(0)
	for range 200 { // a's slices grow with its rate
		if a.Take("k", l).Allowed {
			total++
		}
	}
	st := a.lookup("k")
	state := func() (held, used int64, inFlight bool) {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.held, st.used, st.refill != nil
	}
	waitFor(t, "a's calls reported", func() bool { _, used, inFlight := state(); return used == 0 && !inFlight })
	if held, _, _ := state(); held < 5 {
		t.Fatalf("a holds %d calls: too few for the test", held)
	}

	r.Stop()
	now.Add(int64(11 * time.Second)) // a's key is idle: its slice goes back
	waitFor(t, "a's give-back on its way", func() bool { _, _, inFlight := state(); return inFlight })
	var wg sync.WaitGroup
	var admitted atomic.Int64
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a.Take("k", l).Allowed {
				admitted.Add(1)
			}
		}()
	}
	// The calls are either admitted from what a holds or waiting on Redis.
	waitFor(t, "the calls admitted or waiting", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return admitted.Load()+st.waiting == 5
	})
	r.Continue()
	wg.Wait()
	total += admitted.Load()
	for {
		got := race([]*Quotas{a, b}, "k", l, 4, 100)
		total += got
		if got == 0 {
			break
		}
	}
	if total > n {
		t.Fatalf("%d calls admitted on dailyQuota %d", total, n)
	}
}
