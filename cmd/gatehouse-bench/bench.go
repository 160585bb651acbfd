package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var errUsage = errors.New("bad usage")

type config struct {
	gatehouse string
	plugin    string
	goBench   string
	out       string
	rounds    int
	duration  time.Duration
	warmup    time.Duration
	rate      float64
	keys      int
	conns     int
	workers   int
	noPin     bool
	noPeers   bool
	quick     bool
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("gatehouse-bench", flag.ContinueOnError)
	fs.StringVar(&c.gatehouse, "gatehouse", "./bin/gatehouse", "the gatehouse binary to measure")
	fs.StringVar(&c.plugin, "plugin", "", "a no-op http-wasm plugin (.wasm) for the plugin row; the row is skipped when empty")
	fs.StringVar(&c.goBench, "go-bench", "", "`go test -bench` output whose in-process results enter the targets (guest call, allocations, GC cycle)")
	fs.StringVar(&c.out, "out", "", "also write the markdown report to this file")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds; every configuration runs once per round, interleaved")
	fs.DurationVar(&c.duration, "duration", 3*time.Second, "length of each measurement (throughput, then latency)")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "warm-up per configuration before the first round")
	fs.Float64Var(&c.rate, "rate", 2000, "requests per second of the open-loop latency run")
	fs.IntVar(&c.keys, "keys", 1_000_000, "keys bulk-loaded into the large instance (0: no large instance)")
	fs.IntVar(&c.conns, "conns", 32, "connections of the closed-loop throughput run")
	fs.IntVar(&c.workers, "workers", 256, "most requests in flight in the open-loop run")
	fs.BoolVar(&c.noPin, "no-pin", false, "do not pin processes to CPUs with taskset")
	fs.BoolVar(&c.noPeers, "no-peers", false, "do not measure nginx, Caddy and HAProxy")
	fs.BoolVar(&c.quick, "quick", false, "tiny settings for a smoke test (1 round, 300ms, 200 req/s, 20,000 keys)")
	if err := fs.Parse(args); err != nil {
		return c, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "gatehouse-bench: unexpected argument %q\n", fs.Arg(0))
		return c, errUsage
	}
	if c.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := map[string]func(){
			"rounds":   func() { c.rounds = 1 },
			"duration": func() { c.duration = 300 * time.Millisecond },
			"warmup":   func() { c.warmup = 100 * time.Millisecond },
			"rate":     func() { c.rate = 200 },
			"keys":     func() { c.keys = 20_000 },
			"conns":    func() { c.conns = 8 },
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
			}
		}
	}
	switch {
	case c.rounds < 1:
		return c, flagError("rounds", "must be at least 1")
	case c.duration <= 0:
		return c, flagError("duration", "must be positive")
	case c.warmup < 0:
		return c, flagError("warmup", "must not be negative")
	case c.rate <= 0:
		return c, flagError("rate", "must be positive")
	case c.keys < 0:
		return c, flagError("keys", "must not be negative")
	case c.conns < 1:
		return c, flagError("conns", "must be at least 1")
	case c.workers < 1:
		return c, flagError("workers", "must be at least 1")
	}
	return c, nil
}

func flagError(name, msg string) error {
	fmt.Fprintf(os.Stderr, "gatehouse-bench: --%s %s\n", name, msg)
	return errUsage
}

// pinEnv carries the chosen CPUs ("load,proxy") into the re-executed,
// pinned benchmark process.
const pinEnv = "GATEHOUSE_BENCH_PIN"

