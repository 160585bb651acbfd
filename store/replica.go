package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gatehouse"
)

// A cluster worker keeps a copy of its leader's configuration in its own
// file: the leader reads its change log with the entities' current state
// (ReplicaChanges) or all of it at once (Snapshot); the worker writes what it
// receives with the leader's revision numbers (ApplyReplicated,
// ApplySnapshot), so that its own follower applies it as any write and a
// restarted worker serves from its file without the leader.

// KindSnapshot is the change a snapshot's revision carries: every entity
// may have changed, so a follower reloads them all.
const KindSnapshot = "snapshot"

// ReplicaRevision is one revision of the leader's change log.
type ReplicaRevision struct {
	Revision int64              `json:"revision"`
	At       int64              `json:"at"`
	Actor    string             `json:"actor"`
	Changes  []gatehouse.Change `json:"changes"`
}

// ReplicaEntity is an entity's state as the leader has it; none of
// Group, Service, Key and Plugin is set when it is gone. Keys, the one
// entity there are a million of, travel as their rows (ReplicaKey), which
// the replication codec writes in binary: Key has no JSON form.
type ReplicaEntity struct {
	Kind    string             `json:"kind"`
	ID      string             `json:"id"`
	Group   *gatehouse.Group   `json:"group,omitempty"`
	Service *gatehouse.Service `json:"service,omitempty"`
	Key     *ReplicaKey        `json:"-"`
	Plugin  *gatehouse.Plugin  `json:"plugin,omitempty"`
	Wasm    []byte             `json:"wasm,omitempty"`
}

func (e *ReplicaEntity) gone() bool {
	return e.Group == nil && e.Service == nil && e.Key == nil && e.Plugin == nil
}

// ReplicaKey is an API key as its row holds it, its secrets in clear:
// the JSON columns (authorizedEntities, metadata, tags) are copied as
// they are, never decoded, and the previous secret of a rotation travels
// with the key so that workers accept it too.
type ReplicaKey struct {
	ClientID, Secret, Name, Description string
	Enabled, ClientIDOnly, ReadOnly     bool
	Throttling, Daily, Monthly          int64
	ValidUntil                          *int64 // epoch ms
	Entities, Metadata, Tags            string // JSON text, as stored
	RotationEnabled                     bool
	RotationEvery, RotationGrace        int64  // hours
	PreviousSecret                      string // "" when none
	PreviousUntil, RotatedAt            *int64 // epoch ms
}

// replicaKeyCols is every column of an apikeys row but client_id and seq,
// in the order of ReplicaKey's fields after ClientID.
const replicaKeyCols = keyCols + ", previous_secret, previous_valid_until, rotated_at"

const replicaKeySelect = "SELECT client_id, " + replicaKeyCols + " FROM apikeys"

// scanReplicaKey reads a row of "SELECT client_id, "+replicaKeyCols,
// opening its secrets.
func scanReplicaKey(r rowScanner, box *secretBox) (ReplicaKey, error) {
	var k ReplicaKey
	var until, prevUntil, rotated sql.NullInt64
	var prev sql.NullString
	if err := r.Scan(&k.ClientID, &k.Secret, &k.Name, &k.Description, &k.Enabled, &k.ClientIDOnly, &k.ReadOnly,
		&k.Throttling, &k.Daily, &k.Monthly, &until, &k.Entities, &k.Metadata, &k.Tags,
		&k.RotationEnabled, &k.RotationEvery, &k.RotationGrace, &prev, &prevUntil, &rotated); err != nil {
		return k, err
	}
	k.ValidUntil, k.PreviousUntil, k.RotatedAt = nullInt(until), nullInt(prevUntil), nullInt(rotated)
	var err error
	if k.Secret, err = box.open(k.Secret); err != nil {
		return k, err
	}
	if prev.Valid {
		if k.PreviousSecret, err = box.open(prev.String); err != nil {
			return k, err
		}
	}
	return k, nil
}

