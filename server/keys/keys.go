// Package keys is the gateway's in-memory API key index: the compact form of
// every key that authentication, authorization and quotas need, looked up
// without touching SQLite and updated one key at a time on admin writes.
//
// The index holds no pointer per key. Each shard keeps its keys as
// fixed-size records in a slice of pointer-free structs, their strings in a
// few large byte chunks, and finds them through an open-addressing table of
// integers. The garbage collector marks a byte chunk or a record slice in
// constant time, whatever it holds, so a million keys cost each GC cycle what
// ten do. Get hands out a *Key materialized from a record and remembered in a
// small per-shard cache of the keys in use, so that a busy key costs no
// allocation per request and keeps the same *Key until it is replaced.
package keys

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"unique"

	"gatehouse"
)

// Key is the compact, immutable form of an API key, as Get returns it. An
// admin write replaces the whole *Key; nobody mutates one in place.
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

// FromAPIKey builds the compact form of k (the index stores its own copy).
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

const (
	// shardCount spreads keys over independently locked shards: readers on
	// the request path never contend on one lock, and a write, a table
	// growth or a compaction touches 1/256 of the index.
	shardBits  = 8
	shardCount = 1 << shardBits

	// Byte chunks grow from minChunk to maxChunk as a shard fills; a blob
	// longer than that gets a chunk of its own size.
	minChunk = 1 << 10
	maxChunk = 64 << 10

	// Records live in pages of pageSize, so that a growing shard never
	// copies its records.
	pageBits = 8
	pageSize = 1 << pageBits

	// cacheSets × 2 ways of materialized keys per shard: 8,192 keys in use
	// at once are served without allocating.
	cacheSets = 16
)

// Record flags.
const (
	flagEnabled uint8 = 1 << iota
	flagClientIDOnly
	flagReadOnly
	flagLive
)

// record is one key, without a pointer: its numbers, and where its blob
// (client id, secret, then each entity as a uvarint length and its bytes)
// lies in the shard's chunks.
type record struct {
	throttling, daily, monthly, validUntil int64
	chunk, off                             uint32
	idLen, secretLen, entLen               uint32
	flags                                  uint8
}

func (r *record) blobLen() int { return int(r.idLen + r.secretLen + r.entLen) }

// cached is a materialized key, tagged with the record it came from.
type cached struct {
	rec uint32
	key Key
}

type shard struct {
	mu sync.RWMutex
	// slots is the open-addressing table (linear probing, backward-shift
	// deletion): 0 is empty, otherwise the high 32 bits of the client id's
	// hash and, below them, the record's index plus one.
	slots  []uint64
	count  int
	pages  []*[pageSize]record
	nrecs  int      // records handed out, live or free
	free   []uint32 // indices of dead records, reused first
	chunks [][]byte
	used   int // bytes used in the last chunk
	live   int // bytes of live blobs, over all chunks
	total  int // bytes of all blobs written, live or dead
	cache  [2 * cacheSets]atomic.Pointer[cached]
}

// Index maps client ids to keys. Get takes one shard's read lock; Put and
// Delete cost the same at 10 keys and at 1,000,000.
type Index struct {
	seed   maphash.Seed
	shards [shardCount]shard
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{seed: maphash.MakeSeed()}
}

// Sibling returns an empty index that hashes as ix does, to be filled on
// the side and then moved into ix whole with Replace.
func (ix *Index) Sibling() *Index {
	return &Index{seed: ix.seed}
}

// Replace makes ix hold exactly what from holds, a shard at a time under
// its lock, so readers see each key either as it was or as it is in from;
// from, a Sibling of ix, must not be used after. A cluster worker loads a
// snapshot of a million keys this way instead of putting them one by one.
func (ix *Index) Replace(from *Index) {
	if from.seed != ix.seed {
		panic("keys: Replace from an index that is not a Sibling")
	}
	for i := range ix.shards {
		s, f := &ix.shards[i], &from.shards[i]
		f.mu.Lock()
		s.mu.Lock()
		s.slots, s.count, s.pages, s.nrecs, s.free = f.slots, f.count, f.pages, f.nrecs, f.free
		s.chunks, s.used, s.live, s.total = f.chunks, f.used, f.live, f.total
		for w := range s.cache {
			s.cache[w].Store(nil) // materialized from the records that went
		}
		f.slots, f.count, f.pages, f.nrecs, f.free, f.chunks, f.used, f.live, f.total = nil, 0, nil, 0, nil, nil, 0, 0, 0
		s.mu.Unlock()
		f.mu.Unlock()
	}
}

// locate hashes a client id once, for both the shard and the table.
func (ix *Index) locate(clientID string) (*shard, uint64) {
	h := maphash.String(ix.seed, clientID)
	return &ix.shards[h&(shardCount-1)], h
}

