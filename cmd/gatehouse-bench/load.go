package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// target is one row's request: where it goes, how it presents itself and
// what answer counts as success.
type target struct {
	addr   string // host:port the TCP connection goes to
	host   string // Host header, empty for addr
	path   string
	header http.Header
	want   int // expected status; anything else is an error
}

func (t target) newRequest() *http.Request {
	req, err := http.NewRequest(http.MethodGet, "http://"+t.addr+t.path, nil)
	if err != nil {
		panic(fmt.Sprintf("bad bench target %s%s: %v", t.addr, t.path, err)) // our own constant input
	}
	if t.host != "" {
		req.Host = t.host
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	return req
}

// newClientTransport is the load generator's HTTP client: keep-alive, no
// compression, no proxy from the environment, enough idle connections that
// no request ever waits to dial once warm.
func newClientTransport(conns int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// do sends one request and drains the answer so the connection is reused.
func do(rt http.RoundTripper, req *http.Request) (int, error) {
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// loadResult is what one load run saw.
type loadResult struct {
	requests  uint64
	errors    uint64
	elapsed   time.Duration
	firstErr  string // a sample of what went wrong, for the report
	latencies *histogram
}

func (r *loadResult) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

type errSampler struct {
	once sync.Once
	msg  string
}

func (e *errSampler) note(status int, err error) {
	e.once.Do(func() {
		if err != nil {
			e.msg = err.Error()
		} else {
			e.msg = fmt.Sprintf("status %d", status)
		}
	})
}

// closedLoop keeps conns requests in flight for d and counts what completes:
// the throughput measurement.
func closedLoop(ctx context.Context, t target, conns int, d time.Duration) loadResult {
	tr := newClientTransport(conns)
	defer tr.CloseIdleConnections()
	var n, errs atomic.Uint64
	var sample errSampler
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			req := t.newRequest()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				status, err := do(tr, req)
				n.Add(1)
				if err != nil || status != t.want {
					errs.Add(1)
					sample.note(status, err)
				}
			}
		})
	}
	wg.Wait()
	return loadResult{requests: n.Load(), errors: errs.Load(), elapsed: time.Since(start), firstErr: sample.msg}
}

// clock is what the open-loop dispatcher needs of time, so tests can drive it.
type clock interface {
	Now() time.Time
	SleepUntil(t time.Time)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) SleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}

// dispatch sends the scheduled start times start + i/rate, i in [0, n), to
// out, each no earlier than its time. When it falls behind it catches up at
// once, keeping the original schedule: the schedule never slips, so a stall
// anywhere shows up in the latency of every request that was due during it
// (no coordinated omission). It closes out when done or when ctx ends.
func dispatch(ctx context.Context, clk clock, start time.Time, rate float64, n int, out chan<- time.Time) {
	defer close(out)
	interval := time.Duration(float64(time.Second) / rate)
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if clk.Now().Before(at) {
			clk.SleepUntil(at)
		}
		select {
		case out <- at:
		case <-ctx.Done():
			return
		}
	}
}

// openLoop sends requests at a fixed rate for d, whatever the answers' pace,
// and records each latency from the request's scheduled time to the end of
// its answer. workers bounds the requests in flight; when all are busy,
// requests queue and their wait counts as latency, as a real client's would.
func openLoop(ctx context.Context, t target, rate float64, d time.Duration, workers int) loadResult {
	return openLoopWith(ctx, realClock{}, t, rate, d, workers, nil)
}

func openLoopWith(ctx context.Context, clk clock, t target, rate float64, d time.Duration, workers int, dispatched func()) loadResult {
	n := max(1, int(rate*d.Seconds()))
	tr := newClientTransport(workers)
	defer tr.CloseIdleConnections()
	due := make(chan time.Time, n) // never blocks the dispatcher
	var errs atomic.Uint64
	var sample errSampler
	h := new(histogram)
	start := clk.Now()
	go func() {
		dispatch(ctx, clk, start, rate, n, due)
		if dispatched != nil {
			dispatched()
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			req := t.newRequest()
			for at := range due {
				status, err := do(tr, req)
				h.Record(clk.Now().Sub(at))
				if err != nil || status != t.want {
					errs.Add(1)
					sample.note(status, err)
				}
			}
		})
	}
	wg.Wait()
	return loadResult{requests: h.Count(), errors: errs.Load(), elapsed: clk.Now().Sub(start), firstErr: sample.msg, latencies: h}
}
