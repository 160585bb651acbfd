package server

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus series, served on the admin listener.
type metrics struct {
	registry       *prometheus.Registry
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	upstream       *prometheus.HistogramVec
	quotaRefusals  *prometheus.CounterVec
	counterFlushes prometheus.Counter
	flushFailures  prometheus.Counter
	keysLoaded     prometheus.GaugeFunc
	pluginFailures *prometheus.CounterVec
	revision       prometheus.Gauge
	// Lines and spans dropped because their sink could not keep up.
	accessLogDropped prometheus.Counter
	otlpDropped      prometheus.Counter
	statusLabels     [600]string // "200" etc. precomputed: no strconv per request
}

func newMetrics(keyCount func() float64) *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	for i := range m.statusLabels {
		m.statusLabels[i] = strconv.Itoa(i)
	}
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_requests_total", Help: "Gateway requests by service and status code.",
	}, []string{"service", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gatehouse_request_duration_seconds", Help: "Time from request to response headers, by service.", Buckets: buckets,
	}, []string{"service"})
	m.upstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gatehouse_upstream_duration_seconds", Help: "Time from sending to the upstream until its response headers, by service.", Buckets: buckets,
	}, []string{"service"})
	m.quotaRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_quota_refusals_total", Help: "Calls refused with 429, by quota.",
	}, []string{"quota"})
	m.counterFlushes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gatehouse_counter_flushes_total", Help: "Completed writes of quota counters to SQLite.",
	})
	m.flushFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gatehouse_counter_flush_failures_total", Help: "Failed writes of quota counters to SQLite.",
	})
	m.keysLoaded = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_apikeys", Help: "API keys in the in-memory index.",
	}, keyCount)
	m.pluginFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_plugin_failures_total", Help: "Requests answered 502/503 because of a plugin, by service.",
	}, []string{"service"})
	m.revision = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gatehouse_revision", Help: "The last revision of the change log the gateway serves.",
	})
	m.accessLogDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gatehouse_access_log_dropped_total", Help: "Access log lines dropped because the sink could not keep up.",
	})
	m.otlpDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gatehouse_otlp_dropped_spans_total", Help: "Spans dropped because the OTLP collector could not take them.",
	})
	m.registry.MustRegister(m.requests, m.duration, m.upstream, m.quotaRefusals, m.counterFlushes,
		m.flushFailures, m.keysLoaded, m.pluginFailures, m.revision, m.accessLogDropped, m.otlpDropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) status(code int) string {
	if code >= 0 && code < len(m.statusLabels) {
		return m.statusLabels[code]
	}
	return strconv.Itoa(code)
}

// serviceMetrics are one service's series, resolved once per routing-table
// build: WithLabelValues hashes labels and takes the vector's lock, which the
// request path must not do on every call.
type serviceMetrics struct {
	m        *metrics
	service  string
	byStatus [600]atomic.Pointer[prometheus.Counter]
	duration prometheus.Observer
	upstream prometheus.Observer
}

func (m *metrics) forService(id string) *serviceMetrics {
	return &serviceMetrics{
		m:        m,
		service:  id,
		duration: m.duration.WithLabelValues(id),
		upstream: m.upstream.WithLabelValues(id),
	}
}

// count adds one request answered with status; a status's counter is looked
// up in the vector the first time only.
func (s *serviceMetrics) count(status int) {
	if status < 0 || status >= len(s.byStatus) {
		s.m.requests.WithLabelValues(s.service, strconv.Itoa(status)).Inc()
		return
	}
	c := s.byStatus[status].Load()
	if c == nil {
		counter := s.m.requests.WithLabelValues(s.service, s.m.status(status))
		c = &counter
		s.byStatus[status].Store(c)
	}
	(*c).Inc()
}
