package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *row) median(f func(m measurement) float64) float64 {
	xs := make([]float64, len(r.rounds))
	for i, m := range r.rounds {
		xs[i] = f(m)
	}
	return median(xs)
}

// ratio is the median over rounds of f(a's round, b's same round): ratios
// are taken within a round, so drift between rounds cancels out.
func ratio(a, b *row, f func(a, b measurement) float64) (float64, bool) {
	if a == nil || b == nil {
		return 0, false
	}
	var xs []float64
	for i := range min(len(a.rounds), len(b.rounds)) {
		if v := f(a.rounds[i], b.rounds[i]); v > 0 {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 {
		return 0, false
	}
	return median(xs), true
}

// perCore compares requests per second per proxy core, that is the inverse
// of CPU per request: a/b > 1 means a does more with one core.
func perCore(a, b measurement) float64 {
	if a.cpuPerReq <= 0 || b.cpuPerReq <= 0 {
		return 0
	}
	return float64(b.cpuPerReq) / float64(a.cpuPerReq)
}

func rpsRatio(a, b measurement) float64 {
	if b.rps <= 0 {
		return 0
	}
	return a.rps / b.rps
}

func p99Ratio(a, b measurement) float64 {
	if b.p99 <= 0 {
		return 0
	}
	return float64(a.p99) / float64(b.p99)
}

func cpuRatio(a, b measurement) float64 {
	if b.cpuPerReq <= 0 || a.cpuPerReq <= 0 {
		return 0
	}
	return float64(a.cpuPerReq) / float64(b.cpuPerReq)
}

func ms(d float64) string { return fmt.Sprintf("%.3f", d/1e6) }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func thousands(n int) string {
	s := fmt.Sprint(n)
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	return string(out)
}

func (b *bench) report() string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	c := b.cfg

	p("## Gatehouse benchmark\n\n")
	p("Machine: %s\n\n", machine())
	if b.version != "" {
		p("Gatehouse: `%s`\n\n", b.version)
	}
	pinned := b.pinNote
	if b.pin.proxyCPU != "" {
		pinned = fmt.Sprintf("load generator and upstream on CPU %s, proxy under test on CPU %s (taskset)", b.pin.loadCPU, b.pin.proxyCPU)
	}
	p("Method: %d round(s), configurations interleaved within each round, %v warm-up each; "+
		"throughput: closed loop, %d keep-alive connections for %v; latency: open loop at %.0f req/s for %v, "+
		"measured from each request's scheduled send time; medians over rounds, ratios taken within a round. "+
		"Pinning: %s.\n\n", c.rounds, c.warmup, c.conns, c.duration, c.rate, c.duration, pinned)

	base := b.row("baseline")
	p("| configuration | req/s | proxy CPU µs/req | proxy CPU use | p50 ms | p99 ms | max ms | errors | req/s vs baseline | per core vs baseline | p99 vs baseline |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range b.rows {
		if len(r.rounds) == 0 {
			p("| %s | — | — | — | — | — | — | — | — | — | — |\n", r.name)
			continue
		}
		var errs uint64
		for _, m := range r.rounds {
			errs += m.errors
		}
		cpuNote := ""
		if r.id == "direct" {
			cpuNote = " (upstream)"
		}
		rr, per, p99 := "—", "—", "—"
		if r != base && r.id != "direct" {
			if v, ok := ratio(r, base, rpsRatio); ok {
				rr = fmt.Sprintf("%.2f", v)
			}
			if v, ok := ratio(r, base, perCore); ok {
				per = fmt.Sprintf("%.2f", v)
			}
			if v, ok := ratio(r, base, p99Ratio); ok {
				p99 = fmt.Sprintf("%.2f", v)
			}
		}
		p("| %s | %.0f | %.1f%s | %.0f%% | %s | %s | %s | %d | %s | %s | %s |\n", r.name,
			r.median(func(m measurement) float64 { return m.rps }),
			r.median(func(m measurement) float64 { return float64(m.cpuPerReq) / 1e3 }), cpuNote,
			100*r.median(func(m measurement) float64 { return m.cpuUtil }),
			ms(r.median(func(m measurement) float64 { return float64(m.p50) })),
			ms(r.median(func(m measurement) float64 { return float64(m.p99) })),
			ms(r.median(func(m measurement) float64 { return float64(m.max) })),
			errs, rr, per, p99)
	}
	p("\n")
	for _, r := range b.rows {
		if r.skip != "" {
			p("- %s: not measured: %s\n", r.name, r.skip)
		}
		for i, m := range r.rounds {
			if m.errors > 0 {
				p("- %s, round %d: %d errors, first: %s\n", r.name, i+1, m.errors, m.firstErr)
			}
		}
	}
	for _, n := range b.notes {
		p("- %s\n", n)
	}

	b.reportPaired(p)
	b.reportPeers(p)
	b.reportCluster(p)
	b.reportGC(p)

	p("\n### Memory and start-up\n\n")
	m := b.mem
	p("| measure | value |\n|---|---:|\n")
	if m.smallRSS > 0 {
		p("| RSS with %d keys, after restart | %s |\n", m.smallKeys, mib(m.smallRSS))
	}
	if m.largeRSS > 0 {
		p("| RSS with %s keys, after restart | %s |\n", thousands(m.largeKeys), mib(m.largeRSS))
	}
	if bpk, ok := m.bytesPerKey(); ok {
		p("| resident bytes per key | %.0f |\n", bpk)
	}
	if m.smallRSSAfter > 0 {
		p("| RSS with %d keys, after the load | %s |\n", m.smallKeys, mib(m.smallRSSAfter))
	}
	if m.largeRSSAfter > 0 {
		p("| RSS with %s keys, after the load | %s |\n", thousands(m.largeKeys), mib(m.largeRSSAfter))
	}
	if m.smallStart > 0 {
		p("| start-up with %d keys (exec to first keyed 200) | %v |\n", m.smallKeys, m.smallStart.Round(time.Millisecond))
	}
	if m.largeReady > 0 {
		p("| start-up with %s keys (exec to /health ok) | %v |\n", thousands(m.largeKeys), m.largeHealth.Round(time.Millisecond))
		p("| start-up with %s keys (exec to a 200 with the last key loaded) | %v |\n", thousands(m.largeKeys), m.largeReady.Round(time.Millisecond))
	}
	if m.seedRequests > 0 {
		p("| seeding %s keys through `POST /api/apikeys/_bulk` (%d requests) | %v |\n",
			thousands(m.largeKeys-m.smallKeys), m.seedRequests, m.seedTime.Round(100*time.Millisecond))
	}

	p("\n### Targets\n\n| target | measured | limit | result |\n|---|---:|---:|---|\n")
	for _, t := range b.checks() {
		res, val := "not run", "—"
		if t.have {
			val = t.value
			res = "pass"
			if !t.ok {
				res = "**miss**"
			}
		}
		p("| %s | %s | %s | %s |\n", t.name, val, t.limit, res)
	}
	p("\nTotal run time: %v.\n", time.Since(b.began).Round(time.Second))
	return w.String()
}

func (m memory) bytesPerKey() (float64, bool) {
	if m.smallRSS <= 0 || m.largeRSS <= 0 || m.largeKeys <= m.smallKeys {
		return 0, false
	}
	return float64(m.largeRSS-m.smallRSS) / float64(m.largeKeys-m.smallKeys), true
}

type check struct {
	name, value, limit string
	have, ok           bool
}

func (b *bench) checks() []check {
	var out []check
	atLeast := func(name string, a, bRow *row, f func(a, b measurement) float64, limit float64) {
		v, ok := ratio(a, bRow, f)
		out = append(out, check{name: name, value: fmt.Sprintf("%.2f", v), limit: fmt.Sprintf("≥ %.2f", limit), have: ok, ok: v >= limit})
	}
	atMost := func(name string, a, bRow *row, f func(a, b measurement) float64, limit float64, strict bool) {
		v, ok := ratio(a, bRow, f)
		pass := v <= limit
		lim := fmt.Sprintf("≤ %.2f", limit)
		if strict {
			pass, lim = v < limit, fmt.Sprintf("< %.2f", limit)
		}
		out = append(out, check{name: name, value: fmt.Sprintf("%.2f", v), limit: lim, have: ok, ok: pass})
	}
	base, basic, large := b.row("baseline"), b.row("basic"), b.row("large")
	keys := thousands(b.cfg.keys)
	atLeast("Basic key + quotas: req/s per proxy core, vs baseline", basic, base, perCore, 1.0)
	paired := func(name, a, bID string, limit float64) {
		v, ok := b.pairedRatio(a, bID)
		out = append(out, check{name: name, value: fmt.Sprintf("%.2f", v), limit: fmt.Sprintf("≤ %.2f", limit), have: ok, ok: v <= limit})
	}
	atMost(fmt.Sprintf("Basic key + quotas: p99 at %.0f req/s, vs baseline", b.cfg.rate), basic, base, p99Ratio, 1.3, false)
	paired(fmt.Sprintf("Basic key + quotas: p99 at %.0f req/s, vs baseline, measured together", b.cfg.rate), "basic", "baseline", 1.3)
	atLeast("Basic key + quotas: req/s per proxy core, vs Caddy (plain proxy)", basic, b.row("caddy"), perCore, 1.0)
	atLeast("Basic key + quotas: req/s per proxy core, vs nginx (key map + limit_req)", basic, b.row("nginx"), perCore, 0.40)
	atLeast(fmt.Sprintf("%s keys: req/s per proxy core, vs 10 keys", keys), large, basic, perCore, 0.95)
	atMost(fmt.Sprintf("%s keys: p99 at %.0f req/s, vs 10 keys", keys, b.cfg.rate), large, basic, p99Ratio, 1.3, false)
	paired(fmt.Sprintf("%s keys: p99 at %.0f req/s, vs 10 keys, measured together", keys, b.cfg.rate), "large", "basic", 1.3)
	{
		small, ns, ok1 := b.gc["small"].meanPause()
		big, nl, ok2 := b.gc["large"].meanPause()
		v := 0.0
		if ok1 && ok2 && small > 0 {
			v = float64(big) / float64(small)
		}
		out = append(out, check{name: fmt.Sprintf("%s keys: mean GC pause during the rounds, vs 10 keys", keys),
			value: fmt.Sprintf("%.2f (%.0f vs %.0f cycles)", v, nl, ns), limit: "≤ 1.20", have: ok1 && ok2 && small > 0, ok: v <= 1.2})
	}
	atLeast("HS256 JWT: req/s per proxy core, vs Basic key", b.row("jwt"), basic, perCore, 0.95)
	atLeast("one no-op plugin: req/s per proxy core, vs no plugin", b.row("plugin"), basic, perCore, 0.95)
	{
		noop, ok1 := b.inproc.value("BenchmarkNoopPlugin", "ns/op")
		none, ok2 := b.inproc.value("BenchmarkNoPlugin", "ns/op")
		// The no-op guest is called twice per request: handle_request and
		// handle_response.
		d := time.Duration((noop - none) / 2)
		out = append(out, check{name: "a guest call (in-process: (no-op plugin − none) / 2 calls per request)",
			value: d.Round(10 * time.Nanosecond).String(), limit: "≤ 2µs", have: ok1 && ok2, ok: d <= 2*time.Microsecond})
	}
	{
		gw, ok1 := b.inproc.value("BenchmarkGateway/basic", "allocs/op")
		bl, ok2 := b.inproc.value("BenchmarkGateway/baseline", "allocs/op")
		out = append(out, check{name: "allocations over the baseline, Basic key path (in-process)",
			value: fmt.Sprintf("%.0f", gw-bl), limit: "≤ 8", have: ok1 && ok2, ok: gw-bl <= 8})
	}
	atMost("refused 401: CPU per request, vs forwarding with a key", b.row("401"), basic, cpuRatio, 1, true)
	atMost("refused 429: CPU per request, vs forwarding with a key", b.row("429"), basic, cpuRatio, 1, true)

	out = append(out, b.clusterChecks()...)

	ran := false
	for _, r := range b.rows {
		ran = ran || len(r.rounds) > 0
	}
	n := b.totalErrors()
	out = append(out, check{name: "errors, all rows", value: fmt.Sprint(n), limit: "0", have: ran, ok: n == 0})
	bpk, ok := b.mem.bytesPerKey()
	out = append(out, check{name: "resident memory per key (contract)", value: fmt.Sprintf("%.0f B", bpk), limit: "≤ 512 B", have: ok, ok: bpk <= 512})
	st := b.mem.largeReady
	out = append(out, check{name: fmt.Sprintf("start-up with %s keys (contract)", thousands(smallKeys+b.cfg.keys)),
		value: st.Round(time.Millisecond).String(), limit: "≤ 5s", have: st > 0, ok: st <= 5*time.Second})
	return out
}

// machine describes where the numbers come from.
func machine() string {
	model := "unknown CPU"
	cpus := 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			k, v, _ := strings.Cut(line, ":")
			switch strings.TrimSpace(k) {
			case "model name":
				model = strings.TrimSpace(v)
			case "processor":
				cpus++
			}
		}
	}
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	memTotal := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(v), &kb)
				memTotal = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs online%s, %s, %s %s/%s", model, cpus, memTotal, kernel, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// reportPeers compares Gatehouse's rows with each peer, per proxy core:
