package quota

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse"
)

// clock is a fake time source the tests step by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load zone %s: %v", name, err)
	}
	return loc
}

func newTestManager(loc *time.Location, start time.Time) (*Manager, *clock) {
	c := &clock{t: start}
	return NewManager(loc, c.now), c
}

const big = 1_000_000_000 // a quota that does not bind in the test

func TestPeriodQuotaExactlyN(t *testing.T) {
	t.Parallel()
	ny := zone(t, "America/New_York")
	tests := []struct {
		name       string
		loc        *time.Location
		start      time.Time
		limits     Limits
		allowed    int
		reason     Reason
		retryAfter int64
		dailyLeft  int64 // after the refusal
		monthLeft  int64
	}{
		{
			name:   "daily",
			loc:    ny,
			start:  time.Date(2024, 3, 12, 15, 0, 0, 500_000_000, ny),
			limits: Limits{Throttling: big, Daily: 5, Monthly: 100},
			// 8h59m59.5s to midnight, rounded up
			allowed: 5, reason: Daily, retryAfter: 9 * 3600, dailyLeft: 0, monthLeft: 95,
		},
		{
			name:    "monthly in a leap February",
			loc:     time.UTC,
			start:   time.Date(2024, 2, 29, 22, 0, 0, 0, time.UTC),
			limits:  Limits{Throttling: big, Daily: 100, Monthly: 3},
			allowed: 3, reason: Monthly, retryAfter: 2 * 3600, dailyLeft: 97, monthLeft: 0,
		},
		{
			name:    "monthly waits for the first of next month, not midnight",
			loc:     time.UTC,
			start:   time.Date(2024, 4, 29, 23, 0, 0, 0, time.UTC),
			limits:  Limits{Throttling: big, Daily: 100, Monthly: 2},
			allowed: 2, reason: Monthly, retryAfter: 25 * 3600, dailyLeft: 98, monthLeft: 0,
		},
		{
			name:    "daily across a 25 hour day",
			loc:     ny,
			start:   time.Date(2024, 11, 3, 0, 0, 0, 0, ny),
			limits:  Limits{Throttling: big, Daily: 1, Monthly: 100},
			allowed: 1, reason: Daily, retryAfter: 25 * 3600, dailyLeft: 0, monthLeft: 99,
		},
		{
			name:    "daily zero admits nothing",
			loc:     time.UTC,
			start:   time.Date(2024, 1, 1, 23, 59, 59, 0, time.UTC),
			limits:  Limits{Throttling: big, Daily: 0, Monthly: 100},
			allowed: 0, reason: Daily, retryAfter: 1, dailyLeft: 0, monthLeft: 100,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, _ := newTestManager(tt.loc, tt.start)
			for i := range tt.allowed {
				d := m.Take("k", tt.limits)
				if !d.Allowed || d.Reason != None || d.RetryAfter != 0 {
					t.Fatalf("call %d: %+v, want allowed", i+1, d)
				}
				if want := tt.limits.Daily - int64(i) - 1; d.DailyRemaining != want {
					t.Errorf("call %d: DailyRemaining %d, want %d", i+1, d.DailyRemaining, want)
				}
				if want := tt.limits.Monthly - int64(i) - 1; d.MonthlyRemaining != want {
					t.Errorf("call %d: MonthlyRemaining %d, want %d", i+1, d.MonthlyRemaining, want)
				}
			}
			for range 3 { // refusals stay refusals and consume nothing
				d := m.Take("k", tt.limits)
				want := Decision{Reason: tt.reason, RetryAfter: tt.retryAfter,
					DailyRemaining: tt.dailyLeft, MonthlyRemaining: tt.monthLeft, RateRemaining: big - int64(tt.allowed)}
				if d != want {
					t.Fatalf("refused call: %+v, want %+v", d, want)
				}
			}
		})
	}
}

func TestReasonMessages(t *testing.T) {
	t.Parallel()
	for r, want := range map[Reason]string{
		None:       "",
		Throttling: "too many requests: throttling quota",
		Daily:      "too many requests: daily quota",
		Monthly:    "too many requests: monthly quota",
	} {
		if got := r.Message(); got != want {
			t.Errorf("%v.Message() = %q, want %q", r, got, want)
		}
	}
}