// setupPinning pins the benchmark itself (load generator and upstream) to
// the first allowed CPU and reserves the second for the proxy under test.
// It re-executes the program under taskset so that the Go runtime sizes
// itself for the one CPU it has; it returns only when no re-exec happened.
func setupPinning(c config, args []string) (pinning, string) {
	if v := os.Getenv(pinEnv); v != "" {
		load, proxy, _ := strings.Cut(v, ",")
		return pinning{loadCPU: load, proxyCPU: proxy}, ""
	}
	if c.noPin {
		return pinning{}, "not pinned (--no-pin)"
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return pinning{}, "not pinned: taskset not found"
	}
	cpus := allowedCPUs()
	if len(cpus) < 2 {
		return pinning{}, "not pinned: fewer than 2 CPUs"
	}
	self, err := os.Executable()
	if err != nil {
		return pinning{}, "not pinned: " + err.Error()
	}
	load, proxy := strconv.Itoa(cpus[0]), strconv.Itoa(cpus[1])
	env := append(os.Environ(), pinEnv+"="+load+","+proxy)
	err = syscall.Exec(taskset, append([]string{"taskset", "-c", load, self}, args...), env)
	return pinning{}, "not pinned: exec taskset: " + err.Error()
}

// allowedCPUs lists the CPUs this process may run on (Cpus_allowed_list).
func allowedCPUs() []int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return parseCPUList(strings.TrimSpace(v))
		}
	}
	return nil
}

// parseCPUList parses the kernel's list format, e.g. "0-3,6".
func parseCPUList(s string) []int {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil
			}
		}
		for i := a; i <= b; i++ {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

func runBench(args []string) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	pin, pinNote := setupPinning(cfg, args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "gatehouse-bench-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	b := &bench{cfg: cfg, pin: pin, pinNote: pinNote, dir: dir, began: time.Now(),
		peerAddrs: map[string]peerProc{}, gc: map[string]*gcWindow{}}
	if cfg.goBench != "" {
		if b.inproc, err = readGoBench(cfg.goBench); err != nil {
			return fmt.Errorf("--go-bench: %w", err)
		}
	}
	defer b.stopAll()
	b.run(ctx)
	b.stopAll()

	report := b.report()
	fmt.Print(report)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(report), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	if len(b.failures) > 0 {
		return fmt.Errorf("%d part(s) could not run (see above)", len(b.failures))
	}
	if n := b.totalErrors(); n > 0 {
		return fmt.Errorf("%d requests got an unexpected answer", n)
	}
	return nil
}

// measurement is one row in one round.
type measurement struct {
	rps       float64
	cpuPerReq time.Duration // CPU of the measured process per request; 0 if unknown
	cpuUtil   float64       // that process's CPU seconds per wall second
	p50, p99  time.Duration
	max       time.Duration
	errors    uint64
	firstErr  string
	redis     *redisWindow // cluster rows only
}

type row struct {
	id, name string
	tgt      target
	proc     func() *child // whose CPU is counted
	peer     bool          // nginx, Caddy or HAProxy
	cluster  bool          // a node of the cluster
	skip     string        // why the row did not run
	rounds   []measurement
	// redisNodes are the cluster's nodes whose Redis calls are read around
	// each measurement, the loaded one first.
	redisNodes []*gatehouse
}

type bench struct {
	cfg     config
	pin     pinning
	pinNote string
	dir     string
	began   time.Time

	upstream, baseline *child
	upstreamAddr       string
	baselineAddr       string
	small, large       *gatehouse
	version            string
	peers              []*child
	peerAddrs          map[string]peerProc
	cl                 *cluster

	rows     []*row
	notes    []string
	failures []string
	mem      memory
	gc       map[string]*gcWindow // "small", "large": the gateway's GC during the rounds
	inproc   goBench
	paired   []*pairedRun
}

// pairedRun is the open-loop latency of two rows measured at the same time,
// each at --rate: both proxies run on the same CPU, so a stall of the
// machine hits both alike and the ratio of their p99 is the proxies' own.
type pairedRun struct {
	a, b   string // row ids
	rounds [][2]time.Duration
}

var pairs = [][2]string{{"basic", "baseline"}, {"large", "basic"}}

