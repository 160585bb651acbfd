package cluster

import (
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/server/cluster/clustertest"
	"gatehouse/server/quota"
)

// "Quota time comes from one clock for all nodes (Redis's), so that every
// node agrees on when a day or month turns": the month turning at midnight
// of the 1st, and the day turning at midnight in --timezone, not in UTC,
// on two nodes at once (Redis's clock injected into the script).
func TestMonthAndTimezoneTurnOnTheSharedClock(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name          string
		loc           *time.Location
		before, after time.Time
		l             quota.Limits
		reason        quota.Reason
	}{
		{"the month turns", time.UTC, time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 500e6, time.UTC),
			quota.Limits{Throttling: 1000, Daily: 100, Monthly: 5}, quota.Monthly},
		{"the day turns in New York", ny, time.Date(2026, 7, 14, 23, 59, 59, 0, ny), time.Date(2026, 7, 15, 0, 0, 0, 500e6, ny),
			quota.Limits{Throttling: 1000, Daily: 5, Monthly: 100}, quota.Daily},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := clustertest.StartRedis(t)
			var clock atomic.Int64
			clock.Store(c.before.UnixMilli())
			at := func(q *QuotaConfig) {
				q.Clock = func() time.Time { return time.UnixMilli(clock.Load()) }
				q.Location = c.loc
			}
			a := newNode(t, r.URL, "a", true, at)
			b := newNode(t, r.URL, "b", false, at)
			if got := race([]*Quotas{a, b}, "k", c.l, 4, 5); got != 5 {
				t.Fatalf("before: %d admitted, want 5", got)
			}
			for _, q := range []*Quotas{a, b} {
				if d := q.Take("k", c.l); d.Allowed || d.Reason != c.reason || d.RetryAfter != 1 {
					t.Fatalf("a second before it turns: %+v, want a %v refusal with Retry-After 1", d, c.reason)
				}
			}
			clock.Store(c.after.UnixMilli())
			if got := race([]*Quotas{a, b}, "k", c.l, 4, 5); got != 5 {
				t.Fatalf("after it turned: %d admitted, want 5 more", got)
			}
			// Each node reports its calls within a sync interval.
			month := int64(10)
			if c.reason == quota.Monthly {
				month = 5
			}
			waitFor(t, "the counts of the new period", func() bool {
				u := b.Usage("k", c.l)
				return u.CurrentCallsPerDay == 5 && u.CurrentCallsPerMonth == month
			})
		})
	}
}