func TestConcurrentTakesExactlyN(t *testing.T) {
	t.Parallel()
	m, _ := newTestManager(time.UTC, time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC))
	const n, workers, tries = 1000, 64, 100
	l := Limits{Throttling: big, Daily: n, Monthly: big}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range workers {
		wg.Go(func() {
			<-start
			for range tries {
				if m.Take("racy", l).Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if got := allowed.Load(); got != n {
		t.Fatalf("%d calls allowed by %d racing goroutines, want exactly %d", got, workers, n)
	}
	if u := m.Usage("racy", l); u.CurrentCallsPerDay != n || u.RemainingCallsPerDay != 0 {
		t.Fatalf("usage after the race: %+v", u)
	}
}

func TestThrottlingBurstThenRefill(t *testing.T) {
	t.Parallel()
	for _, n := range []int64{1, 3, 7, 10, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			m, clk := newTestManager(time.UTC, time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC))
			l := Limits{Throttling: n, Daily: big, Monthly: big}
			for i := range n {
				d := m.Take("k", l)
				if !d.Allowed || d.RateRemaining != n-i-1 {
					t.Fatalf("burst call %d: %+v, want allowed with %d tokens left", i+1, d, n-i-1)
				}
			}
			d := m.Take("k", l)
			if want := (Decision{Reason: Throttling, RetryAfter: 1, DailyRemaining: big - n, MonthlyRemaining: big - n}); d != want {
				t.Fatalf("call after the burst: %+v, want %+v", d, want)
			}
			// Over the next second, stepped by a millisecond, exactly n more get through.
			got := int64(0)
			for range 1000 {
				clk.add(time.Millisecond)
				for m.Take("k", l).Allowed {
					got++
				}
			}
			if got != n {
				t.Fatalf("%d calls in the second after the burst, want %d", got, n)
			}
			if d := m.Peek("k", l); d.Allowed || d.RateRemaining != 0 {
				t.Fatalf("peek at the end of the second: %+v", d)
			}
		})
	}
}

func TestThrottlingBound(t *testing.T) {
	t.Parallel()
	for _, n := range []int64{1, 3, 7, 10, 997} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			m, clk := newTestManager(time.UTC, time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC))
			t0 := clk.now().UnixNano()
			l := Limits{Throttling: n, Daily: big, Monthly: big}
			// An odd step so admissions fall at every phase of the emission interval.
			step := time.Duration(second/(n*5) + 7919)
			const total = 10 * time.Second
			var at []int64 // admission times, ns since t0
			for el := time.Duration(0); el <= total; el += step {
				for m.Take("k", l).Allowed {
					at = append(at, clk.now().UnixNano()-t0)
				}
				clk.add(step)
			}
			// Any window of T ns holds at most n + n*T/1e9 admissions; the
			// fullest windows start on an admission.
			for _, T := range []int64{0, 1, second / 3, second / 2, second - 1, second, 3*second + 17, 7 * second} {
				worst := int64(0)
				for i := range at {
					j, _ := slices.BinarySearch(at, at[i]+T+1) // first admission after the window
					worst = max(worst, int64(j-i))
				}
				if worst*second > n*second+n*T {
					t.Errorf("window of %dns holds %d calls, bound %d + %d*%dns/1s", T, worst, n, n, T)
				}
				// The bound is tight up to the stepping: the full first window
				// from t0 gets n plus what refilled, less at most one step's worth.
				j, _ := slices.BinarySearch(at, T+1)
				if low := n + (n*(T-int64(step)))/second; int64(j) < low {
					t.Errorf("first window of %dns admitted %d calls, want at least %d", T, j, low)
				}
			}
		})
	}
}

func TestThrottlingExactRate(t *testing.T) {
	t.Parallel()
	// Calls taken at every whole emission time admit exactly n + n*T after T
	// seconds: integer nanoseconds with a carried fraction do not drift.
	for _, n := range []int64{3, 7, 10_007} {
		m, clk := newTestManager(time.UTC, time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC))
		l := Limits{Throttling: n, Daily: 1 << 60, Monthly: 1 << 60}
		got := int64(0)
		for range 5 {
			for m.Take("k", l).Allowed {
				got++
			}
			clk.add(time.Second)
		}
		for m.Take("k", l).Allowed {
			got++
		}
		if want := n + n*5; got != want {
			t.Errorf("n=%d: %d calls over 5 s, want %d", n, got, want)
		}
	}
}

