package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseCounter(t *testing.T) {
	t.Parallel()
	text := "# HELP gatehouse_redis_calls_total Calls this node made to Redis.\n" +
		"# TYPE gatehouse_redis_calls_total counter\n" +
		"gatehouse_redis_calls_total_other 7\n" +
		"gatehouse_redis_calls_total 1234\n" +
		"gatehouse_redis_up 1\n"
	if v, err := parseCounter(text, redisCallsMetric); err != nil || v != 1234 {
		t.Errorf("parseCounter = %v, %v; want 1234", v, err)
	}
	if _, err := parseCounter("gatehouse_redis_up 1\n", redisCallsMetric); err == nil {
		t.Error("a /metrics without the counter: no error")
	}
	if _, err := parseCounter("gatehouse_redis_calls_total x\n", redisCallsMetric); err == nil {
		t.Error("a counter that is not a number: no error")
	}
}

func TestRedisCallsPer1000(t *testing.T) {
	t.Parallel()
	w := &redisWindow{calls: []float64{30, 5, 2}, served: 10_000}
	if v, ok := w.per1000(); !ok || v != 3 {
		t.Errorf("per1000 = %v (%v), want 3: the loaded node's 30 calls for 10,000 requests", v, ok)
	}
	if v, ok := w.per1000All(); !ok || v != 3.7 {
		t.Errorf("per1000All = %v (%v), want 3.7: every node's 37 calls", v, ok)
	}
	if _, ok := (&redisWindow{calls: []float64{3}}).per1000(); ok {
		t.Error("a window that served nothing reported a rate")
	}
	r := &row{rounds: []measurement{
		{redis: &redisWindow{calls: []float64{10}, served: 10_000}},
		{}, // a round whose /metrics could not be read
		{redis: &redisWindow{calls: []float64{50}, served: 10_000}},
		{redis: &redisWindow{calls: []float64{20}, served: 10_000}},
	}}
	if v, ok := r.redisMedian((*redisWindow).per1000); !ok || v != 2 {
		t.Errorf("median over rounds = %v (%v), want 2 (of 1, 5, 2)", v, ok)
	}
	if _, ok := (&row{rounds: []measurement{{}}}).redisMedian((*redisWindow).per1000); ok {
		t.Error("a row without Redis windows reported a rate")
	}
}

// quotaServer admits admit calls between all its listeners, then answers
// 429; the first fail calls answer 502.
type quotaServer struct {
	mu          sync.Mutex
	admit, fail int
}

func (s *quotaServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.fail > 0:
		s.fail--
		w.WriteHeader(http.StatusBadGateway)
	case s.admit > 0:
		s.admit--
	default:
		w.WriteHeader(http.StatusTooManyRequests)
	}
}

func TestRaceCountsNon429AnswersOverTheQuota(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name              string
		admit, fail       int
		wantOK, wantOther uint64
		wantOver          int64
	}{
		{"exact", 1000, 0, 1000, 0, 0},
		{"over-admits", 1003, 0, 1003, 0, 3},
		{"under-admits", 990, 0, 990, 0, -10},
		{"errors count as non-429", 1000, 2, 1000, 2, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := &quotaServer{admit: c.admit, fail: c.fail}
			var targets []target
			for range 3 { // three "nodes" sharing one count
				srv := httptest.NewServer(h)
				t.Cleanup(srv.Close)
				targets = append(targets, target{addr: strings.TrimPrefix(srv.URL, "http://"), path: "/", want: 200})
			}
			res := race(context.Background(), targets, 48, 100)
			if res.admitted != c.wantOK || res.other != c.wantOther || res.refused != 48 || res.nodes != 3 {
				t.Errorf("200 %d, other %d, 429 %d, nodes %d; want %d, %d, 48, 3",
					res.admitted, res.other, res.refused, res.nodes, c.wantOK, c.wantOther)
			}
			if got := res.overAdmission(1000); got != c.wantOver {
				t.Errorf("overAdmission = %d, want %d", got, c.wantOver)
			}
			if c.wantOther > 0 && !strings.Contains(res.firstErr, "502") {
				t.Errorf("firstErr = %q, want the 502", res.firstErr)
			}
		})
	}
}

func TestRaceClientGivesUpAfterMaxOther(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	res := race(context.Background(), []target{{addr: strings.TrimPrefix(srv.URL, "http://"), path: "/", want: 200}}, 4, 5)
	if res.other != 20 || res.refused != 0 || res.admitted != 0 {
		t.Errorf("other %d, 429 %d, 200 %d; want 20 (4 clients × 5), 0, 0", res.other, res.refused, res.admitted)
	}
}

// TestStartRedis starts the real redis-server as the cluster rows do and
// kills it by its PID.
func TestStartRedis(t *testing.T) {
	t.Parallel()
	c, sock, err := startRedis(context.Background(), t.TempDir(), pinning{})
	if err != nil {
		t.Fatal(err)
	}
	if err := redisPing(sock); err != nil {
		t.Errorf("PING after start: %v", err)
	}
	if _, err := c.cpuTime(); err != nil {
		t.Errorf("redis-server's CPU time: %v", err)
	}
	c.kill()
	if !c.exited() {
		t.Error("redis-server still running after kill")
	}
	if err := redisPing(sock); err == nil {
		t.Error("PING answered after kill")
	}
}

func TestStartRedisWithoutRedisServerFailsLoudly(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, _, err := startRedis(context.Background(), t.TempDir(), pinning{})
	if err == nil || !strings.Contains(err.Error(), "apt-get install redis-server") {
		t.Errorf("err = %v, want one naming the package to install", err)
	}
}

