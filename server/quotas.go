package server

import (
	"gatehouse"
	"gatehouse/server/keys"
	"gatehouse/server/quota"
)

// Quotas counts calls against keys' quotas: what the gateway's quota stage
// and the admin API need. Standalone, it is the in-memory quota.Manager,
// flushed to SQLite as increments; a cluster counts in Redis behind the same
// methods, without the pipeline knowing.
type Quotas interface {
	// Take admits one call if every quota allows it, and counts it.
	Take(clientID string, l quota.Limits) quota.Decision
	// Peek answers what Take would, counting nothing.
	Peek(clientID string, l quota.Limits) quota.Decision
	// Usage is the key's quotas with what is used and left of each.
	Usage(clientID string, l quota.Limits) gatehouse.QuotaUsage
	// Reset zeroes the key's counters (after the store's reset committed).
	Reset(clientID string)
	// Forget drops a deleted key's counters.
	Forget(clientID string)
}

var _ Quotas = (*quota.Manager)(nil)

func limitsOf(k *keys.Key) quota.Limits {
	return quota.Limits{Throttling: k.Throttling, Daily: k.Daily, Monthly: k.Monthly}
}