// AuthKeys turns the keys of a snapshot, as they are decoded, into what
// ScanKeyAuth reads of each: the fields the gateway checks a call against.
// The caller owns the returned function; intern spares a million copies of
// the same few entity names.
func AuthKeys() func(k *ReplicaKey) (gatehouse.APIKey, error) {
	intern := map[string]string{}
	return func(k *ReplicaKey) (gatehouse.APIKey, error) {
		a := gatehouse.APIKey{ClientID: k.ClientID, ClientSecret: k.Secret, Enabled: k.Enabled,
			AllowClientIDOnly: k.ClientIDOnly, ReadOnly: k.ReadOnly, ThrottlingQuota: k.Throttling,
			DailyQuota: k.Daily, MonthlyQuota: k.Monthly, ValidUntil: k.ValidUntil}
		var err error
		if a.AuthorizedEntities, err = decodeEntities(k.Entities, intern); err != nil {
			return a, fmt.Errorf("api key %q: %w", k.ClientID, err)
		}
		return a, nil
	}
}

func nullInt(v sql.NullInt64) *int64 {
	if !v.Valid {
		return nil
	}
	return &v.Int64
}

// rowArgs is the key's column values for "INSERT INTO apikeys (client_id,
// seq, "+replicaKeyCols+")", its secrets sealed with box. The JSON columns
// are checked first: a row that this file could not read back is refused.
func (k *ReplicaKey) rowArgs(seq int64, box *secretBox) ([]any, error) {
	for _, c := range [...]struct{ name, v string }{{"authorizedEntities", k.Entities}, {"metadata", k.Metadata}, {"tags", k.Tags}} {
		if !json.Valid([]byte(c.v)) {
			return nil, fmt.Errorf("api key %s: %s is not JSON", k.ClientID, c.name)
		}
	}
	secret, err := box.seal(k.Secret)
	if err != nil {
		return nil, err
	}
	var prev any
	if k.PreviousSecret != "" {
		if prev, err = box.seal(k.PreviousSecret); err != nil {
			return nil, err
		}
	}
	return []any{k.ClientID, seq, secret, k.Name, k.Description, k.Enabled, k.ClientIDOnly, k.ReadOnly,
		k.Throttling, k.Daily, k.Monthly, intArg(k.ValidUntil), k.Entities, k.Metadata, k.Tags,
		k.RotationEnabled, k.RotationEvery, k.RotationGrace, prev, intArg(k.PreviousUntil), intArg(k.RotatedAt)}, nil
}

func intArg(v *int64) any {
	if v == nil {
		return nil
	}
	return *v
}

// ErrNoChanges means the leader no longer holds the changes a reader asks
// for (its log does not reach back to them, or the reader is ahead of it):
// the reader takes a snapshot.
var ErrNoChanges = errors.New("the change log does not hold these revisions")

