// Package server is Gatehouse's HTTP side: the gateway pipeline on the proxy
// listener, and the admin REST API and dashboard on the admin listener. It
// keeps the in-memory state the gateway reads (key index, routing table,
// quota counters, plugin pools) in step with the store.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gatehouse"
	"gatehouse/plugins"
	"gatehouse/server/admin"
	"gatehouse/server/auth"
	"gatehouse/server/cluster"
	"gatehouse/server/dashboard"
	"gatehouse/server/keys"
	"gatehouse/server/quota"
	"gatehouse/server/route"
	"gatehouse/store"
)

// Config is the process configuration the server runs with, parsed and
// validated once by cmd/gatehouse.
type Config struct {
	ProxyAddr       string
	AdminAddr       string
	Location        *time.Location
	FlushInterval   time.Duration
	UpstreamTimeout time.Duration
	ShutdownTimeout time.Duration
	TrustedProxies  []netip.Prefix
	ProxyTLSCert    string
	ProxyTLSKey     string
	WasmCache       string
	// AccessLog is "off" (or ""), "stdout" or a file path: one JSON line
	// per gateway request (contract section 13), written to Stdout for "stdout".
	AccessLog string
	Stdout    io.Writer
	// OTLPEndpoint, when set, is where spans are exported over OTLP/HTTP,
	// such as http://127.0.0.1:4318.
	OTLPEndpoint string
	Logger       *slog.Logger
	Now          func() time.Time // nil: time.Now
	Role         string           // standalone (also ""), leader or worker
	Cluster      ClusterConfig    // for a leader or a worker
}

// Server owns the store and every in-memory view of it.
type Server struct {
	cfg      Config
	store    *store.Store
	keys     *keys.Index
	previous *auth.Previous // secrets replaced by rotations, in their grace period
	quotas   Quotas
	manager  *quota.Manager  // standalone: the quotas, flushed to SQLite
	cq       *cluster.Quotas // leader and worker: the quotas, on Redis
	leader   *cluster.Leader
	replica  *cluster.Replica
	pre      atomic.Pointer[prebuilt] // a worker's snapshot keys, indexed while they are written
	proxyURL atomic.Value             // string: the bound gateway listener, for the cluster's list
	revMu    sync.Mutex
	revCh    chan struct{} // closed when a revision is applied
	plugins  *plugins.Host
	routes   atomic.Pointer[route.Table]
	metrics  *metrics
	gateway  *Gateway
	admin    http.Handler
	log      *slog.Logger
	follower *follower

	// Guarded by the store's write lock (they change in installs only).
	loaded  map[string]string // plugin id -> version loaded in the host
	chained map[string]bool   // services whose plugin pools the host holds

	storageFull atomic.Bool // the last counter flush failed for want of space

	// closeObservers writes out the access log and the spans still queued.
	closeObservers func(ctx context.Context) error
}

