package cluster

import (
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/server/cluster/clustertest"
	"gatehouse/server/quota"
)

// A throttling quota below the number of live nodes is one bucket in Redis:
// three nodes pass one call of throttlingQuota 1 between them, not one each,
// then one a second; refused calls are refused without asking Redis again
// until the bucket has a call; and with Redis gone each node's own bucket
// decides, so that no call waits on it.
func TestThrottlingBelowTheLiveNodesIsOneBucket(t *testing.T) {
	r := clustertest.StartRedis(t)
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC).UnixNano())
	clocks := func(c *QuotaConfig) {
		c.Now = func() time.Time { return time.Unix(0, now.Load()) }
		c.Clock = c.Now // Redis's clock moves with the local one
	}
	nodes := []*Quotas{newNode(t, r.URL, "a", true, clocks), newNode(t, r.URL, "b", false, clocks), newNode(t, r.URL, "c", false, clocks)}
	waitFor(t, "three live nodes", func() bool {
		for _, q := range nodes {
			q.heartbeat(false)
		}
		return nodes[0].LiveNodes() == 3 && nodes[1].LiveNodes() == 3 && nodes[2].LiveNodes() == 3
	})
	l := quota.Limits{Throttling: 1, Daily: 1000, Monthly: 1000}
	if got := race(nodes, "k", l, 12, 10); got != 1 {
		t.Fatalf("a burst through three nodes on throttlingQuota 1: %d admitted, want 1", got)
	}
	d := nodes[1].Take("k", l)
	if d.Allowed || d.Reason != quota.Throttling || d.RetryAfter != 1 {
		t.Fatalf("the next call: %+v, want a throttling refusal with Retry-After 1", d)
	}
	calls := testCounter(nodes[2].redisCalls)
	for range 100 {
		if nodes[2].Take("k", l).Allowed {
			t.Fatal("admitted within the second")
		}
	}
	if asked := testCounter(nodes[2].redisCalls) - calls; asked > 2 {
		t.Fatalf("100 refused calls asked Redis %v times", asked)
	}
	now.Add(int64(time.Second))
	if got := race(nodes, "k", l, 12, 10); got != 1 {
		t.Fatalf("a second later: %d admitted, want 1", got)
	}

	r.Kill()
	now.Add(int64(time.Second))
	ok := 0
	for _, q := range nodes {
		start := time.Now()
		if q.Take("k", l).Allowed {
			ok++
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("a call with redis gone waited %v", d)
		}
	}
	if ok == 0 {
		t.Fatal("nothing admitted with redis gone: no node's own bucket decided")
	}
}
