// Package store keeps Gatehouse's state in one SQLite file: groups,
// services, API keys, plugins (with their wasm bytes), quota counters,
// dashboard users and sessions, and the change log that orders every write.
// It is the only package that imports database/sql and the SQLite driver.
// Every write validates its input and writes nothing on bad input; errors
// meant for callers are *gatehouse.Error.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"

	"gatehouse"
)

// Store is the SQLite-backed state. Writes go through a single connection
// (SQLite allows one writer; queuing in database/sql beats SQLITE_BUSY),
// reads through a pool that WAL lets run beside the writer.
type Store struct {
	w *sql.DB
	r *sql.DB

	// writeMu orders the writes that make revisions with their follower's
	// install, and with Follow: the follower sees revisions in order, each
	// once, and never a newer one before an older.
	writeMu  sync.Mutex
	follower Follower
	now      func() time.Time
	// secrets seals secrets at rest; nil without a secrets key. Set once by
	// UseSecretsKey before the store is shared.
	secrets *secretBox
}

func (s *Store) box() *secretBox { return s.secrets }

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
	// secure_delete: a secret overwritten or deleted (a rotation, the first
	// start with a secrets key) leaves no copy in the file's free space.
	w, err := sql.Open("sqlite3", dsn(path, "&_txlock=immediate&_secure_delete=on"))
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
	return &Store{w: w, r: r, now: time.Now}, nil
}

// Close closes both connection pools.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// Follower reads the change log: the gateway's in-memory state (keys,
// routes, plugins, quotas). The store hands it, in revision order, every
// change after Revision():
//   - for a write made through this Store, inside the write's transaction
//     and before it commits, so that what the follower cannot prepare rolls
//     the write back; the returned install runs right after the commit, before
//     the write method returns;
//   - for a write made by another process on the same file, from Follow.
//
// Prepare reads what it needs through v, which sees the transaction's state;
// install must not fail. When the commit itself fails after a successful
// Prepare (a full disk), Abandoned is called instead of install, so that the
// follower drops whatever Prepare readied. All of them run with the store's
// write lock held: they must not write through the store.
type Follower interface {
	Revision() int64
	Prepare(ctx context.Context, v *View, changes []gatehouse.Change) (install func(), err error)
	Abandoned(ctx context.Context)
}

// SetFollower installs the follower; call it before serving.
func (s *Store) SetFollower(f Follower) {
	s.writeMu.Lock()
	s.follower = f
	s.writeMu.Unlock()
}

// txn is a write transaction that records the changes it makes.
type txn struct {
	*sql.Tx
	changes    []gatehouse.Change
	now        int64             // epoch ms, the store's clock when the write began
	box        *secretBox        // seals the secrets it writes
	replicated []ReplicaRevision // a cluster worker's write: the leader's revisions (replica.go)
}

// changed records that the write touches the entity kind/id.
func (t *txn) changed(kind, id, op string) {
	t.changes = append(t.changes, gatehouse.Change{Kind: kind, ID: id, Op: op})
}

// write runs fn in an immediate transaction on the writer connection and,
// when fn recorded changes, commits them as the next revision: the revision
// and its changes are written in the same transaction, the follower prepares
// them before the commit and installs them after it, and the revision is
// recorded on ctx (gatehouse.RecordRevision) once committed. When fn
// recorded none (an update that leaves the entity as it was), no revision,
// change or audit entry is written and ctx is told the current revision.
func (s *Store) write(ctx context.Context, fn func(tx *txn) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return storageErr(fmt.Errorf("begin: %w", err))
	}
	defer tx.Rollback()
	t := &txn{Tx: tx, now: s.now().UnixMilli(), box: s.box()}
	if err := fn(t); err != nil {
		return storageErr(err)
	}
	var rev int64
	var install func()
	if len(t.changes) == 0 && len(t.replicated) == 0 {
		// A write that changed nothing (an update to what is stored already)
		// makes no revision; its answer carries the current one.
		if rev, err = headRevision(ctx, tx); err != nil {
			return storageErr(err)
		}
	} else {
		log := s.logChanges
		if len(t.replicated) > 0 {
			log = s.logReplicated
		}
		if rev, err = log(ctx, t); err != nil {
			return storageErr(err)
		}
		if install, err = s.prepare(ctx, t, rev); err != nil {
			// Whatever the follower's reason, the write is sound and the
			// gateway failed it: an internal error (500), never the caller's.
			return fmt.Errorf("the gateway cannot apply revision %d: %v", rev, err)
		}
	}
	if err := tx.Commit(); err != nil {
		if install != nil {
			s.follower.Abandoned(ctx)
		}
		return storageErr(fmt.Errorf("commit: %w", err))
	}
	if install != nil {
		install()
	}
	if rev > 0 {
		gatehouse.RecordRevision(ctx, rev)
	}
	return nil
}

