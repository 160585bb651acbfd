// Package keys is the gateway's in-memory API key index: the compact form of
// every key that authentication, authorization and quotas need, looked up
// without touching SQLite and updated one key at a time on admin writes.
package keys

import (
	"hash/maphash"
	"strings"
	"sync"
	"unique"
	"unsafe"

	"gatehouse"
)

// Key is the compact, immutable form of an API key held in memory. An admin
// write replaces the whole *Key; nobody mutates one in place.
type Key struct {
	ClientID          string
	Secret            string
	Entities          []string // "group_<id>" / "service_<id>", interned
	Throttling        int64
	Daily             int64
	Monthly           int64
	ValidUntil        int64 // epoch milliseconds; 0 means no expiry
	Enabled           bool
	AllowClientIDOnly bool
	ReadOnly          bool
}

// FromAPIKey builds the compact form of k on the heap (the index stores its
// own copy). Entity strings are interned, since thousands of keys usually
// share a handful of groups.
func FromAPIKey(k *gatehouse.APIKey) *Key {
	c := compact(k)
	if len(k.AuthorizedEntities) > 0 {
		c.Entities = make([]string, len(k.AuthorizedEntities))
		for i, e := range k.AuthorizedEntities {
			c.Entities[i] = unique.Make(e).Value()
		}
	}
	return &c
}

// compact is k's compact form without its entities.
func compact(k *gatehouse.APIKey) Key {
	c := Key{
		ClientID:          k.ClientID,
		Secret:            k.ClientSecret,
		Throttling:        k.ThrottlingQuota,
		Daily:             k.DailyQuota,
		Monthly:           k.MonthlyQuota,
		Enabled:           k.Enabled,
		AllowClientIDOnly: k.AllowClientIDOnly,
		ReadOnly:          k.ReadOnly,
	}
	if k.ValidUntil != nil {
		c.ValidUntil = *k.ValidUntil
		if c.ValidUntil == 0 {
			c.ValidUntil = -1 // epoch 0 is in the past, not "no expiry"
		}
	}
	return c
}

// Usable reports whether the key is enabled and not past its validUntil.
func (k *Key) Usable(nowMs int64) bool {
	return k.Enabled && (k.ValidUntil == 0 || k.ValidUntil > nowMs)
}

// AuthorizedOn reports whether one of the key's entities names the service or its group.
func (k *Key) AuthorizedOn(serviceID, groupID string) bool {
	for _, e := range k.Entities {
		if len(e) == len("group_")+len(groupID) && e[:6] == "group_" && e[6:] == groupID {
			return true
		}
		if len(e) == len("service_")+len(serviceID) && e[:8] == "service_" && e[8:] == serviceID {
			return true
		}
	}
	return false
}

// InGroup reports whether the key names the group among its entities.
func (k *Key) InGroup(groupID string) bool {
	for _, e := range k.Entities {
		if len(e) == len("group_")+len(groupID) && e[:6] == "group_" && e[6:] == groupID {
			return true
		}
	}
	return false
}

// shardCount spreads keys over independently locked maps so that readers on
// the request path never contend on one lock and a write touches one shard.
const shardCount = 256

// Keys are not allocated one by one: each shard carves them, their strings
// and their entity lists out of large chunks. A million keys are then some tens
// of thousands of objects for the garbage collector to mark instead of four
// million, which is most of what a large index would otherwise cost every
// request on a busy core. Chunks are append-only: a stored *Key and its
// strings never change, so readers need no lock once Get returns; a chunk
// is freed when no key in it is referenced any more.
const (
	keyChunk    = 64      // Keys per slab
	entityChunk = 128     // entity strings per slab
	byteChunk   = 8 << 10 // string bytes per arena chunk
)

type shard struct {
	mu sync.RWMutex
	// m is keyed by the client id's 64-bit hash: a slot holds no string
	// header, which makes the map a third smaller. The rare id whose hash
	// another id already holds lives in overflow.
	m        map[uint64]*Key
	overflow map[string]*Key
	keys     []Key    // free tail of the current key slab
	entities []string // free tail of the current entity slab
	bytes    []byte   // free tail of the current string arena
}