// New loads the key index, quota counters, plugins and routing table from st
// and follows st's change log, so that every later write reaches them before
// it returns (and a write made by another process, within a second).
func New(ctx context.Context, cfg Config, st *store.Store) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	s := &Server{
		cfg:      cfg,
		store:    st,
		keys:     keys.NewIndex(),
		previous: auth.NewPrevious(),
		log:      cfg.Logger,
		revCh:    make(chan struct{}),
		loaded:   map[string]string{},
		chained:  map[string]bool{},
	}
	st.SetClock(cfg.Now)
	s.follower = &follower{s: s}
	s.metrics = newMetrics(func() float64 { return float64(s.keys.Len()) })
	if err := s.newQuotas(); err != nil {
		return nil, err
	}
	if err := s.setupCluster(); err != nil {
		s.closeQuotas()
		return nil, err
	}

	// The revision is read before the state: a write that lands in between
	// is in the state already and applied once more by Follow, which is
	// harmless, since applying a change reads the entity's current state.
	rev, err := st.Revision(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := st.ScanKeyAuth(ctx, func(k *gatehouse.APIKey) error {
		s.keys.PutAPIKey(k)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("load api keys: %w", err)
	}
	if err := st.ScanPreviousSecrets(ctx, cfg.Now().UnixMilli(), s.previous.Set); err != nil {
		return nil, fmt.Errorf("load previous secrets: %w", err)
	}
	if s.manager != nil {
		day, month := s.manager.Periods()
		if err := st.ScanCounters(ctx, []string{day, month}, s.manager.Load); err != nil {
			return nil, fmt.Errorf("load quota counters: %w", err)
		}
	}
	s.log.Info("api keys loaded", "keys", s.keys.Len(), "dur_ms", time.Since(start).Milliseconds())

	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	accessLog, err := openAccessLog(cfg.AccessLog, cfg.Stdout, s.metrics.accessLogDropped, s.log)
	if err != nil {
		return nil, err
	}
	var spans *spanExporter
	if cfg.OTLPEndpoint != "" {
		if spans, err = newSpanExporter(cfg.OTLPEndpoint, s.metrics.otlpDropped, s.log); err != nil {
			closeObservers(ctx, accessLog, nil)
			return nil, err
		}
	}
	s.closeObservers = func(ctx context.Context) error { return closeObservers(ctx, accessLog, spans) }

	host, err := plugins.NewHost(ctx, plugins.Config{CacheDir: cfg.WasmCache, Logger: cfg.Logger, Now: cfg.Now})
	if err != nil {
		s.closeObservers(ctx)
		s.closeQuotas()
		return nil, fmt.Errorf("start plugin host: %w", err)
	}
	s.plugins = host

	s.gateway = newGateway(GatewayConfig{
		TrustedProxies:  cfg.TrustedProxies,
		UpstreamTimeout: cfg.UpstreamTimeout,
		TLS:             cfg.ProxyTLSCert != "",
		Now:             cfg.Now,
		Logger:          cfg.Logger,
		accessLog:       accessLog,
		spans:           spans,
	}, &s.routes, s.keys, s.quotas, s.metrics)
	s.gateway.previous = s.previous
	if err := s.loadCatalog(ctx); err != nil {
		host.Close(ctx)
		s.closeObservers(ctx)
		s.closeQuotas()
		return nil, fmt.Errorf("load services and plugins: %w", err)
	}
	s.follower.rev.Store(rev)
	s.metrics.revision.Set(float64(rev))
	st.SetFollower(s.follower)
	s.admin = s.adminHandler()
	return s, nil
}

// Revision is the last revision of the change log the gateway serves.
func (s *Server) Revision() int64 { return s.follower.Revision() }

// pluginVersion changes whenever the host must reload a plugin: new bytes or new limits.
func pluginVersion(p gatehouse.Plugin) string {
	return fmt.Sprintf("%s/%d/%d/%d", p.SHA256, p.MemoryLimitPages, p.TimeoutMs, p.PoolSize)
}

// Gateway is the proxy listener's handler.
func (s *Server) Gateway() http.Handler { return s.gateway }

// Admin is the admin listener's handler: REST API, metrics, health, dashboard.
func (s *Server) Admin() http.Handler { return s.admin }

func (s *Server) adminHandler() http.Handler {
	r := mux.NewRouter()
	r.SkipClean(true)
	cfg := admin.Config{
		Backend:      backend{s.store, s},
		Authenticate: s.authenticateAdmin,
		Health:       s.health,
		Metrics:      promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}),
		Logger:       s.log,
	}
	switch s.role() {
	case RoleLeader:
		// Before the admin API, whose /api routes take admin keys only.
		r.PathPrefix("/api/cluster/").MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool {
			return req.URL.Path != "/api/cluster/nodes"
		}).Handler(s.leader.Handler())
		cfg.Nodes = s.clusterNodes
	case RoleWorker:
		cfg.Links = s.links
		cfg.Worker = s.replica.Leader()
		admin.Register(r, cfg)
		return r
	}
	admin.Register(r, cfg)
	dcfg := dashboard.Config{
		Backend:    backend{s.store, s},
		Logger:     s.log,
		GatewayURL: BaseURL(s.cfg.ProxyAddr, s.cfg.ProxyTLSCert != ""),
		Now:        s.cfg.Now,
		Location:   s.cfg.Location,
	}
	if s.leader != nil {
		dcfg.Nodes = s.dashboardNodes
	}
	dashboard.New(dcfg).Register(r)
	return r
}

// authenticateAdmin admits an API key of admin-api-group presented in a header.
func (s *Server) authenticateAdmin(r *http.Request) (admin.Caller, error) {
	cred := auth.Extract(r, auth.HeadersOnly)
	k, res := auth.Verify(&cred, s.keys, s.previous, s.cfg.Now().UnixMilli())
	if res != auth.OK {
		return admin.Caller{}, errors.New(res.Message())
	}
	if !k.InGroup(gatehouse.AdminGroupID) {
		return admin.Caller{}, errors.New("apikey not authorized on the admin api")
	}
	return admin.Caller{ClientID: k.ClientID, ReadOnly: k.ReadOnly}, nil
}

