package keys

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"

	"gatehouse"
)

func apiKey(id string, mod ...func(*gatehouse.APIKey)) *gatehouse.APIKey {
	k := gatehouse.DefaultAPIKey()
	k.ClientID, k.ClientSecret = id, "secret-"+id
	k.AuthorizedEntities = []string{"group_g", "service_s"}
	for _, m := range mod {
		m(&k)
	}
	return &k
}

func TestIndex(t *testing.T) {
	t.Parallel()
	ix := NewIndex()
	ix.Put(FromAPIKey(apiKey("a")))
	ix.Put(FromAPIKey(apiKey("b")))
	if k, ok := ix.Get("a"); !ok || k.Secret != "secret-a" {
		t.Fatalf("Get(a) = %+v, %v", k, ok)
	}
	ix.Put(FromAPIKey(apiKey("a", func(k *gatehouse.APIKey) { k.ClientSecret = "new" })))
	if k, _ := ix.Get("a"); k.Secret != "new" {
		t.Errorf("Put did not replace: %q", k.Secret)
	}
	ix.Delete("a")
	ix.Delete("missing")
	if _, ok := ix.Get("a"); ok || ix.Len() != 1 {
		t.Errorf("after Delete: found %v, len %d", ok, ix.Len())
	}
}

func TestKeyRules(t *testing.T) {
	t.Parallel()
	past, future, zero := int64(1000), int64(5000), int64(0)
	cases := []struct {
		name   string
		key    *Key
		usable bool
	}{
		{"enabled, no expiry", FromAPIKey(apiKey("a")), true},
		{"disabled", FromAPIKey(apiKey("a", func(k *gatehouse.APIKey) { k.Enabled = false })), false},
		{"validUntil passed", FromAPIKey(apiKey("a", func(k *gatehouse.APIKey) { k.ValidUntil = &past })), false},
		{"validUntil ahead", FromAPIKey(apiKey("a", func(k *gatehouse.APIKey) { k.ValidUntil = &future })), true},
		{"validUntil epoch 0 is the past", FromAPIKey(apiKey("a", func(k *gatehouse.APIKey) { k.ValidUntil = &zero })), false},
	}
	for _, c := range cases {
		if got := c.key.Usable(2000); got != c.usable {
			t.Errorf("%s: Usable = %v, want %v", c.name, got, c.usable)
		}
	}
	k := FromAPIKey(apiKey("a"))
	for _, c := range []struct {
		service, group string
		want           bool
	}{{"s", "x", true}, {"x", "g", true}, {"x", "y", false}, {"", "", false}, {"s2", "g2", false}} {
		if got := k.AuthorizedOn(c.service, c.group); got != c.want {
			t.Errorf("AuthorizedOn(%q, %q) = %v, want %v", c.service, c.group, got, c.want)
		}
	}
	if !k.InGroup("g") || k.InGroup("s") {
		t.Error("InGroup")
	}
}

// TestConcurrentReadsAndWrites runs readers against writers that add,
// replace and delete keys (run it with -race): a reader sees either a whole
// old key or a whole new one.
func TestConcurrentReadsAndWrites(t *testing.T) {
	t.Parallel()
	ix := NewIndex()
	for i := range 100 {
		ix.PutAPIKey(apiKey(fmt.Sprint("stable", i)))
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 500 {
				id := fmt.Sprintf("k%d-%d", w, i)
				ix.Put(FromAPIKey(apiKey(id)))
				ix.PutAPIKey(apiKey(id, func(k *gatehouse.APIKey) { k.ClientSecret = "secret-" + id + "-2" }))
				if i%2 == 1 {
					ix.Delete(id)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 500 {
				id := fmt.Sprintf("k%d-%d", w, i)
				if k, ok := ix.Get(id); ok && k.Secret != "secret-"+id && k.Secret != "secret-"+id+"-2" {
					t.Errorf("%s: torn key %+v", id, k)
				}
				if k, ok := ix.Get(fmt.Sprint("stable", i%100)); !ok || !k.InGroup("g") {
					t.Errorf("stable key lost during writes: %+v", k)
				}
			}
		}()
	}
	wg.Wait()
	if ix.Len() != 1100 {
		t.Errorf("len %d, want 1100", ix.Len())
	}
}

// realisticIndex holds n keys shaped like real ones: a 16-char id, a
// 64-char secret, one group.
func realisticIndex(n int) *Index {
	ix := NewIndex()
	src := gatehouse.DefaultAPIKey()
	src.AuthorizedEntities = []string{"group_0123456789abcdef"}
	for i := range n {
		src.ClientID = fmt.Sprintf("%016x", i)
		src.ClientSecret = fmt.Sprintf("%064x", i)
		ix.PutAPIKey(&src)
	}
	return ix
}

// BenchmarkIndexMemory reports the heap the index holds per key at 1,000,000
// keys shaped like real ones (16-char id, 64-char secret, one group).
func BenchmarkIndexMemory(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ix := realisticIndex(n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/key")
		runtime.KeepAlive(ix)
	}
}

// BenchmarkGet looks up the same 10 keys in an index of 10 and of 1,000,000:
// the index's own cost, which must not grow with its size.
func BenchmarkGet(b *testing.B) {
	for _, n := range []int{10, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			ix := NewIndex()
			ids := make([]string, n)
			for i := range n {
				ids[i] = fmt.Sprintf("%016x", i)
				ix.Put(FromAPIKey(apiKey(ids[i])))
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					ix.Get(ids[i%10])
					i++
				}
			})
		})
	}
}

