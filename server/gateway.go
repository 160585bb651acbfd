package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gatehouse/plugins"
	"gatehouse/server/auth"
	"gatehouse/server/keys"
	"gatehouse/server/quota"
	"gatehouse/server/route"
)

// Gateway is the proxy listener's handler: the pipeline a client's call takes.
type Gateway struct {
	routes   *atomic.Pointer[route.Table]
	keys     *keys.Index
	previous *auth.Previous
	quotas   *quota.Manager
	trusted  []netip.Prefix
	now      func() time.Time
	log      *slog.Logger
	metrics  *metrics
	tls      bool

	transport  *http.Transport
	bufferPool httputil.BufferPool
	reqPrefix  string
	reqSeq     atomic.Uint64
	stages     []stage
	unrouted   *serviceMetrics // requests that matched no service
}

var _ http.Handler = (*Gateway)(nil)

// exchange is one request's state through the pipeline; pooled.
type exchange struct {
	start         time.Time
	upstreamStart time.Time
	reqID         string
	path          string // canonical path
	route         *route.Route
	clientIP      netip.Addr
	trustedPeer   bool
	key           *keys.Key
	decision      quota.Decision
	hasDecision   bool
	previousUntil int64 // the key's previous secret authenticated the call: when it stops working (epoch ms)
	clientGone    bool  // the client cancelled while the upstream was asked: 499
	sw            statusWriter

	// Backing arrays for header value slices, so setting them allocates
	// nothing. Only the slices live here, never string bytes: net/http
	// copies a response's header slices when WriteHeader is called, and the
	// inbound and outbound requests' headers are done with before the
	// exchange goes back to the pool when ServeHTTP returns.
	clientIDVal [1]string
	reqIDVal    [1]string
	headerVals  [maxGatewayHeaders]string
}

type exchangeKey struct{}

var exchangePool = sync.Pool{New: func() any { return new(exchange) }}

// stage is one step of the pipeline; it answers the request itself and
// returns false to stop, or returns true to hand on to the next stage.
type stage func(x *exchange, w http.ResponseWriter, r *http.Request) bool

// forwarder is what a route forwards through: its reverse proxy, behind the
// service's plugin chain when it has one.
type forwarder struct {
	metrics     *serviceMetrics
	proxy       *httputil.ReverseProxy
	chain       *plugins.Chain
	brokenChain bool // the service's plugins could not be chained: 502 plugin failure
}

// GatewayConfig is what NewGateway needs besides the shared state.
type GatewayConfig struct {
	TrustedProxies  []netip.Prefix
	UpstreamTimeout time.Duration
	TLS             bool
	Now             func() time.Time
	Logger          *slog.Logger
}

func newGateway(cfg GatewayConfig, routes *atomic.Pointer[route.Table], ix *keys.Index, q *quota.Manager, m *metrics) *Gateway {
	g := &Gateway{
		routes:     routes,
		keys:       ix,
		quotas:     q,
		trusted:    cfg.TrustedProxies,
		now:        cfg.Now,
		log:        cfg.Logger,
		metrics:    m,
		tls:        cfg.TLS,
		transport:  NewTransport(cfg.UpstreamTimeout),
		bufferPool: NewBufferPool(),
		reqPrefix:  newRequestPrefix(),
		unrouted:   m.forService(""),
	}
	// The order is the contract's (section 3): the first stage that answers wins.
	g.stages = []stage{
		g.stageRoute,
		g.stageIPFilter,
		g.stageServiceState,
		g.stageForceHTTPS,
		g.stageAuthenticate,
		g.stageAuthorize,
		g.stageQuotas,
	}
	return g
}

// newForwarder builds the reverse proxy of one route; every route shares the
// gateway's transport and buffer pool.
func (g *Gateway) newForwarder(serviceID string, chain *plugins.Chain) *forwarder {
	return &forwarder{
		metrics: g.metrics.forService(serviceID),
		proxy: &httputil.ReverseProxy{
			Rewrite:    g.rewrite,
			Transport:  g.transport,
			BufferPool: g.bufferPool,
			// FlushInterval 0: ReverseProxy already flushes at once for
			// event streams and bodies of unknown length; others go out in
			// as few writes as possible.
			ModifyResponse: g.modifyResponse,
			ErrorHandler:   g.proxyError,
			ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		},
		chain: chain,
	}
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := exchangePool.Get().(*exchange)
	*x = exchange{start: g.now()}
	x.sw.ResponseWriter = w
	x.sw.status = 0
	x.reqID = g.reqPrefix + strconv.FormatUint(g.reqSeq.Add(1), 36)
	defer g.finish(x, r)
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			g.log.Error("panic in gateway", "req_id", x.reqID, "err", p)
			if x.sw.status == 0 {
				writeError(&x.sw, r, http.StatusInternalServerError, msgInternal)
			}
		}
	}()

	p, ok := canonicalPath(r.URL)
	if !ok {
		g.answer(x, r, http.StatusBadRequest, msgBadPath)
		return
	}
	x.path = p
	x.clientIP, x.trustedPeer = g.clientIP(r)
	for _, s := range g.stages {
		if !s(x, &x.sw, r) {
			return
		}
	}
	g.forward(x, r)
}

