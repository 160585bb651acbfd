// Package quota enforces API keys' throttling, daily and monthly quotas on the
// gateway's request path. Counters live in memory, one small locked record per
// client id in a sharded map, and are written behind to the store by Flush as
// increments (the calls since the last flush), so that what several writers
// flush adds up; the request path never waits on SQLite and never takes a
// lock shared by all keys.
package quota

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gatehouse"
)

// Limits are a key's quotas (keys.Key's Throttling, Daily and Monthly).
// 0 admits nothing; negative values count as 0.
type Limits struct{ Throttling, Daily, Monthly int64 }

// Reason says which quota refused a call.
type Reason uint8

const (
	None Reason = iota
	Throttling
	Daily
	Monthly
)

// Message is the Otoroshi-Error-Msg of a 429 for this reason.
func (r Reason) Message() string {
	switch r {
	case Throttling:
		return "too many requests: throttling quota"
	case Daily:
		return "too many requests: daily quota"
	case Monthly:
		return "too many requests: monthly quota"
	}
	return ""
}

func (r Reason) String() string {
	switch r {
	case Throttling:
		return "throttling"
	case Daily:
		return "daily"
	case Monthly:
		return "monthly"
	}
	return "none"
}

// Decision is the quota stage's answer for one call, with what the response
// headers show.
type Decision struct {
	Allowed bool
	// Reason is the first exhausted quota in the order throttling, daily, monthly.
	Reason Reason
	// RetryAfter is in whole seconds (>= 1) when refused: the longest wait among
	// the exhausted quotas, since retrying sooner is sure to be refused again.
	RetryAfter       int64
	DailyRemaining   int64 // never below 0
	MonthlyRemaining int64 // never below 0
	RateRemaining    int64 // whole tokens left in the bucket
}

const (
	second = int64(time.Second)
	// maxRate is the largest throttling quota the bucket tracks: one call per
	// nanosecond. Above it no process can ever be throttled, and the scaled
	// arithmetic below would overflow, so the bucket is skipped.
	maxRate    = second
	shardCount = 64
)

// state is one client id's counters. Every field is guarded by mu.
type state struct {
	mu       sync.Mutex
	clientID string

	// GCRA: the theoretical arrival time is tat + frac/rate nanoseconds, kept
	// exact by carrying the fraction instead of rounding 1e9/rate.
	tat, frac, rate int64

	dayCode, monthCode   int32 // yyyymmdd and yyyymm of the counts; 0 before first use
	dayCount, monthCount int64 // the current periods' totals, what quotas decide on

	// Not yet flushed: calls of the current periods (dayNew and monthNew for
	// the quota counters, calls for the usage history, which a reset keeps),
	// and closed periods' or failed flushes' increments.
	dayNew, monthNew, calls int64
	lastUsed                int64 // epoch ms of the last admitted call
	old                     []gatehouse.Counter

	queued bool // on its shard's dirty list, or in a flush in flight
	gone   bool // Forget was called: never save it again
	shard  uint8
}

type shard struct {
	mu    sync.RWMutex
	m     map[string]*state
	dirty []*state
}

// Manager holds every key's quota state.
type Manager struct {
	loc    *time.Location
	now    func() time.Time
	seed   maphash.Seed
	cal    atomic.Pointer[calendar]
	shards [shardCount]shard

	flushMu sync.Mutex // one flush at a time
	batch   []*state   // buffers reused across flushes, guarded by flushMu
	cs      []gatehouse.Counter
	taken   []taken
}

// NewManager returns a manager whose days and months turn at midnight in loc
// (UTC when nil), reading the time from now (time.Now when nil).
func NewManager(loc *time.Location, now func() time.Time) *Manager {
	if loc == nil {
		loc = time.UTC
	}
	if now == nil {
		now = time.Now
	}
	m := &Manager{loc: loc, now: now, seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].m = make(map[string]*state)
	}
	return m
}

func (m *Manager) shardOf(clientID string) uint8 {
	return uint8(maphash.String(m.seed, clientID) % shardCount)
}

// lookup returns the client's state, or nil if it has none.
func (m *Manager) lookup(clientID string) *state {
	sh := &m.shards[m.shardOf(clientID)]
	sh.mu.RLock()
	st := sh.m[clientID]
	sh.mu.RUnlock()
	return st
}