// ReplicaChanges returns, from one snapshot of the state, the revisions
// after from (at most limit) and the current state of every entity they
// name: groups, services and plugins in the order the revisions name them,
// then the keys in creation order, then the keys that are gone.
func (s *Store) ReplicaChanges(ctx context.Context, from int64, limit int) ([]ReplicaRevision, []ReplicaEntity, error) {
	var revs []ReplicaRevision
	var ents []ReplicaEntity
	err := s.read(ctx, func(tx *sql.Tx) error {
		head, err := headRevision(ctx, tx)
		if err != nil {
			return err
		}
		if from > head {
			return ErrNoChanges
		}
		rows, err := tx.QueryContext(ctx, `SELECT revision, at, actor FROM revisions
			WHERE revision > ? ORDER BY revision LIMIT ?`, from, limit)
		if err != nil {
			return fmt.Errorf("read revisions: %w", err)
		}
		for rows.Next() {
			var r ReplicaRevision
			if err := rows.Scan(&r.Revision, &r.At, &r.Actor); err != nil {
				rows.Close()
				return fmt.Errorf("read revisions: %w", err)
			}
			revs = append(revs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read revisions: %w", err)
		}
		if len(revs) == 0 {
			return nil
		}
		if revs[0].Revision != from+1 {
			return ErrNoChanges
		}
		cs, err := changesBetween(ctx, tx, from, revs[len(revs)-1].Revision)
		if err != nil {
			return err
		}
		byRev := map[int64]int{}
		for i, r := range revs {
			byRev[r.Revision] = i
		}
		seen := map[[2]string]bool{}
		var keyIDs []string
		for _, c := range cs {
			i := byRev[c.Revision]
			revs[i].Changes = append(revs[i].Changes, c)
			k := [2]string{c.Kind, c.ID}
			if seen[k] || c.Kind == gatehouse.KindUser {
				continue
			}
			seen[k] = true
			if c.Kind == gatehouse.KindAPIKey {
				keyIDs = append(keyIDs, c.ID) // read together below: a bulk names thousands
				continue
			}
			e, err := readEntity(ctx, tx, s.box(), c.Kind, c.ID)
			if err != nil {
				return err
			}
			ents = append(ents, e)
		}
		// The keys as they are, in creation order, then the ones gone.
		found := make(map[string]bool, len(keyIDs))
		if err := eachKeyRow(ctx, tx, replicaKeySelect, keyIDs, func(rows *sql.Rows) error {
			k, err := scanReplicaKey(rows, s.box())
			if err != nil {
				return fmt.Errorf("read apikey: %w", err)
			}
			found[k.ClientID] = true
			ents = append(ents, ReplicaEntity{Kind: gatehouse.KindAPIKey, ID: k.ClientID, Key: &k})
			return nil
		}); err != nil {
			return err
		}
		for _, id := range keyIDs {
			if !found[id] {
				ents = append(ents, ReplicaEntity{Kind: gatehouse.KindAPIKey, ID: id})
			}
		}
		return nil
	})
	return revs, ents, err
}

// readEntity reads the state of a group, service or plugin in tx; a missing
// one is gone.
func readEntity(ctx context.Context, q querier, box *secretBox, kind, id string) (ReplicaEntity, error) {
	e := ReplicaEntity{Kind: kind, ID: id}
	var err error
	switch kind {
	case gatehouse.KindGroup:
		var g gatehouse.Group
		if g, err = getGroup(ctx, q, id); err == nil {
			e.Group = &g
		}
	case gatehouse.KindService:
		var sv gatehouse.Service
		if sv, err = getService(ctx, q, box, id); err == nil {
			e.Service = &sv
		}
	case gatehouse.KindPlugin:
		var p gatehouse.Plugin
		if p, err = getPlugin(ctx, q, id); err == nil {
			e.Plugin = &p
			e.Wasm, err = pluginWasm(ctx, q, id)
		}
	}
	if gatehouse.KindOf(err) == gatehouse.KindNotFound {
		return ReplicaEntity{Kind: kind, ID: id}, nil
	}
	if err != nil {
		return e, fmt.Errorf("read %s %s: %w", kind, id, err)
	}
	return e, nil
}

// Snapshot calls head with the revision of one consistent snapshot of the
// configuration, then emit with each of its entities, groups first, then
// plugins, services and keys (the order their references need).
func (s *Store) Snapshot(ctx context.Context, head func(rev int64) error, emit func(*ReplicaEntity) error) error {
	return s.read(ctx, func(tx *sql.Tx) error {
		rev, err := headRevision(ctx, tx)
		if err != nil {
			return err
		}
		if err := head(rev); err != nil {
			return err
		}
		gs, err := tx.QueryContext(ctx, "SELECT id, name, description FROM groups ORDER BY seq")
		if err != nil {
			return fmt.Errorf("snapshot groups: %w", err)
		}
		for gs.Next() {
			var g gatehouse.Group
			if err := gs.Scan(&g.ID, &g.Name, &g.Description); err != nil {
				gs.Close()
				return fmt.Errorf("snapshot groups: %w", err)
			}
			if err := emit(&ReplicaEntity{Kind: gatehouse.KindGroup, ID: g.ID, Group: &g}); err != nil {
				gs.Close()
				return err
			}
		}
		gs.Close()
		ps, err := listPlugins(ctx, tx)
		if err != nil {
			return fmt.Errorf("snapshot plugins: %w", err)
		}
		for i := range ps {
			wasm, err := pluginWasm(ctx, tx, ps[i].ID)
			if err != nil {
				return fmt.Errorf("snapshot plugin %s: %w", ps[i].ID, err)
			}
			if err := emit(&ReplicaEntity{Kind: gatehouse.KindPlugin, ID: ps[i].ID, Plugin: &ps[i], Wasm: wasm}); err != nil {
				return err
			}
		}
		svs, err := queryServices(ctx, tx, s.box(), "SELECT data FROM services ORDER BY seq")
		if err != nil {
			return fmt.Errorf("snapshot services: %w", err)
		}
		for i := range svs {
			if err := emit(&ReplicaEntity{Kind: gatehouse.KindService, ID: svs[i].ID, Service: &svs[i]}); err != nil {
				return err
			}
		}
		// Keys by client id: a worker writes them in this order, so that
		// every index it fills is appended to (in creation order, the
		// client id index of a million random ids made its load 3 times
		// slower).
		ks, err := tx.QueryContext(ctx, replicaKeySelect+" ORDER BY client_id")
		if err != nil {
			return fmt.Errorf("snapshot apikeys: %w", err)
		}
		defer ks.Close()
		e := ReplicaEntity{Kind: gatehouse.KindAPIKey}
		for ks.Next() {
			k, err := scanReplicaKey(ks, s.box())
			if err != nil {
				return fmt.Errorf("snapshot apikeys: %w", err)
			}
			e.ID, e.Key = k.ClientID, &k
			if err := emit(&e); err != nil {
				return err
			}
		}
		return ks.Err()
	})
}

// replicaWriter upserts and deletes replicated entities inside one
// transaction, with statements prepared once (a snapshot has a million keys).
type replicaWriter struct {
	tx                                          *txn
	key, keyEnt, keyEntDel, group, service, plg *sql.Stmt
	seq                                         map[string]int64
	empty                                       bool // the tables were emptied: nothing to replace

	// A snapshot's keys are batched, a statement for many rows, and their
	// authorizedEntities rows are derived from each batch (fillEntities).
	keyArgs  []any
	plain    bool         // the batched rows are plain (plainDefaults)
	bound    []any        // a plain batch's bound values
	keyBatch [2]*sql.Stmt // by plain
	fill     *sql.Stmt
	filled   int64 // the last apikeys rowid whose entities are written
}

// keyRowArgs is the values of one apikeys row: client_id, seq and replicaKeyCols.
var keyRowArgs = len(keyRowCols)

// keyPlaceholders is the VALUES of one apikeys row.
func keyPlaceholders() string {
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", keyRowArgs), ", ") + ")"
}

