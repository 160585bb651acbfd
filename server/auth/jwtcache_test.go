package auth

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"gatehouse/server/keys"
)

// TestJWTCache: a token that verified is answered from the cache only while
// the same key stands in the index and its time claims still hold.
func TestJWTCache(t *testing.T) {
	ix := keys.NewIndex()
	ix.Put(&keys.Key{ClientID: "c1", Secret: "one", Enabled: true})
	tok := hs256(t, "one", jwt.MapClaims{"clientId": "c1", "exp": nowSec(time.Minute), "nbf": nowSec(-time.Minute)})
	verify := func(at int64) Result {
		r, _ := http.NewRequest("GET", "http://x/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		c := Extract(r, AllSources)
		_, res := Verify(&c, ix, nil, at)
		return res
	}
	if got := verify(now); got != OK {
		t.Fatalf("first verification: %v", got)
	}
	r, _ := http.NewRequest("GET", "http://x/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if allocs := testing.AllocsPerRun(50, func() {
		c := Extract(r, AllSources)
		if _, res := Verify(&c, ix, nil, now); res != OK {
			t.Fatalf("cached token: %v", res)
		}
	}); allocs > 0 {
		t.Errorf("a cached token costs %.0f allocations, want a cache hit with none", allocs)
	}
	if got := verify(now + (time.Minute + jwtLeeway + time.Second).Milliseconds()); got != Bad {
		t.Errorf("after exp (+leeway): %v, want Bad", got)
	}
	if got := verify(now - (time.Minute + jwtLeeway + time.Second).Milliseconds()); got != Bad {
		t.Errorf("before nbf (-leeway): %v, want Bad", got)
	}
	ix.Put(&keys.Key{ClientID: "c1", Secret: "one", Enabled: false})
	if got := verify(now); got != Bad {
		t.Errorf("key disabled: %v, want Bad", got)
	}
	ix.Put(&keys.Key{ClientID: "c1", Secret: "two", Enabled: true})
	if got := verify(now); got != Bad {
		t.Errorf("secret changed: %v, want Bad (the old signature no longer holds)", got)
	}
	ix.Delete("c1")
	if got := verify(now); got != Invalid {
		t.Errorf("key deleted: %v, want Invalid", got)
	}
}
