//go:build !race

// The race detector multiplies resident memory, so the memory test is built
// without it; TestConcurrentReadsAndWrites covers the index under -race.

package keys

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"

	"gatehouse"
)

// rss reads this process's resident set size (VmRSS) in bytes.
func rss(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	_, v, ok := bytes.Cut(b, []byte("VmRSS:"))
	if !ok {
		t.Fatal("no VmRSS in /proc/self/status")
	}
	v, _, _ = bytes.Cut(v, []byte("kB"))
	kb, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return kb << 10
}

// TestChurnMemory loads 1,000,000 keys shaped like real ones (16-char id,
// 64-char secret, one group), then 10 times deletes 10 % of them and
// creates as many new ones: resident memory must stay within 512 bytes per
// live key, as the contract allows, and the live heap must not grow with
// the churn. (Resident memory does grow after the load: the runtime keeps
// freed pages up to its heap goal, about twice the live heap with GOGC=100.)
func TestChurnMemory(t *testing.T) {
	const n = 1_000_000
	runtime.GC()
	base := rss(t)
	ix := NewIndex()
	src := gatehouse.DefaultAPIKey()
	src.AuthorizedEntities = []string{"group_0123456789abcdef"}
	put := func(i int) {
		src.ClientID = fmt.Sprintf("%016x", i)
		src.ClientSecret = fmt.Sprintf("%064x", i*7919)
		ix.PutAPIKey(&src)
	}
	for i := range n {
		put(i)
	}
	runtime.GC()
	loaded := rss(t) - base
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	t.Logf("loaded: heap alloc %d MiB in use %d MiB, idle %d MiB", ms0.HeapAlloc>>20, ms0.HeapInuse>>20, ms0.HeapIdle>>20)
	next := n
	for round := range 10 {
		// Delete every tenth key still alive from this round's offset, then
		// create as many under new ids.
		deleted := 0
		for i := round; i < next && deleted < n/10; i += 10 {
			id := fmt.Sprintf("%016x", i)
			if _, ok := ix.Get(id); ok {
				ix.Delete(id)
				deleted++
			}
		}
		for range deleted {
			put(next)
			next++
		}
	}
	if ix.Len() != n {
		t.Fatalf("Len = %d after churn, want %d", ix.Len(), n)
	}
	runtime.GC()
	churned := rss(t) - base
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("heap alloc %d MiB, in use %d MiB, idle %d MiB, released %d MiB, sys %d MiB", ms.HeapAlloc>>20, ms.HeapInuse>>20, ms.HeapIdle>>20, ms.HeapReleased>>20, ms.Sys>>20)
	if ms.HeapAlloc > ms0.HeapAlloc+ms0.HeapAlloc/10 {
		t.Errorf("live heap grew from %d to %d MiB over the churn", ms0.HeapAlloc>>20, ms.HeapAlloc>>20)
	}
	t.Logf("resident bytes per key: %d after loading %d keys, %d after 10 rounds of 10 %% churn",
		loaded/n, n, churned/n)
	if churned > 512*n {
		t.Errorf("RSS grew by %d bytes for %d live keys: %d per key, limit 512", churned, n, churned/n)
	}
	// Every key still alive is served with its own secret.
	for i := 0; i < next; i += 997 {
		id := fmt.Sprintf("%016x", i)
		if k, ok := ix.Get(id); ok && k.Secret != fmt.Sprintf("%064x", i*7919) {
			t.Fatalf("%s has secret %q after churn", id, k.Secret)
		}
	}
	if k, ok := ix.Get(fmt.Sprintf("%016x", next-1)); !ok || !k.InGroup("0123456789abcdef") {
		t.Fatalf("the last key created is missing: %+v", k)
	}
	runtime.KeepAlive(ix)
}
