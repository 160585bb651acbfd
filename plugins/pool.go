package plugins

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"gatehouse"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

var errVersionGone = errors.New("plugin version unloaded")

// version is one upload of a plugin: its own runtime (memory limits are a
// runtime setting), host modules and compiled module. It is reference
// counted: the Host holds one reference while it is current, and every live
// instance one; the runtime closes when the last goes, so replacing a plugin
// never pulls a module from under a request in flight.
type version struct {
	h       *Host
	meta    gatehouse.Plugin
	sha     string
	rt      wazero.Runtime
	cm      wazero.CompiledModule
	modCfg  wazero.ModuleConfig
	timeout time.Duration
	refs    atomic.Int64
}

func (h *Host) newVersion(ctx context.Context, p gatehouse.Plugin, sha string, wasm []byte) (*version, error) {
	rt := wazero.NewRuntimeWithConfig(ctx, h.runtimeConfig(p.MemoryLimitPages))
	fail := func(err error) (*version, error) {
		_ = rt.Close(ctx)
		return nil, err
	}
	// WASI with nothing granted (no files, env, args, sockets; stdio
	// discarded): Go and Rust guests import it for their runtimes.
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fail(err)
	}
	if err := instantiateHostModule(ctx, rt); err != nil {
		return fail(err)
	}
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		if strings.Contains(err.Error(), "over limit of") {
			return fail(gatehouse.Invalid("memoryLimitPages", "module needs more memory than the limit: %s", firstLine(err)))
		}
		return fail(gatehouse.Invalid("wasm", "not a valid WebAssembly module: %s", firstLine(err)))
	}
	if err := checkModule(cm); err != nil {
		return fail(err)
	}
	v := &version{
		h:    h,
		meta: p,
		sha:  sha,
		rt:   rt,
		cm:   cm,
		modCfg: wazero.NewModuleConfig().
			WithName(""). // anonymous: one runtime holds many instances
			// Reactors (_initialize) and commands (_start) alike; a missing one is skipped.
			WithStartFunctions("_initialize", "_start").
			// Guests seed their hash maps from it; predictable seeds invite hash flooding.
			WithRandSource(rand.Reader),
		timeout: time.Duration(p.TimeoutMs) * time.Millisecond,
	}
	v.refs.Store(1)
	return v, nil
}

