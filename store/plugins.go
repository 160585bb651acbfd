package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"

	"gatehouse"
)

func pluginNotFound(id string) error { return gatehouse.NotFound("plugin %q not found", id) }

func checkWasm(wasm []byte) error {
	if len(wasm) == 0 {
		return gatehouse.Invalid("wasm", "must not be empty")
	}
	if int64(len(wasm)) > gatehouse.MaxPluginUploadBytes {
		return gatehouse.Invalid("wasm", "must be at most %d bytes", gatehouse.MaxPluginUploadBytes)
	}
	return nil
}

func wasmSum(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

// CreatePlugin stores a plugin and its wasm bytes, setting p.SHA256 (hex).
// A missing id is generated and a missing ABI defaults to http-wasm; the
// limits must already be set (gatehouse.DefaultPlugin gives the defaults).
func (s *Store) CreatePlugin(ctx context.Context, p *gatehouse.Plugin, wasm []byte) error {
	if p.ID == "" {
		p.ID = gatehouse.NewID()
	}
	if p.ABI == "" {
		p.ABI = gatehouse.PluginABI
	}
	if err := p.Validate(); err != nil {
		return err
	}
	if err := checkWasm(wasm); err != nil {
		return err
	}
	sum := wasmSum(wasm)
	if err := s.write(ctx, func(tx *txn) error { return insertPlugin(ctx, tx, p, sum, wasm) }); err != nil {
		return err
	}
	p.SHA256 = sum
	return nil
}

// insertPlugin writes a new, validated plugin and its bytes (sum is their
// hash) inside tx.
func insertPlugin(ctx context.Context, tx *txn, p *gatehouse.Plugin, sum string, wasm []byte) error {
	seq, err := nextSeq(ctx, tx, "plugins")
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO plugins
		(id, seq, name, sha256, abi, memory_limit_pages, timeout_ms, pool_size, wasm)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, seq, p.Name, sum, p.ABI, p.MemoryLimitPages, p.TimeoutMs, p.PoolSize, wasm)
	if isUniqueViolation(err) {
		return gatehouse.Conflict("plugin %q already exists", p.ID)
	}
	if err != nil {
		return fmt.Errorf("insert plugin: %w", err)
	}
	tx.changed(gatehouse.KindPlugin, p.ID, gatehouse.OpCreate)
	return nil
}

const pluginCols = "id, name, sha256, abi, memory_limit_pages, timeout_ms, pool_size"

type rowScanner interface{ Scan(...any) error }

func scanPlugin(r rowScanner) (gatehouse.Plugin, error) {
	var p gatehouse.Plugin
	err := r.Scan(&p.ID, &p.Name, &p.SHA256, &p.ABI, &p.MemoryLimitPages, &p.TimeoutMs, &p.PoolSize)
	return p, err
}

func getPlugin(ctx context.Context, q querier, id string) (gatehouse.Plugin, error) {
	p, err := scanPlugin(q.QueryRowContext(ctx, "SELECT "+pluginCols+" FROM plugins WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, pluginNotFound(id)
	}
	if err != nil {
		return p, fmt.Errorf("get plugin: %w", err)
	}
	return p, nil
}

// GetPlugin returns the plugin's metadata (not its bytes), or NotFound.
func (s *Store) GetPlugin(ctx context.Context, id string) (gatehouse.Plugin, error) {
	return getPlugin(ctx, s.r, id)
}

// PluginWasm returns the plugin's wasm bytes, or NotFound.
func (s *Store) PluginWasm(ctx context.Context, id string) ([]byte, error) {
	return pluginWasm(ctx, s.r, id)
}

func pluginWasm(ctx context.Context, q querier, id string) ([]byte, error) {
	var wasm []byte
	err := q.QueryRowContext(ctx, "SELECT wasm FROM plugins WHERE id = ?", id).Scan(&wasm)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, pluginNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("get plugin wasm: %w", err)
	}
	return wasm, nil
}

// ListPlugins returns every plugin's metadata in creation order.
func (s *Store) ListPlugins(ctx context.Context) ([]gatehouse.Plugin, error) {
	return listPlugins(ctx, s.r)
}