// measurePairs runs each pair's two open loops concurrently.
func (b *bench) measurePairs(ctx context.Context) {
	for i, p := range pairs {
		ra, rb := b.row(p[0]), b.row(p[1])
		if ra == nil || rb == nil || ra.skip != "" || rb.skip != "" || ctx.Err() != nil {
			continue
		}
		if len(b.paired) <= i {
			b.paired = append(b.paired, make([]*pairedRun, i+1-len(b.paired))...)
		}
		if b.paired[i] == nil {
			b.paired[i] = &pairedRun{a: p[0], b: p[1]}
		}
		var la, lb loadResult
		var wg sync.WaitGroup
		wg.Go(func() { la = openLoop(ctx, ra.tgt, b.cfg.rate, b.cfg.duration, b.cfg.workers) })
		wg.Go(func() { lb = openLoop(ctx, rb.tgt, b.cfg.rate, b.cfg.duration, b.cfg.workers) })
		wg.Wait()
		pa, pb := la.latencies.Quantile(0.99), lb.latencies.Quantile(0.99)
		b.paired[i].rounds = append(b.paired[i].rounds, [2]time.Duration{pa, pb})
		if la.errors+lb.errors > 0 {
			ra.rounds[len(ra.rounds)-1].errors += la.errors
			rb.rounds[len(rb.rounds)-1].errors += lb.errors
		}
		b.progress("paired %s / %s: p99 %v / %v", ra.name, rb.name, pa, pb)
	}
}

// pairedRatio is the median over rounds of p99(a)/p99(b) measured together.
func (b *bench) pairedRatio(a, bID string) (float64, bool) {
	for _, p := range b.paired {
		if p == nil || p.a != a || p.b != bID {
			continue
		}
		var xs []float64
		for _, r := range p.rounds {
			if r[1] > 0 {
				xs = append(xs, float64(r[0])/float64(r[1]))
			}
		}
		if len(xs) > 0 {
			return median(xs), true
		}
	}
	return 0, false
}

// gcWindow is a gateway's GC pause summary before and after the rounds.
type gcWindow struct {
	before, after gcSample
	ok            bool
}

// meanPause is the mean stop-the-world pause during the rounds.
func (w *gcWindow) meanPause() (time.Duration, float64, bool) {
	if w == nil || !w.ok || w.after.count <= w.before.count {
		return 0, 0, false
	}
	n := w.after.count - w.before.count
	return time.Duration((w.after.sum - w.before.sum) / n * 1e9), n, true
}

// memory is the memory and start-up section of the report.
type memory struct {
	smallKeys, largeKeys         int
	smallRSS, largeRSS           int64
	smallRSSAfter, largeRSSAfter int64
	smallStart, largeHealth      time.Duration
	largeReady                   time.Duration
	seedTime                     time.Duration
	seedRequests                 int
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(b.began).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.failures = append(b.failures, msg)
	b.progress("FAILED: %s", msg)
}

func (b *bench) stopAll() {
	for _, g := range []*gatehouse{b.small, b.large} {
		if err := g.stop(); err != nil {
			b.progress("%v", err)
		}
	}
	if b.cl != nil {
		for _, err := range b.cl.stop() {
			b.progress("%v", err)
		}
	}
	for _, c := range append(b.peers, b.baseline, b.upstream) {
		if err := c.stop(); err != nil {
			b.progress("%v", err)
		}
	}
}

func (b *bench) run(ctx context.Context) {
	self, err := os.Executable()
	if err != nil {
		b.fail("find own executable: %v", err)
		return
	}
	b.upstream, b.upstreamAddr, err = startListener("upstream", b.pin.command(b.pin.loadCPU, self, "upstream"))
	if err != nil {
		b.fail("%v", err)
		return
	}
	b.baseline, b.baselineAddr, err = startListener("baseline proxy",
		b.pin.command(b.pin.proxyCPU, self, "baseline-proxy", "--upstream", b.upstreamAddr))
	if err != nil {
		b.fail("%v", err)
		return
	}
	b.progress("upstream on %s, baseline proxy on %s", b.upstreamAddr, b.baselineAddr)
	if !b.cfg.noPeers {
		b.startPeers(ctx)
		b.progress("peers started: %d of %d", len(b.peerAddrs), len(peers))
	}
	b.startGatehouses(ctx)
	if ctx.Err() == nil {
		b.startCluster(ctx)
	}
	b.buildRows()
	if ctx.Err() != nil {
		return
	}
	b.preflight()
	b.warmUp(ctx)
	b.readGC(ctx, true)
	for round := range b.cfg.rounds {
		for _, r := range b.rows {
			if r.skip != "" || ctx.Err() != nil {
				continue
			}
			m := b.measure(ctx, r)
			r.rounds = append(r.rounds, m)
			b.progress("round %d/%d %-28s %9.0f req/s %7.1f µs/req  p99 %v  errors %d",
				round+1, b.cfg.rounds, r.name, m.rps, float64(m.cpuPerReq)/1e3, m.p99, m.errors)
		}
		b.measurePairs(ctx)
	}
	b.runRace(ctx)
	b.readGC(ctx, false)
	if b.small != nil && b.small.proc != nil && !b.small.proc.exited() {
		b.mem.smallRSSAfter, _ = b.small.proc.rss()
	}
	if b.large != nil && b.large.proc != nil && !b.large.proc.exited() {
		b.mem.largeRSSAfter, _ = b.large.proc.rss()
	}
}