// keyUpdates sets every column of replicaKeyCols from the row an upsert brings.
func keyUpdates() string {
	var sets []string
	for _, c := range strings.Split(replicaKeyCols, ",") {
		c = strings.TrimSpace(c)
		sets = append(sets, c+" = excluded."+c)
	}
	return strings.Join(sets, ", ")
}

// The writer's page cache while it loads a snapshot (KiB), and SQLite's
// defaults it returns to: the cache (KiB when negative) and the WAL size in
// pages that makes a commit checkpoint.
const (
	snapshotCacheKiB      = 512 << 10
	defaultCacheSize      = -2000
	defaultAutoCheckpoint = 1000
)

// keyBatchRows keys of at most 21 parameters stay far below SQLite's 32,766.
const keyBatchRows = 200

// keyRowCols is the column names of a key row as rowArgs makes it.
var keyRowCols = func() []string {
	cols := []string{"client_id", "seq"}
	for _, c := range strings.Split(replicaKeyCols, ",") {
		cols = append(cols, strings.TrimSpace(c))
	}
	return cols
}()

// plainDefaults are the values most keys leave every column but ten at: a
// batch of such plain rows writes them as literals and binds only the
// others, 10 parameters a row instead of 21 (binding took a third of a
// snapshot's writing). Each is the value rowArgs makes and its SQL literal.
var plainDefaults = map[string]struct {
	v   any
	sql string
}{
	"description": {"", "''"}, "allow_client_id_only": {false, "0"}, "read_only": {false, "0"},
	"valid_until": {nil, "NULL"}, "metadata": {"{}", "'{}'"}, "tags": {"[]", "'[]'"},
	"rotation_enabled": {false, "0"}, "rotation_every": {int64(gatehouse.DefaultRotationEvery), strconv.Itoa(gatehouse.DefaultRotationEvery)},
	"rotation_grace":  {int64(gatehouse.DefaultGracePeriod), strconv.Itoa(gatehouse.DefaultGracePeriod)},
	"previous_secret": {nil, "NULL"}, "previous_valid_until": {nil, "NULL"},
}