// TestHashCollision drives colliding hashes directly: client ids that share
// a hash, and so a home slot, must all be found, replaced and deleted, and
// deleting one must not hide the others behind it in the probe sequence.
func TestHashCollision(t *testing.T) {
	t.Parallel()
	ix := NewIndex()
	s := &ix.shards[0]
	const h = 42 << 32
	ids := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"} // more than a table of 8 holds: it grows
	for i, id := range ids {
		s.put(h, &Key{ClientID: id, Secret: fmt.Sprint(i), Enabled: true}, nil)
	}
	get := func(id string) *Key {
		if _, r, ok := s.find(h, id); ok {
			return s.cachedKey(r)
		}
		return nil
	}
	for i, id := range ids {
		if k := get(id); k == nil || k.Secret != fmt.Sprint(i) {
			t.Fatalf("colliding id %q: got %+v", id, k)
		}
	}
	s.put(h, &Key{ClientID: "e", Secret: "new", Enabled: true}, nil)
	if k := get("e"); k == nil || k.Secret != "new" || s.count != len(ids) {
		t.Fatalf("replacing a colliding key: %+v, count %d", k, s.count)
	}
	for _, id := range []string{"a", "c", "i"} {
		i, r, ok := s.find(h, id)
		if !ok {
			t.Fatalf("%q not found before delete", id)
		}
		s.removeSlot(i)
		s.release(r)
	}
	for _, id := range ids {
		deleted := id == "a" || id == "c" || id == "i"
		if k := get(id); (k == nil) != deleted {
			t.Errorf("after deleting a, c, i: %q found = %v", id, k != nil)
		}
	}
}

// TestTableWraps deletes keys whose probe sequences wrap around the end of
// the table, where backward-shift deletion is easiest to get wrong.
func TestTableWraps(t *testing.T) {
	t.Parallel()
	ix := NewIndex()
	s := &ix.shards[0]
	for i := range 6 { // a table of 8 slots; homes 6 and 7 wrap to 0, 1, ...
		s.put(uint64(6+i%2)<<32, &Key{ClientID: fmt.Sprint("w", i)}, nil)
	}
	if len(s.slots) != 8 {
		t.Fatalf("table of %d slots, want 8", len(s.slots))
	}
	for _, del := range []int{0, 3} {
		id := fmt.Sprint("w", del)
		i, r, ok := s.find(uint64(6+del%2)<<32, id)
		if !ok {
			t.Fatalf("%s not found", id)
		}
		s.removeSlot(i)
		s.release(r)
	}
	for i := range 6 {
		_, _, ok := s.find(uint64(6+i%2)<<32, fmt.Sprint("w", i))
		if want := i != 0 && i != 3; ok != want {
			t.Errorf("w%d found = %v, want %v", i, ok, want)
		}
	}
}

// TestEmptyKeyAfterCompaction: a key whose blob is empty survives a
// compaction that leaves no live bytes, hence no chunk.
func TestEmptyKeyAfterCompaction(t *testing.T) {
	t.Parallel()
	ix := NewIndex()
	s := &ix.shards[0]
	s.put(1<<32, &Key{Enabled: true}, nil)
	s.put(2<<32, &Key{ClientID: "big", Secret: strings.Repeat("x", 4*minChunk)}, nil)
	i, r, _ := s.find(2<<32, "big")
	s.removeSlot(i)
	s.release(r)
	s.compactIfSparse()
	if len(s.chunks) != 0 {
		t.Fatalf("%d chunks left, want none", len(s.chunks))
	}
	if _, r, ok := s.find(1<<32, ""); !ok || !s.cachedKey(r).Enabled {
		t.Fatal("the empty key was lost")
	}
}