// store copies k into the shard's chunks; the caller holds s.mu.
func (s *shard) store(k *Key, entities []string) *Key {
	if len(s.keys) == 0 {
		s.keys = make([]Key, keyChunk)
	}
	c := &s.keys[0]
	s.keys = s.keys[1:]
	*c = *k
	c.ClientID = s.str(k.ClientID)
	c.Secret = s.str(k.Secret)
	c.Entities = nil
	if n := len(entities); n > 0 {
		if n > len(s.entities) {
			s.entities = make([]string, max(entityChunk, n))
		}
		c.Entities = s.entities[:n:n]
		s.entities = s.entities[n:]
		for i, e := range entities {
			c.Entities[i] = unique.Make(e).Value()
		}
	}
	return c
}

// str copies a string into the shard's arena.
func (s *shard) str(v string) string {
	if len(v) == 0 {
		return ""
	}
	if len(v) > len(s.bytes) {
		if len(v) > byteChunk/8 {
			return strings.Clone(v) // an odd long secret gets its own allocation
		}
		s.bytes = make([]byte, byteChunk)
	}
	b := s.bytes[:len(v):len(v)]
	copy(b, v)
	s.bytes = s.bytes[len(v):]
	return unsafe.String(&b[0], len(b))
}

// Index maps client ids to keys. Lookups take one shard's read lock; Put and
// Delete cost the same at 10 keys and at 1,000,000.
type Index struct {
	seed   maphash.Seed
	shards [shardCount]shard
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	ix := &Index{seed: maphash.MakeSeed()}
	for i := range ix.shards {
		ix.shards[i].m = make(map[uint64]*Key)
	}
	return ix
}

// locate hashes a client id once, for both the shard and the map key.
func (ix *Index) locate(clientID string) (*shard, uint64) {
	h := maphash.String(ix.seed, clientID)
	return &ix.shards[h>>56], h // the top byte picks one of 256 shards
}

// Get returns the key with that client id. The *Key is immutable.
func (ix *Index) Get(clientID string) (*Key, bool) {
	s, h := ix.locate(clientID)
	s.mu.RLock()
	k := s.m[h]
	if k == nil || k.ClientID != clientID {
		k = s.overflow[clientID]
	}
	s.mu.RUnlock()
	return k, k != nil
}

// put stores c under its hash; the caller holds s.mu.
func (s *shard) put(h uint64, c *Key) {
	if cur := s.m[h]; cur != nil && cur.ClientID != c.ClientID {
		if s.overflow == nil {
			s.overflow = make(map[string]*Key)
		}
		s.overflow[c.ClientID] = c
		return
	}
	s.m[h] = c
	delete(s.overflow, c.ClientID)
}

// Put adds or replaces a key with a copy of k; the index keeps no reference
// to k itself.
func (ix *Index) Put(k *Key) {
	s, h := ix.locate(k.ClientID)
	s.mu.Lock()
	s.put(h, s.store(k, k.Entities))
	s.mu.Unlock()
}

// PutAPIKey adds or replaces the compact form of k, without building an
// intermediate Key (this is how a million keys load at start).
func (ix *Index) PutAPIKey(k *gatehouse.APIKey) {
	c := compact(k)
	s, h := ix.locate(k.ClientID)
	s.mu.Lock()
	s.put(h, s.store(&c, k.AuthorizedEntities))
	s.mu.Unlock()
}

// Delete removes a key; deleting a missing key is a no-op.
func (ix *Index) Delete(clientID string) {
	s, h := ix.locate(clientID)
	s.mu.Lock()
	if k := s.m[h]; k != nil && k.ClientID == clientID {
		delete(s.m, h)
	}
	delete(s.overflow, clientID)
	s.mu.Unlock()
}

// Len counts the keys.
func (ix *Index) Len() int {
	n := 0
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.RLock()
		n += len(s.m) + len(s.overflow)
		s.mu.RUnlock()
	}
	return n
}