// canonicalPath decodes and cleans the URL's path; false when it does not decode.
func canonicalPath(u *url.URL) (string, bool) {
	if u.RawPath != "" {
		if _, err := url.PathUnescape(u.RawPath); err != nil {
			return "", false
		}
	}
	return route.Canonical(u.Path), true
}

func (g *Gateway) finish(x *exchange, r *http.Request) {
	status := x.sw.status
	if status == 0 {
		status = 499 // the handler returned without answering: the client went away (clientGone)
		// net/http may still write this answer after we return; its header
		// slices must not point into the exchange, which is about to be reused.
		if x.sw.ResponseWriter != nil {
			h := x.sw.Header()
			for _, name := range ownHeaders {
				delete(h, name)
			}
		}
	}
	svc := ""
	if fw := x.forwarder(); fw != nil {
		svc = fw.metrics.service
		fw.metrics.count(status)
		fw.metrics.duration.Observe(g.now().Sub(x.start).Seconds())
	} else {
		g.unrouted.count(status)
	}
	if g.log.Enabled(r.Context(), slog.LevelDebug) {
		cid := ""
		if x.key != nil {
			cid = x.key.ClientID
		}
		g.log.Debug("request", "req_id", x.reqID, "method", r.Method, "path", x.path, "service", svc,
			"client_id", cid, "status", status, "dur_ms", g.now().Sub(x.start).Milliseconds())
	}
	*x = exchange{}
	exchangePool.Put(x)
}

// answer writes one of the gateway's own error answers, with the quota
// headers when the request presented a valid key.
func (g *Gateway) answer(x *exchange, r *http.Request, status int, msg string) {
	g.errorHeaders(x, x.sw.Header())
	writeError(&x.sw, r, status, msg)
}

// errorHeaders sets the request id and, for a valid key, the quota headers
// (peeked when the quota stage did not run) on an answer the gateway gives.
func (g *Gateway) errorHeaders(x *exchange, h http.Header) {
	gh := gatewayHeaders{reqID: x.reqID, vals: x.headerVals[:]}
	if x.key != nil && x.sendHeaders() {
		if !x.hasDecision {
			x.decision = g.quotas.Peek(x.key.ClientID, limitsOf(x.key))
			x.hasDecision = true
		}
		gh.quota, gh.key, gh.decision = true, x.key, &x.decision
	}
	gh.write(h)
	if x.key != nil && x.sendHeaders() {
		g.rotationHeaders(x, h)
	}
}

// forwarder is the matched route's forwarder, or nil.
func (x *exchange) forwarder() *forwarder {
	if x.route == nil {
		return nil
	}
	fw, _ := x.route.Handler.(*forwarder)
	return fw
}

func (x *exchange) sendHeaders() bool {
	return x.route == nil || x.route.Service.SendOtoroshiHeadersBack
}

func (g *Gateway) stageRoute(x *exchange, w http.ResponseWriter, r *http.Request) bool {
	t := g.routes.Load()
	if t != nil {
		x.route = t.Match(hostOnly(r.Host), x.path, r.Header)
	}
	if x.route == nil {
		g.answer(x, r, http.StatusNotFound, msgNoRoute)
		return false
	}
	return true
}

func (g *Gateway) stageIPFilter(x *exchange, w http.ResponseWriter, r *http.Request) bool {
	if !x.route.IPAllowed(x.clientIP) {
		g.answer(x, r, http.StatusForbidden, msgIPNotAllowed)
		return false
	}
	return true
}

func (g *Gateway) stageServiceState(x *exchange, w http.ResponseWriter, r *http.Request) bool {
	s := x.route.Service
	switch {
	case s.MaintenanceMode:
		g.answer(x, r, http.StatusServiceUnavailable, msgMaintenance)
		return false
	case s.BuildMode:
		g.answer(x, r, http.StatusServiceUnavailable, msgBuild)
		return false
	}
	return true
}

