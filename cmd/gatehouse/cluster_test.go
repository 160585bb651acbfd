package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gatehouse/server/cluster/clustertest"
)

const token = "0123456789abcdef0123456789abcdef"

func TestClusterFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, _ := writeTLSPair(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	redis := "redis://127.0.0.1:6379"
	leader := []string{"--role", "leader", "--redis", redis, "--cluster-token", token}
	worker := []string{"--role", "worker", "--redis", "unix:///run/redis.sock", "--cluster-token", token, "--leader", "http://127.0.0.1:9000"}
	with := func(base []string, more ...string) []string { return append(append([]string{}, base...), more...) }
	runConfigCases(t, []configCase{
		{name: "standalone by default", env: env(), check: func(t *testing.T, c config) {
			if c.Role != "standalone" || c.Cluster.Redis != "" {
				t.Errorf("%+v", c)
			}
		}},
		{name: "leader", args: with(leader, "--node-name", "n1"), env: env(), check: func(t *testing.T, c config) {
			if c.Role != "leader" || c.Cluster.Redis != redis || c.Cluster.Token != token || c.Cluster.NodeName != "n1" {
				t.Errorf("%+v", c.Cluster)
			}
		}},
		{name: "worker from env", env: env("GATEHOUSE_ROLE", "worker", "GATEHOUSE_REDIS", "redis://:pw@localhost:6380/2",
			"GATEHOUSE_CLUSTER_TOKEN", token, "GATEHOUSE_LEADER", "https://leader.example:9443/", "GATEHOUSE_LEADER_CA", cert),
			check: func(t *testing.T, c config) {
				h, _ := os.Hostname()
				if c.Role != "worker" || c.Cluster.Leader != "https://leader.example:9443" || c.Cluster.LeaderCA != cert ||
					c.Cluster.NodeName != h {
					t.Errorf("%+v", c.Cluster)
				}
			}},
		{name: "unknown role", args: []string{"--role", "boss"}, env: env(), wantErr: "--role"},
		{name: "redis for standalone", args: []string{"--redis", redis}, env: env(), wantErr: "--redis is for a cluster node"},
		{name: "token for standalone", env: env("GATEHOUSE_CLUSTER_TOKEN", token), wantErr: "GATEHOUSE_CLUSTER_TOKEN (--cluster-token) is for a cluster node"},
		{name: "leader without redis", args: []string{"--role", "leader", "--cluster-token", token}, env: env(), wantErr: "--redis is required"},
		{name: "worker without token", args: []string{"--role", "worker", "--redis", redis, "--leader", "http://a:1"}, env: env(), wantErr: "--cluster-token is required"},
		{name: "short token", args: []string{"--role", "leader", "--redis", redis, "--cluster-token", "short"}, env: env(), wantErr: "at least 32 characters"},
		{name: "redis without port", args: with(leader[:2], "--redis", "redis://localhost", "--cluster-token", token), env: env(), wantErr: "--redis"},
		{name: "redis bad scheme", args: with(leader[:2], "--redis", "http://localhost:6379", "--cluster-token", token), env: env(), wantErr: "--redis"},
		{name: "redis bad db", args: with(leader[:2], "--redis", "redis://localhost:6379/x", "--cluster-token", token), env: env(), wantErr: "--redis"},
		{name: "worker without leader", args: with(worker[:6]), env: env(), wantErr: "--leader is required"},
		{name: "leader flag on a leader", args: with(leader, "--leader", "http://a:1"), env: env(), wantErr: "--leader is for --role worker"},
		{name: "leader not a url", args: with(worker[:6], "--leader", "127.0.0.1:9000"), env: env(), wantErr: "--leader"},
		{name: "leader ca missing", args: with(worker, "--leader-ca", filepath.Join(dir, "none.pem")), env: env(), wantErr: "--leader-ca"},
		{name: "leader ca not PEM", args: with(worker, "--leader-ca", notPEM), env: env(), wantErr: "--leader-ca"},
		{name: "demo on a worker", args: with(worker, "--demo"), env: env(), wantErr: "--demo"},
	})
}

// startWorker runs a worker binary; its first lines name its listeners.
// configCase is a command line and environment, and either the error
// parseConfig must answer (a usage error, exit 2) or a check of its config.
type configCase struct {
	name    string
	args    []string
	env     func(string) string
	wantErr string
	check   func(t *testing.T, c config)
}

func runConfigCases(t *testing.T, cases []configCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseConfig(c.args, c.env)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				if _, ok := err.(usageError); !ok {
					t.Errorf("err is %T, want usageError (exit 2)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
}

// startLeader starts a redis-server and a leader binary on it, in a temp
// dir, with a keyed service (seedKeyedService).
func startLeader(t *testing.T) (*clustertest.Redis, string, *child) {
	t.Helper()
	r := clustertest.StartRedis(t)
	dir := t.TempDir()
	leader := startChild(t, filepath.Join(dir, "leader.db"), "--role", "leader", "--redis", r.URL,
		"--cluster-token", token, "--node-name", "l")
	seedKeyedService(t, leader, newEcho(t))
	return r, dir, leader
}

func startWorker(t *testing.T, db, redisURL, leader string) (proxy, admin string, _ *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(binary, "serve", "--db", db, "--proxy-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--role", "worker", "--redis", redisURL, "--cluster-token", token, "--leader", leader, "--node-name", "w")
	out := newLines()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	errc := make(chan error, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			out.Write([]byte(s.Text() + "\n"))
		}
		errc <- fmt.Errorf("stdout closed")
	}()
	m := out.wait(t, regexp.MustCompile(`gateway: +(http://\S+)\n +health: +(http://\S+)/health`), errc)
	return m[1], m[2], cmd
}

func healthOf(t *testing.T, admin string) map[string]any {
	t.Helper()
	resp, err := http.Get(admin + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterLeaderKilled runs a leader and a worker binary on one
// redis-server, kills the leader with SIGKILL, and finds the worker serving
// and counting on.
func TestClusterLeaderKilled(t *testing.T) {
	t.Parallel()
	r, dir, leader := startLeader(t)
	resp := leader.adminDo(t, "PATCH", "/api/apikeys/k", `{"dailyQuota": 5}`)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PATCH key: %d", resp.StatusCode)
	}
	rev := resp.Header.Get("Gatehouse-Revision")
	proxy, admin, _ := startWorker(t, filepath.Join(dir, "worker.db"), r.URL, leader.admin)
	eventually(t, "the worker at the leader's revision", func() bool {
		h := healthOf(t, admin)
		return fmt.Sprint(h["revision"]) == rev && h["leader"] == "connected" && h["redis"] == "connected"
	})
	for i := range 3 {
		if code, err := callKey(proxy); err != nil || code != 200 {
			t.Fatalf("call %d through the worker: %d %v", i, code, err)
		}
	}
	if err := leader.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	leader.cmd.Wait()
	eventually(t, "the worker seeing its leader gone", func() bool { return healthOf(t, admin)["leader"] == "unreachable" })
	ok := 0
	for range 5 {
		code, err := callKey(proxy)
		if err != nil {
			t.Fatal(err)
		}
		if code == 200 {
			ok++
		} else if code != 429 {
			t.Fatalf("status %d", code)
		}
	}
	if ok != 2 {
		t.Fatalf("after the leader died: %d admitted, want the 2 that dailyQuota 5 leaves", ok)
	}
}