// plainAt and boundAt are the places in a row of the columns plainDefaults
// holds and of the others; plainValues the values at plainAt.
var plainAt, boundAt, plainValues = func() (p, b []int, v []any) {
	for i, c := range keyRowCols {
		if d, ok := plainDefaults[c]; ok {
			p, v = append(p, i), append(v, d.v)
		} else {
			b = append(b, i)
		}
	}
	return p, b, v
}()

// plain reports whether args (a row of rowArgs) has every plainDefaults value.
func plain(args []any) bool {
	for j, i := range plainAt {
		if args[i] != plainValues[j] {
			return false
		}
	}
	return true
}

// batchSQL is the statement inserting keyBatchRows rows, plain or not.
func batchSQL(plainRows bool) string {
	vals := make([]string, len(keyRowCols))
	for i, c := range keyRowCols {
		vals[i] = "?"
		if d, ok := plainDefaults[c]; ok && plainRows {
			vals[i] = d.sql
		}
	}
	row := "(" + strings.Join(vals, ", ") + ")"
	return "INSERT INTO apikeys (" + strings.Join(keyRowCols, ", ") + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(row+", ", keyBatchRows), ", ")
}

func (w *replicaWriter) batchKey(ctx context.Context, args []any) error {
	p := plain(args)
	if len(w.keyArgs) > 0 && p != w.plain {
		if err := w.flush(ctx); err != nil {
			return err
		}
	}
	w.plain = p
	w.keyArgs = append(w.keyArgs, args...)
	if len(w.keyArgs) >= keyBatchRows*keyRowArgs {
		return w.flush(ctx)
	}
	return nil
}

// flush writes the batched keys: a whole batch with one statement, what is
// left row by row.
func (w *replicaWriter) flush(ctx context.Context) error {
	if len(w.keyArgs) == keyBatchRows*keyRowArgs {
		stmt := &w.keyBatch[boolInt(w.plain)]
		if *stmt == nil {
			var err error
			if *stmt, err = w.tx.PrepareContext(ctx, batchSQL(w.plain)); err != nil {
				return fmt.Errorf("prepare key batch: %w", err)
			}
		}
		args := w.keyArgs
		if w.plain { // only the columns that are not literals
			args = w.bound[:0]
			for row := 0; row < len(w.keyArgs); row += keyRowArgs {
				for _, i := range boundAt {
					args = append(args, w.keyArgs[row+i])
				}
			}
			w.bound = args
		}
		if _, err := (*stmt).ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("insert key batch: %w", err)
		}
		clear(w.bound)
	} else {
		for i := 0; i < len(w.keyArgs); i += keyRowArgs {
			if _, err := w.key.ExecContext(ctx, w.keyArgs[i:i+keyRowArgs]...); err != nil {
				return fmt.Errorf("insert key: %w", err)
			}
		}
	}
	clear(w.keyArgs) // let the batch's strings go
	w.keyArgs = w.keyArgs[:0]
	return w.fillEntities(ctx)
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// fillEntities writes the apikey_entities rows of the keys flush wrote since
// its last call, from their authorized_entities column. A snapshot's keys
// come in client id order, so this appends to both of the table's indexes,
// and it runs batch by batch, while the leader is still sending.
func (w *replicaWriter) fillEntities(ctx context.Context) error {
	if w.fill == nil {
		var err error
		if w.fill, err = w.tx.PrepareContext(ctx, `INSERT OR IGNORE INTO apikey_entities (client_id, entity)
			SELECT a.client_id, j.value FROM apikeys a, json_each(a.authorized_entities) j
			WHERE a.rowid > ? AND j.type = 'text'`); err != nil {
			return fmt.Errorf("prepare apikey entities: %w", err)
		}
	}
	if _, err := w.fill.ExecContext(ctx, w.filled); err != nil {
		return fmt.Errorf("snapshot apikey entities: %w", err)
	}
	if err := w.tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(rowid), 0) FROM apikeys").Scan(&w.filled); err != nil {
		return fmt.Errorf("snapshot apikey entities: %w", err)
	}
	return nil
}