func (g *Gateway) stageForceHTTPS(x *exchange, w http.ResponseWriter, r *http.Request) bool {
	if !x.route.Service.ForceHTTPS || g.scheme(x, r) == "https" {
		return true
	}
	w.Header().Set("Location", "https://"+r.Host+r.URL.RequestURI())
	w.WriteHeader(http.StatusSeeOther)
	return false
}

// scheme is the client's scheme: X-Forwarded-Proto from a trusted proxy, else the listener's.
func (g *Gateway) scheme(x *exchange, r *http.Request) string {
	if x.trustedPeer {
		if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
			return strings.ToLower(strings.TrimSpace(p))
		}
	}
	if r.TLS != nil || g.tls {
		return "https"
	}
	return "http"
}

func (g *Gateway) stageAuthenticate(x *exchange, w http.ResponseWriter, r *http.Request) bool {
	if x.route.IsPublic(x.path) {
		// No credential is checked or counted on a public path and credentials
		// pass through, but a client never speaks for a key it did not prove.
		r.Header.Del("Otoroshi-Client-Id")
		r.Header.Del("Otoroshi-Client-Secret")
		return true
	}
	cred := auth.Extract(r, auth.AllSources)
	k, res := auth.Verify(&cred, g.keys, g.previous, g.now().UnixMilli())
	if res != auth.OK {
		if res == auth.NoCredential {
			w.Header().Set("WWW-Authenticate", `Basic realm="gatehouse"`)
		}
		g.answer(x, r, http.StatusUnauthorized, res.Message())
		return false
	}
	x.key = k
	x.previousUntil = cred.PreviousUntil
	cred.Strip(r)
	r.Header.Del("Otoroshi-Client-Secret")
	x.clientIDVal[0] = k.ClientID
	r.Header["Otoroshi-Client-Id"] = x.clientIDVal[:]
	return true
}

func (g *Gateway) stageAuthorize(x *exchange, w http.ResponseWriter, r *http.Request) bool {
	if x.key == nil {
		return true
	}
	s := x.route.Service
	if !x.key.AuthorizedOn(s.ID, s.GroupID) {
		g.answer(x, r, http.StatusForbidden, msgNotAuthorized)
		return false
	}
	if x.key.ReadOnly && r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
		g.answer(x, r, http.StatusMethodNotAllowed, msgMethod)
		return false
	}
	return true
}

func (g *Gateway) stageQuotas(x *exchange, w http.ResponseWriter, r *http.Request) bool {
	if x.key == nil {
		return true
	}
	x.decision = g.quotas.Take(x.key.ClientID, limitsOf(x.key))
	x.hasDecision = true
	if !x.decision.Allowed {
		g.metrics.quotaRefusals.WithLabelValues(x.decision.Reason.String()).Inc()
		w.Header()["Retry-After"] = []string{strconv.FormatInt(max(x.decision.RetryAfter, 1), 10)}
		g.answer(x, r, http.StatusTooManyRequests, x.decision.Reason.Message())
		return false
	}
	return true
}

// forward runs the service's plugins, if any, then the reverse proxy.
func (g *Gateway) forward(x *exchange, r *http.Request) {
	fw, _ := x.route.Handler.(*forwarder)
	if fw == nil {
		g.answer(x, r, http.StatusBadGateway, msgBadGateway)
		return
	}
	if fw.brokenChain {
		// A plugin of the service could not be loaded: its requests fail
		// as a failing plugin's do, rather than skip it.
		g.metrics.pluginFailures.WithLabelValues(x.route.Service.ID).Inc()
		g.answer(x, r, http.StatusBadGateway, msgPluginFailure)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x))
	if fw.chain == nil {
		fw.proxy.ServeHTTP(&x.sw, r)
		return
	}
	// A plugin may answer by itself: its answer carries the request id and,
	// for a valid key, the quota headers too (a proxied answer overwrites
	// them), unless the service wants none of the gateway's headers back:
	// then modifyResponse would leave them on a proxied answer too.
	if x.sendHeaders() {
		g.errorHeaders(x, x.sw.Header())
	}
	if err := fw.chain.Serve(&x.sw, r, x.clientIP.String(), fw.proxy); err != nil {
		g.pluginError(x, r, err)
	}
}

func (g *Gateway) pluginError(x *exchange, r *http.Request, err error) {
	if x.sw.status != 0 || x.clientGone {
		return // the answer had begun, or nobody is listening
	}
	switch {
	case errors.Is(err, plugins.ErrBusy):
		g.metrics.pluginFailures.WithLabelValues(x.route.Service.ID).Inc()
		g.answer(x, r, http.StatusServiceUnavailable, msgPluginBusy)
	case errors.Is(err, plugins.ErrBodyTooLarge):
		g.answer(x, r, http.StatusRequestEntityTooLarge, msgBodyTooLarge)
	default:
		g.metrics.pluginFailures.WithLabelValues(x.route.Service.ID).Inc()
		g.answer(x, r, http.StatusBadGateway, msgPluginFailure)
	}
}

