// Package plugins runs WebAssembly plugins written to http-wasm's
// "http_handler" ABI (http-wasm.io) on wazero: modules are compiled once
// (with an on-disk compilation cache), instances are pooled per attachment
// (plugin x service x config string), and every guest call is bounded in
// time and memory. It is the only package that imports wazero.
package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"gatehouse"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Errors Chain.Serve returns for the server's error mapper.
var (
	// ErrFailure: a plugin trapped, timed out, ran out of memory or is
	// suspended, and its attachment is not failOpen (502 "plugin failure").
	ErrFailure = errors.New("plugin failure")
	// ErrBusy: no instance of the plugin was free within BusyWait (503 "plugin busy").
	ErrBusy = errors.New("plugin busy")
	// ErrBodyTooLarge: a body buffered for a plugin exceeded MaxBodyBytes (413).
	ErrBodyTooLarge = errors.New("body too large for plugin")
)

// Limits of contract section 10.
const (
	MaxBodyBytes     = 8 << 20          // a body buffered for a plugin
	BusyWait         = time.Second      // wait for a free instance before ErrBusy
	SuspendAfter     = 5                // consecutive failures before suspension
	SuspendFor       = 30 * time.Second // length of a suspension
	instantiateLimit = 10 * time.Second // bound on _initialize/_start of a new instance
)

// Config configures a Host.
type Config struct {
	CacheDir string       // wazero compilation cache directory; empty keeps it in memory
	Logger   *slog.Logger // nil discards
	// Now is the clock of suspensions; nil means time.Now. Tests inject one.
	Now func() time.Time
}

// Host holds the loaded plugins and the pools of their attachments.
type Host struct {
	cache    wazero.CompilationCache
	logger   *slog.Logger
	now      func() time.Time
	checkR   wazero.Runtime // compiles modules for Check, with no limits of a plugin
	watchdog *watchdog      // bounds every guest call by its plugin's timeoutMs

	mu        sync.Mutex
	closed    bool
	versions  map[string]*version // plugin id -> its current bytes and limits
	slots     map[slotKey]*slot   // live attachments
	byService map[string][]*slot  // service id -> the slots of its last Chain
	warm      sync.WaitGroup      // pre-warming goroutines
	busy      time.Duration       // wait for a free instance; BusyWait unless a test shortens it
}

func (h *Host) busyWait() time.Duration {
	if h.busy > 0 {
		return h.busy
	}
	return BusyWait
}

// NewHost creates a host using wazero's compiler with a compilation cache in cfg.CacheDir.
func NewHost(ctx context.Context, cfg Config) (*Host, error) {
	h := &Host{
		logger:    cfg.Logger,
		now:       cfg.Now,
		versions:  map[string]*version{},
		slots:     map[slotKey]*slot{},
		byService: map[string][]*slot{},
		watchdog:  newWatchdog(),
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm cache: %w", err)
		}
		h.cache = c
	} else {
		h.cache = wazero.NewCompilationCache()
	}
	h.checkR = wazero.NewRuntimeWithConfig(ctx, h.runtimeConfig(gatehouse.MaxPluginMemoryPages))
	return h, nil
}

func (h *Host) runtimeConfig(memoryPages uint32) wazero.RuntimeConfig {
	return wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(h.cache).
		WithMemoryLimitPages(memoryPages).
		// Compiled code checks for a closed module in loops and calls, so
		// the watchdog can stop a guest that never returns (watchdog.go).
		WithCloseOnContextDone(true)
}

// Close retires every pool and releases the compilation cache. Requests in
// flight finish on the instances they hold.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	for k, s := range h.slots {
		s.retire()
		delete(h.slots, k)
	}
	for id, v := range h.versions {
		v.unref()
		delete(h.versions, id)
	}
	h.mu.Unlock()
	h.warm.Wait()
	err := h.checkR.Close(ctx)
	return errors.Join(err, h.cache.Close(ctx))
}

