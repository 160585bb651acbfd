package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log"
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
	quotas   Quotas
	trusted  []netip.Prefix
	now      func() time.Time
	log      *slog.Logger
	metrics  *metrics
	tls      bool

	transport  *http.Transport
	bufferPool httputil.BufferPool
	proxyLog   *log.Logger // the reverse proxy's own complaints, as warnings
	exchanges  sync.Pool   // *exchange, bound to this gateway
	reqPrefix  string
	reqSeq     atomic.Uint64
	noTrace    bool // benchmarks only: no trace context
	pipeline   []stage
	unrouted   *serviceMetrics // requests that matched no service

	accessLog *accessLog    // nil: --access-log off
	spans     *spanExporter // nil: no --otlp-endpoint
}

var _ http.Handler = (*Gateway)(nil)

// exchange is one request's way through the pipeline; pooled per gateway.
type exchange struct {
	// proxy forwards the request to the upstream. Its callbacks are bound
	// to this exchange, so the request needs no context value to carry it
	// to them. Made with the exchange; everything else is reset per request.
	proxy httputil.ReverseProxy
	exchangeState
}

// exchangeState is what one request sets in its exchange.
type exchangeState struct {
	start         time.Time
	upstreamStart time.Time
	reqID         string
	traceparent   string // what the upstream receives; "" without tracing
	path          string // canonical path
	route         *route.Route
	clientIP      netip.Addr
	trustedPeer   bool
	key           *keys.Key
	decision      quota.Decision
	hasDecision   bool
	previousUntil int64       // the key's previous secret authenticated the call: when it stops working (epoch ms)
	clientGone    bool        // the client cancelled while the upstream was asked: 499
	forwarded     bool        // the plugins stage ran the proxy behind the chain
	body          *clientBody // the client's request body, watched for broken framing
	sw            statusWriter
	trace         traceContext  // W3C trace context (tracing.go)
	upstreamDur   time.Duration // until the upstream's response headers
	errMsg        string        // the Otoroshi-Error-Msg the gateway answered

	// Backing arrays for header value slices, so setting them allocates
	// nothing. Only the slices live here, never string bytes: net/http
	// copies a response's header slices when WriteHeader is called, and the
	// inbound and outbound requests' headers are done with before the
	// exchange goes back to the pool when ServeHTTP returns.
	clientIDVal [1]string
	reqIDVal    [1]string
	traceVal    [1]string
	headerVals  [maxGatewayHeaders]string
}

// stage is one step of the pipeline: it hands on to the next stage by
// returning the zero refusal, or stops the request with a refusal that
// refuse turns into the answer.
type stage func(x *exchange, r *http.Request) refusal

// refusal is a stage's answer to a request it stops: the status, the
// Otoroshi-Error-Msg ("" for an answer without one, such as forceHttps's 303)
// and at most one header that goes with it (Location, WWW-Authenticate,
// Retry-After).
type refusal struct {
	status int
	msg    string
	header string
	value  string
}

var pass refusal

// forwarder is what a route forwards through: the exchange's reverse proxy,
// behind the service's plugin chain when it has one.
type forwarder struct {
	metrics     *serviceMetrics
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

	accessLog *accessLog
	spans     *spanExporter
	noTrace   bool // benchmarks only: no trace context (the baseline of its cost)
}

func newGateway(cfg GatewayConfig, routes *atomic.Pointer[route.Table], ix *keys.Index, q Quotas, m *metrics) *Gateway {
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
		proxyLog:   slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		reqPrefix:  newRequestPrefix(),
		noTrace:    cfg.noTrace,
		unrouted:   m.forService(""),
		accessLog:  cfg.accessLog,
		spans:      cfg.spans,
	}
	g.exchanges.New = func() any { return g.newExchange() }
	// The whole request path, in the contract's order (section 3): the
	// first stage that refuses answers.
	g.pipeline = []stage{
		g.stagePath,          // 400 bad request path, or bad request for an unprintable Upgrade
		g.stageClientIP,      // the peer, or X-Forwarded-For behind a trusted proxy
		g.stageRoute,         // 404 no route found
		g.stageIPFilter,      // 403 ip address not allowed
		g.stageModes,         // 503 maintenance / build mode
		g.stageForceHTTPS,    // 303 to https
		g.stageKey,           // 401 no / invalid / bad apikey
		g.stageAuthorization, // 403 not authorized, 405 read-only
		g.stageQuotas,        // 429 too many requests
		g.stagePlugins,       // the plugin's own answer, 502 / 503 / 413
		g.stageProxy,         // the upstream's answer, 502 / 504 / 400 for a broken body
	}
	return g
}