// Get returns the key with that client id. The *Key is immutable, and Get
// returns the same one until the key is replaced or deleted (or falls out of
// the cache of keys in use).
func (ix *Index) Get(clientID string) (*Key, bool) {
	s, h := ix.locate(clientID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, r, ok := s.find(h, clientID)
	if !ok {
		return nil, false
	}
	return s.cachedKey(r), true
}

// Put adds or replaces a key with a copy of k; the index keeps no reference
// to k itself.
func (ix *Index) Put(k *Key) {
	s, h := ix.locate(k.ClientID)
	s.mu.Lock()
	s.put(h, k, k.Entities)
	s.mu.Unlock()
}

// PutAPIKey adds or replaces the compact form of k, without building an
// intermediate Key's entities (this is how a million keys load at start).
func (ix *Index) PutAPIKey(k *gatehouse.APIKey) {
	c := compact(k)
	s, h := ix.locate(k.ClientID)
	s.mu.Lock()
	s.put(h, &c, k.AuthorizedEntities)
	s.mu.Unlock()
}

// Delete removes a key; deleting a missing key is a no-op.
func (ix *Index) Delete(clientID string) {
	s, h := ix.locate(clientID)
	s.mu.Lock()
	if i, r, ok := s.find(h, clientID); ok {
		s.removeSlot(i)
		s.release(r)
		s.compactIfSparse()
	}
	s.mu.Unlock()
}

// Len counts the keys.
func (ix *Index) Len() int {
	n := 0
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.RLock()
		n += s.count
		s.mu.RUnlock()
	}
	return n
}

// find returns the slot and record holding clientID, or ok=false; the
// caller holds s.mu.
func (s *shard) find(h uint64, clientID string) (slot int, rec uint32, ok bool) {
	if len(s.slots) == 0 {
		return 0, 0, false
	}
	hi := h >> 32
	mask := len(s.slots) - 1
	for i := int(hi) & mask; ; i = (i + 1) & mask {
		v := s.slots[i]
		if v == 0 {
			return i, 0, false
		}
		if v>>32 == hi {
			r := uint32(v) - 1
			if string(s.idBytes(r)) == clientID {
				return i, r, true
			}
		}
	}
}

// rec is record r.
func (s *shard) rec(r uint32) *record {
	return &s.pages[r>>pageBits][r&(pageSize-1)]
}

// blob is a record's bytes in its chunk.
func (s *shard) blob(rc *record) []byte {
	if rc.blobLen() == 0 {
		return nil // an empty id with no secret nor entities: maybe no chunk at all
	}
	return s.chunks[rc.chunk][rc.off : int(rc.off)+rc.blobLen()]
}

func (s *shard) idBytes(r uint32) []byte {
	rc := s.rec(r)
	return s.blob(rc)[:rc.idLen]
}

// put stores k with these entities under hash h, replacing the key with the
// same client id; the caller holds s.mu for writing.
func (s *shard) put(h uint64, k *Key, entities []string) {
	i, r, found := s.find(h, k.ClientID)
	if found {
		s.forget(r)
		s.live -= s.rec(r).blobLen()
	} else {
		r = s.newRecord()
		if len(s.slots) == 0 || 4*(s.count+1) > 3*len(s.slots) {
			s.grow()
			i, _, _ = s.find(h, k.ClientID)
		}
		s.slots[i] = h>>32<<32 | uint64(r+1)
		s.count++
	}
	entLen := 0
	for _, e := range entities {
		entLen += uvarintLen(len(e)) + len(e)
	}
	n := len(k.ClientID) + len(k.Secret) + entLen
	chunk, off := s.alloc(n)
	b := s.chunks[chunk][off : off+n]
	w := copy(b, k.ClientID)
	w += copy(b[w:], k.Secret)
	for _, e := range entities {
		w += binary.PutUvarint(b[w:], uint64(len(e)))
		w += copy(b[w:], e)
	}
	rc := record{
		throttling: k.Throttling, daily: k.Daily, monthly: k.Monthly, validUntil: k.ValidUntil,
		chunk: uint32(chunk), off: uint32(off),
		idLen: uint32(len(k.ClientID)), secretLen: uint32(len(k.Secret)), entLen: uint32(entLen),
		flags: flagLive,
	}
	if k.Enabled {
		rc.flags |= flagEnabled
	}
	if k.AllowClientIDOnly {
		rc.flags |= flagClientIDOnly
	}
	if k.ReadOnly {
		rc.flags |= flagReadOnly
	}
	*s.rec(r) = rc
	s.live += n
	s.compactIfSparse() // a replaced key left its old blob behind
}

func uvarintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

// newRecord returns a free record index.
func (s *shard) newRecord() uint32 {
	if n := len(s.free); n > 0 {
		r := s.free[n-1]
		s.free = s.free[:n-1]
		return r
	}
	if s.nrecs == len(s.pages)*pageSize {
		s.pages = append(s.pages, new([pageSize]record))
	}
	s.nrecs++
	return uint32(s.nrecs - 1)
}

