package cluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"gatehouse/server/cluster/clustertest"
	"gatehouse/server/quota"
)

func newNode(t *testing.T, url, name string, leader bool, mod func(*QuotaConfig)) *Quotas {
	t.Helper()
	cfg := QuotaConfig{Redis: url, Node: name, Leader: leader, Timeout: 2 * time.Second,
		SyncInterval: 50 * time.Millisecond, Registerer: prometheus.NewRegistry()}
	if mod != nil {
		mod(&cfg)
	}
	q, err := NewQuotas(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(context.Background()) })
	if !q.Up() {
		t.Fatalf("node %s: redis not connected", name)
	}
	return q
}

// waitFor polls cond, which reads state the nodes change on their own
// (their sync loops), until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// race sends per calls from each of clients goroutines, client i starting at
// node i and going round the nodes, and counts the admitted calls.
func race(nodes []*Quotas, id string, l quota.Limits, clients, per int) int64 {
	var ok atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if nodes[(c+i)%len(nodes)].Take(id, l).Allowed {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return ok.Load()
}

func TestRacingClientsThroughThreeNodesGetExactlyN(t *testing.T) {
	r := clustertest.StartRedis(t)
	nodes := []*Quotas{
		newNode(t, r.URL, "a", true, nil), newNode(t, r.URL, "b", false, nil), newNode(t, r.URL, "c", false, nil),
	}
	for _, n := range []int64{1, 7, 300} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			id := fmt.Sprintf("race-%d", n)
			l := quota.Limits{Throttling: 1_000_000, Daily: n, Monthly: 1_000_000}
			got := race(nodes, id, l, 48, int(n)/12+10)
			if got != n {
				t.Fatalf("48 clients through 3 nodes on dailyQuota %d: %d calls admitted", n, got)
			}
			waitFor(t, "the cluster-wide count", func() bool {
				return nodes[1].Usage(id, l).CurrentCallsPerDay == n
			})
			u := nodes[2].Usage(id, l)
			if u.RemainingCallsPerDay != 0 || u.AuthorizedCallsPerDay != n {
				t.Fatalf("usage after the race: %+v", u)
			}
		})
	}
	if reserved := testCounter(nodes[0].reservations) + testCounter(nodes[1].reservations) + testCounter(nodes[2].reservations); reserved == 0 {
		t.Fatal("no reservation counted")
	}
}

