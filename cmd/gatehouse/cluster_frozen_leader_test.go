package main

import (
	"encoding/json"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// "A node sees a lost leader ... within 5 s and a returned one within
// 10 s", for a leader that stops answering without closing anything: its
// process frozen (SIGSTOP), then continued.
func TestClusterContractWorkerSeesAFrozenLeader(t *testing.T) {
	t.Parallel()
	r, dir, leader := startLeader(t)
	_, admin, _ := startWorker(t, filepath.Join(dir, "worker.db"), r.URL, leader.admin)
	eventually(t, "the worker connected", func() bool { return healthOf(t, admin)["leader"] == "connected" })
	// Freeze the leader just as the worker starts a long poll (the leader
	// stamps lastSeen when one ends and the next begins): the worst moment,
	// made every run's.
	lastSeen := func() float64 {
		resp := leader.adminDo(t, "GET", "/api/cluster/nodes", "")
		defer resp.Body.Close()
		var list []map[string]any
		json.NewDecoder(resp.Body).Decode(&list)
		for _, e := range list {
			if e["name"] == "w" {
				v, _ := e["lastSeen"].(float64)
				return v
			}
		}
		return 0
	}
	seen := lastSeen()
	eventually(t, "a long poll ending", func() bool { return lastSeen() != seen })
	link := func(what string, bound time.Duration, want string) {
		t.Helper()
		from := time.Now()
		for healthOf(t, admin)["leader"] != want {
			if d := time.Since(from); d > bound {
				t.Fatalf("%s: the worker's /health does not say leader %s within %v", what, want, bound)
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
		t.Logf("%s: leader %s after %v", what, want, time.Since(from).Round(time.Millisecond))
	}
	if err := leader.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leader.cmd.Process.Signal(syscall.SIGCONT) })
	link("the leader frozen", 5*time.Second, "unreachable")
	if err := leader.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	link("the leader continued", 10*time.Second, "connected")
}
