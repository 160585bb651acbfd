// Package cluster runs Gatehouse on several nodes: quotas counted on one
// Redis by reservation (this file), and the configuration a worker takes
// from its leader's change log (replica.go).
//
// Counting by reservation (after Google's Doorman leases, CockroachDB's
// distributed token bucket and Sentry Relay's quota caching): a node asks
// Redis, in one Lua script, for a slice of a key's remaining daily and
// monthly quota, serves calls from that slice in memory, asks for more in the
// background before it runs out, and gives back what it did not use. A slice
// is a few seconds of the node's recent traffic on the key, never more than
// half of what remains divided by the live nodes, so that near the limit
// slices shrink to one call and no node is starved while another holds the
// rest. Redis's TIME is the one clock, so every node agrees when a day or
// month turns. With Redis unreachable no request waits: a node serves what
// it holds, then a local share of what remained at its last contact divided
// by the live nodes, and reports those calls when Redis is back.
package cluster

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"gatehouse"
	"gatehouse/server/quota"
)

// clockLua is prepended to each script: one definition of quota time.
//
//go:embed clock.lua
var clockLua string

//go:embed reserve.lua
var reserveLua string

//go:embed heartbeat.lua
var heartbeatLua string

//go:embed throttle.lua
var throttleLua string

var (
	reserveScript   = redis.NewScript(clockLua + reserveLua)
	heartbeatScript = redis.NewScript(clockLua + heartbeatLua)
	throttleScript  = redis.NewScript(clockLua + throttleLua)
)

