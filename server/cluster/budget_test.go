package cluster

import (
	"sync"
	"testing"

	"gatehouse/server/cluster/clustertest"
	"gatehouse/server/quota"
)

// At most N, when a node's outage budget is all that is left: a node whose
// call to Redis is slow (Redis stopped for a moment) admits from its budget
// meanwhile, and the slice that call brings back must not be taken out of
// that same budget, or the node admits both.
func TestASliceNeverTakesTheBudgetInUse(t *testing.T) {
	r := clustertest.StartRedis(t)
	a := newNode(t, r.URL, "a", true, nil)
	b := newNode(t, r.URL, "b", false, nil)
	waitFor(t, "two live nodes", func() bool {
		a.heartbeat(false)
		b.heartbeat(false)
		return a.LiveNodes() == 2 && b.LiveNodes() == 2
	})
	const n = 100
	l := quota.Limits{Throttling: 1_000_000, Daily: n, Monthly: 1_000_000}
	total := int64(0)
	if !a.Take("k", l).Allowed { // a's first contact sets a's budget aside
		t.Fatal("a's first call refused")
	}
	total++
	a.mu.Lock()
	st := a.keys["k"]
	a.mu.Unlock()
	st.mu.Lock()
	budget := st.budget
	st.mu.Unlock()
	if budget == 0 {
		t.Fatal("a has no budget after its first contact")
	}
	// b takes everything else, until a round of its calls admits nothing.
	for {
		got := race([]*Quotas{b}, "k", l, 4, 50)
		total += got
		if got == 0 {
			break
		}
	}

	// a's next call finds Redis stopped: a admits from its budget while the
	// call is on its way; then Redis answers it.
	r.Stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range int(budget) {
				if a.Take("k", l).Allowed {
					mu.Lock()
					total++
					mu.Unlock()
				}
			}
		}()
	}
	waitFor(t, "a admitting from its budget", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.owed+st.owedOut >= st.budget
	})
	r.Continue()
	wg.Wait()
	total += race([]*Quotas{a, b}, "k", l, 4, 50)
	if total > n {
		t.Fatalf("%d calls admitted on dailyQuota %d", total, n)
	}
}