func TestRefusalConsumesNothing(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

	t.Run("daily refusal keeps throttling tokens", func(t *testing.T) {
		m, _ := newTestManager(time.UTC, start)
		l := Limits{Throttling: 5, Daily: 2, Monthly: 100}
		m.Take("k", l)
		m.Take("k", l)
		if d := m.Take("k", l); d.Reason != Daily || d.RateRemaining != 3 {
			t.Fatalf("third call: %+v, want daily refusal with 3 tokens", d)
		}
		if d := m.Peek("k", l); d.RateRemaining != 3 || d.MonthlyRemaining != 98 {
			t.Fatalf("after the refusal: %+v, want 3 tokens and 98 monthly left", d)
		}
	})
	t.Run("throttling refusal counts nothing", func(t *testing.T) {
		m, _ := newTestManager(time.UTC, start)
		l := Limits{Throttling: 1, Daily: 10, Monthly: 100}
		m.Take("k", l)
		for range 5 {
			if d := m.Take("k", l); d.Reason != Throttling || d.DailyRemaining != 9 || d.MonthlyRemaining != 99 {
				t.Fatalf("throttled call: %+v", d)
			}
		}
		if u := m.Usage("k", l); u.CurrentCallsPerDay != 1 || u.CurrentCallsPerMonth != 1 {
			t.Fatalf("usage after throttled calls: %+v", u)
		}
	})
	t.Run("monthly refusal counts no day", func(t *testing.T) {
		m, _ := newTestManager(time.UTC, start)
		l := Limits{Throttling: 100, Daily: 10, Monthly: 1}
		m.Take("k", l)
		m.Take("k", l)
		if u := m.Usage("k", l); u.CurrentCallsPerDay != 1 || u.RemainingCallsPerSec != 99 {
			t.Fatalf("usage after a monthly refusal: %+v", u)
		}
	})
}

func TestReasonOrder(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 6, 30, 23, 0, 0, 0, time.UTC) // 1 h to midnight and to July
	tests := []struct {
		name   string
		limits Limits
		reason Reason
		retry  int64
	}{
		{"all zero: throttling first, wait for the period", Limits{0, 0, 0}, Throttling, 3600},
		{"throttling zero alone", Limits{0, 10, 10}, Throttling, 1},
		{"daily before monthly", Limits{10, 0, 0}, Daily, 3600},
		{"monthly", Limits{10, 10, 0}, Monthly, 3600},
		{"negative counts as zero", Limits{-1, 10, 10}, Throttling, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, _ := newTestManager(time.UTC, start)
			d := m.Take("k", tt.limits)
			if d.Allowed || d.Reason != tt.reason || d.RetryAfter != tt.retry {
				t.Fatalf("got %+v, want reason %v retry %d", d, tt.reason, tt.retry)
			}
		})
	}
	t.Run("throttled and daily exhausted", func(t *testing.T) {
		m, _ := newTestManager(time.UTC, start)
		l := Limits{Throttling: 1, Daily: 1, Monthly: 10}
		m.Take("k", l)
		// Throttling is named first, but retrying after 1 s would still be refused.
		if d := m.Take("k", l); d.Reason != Throttling || d.RetryAfter != 3600 {
			t.Fatalf("got %+v", d)
		}
	})
}

