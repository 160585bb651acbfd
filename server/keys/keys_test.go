package keys

import (
	"fmt"
	"runtime"
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

func TestConcurrentReadsAndWrites(t *testing.T) {
	t.Parallel()
	ix := NewIndex()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 500 {
				ix.Put(FromAPIKey(apiKey(fmt.Sprintf("k%d-%d", w, i))))
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 500 {
				ix.Get(fmt.Sprintf("k%d-%d", w, i))
			}
		}()
	}
	wg.Wait()
	if ix.Len() != 2000 {
		t.Errorf("len %d, want 2000", ix.Len())
	}
}

// BenchmarkIndexMemory reports the heap the index holds per key at 1,000,000
// keys shaped like real ones (16-char id, 64-char secret, one group).
func BenchmarkIndexMemory(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ix := NewIndex()
		src := gatehouse.DefaultAPIKey()
		src.AuthorizedEntities = []string{"group_0123456789abcdef"}
		for i := range n {
			src.ClientID = fmt.Sprintf("%016x", i)
			src.ClientSecret = fmt.Sprintf("%064x", i)
			ix.PutAPIKey(&src)
		}
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

// TestHashCollision drives the overflow path directly: two client ids that
// share a map slot's hash must both be found, replaced and deleted.
func TestHashCollision(t *testing.T) {
	ix := NewIndex()
	s := &ix.shards[0]
	const h = 42
	a := s.store(&Key{ClientID: "a", Secret: "1", Enabled: true}, nil)
	b := s.store(&Key{ClientID: "b", Secret: "2", Enabled: true}, nil)
	s.put(h, a)
	s.put(h, b) // same hash, other id: overflow
	get := func(id string) *Key {
		k := s.m[h]
		if k == nil || k.ClientID != id {
			k = s.overflow[id]
		}
		return k
	}
	if get("a") != a || get("b") != b {
		t.Fatalf("colliding ids not both found")
	}
	b2 := s.store(&Key{ClientID: "b", Secret: "3", Enabled: true}, nil)
	s.put(h, b2)
	if get("b").Secret != "3" || get("a") != a {
		t.Fatalf("replacing an overflowed key")
	}
	delete(s.m, h) // what Delete("a") does
	if get("b") == nil {
		t.Fatal("overflowed key lost when the slot's owner left")
	}
}