// rewrite shapes the upstream request (httputil.ReverseProxy.Rewrite).
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	x := pr.In.Context().Value(exchangeKey{}).(*exchange)
	rt := x.route
	t, _ := rt.NextTarget()
	out := pr.Out
	out.URL.Scheme = t.Scheme
	out.URL.Host = t.Host
	out.URL.Path = rt.UpstreamPath(route.Canonical(pr.In.URL.Path))
	out.URL.RawPath = ""
	out.Host = ""
	if x.trustedPeer {
		// Keep the chain the trusted proxies built; SetXForwarded appends the peer.
		if v := pr.In.Header["X-Forwarded-For"]; len(v) > 0 {
			out.Header["X-Forwarded-For"] = v
		}
	}
	pr.SetXForwarded()
	if x.trustedPeer {
		out.Header["X-Forwarded-Proto"] = []string{g.scheme(x, pr.In)}
	} else if g.tls {
		out.Header["X-Forwarded-Proto"] = []string{"https"}
	}
	x.reqIDVal[0] = x.reqID
	out.Header["Otoroshi-Request-Id"] = x.reqIDVal[:]
	for _, h := range rt.AddHeaders {
		n, v := h.Pair()
		out.Header[n] = []string{v}
	}
	x.upstreamStart = g.now()
}

// modifyResponse sets the latency and quota headers of a proxied answer. They
// go straight onto the client's ResponseWriter (the reverse proxy, or the
// plugin chain, adds the upstream's headers to it), which saves copying them.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	x := resp.Request.Context().Value(exchangeKey{}).(*exchange)
	now := g.now()
	up := now.Sub(x.upstreamStart)
	if fw := x.forwarder(); fw != nil {
		fw.metrics.upstream.Observe(up.Seconds())
	}
	if !x.sendHeaders() {
		return nil
	}
	for _, name := range ownHeaders {
		delete(resp.Header, name)
	}
	gh := gatewayHeaders{reqID: x.reqID, vals: x.headerVals[:], latency: true, proxy: now.Sub(x.start) - up, upstream: up}
	if x.key != nil && x.hasDecision {
		gh.quota, gh.key, gh.decision = true, x.key, &x.decision
	}
	gh.write(x.sw.Header())
	g.rotationHeaders(x, x.sw.Header())
	return nil
}

// proxyError is the reverse proxy's one error mapper: 504 for a timeout, 499
// (logged, nobody to answer) when the client went away, 502 otherwise.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	x := r.Context().Value(exchangeKey{}).(*exchange)
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		x.clientGone = true
		return
	}
	status, msg := http.StatusBadGateway, msgBadGateway
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		status, msg = http.StatusGatewayTimeout, msgGatewayTimeout
	}
	g.log.Warn("upstream failed", "req_id", x.reqID, "service", x.route.Service.ID, "err", err)
	if x.sw.status != 0 {
		return
	}
	g.errorHeaders(x, w.Header())
	writeError(w, r, status, msg)
}

// clientIP is the TCP peer's address or, when the peer is a trusted proxy,
// the rightmost X-Forwarded-For address that is not a trusted proxy.
func (g *Gateway) clientIP(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	var ip netip.Addr
	if err == nil {
		ip = ap.Addr().Unmap()
	} else if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		ip = a.Unmap()
	}
	if len(g.trusted) == 0 || !g.isTrusted(ip) {
		return ip, false
	}
	xff := r.Header.Values("X-Forwarded-For")
	for i := len(xff) - 1; i >= 0; i-- {
		parts := xff[i]
		for parts != "" {
			var part string
			if c := strings.LastIndexByte(parts, ','); c >= 0 {
				part, parts = parts[c+1:], parts[:c]
			} else {
				part, parts = parts, ""
			}
			a, err := netip.ParseAddr(strings.TrimSpace(part))
			if err != nil {
				return ip, true // a garbled chain: believe only the peer
			}
			a = a.Unmap()
			if !g.isTrusted(a) {
				return a, true
			}
		}
	}
	return ip, true
}

func (g *Gateway) isTrusted(ip netip.Addr) bool {
	for _, p := range g.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// hostOnly strips the port from a Host header value.
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	return strings.TrimSuffix(h, ".")
}

// statusWriter records the status for metrics and logs. It unwraps for
// http.ResponseController, which the reverse proxy uses to flush.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	http.NewResponseController(s.ResponseWriter).Flush()
}