// writeRaw runs fn in an immediate transaction that makes no revision: quota
// counters and dashboard sessions, which are not configuration.
func (s *Store) writeRaw(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return storageErr(fmt.Errorf("begin: %w", err))
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return storageErr(err)
	}
	if err := tx.Commit(); err != nil {
		return storageErr(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// logChanges writes t's changes as the next revision and returns it.
func (s *Store) logChanges(ctx context.Context, t *txn) (int64, error) {
	var rev int64
	if err := t.QueryRowContext(ctx, "SELECT COALESCE(MAX(revision), 0) + 1 FROM revisions").Scan(&rev); err != nil {
		return 0, fmt.Errorf("next revision: %w", err)
	}
	if _, err := t.ExecContext(ctx, "INSERT INTO revisions (revision, at, actor) VALUES (?, ?, ?)",
		rev, t.now, gatehouse.ActorOf(ctx)); err != nil {
		return 0, fmt.Errorf("insert revision: %w", err)
	}
	stmt, err := t.PrepareContext(ctx, "INSERT INTO changes (revision, kind, id, op) VALUES (?, ?, ?, ?)")
	if err != nil {
		return 0, fmt.Errorf("insert changes: %w", err)
	}
	defer stmt.Close()
	for i := range t.changes {
		t.changes[i].Revision = rev
		c := t.changes[i]
		if _, err := stmt.ExecContext(ctx, rev, c.Kind, c.ID, c.Op); err != nil {
			return 0, fmt.Errorf("insert change: %w", err)
		}
	}
	// The audit log's entries, in the same transaction (contract section 14).
	a, err := s.newAuditWriter(ctx, t)
	if err != nil {
		return 0, err
	}
	if err := a.record(ctx, s, rev, t.now, t.changes); err != nil {
		return 0, err
	}
	return rev, nil
}

// prepare hands the follower every change after its revision up to rev, as
// tx sees them; nil without a follower. Replicated revisions are handed over
// even when the follower is past them: a snapshot of a leader whose log is
// shorter than this file's.
func (s *Store) prepare(ctx context.Context, tx *txn, rev int64) (func(), error) {
	if s.follower == nil {
		return nil, nil
	}
	from := s.follower.Revision()
	if len(tx.replicated) > 0 {
		from = min(from, tx.replicated[0].Revision-1)
	}
	cs, err := changesBetween(ctx, tx, from, rev)
	if err != nil {
		return nil, err
	}
	return s.follower.Prepare(ctx, &View{q: tx.Tx, box: s.box()}, cs)
}

// Follow applies the revisions that other processes committed on the file
// since the follower's revision. It answers quickly when there are none, so
// it can be called often. A change the follower cannot prepare is skipped
// (it is committed already) and reported.
func (s *Store) Follow(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.follower == nil {
		return nil
	}
	from := s.follower.Revision()
	head, err := s.Revision(ctx)
	if err != nil || head <= from {
		return err
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	defer tx.Rollback()
	cs, err := changesBetween(ctx, tx, from, head)
	if err != nil {
		return err
	}
	install, err := s.follower.Prepare(ctx, &View{q: tx, box: s.box()}, cs)
	if err != nil {
		return fmt.Errorf("follow revisions %d to %d: %w", from+1, head, err)
	}
	install()
	return nil
}

// Revision is the last committed revision (0 before the first write).
func (s *Store) Revision(ctx context.Context) (int64, error) {
	return headRevision(ctx, s.r)
}

func headRevision(ctx context.Context, q querier) (int64, error) {
	var rev int64
	if err := q.QueryRowContext(ctx, "SELECT COALESCE(MAX(revision), 0) FROM revisions").Scan(&rev); err != nil {
		return 0, fmt.Errorf("read revision: %w", err)
	}
	return rev, nil
}

// Changes returns the changes of revisions after from, at most limit
// revisions' worth, in revision order: what a reader that holds from has to
// apply next.
func (s *Store) Changes(ctx context.Context, from int64, limit int) ([]gatehouse.Change, error) {
	var to int64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(revision), ?) FROM
		(SELECT revision FROM revisions WHERE revision > ? ORDER BY revision LIMIT ?)`, from, from, limit).Scan(&to)
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	return changesBetween(ctx, s.r, from, to)
}

func changesBetween(ctx context.Context, q querier, from, to int64) ([]gatehouse.Change, error) {
	rows, err := q.QueryContext(ctx, `SELECT revision, kind, id, op FROM changes
		WHERE revision > ? AND revision <= ? ORDER BY revision, rowid`, from, to)
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	defer rows.Close()
	cs := []gatehouse.Change{}
	for rows.Next() {
		var c gatehouse.Change
		if err := rows.Scan(&c.Revision, &c.Kind, &c.ID, &c.Op); err != nil {
			return nil, fmt.Errorf("read changes: %w", err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	return cs, nil
}

// querier is what both a transaction and a pool offer for reading.
type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

// storageErr turns SQLite's "database or disk is full" into
// gatehouse.ErrStorageFull, so the admin API can say so (507).
func storageErr(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) && se.Code == sqlite3.ErrFull {
		return fmt.Errorf("%w: %w", gatehouse.ErrStorageFull, err)
	}
	return err
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
func nextSeq(ctx context.Context, tx querier, table string) (int64, error) {
	var n int64
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) + 1 FROM "+table).Scan(&n); err != nil {
		return 0, fmt.Errorf("next seq %s: %w", table, err)
	}
	return n, nil
}

// exists reports whether query (a SELECT 1 ... LIMIT 1) returns a row.
func exists(ctx context.Context, q querier, query string, args ...any) (bool, error) {
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
