package store

import (
	"context"
	"database/sql"
	"fmt"

	"gatehouse"
)

// View reads the state a Follower prepares from: inside a write's
// transaction it sees that write, uncommitted; from Follow, the committed
// state of the revisions handed over.
type View struct {
	q   querier
	box *secretBox
}

// APIKeys calls fn with each of the keys named by ids that exists, in
// creation order, with one query however many there are (a bulk write
// names thousands).
func (v *View) APIKeys(ctx context.Context, ids []string, fn func(k *gatehouse.APIKey) error) error {
	return keysByID(ctx, v.q, v.box, ids, fn)
}

// AllServices returns every service in creation order.
func (v *View) AllServices(ctx context.Context) ([]gatehouse.Service, error) {
	return queryServices(ctx, v.q, v.box, "SELECT data FROM services ORDER BY seq")
}

// ListPlugins returns every plugin's metadata in creation order.
func (v *View) ListPlugins(ctx context.Context) ([]gatehouse.Plugin, error) {
	return listPlugins(ctx, v.q)
}

// PluginWasm returns the plugin's wasm bytes, or NotFound.
func (v *View) PluginWasm(ctx context.Context, id string) ([]byte, error) {
	return pluginWasm(ctx, v.q, id)
}

// ScanKeyAuth calls fn with every key as Store.ScanKeyAuth does.
func (v *View) ScanKeyAuth(ctx context.Context, fn func(k *gatehouse.APIKey) error) error {
	return scanKeyAuth(ctx, v.q, v.box, fn)
}

// ScanPreviousSecrets calls fn as Store.ScanPreviousSecrets does.
func (v *View) ScanPreviousSecrets(ctx context.Context, nowMs int64, fn func(clientID, secret string, until int64)) error {
	return scanPreviousSecrets(ctx, v.q, v.box, nowMs, fn)
}

// Read runs fn with a View of one consistent snapshot of the committed state.
func (s *Store) Read(ctx context.Context, fn func(v *View) error) error {
	return s.read(ctx, func(tx *sql.Tx) error { return fn(&View{q: tx, box: s.box()}) })
}

// APIKeyCount counts the keys.
func (v *View) APIKeyCount(ctx context.Context) (int, error) {
	var n int
	if err := v.q.QueryRowContext(ctx, "SELECT count(*) FROM apikeys").Scan(&n); err != nil {
		return 0, fmt.Errorf("count apikeys: %w", err)
	}
	return n, nil
}