func TestRollover(t *testing.T) {
	t.Parallel()
	ny, kolkata := zone(t, "America/New_York"), zone(t, "Asia/Kolkata")
	tests := []struct {
		name      string
		loc       *time.Location
		start     time.Time // a little before the zone's midnight
		limits    Limits
		retry     int64
		monthTurn bool
	}{
		{"New York day", ny, time.Date(2024, 3, 9, 23, 59, 59, 0, ny), Limits{big, 2, 100}, 1, false},
		{"New York day before a 23 h day", ny, time.Date(2024, 3, 9, 23, 0, 0, 0, ny), Limits{big, 2, 100}, 3600, false},
		{"Kolkata day", kolkata, time.Date(2024, 5, 30, 23, 59, 30, 0, kolkata), Limits{big, 2, 100}, 30, false},
		{"Kolkata month", kolkata, time.Date(2024, 5, 31, 23, 59, 30, 0, kolkata), Limits{big, 100, 2}, 30, true},
		{"New York month", ny, time.Date(2024, 12, 31, 23, 59, 59, 250_000_000, ny), Limits{big, 100, 2}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, clk := newTestManager(tt.loc, tt.start)
			m.Take("k", tt.limits)
			m.Take("k", tt.limits)
			d := m.Take("k", tt.limits)
			if d.Allowed || d.RetryAfter != tt.retry {
				t.Fatalf("before midnight: %+v, want refused for %d s", d, tt.retry)
			}
			// One nanosecond short of the turn: still refused.
			clk.add(time.Duration(tt.retry)*time.Second - tt.start.Sub(tt.start.Truncate(time.Second)) - 1)
			if d := m.Take("k", tt.limits); d.Allowed {
				t.Fatalf("just before midnight: %+v", d)
			}
			clk.add(1)
			y, mo, dd := clk.now().In(tt.loc).Date()
			if h, mi, s := clk.now().In(tt.loc).Clock(); h != 0 || mi != 0 || s != 0 {
				t.Fatalf("test clock at %v, not at midnight", clk.now().In(tt.loc))
			}
			d = m.Take("k", tt.limits)
			if !d.Allowed {
				t.Fatalf("at midnight: %+v, want allowed", d)
			}
			day, month := m.Periods()
			if want := fmt.Sprintf("%04d-%02d-%02d", y, mo, dd); day != want || month != want[:7] {
				t.Fatalf("Periods() = %s, %s; want %s", day, month, want)
			}
			u := m.Usage("k", tt.limits)
			if u.CurrentCallsPerDay != 1 {
				t.Errorf("day count after midnight %d, want 1", u.CurrentCallsPerDay)
			}
			wantMonth := int64(3)
			if tt.monthTurn {
				wantMonth = 1
			}
			if u.CurrentCallsPerMonth != wantMonth {
				t.Errorf("month count after midnight %d, want %d", u.CurrentCallsPerMonth, wantMonth)
			}
		})
	}
}

// recorder is a save function that keeps what it was given.
type recorder struct {
	calls [][]gatehouse.Counter
	fail  error
}

func (r *recorder) save(_ context.Context, cs []gatehouse.Counter) error {
	if r.fail != nil {
		return r.fail
	}
	cs = sortCounters(slices.Clone(cs))
	for i := range cs {
		cs[i].LastUsed = 0 // checked in TestLastUsed
	}
	r.calls = append(r.calls, cs)
	return nil
}

func sortCounters(cs []gatehouse.Counter) []gatehouse.Counter {
	slices.SortFunc(cs, func(a, b gatehouse.Counter) int {
		return strings.Compare(a.ClientID+"/"+a.Period, b.ClientID+"/"+b.Period)
	})
	return cs
}

// counter is a month's increment, or a loaded total.
func counter(id, period string, n int64) gatehouse.Counter {
	return gatehouse.Counter{ClientID: id, Period: period, Count: n}
}

// daily is a day's increment: n calls for the quota counter and the history.
func daily(id, period string, n int64) gatehouse.Counter {
	return gatehouse.Counter{ClientID: id, Period: period, Count: n, Calls: n}
}

func dirty(m *Manager) []gatehouse.Counter {
	cs := sortCounters(m.Dirty())
	for i := range cs {
		cs[i].LastUsed = 0
	}
	return cs
}