// TestSameKeyUntilReplaced: the auth package trusts a verified JWT only while
// Get returns the very *Key that verified it, so Get must keep returning it,
// and must return another after any change, including delete and re-create.
func TestSameKeyUntilReplaced(t *testing.T) {
	t.Parallel()
	ix := NewIndex()
	ix.PutAPIKey(apiKey("a"))
	k1, _ := ix.Get("a")
	if k2, _ := ix.Get("a"); k2 != k1 {
		t.Fatal("two Gets of an unchanged key returned different *Key")
	}
	ix.PutAPIKey(apiKey("a", func(k *gatehouse.APIKey) { k.Enabled = false }))
	k3, _ := ix.Get("a")
	if k3 == k1 || k3.Enabled || k1.Secret != "secret-a" || !k1.Enabled {
		t.Fatalf("after a replacement: same pointer %v, new enabled %v, old changed %+v", k3 == k1, k3.Enabled, k1)
	}
	ix.Delete("a")
	ix.PutAPIKey(apiKey("a"))
	if k4, _ := ix.Get("a"); k4 == k3 || k4 == k1 || !k4.Enabled {
		t.Fatal("delete and re-create returned an earlier *Key")
	}
}

// TestFieldsRoundTrip: every field survives the pointer-free encoding,
// including long secrets and many entities.
func TestFieldsRoundTrip(t *testing.T) {
	t.Parallel()
	ix := NewIndex()
	until := int64(1_700_000_000_000)
	long := strings.Repeat("s", 70_000) // longer than a chunk
	ents := []string{"group_g", "service_s", "group_" + strings.Repeat("x", 200)}
	in := apiKey("full", func(k *gatehouse.APIKey) {
		k.ClientSecret = long
		k.AuthorizedEntities = ents
		k.ThrottlingQuota, k.DailyQuota, k.MonthlyQuota = 7, 8, 9
		k.ValidUntil = &until
		k.AllowClientIDOnly, k.ReadOnly = true, true
	})
	ix.PutAPIKey(in)
	ix.Put(&Key{ClientID: "bare"})
	want := Key{ClientID: "full", Secret: long, Entities: ents, Throttling: 7, Daily: 8, Monthly: 9,
		ValidUntil: until, Enabled: true, AllowClientIDOnly: true, ReadOnly: true}
	got, ok := ix.Get("full")
	if !ok || !reflect.DeepEqual(*got, want) {
		t.Errorf("Get(full) = %+v, want %+v", got, want)
	}
	if got, ok := ix.Get("bare"); !ok || !reflect.DeepEqual(*got, Key{ClientID: "bare"}) {
		t.Errorf("Get(bare) = %+v", got)
	}
	if _, ok := ix.Get("ful"); ok {
		t.Error("a prefix of a client id was found")
	}
}

// TestChurnKeepsKeys deletes and re-creates keys (with new secrets) until
// every shard has compacted several times, then checks every key.
func TestChurnKeepsKeys(t *testing.T) {
	t.Parallel()
	ix := NewIndex()
	const n = 20_000
	secret := make([]string, n)
	for i := range n {
		secret[i] = fmt.Sprint("s0-", i)
		ix.PutAPIKey(apiKey(fmt.Sprint("k", i), func(k *gatehouse.APIKey) { k.ClientSecret = secret[i] }))
	}
	for round := 1; round <= 10; round++ {
		for i := round % 3; i < n; i += 3 {
			id := fmt.Sprint("k", i)
			if i%2 == 0 {
				ix.Delete(id)
			}
			secret[i] = fmt.Sprint("s", round, "-", i)
			ix.PutAPIKey(apiKey(id, func(k *gatehouse.APIKey) { k.ClientSecret = secret[i] }))
		}
	}
	if ix.Len() != n {
		t.Fatalf("Len = %d, want %d", ix.Len(), n)
	}
	for i := range n {
		if k, ok := ix.Get(fmt.Sprint("k", i)); !ok || k.Secret != secret[i] || !k.InGroup("g") {
			t.Fatalf("k%d = %+v, %v; want secret %q", i, k, ok, secret[i])
		}
	}
}

