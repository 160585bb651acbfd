package auth

import "sync"

// Previous holds the secrets that rotations replaced and until when each is
// still accepted (contract section 14). It is kept apart from the key index:
// few keys are rotating at any time, and Verify consults it only when the
// presented secret is not the key's current one. The follower keeps it in
// step with the change log. A nil *Previous holds nothing.
type Previous struct {
	mu sync.RWMutex
	m  map[string]previousSecret
}

type previousSecret struct {
	secret string
	until  int64 // epoch ms
}

// NewPrevious returns an empty set.
func NewPrevious() *Previous { return &Previous{m: map[string]previousSecret{}} }

// Set accepts secret for clientID until untilMs (epoch ms).
func (p *Previous) Set(clientID, secret string, untilMs int64) {
	p.mu.Lock()
	p.m[clientID] = previousSecret{secret: secret, until: untilMs}
	p.mu.Unlock()
}

// Replace makes p hold what from holds, in one step: a follower that read
// every previous secret anew swaps them in while requests go on.
func (p *Previous) Replace(from *Previous) {
	from.mu.RLock()
	m := from.m
	from.mu.RUnlock()
	p.mu.Lock()
	p.m = m
	p.mu.Unlock()
}

// Delete forgets clientID's previous secret.
func (p *Previous) Delete(clientID string) {
	p.mu.Lock()
	delete(p.m, clientID)
	p.mu.Unlock()
}

// Len is how many previous secrets are held.
func (p *Previous) Len() int {
	if p == nil {
		return 0
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.m)
}

// get returns clientID's previous secret while it is accepted at nowMs.
func (p *Previous) get(clientID string, nowMs int64) (string, int64, bool) {
	if p == nil {
		return "", 0, false
	}
	p.mu.RLock()
	e, ok := p.m[clientID]
	p.mu.RUnlock()
	if !ok || e.until <= nowMs {
		return "", 0, false
	}
	return e.secret, e.until, true
}
