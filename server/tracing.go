package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// W3C trace context (contract section 13): every request forwarded carries a
// traceparent naming this gateway's span, in the client's trace when it sent
// a valid traceparent, in a new trace otherwise; tracestate passes through
// as the client sent it. With an OTLP endpoint, one span per request is
// exported in batches, off the request path.

// traceContext is one request's trace: the trace, the gateway's span in it,
// and the client's span when the trace is the client's.
type traceContext struct {
	traceID  [16]byte
	spanID   [8]byte
	parentID [8]byte // zero when the gateway started the trace
	flags    byte
}

// newTraceContext continues the client's traceparent, or starts a trace.
// IDs come from math/rand/v2's ChaCha8 generator, random enough for W3C
// trace ids and cheap on the request path.
func newTraceContext(header []string, sampled bool) traceContext {
	var tc traceContext
	putID(tc.spanID[:])
	if len(header) == 1 {
		if tid, pid, flags, ok := parseTraceparent(header[0]); ok {
			tc.traceID, tc.parentID, tc.flags = tid, pid, flags
			if sampled {
				tc.flags |= 1
			}
			return tc
		}
	}
	putID(tc.traceID[:])
	if sampled {
		tc.flags = 1
	}
	return tc
}

func putID(b []byte) {
	for {
		for i := 0; i < len(b); i += 8 {
			v := rand.Uint64()
			for j := 0; j < 8 && i+j < len(b); j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		for _, c := range b {
			if c != 0 {
				return // an all-zero id is invalid
			}
		}
	}
}

// parseTraceparent reads "00-<32 hex>-<16 hex>-<2 hex>" (lowercase hex; a
// later version may append "-..."), refusing version ff and all-zero ids.
func parseTraceparent(s string) (tid [16]byte, pid [8]byte, flags byte, ok bool) {
	if len(s) < 55 || (len(s) > 55 && s[55] != '-') || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return tid, pid, 0, false
	}
	var ver [1]byte
	if !lowerHex(ver[:], s[0:2]) || ver[0] == 0xff || (ver[0] == 0 && len(s) != 55) {
		return tid, pid, 0, false
	}
	var fl [1]byte
	if !lowerHex(tid[:], s[3:35]) || !lowerHex(pid[:], s[36:52]) || !lowerHex(fl[:], s[53:55]) {
		return tid, pid, 0, false
	}
	if tid == ([16]byte{}) || pid == ([8]byte{}) {
		return tid, pid, 0, false
	}
	return tid, pid, fl[0], true
}

func lowerHex(dst []byte, s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	_, err := hex.Decode(dst, []byte(s))
	return err == nil
}

// traceparentLen is the length of a version 00 traceparent.
const traceparentLen = 55

// appendTraceparent appends the context with the gateway's span as the parent.
func (tc *traceContext) appendTraceparent(b []byte) []byte {
	b = append(b, "00-"...)
	b = hex.AppendEncode(b, tc.traceID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, tc.spanID[:])
	b = append(b, '-')
	return hex.AppendEncode(b, []byte{tc.flags})
}

func (tc *traceContext) traceIDString() string { return hex.EncodeToString(tc.traceID[:]) }

// requestRecord is what the access log and the span exporter keep of one
// request; made at its end, handed off the request path.
type requestRecord struct {
	start, end   time.Time
	reqID        string
	trace        traceContext
	method, host string
	path         string
	route        string
	status       int
	service      string
	clientID     string
	clientIP     string
	proxy        time.Duration // the gateway's own time: the whole request but the upstream's
	upstream     time.Duration // until the upstream's response headers
	bytesIn      int64
	bytesOut     int64
	errMsg       string
}

// spanExporter turns request records into spans and exports them over
// OTLP/HTTP in batches, from one goroutine: the request path only offers a
// record to a bounded queue, and a record that does not fit is dropped and
// counted, so an unreachable or slow collector never slows a request.
type spanExporter struct {
	queue    chan requestRecord
	dropped  prometheus.Counter
	exporter sdktrace.SpanExporter
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	batch    *batchCollector
	ids      *recordIDs
	log      *slog.Logger
	done     chan struct{}
	stop     sync.Once

	batchSize int
	interval  time.Duration
	timeout   time.Duration
}

const (
	spanQueueSize = 4096
	spanBatchSize = 512
)