// Check compiles wasm and verifies it can run as an http-wasm plugin: it
// exports memory, handle_request and handle_response, and imports nothing
// but http_handler's functions and WASI. Its errors are *gatehouse.Error
// (Invalid, field "wasm").
func (h *Host) Check(ctx context.Context, wasm []byte) error {
	cm, err := h.checkR.CompileModule(ctx, wasm)
	if err != nil {
		return gatehouse.Invalid("wasm", "not a valid WebAssembly module: %s", firstLine(err))
	}
	defer cm.Close(ctx)
	return checkModule(cm)
}

// CheckPlugin is Check under p's limits: a module whose memory cannot fit
// p.MemoryLimitPages is refused (Invalid, field "memoryLimitPages") before
// anything is stored, instead of being stored and never loading.
func (h *Host) CheckPlugin(ctx context.Context, p gatehouse.Plugin, wasm []byte) error {
	v, err := h.newVersion(ctx, normalizeLimits(p), "", wasm)
	if err != nil {
		return err
	}
	v.unref()
	return nil
}

func checkModule(cm wazero.CompiledModule) error {
	if _, ok := cm.ExportedMemories()["memory"]; !ok {
		return gatehouse.Invalid("wasm", "module must export its memory as \"memory\"")
	}
	fns := cm.ExportedFunctions()
	if err := checkExport(fns, "handle_request", nil, []api.ValueType{api.ValueTypeI64}); err != nil {
		return err
	}
	if err := checkExport(fns, "handle_response", []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, nil); err != nil {
		return err
	}
	for _, imp := range cm.ImportedFunctions() {
		mod, name, _ := imp.Import()
		switch mod {
		case wasi_snapshot_preview1.ModuleName:
		case "http_handler":
			hf, ok := hostFuncs[name]
			if !ok {
				return gatehouse.Invalid("wasm", "imports unknown function http_handler.%s", name)
			}
			if !sameTypes(imp.ParamTypes(), hf.params) || !sameTypes(imp.ResultTypes(), hf.results) {
				return gatehouse.Invalid("wasm", "imports http_handler.%s with the wrong signature", name)
			}
		default:
			return gatehouse.Invalid("wasm", "imports %s.%s: only http_handler and wasi_snapshot_preview1 are available", mod, name)
		}
	}
	if len(cm.ImportedMemories()) > 0 {
		return gatehouse.Invalid("wasm", "module must define its own memory, not import one")
	}
	return nil
}