// QuotaConfig configures the Redis-backed quotas of one node.
type QuotaConfig struct {
	Redis    string         // redis://[:password@]host:port[/db] or unix:///path
	Node     string         // this node's name, unique in the cluster
	Leader   bool           // the leader resets counters in Redis; workers follow
	Location *time.Location // calendar of daily and monthly quotas (UTC when nil)
	// Now is the local clock (throttling, idle keys); time.Now when nil.
	Now func() time.Time
	// Clock, for tests, replaces Redis's TIME as the quota clock.
	Clock func() time.Time
	// Timeout bounds one Redis call; 300ms when 0.
	Timeout time.Duration
	// SyncInterval is how often held keys report and refill; 250ms when 0.
	SyncInterval time.Duration
	// Window is how much of a key's recent traffic a slice covers; 2s when 0.
	Window     time.Duration
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Quotas counts every node's calls against keys' quotas in Redis. It
// satisfies the server's Quotas interface.
type Quotas struct {
	cfg  QuotaConfig
	rdb  *redis.Client
	run  string // this process, for the reports' sequence numbers
	log  *slog.Logger
	up   atomic.Bool
	live atomic.Int64
	// offset is Redis's clock minus the local one, in ms, from the last answer.
	offset atomic.Int64

	mu   sync.Mutex
	keys map[string]*state

	upGauge           prometheus.Gauge
	reservations      prometheus.Counter
	reservedCalls     prometheus.Counter
	returns           prometheus.Counter
	redisCalls        prometheus.Counter
	localShareAdmits  prometheus.Counter
	stop              chan struct{}
	done              sync.WaitGroup
	closeOnce         sync.Once
	clientOnce        sync.Once
	connectedCallback func(bool)
}

// budgetWait is how long a call waits on Redis before it takes from the
// node's budget instead, when it has one.
const budgetWait = 20 * time.Millisecond

// maxLimit keeps quotas inside what Lua's doubles count exactly.
const maxLimit = 1 << 50

// state is one key's counters on this node; guarded by mu.
type state struct {
	mu     sync.Mutex
	id     string
	prefix string

	gen      int64
	day, mon string // the periods of held, used and owed ("" before any contact)
	held     int64  // reserved in Redis and not used yet
	used     int64  // used from held, not reported yet
	owed     int64  // admitted without a reservation (Redis unreachable), not reported yet
	pend     []report
	seq      int64 // the last report's sequence number

	contacted  bool
	exhausted  bool  // the last answer granted nothing: nothing left to reserve
	remD, remM int64 // what was free for slices at the last contact
	budget     int64 // this node's outage budget at the last contact
	owedOut    int64 // of the budget: sent in reports not yet acknowledged
	epoch      int64 // moves when the budget is void (a new period, a reset)
	callsD     int64 // the cluster's calls of the periods at the last contact
	callsM     int64
	limD, limM int64 // the limits of the last call

	refill  chan struct{} // open while a call to Redis is in flight for the key
	waiting int64         // Takes waiting on that call

	winStart, winCalls, prevCalls int64 // calls per second, for slice sizes
	lastUsed                      int64 // local unix ns of the last admitted call
	watchUntil                    int64 // sync every tick until then (a reset is in flight)
	tat                           float64
	rateUntil                     int64 // local unix ns: Redis's bucket refuses until then
}

type report struct {
	cap        int64 // what the node may still admit from its budget meanwhile; -1: leave it
	epoch      int64 // the budget epoch whose owedOut counts its owed
	seq        int64 // per node and key, so that Redis applies a report once
	gen        int64
	day, mon   string
	used, owed int64
}

// NewQuotas connects to Redis (without waiting for it: an unreachable Redis
// only means serving from local shares until it answers) and starts the
// heartbeat and sync loops.
func NewQuotas(cfg QuotaConfig) (*Quotas, error) {
	opt, err := redis.ParseURL(cfg.Redis)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 300 * time.Millisecond
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = 250 * time.Millisecond
	}
	if cfg.Window <= 0 {
		cfg.Window = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opt.DialTimeout = cfg.Timeout
	opt.ReadTimeout = cfg.Timeout
	opt.WriteTimeout = cfg.Timeout
	opt.PoolTimeout = cfg.Timeout
	opt.MaxRetries = -1 // a failed call fails: the node falls back at once
	opt.Protocol = 2
	opt.DisableIdentity = true
	q := &Quotas{
		cfg:  cfg,
		rdb:  redis.NewClient(opt),
		run:  strconv.FormatInt(time.Now().UnixNano(), 36),
		log:  cfg.Logger,
		keys: map[string]*state{},
		stop: make(chan struct{}),
		upGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_redis_up", Help: "1 while Redis answers this node, else 0.",
		}),
		reservations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_quota_reservations_total", Help: "Slices of quota reserved from Redis.",
		}),
		reservedCalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_quota_reserved_calls_total", Help: "Calls reserved from Redis in slices.",
		}),
		returns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_quota_reservations_returned_total", Help: "Unused slices given back to Redis.",
		}),
		redisCalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_redis_calls_total", Help: "Calls this node made to Redis.",
		}),
		localShareAdmits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_quota_budget_calls_total", Help: "Calls admitted from the node's outage budget (Redis unreachable, or no slice left).",
		}),
	}
	q.live.Store(1)
	if cfg.Registerer != nil {
		if err := errors.Join(cfg.Registerer.Register(q.upGauge), cfg.Registerer.Register(q.reservations),
			cfg.Registerer.Register(q.reservedCalls), cfg.Registerer.Register(q.returns),
			cfg.Registerer.Register(q.redisCalls), cfg.Registerer.Register(q.localShareAdmits)); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	// Reach Redis once before serving, so the first calls reserve rather
	// than fall back; an unreachable Redis is not an error.
	q.heartbeat(false)
	q.done.Add(2)
	go q.heartbeatLoop()
	go q.syncLoop()
	return q, nil
}

// RedisCalls counts the calls this node made to Redis.
func (q *Quotas) RedisCalls() prometheus.Counter { return q.redisCalls }

// Up reports whether Redis answered the last call.
func (q *Quotas) Up() bool { return q.up.Load() }

// LiveNodes is how many nodes sent a heartbeat to Redis in the last 5 s.
func (q *Quotas) LiveNodes() int64 { return max(q.live.Load(), 1) }

// OnRedisChange, when set before serving, is told when Redis is lost or back.
func (q *Quotas) OnRedisChange(fn func(up bool)) { q.connectedCallback = fn }

// Close releases (see Release) and closes the Redis client.
func (q *Quotas) Close(ctx context.Context) error {
	q.Release(ctx)
	var err error
	q.clientOnce.Do(func() { err = q.rdb.Close() })
	return err
}

