// Package keys is the gateway's in-memory API key index: the compact form of
// every key that authentication, authorization and quotas need, looked up
// without touching SQLite and updated one key at a time on admin writes.
package keys

import (
	"hash/maphash"
	"sync"
	"unique"

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

// FromAPIKey builds the compact form of k. Entity strings are interned, since
// thousands of keys usually share a handful of groups.
func FromAPIKey(k *gatehouse.APIKey) *Key {
	c := &Key{
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
	if len(k.AuthorizedEntities) > 0 {
		c.Entities = make([]string, len(k.AuthorizedEntities))
		for i, e := range k.AuthorizedEntities {
			c.Entities[i] = unique.Make(e).Value()
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

type shard struct {
	mu sync.RWMutex
	m  map[string]*Key
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
		ix.shards[i].m = make(map[string]*Key)
	}
	return ix
}

func (ix *Index) shard(clientID string) *shard {
	return &ix.shards[maphash.String(ix.seed, clientID)%shardCount]
}

// Get returns the key with that client id.
func (ix *Index) Get(clientID string) (*Key, bool) {
	s := ix.shard(clientID)
	s.mu.RLock()
	k, ok := s.m[clientID]
	s.mu.RUnlock()
	return k, ok
}

// Put adds or replaces a key.
func (ix *Index) Put(k *Key) {
	s := ix.shard(k.ClientID)
	s.mu.Lock()
	s.m[k.ClientID] = k
	s.mu.Unlock()
}

// Delete removes a key; deleting a missing key is a no-op.
func (ix *Index) Delete(clientID string) {
	s := ix.shard(clientID)
	s.mu.Lock()
	delete(s.m, clientID)
	s.mu.Unlock()
}

// Len counts the keys.
func (ix *Index) Len() int {
	n := 0
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