func checkExport(fns map[string]api.FunctionDefinition, name string, params, results []api.ValueType) error {
	fn, ok := fns[name]
	if !ok {
		return gatehouse.Invalid("wasm", "module must export the function %q", name)
	}
	if !sameTypes(fn.ParamTypes(), params) || !sameTypes(fn.ResultTypes(), results) {
		return gatehouse.Invalid("wasm", "exported function %q has the wrong signature", name)
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// firstLine keeps an error message to one line: wazero's may carry stack traces.
func firstLine(err error) string {
	s := err.Error()
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

// Load registers plugin p with module bytes wasm, or replaces it. Every
// attachment of p gets a new pool on the new module; requests holding an
// instance of the old one finish on it. Errors are *gatehouse.Error
// (Invalid "wasm", or "memoryLimitPages" when the module's memory cannot
// fit the limit).
func (h *Host) Load(ctx context.Context, p gatehouse.Plugin, wasm []byte) error {
	sum := sha256.Sum256(wasm)
	digest := hex.EncodeToString(sum[:])
	limits := normalizeLimits(p)

	h.mu.Lock()
	if old := h.versions[p.ID]; old != nil && old.sha == digest && sameLimits(old.meta, limits) {
		old.meta.Name = p.Name
		h.mu.Unlock()
		return nil // same bytes and limits: keep the warm pools
	}
	h.mu.Unlock()

	// No trial instance here: guests commonly refuse to start without their
	// config, which only attachments give. A guest that cannot start fails
	// its requests (502) and the pre-warm logs why.
	v, err := h.newVersion(ctx, limits, digest, wasm)
	if err != nil {
		return err
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		v.unref()
		return errors.New("plugins: host closed")
	}
	old := h.versions[p.ID]
	h.versions[p.ID] = v
	for _, s := range h.slots {
		if s.key.plugin != p.ID {
			continue
		}
		np := v.newPool(s)
		s.resetFailures()
		if op := s.pool.Swap(np); op != nil {
			op.retire()
		}
		h.prewarm(np)
	}
	if old != nil {
		old.unref()
	}
	return nil
}

func sameLimits(a, b gatehouse.Plugin) bool {
	return a.MemoryLimitPages == b.MemoryLimitPages && a.TimeoutMs == b.TimeoutMs && a.PoolSize == b.PoolSize
}

// normalizeLimits applies defaults to zero limits, so a bare Plugin works.
func normalizeLimits(p gatehouse.Plugin) gatehouse.Plugin {
	d := gatehouse.DefaultPlugin()
	if p.MemoryLimitPages == 0 {
		p.MemoryLimitPages = d.MemoryLimitPages
	}
	if p.MemoryLimitPages > gatehouse.MaxPluginMemoryPages {
		p.MemoryLimitPages = gatehouse.MaxPluginMemoryPages
	}
	if p.TimeoutMs <= 0 {
		p.TimeoutMs = d.TimeoutMs
	}
	if p.PoolSize <= 0 {
		p.PoolSize = d.PoolSize
	}
	p.SHA256, p.ABI = "", "" // not limits: kept out of the "unchanged" comparison
	return p
}

// Remove unloads plugin id. Attachments still using it fail (502) until
// their service's chain is rebuilt without it.
func (h *Host) Remove(ctx context.Context, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, s := range h.slots {
		if k.plugin == id {
			s.retire()
			s.pool.Store(nil)
			delete(h.slots, k)
		}
	}
	if v := h.versions[id]; v != nil {
		delete(h.versions, id)
		v.unref()
	}
}

// Forget drops the attachments of a deleted service (same as an empty Chain).
func (h *Host) Forget(serviceID string) {
	_, _ = h.Chain(serviceID, nil)
}

// Loaded reports whether plugin id is loaded.
func (h *Host) Loaded(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.versions[id] != nil
}

// Chain returns the plugin chain of a service. Attachments that did not
// change since the previous call for serviceID keep their pools (and warm
// instances); those that disappeared are retired.
func (h *Host) Chain(serviceID string, refs []gatehouse.PluginRef) (*Chain, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("plugins: host closed")
	}
	c := &Chain{h: h, steps: make([]step, 0, len(refs))}
	slots := make([]*slot, 0, len(refs))
	for i, ref := range refs {
		v := h.versions[ref.Ref]
		if v == nil {
			return nil, gatehouse.Invalid("plugins", "plugin %q is not loaded", ref.Ref)
		}
		key := slotKey{plugin: ref.Ref, service: serviceID, config: ref.Config}
		for _, prev := range refs[:i] {
			if prev.Ref == ref.Ref && prev.Config == ref.Config {
				key.n++ // the same attachment twice: one pool each, or a request could wait on itself
			}
		}
		s := h.slots[key]
		if s == nil {
			s = newSlot(h, key)
			p := v.newPool(s)
			s.pool.Store(p)
			h.slots[key] = s
			h.prewarm(p)
		}
		slots = append(slots, s)
		c.steps = append(c.steps, step{slot: s, failOpen: ref.FailOpen})
	}
	for _, old := range h.byService[serviceID] {
		if !containsSlot(slots, old) {
			old.retire()
			delete(h.slots, old.key)
		}
	}
	if len(slots) == 0 {
		delete(h.byService, serviceID)
	} else {
		h.byService[serviceID] = slots
	}
	return c, nil
}

func containsSlot(ss []*slot, s *slot) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// prewarm starts one instance of a new pool in the background, so the first
// request does not pay for instantiation. Called with h.mu held.
func (h *Host) prewarm(p *pool) {
	h.warm.Add(1)
	go func() {
		defer h.warm.Done()
		if err := p.warmOne(); err != nil {
			p.slot.log.Warn("plugin pre-warm failed", "err", firstLine(err))
		}
	}()
}