// Release stops the loops, gives back every unused reservation, reports
// what is unreported and leaves the live nodes; ctx bounds it. Calls made
// after it are served from Redis directly, without the background.
func (q *Quotas) Release(ctx context.Context) {
	q.closeOnce.Do(func() {
		close(q.stop)
		q.done.Wait()
		q.mu.Lock()
		sts := make([]*state, 0, len(q.keys))
		for _, st := range q.keys {
			sts = append(sts, st)
		}
		q.mu.Unlock()
		for _, st := range sts {
			if ctx.Err() != nil {
				break
			}
			st.mu.Lock()
			ch := st.refill
			st.mu.Unlock()
			if ch != nil {
				<-ch
			}
			st.mu.Lock()
			if st.held > 0 || st.used > 0 || st.owed > 0 || len(st.pend) > 0 {
				ch = q.startCall(st, 0, true)
			}
			st.mu.Unlock()
			if ch != nil {
				<-ch
			}
		}
		if q.up.Load() {
			q.heartbeat(true)
		}
	})
}

func (q *Quotas) get(id string) *state {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.keys[id]
	if st == nil {
		st = &state{id: id, prefix: "gatehouse:q:{" + id + "}"}
		q.keys[id] = st
	}
	return st
}

func (q *Quotas) lookup(id string) *state {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.keys[id]
}

// clockMs is the quota clock: Redis's, estimated from the local one.
func (q *Quotas) clockMs() int64 {
	if q.cfg.Clock != nil {
		return q.cfg.Clock().UnixMilli()
	}
	return q.cfg.Now().UnixMilli() + q.offset.Load()
}

func clampLimits(l quota.Limits) quota.Limits {
	c := func(v int64) int64 { return min(max(v, 0), maxLimit) }
	return quota.Limits{Throttling: max(l.Throttling, 0), Daily: c(l.Daily), Monthly: c(l.Monthly)}
}

// periods is what the script needs to pick the day and month on Redis's
// clock: the boundary nearest to the node's estimate, with the codes on
// either side of it.
type periods struct {
	dayBoundary, monBoundary int64
	dayBefore, dayAfter, day string
	monBefore, monAfter, mon string
	dayEnd, monEnd           int64 // ms
}

func (q *Quotas) periods(nowMs int64) periods {
	loc := q.cfg.Location
	t := time.UnixMilli(nowMs).In(loc)
	y, mo, d := t.Date()
	dayCode := func(t time.Time) string { return t.Format("20060102") }
	monCode := func(t time.Time) string { return t.Format("200601") }
	start := time.Date(y, mo, d, 0, 0, 0, 0, loc)
	end := time.Date(y, mo, d+1, 0, 0, 0, 0, loc)
	mstart := time.Date(y, mo, 1, 0, 0, 0, 0, loc)
	mend := time.Date(y, mo+1, 1, 0, 0, 0, 0, loc)
	p := periods{day: dayCode(start), mon: monCode(mstart), dayEnd: end.UnixMilli(), monEnd: mend.UnixMilli()}
	if nowMs-start.UnixMilli() < end.UnixMilli()-nowMs {
		p.dayBoundary, p.dayBefore, p.dayAfter = start.UnixMilli(), dayCode(start.Add(-time.Hour)), p.day
	} else {
		p.dayBoundary, p.dayBefore, p.dayAfter = end.UnixMilli(), p.day, dayCode(end)
	}
	if nowMs-mstart.UnixMilli() < mend.UnixMilli()-nowMs {
		p.monBoundary, p.monBefore, p.monAfter = mstart.UnixMilli(), monCode(mstart.Add(-time.Hour)), p.mon
	} else {
		p.monBoundary, p.monBefore, p.monAfter = mend.UnixMilli(), p.mon, monCode(mend)
	}
	return p
}

// roll moves st to the periods of the clock when a day or month has turned
// there: what it held is void, what it did not report is kept to report.
func (st *state) roll(p periods) {
	if st.day == "" || (p.day <= st.day && p.mon <= st.mon) {
		return
	}
	if st.used > 0 || st.owed > 0 {
		st.seq++
		st.pend = append(st.pend, report{epoch: st.epoch, seq: st.seq, gen: st.gen, day: st.day, mon: st.mon, used: st.used, owed: st.owed})
	}
	st.used, st.owed, st.held, st.budget, st.owedOut = 0, 0, 0, 0, 0
	st.epoch++
	if p.mon != st.mon {
		st.callsM, st.remM = 0, st.limM
	}
	st.day, st.mon = p.day, p.mon
	st.contacted, st.exhausted = false, false
	st.callsD, st.remD = 0, st.limD
}