// get returns the client's state, creating it on first use.
func (m *Manager) get(clientID string) *state {
	i := m.shardOf(clientID)
	sh := &m.shards[i]
	sh.mu.RLock()
	st := sh.m[clientID]
	sh.mu.RUnlock()
	if st != nil {
		return st
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if st = sh.m[clientID]; st == nil {
		// Clone: the id may point into a request's header bytes.
		id := strings.Clone(clientID)
		st = &state{clientID: id, shard: i}
		sh.m[id] = st
	}
	return st
}

// enqueue puts st on its shard's dirty list; the caller has just set st.queued.
func (m *Manager) enqueue(st *state) {
	sh := &m.shards[st.shard]
	sh.mu.Lock()
	sh.dirty = append(sh.dirty, st)
	sh.mu.Unlock()
}

// Take admits one call for the key if its throttling, daily and monthly quotas
// all allow it, and then consumes one from each. A refusal consumes nothing.
func (m *Manager) Take(clientID string, l Limits) Decision {
	st := m.get(clientID)
	st.mu.Lock()
	// Read the clock under the key's lock, so that calls on one key see time
	// in the order they are counted and a period never turns back.
	now := m.now().UnixNano()
	c := m.calendar(now)
	st.roll(c)
	d, v := st.decide(l, now, c)
	if v.bucketed {
		// Keep the bucket as decide read it even on a refusal: that changes
		// no admission, and a clamp after a clock step must last.
		st.tat, st.frac, st.rate = v.cur.tat, v.cur.frac, v.rate
	}
	queue := false
	if d.Allowed {
		if v.bucketed {
			st.tat, st.frac = v.next.tat, v.next.frac
			d.RateRemaining = v.next.tokens(v.rate, now)
		}
		st.dayCount++
		st.monthCount++
		st.dayNew++
		st.monthNew++
		st.calls++
		st.lastUsed = now / int64(time.Millisecond)
		d.DailyRemaining--
		d.MonthlyRemaining--
		if !st.queued {
			st.queued, queue = true, true
		}
	}
	st.mu.Unlock()
	if queue {
		m.enqueue(st)
	}
	return d
}

// Peek answers what Take would, without consuming anything: the remaining
// numbers are those before the call.
func (m *Manager) Peek(clientID string, l Limits) Decision {
	d, _ := m.peek(clientID, l)
	return d
}

func (m *Manager) peek(clientID string, l Limits) (Decision, view) {
	st := m.lookup(clientID)
	if st == nil {
		var zero state // a key never used: full bucket, nothing counted
		now := m.now().UnixNano()
		return zero.decide(l, now, m.calendar(now))
	}
	st.mu.Lock()
	now := m.now().UnixNano()
	d, v := st.decide(l, now, m.calendar(now))
	st.mu.Unlock()
	return d, v
}

// Usage reports the key's quotas and what is used and left of each, as
// GET /api/apikeys/{clientId}/quotas answers.
func (m *Manager) Usage(clientID string, l Limits) gatehouse.QuotaUsage {
	d, v := m.peek(clientID, l)
	l = l.clamped()
	u := gatehouse.QuotaUsage{
		AuthorizedCallsPerSec:   l.Throttling,
		RemainingCallsPerSec:    d.RateRemaining,
		AuthorizedCallsPerDay:   l.Daily,
		CurrentCallsPerDay:      v.day,
		RemainingCallsPerDay:    d.DailyRemaining,
		AuthorizedCallsPerMonth: l.Monthly,
		CurrentCallsPerMonth:    v.month,
		RemainingCallsPerMonth:  d.MonthlyRemaining,
	}
	u.CurrentCallsPerSec = max(l.Throttling-d.RateRemaining, 0)
	return u
}

// Reset sets the key's quota counters to zero and fills its bucket; the
// store's reset has deleted the stored counters. Increments not yet flushed
// are dropped from the quota counters but kept for the usage history.
func (m *Manager) Reset(clientID string) {
	st := m.get(clientID)
	st.mu.Lock()
	c := m.calendar(m.now().UnixNano())
	st.dayCode, st.monthCode = max(st.dayCode, c.dayCode), max(st.monthCode, c.monthCode)
	st.dayCount, st.monthCount = 0, 0
	st.dayNew, st.monthNew = 0, 0
	st.tat, st.frac = 0, 0
	for i := range st.old {
		st.old[i].Count = 0
	}
	st.mu.Unlock()
}

// Forget drops a deleted key's state; its unsaved counts are never flushed.
func (m *Manager) Forget(clientID string) {
	sh := &m.shards[m.shardOf(clientID)]
	sh.mu.Lock()
	st := sh.m[clientID]
	delete(sh.m, clientID)
	sh.mu.Unlock()
	if st != nil {
		st.mu.Lock()
		st.gone = true
		st.mu.Unlock()
	}
}

// Load seeds a counter read from the store at start, before serving. Counters
// of periods other than the current ones are harmless: the next call restarts
// an old period at 0. Malformed periods are ignored.
func (m *Manager) Load(c gatehouse.Counter) {
	code, isDay, ok := parsePeriod(c.Period)
	if !ok {
		return
	}
	st := m.get(c.ClientID)
	st.mu.Lock()
	defer st.mu.Unlock()
	n := max(c.Count, 0)
	switch {
	case isDay && code >= st.dayCode:
		st.dayCode, st.dayCount = code, n
	case !isDay && code >= st.monthCode:
		st.monthCode, st.monthCount = code, n
	}
}

// Periods returns the current day ("2006-01-02") and month ("2006-01") in the
// manager's zone: the periods whose counters to load at start.
func (m *Manager) Periods() (day, month string) {
	c := m.calendar(m.now().UnixNano())
	return c.day, c.month
}

// roll moves the counts to the calendar's periods when a day or month has
// turned, keeping the closed period's unflushed increments for the next
// flush. A calendar older than the counts (the wall clock stepped back)
// leaves them where they are.
func (st *state) roll(c *calendar) {
	if c.dayCode > st.dayCode {
		if st.dayCode != 0 && (st.dayNew != 0 || st.calls != 0) {
			st.old = append(st.old, gatehouse.Counter{ClientID: st.clientID, Period: formatDay(st.dayCode),
				Count: st.dayNew, Calls: st.calls, LastUsed: st.lastUsed})
		}
		st.dayCode, st.dayCount, st.dayNew, st.calls = c.dayCode, 0, 0, 0
	}
	if c.monthCode > st.monthCode {
		if st.monthCode != 0 && st.monthNew != 0 {
			st.old = append(st.old, gatehouse.Counter{ClientID: st.clientID, Period: formatMonth(st.monthCode), Count: st.monthNew})
		}
		st.monthCode, st.monthCount, st.monthNew = c.monthCode, 0, 0
	}
}

// view is what decide saw, for Take to commit and Usage to report.
type view struct {
	bucketed   bool   // the throttling quota is tracked by the bucket
	rate       int64  // the throttling quota the bucket ran with
	cur, next  bucket // the bucket before and after admitting the call
	day, month int64  // counts in the current periods before the call
}

func (l Limits) clamped() Limits {
	return Limits{max(l.Throttling, 0), max(l.Daily, 0), max(l.Monthly, 0)}
}

// decide checks the three quotas for one more call at now without changing st.
// The remaining numbers it returns are those before the call.
func (st *state) decide(l Limits, now int64, c *calendar) (Decision, view) {
	l = l.clamped()
	var d Decision
	var v view
	var wait int64 // nanoseconds until every exhausted quota admits again

	switch n := l.Throttling; {
	case n > maxRate:
		d.RateRemaining = n
	case n == 0:
		d.Reason = Throttling
		wait = second
	default:
		v.bucketed, v.rate = true, n
		v.cur = st.bucketAt(n, now)
		v.next = v.cur.add(n)
		d.RateRemaining = v.cur.tokens(n, now)
		if w := v.next.wait(now); w > 0 {
			d.Reason = Throttling
			wait = w
		}
	}

	if c.dayCode <= st.dayCode {
		v.day = st.dayCount
	}
	d.DailyRemaining = max(l.Daily-v.day, 0)
	if d.DailyRemaining == 0 {
		if d.Reason == None {
			d.Reason = Daily
		}
		wait = max(wait, c.dayEnd-now)
	}

	if c.monthCode <= st.monthCode {
		v.month = st.monthCount
	}
	d.MonthlyRemaining = max(l.Monthly-v.month, 0)
	if d.MonthlyRemaining == 0 {
		if d.Reason == None {
			d.Reason = Monthly
		}
		wait = max(wait, c.monthEnd-now)
	}

	d.Allowed = d.Reason == None
	if !d.Allowed {
		d.RetryAfter = max((wait+second-1)/second, 1)
	}
	return d, v
}

// bucket is a GCRA theoretical arrival time: tat + frac/rate nanoseconds, with
// 0 <= frac < rate. A call is admitted when the time after it is at most one
// second ahead of now: that allows a burst of rate calls, refilled at rate per
// second, so any T seconds admit at most rate + rate*T calls, exactly.
type bucket struct{ tat, frac int64 }

// bucketAt returns st's bucket as of now for a throttling quota of n
// (0 < n <= maxRate).
func (st *state) bucketAt(n, now int64) bucket {
	b := bucket{st.tat, st.frac}
	if st.rate != n && b.frac > 0 {
		// The quota changed: the fraction was in other units; round it up.
		b.tat++
		b.frac = 0
	}
	switch {
	case b.tat < now || b.tat == now && b.frac == 0:
		return bucket{now, 0}
	case b.tat-now > second:
		// Only after a quota change or a wall clock stepped back: keep at
		// most one second of debt (and the arithmetic in range).
		return bucket{now + second, 0}
	}
	return b
}

// add returns the bucket after one more call: one emission interval 1e9/n later.
func (b bucket) add(n int64) bucket {
	b.tat += second / n
	b.frac += second % n
	if b.frac >= n {
		b.frac -= n
		b.tat++
	}
	return b
}

// wait returns how long until b is at most one second ahead (0: admitted now).
func (b bucket) wait(now int64) int64 {
	ahead := b.tat - now
	if ahead < second || ahead == second && b.frac == 0 {
		return 0
	}
	w := ahead - second
	if b.frac > 0 {
		w++ // the fraction is part of a nanosecond still to wait
	}
	return w
}

// tokens returns the whole calls b still admits at now, for a bucket that is
// at most one second ahead. Counting in 1/n nanoseconds keeps it exact; the
// products stay below 1e18 because n <= maxRate.
func (b bucket) tokens(n, now int64) int64 {
	ahead := (b.tat-now)*n + b.frac
	return max((second*n-ahead)/second, 0)
}

// calendar is the current day and month in the manager's zone, shared by all
// keys and rebuilt only when the day turns.
type calendar struct {
	dayStart, dayEnd, monthEnd int64 // unix nanoseconds
	dayCode, monthCode         int32
	day, month                 string
}

func (m *Manager) calendar(now int64) *calendar {
	if c := m.cal.Load(); c != nil && now >= c.dayStart && now < c.dayEnd {
		return c
	}
	c := newCalendar(now, m.loc)
	m.cal.Store(c)
	return c
}

func newCalendar(now int64, loc *time.Location) *calendar {
	y, mo, d := time.Unix(0, now).In(loc).Date()
	c := &calendar{
		dayStart:  midnight(y, mo, d, loc),
		dayEnd:    midnight(y, mo, d+1, loc),
		monthEnd:  midnight(y, mo+1, 1, loc),
		dayCode:   int32(y*10000 + int(mo)*100 + d),
		monthCode: int32(y*100 + int(mo)),
	}
	c.day, c.month = formatDay(c.dayCode), formatMonth(c.monthCode)
	// Guards against zones whose rules make midnight odd, so the cache stays valid.
	c.dayStart = min(c.dayStart, now)
	c.dayEnd = max(c.dayEnd, now+1)
	c.monthEnd = max(c.monthEnd, c.dayEnd)
	return c
}

// midnight returns the first instant of the (normalized) date in loc. Where the
// clocks jump over midnight, time.Date may answer an instant of the day before;
// step forward to the jump.
func midnight(y int, mo time.Month, d int, loc *time.Location) int64 {
	wy, wm, wd := time.Date(y, mo, d, 12, 0, 0, 0, time.UTC).Date()
	t := time.Date(wy, wm, wd, 0, 0, 0, 0, loc)
	for i := 0; i < 48; i++ {
		if ty, tm, td := t.Date(); ty > wy || ty == wy && (tm > wm || tm == wm && td >= wd) {
			break
		}
		t = t.Add(time.Hour)
	}
	return t.UnixNano()
}

func formatDay(code int32) string {
	return fmt.Sprintf("%04d-%02d-%02d", code/10000, code/100%100, code%100)
}

func formatMonth(code int32) string {
	return fmt.Sprintf("%04d-%02d", code/100, code%100)
}

// parsePeriod reads "2006-01-02" (a day) or "2006-01" (a month) into its code.
func parsePeriod(p string) (code int32, isDay, ok bool) {
	num := func(s string) (int32, bool) {
		var n int32
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			n = n*10 + int32(s[i]-'0')
		}
		return n, true
	}
	if len(p) != 7 && len(p) != 10 || p[4] != '-' {
		return 0, false, false
	}
	y, ok1 := num(p[:4])
	mo, ok2 := num(p[5:7])
	if !ok1 || !ok2 || mo < 1 || mo > 12 {
		return 0, false, false
	}
	if len(p) == 7 {
		return y*100 + mo, false, true
	}
	d, ok3 := num(p[8:])
	if p[7] != '-' || !ok3 || d < 1 || d > 31 {
		return 0, false, false
	}
	return y*10000 + mo*100 + d, true, true
}

