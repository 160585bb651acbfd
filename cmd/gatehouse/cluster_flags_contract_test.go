package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Section 1's cluster flags beyond TestClusterFlags: every env name, flags
// beating env, the flags a role does not take, and, through the binary,
// exit 2 with one line naming the flag before anything is created.
func TestClusterFlagsContract(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, _ := writeTLSPair(t, dir)
	leader := []string{"--role", "leader", "--redis", "redis://127.0.0.1:6379", "--cluster-token", token}
	runConfigCases(t, []configCase{
		{name: "every cluster env name", env: env("GATEHOUSE_ROLE", "leader", "GATEHOUSE_REDIS", "unix:///run/redis.sock",
			"GATEHOUSE_CLUSTER_TOKEN", token, "GATEHOUSE_NODE_NAME", "from-env"), check: func(t *testing.T, c config) {
			if c.Role != "leader" || c.Cluster.Redis != "unix:///run/redis.sock" || c.Cluster.Token != token || c.Cluster.NodeName != "from-env" {
				t.Errorf("%+v %+v", c.Role, c.Cluster)
			}
		}},
		{name: "flags beat env", args: []string{"--role", "worker", "--redis", "redis://10.0.0.1:6380/1", "--cluster-token", token + "-flag",
			"--node-name", "from-flag", "--leader", "http://10.0.0.2:9000", "--leader-ca", cert},
			env: env("GATEHOUSE_ROLE", "leader", "GATEHOUSE_REDIS", "redis://127.0.0.1:6379", "GATEHOUSE_CLUSTER_TOKEN", token,
				"GATEHOUSE_NODE_NAME", "from-env", "GATEHOUSE_LEADER", "http://127.0.0.1:1", "GATEHOUSE_LEADER_CA", filepath.Join(dir, "none.pem")),
			check: func(t *testing.T, c config) {
				if c.Role != "worker" || c.Cluster.Redis != "redis://10.0.0.1:6380/1" || c.Cluster.Token != token+"-flag" ||
					c.Cluster.NodeName != "from-flag" || c.Cluster.Leader != "http://10.0.0.2:9000" || c.Cluster.LeaderCA != cert {
					t.Errorf("%+v %+v", c.Role, c.Cluster)
				}
			}},
		{name: "leader-ca on a leader", args: append(append([]string{}, leader...), "--leader-ca", cert), env: env(), wantErr: "--leader-ca is for --role worker"},
		{name: "leader for standalone", args: []string{"--leader", "http://127.0.0.1:9000"}, env: env(), wantErr: "--leader is for a cluster node"},
		{name: "leader-ca for standalone", env: env("GATEHOUSE_LEADER_CA", cert), wantErr: "GATEHOUSE_LEADER_CA (--leader-ca) is for a cluster node"},
		{name: "redis env for standalone", env: env("GATEHOUSE_REDIS", "redis://127.0.0.1:6379"), wantErr: "is for a cluster node"},
		{name: "redis port out of range", args: []string{"--role", "leader", "--redis", "redis://127.0.0.1:65536", "--cluster-token", token}, env: env(), wantErr: "--redis"},
		{name: "leader port out of range", args: []string{"--role", "worker", "--redis", "redis://127.0.0.1:6379", "--cluster-token", token,
			"--leader", "http://127.0.0.1:70000"}, env: env(), wantErr: "--leader"},
		{name: "token of 31 characters", args: []string{"--role", "leader", "--redis", "redis://127.0.0.1:6379", "--cluster-token", token[:31]}, env: env(), wantErr: "at least 32 characters"},
	})

	// The binary: exit 2, one line naming the flag, and no database created.
	for _, args := range [][]string{
		{"--redis", "redis://127.0.0.1:6379"},
		{"--role", "worker", "--redis", "redis://127.0.0.1:6379", "--cluster-token", token},
		{"--role", "leader", "--redis", "redis://127.0.0.1:6379", "--cluster-token", "short"},
	} {
		db := filepath.Join(t.TempDir(), "never.db")
		cmd := exec.Command(binary, append([]string{"serve", "--db", db}, args...)...)
		cmd.Env = os.Environ()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		msg := strings.TrimSpace(stderr.String())
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "--") {
			t.Errorf("gatehouse serve %v: %v, stderr %q; want exit 2 and one line naming the flag", args, err, msg)
		}
		if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("gatehouse serve %v created %s", args, db)
		}
	}
}