// throttle is the key's token bucket on this node: its share of the
// throttling quota is the quota divided by the live nodes, with a burst of
// one second of that share (at least one call), so that over any T seconds
// the nodes together admit at most N + N*T when N >= live nodes.
func (st *state) throttle(n, live int64, now int64, commit bool) (ok bool, wait, remaining int64) {
	if n > 1_000_000_000 {
		return true, 0, n
	}
	if n == 0 {
		return false, int64(time.Second), 0
	}
	share := float64(n) / float64(live)
	e := 1e9 / share
	burst := math.Max(1e9, e)
	tat := math.Max(st.tat, float64(now))
	next := tat + e
	if ahead := next - float64(now); ahead > burst {
		return false, int64(ahead - burst + 1), min(n, int64(math.Max((burst-(tat-float64(now)))/e, 0))*live)
	}
	if commit {
		st.tat = next
	}
	// What is left is shown for the cluster: this node's share times the nodes.
	return true, 0, min(n, int64(math.Max((burst-(next-float64(now)))/e, 0))*live)
}

// throttleShared takes one call from the key's bucket in Redis, with st.mu
// held; with Redis unreachable the node's own bucket decides.
func (q *Quotas) throttleShared(st *state, n, now int64) (ok bool, wait, remaining int64) {
	var clock string
	if q.cfg.Clock != nil {
		clock = strconv.FormatInt(q.cfg.Clock().UnixMilli(), 10)
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.cfg.Timeout)
	defer cancel()
	q.redisCalls.Inc()
	out, err := throttleScript.Run(ctx, q.rdb, []string{st.prefix}, n, clock).Int64Slice()
	if err != nil || len(out) != 3 {
		q.setUp(false, err)
		return st.throttle(n, q.LiveNodes(), now, true)
	}
	q.setUp(true, nil)
	if out[0] == 0 {
		wait = out[1] * int64(time.Millisecond)
		st.rateUntil = now + wait
		return false, wait, 0
	}
	return true, 0, out[2]
}

// want sizes the next slice: Window's worth of the key's recent rate here.
func (q *Quotas) want(st *state) int64 {
	rate := max(st.winCalls, st.prevCalls) // calls in a second
	return max(1, int64(math.Ceil(float64(rate)*q.cfg.Window.Seconds())))
}

// prefetch is how much to reserve before the slice runs out: nothing while
// it holds more than half a slice, and nothing near the limit, where a
// slice taken ahead could leave another node refusing calls while this one
// holds them: there each call reserves its own.
func (q *Quotas) prefetch(st *state) int64 {
	want := q.want(st)
	if st.held > want/2 || min(st.remD, st.remM) < 4*want*q.LiveNodes() {
		return 0
	}
	return want
}

func (st *state) count(now int64) {
	if now-st.winStart >= int64(time.Second) {
		if now-st.winStart >= 2*int64(time.Second) {
			st.prevCalls = 0
		} else {
			st.prevCalls = st.winCalls
		}
		st.winStart, st.winCalls = now, 0
	}
	st.winCalls++
	st.lastUsed = now
}