func listPlugins(ctx context.Context, q querier) ([]gatehouse.Plugin, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+pluginCols+" FROM plugins ORDER BY seq")
	if err != nil {
		return nil, fmt.Errorf("list plugins: %w", err)
	}
	defer rows.Close()
	ps := []gatehouse.Plugin{}
	for rows.Next() {
		p, err := scanPlugin(rows)
		if err != nil {
			return nil, fmt.Errorf("list plugins: %w", err)
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list plugins: %w", err)
	}
	return ps, nil
}

// UpdatePlugin changes a plugin's name and limits; its id, ABI and hash are
// kept and written back into p.
func (s *Store) UpdatePlugin(ctx context.Context, p *gatehouse.Plugin) error {
	if p.ID == "" {
		return gatehouse.Invalid("id", "must not be empty")
	}
	return s.write(ctx, func(tx *txn) error { return updatePlugin(ctx, tx, p) })
}

// updatePlugin changes an existing plugin's name and limits inside tx,
// writing its kept id, ABI and hash back into p; the same name and limits
// record no change.
func updatePlugin(ctx context.Context, tx *txn, p *gatehouse.Plugin) error {
	cur, err := getPlugin(ctx, tx, p.ID)
	if err != nil {
		return err
	}
	next := *p
	next.ABI, next.SHA256 = cur.ABI, cur.SHA256
	if err := next.Validate(); err != nil {
		return err
	}
	if next == cur {
		*p = next
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE plugins SET name = ?, memory_limit_pages = ?, timeout_ms = ?, pool_size = ?
		WHERE id = ?`, next.Name, next.MemoryLimitPages, next.TimeoutMs, next.PoolSize, next.ID); err != nil {
		return fmt.Errorf("update plugin: %w", err)
	}
	*p = next
	tx.changed(gatehouse.KindPlugin, p.ID, gatehouse.OpUpdate)
	return nil
}

// ReplacePluginWasm stores new bytes for a plugin and returns it with the new hash.
func (s *Store) ReplacePluginWasm(ctx context.Context, id string, wasm []byte) (gatehouse.Plugin, error) {
	if err := checkWasm(wasm); err != nil {
		return gatehouse.Plugin{}, err
	}
	sum := wasmSum(wasm)
	var p gatehouse.Plugin
	err := s.write(ctx, func(tx *txn) error {
		var err error
		p, err = replacePluginWasm(ctx, tx, id, sum, wasm)
		return err
	})
	if err != nil {
		return gatehouse.Plugin{}, err
	}
	return p, nil
}

// replacePluginWasm stores new bytes (sum is their hash) for an existing
// plugin inside tx and returns the plugin; the bytes it holds already
// record no change.
func replacePluginWasm(ctx context.Context, tx *txn, id, sum string, wasm []byte) (gatehouse.Plugin, error) {
	cur, err := getPlugin(ctx, tx, id)
	if err != nil {
		return gatehouse.Plugin{}, err
	}
	if cur.SHA256 == sum { // the same bytes
		return cur, nil
	}
	if _, err := tx.ExecContext(ctx, "UPDATE plugins SET wasm = ?, sha256 = ? WHERE id = ?", wasm, sum, id); err != nil {
		return gatehouse.Plugin{}, fmt.Errorf("replace plugin wasm: %w", err)
	}
	tx.changed(gatehouse.KindPlugin, id, gatehouse.OpUpdate)
	cur.SHA256 = sum
	return cur, nil
}

// DeletePlugin removes a plugin; one still attached to a service is a Conflict.
func (s *Store) DeletePlugin(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *txn) error { return deletePlugin(ctx, tx, id) })
}

// deletePlugin removes a plugin inside tx; one still attached to a service
// is a Conflict.
func deletePlugin(ctx context.Context, tx *txn, id string) error {
	var svc string
	err := tx.QueryRowContext(ctx, `SELECT s.id FROM services s, json_each(s.data, '$.plugins') p
		WHERE json_extract(p.value, '$.ref') = ? ORDER BY s.seq LIMIT 1`, id).Scan(&svc)
	if err == nil {
		return gatehouse.Conflict("plugin %q is attached to service %q", id, svc)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("delete plugin: %w", err)
	}
	res, err := tx.ExecContext(ctx, "DELETE FROM plugins WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete plugin: %w", err)
	}
	if err := affected(res, pluginNotFound(id)); err != nil {
		return err
	}
	tx.changed(gatehouse.KindPlugin, id, gatehouse.OpDelete)
	return nil
}
