package plugins

import (
	"context"
	"errors"
	"math"
	"runtime"
	"testing"
	"time"
)

// watched is an instance without a guest, known to w: the watchdog only
// looks at an instance's deadline and context.
func watched(w *watchdog) *instance {
	in := &instance{}
	in.ctx = callContext{in: in, done: make(chan struct{})}
	w.add(in)
	return in
}

// expiredWithin waits for in's context to expire; false after limit (a
// bound against hanging, far beyond the deadlines under test).
func expiredWithin(in *instance, limit time.Duration) bool {
	select {
	case <-in.ctx.Done():
		return true
	case <-time.After(limit):
		return false
	}
}

// TestWatchdog: an overdue call's context expires (Err says deadline
// exceeded, as wazero needs to close the module with that exit code) and
// its end reports it; a call that ends in time is left alone; a shorter
// deadline than the one the watchdog sleeps towards is not missed.
func TestWatchdog(t *testing.T) {
	w := newWatchdog()

	t.Run("a call that ends in time", func(t *testing.T) {
		in := watched(w)
		w.begin(in, time.Hour)
		if !w.end(in) || in.ctx.Err() != nil {
			t.Fatalf("end = false or Err = %v for a call in time", in.ctx.Err())
		}
		w.remove(in)
	})

	t.Run("an overdue call", func(t *testing.T) {
		in := watched(w)
		w.begin(in, time.Millisecond)
		if !expiredWithin(in, time.Minute) {
			t.Fatal("the overdue call's context never expired")
		}
		if !errors.Is(in.ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v, want context.DeadlineExceeded", in.ctx.Err())
		}
		if w.end(in) {
			t.Fatal("end = true for an expired call")
		}
		w.remove(in)
	})

	t.Run("a short deadline while the watchdog waits for a long one", func(t *testing.T) {
		long, short := watched(w), watched(w)
		w.begin(long, time.Hour)
		d := long.deadline.Load()
		for w.wake.Load() != d { // the watchdog has seen the long call and sleeps towards it
			runtime.Gosched()
		}
		w.begin(short, time.Millisecond)
		if !expiredWithin(short, time.Minute) {
			t.Fatal("a short deadline was missed while the watchdog slept towards an hour")
		}
		if w.end(short) {
			t.Fatal("end = true for the expired short call")
		}
		if !w.end(long) || long.ctx.Err() != nil {
			t.Fatal("the long call was expired too")
		}
		w.remove(short)
		w.remove(long)
	})

	t.Run("the goroutine ends with the last instance", func(t *testing.T) {
		in := watched(w)
		w.mu.Lock()
		done := w.done
		w.mu.Unlock()
		w.remove(in)
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("the watchdog goroutine outlived every instance")
		}
		if w.wake.Load() != math.MaxInt64 {
			t.Fatalf("wake = %d after the goroutine ended", w.wake.Load())
		}
		// A new instance starts it again.
		in = watched(w)
		w.begin(in, time.Millisecond)
		if !expiredWithin(in, time.Minute) {
			t.Fatal("no watchdog after a restart")
		}
		w.remove(in)
	})
}

// TestHostStopsWatching: once a Host is closed and its instances are gone,
// no watchdog goroutine is left.
func TestHostStopsWatching(t *testing.T) {
	h := newTestHost(t)
	h.load(t, "echo")
	g := newGateway(t, h, "svc-watch", ref("echo", ""))
	if res := g.do(t, "GET", "/", "", "X-Echo", "x"); res.Status != 200 {
		t.Fatalf("status %d", res.Status)
	}
	w := h.watchdog
	w.mu.Lock()
	done, running := w.done, w.running
	w.mu.Unlock()
	if !running {
		t.Fatal("no watchdog while the host has instances")
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the watchdog goroutine outlived the closed host")
	}
}