func TestFlush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := Limits{Throttling: big, Daily: big, Monthly: big}
	m, clk := newTestManager(time.UTC, time.Date(2024, 6, 30, 23, 59, 58, 0, time.UTC))
	r := &recorder{}

	for range 3 {
		m.Take("a", l)
	}
	m.Take("b", l)
	m.Peek("c", l) // peeks and refusals dirty nothing
	m.Take("d", Limits{})
	if err := m.Flush(ctx, r.save); err != nil {
		t.Fatal(err)
	}
	want := []gatehouse.Counter{
		counter("a", "2024-06", 3), daily("a", "2024-06-30", 3),
		counter("b", "2024-06", 1), daily("b", "2024-06-30", 1),
	}
	if len(r.calls) != 1 || !slices.Equal(r.calls[0], want) {
		t.Fatalf("first flush saved %v, want %v", r.calls, want)
	}

	// Nothing changed: nothing to save.
	if err := m.Flush(ctx, r.save); err != nil || len(r.calls) != 1 {
		t.Fatalf("idle flush: err %v, %d saves", err, len(r.calls))
	}
	if d := m.Dirty(); len(d) != 0 {
		t.Fatalf("dirty after flush: %v", d)
	}

	// A failed save gives the increments back; the next flush adds them.
	m.Take("b", l)
	r.fail = errors.New("disk full")
	if err := m.Flush(ctx, r.save); err == nil || !errors.Is(err, r.fail) {
		t.Fatalf("failed flush returned %v", err)
	}
	m.Take("b", l)
	r.fail = nil
	if err := m.Flush(ctx, r.save); err != nil {
		t.Fatal(err)
	}
	want = []gatehouse.Counter{counter("b", "2024-06", 1), daily("b", "2024-06-30", 1), counter("b", "2024-06", 1), daily("b", "2024-06-30", 1)}
	want = sortCounters(want)
	if len(r.calls) != 2 || !slices.Equal(r.calls[1], want) {
		t.Fatalf("flush after a failure saved %v, want %v", r.calls[1:], want)
	}

	// Across midnight (and the month's end): a is counted before and after,
	// b only before and flushed after; the old periods are saved, not lost.
	m.Take("a", l)
	m.Take("b", l)
	clk.add(2 * time.Second)
	m.Take("a", l)
	if err := m.Flush(ctx, r.save); err != nil {
		t.Fatal(err)
	}
	want = []gatehouse.Counter{
		counter("a", "2024-06", 1), daily("a", "2024-06-30", 1),
		counter("a", "2024-07", 1), daily("a", "2024-07-01", 1),
		counter("b", "2024-06", 1), daily("b", "2024-06-30", 1),
	}
	if len(r.calls) != 3 || !slices.Equal(r.calls[2], want) {
		t.Fatalf("flush across midnight saved %v, want %v", r.calls[2:], want)
	}
	if err := m.Flush(ctx, r.save); err != nil || len(r.calls) != 3 {
		t.Fatalf("idle flush after midnight: err %v, %d saves", err, len(r.calls))
	}
}

