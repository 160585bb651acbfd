package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseCPUList(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]int{
		"0":       {0},
		"0-1":     {0, 1},
		"2-3,6":   {2, 3, 6},
		"0,4-5,7": {0, 4, 5, 7},
		"":        nil,
		"x":       nil,
	} {
		if got := parseCPUList(in); !slices.Equal(got, want) {
			t.Errorf("parseCPUList(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestQuickKeepsExplicitFlags(t *testing.T) {
	t.Parallel()
	c, err := parseFlags([]string{"--quick", "--rounds", "2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.rounds != 2 || c.duration != 300*time.Millisecond || c.keys != 20_000 || c.rate != 200 {
		t.Errorf("quick with --rounds 2: rounds %d duration %v keys %d rate %v; want 2, 300ms, 20000, 200",
			c.rounds, c.duration, c.keys, c.rate)
	}
	if _, err := parseFlags([]string{"--rounds", "0"}); err != errUsage {
		t.Errorf("--rounds 0: err %v, want errUsage", err)
	}
}

func TestRatiosAreTakenWithinARound(t *testing.T) {
	t.Parallel()
	// Round 2 ran on a slower machine state: both rows slowed alike, so the
	// per-round ratio stays 0.9 although the medians of each row would mix rounds.
	base := &row{rounds: []measurement{{cpuPerReq: 90 * time.Microsecond}, {cpuPerReq: 180 * time.Microsecond}, {cpuPerReq: 95 * time.Microsecond}}}
	gw := &row{rounds: []measurement{{cpuPerReq: 100 * time.Microsecond}, {cpuPerReq: 200 * time.Microsecond}, {cpuPerReq: 105 * time.Microsecond}}}
	v, ok := ratio(gw, base, perCore)
	if !ok || v < 0.899 || v > 0.906 {
		t.Errorf("per-core ratio = %v (%v), want about 0.90", v, ok)
	}
	if _, ok := ratio(gw, &row{}, perCore); ok {
		t.Error("ratio against a row that never ran reported a value")
	}
}

func TestParseBenchLine(t *testing.T) {
	t.Parallel()
	name, vals, ok := parseBenchLine("BenchmarkGateway/basic-2   \t    5000\t     59123 ns/op\t    9876 B/op\t     112 allocs/op")
	if !ok || name != "BenchmarkGateway/basic" || vals["ns/op"] != 59123 || vals["allocs/op"] != 112 || vals["B/op"] != 9876 {
		t.Errorf("got %q %v %v", name, vals, ok)
	}
	name, vals, ok = parseBenchLine("BenchmarkGCCycle/keys=1000000-2  50  4637982 ns/op  645.3 gc-cpu-µs/cycle  1311 max-pause-µs")
	if !ok || name != "BenchmarkGCCycle/keys=1000000" || vals["gc-cpu-µs/cycle"] != 645.3 {
		t.Errorf("got %q %v %v", name, vals, ok)
	}
	for _, line := range []string{"PASS", "ok  \tgatehouse/server\t3.1s", "BenchmarkX", "goos: linux"} {
		if _, _, ok := parseBenchLine(line); ok {
			t.Errorf("%q parsed as a result", line)
		}
	}
}

func TestParseGCPauses(t *testing.T) {
	t.Parallel()
	text := "# HELP go_gc_duration_seconds x\ngo_gc_duration_seconds{quantile=\"0.5\"} 4e-05\ngo_gc_duration_seconds_sum 0.0123\ngo_gc_duration_seconds_count 41\n"
	s, err := parseGCPauses(text)
	if err != nil || s.sum != 0.0123 || s.count != 41 {
		t.Errorf("got %+v, %v", s, err)
	}
	if _, err := parseGCPauses("gatehouse_requests_total 3\n"); err == nil {
		t.Error("no summary: no error")
	}
}

// TestRenderPeers checks the configurations the peers get: the keys in
// nginx's map and HAProxy's map file, the key check only where it belongs,
// the addresses everywhere.
func TestRenderPeers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, p := range peers {
		file, err := renderPeer(p, dir, "127.0.0.1:18080", "127.0.0.1:18081")
		if err != nil {
			t.Fatalf("%s: %v", p.id, err)
		}
		conf := read(filepath.Base(file))
		if !strings.Contains(conf, "127.0.0.1:18081") || !strings.Contains(conf, "18080") {
			t.Errorf("%s: addresses missing:\n%s", p.id, conf)
		}
		auth := basicAuth(keyID, keySecret)
		switch p.id {
		case "nginx":
			if !strings.Contains(conf, `"`+auth+`" "`+keyID+`";`) || !strings.Contains(conf, "limit_req zone=keys") {
				t.Errorf("nginx: no key map entry or limit_req:\n%s", conf)
			}
		case "haproxy":
			if strings.Contains(conf, "deny") {
				t.Errorf("plain HAProxy checks keys:\n%s", conf)
			}
		case "haproxy-map":
			if !strings.Contains(conf, "map("+filepath.Join(dir, "keys.map")+")") {
				t.Errorf("HAProxy key map not used:\n%s", conf)
			}
			if m := read("keys.map"); !strings.Contains(m, strings.TrimPrefix(auth, "Basic ")+" "+keyID+"\n") {
				t.Errorf("keys.map lacks the bench key:\n%s", m)
			}
		}
	}
}

func TestPairedRatio(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	b := &bench{paired: []*pairedRun{
		{a: "basic", b: "baseline", rounds: [][2]time.Duration{{12 * ms, 10 * ms}, {300 * ms, 200 * ms}, {11 * ms, 10 * ms}}},
		nil, // a pair that never ran
	}}
	if v, ok := b.pairedRatio("basic", "baseline"); !ok || v < 1.199 || v > 1.201 {
		t.Errorf("pairedRatio = %v (%v), want the median of 1.2, 1.5, 1.1: 1.2", v, ok)
	}
	if _, ok := b.pairedRatio("large", "basic"); ok {
		t.Error("a pair that never ran reported a ratio")
	}
}