func TestUnusedSliceGoesBackOnClose(t *testing.T) {
	r := clustertest.StartRedis(t)
	a := newNode(t, r.URL, "a", true, nil)
	b := newNode(t, r.URL, "b", false, nil)
	l := quota.Limits{Throttling: 1_000_000, Daily: 1000, Monthly: 1_000_000}
	// Enough calls for a's slices to grow past one call.
	for range 200 {
		if !a.Take("k", l).Allowed {
			t.Fatal("refused")
		}
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if testCounter(a.returns) == 0 {
		t.Fatal("no reservation given back")
	}
	// b can now reserve everything a did not use.
	got := int64(0)
	for range 900 {
		if b.Take("k", l).Allowed {
			got++
		}
	}
	if got != 800 {
		t.Fatalf("after a gave back its slice, b got %d of the 800 calls left", got)
	}
}

func TestRedisStoppedThenKilledMidRun(t *testing.T) {
	r := clustertest.StartRedis(t)
	short := func(c *QuotaConfig) { c.Timeout = 200 * time.Millisecond }
	nodes := []*Quotas{newNode(t, r.URL, "a", true, short), newNode(t, r.URL, "b", false, short), newNode(t, r.URL, "c", false, short)}
	waitFor(t, "three live nodes", func() bool { return nodes[0].LiveNodes() == 3 && nodes[2].LiveNodes() == 3 })
	const n = 3000
	l := quota.Limits{Throttling: 1_000_000, Daily: n, Monthly: 1_000_000}
	total := race(nodes, "k", l, 12, 50) // 600 calls, all admitted
	if total != 600 {
		t.Fatalf("before the outage: %d of 600 admitted", total)
	}

	r.Stop()
	outage := race(nodes, "k", l, 12, 400)
	for _, q := range nodes {
		if q.Up() {
			t.Fatal("a node still believes redis is up after calls timed out")
		}
	}
	if outage == 0 {
		t.Fatal("nothing admitted while redis was stopped: no local share")
	}
	total += outage
	if total > n {
		t.Fatalf("%d calls admitted on dailyQuota %d", total, n)
	}
	r.Continue()
	waitFor(t, "redis back on every node", func() bool { return nodes[0].Up() && nodes[1].Up() && nodes[2].Up() })
	waitFor(t, "the calls admitted alone added to redis", func() bool {
		return nodes[0].Usage("k", l).CurrentCallsPerDay == total
	})

	r.Kill()
	total += race(nodes, "k", l, 12, 100)
	r.Restart()
	waitFor(t, "redis back after the kill", func() bool { return nodes[0].Up() && nodes[1].Up() && nodes[2].Up() })
	total += race(nodes, "k", l, 48, 200)
	if total > n {
		t.Fatalf("%d calls admitted on dailyQuota %d across the outages", total, n)
	}
	waitFor(t, "every admitted call counted in redis", func() bool {
		return nodes[1].Usage("k", l).CurrentCallsPerDay == total
	})
}

func TestMidnightOnTheSharedClock(t *testing.T) {
	r := clustertest.StartRedis(t)
	var clock atomic.Int64
	clock.Store(time.Date(2026, 3, 14, 23, 59, 59, 0, time.UTC).UnixMilli())
	at := func(c *QuotaConfig) { c.Clock = func() time.Time { return time.UnixMilli(clock.Load()) } }
	a := newNode(t, r.URL, "a", true, at)
	b := newNode(t, r.URL, "b", false, at)
	l := quota.Limits{Throttling: 1000, Daily: 5, Monthly: 7}
	got := race([]*Quotas{a, b}, "k", l, 4, 5)
	if got != 5 {
		t.Fatalf("first day: %d of dailyQuota 5", got)
	}
	d := b.Take("k", l)
	if d.Allowed || d.Reason != quota.Daily || d.RetryAfter != 1 {
		t.Fatalf("a second before midnight: %+v, want a daily refusal with Retry-After 1", d)
	}
	clock.Store(time.Date(2026, 3, 15, 0, 0, 0, 500e6, time.UTC).UnixMilli())
	got = race([]*Quotas{a, b}, "k", l, 4, 5)
	if got != 2 {
		t.Fatalf("after midnight: %d admitted, want the 2 the monthly quota leaves", got)
	}
	if d := a.Take("k", l); d.Allowed || d.Reason != quota.Monthly {
		t.Fatalf("after the month's 7: %+v, want a monthly refusal", d)
	}
	u := a.Usage("k", l)
	if u.CurrentCallsPerDay != 2 || u.CurrentCallsPerMonth != 7 {
		t.Fatalf("usage on the new day: %+v", u)
	}
}

func TestResetOnTheLeaderReachesEveryNode(t *testing.T) {
	r := clustertest.StartRedis(t)
	leader := newNode(t, r.URL, "leader", true, nil)
	worker := newNode(t, r.URL, "worker", false, nil)
	l := quota.Limits{Throttling: 1_000_000, Daily: 10, Monthly: 1_000_000}
	if got := race([]*Quotas{leader, worker}, "k", l, 4, 10); got != 10 {
		t.Fatalf("%d of 10", got)
	}
	// The change log hands the reset to both; the leader's starts a new generation.
	leader.Reset("k")
	worker.Reset("k")
	waitFor(t, "the reset on the worker", func() bool { return worker.Usage("k", l).CurrentCallsPerDay == 0 })
	if got := race([]*Quotas{leader, worker}, "k", l, 4, 10); got != 10 {
		t.Fatalf("after the reset: %d of 10", got)
	}
}

func TestThrottlingSharedByLiveNodes(t *testing.T) {
	r := clustertest.StartRedis(t)
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC).UnixNano())
	frozen := func(c *QuotaConfig) { c.Now = func() time.Time { return time.Unix(0, now.Load()) } }
	a := newNode(t, r.URL, "a", true, frozen)
	b := newNode(t, r.URL, "b", false, frozen)
	waitFor(t, "two live nodes", func() bool {
		a.heartbeat(false)
		b.heartbeat(false)
		return a.LiveNodes() == 2 && b.LiveNodes() == 2
	})
	l := quota.Limits{Throttling: 10, Daily: 1000, Monthly: 1000}
	// Time stands still: the burst of 10 is shared, 5 on each node.
	if got := race([]*Quotas{a, b}, "k", l, 8, 10); got != 10 {
		t.Fatalf("a burst through two nodes on throttlingQuota 10: %d admitted", got)
	}
	now.Add(int64(time.Second))
	if got := race([]*Quotas{a, b}, "k", l, 8, 10); got != 10 {
		t.Fatalf("a second later: %d admitted, want 10", got)
	}
}

func testCounter(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }

func TestSequentialCallsRoundTheNodesGetExactlyN(t *testing.T) {
	r := clustertest.StartRedis(t)
	nodes := []*Quotas{newNode(t, r.URL, "a", true, nil), newNode(t, r.URL, "b", false, nil), newNode(t, r.URL, "c", false, nil)}
	waitFor(t, "three live nodes", func() bool {
		for _, q := range nodes {
			q.heartbeat(false)
		}
		return nodes[0].LiveNodes() == 3 && nodes[1].LiveNodes() == 3 && nodes[2].LiveNodes() == 3
	})
	l := quota.Limits{Throttling: 10_000_000, Daily: 20, Monthly: 10_000_000}
	for i := range 20 {
		if d := nodes[i%3].Take("k", l); !d.Allowed {
			t.Fatalf("call %d of 20 through node %d refused: %+v", i+1, i%3, d)
		}
	}
	for i := range 3 {
		if d := nodes[i].Take("k", l); d.Allowed || d.Reason != quota.Daily {
			t.Fatalf("call 21 through node %d: %+v, want a daily refusal", i, d)
		}
	}
}