// startGatehouses seeds a small instance (10 keys) and, with --keys, a large
// one, then restarts both so that memory and start-up are those of a process
// loading its keys from the database, as after any restart in production.
func (b *bench) startGatehouses(ctx context.Context) {
	if _, err := os.Stat(b.cfg.gatehouse); err != nil {
		b.fail("gatehouse binary %s: %v; build it with `go build -o bin/gatehouse ./cmd/gatehouse` or pass --gatehouse", b.cfg.gatehouse, err)
		return
	}
	if out, err := exec.Command(b.cfg.gatehouse, "version").Output(); err == nil {
		b.version = strings.TrimSpace(string(out))
	}
	var wasm []byte
	if b.cfg.plugin != "" {
		var err error
		if wasm, err = os.ReadFile(b.cfg.plugin); err != nil {
			b.fail("read plugin: %v", err)
		}
	}
	small, err := newGatehouse("gatehouse-small", b.cfg.gatehouse, b.dir, b.pin)
	if err == nil {
		b.small = small
		err = small.start(ctx, nil)
	}
	if err == nil {
		err = small.seed(ctx, b.upstreamAddr, wasm)
	}
	if err != nil {
		b.fail("gatehouse (10 keys): %v", err)
		b.small = nil
		small.stop()
		return
	}
	b.progress("gatehouse (10 keys) seeded")
	if b.cfg.keys > 0 {
		b.seedLarge(ctx)
	}
	// Restart both on their databases; measure from exec.
	probe := target{addr: small.proxyAddr, host: mainHost, path: "/api/hello",
		header: http.Header{"Authorization": {basicAuth(keyID, keySecret)}}, want: 200}
	if err := small.stop(); err != nil {
		b.progress("%v", err)
	}
	if err := small.start(ctx, &probe); err != nil {
		b.fail("restart gatehouse (10 keys): %v", err)
		b.small = nil
		return
	}
	b.mem.smallKeys = smallKeys
	b.mem.smallStart = small.readyAfter
	b.mem.smallRSS, _ = small.proc.rss()
	b.progress("gatehouse (10 keys) restarted: ready in %v, RSS %s", small.readyAfter.Round(time.Millisecond), mib(b.mem.smallRSS))
}

func (b *bench) seedLarge(ctx context.Context) {
	large, err := newGatehouse("gatehouse-large", b.cfg.gatehouse, b.dir, b.pin)
	if err == nil {
		b.large = large
		err = large.start(ctx, nil)
	}
	if err == nil {
		err = large.seed(ctx, b.upstreamAddr, nil)
	}
	var lastID, lastSecret string
	if err == nil {
		b.progress("bulk-loading %d keys in batches of %d", b.cfg.keys, bulkBatch)
		t0 := time.Now()
		lastID, lastSecret, err = large.bulkLoad(ctx, b.cfg.keys, func(done int) {
			if done%(10*bulkBatch) == 0 || done == b.cfg.keys {
				b.progress("  %d keys loaded", done)
			}
		})
		b.mem.seedTime = time.Since(t0)
		b.mem.seedRequests = (b.cfg.keys + bulkBatch - 1) / bulkBatch
	}
	if err == nil {
		err = large.stop()
	}
	if err == nil {
		probe := target{addr: large.proxyAddr, host: mainHost, path: "/api/hello",
			header: http.Header{"Authorization": {basicAuth(lastID, lastSecret)}}, want: 200}
		err = large.start(ctx, &probe)
	}
	if err != nil {
		b.fail("gatehouse (%d keys): %v", b.cfg.keys, err)
		large.stop()
		b.large = nil
		return
	}
	b.mem.largeKeys = smallKeys + b.cfg.keys
	b.mem.largeHealth = large.healthAfter
	b.mem.largeReady = large.readyAfter
	b.mem.largeRSS, _ = large.proc.rss()
	b.progress("gatehouse (%d keys) restarted: /health in %v, keys served in %v, RSS %s", b.mem.largeKeys,
		large.healthAfter.Round(time.Millisecond), large.readyAfter.Round(time.Millisecond), mib(b.mem.largeRSS))
}