func TestFlushDoesNotBlockTakes(t *testing.T) {
	t.Parallel()
	m, _ := newTestManager(time.UTC, time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC))
	l := Limits{Throttling: big, Daily: big, Monthly: big}
	m.Take("a", l)
	inSave, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- m.Flush(context.Background(), func(context.Context, []gatehouse.Counter) error {
			close(inSave)
			<-release
			return nil
		})
	}()
	<-inSave
	// The save is stuck; counting goes on.
	m.Take("a", l)
	m.Take("b", l)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// What was counted during the save is still dirty.
	got := dirty(m)
	want := []gatehouse.Counter{
		counter("a", "2024-06", 1), daily("a", "2024-06-01", 1),
		counter("b", "2024-06", 1), daily("b", "2024-06-01", 1),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("dirty after a flush overlapped by takes: %v, want %v", got, want)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	m, _ := newTestManager(time.UTC, time.Date(2024, 6, 15, 12, 0, 0, 0, time.UTC))
	day, month := m.Periods()
	if day != "2024-06-15" || month != "2024-06" {
		t.Fatalf("Periods() = %q, %q", day, month)
	}
	m.Load(counter("a", day, 4))
	m.Load(counter("a", month, 10))
	m.Load(counter("b", "2024-06-14", 100)) // yesterday: no longer counts
	m.Load(counter("b", "garbage", 100))
	m.Load(counter("c", "2024-13", 100))

	l := Limits{Throttling: big, Daily: 5, Monthly: 20}
	if d := m.Take("a", l); !d.Allowed || d.DailyRemaining != 0 || d.MonthlyRemaining != 9 {
		t.Fatalf("take after load: %+v", d)
	}
	if d := m.Take("a", l); d.Reason != Daily {
		t.Fatalf("second take after load: %+v", d)
	}
	if d := m.Take("b", l); !d.Allowed || d.DailyRemaining != 4 {
		t.Fatalf("take with yesterday's count loaded: %+v", d)
	}
	if d := m.Peek("c", l); d.MonthlyRemaining != 20 {
		t.Fatalf("bad period loaded: %+v", d)
	}
	// Loaded counts are already stored: only what was taken is to be added.
	got := dirty(m)
	want := []gatehouse.Counter{
		counter("a", "2024-06", 1), daily("a", "2024-06-15", 1),
		counter("b", "2024-06", 1), daily("b", "2024-06-15", 1),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("dirty after load and take: %v, want %v", got, want)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	m, clk := newTestManager(time.UTC, time.Date(2024, 6, 15, 12, 0, 0, 0, time.UTC))
	l := Limits{Throttling: 10, Daily: 100, Monthly: 1000}
	want := gatehouse.QuotaUsage{
		AuthorizedCallsPerSec: 10, CurrentCallsPerSec: 0, RemainingCallsPerSec: 10,
		AuthorizedCallsPerDay: 100, CurrentCallsPerDay: 0, RemainingCallsPerDay: 100,
		AuthorizedCallsPerMonth: 1000, CurrentCallsPerMonth: 0, RemainingCallsPerMonth: 1000,
	}
	if u := m.Usage("k", l); u != want {
		t.Fatalf("unused key: %+v, want %+v", u, want)
	}
	if m.lookup("k") != nil {
		t.Fatal("Usage of an unused key created state for it")
	}
	for range 3 {
		m.Take("k", l)
	}
	want = gatehouse.QuotaUsage{
		AuthorizedCallsPerSec: 10, CurrentCallsPerSec: 3, RemainingCallsPerSec: 7,
		AuthorizedCallsPerDay: 100, CurrentCallsPerDay: 3, RemainingCallsPerDay: 97,
		AuthorizedCallsPerMonth: 1000, CurrentCallsPerMonth: 3, RemainingCallsPerMonth: 997,
	}
	if u := m.Usage("k", l); u != want {
		t.Fatalf("after 3 calls: %+v, want %+v", u, want)
	}
	clk.add(200 * time.Millisecond) // two tokens back
	if u := m.Usage("k", l); u.CurrentCallsPerSec != 1 || u.RemainingCallsPerSec != 9 || u.CurrentCallsPerDay != 3 {
		t.Fatalf("200 ms later: %+v", u)
	}
	// A lowered quota never shows negative remainders.
	low := Limits{Throttling: 10, Daily: 2, Monthly: 1}
	if u := m.Usage("k", low); u.RemainingCallsPerDay != 0 || u.RemainingCallsPerMonth != 0 || u.CurrentCallsPerDay != 3 {
		t.Fatalf("with lowered quotas: %+v", u)
	}
}

func TestResetAndForget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _ := newTestManager(time.UTC, time.Date(2024, 6, 15, 12, 0, 0, 0, time.UTC))
	l := Limits{Throttling: 5, Daily: 3, Monthly: 100}
	r := &recorder{}
	for range 3 {
		m.Take("a", l)
		m.Take("b", l)
	}
	if err := m.Flush(ctx, r.save); err != nil {
		t.Fatal(err)
	}

	m.Reset("a")
	want := gatehouse.QuotaUsage{
		AuthorizedCallsPerSec: 5, RemainingCallsPerSec: 5,
		AuthorizedCallsPerDay: 3, RemainingCallsPerDay: 3,
		AuthorizedCallsPerMonth: 100, RemainingCallsPerMonth: 100,
	}
	if u := m.Usage("a", l); u != want {
		t.Fatalf("after reset: %+v, want %+v", u, want)
	}
	if d := m.Take("a", l); !d.Allowed {
		t.Fatalf("take after reset: %+v", d)
	}
	m.Reset("never-used")
	// Calls not yet flushed at a reset leave the quota counters but stay in
	// the usage history.
	m.Take("h", l)
	m.Reset("h")

	m.Take("b", Limits{Throttling: 5, Daily: 10, Monthly: 100})
	m.Forget("b")
	if err := m.Flush(ctx, r.save); err != nil {
		t.Fatal(err)
	}
	want2 := []gatehouse.Counter{
		counter("a", "2024-06", 1), daily("a", "2024-06-15", 1),
		{ClientID: "h", Period: "2024-06-15", Count: 0, Calls: 1},
	}
	if got := r.calls[len(r.calls)-1]; !slices.Equal(got, want2) {
		t.Fatalf("flush after reset and forget saved %v, want %v", got, want2)
	}
	if u := m.Usage("b", l); u.CurrentCallsPerDay != 0 {
		t.Fatalf("forgotten key still counts: %+v", u)
	}
}

