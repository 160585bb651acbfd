package server

import (
	"context"

	"gatehouse"
	"gatehouse/store"
)

// backend is what the admin API and the dashboard write through: the store
// (whose change log reaches the gateway before a write returns) plus the
// quota counters and the plugin host's checks.
type backend struct {
	*store.Store
	s *Server
}

// Usage answers a key's quota usage from the in-memory counters.
func (b backend) Usage(ctx context.Context, clientID string) (gatehouse.QuotaUsage, error) {
	k, ok := b.s.keys.Get(clientID)
	if !ok {
		return gatehouse.QuotaUsage{}, gatehouse.NotFound("api key %q not found", clientID)
	}
	return b.s.quotas.Usage(clientID, limitsOf(k)), nil
}

// ResetUsage sets a key's counters to zero: a revision of the change log,
// which resets the in-memory counters when the gateway applies it.
func (b backend) ResetUsage(ctx context.Context, clientID string) error {
	return b.Store.ResetQuotas(ctx, clientID)
}

// CheckWasm compiles a module and checks its http-wasm exports before it is stored.
func (b backend) CheckWasm(ctx context.Context, wasm []byte) error {
	return b.s.plugins.Check(ctx, wasm)
}

// CreatePlugin refuses a module that cannot run under its own limits before
// the store writes anything.
func (b backend) CreatePlugin(ctx context.Context, p *gatehouse.Plugin, wasm []byte) error {
	if err := b.s.plugins.CheckPlugin(ctx, *p, wasm); err != nil {
		return err
	}
	return b.Store.CreatePlugin(ctx, p, wasm)
}

// ReplacePluginWasm checks the new bytes under the plugin's limits first.
func (b backend) ReplacePluginWasm(ctx context.Context, id string, wasm []byte) (gatehouse.Plugin, error) {
	p, err := b.Store.GetPlugin(ctx, id)
	if err != nil {
		return gatehouse.Plugin{}, err
	}
	if err := b.s.plugins.CheckPlugin(ctx, p, wasm); err != nil {
		return gatehouse.Plugin{}, err
	}
	return b.Store.ReplacePluginWasm(ctx, id, wasm)
}

// UpdatePlugin checks the stored bytes under the new limits first.
func (b backend) UpdatePlugin(ctx context.Context, p *gatehouse.Plugin) error {
	wasm, err := b.Store.PluginWasm(ctx, p.ID)
	if err != nil {
		return err
	}
	if err := b.s.plugins.CheckPlugin(ctx, *p, wasm); err != nil {
		return err
	}
	return b.Store.UpdatePlugin(ctx, p)
}