// clusterBench is a bench whose rows and in-process results are given.
func clusterBench(worker, leader []time.Duration, calls []float64, race *raceResult, snapshot float64) *bench {
	us := time.Microsecond
	rounds := func(cpu []time.Duration, calls float64) []measurement {
		var ms []measurement
		for _, c := range cpu {
			ms = append(ms, measurement{rps: 10_000, cpuPerReq: c, redis: &redisWindow{calls: []float64{calls, 3}, served: 60_000}})
		}
		return ms
	}
	basic := &row{id: "basic", name: "gatehouse, Basic key + quotas"}
	for range worker {
		basic.rounds = append(basic.rounds, measurement{rps: 11_000, cpuPerReq: 60 * us})
	}
	b := &bench{cfg: config{warmup: time.Second}, cl: &cluster{race: race}, inproc: goBench{}, rows: []*row{
		basic,
		{id: "cluster-worker", name: "cluster worker, Basic key + quotas", cluster: true, rounds: rounds(worker, calls[0])},
		{id: "cluster-leader", name: "cluster leader, Basic key + quotas", cluster: true, rounds: rounds(leader, calls[1])},
	}}
	if snapshot > 0 {
		b.inproc["BenchmarkClusterSnapshot1M"] = map[string]float64{"s/snapshot": snapshot}
	}
	return b
}

func TestClusterChecks(t *testing.T) {
	t.Parallel()
	us := time.Microsecond
	pass := clusterBench([]time.Duration{62 * us, 64 * us, 63 * us}, []time.Duration{66 * us, 65 * us, 67 * us},
		[]float64{120, 600}, &raceResult{nodes: 3, admitted: 1000, refused: 48}, 7.5)
	want := map[string][2]string{ // name prefix: value, result
		"cluster worker, Basic key + quotas: req/s per proxy core": {"0.95", "pass"},  // 60/63
		"cluster leader, Basic key + quotas: req/s per proxy core": {"0.91", "pass"},  // 60/66
		"cluster worker: Redis calls per 1,000":                    {"2.00", "pass"},  // 120 / 60,000
		"cluster leader: Redis calls per 1,000":                    {"10.00", "pass"}, // 600 / 60,000
		"cluster: over-admission":                                  {"0", "pass"},     //
		"cluster: snapshot of 1,000,000 keys":                      {"7.50s", "pass"}, //
	}
	assertChecks(t, pass.clusterChecks(), want)

	miss := clusterBench([]time.Duration{70 * us}, []time.Duration{80 * us}, []float64{661, 60},
		&raceResult{nodes: 3, admitted: 1002, other: 1, refused: 48}, 24.5)
	assertChecks(t, miss.clusterChecks(), map[string][2]string{
		"cluster worker, Basic key + quotas: req/s per proxy core": {"0.86", "miss"},
		"cluster leader, Basic key + quotas: req/s per proxy core": {"0.75", "miss"},
		"cluster worker: Redis calls per 1,000":                    {"11.02", "miss"},
		"cluster: over-admission":                                  {"3", "miss"},
		"cluster: snapshot of 1,000,000 keys":                      {"24.50s", "miss"},
	})
	if n := miss.totalErrors(); n != 1 {
		t.Errorf("totalErrors = %d, want the race's 1 other answer", n)
	}

	// Redis missing: the rows did not run, the targets say so.
	none := &bench{cl: &cluster{skip: "redis-server is required"}, inproc: goBench{}}
	for _, c := range none.clusterChecks() {
		if c.have {
			t.Errorf("%s: have a value without a cluster", c.name)
		}
	}
}

func assertChecks(t *testing.T, cs []check, want map[string][2]string) {
	t.Helper()
	for prefix, w := range want {
		found := false
		for _, c := range cs {
			if !strings.HasPrefix(c.name, prefix) {
				continue
			}
			found = true
			res := "miss"
			if c.ok {
				res = "pass"
			}
			if !c.have || c.value != w[0] || res != w[1] {
				t.Errorf("%s: value %q have %v result %s; want %q, %s", c.name, c.value, c.have, res, w[0], w[1])
			}
		}
		if !found {
			t.Errorf("no check named %q…", prefix)
		}
	}
}

func TestReportShowsTheClusterRows(t *testing.T) {
	t.Parallel()
	us := time.Microsecond
	b := clusterBench([]time.Duration{63 * us}, []time.Duration{66 * us}, []float64{120, 600},
		&raceResult{nodes: 3, admitted: 1000, refused: 48, leader: 1000, elapsed: 150 * time.Millisecond}, 7.5)
	b.began = time.Now()
	out := b.report()
	for _, s := range []string{
		"### Cluster: a leader and two workers on one Redis",
		"| cluster worker, Basic key + quotas | 10000 | 63.0 | 0.95 | 2.00 | 2.05 | 0.00 |",
		"| cluster leader, Basic key + quotas | 10000 | 66.0 | 0.91 | 10.00 | 10.05 | 0.00 |",
		"1000 answered 200, 0 other (none), 48 clients refused",
		"over-admission (non-429 answers − 1,000) = **0**",
		"`currentCallsPerDay` afterwards: 1000",
		"Snapshot (in-process `BenchmarkClusterSnapshot1M`",
		"7.50 s from the worker's start",
		"| cluster: over-admission, 48 clients racing on dailyQuota 1,000 through 3 nodes | 0 | 0 | pass |",
		"| cluster: snapshot of 1,000,000 keys, fresh worker to every key served (contract, in-process) | 7.50s | ≤ 10s | pass |",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("report lacks %q", s)
		}
	}
	if t.Failed() {
		os.Stderr.WriteString(out)
	}
}