func (b *bench) buildRows() {
	basic := http.Header{"Authorization": {basicAuth(keyID, keySecret)}}
	upstream := func() *child { return b.upstream }
	baseline := func() *child { return b.baseline }
	b.rows = []*row{
		{id: "direct", name: "direct upstream", proc: upstream,
			tgt: target{addr: b.upstreamAddr, path: "/api/hello", want: 200}},
		// The baseline and the peers get the Basic row's very request (a plain
		// proxy forwards the credential untouched), so that what they parse
		// and forward is what the gateway does.
		{id: "baseline", name: "baseline ReverseProxy", proc: baseline,
			tgt: target{addr: b.baselineAddr, host: mainHost, path: "/api/hello", header: basic, want: 200}},
	}
	b.rows = append(b.rows, b.peerRows()...)
	gw := func(g **gatehouse, id, name, host, path string, h http.Header, want int) *row {
		r := &row{id: id, name: name, tgt: target{host: host, path: path, header: h, want: want}}
		switch {
		case *g == nil && g == &b.large && b.cfg.keys == 0:
			r.skip = "--keys 0"
		case *g == nil:
			r.skip = "gatehouse did not start"
		default:
			inst := *g
			r.tgt.addr = inst.proxyAddr
			r.proc = func() *child { return inst.proc }
		}
		return r
	}
	large := fmt.Sprintf("gatehouse, %s keys", thousands(b.cfg.keys))
	b.rows = append(b.rows,
		gw(&b.small, "public", "gatehouse, public path", mainHost, "/public/hello", nil, 200),
		gw(&b.small, "basic", "gatehouse, Basic key + quotas", mainHost, "/api/hello", basic, 200),
	)
	// Next to the standalone row they are compared with.
	b.rows = append(b.rows, b.clusterRows(basic)...)
	b.rows = append(b.rows,
		gw(&b.small, "jwt", "gatehouse, HS256 JWT", mainHost, "/api/hello",
			http.Header{"Authorization": {"Bearer " + hs256(keyID, keySecret)}}, 200),
		gw(&b.small, "headers", "gatehouse, custom headers", headersHost, "/api/hello", basic, 200),
		gw(&b.large, "large", large, mainHost, "/api/hello", basic, 200),
		gw(&b.small, "plugin", "gatehouse, one no-op plugin", pluginHost, "/api/hello", basic, 200),
		gw(&b.small, "401", "gatehouse, refused 401", mainHost, "/api/hello",
			http.Header{"Authorization": {basicAuth(keyID, "wrong-secret")}}, 401),
		gw(&b.small, "429", "gatehouse, refused 429", mainHost, "/api/hello",
			http.Header{"Authorization": {basicAuth(emptyKeyID, emptySecret)}}, 429),
	)
	if r := b.row("plugin"); r.skip == "" && b.cfg.plugin == "" {
		r.skip = "no --plugin given"
		b.notes = append(b.notes, "The plugin row was skipped: pass --plugin with a no-op http-wasm module.")
	}
}

func (b *bench) row(id string) *row {
	for _, r := range b.rows {
		if r.id == id {
			return r
		}
	}
	return nil
}

