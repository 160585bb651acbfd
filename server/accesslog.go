package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The access log (contract section 13): one JSON object per gateway request
// and line. The request path hands a record to a bounded queue and a single
// goroutine writes the lines; when the sink cannot keep up, the queue fills
// and records are dropped and counted, so writing never holds a request.
// A line holds no secret, credential, cookie or query string: the fields are
// taken from the gateway's own state, never copied from request headers.

// accessLine is one line, in the contract's field order.
type accessLine struct {
	Time       string  `json:"time"`
	ReqID      string  `json:"req_id"`
	TraceID    string  `json:"trace_id"`
	Method     string  `json:"method"`
	Host       string  `json:"host"`
	Path       string  `json:"path"`
	Status     int     `json:"status"`
	Service    string  `json:"service"`
	ClientID   string  `json:"client_id"`
	ClientIP   string  `json:"client_ip"`
	ProxyMs    float64 `json:"proxy_ms"`
	UpstreamMs float64 `json:"upstream_ms"`
	BytesIn    int64   `json:"bytes_in"`
	BytesOut   int64   `json:"bytes_out"`
	Error      string  `json:"error"`
}

const accessLogQueueSize = 8192

type accessLog struct {
	queue   chan requestRecord
	dropped prometheus.Counter
	sink    io.Writer
	w       *bufio.Writer
	closer  io.Closer // the file; nil for stdout
	log     *slog.Logger
	done    chan struct{}
	stop    sync.Once
}

// openAccessLog opens the sink: "stdout", or a file appended to (created
// 0600 if missing). "" and "off" mean no access log (nil).
func openAccessLog(sink string, stdout io.Writer, dropped prometheus.Counter, log *slog.Logger) (*accessLog, error) {
	var w io.Writer
	var c io.Closer
	switch sink {
	case "", "off":
		return nil, nil
	case "stdout":
		w = stdout
	default:
		f, err := os.OpenFile(sink, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open access log: %w", err)
		}
		w, c = f, f
	}
	return startAccessLog(w, c, dropped, log, accessLogQueueSize), nil
}

func startAccessLog(w io.Writer, c io.Closer, dropped prometheus.Counter, log *slog.Logger, queueSize int) *accessLog {
	a := &accessLog{queue: make(chan requestRecord, queueSize), dropped: dropped,
		sink: w, w: bufio.NewWriterSize(w, 64<<10), closer: c, log: log, done: make(chan struct{})}
	go a.run()
	return a
}

// offer hands a record to the writer without waiting.
func (a *accessLog) offer(rec *requestRecord) {
	select {
	case a.queue <- *rec:
	default:
		a.dropped.Inc()
	}
}

func (a *accessLog) run() {
	defer close(a.done)
	enc := json.NewEncoder(a.w)
	enc.SetEscapeHTML(false)
	failed := false
	for rec := range a.queue {
		err := enc.Encode(accessLine{
			Time:       rec.start.UTC().Format(time.RFC3339Nano),
			ReqID:      rec.reqID,
			TraceID:    rec.trace.traceIDString(),
			Method:     rec.method,
			Host:       rec.host,
			Path:       rec.path,
			Status:     rec.status,
			Service:    rec.service,
			ClientID:   rec.clientID,
			ClientIP:   rec.clientIP,
			ProxyMs:    ms(rec.proxy),
			UpstreamMs: ms(rec.upstream),
			BytesIn:    rec.bytesIn,
			BytesOut:   rec.bytesOut,
			Error:      rec.errMsg,
		})
		// Lines go out in as few writes as the load allows: the buffer is
		// flushed when nothing more is waiting.
		if err == nil && len(a.queue) == 0 {
			err = a.w.Flush()
		}
		if err != nil {
			// The buffer's error sticks: start it over, and count what it held.
			a.dropped.Inc()
			a.w.Reset(a.sink)
			if !failed {
				a.log.Error("access log: write failed; lines are dropped until it works again", "err", err)
			}
		}
		failed = err != nil
	}
	if err := a.w.Flush(); err != nil {
		a.log.Error("access log: final write failed", "err", err)
	}
}

// Close writes what is queued and closes the file.
func (a *accessLog) Close(ctx context.Context) error {
	a.stop.Do(func() { close(a.queue) })
	select {
	case <-a.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if a.closer != nil {
		return a.closer.Close()
	}
	return nil
}

// observe hands the finished request to the access log and the span
// exporter, when they are on.
func (g *Gateway) observe(x *exchange, r *http.Request, status int, service string, end time.Time) {
	if g.accessLog == nil && g.spans == nil {
		return
	}
	rec := requestRecord{
		start: x.start, end: end, reqID: x.reqID, trace: x.trace,
		method: r.Method, host: hostOnly(r.Host), path: x.path, status: status, service: service,
		upstream: x.upstreamDur, bytesOut: x.sw.written, errMsg: x.errMsg,
	}
	rec.proxy = end.Sub(x.start) - x.upstreamDur
	if x.key != nil {
		rec.clientID = x.key.ClientID
	}
	if x.clientIP.IsValid() {
		rec.clientIP = x.clientIP.String()
	}
	if x.body != nil {
		rec.bytesIn = x.body.read.Load()
	}
	if x.route != nil {
		rec.route = "/"
		if mr := x.route.Service.MatchingRoot; mr != nil {
			rec.route = *mr
		}
	}
	if g.accessLog != nil {
		g.accessLog.offer(&rec)
	}
	if g.spans != nil {
		g.spans.offer(&rec)
	}
}