// taken is what a flush took from one state, to give back if saving fails.
type taken struct {
	from, to int // its counters in the flush's batch
}

// take moves st's unflushed increments into cs and clears them.
func (st *state) take(cs []gatehouse.Counter) []gatehouse.Counter {
	cs = st.pending(cs)
	st.old = nil
	st.dayNew, st.monthNew, st.calls = 0, 0, 0
	return cs
}

// pending appends st's unflushed increments to cs.
func (st *state) pending(cs []gatehouse.Counter) []gatehouse.Counter {
	cs = append(cs, st.old...)
	if st.dayCode != 0 && (st.dayNew != 0 || st.calls != 0) {
		cs = append(cs, gatehouse.Counter{ClientID: st.clientID, Period: formatDay(st.dayCode),
			Count: st.dayNew, Calls: st.calls, LastUsed: st.lastUsed})
	}
	if st.monthCode != 0 && st.monthNew != 0 {
		cs = append(cs, gatehouse.Counter{ClientID: st.clientID, Period: formatMonth(st.monthCode), Count: st.monthNew})
	}
	return cs
}

// Flush hands every key's unflushed increments (see Dirty) to save in one
// call. If save fails they are given back, to be added by a later flush, so
// no call is ever lost or counted twice. save must not keep cs after it
// returns. With nothing to save, save is not called. Takes go on while save
// runs: they never wait for a flush.
func (m *Manager) Flush(ctx context.Context, save func(ctx context.Context, cs []gatehouse.Counter) error) error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()

	batch := m.batch[:0]
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		batch = append(batch, sh.dirty...)
		clear(sh.dirty)
		sh.dirty = sh.dirty[:0]
		sh.mu.Unlock()
	}

	cs, tk := m.cs[:0], m.taken[:0]
	for _, st := range batch {
		st.mu.Lock()
		from := len(cs)
		if !st.gone {
			cs = st.take(cs)
		}
		st.queued = false // a Take from now on queues it again
		st.mu.Unlock()
		tk = append(tk, taken{from, len(cs)})
	}

	var err error
	if len(cs) > 0 {
		if err = save(ctx, cs); err != nil {
			err = fmt.Errorf("save counters: %w", err)
		}
	}

	if err != nil {
		for i, st := range batch {
			back := cs[tk[i].from:tk[i].to]
			if len(back) == 0 {
				continue
			}
			st.mu.Lock()
			queue := false
			if !st.gone {
				st.old = append(slices.Clone(back), st.old...)
				if !st.queued {
					st.queued, queue = true, true
				}
			}
			st.mu.Unlock()
			if queue {
				m.enqueue(st)
			}
		}
	}

	clear(batch)
	clear(cs)
	m.batch, m.cs, m.taken = batch[:0], cs[:0], tk[:0]
	return err
}