// newForwarder makes the forwarder of one route.
func (g *Gateway) newForwarder(serviceID string, chain *plugins.Chain) *forwarder {
	return &forwarder{metrics: g.metrics.forService(serviceID), chain: chain}
}

// newExchange makes an exchange with its reverse proxy; every exchange
// shares the gateway's transport and buffer pool.
func (g *Gateway) newExchange() *exchange {
	x := &exchange{}
	x.proxy = httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { g.rewrite(x, pr) },
		Transport:  g.transport,
		BufferPool: g.bufferPool,
		// FlushInterval 0: ReverseProxy already flushes at once for
		// event streams and bodies of unknown length; others go out in
		// as few writes as possible.
		ModifyResponse: func(resp *http.Response) error { return g.modifyResponse(x, resp) },
		ErrorHandler:   func(w http.ResponseWriter, r *http.Request, err error) { g.proxyError(x, w, r, err) },
		ErrorLog:       g.proxyLog,
	}
	return x
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := g.exchanges.Get().(*exchange)
	x.exchangeState = exchangeState{start: g.now()}
	x.sw.ResponseWriter = w
	// Before any stage, so that every answer and access log line has them.
	g.identify(x, r)
	defer g.finish(x, r)
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			g.log.Error("panic in gateway", "req_id", x.reqID, "err", p)
			if x.sw.status == 0 {
				g.refuse(x, &x.sw, r, refusal{status: http.StatusInternalServerError, msg: msgInternal})
			}
		}
	}()
	for _, s := range g.pipeline {
		if f := s(x, r); f.status != 0 {
			g.refuse(x, &x.sw, r, f)
			return
		}
	}
}