// BenchmarkGCCycle forces garbage collections with an index of 10 and of
// 1,000,000 keys alive and reports, per cycle, the GC's CPU time (the mark
// work a big heap of pointers makes every cycle dearer) and its
// stop-the-world pauses, both from runtime/metrics.
func BenchmarkGCCycle(b *testing.B) {
	for _, n := range []int{10, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			ix := realisticIndex(n)
			runtime.GC()
			before := gcMetrics()
			b.ResetTimer()
			for range b.N {
				runtime.GC()
			}
			b.StopTimer()
			after := gcMetrics()
			cycles := float64(after.cycles - before.cycles)
			b.ReportMetric((after.cpu-before.cpu)/cycles*1e6, "gc-cpu-µs/cycle")
			pauses := after.pauses.sub(before.pauses)
			b.ReportMetric(pauses.mean()*1e6, "pause-µs/stw")
			b.ReportMetric(pauses.max()*1e6, "max-pause-µs")
			runtime.KeepAlive(ix)
		})
	}
}

type gcSample struct {
	cycles uint64
	cpu    float64
	pauses pauseHist
}

type pauseHist struct {
	counts  []uint64
	buckets []float64
}

func gcMetrics() gcSample {
	ms := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/sched/pauses/total/gc:seconds"},
	}
	metrics.Read(ms)
	h := ms[2].Value.Float64Histogram()
	return gcSample{
		cycles: ms[0].Value.Uint64(),
		cpu:    ms[1].Value.Float64(),
		pauses: pauseHist{counts: slices.Clone(h.Counts), buckets: h.Buckets},
	}
}

func (h pauseHist) sub(o pauseHist) pauseHist {
	d := pauseHist{counts: slices.Clone(h.counts), buckets: h.buckets}
	for i := range d.counts {
		d.counts[i] -= o.counts[i]
	}
	return d
}

// mean estimates the mean pause from bucket midpoints (the last bucket's
// lower bound when unbounded).
func (h pauseHist) mean() float64 {
	var sum float64
	var n uint64
	for i, c := range h.counts {
		lo, hi := h.buckets[i], h.buckets[i+1]
		if math.IsInf(hi, 1) {
			hi = lo
		}
		if math.IsInf(lo, -1) {
			lo = 0
		}
		sum += float64(c) * (lo + hi) / 2
		n += c
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// max is the upper bound of the highest bucket with a pause in it.
func (h pauseHist) max() float64 {
	for i := len(h.counts) - 1; i >= 0; i-- {
		if h.counts[i] > 0 {
			if hi := h.buckets[i+1]; !math.IsInf(hi, 1) {
				return hi
			}
			return h.buckets[i]
		}
	}
	return 0
}

// An index filled on the side replaces another whole: its keys are found,
// the other's are gone, and readers running through the swap see every key
// of either.
func TestReplace(t *testing.T) {
	ix := NewIndex()
	for i := range 1000 {
		ix.Put(&Key{ClientID: fmt.Sprintf("old-%d", i), Secret: "s", Enabled: true})
	}
	ix.Put(&Key{ClientID: "both", Secret: "old"})
	side := ix.Sibling()
	for i := range 500 {
		side.Put(&Key{ClientID: fmt.Sprintf("new-%d", i), Secret: "s", Entities: []string{"group_g"}})
	}
	side.Put(&Key{ClientID: "both", Secret: "new"})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if k, ok := ix.Get("both"); !ok || (k.Secret != "old" && k.Secret != "new") {
				t.Errorf("during the swap, both: %+v %v", k, ok)
				return
			}
		}
	}()
	ix.Replace(side)
	close(stop)
	<-done
	if n := ix.Len(); n != 501 {
		t.Fatalf("%d keys after Replace, want 501", n)
	}
	if k, ok := ix.Get("both"); !ok || k.Secret != "new" {
		t.Fatalf("both: %+v %v", k, ok)
	}
	if k, ok := ix.Get("new-499"); !ok || !k.InGroup("g") {
		t.Fatalf("new-499: %+v %v", k, ok)
	}
	if _, ok := ix.Get("old-3"); ok {
		t.Fatal("a key of the replaced index is still there")
	}
	ix.Put(&Key{ClientID: "after", Secret: "s"})
	ix.Delete("new-0")
	if _, ok := ix.Get("after"); !ok || ix.Len() != 501 {
		t.Fatalf("writes after Replace: %d keys", ix.Len())
	}
}