func TestLastUsed(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 6, 15, 12, 0, 0, 0, time.UTC)
	m, clk := newTestManager(time.UTC, start)
	l := Limits{Throttling: big, Daily: big, Monthly: big}
	m.Take("a", l)
	clk.add(1500 * time.Millisecond)
	m.Take("a", l)
	var saved []gatehouse.Counter
	err := m.Flush(context.Background(), func(_ context.Context, cs []gatehouse.Counter) error {
		saved = slices.Clone(cs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := start.Add(1500 * time.Millisecond).UnixMilli()
	for _, c := range saved {
		if len(c.Period) == len("2006-01-02") && c.LastUsed != want {
			t.Fatalf("day counter %+v: LastUsed %d, want %d", c, c.LastUsed, want)
		}
	}
}

func TestQuotaChange(t *testing.T) {
	t.Parallel()
	m, clk := newTestManager(time.UTC, time.Date(2024, 6, 15, 12, 0, 0, 0, time.UTC))
	for range 3 {
		m.Take("k", Limits{Throttling: 3, Daily: big, Monthly: big})
	}
	// Raised: the new burst applies at once, less what was used.
	l := Limits{Throttling: 7, Daily: big, Monthly: big}
	if d := m.Peek("k", l); d.RateRemaining < 0 || d.RateRemaining > 7 {
		t.Fatalf("after raising the rate: %+v", d)
	}
	clk.add(time.Second)
	n := 0
	for m.Take("k", l).Allowed {
		n++
	}
	if n != 7 {
		t.Fatalf("a second after raising the rate: %d calls, want 7", n)
	}
	// A wall clock stepped back keeps at most one second of debt.
	clk.add(-time.Hour)
	if d := m.Take("k", l); d.Allowed || d.RetryAfter != 1 {
		t.Fatalf("after the clock stepped back: %+v", d)
	}
	clk.add(time.Second)
	if d := m.Take("k", l); !d.Allowed {
		t.Fatalf("a second after the clock stepped back: %+v", d)
	}
}

func TestTakeAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	m := NewManager(time.UTC, nil)
	l := Limits{Throttling: 1_000_000_000, Daily: 1 << 60, Monthly: 1 << 60}
	m.Take("warm", l)
	if n := testing.AllocsPerRun(1000, func() { m.Take("warm", l) }); n != 0 {
		t.Fatalf("Take allocates %.1f times per call after warm-up", n)
	}
	if n := testing.AllocsPerRun(1000, func() { m.Peek("warm", l) }); n != 0 {
		t.Fatalf("Peek allocates %.1f times per call", n)
	}
}

func BenchmarkTake(b *testing.B) {
	m := NewManager(time.UTC, nil)
	l := Limits{Throttling: 1_000_000_000, Daily: 1 << 60, Monthly: 1 << 60}
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("client-%04d", i)
		m.Take(ids[i], l)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1))
		for pb.Next() {
			m.Take(ids[i%len(ids)], l)
			i += 7
		}
	})
}

// BenchmarkTakeOneKey measures the worst case: every goroutine on one key.
func BenchmarkTakeOneKey(b *testing.B) {
	m := NewManager(time.UTC, nil)
	l := Limits{Throttling: 1_000_000_000, Daily: 1 << 60, Monthly: 1 << 60}
	m.Take("hot", l)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Take("hot", l)
		}
	})
}

// Dirty (for tests) returns the increments every key has not flushed yet: its closed
// periods' and its current day's and month's. It changes nothing.
func (m *Manager) Dirty() []gatehouse.Counter {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	var cs []gatehouse.Counter
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		for _, st := range sh.dirty {
			st.mu.Lock()
			if !st.gone {
				cs = st.pending(cs)
			}
			st.mu.Unlock()
		}
		sh.mu.RUnlock()
	}
	return cs
}
