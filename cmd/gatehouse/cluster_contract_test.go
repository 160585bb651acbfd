package main

// Contract section 11 with real processes: what only a killed or frozen
// node shows.

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// "A node that dies may take unused calls with it: never more than it had
// reserved": a worker killed (SIGKILL) after serving calls of a key of
// dailyQuota N leaves the leader at most N - (its calls) to admit, and no
// fewer than that minus what Redis records it held and had set aside.
func TestClusterContractDeadWorkerTakesAtMostWhatItReserved(t *testing.T) {
	t.Parallel()
	r, dir, leader := startLeader(t)
	const n = 1000
	resp := leader.adminDo(t, "PATCH", "/api/apikeys/k", fmt.Sprintf(`{"dailyQuota": %d}`, n))
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PATCH key: %d", resp.StatusCode)
	}
	rev := resp.Header.Get("Gatehouse-Revision")
	proxy, admin, worker := startWorker(t, filepath.Join(dir, "worker.db"), r.URL, leader.admin)
	eventually(t, "the worker at the leader's revision", func() bool { return fmt.Sprint(healthOf(t, admin)["revision"]) == rev })

	through := func(base string, clients, max int) int {
		var mu sync.Mutex
		ok, sent := 0, 0
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					if sent == max {
						mu.Unlock()
						return
					}
					sent++
					mu.Unlock()
					code, err := callKey(base)
					if err != nil || (code != 200 && code != 429) {
						t.Errorf("through %s: %d %v", base, code, err)
						return
					}
					mu.Lock()
					if code == 200 {
						ok++
					} else {
						sent = max // the quota is out: stop
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return ok
	}
	used := through(proxy, 6, 300)
	if used != 300 {
		t.Fatalf("%d of 300 calls admitted through the worker on dailyQuota %d", used, n)
	}
	if err := worker.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	worker.Wait()

	// What the dead worker holds in Redis: its slice and its outage budget.
	day := time.Now().UTC().Format("20060102")
	hash := "gatehouse:q:{k}:0:d:" + day
	v, err := r.Client().HMGet(context.Background(), hash, "h:w", "b:w").Result()
	if err != nil {
		t.Fatal(err)
	}
	num := func(x any) int {
		s, _ := x.(string)
		n, _ := strconv.Atoi(s)
		return n
	}
	held, budget := num(v[0]), num(v[1])

	after := through(leader.proxy, 6, n)
	lost := n - used - after
	t.Logf("dailyQuota %d: %d through the worker, %d through the leader after the worker died: %d lost; the dead worker held %d and had %d set aside",
		n, used, after, lost, held, budget)
	if used+after > n {
		t.Fatalf("%d admitted on dailyQuota %d", used+after, n)
	}
	if lost > held+budget {
		t.Fatalf("the dead worker took %d calls with it, more than the %d it had reserved", lost, held+budget)
	}
}