func newReplicaWriter(ctx context.Context, tx *txn) (*replicaWriter, error) {
	// References are checked at the commit: the leader's state is whole
	// only once every entity of the batch is written.
	if _, err := tx.ExecContext(ctx, "PRAGMA defer_foreign_keys = ON"); err != nil {
		return nil, fmt.Errorf("defer foreign keys: %w", err)
	}
	w := &replicaWriter{tx: tx, seq: map[string]int64{}}
	for _, t := range []string{"groups", "services", "apikeys", "plugins"} {
		n, err := nextSeq(ctx, tx, t)
		if err != nil {
			return nil, err
		}
		w.seq[t] = n
	}
	stmts := []struct {
		dst **sql.Stmt
		q   string
	}{
		{&w.key, "INSERT INTO apikeys (client_id, seq, " + replicaKeyCols + ") VALUES " + keyPlaceholders() +
			" ON CONFLICT (client_id) DO UPDATE SET " + keyUpdates()},
		{&w.keyEnt, "INSERT OR IGNORE INTO apikey_entities (client_id, entity) VALUES (?, ?)"},
		{&w.keyEntDel, "DELETE FROM apikey_entities WHERE client_id = ?"},
		{&w.group, `INSERT INTO groups (id, seq, name, description) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description`},
		{&w.service, `INSERT INTO services (id, seq, group_id, data) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET group_id = excluded.group_id, data = excluded.data`},
		{&w.plg, `INSERT INTO plugins (id, seq, name, sha256, abi, memory_limit_pages, timeout_ms, pool_size, wasm)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET name = excluded.name, sha256 = excluded.sha256, abi = excluded.abi,
			memory_limit_pages = excluded.memory_limit_pages, timeout_ms = excluded.timeout_ms,
			pool_size = excluded.pool_size, wasm = excluded.wasm`},
	}
	for _, st := range stmts {
		p, err := tx.PrepareContext(ctx, st.q)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("prepare replica write: %w", err)
		}
		*st.dst = p
	}
	return w, nil
}

func (w *replicaWriter) Close() {
	for _, s := range []*sql.Stmt{w.key, w.keyEnt, w.keyEntDel, w.group, w.service, w.plg, w.keyBatch[0], w.keyBatch[1], w.fill} {
		if s != nil {
			s.Close()
		}
	}
}

func (w *replicaWriter) next(table string) int64 {
	n := w.seq[table]
	w.seq[table] = n + 1
	return n
}

// put writes e as the leader has it: upserted, or deleted when gone.
func (w *replicaWriter) put(ctx context.Context, e *ReplicaEntity) error {
	if e.gone() {
		return w.delete(ctx, e.Kind, e.ID)
	}
	var err error
	switch e.Kind {
	case gatehouse.KindGroup:
		_, err = w.group.ExecContext(ctx, e.ID, w.next("groups"), e.Group.Name, e.Group.Description)
	case gatehouse.KindService:
		var data []byte
		if data, err = prepareService(e.Service, w.tx.box); err == nil {
			_, err = w.service.ExecContext(ctx, e.ID, w.next("services"), e.Service.GroupID, string(data))
		}
	case gatehouse.KindPlugin:
		p := e.Plugin
		_, err = w.plg.ExecContext(ctx, e.ID, w.next("plugins"), p.Name, wasmSum(e.Wasm), p.ABI,
			p.MemoryLimitPages, p.TimeoutMs, p.PoolSize, e.Wasm)
	case gatehouse.KindAPIKey:
		var args []any
		if args, err = e.Key.rowArgs(w.next("apikeys"), w.tx.box); err != nil {
			break
		}
		if w.empty {
			err = w.batchKey(ctx, args)
			break
		}
		if _, err = w.key.ExecContext(ctx, args...); err != nil {
			break
		}
		if _, err = w.keyEntDel.ExecContext(ctx, e.ID); err != nil {
			break
		}
		var ents []string
		if err = json.Unmarshal([]byte(e.Key.Entities), &ents); err != nil {
			break
		}
		err = writeEntities(ctx, w.keyEnt, e.ID, ents)
	default:
		return nil // an entity workers do not keep (dashboard users)
	}
	if err != nil {
		return fmt.Errorf("write replicated %s %s: %w", e.Kind, e.ID, err)
	}
	return nil
}