// preflight sends each row's request once: a row whose answer is not the
// expected one is reported with the gateway's error message, not measured.
func (b *bench) preflight() {
	tr := newClientTransport(1)
	defer tr.CloseIdleConnections()
	for _, r := range b.rows {
		if r.skip != "" {
			continue
		}
		resp, err := tr.RoundTrip(r.tgt.newRequest())
		if err != nil {
			r.skip = "preflight: " + err.Error()
			b.fail("%s: %s", r.name, r.skip)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != r.tgt.want {
			r.skip = fmt.Sprintf("preflight: status %d, want %d (Otoroshi-Error-Msg %q)",
				resp.StatusCode, r.tgt.want, resp.Header.Get("Otoroshi-Error-Msg"))
			b.fail("%s: %s", r.name, r.skip)
		}
	}
}

func (b *bench) warmUp(ctx context.Context) {
	if b.cfg.warmup == 0 {
		return
	}
	b.progress("warming up (%v per configuration)", b.cfg.warmup)
	for _, r := range b.rows {
		if r.skip == "" {
			closedLoop(ctx, r.tgt, b.cfg.conns, b.cfg.warmup)
		}
	}
}

// measure runs the closed-loop throughput run, reading the measured
// process's CPU time around it, then the open-loop latency run.
func (b *bench) measure(ctx context.Context, r *row) measurement {
	var m measurement
	var calls0 []float64
	var redis0 time.Duration
	if len(r.redisNodes) > 0 {
		// Steady state: the key's slices were given back while the other
		// rows ran (a node returns what an idle key holds after 10 s).
		closedLoop(ctx, r.tgt, b.cfg.conns, b.cfg.warmup)
		var err error
		if calls0, err = redisCalls(ctx, r.redisNodes); err != nil {
			b.fail("%s: %v", r.name, err)
		}
		redis0, _ = b.cl.redis.cpuTime()
	}
	p := r.proc()
	cpu0, err0 := p.cpuTime()
	tp := closedLoop(ctx, r.tgt, b.cfg.conns, b.cfg.duration)
	cpu1, err1 := p.cpuTime()
	m.rps = tp.rps()
	if err0 == nil && err1 == nil && tp.requests > 0 {
		m.cpuPerReq = (cpu1 - cpu0) / time.Duration(tp.requests)
		m.cpuUtil = (cpu1 - cpu0).Seconds() / tp.elapsed.Seconds()
	}
	lat := openLoop(ctx, r.tgt, b.cfg.rate, b.cfg.duration, b.cfg.workers)
	m.p50 = lat.latencies.Quantile(0.50)
	m.p99 = lat.latencies.Quantile(0.99)
	m.max = lat.latencies.Max()
	m.errors = tp.errors + lat.errors
	if calls0 != nil {
		redis1, _ := b.cl.redis.cpuTime()
		calls1, err := redisCalls(ctx, r.redisNodes)
		if err != nil {
			b.fail("%s: %v", r.name, err)
		} else {
			w := &redisWindow{served: tp.requests + lat.requests, redisCPU: redis1 - redis0}
			for i := range calls1 {
				w.calls = append(w.calls, calls1[i]-calls0[i])
			}
			m.redis = w
		}
	}
	m.firstErr = tp.firstErr
	if m.firstErr == "" {
		m.firstErr = lat.firstErr
	}
	return m
}

// readGC reads both gateways' GC pauses, before or after the rounds.
func (b *bench) readGC(ctx context.Context, before bool) {
	for name, g := range map[string]*gatehouse{"small": b.small, "large": b.large} {
		if g == nil || g.proc == nil || g.proc.exited() {
			continue
		}
		s, err := g.gcPauses(ctx)
		if err != nil {
			b.progress("%s: %v", g.name, err)
			continue
		}
		w := b.gc[name]
		if before {
			b.gc[name] = &gcWindow{before: s}
		} else if w != nil {
			w.after, w.ok = s, true
		}
	}
}

func (b *bench) totalErrors() uint64 {
	var n uint64
	for _, r := range b.rows {
		for _, m := range r.rounds {
			n += m.errors
		}
	}
	if rr := b.cl.raceOrNil(); rr != nil {
		n += rr.other
	}
	return n
}