// Take admits one call if the key's throttling, daily and monthly quotas
// allow it across the cluster, and counts it. It waits on Redis only when
// the node holds nothing for the key and Redis is up; never when it is not.
func (q *Quotas) Take(clientID string, l quota.Limits) quota.Decision {
	l = clampLimits(l)
	st := q.get(clientID)
	now := q.cfg.Now().UnixNano()
	p := q.periods(q.clockMs())
	st.mu.Lock()
	defer st.mu.Unlock()
	st.limD, st.limM = l.Daily, l.Monthly
	if !st.contacted {
		st.remD, st.remM = l.Daily, l.Monthly
	}
	st.roll(p)
	if st.day == "" {
		st.day, st.mon = p.day, p.mon
	}
	var d quota.Decision
	live := q.LiveNodes()
	// Under one call per node: the bucket is Redis's, asked once the other
	// quotas admit the call; what it refused is refused here until then.
	shared := l.Throttling > 0 && l.Throttling < live && q.up.Load()
	ok, wait, rateLeft := st.throttle(l.Throttling, live, now, false)
	if shared {
		ok, wait, rateLeft = now >= st.rateUntil, st.rateUntil-now, 0
	}
	d.RateRemaining = rateLeft
	if !ok {
		q.refuse(st, &d, quota.Throttling, wait, p, now)
		return d
	}
	if l.Daily == 0 || l.Monthly == 0 {
		q.refuse(st, &d, exhaustedReason(l.Daily, l.Monthly), 0, p, now)
		return d
	}
	fromHeld := false
	for {
		if st.held > 0 {
			st.held--
			st.used++
			fromHeld = true
			break
		}
		if q.up.Load() && !st.exhausted {
			// Every caller waiting here wants one call of the next slice.
			st.waiting++
			ch := q.startCall(st, max(q.want(st), st.waiting), false)
			canBorrow := st.owed+st.owedOut < st.budget
			st.mu.Unlock()
			slow := false
			if canBorrow {
				// The budget is set aside in Redis: a call that finds Redis
				// slow takes from it rather than wait.
				t := time.NewTimer(budgetWait)
				select {
				case <-ch:
				case <-t.C:
					slow = true
				}
				t.Stop()
			} else {
				<-ch
			}
			st.mu.Lock()
			st.waiting--
			if slow && st.held == 0 && st.owed+st.owedOut < st.budget {
				st.owed++
				break
			}
			if slow {
				st.mu.Unlock()
				<-ch
				st.mu.Lock()
			}
			continue
		}
		// Redis unreachable, or nothing left to reserve: the node's
		// budget, its share of what was free at the last contact.
		if st.owed+st.owedOut < st.budget {
			st.owed++
			break
		}
		q.refuse(st, &d, exhaustedReason(st.remD, st.remM), 0, p, now)
		return d
	}
	// The lock was let go while waiting on Redis: the bucket decides again.
	if shared {
		ok, wait, d.RateRemaining = q.throttleShared(st, l.Throttling, now)
	} else {
		ok, wait, d.RateRemaining = st.throttle(l.Throttling, q.LiveNodes(), now, true)
	}
	if !ok {
		if fromHeld {
			st.held++
			st.used--
		} else {
			st.owed--
		}
		q.refuse(st, &d, quota.Throttling, wait, p, now)
		return d
	}
	if !fromHeld {
		q.localShareAdmits.Inc()
	}
	st.count(now)
	d.Allowed = true
	d.DailyRemaining, d.MonthlyRemaining = st.remaining()
	// Refill before the slice runs out, so the next calls do not wait.
	if want := q.prefetch(st); want > 0 && st.refill == nil && q.up.Load() && !st.exhausted {
		q.startCall(st, want, false)
	}
	return d
}

// exhaustedReason names the quota that ran out: the daily one unless only
// the monthly one has less left.
func exhaustedReason(day, month int64) quota.Reason {
	if month < day {
		return quota.Monthly
	}
	return quota.Daily
}

// remaining is what the response headers show: what was free at the last
// contact plus what this node holds and what is left of its budget.
func (st *state) remaining() (day, month int64) {
	mine := st.held + max(st.budget-st.owed-st.owedOut, 0)
	return max(st.remD+mine, 0), max(st.remM+mine, 0)
}

func (q *Quotas) refuse(st *state, d *quota.Decision, r quota.Reason, wait int64, p periods, now int64) {
	d.Allowed = false
	d.Reason = r
	d.DailyRemaining, d.MonthlyRemaining = st.remaining()
	clock := q.clockMs()
	switch r {
	case quota.Daily:
		d.DailyRemaining = 0
		wait = max(wait, (p.dayEnd-clock)*int64(time.Millisecond))
	case quota.Monthly:
		d.MonthlyRemaining = 0
		wait = max(wait, (p.monEnd-clock)*int64(time.Millisecond))
	}
	d.RetryAfter = max((wait+int64(time.Second)-1)/int64(time.Second), 1)
}