func (w *replicaWriter) delete(ctx context.Context, kind, id string) error {
	var q []string
	switch kind {
	case gatehouse.KindGroup:
		q = []string{"DELETE FROM groups WHERE id = ?"}
	case gatehouse.KindService:
		q = []string{"DELETE FROM services WHERE id = ?"}
	case gatehouse.KindPlugin:
		q = []string{"DELETE FROM plugins WHERE id = ?"}
	case gatehouse.KindAPIKey:
		q = []string{"DELETE FROM apikeys WHERE client_id = ?", "DELETE FROM counters WHERE client_id = ?",
			"DELETE FROM usage_days WHERE client_id = ?", "DELETE FROM key_last_used WHERE client_id = ?"}
	}
	for _, s := range q {
		if _, err := w.tx.ExecContext(ctx, s, id); err != nil {
			return fmt.Errorf("delete replicated %s %s: %w", kind, id, err)
		}
	}
	return nil
}

// ApplyReplicated writes the leader's revisions after this file's last one,
// with the entities' states, in one transaction: the revisions keep the
// leader's numbers, so the follower applies them like any write.
// Revisions this file has already are skipped.
func (s *Store) ApplyReplicated(ctx context.Context, revs []ReplicaRevision, ents []ReplicaEntity) error {
	return s.write(ctx, func(tx *txn) error {
		head, err := headRevision(ctx, tx)
		if err != nil {
			return err
		}
		var fresh []ReplicaRevision
		for _, r := range revs {
			if r.Revision > head {
				fresh = append(fresh, r)
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		if fresh[0].Revision != head+1 {
			return fmt.Errorf("replicate revision %d after %d: %w", fresh[0].Revision, head, ErrNoChanges)
		}
		w, err := newReplicaWriter(ctx, tx)
		if err != nil {
			return err
		}
		defer w.Close()
		// Deletions first (keys before what they name), then the rest
		// in the order the leader wrote them.
		for i := len(ents) - 1; i >= 0; i-- {
			if ents[i].gone() {
				if err := w.put(ctx, &ents[i]); err != nil {
					return err
				}
			}
		}
		for i := range ents {
			if !ents[i].gone() {
				if err := w.put(ctx, &ents[i]); err != nil {
					return err
				}
			}
		}
		tx.replicated = fresh
		return nil
	})
}

// ApplySnapshot replaces this file's configuration with the leader's at
// revision rev, reading the entities from next until it answers nil, in
// one transaction. What the file had and the snapshot does not is deleted;
// the revision carries a KindSnapshot change, so the follower reloads all.
func (s *Store) ApplySnapshot(ctx context.Context, rev int64, next func() (*ReplicaEntity, error)) (err error) {
	// A million keys make a transaction of a few hundred MiB. With SQLite's
	// 2 MiB page cache it spills and re-reads pages: the cache may grow for
	// the snapshot. Its commit would checkpoint the whole WAL into the file
	// (seconds) before the gateway serves it: that is done after, instead.
	// The writer is one connection, so these settings are its own.
	for _, p := range []string{fmt.Sprintf("cache_size = -%d", snapshotCacheKiB), "wal_autocheckpoint = 0"} {
		if _, err := s.w.ExecContext(ctx, "PRAGMA "+p); err != nil {
			return fmt.Errorf("snapshot: pragma %s: %w", p, err)
		}
	}
	defer func() {
		// The checkpoint is the work the commit skipped; when readers keep
		// it from finishing, the next commits go on with it.
		ctx := context.WithoutCancel(ctx)
		_, _ = s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
		for _, p := range []string{fmt.Sprintf("cache_size = %d", defaultCacheSize), fmt.Sprintf("wal_autocheckpoint = %d", defaultAutoCheckpoint)} {
			if _, perr := s.w.ExecContext(ctx, "PRAGMA "+p); perr != nil && err == nil {
				err = fmt.Errorf("after a snapshot: pragma %s: %w", p, perr)
			}
		}
	}()
	return s.write(ctx, func(tx *txn) error {
		tables := []struct{ kind, table, col string }{
			{gatehouse.KindAPIKey, "apikeys", "client_id"}, {gatehouse.KindService, "services", "id"},
			{gatehouse.KindPlugin, "plugins", "id"}, {gatehouse.KindGroup, "groups", "id"},
		}
		// What the file has now, to tell the follower what is gone; then
		// the tables are emptied and filled with plain inserts.
		old := map[[2]string]bool{}
		for _, t := range tables {
			rows, err := tx.QueryContext(ctx, "SELECT "+t.col+" FROM "+t.table)
			if err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return fmt.Errorf("snapshot: %w", err)
				}
				old[[2]string{t.kind, id}] = true
			}
			rows.Close()
		}
		w, err := newReplicaWriter(ctx, tx)
		if err != nil {
			return err
		}
		defer w.Close()
		w.empty = true
		for _, q := range []string{"DELETE FROM apikey_entities", "DELETE FROM apikeys", "DELETE FROM services",
			"DELETE FROM plugins", "DELETE FROM groups"} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
		}
		for {
			e, err := next()
			if err != nil {
				return err
			}
			if e == nil {
				break
			}
			if err := w.put(ctx, e); err != nil {
				return err
			}
			delete(old, [2]string{e.Kind, e.ID})
		}
		if err := w.flush(ctx); err != nil {
			return err
		}
		for k := range old {
			if err := w.delete(ctx, k[0], k[1]); err != nil {
				return err
			}
			tx.changed(k[0], k[1], gatehouse.OpDelete)
		}
		// The file's own log from rev on is not the leader's: it goes.
		for _, q := range []string{"DELETE FROM changes WHERE revision >= ?", "DELETE FROM revisions WHERE revision >= ?"} {
			if _, err := tx.ExecContext(ctx, q, rev); err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
		}
		tx.changes = append(tx.changes, gatehouse.Change{Kind: KindSnapshot, Op: gatehouse.OpUpdate})
		tx.replicated = []ReplicaRevision{{Revision: rev, At: s.now().UnixMilli(), Actor: "leader", Changes: tx.changes}}
		return nil
	})
}

// logReplicated writes the leader's revisions and changes as they are and
// returns the last revision.
func (s *Store) logReplicated(ctx context.Context, t *txn) (int64, error) {
	rev, err := t.PrepareContext(ctx, "INSERT INTO revisions (revision, at, actor) VALUES (?, ?, ?)")
	if err != nil {
		return 0, fmt.Errorf("insert revision: %w", err)
	}
	defer rev.Close()
	ch, err := t.PrepareContext(ctx, "INSERT INTO changes (revision, kind, id, op) VALUES (?, ?, ?, ?)")
	if err != nil {
		return 0, fmt.Errorf("insert changes: %w", err)
	}
	defer ch.Close()
	var last int64
	for _, r := range t.replicated {
		if _, err := rev.ExecContext(ctx, r.Revision, r.At, r.Actor); err != nil {
			return 0, fmt.Errorf("insert revision %d: %w", r.Revision, err)
		}
		for _, c := range r.Changes {
			if _, err := ch.ExecContext(ctx, r.Revision, c.Kind, c.ID, c.Op); err != nil {
				return 0, fmt.Errorf("insert change: %w", err)
			}
		}
		last = r.Revision
	}
	return last, nil
}