// refuse writes every answer the gateway gives itself: the refusal's status,
// message and header, with the request id and, when the request presented a
// valid key, the quota headers. The proxy's error handler calls it with the
// writer it was given (the plugin chain's, on a service with plugins, so that
// handle_response sees the answer).
func (g *Gateway) refuse(x *exchange, w http.ResponseWriter, r *http.Request, f refusal) {
	h := w.Header()
	if f.header != "" {
		h[f.header] = []string{f.value}
	}
	x.errMsg = f.msg
	g.errorHeaders(x, h)
	if f.msg == "" {
		w.WriteHeader(f.status)
		return
	}
	writeError(w, r, f.status, f.msg)
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
	end := g.now()
	if fw := x.forwarder(); fw != nil {
		svc = fw.metrics.service
		fw.metrics.count(status)
		fw.metrics.duration.Observe(end.Sub(x.start).Seconds())
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
	g.observe(x, r, status, svc, end)
	x.exchangeState = exchangeState{}
	g.exchanges.Put(x)
}

// identify gives the request its id and, unless tracing is off, its trace
// context. One string holds both the id and the traceparent the upstream
// receives: naming a request costs one allocation.
func (g *Gateway) identify(x *exchange, r *http.Request) {
	var buf [32 + traceparentLen]byte // the prefix (13), a base-36 uint64 (at most 13), the traceparent
	b := append(buf[:0], g.reqPrefix...)
	b = strconv.AppendUint(b, g.reqSeq.Add(1), 36)
	n := len(b)
	if !g.noTrace {
		x.trace = newTraceContext(r.Header["Traceparent"], g.spans != nil)
		b = x.trace.appendTraceparent(b)
	}
	s := string(b)
	x.reqID, x.traceparent = s[:n], s[n:]
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

func (g *Gateway) stagePath(x *exchange, r *http.Request) refusal {
	p, ok := canonicalPath(r.URL)
	if !ok {
		return refusal{status: http.StatusBadRequest, msg: msgBadPath}
	}
	x.path = p
	if v, ok := r.Header["Upgrade"]; ok && !printableUpgrade(v, r.Header["Connection"]) {
		// The reverse proxy would fail it as its own error (502): it is
		// the client's.
		return refusal{status: http.StatusBadRequest, msg: msgBadRequest}
	}
	return pass
}

// printableUpgrade reports whether an upgrade request (Connection names
// Upgrade) names a protocol of printable ASCII, as the reverse proxy requires.
func printableUpgrade(upgrade, connection []string) bool {
	if !hasToken(connection, "upgrade") || len(upgrade) == 0 {
		return true
	}
	for i := 0; i < len(upgrade[0]); i++ {
		if c := upgrade[0][i]; c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

func (g *Gateway) stageClientIP(x *exchange, r *http.Request) refusal {
	x.clientIP, x.trustedPeer = g.clientIP(r)
	return pass
}

func (g *Gateway) stageRoute(x *exchange, r *http.Request) refusal {
	if t := g.routes.Load(); t != nil {
		x.route = t.Match(hostOnly(r.Host), x.path, r.Header)
	}
	if x.route == nil {
		return refusal{status: http.StatusNotFound, msg: msgNoRoute}
	}
	return pass
}

func (g *Gateway) stageIPFilter(x *exchange, r *http.Request) refusal {
	if !x.route.IPAllowed(x.clientIP) {
		return refusal{status: http.StatusForbidden, msg: msgIPNotAllowed}
	}
	return pass
}

func (g *Gateway) stageModes(x *exchange, r *http.Request) refusal {
	s := x.route.Service
	switch {
	case s.MaintenanceMode:
		return refusal{status: http.StatusServiceUnavailable, msg: msgMaintenance}
	case s.BuildMode:
		return refusal{status: http.StatusServiceUnavailable, msg: msgBuild}
	}
	return pass
}

func (g *Gateway) stageForceHTTPS(x *exchange, r *http.Request) refusal {
	if !x.route.Service.ForceHTTPS || g.scheme(x, r) == "https" {
		return pass
	}
	return refusal{status: http.StatusSeeOther, header: "Location", value: "https://" + r.Host + r.URL.RequestURI()}
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

func (g *Gateway) stageKey(x *exchange, r *http.Request) refusal {
	if x.route.IsPublic(x.path) {
		// No credential is checked or counted on a public path and credentials
		// pass through, but a client never speaks for a key it did not prove.
		r.Header.Del("Otoroshi-Client-Id")
		r.Header.Del("Otoroshi-Client-Secret")
		return pass
	}
	cred := auth.Extract(r, auth.AllSources)
	k, res := auth.Verify(&cred, g.keys, g.previous, g.now().UnixMilli())
	if res != auth.OK {
		f := refusal{status: http.StatusUnauthorized, msg: res.Message()}
		if res == auth.NoCredential {
			f.header, f.value = "Www-Authenticate", `Basic realm="gatehouse"`
		}
		return f
	}
	x.key = k
	x.previousUntil = cred.PreviousUntil
	cred.Strip(r)
	r.Header.Del("Otoroshi-Client-Secret")
	// Plugins see the caller's client id on the request (contract section
	// 10); rewrite sets it again on the upstream request.
	x.clientIDVal[0] = k.ClientID
	r.Header["Otoroshi-Client-Id"] = x.clientIDVal[:]
	return pass
}

func (g *Gateway) stageAuthorization(x *exchange, r *http.Request) refusal {
	if x.key == nil {
		return pass
	}
	s := x.route.Service
	if !x.key.AuthorizedOn(s.ID, s.GroupID) {
		return refusal{status: http.StatusForbidden, msg: msgNotAuthorized}
	}
	if x.key.ReadOnly && r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
		return refusal{status: http.StatusMethodNotAllowed, msg: msgMethod}
	}
	return pass
}

func (g *Gateway) stageQuotas(x *exchange, r *http.Request) refusal {
	if x.key == nil {
		return pass
	}
	x.decision = g.quotas.Take(x.key.ClientID, limitsOf(x.key))
	x.hasDecision = true
	if !x.decision.Allowed {
		g.metrics.quotaRefusals.WithLabelValues(x.decision.Reason.String()).Inc()
		return refusal{status: http.StatusTooManyRequests, msg: x.decision.Reason.Message(),
			header: "Retry-After", value: strconv.FormatInt(max(x.decision.RetryAfter, 1), 10)}
	}
	return pass
}

// stagePlugins runs the service's plugin chain, if any, with the proxy as
// the chain's next handler.
func (g *Gateway) stagePlugins(x *exchange, r *http.Request) refusal {
	fw := x.forwarder()
	if fw == nil {
		return refusal{status: http.StatusBadGateway, msg: msgBadGateway}
	}
	if fw.brokenChain {
		// A plugin of the service could not be loaded: its requests fail
		// as a failing plugin's do, rather than skip it.
		g.metrics.pluginFailures.WithLabelValues(x.route.Service.ID).Inc()
		return refusal{status: http.StatusBadGateway, msg: msgPluginFailure}
	}
	if fw.chain == nil {
		return pass
	}
	// A plugin may answer by itself: its answer carries the request id and,
	// for a valid key, the quota headers too (a proxied answer overwrites
	// them), unless the service wants none of the gateway's headers back:
	// then modifyResponse would leave them on a proxied answer too.
	if x.sendHeaders() {
		g.errorHeaders(x, x.sw.Header())
	}
	x.forwarded = true
	// The chain may change the method and body of what it forwards: it
	// gets a copy, and r stays as the client sent it, for the access log.
	fr := *r
	err := fw.chain.Serve(&x.sw, x.forwardRequest(&fr), x.clientIP.String(), &x.proxy)
	if err == nil || x.sw.status != 0 || x.clientGone {
		return pass // done, or the answer had begun, or nobody is listening
	}
	return g.pluginRefusal(x, err)
}

// pluginRefusal maps a plugin chain's error to the answer.
func (g *Gateway) pluginRefusal(x *exchange, err error) refusal {
	switch {
	case x.bodyBroken():
		return refusal{status: http.StatusBadRequest, msg: msgBadRequest}
	case errors.Is(err, plugins.ErrBodyTooLarge):
		return refusal{status: http.StatusRequestEntityTooLarge, msg: msgBodyTooLarge}
	case errors.Is(err, plugins.ErrBusy):
		g.metrics.pluginFailures.WithLabelValues(x.route.Service.ID).Inc()
		return refusal{status: http.StatusServiceUnavailable, msg: msgPluginBusy}
	default:
		g.metrics.pluginFailures.WithLabelValues(x.route.Service.ID).Inc()
		return refusal{status: http.StatusBadGateway, msg: msgPluginFailure}
	}
}

// stageProxy forwards to the upstream, unless the plugin chain already did.
// Its failures are answered by proxyError, through the writer the reverse
// proxy holds.
func (g *Gateway) stageProxy(x *exchange, r *http.Request) refusal {
	if !x.forwarded {
		x.proxy.ServeHTTP(&x.sw, x.forwardRequest(r))
	}
	return pass
}

// forwardRequest is r with its body watched.
func (x *exchange) forwardRequest(r *http.Request) *http.Request {
	if r.Body != nil && r.Body != http.NoBody {
		x.body = &clientBody{rc: r.Body}
		r.Body = x.body
	}
	return r
}

// clientBody is the client's request body, watched so that the error
// mappers can tell a body that broke its own framing (a bad chunk, fewer
// bytes than Content-Length) from an upstream's failure. It is allocated
// per request with a body, not pooled: the transport may still read it
// after the request is done.
type clientBody struct {
	rc     io.ReadCloser
	broken atomic.Bool
	read   atomic.Int64 // bytes read, for the access log
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.read.Add(int64(n))
	// A read after the transport closed the body (it gave up on the
	// upstream) is not the client's doing.
	if err != nil && err != io.EOF && !errors.Is(err, http.ErrBodyReadAfterClose) {
		b.broken.Store(true)
	}
	return n, err
}

func (b *clientBody) Close() error { return b.rc.Close() }

func (x *exchange) bodyBroken() bool { return x.body != nil && x.body.broken.Load() }

// rewrite shapes the upstream request (httputil.ReverseProxy.Rewrite).
func (g *Gateway) rewrite(x *exchange, pr *httputil.ProxyRequest) {
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
	// The gateway's own headers are set here, on the outbound request,
	// after the reverse proxy removed the hop-by-hop headers the client's
	// Connection names: a client cannot have them dropped.
	x.reqIDVal[0] = x.reqID
	out.Header["Otoroshi-Request-Id"] = x.reqIDVal[:]
	if x.traceparent != "" {
		// tracestate passes as the client sent it.
		x.traceVal[0] = x.traceparent
		out.Header["Traceparent"] = x.traceVal[:]
	}
	delete(out.Header, "Otoroshi-Client-Secret")
	if x.key != nil {
		x.clientIDVal[0] = x.key.ClientID
		out.Header["Otoroshi-Client-Id"] = x.clientIDVal[:]
	} else {
		delete(out.Header, "Otoroshi-Client-Id")
	}
	for _, h := range rt.AddHeaders {
		n, v := h.Pair()
		out.Header[n] = []string{v}
	}
	x.upstreamStart = g.now()
}

// modifyResponse sets the latency and quota headers of a proxied answer. They
// go straight onto the client's ResponseWriter (the reverse proxy, or the
// plugin chain, adds the upstream's headers to it), which saves copying them.
func (g *Gateway) modifyResponse(x *exchange, resp *http.Response) error {
	now := g.now()
	up := now.Sub(x.upstreamStart)
	x.upstreamDur = up
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

// proxyError is the reverse proxy's error handler: proxyRefusal maps the
// error, refuse writes the answer.
func (g *Gateway) proxyError(x *exchange, w http.ResponseWriter, r *http.Request, err error) {
	if !x.upstreamStart.IsZero() {
		x.upstreamDur = g.now().Sub(x.upstreamStart)
	}
	f := g.proxyRefusal(x, r, err)
	if f.status == 0 || x.sw.status != 0 {
		return // nobody to answer, or the answer had begun
	}
	g.refuse(x, w, r, f)
}

// proxyRefusal is the one mapping of a forwarding error to an answer: 400
// when the client's own body broke its framing (not the upstream's fault:
// neither logged nor counted as an upstream failure), nothing (499) when the
// client went away, 504 for a timeout, 502 otherwise.
func (g *Gateway) proxyRefusal(x *exchange, r *http.Request, err error) refusal {
	if x.bodyBroken() {
		return refusal{status: http.StatusBadRequest, msg: msgBadRequest}
	}
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		x.clientGone = true
		return pass
	}
	f := refusal{status: http.StatusBadGateway, msg: msgBadGateway}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		f = refusal{status: http.StatusGatewayTimeout, msg: msgGatewayTimeout}
	}
	g.log.Warn("upstream failed", "req_id", x.reqID, "service", x.route.Service.ID, "err", err)
	return f
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

// hasToken reports whether a comma-separated header names token (any case).
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
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
	status  int
	written int64 // body bytes, for the access log
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
	n, err := s.ResponseWriter.Write(b)
	s.written += int64(n)
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

var _ http.Hijacker = (*statusWriter)(nil)

// Hijack is the reverse proxy's protocol switch (101, a WebSocket): the
// status is 101, and the proxy listener's connection stops reading HTTP
// framing into what is now the upgraded stream.
func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	if fc, ok := c.(*badPathConn); ok {
		fc.upgraded()
	}
	return c, brw, nil
}

func (s *statusWriter) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	http.NewResponseController(s.ResponseWriter).Flush()
}