// release frees a deleted key's record and accounts its blob as dead.
func (s *shard) release(r uint32) {
	s.forget(r)
	rc := s.rec(r)
	s.live -= rc.blobLen()
	*rc = record{}
	s.free = append(s.free, r)
	s.count--
}

// alloc reserves n bytes in the shard's last chunk, or in a new one.
func (s *shard) alloc(n int) (chunk, off int) {
	last := len(s.chunks) - 1
	if last < 0 || s.used+n > len(s.chunks[last]) {
		size := minChunk
		if last >= 0 {
			size = min(2*len(s.chunks[last]), maxChunk)
		}
		s.chunks = append(s.chunks, make([]byte, max(size, n)))
		last, s.used = last+1, 0
	}
	off = s.used
	s.used += n
	s.total += n
	return last, off
}

// grow doubles the table (8 slots at first); homes come from the stored hash
// bits, so nothing is rehashed.
func (s *shard) grow() {
	old := s.slots
	s.slots = make([]uint64, max(8, 2*len(old)))
	mask := len(s.slots) - 1
	for _, v := range old {
		if v == 0 {
			continue
		}
		i := int(v>>32) & mask
		for s.slots[i] != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = v
	}
}

// removeSlot empties slot i and shifts back the entries after it that would
// otherwise no longer be reachable from their home slot.
func (s *shard) removeSlot(i int) {
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j] != 0; j = (j + 1) & mask {
		home := int(s.slots[j]>>32) & mask
		// The entry at j may move to i unless its home lies cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = 0
}

// compactIfSparse rewrites the shard's live blobs into one fresh chunk once
// dead bytes pass a quarter of what the chunks hold, so churn never grows
// memory: the cost, one copy of this shard's live bytes, is paid at most
// once per that many bytes deleted or replaced.
func (s *shard) compactIfSparse() {
	dead := s.total - s.live
	if dead < minChunk || 4*dead < s.total {
		return
	}
	if s.live == 0 {
		s.chunks, s.used, s.total = nil, 0, 0
		return
	}
	b := make([]byte, max(s.live, minChunk))
	off := 0
	for r := range s.nrecs {
		rc := s.rec(uint32(r))
		if rc.flags&flagLive == 0 {
			continue
		}
		n := copy(b[off:], s.blob(rc))
		rc.chunk, rc.off = 0, uint32(off)
		off += n
	}
	s.chunks = append(s.chunks[:0:0], b)
	s.used, s.total = off, off
}

// cachedKey returns record r's materialized key; the caller holds s.mu for
// reading. Concurrent readers may both build one: either is correct, and
// the last stored stays.
func (s *shard) cachedKey(r uint32) *Key {
	set := 2 * (r % cacheSets)
	first := s.cache[set].Load()
	if first != nil && first.rec == r {
		return &first.key
	}
	if c := s.cache[set+1].Load(); c != nil && c.rec == r {
		return &c.key
	}
	c := &cached{rec: r, key: s.materialize(r)}
	if first != nil {
		s.cache[set+1].Store(first)
	}
	s.cache[set].Store(c)
	return &c.key
}

// forget drops record r from the cache; the caller holds s.mu for writing.
func (s *shard) forget(r uint32) {
	set := 2 * (r % cacheSets)
	for w := set; w < set+2; w++ {
		if c := s.cache[w].Load(); c != nil && c.rec == r {
			s.cache[w].Store(nil)
		}
	}
}

// materialize builds a Key from record r. Its strings are copies, never
// views of a chunk, so a compaction can drop old chunks at once.
func (s *shard) materialize(r uint32) Key {
	rc := s.rec(r)
	b := s.blob(rc)
	idSecret := string(b[:rc.idLen+rc.secretLen])
	k := Key{
		ClientID:          idSecret[:rc.idLen],
		Secret:            idSecret[rc.idLen:],
		Throttling:        rc.throttling,
		Daily:             rc.daily,
		Monthly:           rc.monthly,
		ValidUntil:        rc.validUntil,
		Enabled:           rc.flags&flagEnabled != 0,
		AllowClientIDOnly: rc.flags&flagClientIDOnly != 0,
		ReadOnly:          rc.flags&flagReadOnly != 0,
	}
	ents := b[rc.idLen+rc.secretLen:]
	n := 0
	for p := ents; len(p) > 0; n++ {
		l, w := binary.Uvarint(p)
		p = p[w+int(l):]
	}
	if n > 0 {
		k.Entities = make([]string, 0, n)
		for p := ents; len(p) > 0; {
			l, w := binary.Uvarint(p)
			k.Entities = append(k.Entities, unique.Make(string(p[w:w+int(l)])).Value())
			p = p[w+int(l):]
		}
	}
	return k
}
