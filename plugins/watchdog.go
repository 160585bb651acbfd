package plugins

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/sys"
)

// A guest call is bounded by its plugin's timeoutMs without a context and a
// timer per call. Each instance makes all its calls with one context
// (callContext) whose Done channel closes only when a call overruns; one
// watchdog per Host keeps the deadlines of the calls in flight and expires
// the context of an overdue one. wazero (WithCloseOnContextDone) then closes
// the module from its own watcher, on the path that leaves the module's
// resources to the calling goroutine, and the guest's compiled code, which
// checks for a closed module in every loop and function call, exits with
// sys.ExitCodeDeadlineExceeded. An instance whose context expired is thrown
// away, like any instance after an error.
//
// wazero (v1.12, internal/engine/wazevo/call_engine.go) still starts its
// watcher goroutine on every call while WithCloseOnContextDone is on,
// whatever the context; without that option, compiled code has no
// termination checks and nothing could stop a guest's loop. Closing the
// module from the watchdog instead (CloseWithExitCode) would close its
// resources under a WASI call still running on the guest's goroutine.

// overran is the deadline of an instance whose call the watchdog expired.
const overran = -1

// errDeadline is what a call that overran returns, whatever the guest did
// after its context expired.
var errDeadline = sys.NewExitError(sys.ExitCodeDeadlineExceeded)

// callContext is the context of an instance's guest calls: the host
// functions find the instance in it, and its Done channel closes when the
// watchdog expires a call. It carries no deadline of its own.
type callContext struct {
	in      *instance
	done    chan struct{}
	expired atomic.Bool
}

var _ context.Context = (*callContext)(nil)

func (c *callContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *callContext) Done() <-chan struct{}       { return c.done }

func (c *callContext) Err() error {
	if c.expired.Load() {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *callContext) Value(key any) any {
	if key == (instKey{}) {
		return c.in
	}
	return nil
}

// expire ends the call in progress; once only (the watchdog's CAS on the
// instance's deadline sees to it).
func (c *callContext) expire() {
	c.expired.Store(true) // before Done closes: Err is set once Done is
	close(c.done)
}

// watchdog watches the guest calls of one Host. A call stores its deadline
// in its instance and kicks the watchdog only when that deadline is earlier
// than the watchdog's next look, which, with every plugin on the same
// timeout, is only the first call after a quiet spell. Its goroutine runs
// while the Host has instances, so a closed Host leaves none behind once
// the requests in flight have finished.
type watchdog struct {
	epoch time.Time     // deadlines are monotonic nanoseconds since
	wake  atomic.Int64  // when the watchdog next looks; MaxInt64 while it waits for a kick
	kick  chan struct{} // capacity 1: a kick is never lost, nor waited on

	mu      sync.Mutex
	live    map[*instance]struct{} // every instance that may call its guest
	running bool                   // run's goroutine is on
	done    chan struct{}          // closed when that goroutine returns
}

func newWatchdog() *watchdog {
	return &watchdog{epoch: time.Now(), kick: make(chan struct{}, 1), live: map[*instance]struct{}{}}
}

func (w *watchdog) now() int64 { return int64(time.Since(w.epoch)) }

func (w *watchdog) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// add watches in's calls from now on.
func (w *watchdog) add(in *instance) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.live[in] = struct{}{}
	if !w.running {
		w.running, w.done = true, make(chan struct{})
		go w.run(w.done)
	}
}

// remove forgets in; the watchdog never touches it after this returns.
func (w *watchdog) remove(in *instance) {
	w.mu.Lock()
	delete(w.live, in)
	last := len(w.live) == 0
	w.mu.Unlock()
	if last {
		w.poke() // so that the goroutine ends now
	}
}

// begin starts a call of in that may last timeout.
func (w *watchdog) begin(in *instance, timeout time.Duration) {
	d := w.now() + int64(timeout)
	in.deadline.Store(d)
	// Stored before wake is read, and run sets wake before it reads the
	// deadlines: either run sees this deadline, or this call sees the wake
	// it must beat.
	if d < w.wake.Load() {
		w.poke()
	}
}

// end ends in's call; false when the watchdog expired it.
func (w *watchdog) end(in *instance) bool {
	return in.deadline.Swap(0) != overran
}

func (w *watchdog) run(done chan struct{}) {
	defer close(done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		w.wake.Store(math.MaxInt64)
		next, stop := w.expireOverdue()
		if stop {
			return
		}
		w.wake.Store(next)
		if next == math.MaxInt64 {
			<-w.kick
			continue
		}
		t.Reset(time.Duration(next - w.now()))
		select {
		case <-t.C:
		case <-w.kick:
		}
	}
}

// expireOverdue expires every call past its deadline and returns the
// earliest deadline still to come (MaxInt64: none), or stop when no
// instance is left.
func (w *watchdog) expireOverdue() (next int64, stop bool) {
	now := w.now()
	next = math.MaxInt64
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.live) == 0 {
		w.running = false
		return next, true
	}
	for in := range w.live {
		switch d := in.deadline.Load(); {
		case d <= 0: // between calls, or already expired
		case d <= now:
			// The CAS fails when the call ended meanwhile; a later call on
			// the same instance has a later deadline.
			if in.deadline.CompareAndSwap(d, overran) {
				in.ctx.expire()
			}
		case d < next:
			next = d
		}
	}
	return next, false
}