// Peek answers what Take would, counting nothing and never calling Redis.
func (q *Quotas) Peek(clientID string, l quota.Limits) quota.Decision {
	l = clampLimits(l)
	st := q.lookup(clientID)
	if st == nil {
		st = &state{remD: l.Daily, remM: l.Monthly, limD: l.Daily, limM: l.Monthly}
	}
	now := q.cfg.Now().UnixNano()
	p := q.periods(q.clockMs())
	st.mu.Lock()
	defer st.mu.Unlock()
	var d quota.Decision
	ok, wait, left := st.throttle(l.Throttling, q.LiveNodes(), now, false)
	d.RateRemaining = left
	dl, ml := st.remaining()
	switch {
	case !ok:
		q.refuse(st, &d, quota.Throttling, wait, p, now)
	case dl == 0 || l.Daily == 0:
		q.refuse(st, &d, quota.Daily, 0, p, now)
	case ml == 0 || l.Monthly == 0:
		q.refuse(st, &d, quota.Monthly, 0, p, now)
	default:
		d.Allowed = true
		d.DailyRemaining, d.MonthlyRemaining = dl, ml
	}
	return d
}

// Usage answers the key's cluster-wide counts: it asks Redis for them
// (bounded by the timeout) and adds what this node has not reported yet.
func (q *Quotas) Usage(clientID string, l quota.Limits) gatehouse.QuotaUsage {
	l = clampLimits(l)
	st := q.get(clientID)
	st.mu.Lock()
	st.limD, st.limM = l.Daily, l.Monthly
	if !st.contacted {
		st.remD, st.remM = l.Daily, l.Monthly
	}
	var ch chan struct{}
	if q.up.Load() {
		ch = q.startCall(st, 0, false)
	}
	st.mu.Unlock()
	if ch != nil {
		<-ch
	}
	now := q.cfg.Now().UnixNano()
	st.mu.Lock()
	defer st.mu.Unlock()
	p := q.periods(q.clockMs())
	st.roll(p)
	_, _, left := st.throttle(l.Throttling, q.LiveNodes(), now, false)
	day := st.callsD + st.used + st.owed
	month := st.callsM + st.used + st.owed
	rate := min(l.Throttling, 1_000_000_000)
	return gatehouse.QuotaUsage{
		AuthorizedCallsPerSec:   l.Throttling,
		CurrentCallsPerSec:      max(rate-left, 0),
		RemainingCallsPerSec:    left,
		AuthorizedCallsPerDay:   l.Daily,
		CurrentCallsPerDay:      day,
		RemainingCallsPerDay:    max(l.Daily-day, 0),
		AuthorizedCallsPerMonth: l.Monthly,
		CurrentCallsPerMonth:    month,
		RemainingCallsPerMonth:  max(l.Monthly-month, 0),
	}
}

// Reset is called when a quota reset of the key is applied from the change
// log. The leader, which applies it first, starts a new generation of the
// key's counters in Redis; every node then learns it at its next call for
// the key (within a second: the key is synced every tick meanwhile) and
// drops what it held of the old one.
func (q *Quotas) Reset(clientID string) {
	st := q.get(clientID)
	st.mu.Lock()
	st.watchUntil = q.cfg.Now().Add(2 * time.Second).UnixNano()
	st.exhausted = false
	st.mu.Unlock()
	if !q.cfg.Leader {
		return
	}
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), q.cfg.Timeout)
			q.redisCalls.Inc()
			err := q.rdb.Incr(ctx, "gatehouse:q:{"+clientID+"}:gen").Err()
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				q.log.Error("reset quota counters in redis", "client_id", clientID, "err", err)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		st.mu.Lock()
		if st.refill == nil {
			q.startCall(st, 0, false)
		}
		st.mu.Unlock()
	}()
}

// Forget drops a deleted key's state here.
func (q *Quotas) Forget(clientID string) {
	q.mu.Lock()
	delete(q.keys, clientID)
	q.mu.Unlock()
}