// Run serves both listeners until ctx is done, then shuts down gracefully:
// stop accepting, finish in-flight requests within ShutdownTimeout, flush
// counters. ready, when not nil, is called with the bound addresses.
func (s *Server) Run(ctx context.Context, ready func(proxy, admin net.Addr)) error {
	proxyLn, err := net.Listen("tcp", s.cfg.ProxyAddr)
	if err != nil {
		return fmt.Errorf("listen proxy %s: %w", s.cfg.ProxyAddr, err)
	}
	adminLn, err := net.Listen("tcp", s.cfg.AdminAddr)
	if err != nil {
		proxyLn.Close()
		return fmt.Errorf("listen admin %s: %w", s.cfg.AdminAddr, err)
	}
	proxySrv := s.httpServer(s.gateway)
	adminSrv := s.httpServer(s.admin)
	if s.cfg.ProxyTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.ProxyTLSCert, s.cfg.ProxyTLSKey)
		if err != nil {
			proxyLn.Close()
			adminLn.Close()
			return fmt.Errorf("load proxy tls: %w", err)
		}
		proxySrv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		proxyLn = tls.NewListener(proxyLn, proxySrv.TLSConfig)
	}
	proxyLn = badPathListener{proxyLn}
	s.proxyURL.Store(BaseURL(proxyLn.Addr().String(), s.cfg.ProxyTLSCert != ""))
	if ready != nil {
		ready(proxyLn.Addr(), adminLn.Addr())
	}

	errc := make(chan error, 2)
	go func() { errc <- serve(proxySrv, proxyLn) }()
	go func() { errc <- serve(adminSrv, adminLn) }()
	flushDone := make(chan struct{})
	flushCtx, stopFlush := context.WithCancel(context.Background())
	go func() { defer close(flushDone); s.flushLoop(flushCtx) }()
	followDone := make(chan struct{})
	followCtx, stopFollow := context.WithCancel(context.Background())
	go func() { defer close(followDone); s.followLoop(followCtx) }()
	replicaDone := make(chan struct{})
	go func() {
		defer close(replicaDone)
		if s.replica != nil {
			s.replica.Run(followCtx)
		}
	}()
	rotateDone := make(chan struct{})
	go func() {
		defer close(rotateDone)
		// A worker writes only what its leader rotated.
		if s.replica == nil {
			s.rotationLoop(followCtx)
		}
	}()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range []*http.Server{proxySrv, adminSrv} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(sctx); err != nil {
				s.log.Warn("in-flight requests cut at shutdown timeout", "err", err)
				srv.Close()
			}
		}()
	}
	wg.Wait()
	stopFollow()
	<-followDone
	<-replicaDone
	<-rotateDone
	stopFlush()
	<-flushDone
	// A cluster node gives back its unused reservations and reports its
	// calls first, so the leader's last flush has them all.
	s.releaseQuotas()
	defer s.closeQuotas()
	if err := s.Flush(context.Background()); err != nil {
		return errors.Join(runErr, fmt.Errorf("final counter flush: %w", err))
	}
	if err := s.plugins.Close(context.Background()); err != nil {
		s.log.Warn("close plugin host", "err", err)
	}
	octx, ocancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ocancel()
	if err := s.closeObservers(octx); err != nil {
		s.log.Warn("close access log and span exporter", "err", err)
	}
	return runErr
}

// closeObservers closes the access log and the span exporter that are on.
func closeObservers(ctx context.Context, a *accessLog, e *spanExporter) error {
	var errs []error
	if a != nil {
		errs = append(errs, a.Close(ctx))
	}
	if e != nil {
		errs = append(errs, e.Close(ctx))
	}
	return errors.Join(errs...)
}

func serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		// net/http reads MaxHeaderBytes plus 4 KiB of slack before it answers
		// 431; take the slack off so the limit is the contract's 64 KiB.
		MaxHeaderBytes: 64<<10 - 4096,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

func (s *Server) flushLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Flush(ctx); err != nil && ctx.Err() == nil && !gatehouse.IsStorageFull(err) {
				s.log.Error("flush quota counters", "err", err)
			}
		}
	}
}

// Flush adds the calls counted since the last flush to SQLite, in one
// transaction. When the disk is full the counts stay in memory, to be written
// when it can again; that is logged once when it starts and once when it ends.
func (s *Server) Flush(ctx context.Context) error {
	var err error
	switch {
	case s.manager != nil:
		err = s.manager.Flush(ctx, s.store.AddCounters)
	case s.role() == RoleLeader:
		err = s.flushUsage(ctx)
	}
	full := gatehouse.IsStorageFull(err)
	if was := s.storageFull.Swap(full); full && !was {
		s.log.Error("storage full: quota counters are kept in memory until they can be written", "err", err)
	} else if was && !full && err == nil {
		s.log.Info("storage writable again: quota counters written")
	}
	if err != nil {
		s.metrics.flushFailures.Inc()
		return err
	}
	s.metrics.counterFlushes.Inc()
	return nil
}

// BaseURL is how a person on this machine reaches a listener bound to addr:
// the URL printed at start and used in the dashboard's curl lines. Any
// loopback or unspecified host reads "localhost", the demo service's host.
func BaseURL(addr string, tlsOn bool) string {
	scheme := "http"
	if tlsOn {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return scheme + "://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" || host == "127.0.0.1" {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
