package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The cluster rows (contract section 11): a leader and two workers, real
// gatehouse binaries, on one redis-server that the benchmark starts on a
// unix socket in its temp dir and kills by its PID at the end.
const (
	clusterToken     = "bench-cluster-token-0123456789abcdefghijklmnopqrstuvwxyz"
	raceKeyID        = "bench-race"
	raceSecret       = "bench-race-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"
	raceQuota        = 1000 // the racing key's dailyQuota
	raceClients      = 48
	redisCallsMetric = "gatehouse_redis_calls_total"
)

type cluster struct {
	redis   *child
	sock    string
	leader  *gatehouse
	workers []*gatehouse
	skip    string // why the cluster rows did not run
	race    *raceResult
}

// nodes is the leader and the workers that started, in that order.
func (c *cluster) nodes() []*gatehouse {
	var out []*gatehouse
	for _, g := range append([]*gatehouse{c.leader}, c.workers...) {
		if g != nil {
			out = append(out, g)
		}
	}
	return out
}

// stop ends the workers, then the leader (they give their reservations back
// to Redis), then kills redis-server by its PID.
func (c *cluster) stop() []error {
	var errs []error
	ns := c.nodes()
	for i := len(ns) - 1; i >= 0; i-- {
		if err := ns[i].stop(); err != nil {
			errs = append(errs, err)
		}
	}
	c.redis.kill()
	return errs
}

// startRedis runs redis-server on a unix socket under dir, as the README's
// "Running several nodes" does (every write appended and fsynced), and
// waits until it answers PING.
func startRedis(ctx context.Context, dir string, pin pinning) (*child, string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", fmt.Errorf("redis-server is required for the cluster rows (apt-get install redis-server): %w", err)
	}
	rdir := filepath.Join(dir, "redis")
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return nil, "", fmt.Errorf("redis dir: %w", err)
	}
	sock := filepath.Join(rdir, "redis.sock")
	// Redis shares the load generator's CPU: the proxy's CPU is the
	// measured node's alone.
	cmd := pin.command(pin.loadCPU, bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--dir", rdir, "--save", "", "--appendonly", "yes", "--appendfsync", "always")
	c, err := startChild("redis-server", cmd, nil)
	if err != nil {
		return nil, "", err
	}
	if err := waitReady(ctx, c, 20*time.Second, func() bool { return redisPing(sock) == nil }); err != nil {
		c.kill()
		return nil, "", fmt.Errorf("redis-server: %w", err)
	}
	return c, sock, nil
}

