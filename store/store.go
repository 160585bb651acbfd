// Package store keeps Gatehouse's state in one SQLite file: groups,
// services, API keys, plugins (with their wasm bytes), quota counters,
// dashboard users and sessions. It is the only package that imports
// database/sql and the SQLite driver. Every write validates its input and
// writes nothing on bad input; errors meant for callers are *gatehouse.Error.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/mattn/go-sqlite3"

	"gatehouse"
)

// Hooks are called synchronously after a write commits and before the write
// method returns, so an in-memory index is current when the caller answers.
// A nil hook is skipped.
type Hooks struct {
	APIKeyPut      func(k *gatehouse.APIKey) // after create/update commit (bulk: once per key)
	APIKeyDelete   func(clientID string)
	CatalogChanged func() // after any group / service / plugin write commits
}

// Store is the SQLite-backed state. Writes go through a single connection
// (SQLite allows one writer; queuing in database/sql beats SQLITE_BUSY),
// reads through a pool that WAL lets run beside the writer.
type Store struct {
	w     *sql.DB
	r     *sql.DB
	hooks atomic.Pointer[Hooks]
}

const pragmas = "_journal_mode=WAL&_busy_timeout=5000&_foreign_keys=on&_synchronous=NORMAL"

func dsn(path, extra string) string {
	// A file: URI with an escaped path, so a '?' or '%' in the path cannot be
	// read as DSN parameters.
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + pragmas + extra
}

// Open opens (creating if needed) the database at path and applies any
// migrations it has not seen yet.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file::memory:") {
		return nil, errors.New("open db: a file path is required")
	}
	w, err := sql.Open("sqlite3", dsn(path, "&_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("open db: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w, migrationsFS); err != nil {
		w.Close()
		return nil, err
	}
	// The writer has created the file and switched it to WAL; readers are
	// query-only so a stray write on the pool fails instead of contending.
	r, err := sql.Open("sqlite3", dsn(path, "&_query_only=true"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open db readers: %w", err)
	}
	n := max(4, runtime.NumCPU())
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open db readers: %w", err)
	}
	return &Store{w: w, r: r}, nil
}

// Close closes both connection pools.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// SetHooks installs the post-commit hooks; call it before serving.
func (s *Store) SetHooks(h Hooks) { s.hooks.Store(&h) }

func (s *Store) h() Hooks {
	if h := s.hooks.Load(); h != nil {
		return *h
	}
	return Hooks{}
}

func (s *Store) catalogChanged() {
	if f := s.h().CatalogChanged; f != nil {
		f()
	}
}

// write runs fn in an immediate transaction on the writer connection.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// read runs fn in a read-only transaction on the reader pool, so a count
// and the page it describes see the same snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// isUniqueViolation reports whether err is a primary key or unique
// constraint failure; callers use it only on inserts where that means a
// duplicate id.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey || se.ExtendedCode == sqlite3.ErrConstraintUnique
}

// nextSeq returns the next creation counter of table; table is one of our
// constant names, never input.
func nextSeq(ctx context.Context, tx *sql.Tx, table string) (int64, error) {
	var n int64
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) + 1 FROM "+table).Scan(&n); err != nil {
		return 0, fmt.Errorf("next seq %s: %w", table, err)
	}
	return n, nil
}

// exists reports whether query (a SELECT 1 ... LIMIT 1) returns a row.
func exists(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string, args ...any) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// likeArg turns a user's search text into a LIKE pattern matching it as a
// substring (ESCAPE '\'). SQLite's LIKE ignores ASCII case.
func likeArg(q string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(q) + "%"
}

// affected returns the rows a statement changed, or a NotFound error when none.
func affected(res sql.Result, notFound error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound
	}
	return nil
}

// IntegrityCheck runs SQLite's PRAGMA integrity_check: nil when the file is sound.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	rows, err := s.r.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("integrity check: %w", err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("integrity check: %s", strings.Join(problems, "; "))
	}
	return nil
}