// above 1, Gatehouse does more with one core.
func (b *bench) reportPeers(p func(string, ...any)) {
	var ran []*row
	for _, r := range b.rows {
		if r.peer && len(r.rounds) > 0 {
			ran = append(ran, r)
		}
	}
	if len(ran) == 0 {
		return
	}
	public, basic := b.row("public"), b.row("basic")
	p("\n### Gatehouse per proxy core, against each peer\n\n")
	p("Requests per second per proxy core of the Gatehouse row, divided by the peer's (within each round; median).\n\n")
	p("| peer | peer CPU µs/req | gatehouse, public path | gatehouse, Basic key + quotas |\n|---|---:|---:|---:|\n")
	f := func(a, r *row) string {
		if v, ok := ratio(a, r, perCore); ok {
			return fmt.Sprintf("%.2f", v)
		}
		return "—"
	}
	for _, r := range ran {
		p("| %s | %.1f | %s | %s |\n", r.name, r.median(func(m measurement) float64 { return float64(m.cpuPerReq) / 1e3 }),
			f(public, r), f(basic, r))
	}
}

// reportGC shows each gateway's stop-the-world GC pauses during the rounds
// (from its /metrics) and, with --go-bench, the in-process GC cycle of the
// key index alone.
func (b *bench) reportGC(p func(string, ...any)) {
	small, ns, ok1 := b.gc["small"].meanPause()
	large, nl, ok2 := b.gc["large"].meanPause()
	_, inproc := b.inproc["BenchmarkGCCycle/keys=10"]
	if !ok1 && !ok2 && !inproc {
		return
	}
	p("\n### Garbage collector\n\n| measure | 10 keys | %s keys |\n|---|---:|---:|\n", thousands(b.mem.largeKeys))
	v := func(ok bool, s string) string {
		if ok {
			return s
		}
		return "—"
	}
	if ok1 || ok2 {
		p("| gateway: GC cycles during the rounds | %s | %s |\n", v(ok1, fmt.Sprintf("%.0f", ns)), v(ok2, fmt.Sprintf("%.0f", nl)))
		p("| gateway: mean stop-the-world pause (`go_gc_duration_seconds`) | %s | %s |\n",
			v(ok1, small.Round(100*time.Nanosecond).String()), v(ok2, large.Round(100*time.Nanosecond).String()))
	}
	for _, m := range []struct{ unit, name string }{
		{"gc-cpu-µs/cycle", "key index alone, in-process: GC CPU per forced cycle (µs)"},
		{"pause-µs/stw", "key index alone, in-process: mean stop-the-world pause (µs)"},
	} {
		a, okA := b.inproc.value("BenchmarkGCCycle/keys=10", m.unit)
		c, okC := b.inproc.value("BenchmarkGCCycle/keys=1000000", m.unit)
		if okA || okC {
			p("| %s | %s | %s (1,000,000 keys) |\n", m.name, v(okA, fmt.Sprintf("%.0f", a)), v(okC, fmt.Sprintf("%.0f", c)))
		}
	}
}

// reportPaired shows the latency runs of two rows at the same time.
func (b *bench) reportPaired(p func(string, ...any)) {
	var ran []*pairedRun
	for _, r := range b.paired {
		if r != nil && len(r.rounds) > 0 {
			ran = append(ran, r)
		}
	}
	if len(ran) == 0 {
		return
	}
	p("\n### Paired latency\n\n")
	p("Two open loops at %.0f req/s each, at the same time, to two proxies pinned to the same CPU: "+
		"a stall of the machine delays both, so the ratio of their p99 (within a round; median) leaves out most of the machine's own noise; "+
		"when that noise is far larger than the proxies' difference, the ratio tends to 1.\n\n", b.cfg.rate)
	p("| rows | p99 ms, first (median) | p99 ms, second (median) | ratio |\n|---|---:|---:|---:|\n")
	for _, r := range ran {
		var xa, xb []float64
		for _, v := range r.rounds {
			xa, xb = append(xa, float64(v[0])), append(xb, float64(v[1]))
		}
		v, _ := b.pairedRatio(r.a, r.b)
		p("| %s / %s | %s | %s | %.2f |\n", b.row(r.a).name, b.row(r.b).name, ms(median(xa)), ms(median(xb)), v)
	}
}