// redisPing sends PING in the inline protocol and wants +PONG.
func redisPing(sock string) error {
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// startCluster starts Redis, a leader seeded like the small instance (plus
// the racing key) and two workers, and waits until both workers serve the
// leader's revision.
func (b *bench) startCluster(ctx context.Context) {
	b.cl = &cluster{}
	if b.small == nil {
		b.cl.skip = "gatehouse did not start"
		return
	}
	fail := func(err error) {
		b.cl.skip = "the cluster did not start: " + err.Error()
		b.fail("cluster: %v", err)
	}
	redis, sock, err := startRedis(ctx, b.dir, b.pin)
	if err != nil {
		fail(err)
		return
	}
	b.cl.redis, b.cl.sock = redis, sock
	node := func(name, role string, args ...string) (*gatehouse, error) {
		g, err := newGatehouse("gatehouse-"+name, b.cfg.gatehouse, b.dir, b.pin)
		if err != nil {
			return nil, err
		}
		g.args = append([]string{"--role", role, "--redis", "unix://" + sock, "--node-name", name}, args...)
		g.env = []string{"GATEHOUSE_CLUSTER_TOKEN=" + clusterToken}
		return g, nil
	}
	leader, err := node("leader", "leader")
	if err == nil {
		b.cl.leader = leader
		err = leader.start(ctx, nil)
	}
	if err == nil {
		err = leader.seed(ctx, b.upstreamAddr, nil)
	}
	if err == nil {
		err = leader.post(ctx, "/api/groups/"+groupID+"/apikeys", obj{"clientId": raceKeyID, "clientSecret": raceSecret,
			"clientName": "bench race", "dailyQuota": raceQuota}, nil)
	}
	var rev int64
	if err == nil {
		rev, err = leader.revision(ctx)
	}
	for _, name := range []string{"worker1", "worker2"} {
		if err != nil {
			break
		}
		var w *gatehouse
		if w, err = node(name, "worker", "--leader", "http://"+leader.adminAddr); err != nil {
			break
		}
		b.cl.workers = append(b.cl.workers, w)
		if err = w.start(ctx, nil); err == nil {
			err = w.waitRevision(ctx, rev)
		}
	}
	if err != nil {
		fail(err)
		return
	}
	b.progress("cluster: redis-server on %s, leader and %d workers at revision %d", sock, len(b.cl.workers), rev)
}

// health is what a node's /health answers.
type health struct {
	Role     string `json:"role"`
	Revision int64  `json:"revision"`
	Leader   string `json:"leader"`
	Redis    string `json:"redis"`
}

func (g *gatehouse) health(ctx context.Context) (health, error) {
	var h health
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.adminAddr+"/health", nil)
	if err != nil {
		return h, err
	}
	resp, err := g.admin.Do(req)
	if err != nil {
		return h, fmt.Errorf("%s /health: %w", g.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("%s /health: %s", g.name, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return h, fmt.Errorf("%s /health: %w", g.name, err)
	}
	return h, nil
}

func (g *gatehouse) revision(ctx context.Context) (int64, error) {
	h, err := g.health(ctx)
	return h.Revision, err
}

// waitRevision waits until the worker serves rev (or later) with both its
// links up.
func (g *gatehouse) waitRevision(ctx context.Context, rev int64) error {
	var last health
	err := waitReady(ctx, g.proc, 60*time.Second, func() bool {
		h, err := g.health(ctx)
		last = h
		return err == nil && h.Revision >= rev && h.Leader == "connected" && h.Redis == "connected"
	})
	if err != nil {
		return fmt.Errorf("%s at revision %d (want %d), leader %q, redis %q: %w", g.name, last.Revision, rev, last.Leader, last.Redis, err)
	}
	return nil
}

// clusterRows are the Basic-key row through the worker and through the
// leader: the same request, key and quotas as the standalone row.
func (b *bench) clusterRows(h http.Header) []*row {
	mk := func(id, name string, pick func(*cluster) []*gatehouse) *row {
		r := &row{id: id, name: name, cluster: true, tgt: target{host: mainHost, path: "/api/hello", header: h, want: 200}}
		if b.cl == nil || b.cl.skip != "" {
			r.skip = "no cluster"
			if b.cl != nil {
				r.skip = b.cl.skip
			}
			return r
		}
		nodes := pick(b.cl)
		r.tgt.addr = nodes[0].proxyAddr
		r.proc = func() *child { return nodes[0].proc }
		r.redisNodes = nodes
		return r
	}
	return []*row{
		mk("cluster-worker", "cluster worker, Basic key + quotas", func(c *cluster) []*gatehouse {
			return append([]*gatehouse{c.workers[0], c.leader}, c.workers[1:]...)
		}),
		mk("cluster-leader", "cluster leader, Basic key + quotas", (*cluster).nodes),
	}
}

// redisCalls reads every node's gatehouse_redis_calls_total, in order.
func redisCalls(ctx context.Context, nodes []*gatehouse) ([]float64, error) {
	out := make([]float64, len(nodes))
	for i, g := range nodes {
		text, err := g.metrics(ctx)
		if err != nil {
			return nil, err
		}
		if out[i], err = parseCounter(text, redisCallsMetric); err != nil {
			return nil, fmt.Errorf("%s: %w", g.name, err)
		}
	}
	return out, nil
}

// parseCounter finds an unlabelled sample in Prometheus text.
func parseCounter(text, name string) (float64, error) {
	for line := range strings.Lines(text) {
		n, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || n != name {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", name, err)
		}
		return f, nil
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

// redisWindow is the Redis side of one cluster row's measurement: each
// node's Redis calls during it (the measured node first), the requests it
// served (throughput and latency runs), and redis-server's CPU.
type redisWindow struct {
	calls    []float64
	served   uint64
	redisCPU time.Duration
}

// per1000 is the measured node's Redis calls per 1,000 requests served.
func (w *redisWindow) per1000() (float64, bool) {
	if w == nil || w.served == 0 || len(w.calls) == 0 {
		return 0, false
	}
	return w.calls[0] * 1000 / float64(w.served), true
}

// per1000All counts the calls of every node, the idle ones included.
func (w *redisWindow) per1000All() (float64, bool) {
	if w == nil || w.served == 0 || len(w.calls) == 0 {
		return 0, false
	}
	var n float64
	for _, c := range w.calls {
		n += c
	}
	return n * 1000 / float64(w.served), true
}

// redisMedian is the median over r's rounds of f, ok=false when no round
// has a Redis window.
func (r *row) redisMedian(f func(*redisWindow) (float64, bool)) (float64, bool) {
	if r == nil {
		return 0, false
	}
	var xs []float64
	for _, m := range r.rounds {
		if v, ok := f(m.redis); ok {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 {
		return 0, false
	}
	return median(xs), true
}

// raceResult is what the racing clients saw.
type raceResult struct {
	nodes    int
	admitted uint64 // 200
	refused  uint64 // 429
	other    uint64 // any other status, or a transport error
	firstErr string
	elapsed  time.Duration
	leader   int64 // the leader's cluster-wide count of the day after the race; -1 unknown
}

// overAdmission is the non-429 answers beyond the quota (contract: at most
// N non-429 answers, exactly N while every node and Redis are up).
func (r *raceResult) overAdmission(quota int64) int64 {
	return int64(r.admitted+r.other) - quota
}

// race sends clients concurrent clients, spread round the targets, each
// sending one request after another until it gets a 429; a client that
// gets maxOther other answers gives up.
func race(ctx context.Context, targets []target, clients, maxOther int) *raceResult {
	res := &raceResult{nodes: len(targets), leader: -1}
	var ok, refused, other atomic.Uint64
	var sample errSampler
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		t := targets[i%len(targets)]
		wg.Go(func() {
			tr := newClientTransport(1)
			defer tr.CloseIdleConnections()
			req := t.newRequest()
			for bad := 0; bad < maxOther && ctx.Err() == nil; {
				status, err := do(tr, req)
				switch {
				case err == nil && status == http.StatusOK:
					ok.Add(1)
				case err == nil && status == http.StatusTooManyRequests:
					refused.Add(1)
					return
				default:
					other.Add(1)
					sample.note(status, err)
					bad++
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.admitted, res.refused, res.other, res.firstErr = ok.Load(), refused.Load(), other.Load(), sample.msg
	return res
}

// runRace races raceClients clients on the racing key through the leader
// and both workers, then asks the leader for the key's count of the day.
func (b *bench) runRace(ctx context.Context) {
	if b.cl == nil || b.cl.skip != "" || ctx.Err() != nil {
		return
	}
	var targets []target
	for _, g := range b.cl.nodes() {
		targets = append(targets, target{addr: g.proxyAddr, host: mainHost, path: "/api/hello",
			header: http.Header{"Authorization": {basicAuth(raceKeyID, raceSecret)}}, want: 200})
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res := race(rctx, targets, raceClients, 100)
	if rctx.Err() != nil && ctx.Err() == nil {
		b.fail("cluster race: not every client got a 429 within 2 minutes")
	}
	var u struct {
		CurrentCallsPerDay int64 `json:"currentCallsPerDay"`
	}
	if err := b.cl.leader.api(ctx, http.MethodGet, "/api/apikeys/"+raceKeyID+"/quotas", "", nil, &u); err != nil {
		b.progress("cluster race: the leader's count: %v", err)
	} else {
		res.leader = u.CurrentCallsPerDay
	}
	b.cl.race = res
	b.progress("cluster race: %d clients over %d nodes, dailyQuota %d: %d × 200, %d × 429, %d other, in %v; leader counts %d",
		raceClients, res.nodes, raceQuota, res.admitted, res.refused, res.other, res.elapsed.Round(time.Millisecond), res.leader)
}

// reportCluster is the cluster section: each cluster row against the
// standalone Basic-key row, Redis calls per 1,000 requests, the race, and
// the in-process snapshot benchmark.
func (b *bench) reportCluster(p func(string, ...any)) {
	if b.cl == nil {
		return
	}
	p("\n### Cluster: a leader and two workers on one Redis\n\n")
	if b.cl.skip != "" {
		p("Not measured: %s.\n", b.cl.skip)
	} else {
		p("Real `bin/gatehouse` processes, `--role leader` and two `--role worker`, on one `redis-server` (unix socket, "+
			"`appendfsync always`) pinned with the load generator; the nodes on the proxy CPU. Each row loads one node's "+
			"gateway listener with the standalone row's request (Basic key, throttling, daily and monthly quotas on and far "+
			"from their limits), interleaved with the other rows in every round, after %v of load to reach steady state. "+
			"Redis calls: `%s` of each node, read before and after the row's throughput and latency runs, per 1,000 requests "+
			"the loaded node served; \"all nodes\" adds the idle nodes' calls in the same window.\n\n", b.cfg.warmup, redisCallsMetric)
		p("| row | req/s | proxy CPU µs/req | per core vs standalone | Redis calls / 1,000 req, this node | Redis calls / 1,000 req, all nodes | redis-server CPU µs/req |\n")
		p("|---|---:|---:|---:|---:|---:|---:|\n")
		basic := b.row("basic")
		for _, r := range b.rows {
			if !r.cluster {
				continue
			}
			if len(r.rounds) == 0 {
				p("| %s | — | — | — | — | — | — |\n", r.name)
				continue
			}
			f := func(v float64, ok bool, format string) string {
				if !ok {
					return "—"
				}
				return fmt.Sprintf(format, v)
			}
			per, okPer := ratio(r, basic, perCore)
			own, okOwn := r.redisMedian((*redisWindow).per1000)
			all, okAll := r.redisMedian((*redisWindow).per1000All)
			rcpu, okCPU := r.redisMedian(func(w *redisWindow) (float64, bool) {
				if w == nil || w.served == 0 {
					return 0, false
				}
				return float64(w.redisCPU) / 1e3 / float64(w.served), true
			})
			p("| %s | %.0f | %.1f | %s | %s | %s | %s |\n", r.name,
				r.median(func(m measurement) float64 { return m.rps }),
				r.median(func(m measurement) float64 { return float64(m.cpuPerReq) / 1e3 }),
				f(per, okPer, "%.2f"), f(own, okOwn, "%.2f"), f(all, okAll, "%.2f"), f(rcpu, okCPU, "%.2f"))
		}
		p("\n")
		if rr := b.cl.race; rr != nil {
			leader := "unknown"
			if rr.leader >= 0 {
				leader = strconv.FormatInt(rr.leader, 10)
			}
			p("Race: %d clients, spread over the leader and both workers (%d nodes), on a fresh key of `dailyQuota` %s, "+
				"each sending one request after another until it got a 429: %d answered 200, %d other (%s), "+
				"%d clients refused, in %v; over-admission (non-429 answers − %s) = **%d**; the leader's "+
				"cluster-wide `currentCallsPerDay` afterwards: %s.\n",
				raceClients, rr.nodes, thousands(raceQuota), rr.admitted, rr.other, orNone(rr.firstErr), rr.refused,
				rr.elapsed.Round(time.Millisecond), thousands(raceQuota), rr.overAdmission(raceQuota), leader)
		}
	}
	if s, ok := b.inproc.value("BenchmarkClusterSnapshot1M", "s/snapshot"); ok {
		p("\nSnapshot (in-process `BenchmarkClusterSnapshot1M`, a leader with 1,000,000 keys and a fresh worker on one "+
			"redis-server): %.2f s from the worker's start until it serves the leader's revision and every key.\n", s)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return "first: " + s
}

// clusterChecks are the cluster rows' targets (issue 11, contract 11).
func (b *bench) clusterChecks() []check {
	var out []check
	basic := b.row("basic")
	for _, node := range []string{"worker", "leader"} {
		v, ok := ratio(b.row("cluster-"+node), basic, perCore)
		out = append(out, check{name: fmt.Sprintf("cluster %s, Basic key + quotas: req/s per proxy core, vs standalone", node),
			value: fmt.Sprintf("%.2f", v), limit: "≥ 0.90", have: ok, ok: v >= 0.90})
	}
	for _, node := range []string{"worker", "leader"} {
		v, ok := b.row("cluster-" + node).redisMedian((*redisWindow).per1000)
		out = append(out, check{name: fmt.Sprintf("cluster %s: Redis calls per 1,000 requests at steady state", node),
			value: fmt.Sprintf("%.2f", v), limit: "≤ 10", have: ok, ok: v <= 10})
	}
	{
		var v int64
		rr := b.cl.raceOrNil()
		if rr != nil {
			v = rr.overAdmission(raceQuota)
		}
		nodes := 3
		if rr != nil {
			nodes = rr.nodes
		}
		out = append(out, check{name: fmt.Sprintf("cluster: over-admission, %d clients racing on dailyQuota %s through %d nodes",
			raceClients, thousands(raceQuota), nodes), value: strconv.FormatInt(v, 10), limit: "0", have: rr != nil, ok: v == 0})
	}
	s, ok := b.inproc.value("BenchmarkClusterSnapshot1M", "s/snapshot")
	out = append(out, check{name: "cluster: snapshot of 1,000,000 keys, fresh worker to every key served (contract, in-process)",
		value: fmt.Sprintf("%.2fs", s), limit: "≤ 10s", have: ok, ok: s <= 10})
	return out
}

func (c *cluster) raceOrNil() *raceResult {
	if c == nil {
		return nil
	}
	return c.race
}