// startCall starts one call to Redis for st, with st.mu held: it reports
// what st has not, asks for want calls, and gives back what st holds when
// giveBack. The returned channel closes when the answer is applied. Only one
// call per key is in flight: a second caller gets the first's channel.
func (q *Quotas) startCall(st *state, want int64, giveBack bool) chan struct{} {
	if st.refill != nil {
		return st.refill
	}
	ch := make(chan struct{})
	st.refill = ch
	pend := st.pend
	st.pend = nil
	cur := report{epoch: st.epoch, gen: st.gen, day: st.day, mon: st.mon, used: st.used, owed: st.owed}
	if cur.used+cur.owed > 0 {
		st.seq++
		cur.seq = st.seq
	}
	st.owedOut += cur.owed
	st.used, st.owed = 0, 0
	cur.cap = max(st.budget-st.owedOut, 0)
	limD, limM := st.limD, st.limM
	if giveBack {
		// The slice and the budget go back: nothing is admitted from them
		// meanwhile, since Redis frees all of them. Should the call fail,
		// they stay set aside in Redis rather than risk being admitted twice.
		want, st.held, st.budget, cur.cap = 0, 0, 0, 0
	}
	go func() {
		defer close(ch)
		var failed, sent []report
		for i, r := range pend {
			r.cap = -1 // an older report: the budget is the last call's business
			if _, err := q.reserve(st, r, 0, false, limD, limM); err != nil {
				failed = append(failed, pend[i:]...)
				break
			}
			sent = append(sent, r)
		}
		var res []int64
		var day, mon string
		var err error
		if len(failed) == 0 {
			var out []any
			out, err = q.reserve(st, cur, want, giveBack, limD, limM)
			if err == nil {
				res, day, mon, err = parseReply(out)
			}
		} else {
			err = errors.New("redis unreachable")
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		st.refill = nil
		if err == nil {
			sent = append(sent, cur)
		}
		for _, r := range sent {
			if r.epoch == st.epoch {
				st.owedOut = max(st.owedOut-r.owed, 0)
			}
		}
		if err != nil {
			// Redis may have applied a report whose answer was lost: each
			// is sent again as it was, with its sequence number.
			st.pend = append(failed, st.pend...)
			if cur.used+cur.owed > 0 {
				st.pend = append(st.pend, cur)
			}
			return
		}
		gen, grant := res[0], res[1]
		if gen != st.gen || day != st.day || mon != st.mon {
			// A reset or a new period: what was held is void; calls made
			// since the call started belong to the old one.
			if st.used > 0 || st.owed > 0 {
				st.seq++
				st.pend = append(st.pend, report{epoch: st.epoch, seq: st.seq, gen: st.gen, day: st.day, mon: st.mon, used: st.used, owed: st.owed})
			}
			st.held, st.used, st.owed, st.budget, st.owedOut = 0, 0, 0, 0, 0
			st.epoch++
			if gen != st.gen {
				st.callsD, st.callsM = 0, 0
			}
			st.gen, st.day, st.mon = gen, day, mon
		}
		if giveBack {
			st.held, st.budget = 0, 0
			q.returns.Inc()
		}
		if grant > 0 {
			q.reservations.Inc()
			q.reservedCalls.Add(float64(grant))
		}
		// Calls admitted from the budget while this call was on its way
		// count against what Redis keeps of it now (res[6]); those beyond it
		// come out of the slice just granted, or they would be admitted twice.
		if over := min(st.owed+st.owedOut-res[6], st.owed, grant); over > 0 {
			grant -= over
			st.owed -= over
			st.used += over
		}
		st.held += grant
		st.budget = res[9] // the target: Redis keeps at least this much set aside
		st.remD, st.remM = limD-res[2]-res[7], limM-res[3]-res[8]
		st.callsD, st.callsM = res[4], res[5]
		st.contacted = true
		st.exhausted = want > 0 && grant == 0
	}()
	return ch
}

// reserve runs the reservation script once for st.
func (q *Quotas) reserve(st *state, r report, want int64, giveBack bool, limD, limM int64) ([]any, error) {
	var clock string
	if q.cfg.Clock != nil {
		clock = strconv.FormatInt(q.cfg.Clock().UnixMilli(), 10)
	}
	p := q.periods(q.clockMs())
	back := "0"
	if giveBack {
		back = "1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.cfg.Timeout)
	defer cancel()
	q.redisCalls.Inc()
	t0 := q.cfg.Now()
	out, err := reserveScript.Run(ctx, q.rdb, []string{st.prefix},
		q.cfg.Node, r.gen, p.dayBoundary, p.dayBefore, p.dayAfter, p.monBoundary, p.monBefore, p.monAfter,
		limD, limM, want, r.day, r.used, r.owed, r.mon, back, clock, q.LiveNodes(), st.id, r.seq, q.run, r.cap).Slice()
	if err != nil {
		q.setUp(false, err)
		return nil, err
	}
	if len(out) > 1 && q.cfg.Clock == nil {
		if now, ok := out[1].(int64); ok {
			q.offset.Store(now - t0.UnixMilli() - q.cfg.Now().Sub(t0).Milliseconds()/2)
		}
	}
	q.setUp(true, nil)
	return out, nil
}

func parseReply(out []any) (nums []int64, day, mon string, err error) {
	if len(out) != 13 {
		return nil, "", "", fmt.Errorf("reserve: %d values in the answer", len(out))
	}
	day, _ = out[2].(string)
	mon, _ = out[3].(string)
	for _, i := range []int{0, 4, 5, 6, 7, 8, 9, 10, 11, 12} {
		n, ok := out[i].(int64)
		if !ok {
			return nil, "", "", fmt.Errorf("reserve: value %d is %T", i, out[i])
		}
		nums = append(nums, n)
	}
	return nums, day, mon, nil
}

func (q *Quotas) setUp(up bool, err error) {
	if was := q.up.Swap(up); was != up {
		if up {
			q.log.Info("redis connected")
			q.upGauge.Set(1)
		} else {
			q.log.Error("redis unreachable: serving from held and local shares", "err", err)
			q.upGauge.Set(0)
		}
		if q.connectedCallback != nil {
			q.connectedCallback(up)
		}
	}
}

// heartbeat tells Redis this node is alive and learns how many are.
func (q *Quotas) heartbeat(leave bool) {
	var clock, l string
	if q.cfg.Clock != nil {
		clock = strconv.FormatInt(q.cfg.Clock().UnixMilli(), 10)
	}
	if leave {
		l = "1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.cfg.Timeout)
	defer cancel()
	q.redisCalls.Inc()
	t0 := q.cfg.Now()
	out, err := heartbeatScript.Run(ctx, q.rdb, nil, q.cfg.Node, clock, l).Int64Slice()
	if err != nil || len(out) != 2 {
		q.setUp(false, err)
		return
	}
	q.live.Store(max(out[0], 1))
	if q.cfg.Clock == nil {
		q.offset.Store(out[1] - t0.UnixMilli() - q.cfg.Now().Sub(t0).Milliseconds()/2)
	}
	q.setUp(true, nil)
}

func (q *Quotas) heartbeatLoop() {
	defer q.done.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
			q.heartbeat(false)
		}
	}
}

// syncLoop reports, refills and gives back, every SyncInterval, for the
// keys that need it: unreported calls, a slice running low, an exhausted key
// still called (another node may have given calls back), a reset in flight,
// and keys idle for 10 s, whose unused slices go back.
func (q *Quotas) syncLoop() {
	defer q.done.Done()
	t := time.NewTicker(q.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
		}
		if !q.up.Load() {
			continue
		}
		now := q.cfg.Now().UnixNano()
		q.mu.Lock()
		sts := make([]*state, 0, len(q.keys))
		for _, st := range q.keys {
			sts = append(sts, st)
		}
		q.mu.Unlock()
		for _, st := range sts {
			st.mu.Lock()
			idle := now-st.lastUsed > int64(10*time.Second)
			switch {
			case st.refill != nil:
			case idle && st.held > 0:
				q.startCall(st, 0, true)
			case st.used > 0 || st.owed > 0 || len(st.pend) > 0 || now < st.watchUntil:
				want := int64(0)
				if !idle {
					want = q.prefetch(st)
				}
				q.startCall(st, want, false)
			case st.exhausted && !idle:
				q.startCall(st, 1, false)
			}
			st.mu.Unlock()
		}
	}
}