// tryRef takes a reference unless the version is already gone.
func (v *version) tryRef() bool {
	for {
		n := v.refs.Load()
		if n <= 0 {
			return false
		}
		if v.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (v *version) unref() {
	if v.refs.Add(-1) == 0 {
		_ = v.rt.Close(context.Background())
	}
}

type instKey struct{}

// instance is one instantiated guest. It serves one request at a time: the
// request holds it from handle_request to handle_response.
type instance struct {
	ver      *version
	pool     *pool // nil for Load's trial instance
	slot     *slot
	config   []byte
	mod      api.Module
	hreq     api.Function
	hresp    api.Function
	stack    [2]uint64
	ctx      callContext  // of every guest call (watchdog.go)
	deadline atomic.Int64 // of the call in progress, on the watchdog's clock; 0 between calls
	features uint32       // enabled during start: in force for every request
	ex       *exchange    // the request being served, nil during start
	reading  bool         // in a call: read offsets and first-write flags are per call
}

func (v *version) newInstance(ctx context.Context, s *slot, p *pool) (*instance, error) {
	if !v.tryRef() {
		return nil, errVersionGone
	}
	in := &instance{ver: v, pool: p, slot: s}
	in.ctx = callContext{in: in, done: make(chan struct{})}
	if s != nil {
		in.config = []byte(s.key.config)
	}
	cctx, cancel := context.WithTimeout(context.WithValue(context.WithoutCancel(ctx), instKey{}, in), instantiateLimit)
	mod, err := v.rt.InstantiateModule(cctx, v.cm, v.modCfg)
	cancel()
	if err != nil {
		v.unref()
		return nil, err
	}
	in.mod = mod
	in.hreq = mod.ExportedFunction("handle_request")
	in.hresp = mod.ExportedFunction("handle_response")
	v.h.watchdog.add(in)
	return in, nil
}

// call runs fn under the plugin's deadline, which the host's watchdog
// keeps; the host functions find the instance (and through it the request)
// in the context.
func (in *instance) call(fn api.Function, stack []uint64) error {
	w := in.ver.h.watchdog
	w.begin(in, in.ver.timeout)
	err := fn.CallWithStack(&in.ctx, stack)
	if !w.end(in) {
		return errDeadline
	}
	if err == nil && in.mod.IsClosed() {
		err = errors.New("guest exited")
	}
	return err
}

// close throws the instance away and frees its pool token.
func (in *instance) close() {
	in.ver.h.watchdog.remove(in)
	_ = in.mod.Close(context.Background())
	if in.pool != nil {
		<-in.pool.tokens
	}
	in.ver.unref()
}

// release returns a healthy instance to its pool.
func (in *instance) release() {
	in.ex = nil
	p := in.pool
	if p.retired.Load() {
		in.close()
		return
	}
	p.idle <- in // never blocks: at most cap(tokens) instances exist
	if p.retired.Load() {
		p.drain()
	}
}

// pool holds the instances of one attachment on one version. tokens count
// the instances alive (idle or in use), so the pool never exceeds PoolSize.
type pool struct {
	ver     *version
	slot    *slot
	idle    chan *instance
	tokens  chan struct{}
	retired atomic.Bool
}

func (v *version) newPool(s *slot) *pool {
	n := v.meta.PoolSize
	return &pool{ver: v, slot: s, idle: make(chan *instance, n), tokens: make(chan struct{}, n)}
}

// retire stops pooling: idle instances close now, busy ones when released.
func (p *pool) retire() {
	p.retired.Store(true)
	p.drain()
}

func (p *pool) drain() {
	for {
		select {
		case in := <-p.idle:
			in.close()
		default:
			return
		}
	}
}

func (p *pool) create() (*instance, error) {
	in, err := p.ver.newInstance(context.Background(), p.slot, p)
	if err != nil {
		<-p.tokens
		return nil, err
	}
	return in, nil
}

// warmOne starts an instance if the pool has none yet.
func (p *pool) warmOne() error {
	select {
	case p.tokens <- struct{}{}:
	default:
		return nil
	}
	in, err := p.create()
	if err != nil {
		return err
	}
	in.release()
	return nil
}

// slotKey names an attachment; n tells apart the same plugin and config
// attached twice to one service.
type slotKey struct {
	plugin, service, config string
	n                       int
}

// slot is an attachment: it outlives plugin replacement (its pool is
// swapped) and carries the failure count and suspension.
type slot struct {
	h              *Host
	key            slotKey
	log            *slog.Logger
	pool           atomic.Pointer[pool]
	failures       atomic.Int32
	suspendedUntil atomic.Int64 // unix nanoseconds; 0 when not suspended
}

func newSlot(h *Host, key slotKey) *slot {
	return &slot{h: h, key: key, log: h.logger.With("plugin", key.plugin, "service", key.service)}
}

func (s *slot) retire() {
	if p := s.pool.Load(); p != nil {
		p.retire()
	}
}

// acquire takes an idle instance, or starts one while the pool is under its
// size, or waits for one up to the busy wait.
func (s *slot) acquire() (*instance, error) {
	p := s.pool.Load()
	if p == nil {
		return nil, errVersionGone
	}
	select {
	case in := <-p.idle:
		return in, nil
	default:
	}
	select {
	case p.tokens <- struct{}{}:
		return p.create()
	default:
	}
	t := time.NewTimer(s.h.busyWait())
	defer t.Stop()
	select {
	case in := <-p.idle:
		return in, nil
	case p.tokens <- struct{}{}:
		return p.create()
	case <-t.C:
		return nil, ErrBusy
	}
}

// suspended reports whether the attachment is suspended; an expired
// suspension ends here.
func (s *slot) suspended() bool {
	u := s.suspendedUntil.Load()
	if u == 0 {
		return false
	}
	if s.h.now().UnixNano() < u {
		return true
	}
	if s.suspendedUntil.CompareAndSwap(u, 0) {
		s.log.Info("plugin suspension ended")
	}
	return false
}

func (s *slot) succeeded() {
	if s.failures.Load() != 0 {
		s.failures.Store(0)
	}
}

func (s *slot) failed(err error) {
	s.log.Warn("plugin failed", "err", firstLine(err))
	if s.failures.Add(1) < SuspendAfter {
		return
	}
	until := s.h.now().Add(SuspendFor)
	if s.suspendedUntil.CompareAndSwap(0, until.UnixNano()) {
		s.failures.Store(0)
		s.log.Error("plugin suspended after consecutive failures", "failures", SuspendAfter, "until", until)
	}
}

func (s *slot) resetFailures() {
	s.failures.Store(0)
	s.suspendedUntil.Store(0)
}
