package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock moves only when the dispatcher sleeps, or when the test says so.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Time // the times SleepUntil was asked for
	// onSleep, if set, runs after each sleep: the test's way of making time
	// jump further, as a descheduled dispatcher would see it.
	onSleep func(c *fakeClock)
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(t time.Time) {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, t)
	if t.After(c.now) {
		c.now = t
	}
	c.mu.Unlock()
	if c.onSleep != nil {
		c.onSleep(c)
	}
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestDispatchKeepsTheSchedule(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const rate, n = 2000, 20 // one every 500µs
	interval := 500 * time.Microsecond

	t.Run("on time", func(t *testing.T) {
		t.Parallel()
		clk := &fakeClock{now: start}
		out := make(chan time.Time, n)
		dispatch(context.Background(), clk, start, rate, n, out)
		i := 0
		for at := range out {
			if want := start.Add(time.Duration(i) * interval); !at.Equal(want) {
				t.Errorf("request %d scheduled at %v, want %v", i, at.Sub(start), want.Sub(start))
			}
			i++
		}
		if i != n {
			t.Errorf("dispatched %d requests, want %d", i, n)
		}
		if got := clk.Now().Sub(start); got != time.Duration(n-1)*interval {
			t.Errorf("dispatcher finished at %v, want %v", got, time.Duration(n-1)*interval)
		}
	})

	t.Run("late dispatcher catches up without shifting the schedule", func(t *testing.T) {
		t.Parallel()
		// After its first sleep the dispatcher loses 5ms (ten intervals):
		// the ten requests due meanwhile must go out at once, stamped with
		// their original times, so their wait counts as latency.
		stalled := false
		clk := &fakeClock{now: start, onSleep: func(c *fakeClock) {
			if !stalled {
				stalled = true
				c.advance(5 * time.Millisecond)
			}
		}}
		out := make(chan time.Time, n)
		dispatch(context.Background(), clk, start, rate, n, out)
		i := 0
		for at := range out {
			if want := start.Add(time.Duration(i) * interval); !at.Equal(want) {
				t.Errorf("request %d stamped %v, want %v", i, at.Sub(start), want.Sub(start))
			}
			i++
		}
		if i != n {
			t.Fatalf("dispatched %d requests, want %d", i, n)
		}
		// Request 1 slept until 0.5ms and woke at 5.5ms; requests 2..11 were
		// due by then and went out without sleeping; request 12 slept again.
		var want []time.Duration
		want = append(want, interval)
		for i := 12; i < n; i++ {
			want = append(want, time.Duration(i)*interval)
		}
		var got []time.Duration
		for _, s := range clk.sleeps {
			got = append(got, s.Sub(start))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("slept until %v, want %v", got, want)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		out := make(chan time.Time) // unbuffered: the send cannot proceed
		dispatch(ctx, &fakeClock{now: start}, start, rate, n, out)
		if _, ok := <-out; ok {
			t.Error("dispatch sent after its context ended")
		}
	})
}

// A server that stalls must show in the latency of every request that was
// due during the stall, not only in the one it held: open-loop latency is
// measured from the scheduled time.
func TestOpenLoopCountsQueueingDuringAStall(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var first sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first.Do(func() { <-release })
		w.Write([]byte("ok"))
	}))
	defer srv.Close()

	const rate, n = 1000, 100 // 100 requests due over 99ms
	tgt := target{addr: strings.TrimPrefix(srv.URL, "http://"), path: "/x", want: 200}
	// One worker: the first request holds it until every request has been
	// dispatched, so request i waits at least (n-1-i) ms past its schedule.
	res := openLoopWith(context.Background(), realClock{}, tgt, rate, 100*time.Millisecond, 1, func() { close(release) })

	if res.requests != n || res.errors != 0 {
		t.Fatalf("requests %d errors %d (%s), want %d and 0", res.requests, res.errors, res.firstErr, n)
	}
	if p50 := res.latencies.Quantile(0.5); p50 < 45*time.Millisecond {
		t.Errorf("p50 = %v, want at least 45ms: the requests queued behind the stall", p50)
	}
	if max := res.latencies.Max(); max < 95*time.Millisecond {
		t.Errorf("max = %v, want at least 95ms: the first request waited for the whole schedule", max)
	}
}

func TestClosedLoopCountsWrongStatusesAsErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "bench.local" || r.Header.Get("Authorization") != "Basic x" {
			http.Error(w, "wrong request", http.StatusBadRequest)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	good := target{addr: addr, host: "bench.local", path: "/", header: http.Header{"Authorization": {"Basic x"}}, want: 200}
	res := closedLoop(context.Background(), good, 4, 50*time.Millisecond)
	if res.requests == 0 || res.errors != 0 {
		t.Errorf("good target: %d requests, %d errors (%s); want some and none", res.requests, res.errors, res.firstErr)
	}
	bad := good
	bad.host = ""
	res = closedLoop(context.Background(), bad, 4, 50*time.Millisecond)
	if res.requests == 0 || res.errors != res.requests || res.firstErr != "status 400" {
		t.Errorf("bad target: %d requests, %d errors (%q); want all errors, status 400", res.requests, res.errors, res.firstErr)
	}
}