// otlpTracesURL is the endpoint's traces URL: /v1/traces when it names no path.
func otlpTracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("otlp endpoint %q: want http://host:port or https://host:port", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

func newSpanExporter(endpoint string, dropped prometheus.Counter, log *slog.Logger) (*spanExporter, error) {
	tracesURL, err := otlpTracesURL(endpoint)
	if err != nil {
		return nil, err
	}
	// No retries: a batch the collector does not take is dropped and
	// counted, and the next one tried.
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(tracesURL),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}), otlptracehttp.WithTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	return startSpanExporter(exp, dropped, log, spanQueueSize, spanBatchSize, time.Second, 5*time.Second), nil
}

func startSpanExporter(exp sdktrace.SpanExporter, dropped prometheus.Counter, log *slog.Logger, queueSize, batchSize int, interval, timeout time.Duration) *spanExporter {
	e := &spanExporter{
		queue: make(chan requestRecord, queueSize), dropped: dropped, exporter: exp,
		batch: &batchCollector{}, ids: &recordIDs{}, log: log, done: make(chan struct{}),
		batchSize: batchSize, interval: interval, timeout: timeout,
	}
	res := resource.NewSchemaless(attribute.String("service.name", "gatehouse"))
	// The span ids are the ones the upstream already received in
	// traceparent: the id generator hands out the record's.
	e.provider = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithIDGenerator(e.ids), sdktrace.WithSpanProcessor(e.batch))
	e.tracer = e.provider.Tracer("gatehouse/gateway")
	go e.run()
	return e
}

// offer hands a record to the exporter without waiting.
func (e *spanExporter) offer(rec *requestRecord) {
	select {
	case e.queue <- *rec:
	default:
		e.dropped.Inc()
	}
}

func (e *spanExporter) run() {
	defer close(e.done)
	t := time.NewTicker(e.interval)
	defer t.Stop()
	for {
		select {
		case rec, ok := <-e.queue:
			if !ok {
				e.flush()
				return
			}
			e.record(&rec)
			if len(e.batch.spans) >= e.batchSize {
				e.flush()
			}
		case <-t.C:
			e.flush()
		}
	}
}

// record makes the request's span; the collector keeps it for the batch.
func (e *spanExporter) record(rec *requestRecord) {
	e.ids.next = rec.trace
	ctx := context.Background()
	if rec.trace.parentID != ([8]byte{}) {
		ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: rec.trace.traceID, SpanID: rec.trace.parentID, TraceFlags: trace.TraceFlags(rec.trace.flags), Remote: true,
		}))
	}
	name := rec.method
	if rec.route != "" {
		name += " " + rec.route
	}
	_, span := e.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(rec.start),
		trace.WithAttributes(
			attribute.String("http.request.method", rec.method),
			attribute.String("server.address", rec.host),
			attribute.String("url.path", rec.path),
			attribute.String("http.route", rec.route),
			attribute.Int("http.response.status_code", rec.status),
			attribute.String("gatehouse.service", rec.service),
			attribute.String("gatehouse.client_id", rec.clientID),
			attribute.String("client.address", rec.clientIP),
			attribute.String("gatehouse.request_id", rec.reqID),
			attribute.Float64("gatehouse.proxy_ms", ms(rec.proxy)),
			attribute.Float64("gatehouse.upstream_ms", ms(rec.upstream)),
		))
	if rec.errMsg != "" {
		span.SetAttributes(attribute.String("gatehouse.error", rec.errMsg))
	}
	span.End(trace.WithTimestamp(rec.end))
}

func (e *spanExporter) flush() {
	if len(e.batch.spans) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	if err := e.exporter.ExportSpans(ctx, e.batch.spans); err != nil {
		e.dropped.Add(float64(len(e.batch.spans)))
		e.log.Debug("otlp export failed", "spans", len(e.batch.spans), "err", err)
	}
	clear(e.batch.spans)
	e.batch.spans = e.batch.spans[:0]
}

// Close exports what is queued and stops.
func (e *spanExporter) Close(ctx context.Context) error {
	e.stop.Do(func() { close(e.queue) })
	select {
	case <-e.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return errors.Join(e.provider.Shutdown(ctx), e.exporter.Shutdown(ctx))
}

// batchCollector is the span processor: it keeps ended spans for the
// exporter's next batch. Spans start and end on the exporter's goroutine
// only, so it needs no lock.
type batchCollector struct {
	spans []sdktrace.ReadOnlySpan
}

func (b *batchCollector) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (b *batchCollector) OnEnd(s sdktrace.ReadOnlySpan)                   { b.spans = append(b.spans, s) }
func (b *batchCollector) Shutdown(context.Context) error                  { return nil }
func (b *batchCollector) ForceFlush(context.Context) error                { return nil }

// recordIDs gives the span being made the ids of its record.
type recordIDs struct{ next traceContext }

func (r *recordIDs) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	return r.next.traceID, r.next.spanID
}

func (r *recordIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return r.next.spanID }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
