package auth

import (
	"hash/maphash"
	"math"
	"sync"

	"github.com/golang-jwt/jwt/v5"

	"gatehouse/server/keys"
)

// jwtCache remembers tokens that verified, so that a client sending the same
// JWT on every call pays for its HMAC and JSON parsing once. An entry is
// only trusted while the index still holds the very key that verified it
// (a changed secret, disabled key or deletion replaces the *keys.Key), and
// the token's time claims are checked again on every hit.
type jwtCache struct {
	seed   maphash.Seed
	shards [jwtCacheShards]jwtShard
}

const (
	jwtCacheShards   = 32
	jwtShardEntries  = 2048 // a full shard is cleared: bounded memory, no LRU bookkeeping
	jwtMaxCachedSize = 4096 // longer tokens are verified every time
)

type jwtShard struct {
	mu sync.RWMutex
	m  map[string]jwtEntry
}

// jwtEntry holds what a hit must re-check: the key that verified the token
// and the window (epoch ms, leeway included) its exp, nbf and iat allow.
type jwtEntry struct {
	key       *keys.Key
	clientID  string
	notBefore int64
	notAfter  int64
}

var verifiedJWTs = newJWTCache()

func newJWTCache() *jwtCache {
	c := &jwtCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[string]jwtEntry)
	}
	return c
}

func (c *jwtCache) shard(token string) *jwtShard {
	return &c.shards[maphash.String(c.seed, token)%jwtCacheShards]
}

// get answers a cached verification of token at nowMs, or ok=false when the
// token must be verified in full.
func (c *jwtCache) get(token string, ix *keys.Index, nowMs int64) (*keys.Key, string, bool) {
	s := c.shard(token)
	s.mu.RLock()
	e, ok := s.m[token]
	s.mu.RUnlock()
	if !ok || nowMs < e.notBefore || nowMs > e.notAfter {
		return nil, "", false
	}
	if k, ok := ix.Get(e.clientID); !ok || k != e.key {
		return nil, "", false
	}
	return e.key, e.clientID, true
}

// put remembers a token that verified with key k under these claims.
func (c *jwtCache) put(token string, k *keys.Key, clientID string, claims jwt.MapClaims) {
	if len(token) > jwtMaxCachedSize {
		return
	}
	leeway := jwtLeeway.Milliseconds()
	e := jwtEntry{key: k, clientID: clientID, notBefore: math.MinInt64, notAfter: math.MaxInt64}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		e.notAfter = exp.UnixMilli() + leeway
	}
	if nbf, err := claims.GetNotBefore(); err == nil && nbf != nil {
		e.notBefore = nbf.UnixMilli() - leeway
	}
	if iat, err := claims.GetIssuedAt(); err == nil && iat != nil {
		e.notBefore = max(e.notBefore, iat.UnixMilli()-leeway)
	}
	s := c.shard(token)
	s.mu.Lock()
	if len(s.m) >= jwtShardEntries {
		clear(s.m)
	}
	s.m[token] = e
	s.mu.Unlock()
}
