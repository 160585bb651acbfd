package store

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gatehouse"
)

// The audit log (contract section 14) is written by write(), in the same
// transaction as the revision it describes: for every entity a revision
// touched, the entity's JSON after the write is compared with what the log
// last saw of it (audit_state), and the fields that differ become the
// entry's changes. Secrets never reach either table: in audit_state they are
// keyed fingerprints (so a changed secret still shows as changed), in an
// entry "REDACTED".

// zeroHash is the previous hash of the first entry.
var zeroHash = strings.Repeat("0", 64)

// fingerprintPrefix marks a secret's fingerprint inside audit_state's JSON.
const fingerprintPrefix = "REDACTED:"

const metaAuditKey = "audit_fingerprint_key"

// auditWriter writes one revision's entries inside its transaction.
type auditWriter struct {
	tx   *stmtCache // a bulk import writes thousands of entries: each statement is prepared once
	key  []byte     // fingerprints' HMAC key
	prev string     // the last entry's hash, once known
}

func (s *Store) newAuditWriter(ctx context.Context, tx *txn) (*auditWriter, error) {
	key, err := s.auditKey(ctx, tx)
	if err != nil {
		return nil, err
	}
	return &auditWriter{tx: &stmtCache{tx: tx.Tx, m: map[string]*sql.Stmt{}}, key: key}, nil
}

// stmtCache runs queries on tx through statements prepared once.
type stmtCache struct {
	tx *sql.Tx
	m  map[string]*sql.Stmt
}

func (c *stmtCache) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	st, err := c.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m[query] = st
	return st, nil
}

func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return c.tx.QueryRowContext(ctx, query, args...) // fails alike, with the error in the Row
	}
	return st.QueryRowContext(ctx, args...)
}

func (c *stmtCache) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (c *stmtCache) close() {
	for _, st := range c.m {
		st.Close()
	}
}

// auditKey reads, or makes on the first write, the fingerprints' key. It
// lives in the database so that every process writing the file fingerprints
// alike; sealed with the secrets key when there is one.
func (s *Store) auditKey(ctx context.Context, tx *txn) ([]byte, error) {
	var v string
	err := tx.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = ?", metaAuditKey).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("audit key: %w", err)
		}
		sealed, err := s.box().seal(hex.EncodeToString(key))
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, ?)", metaAuditKey, sealed); err != nil {
			return nil, fmt.Errorf("audit key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	plain, err := s.box().open(v)
	if err != nil {
		return nil, err
	}
	return hex.DecodeString(plain)
}

func (a *auditWriter) fingerprint(secret string) string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(secret))
	return fingerprintPrefix + hex.EncodeToString(m.Sum(nil))
}

// entityState is the entity's JSON object as the audit log compares it, nil
// when the entity does not exist (any more).
func (a *auditWriter) entityState(ctx context.Context, s *Store, kind, id string) (map[string]any, []byte, error) {
	var v any
	var err error
	switch kind {
	case gatehouse.KindGroup:
		v, err = getGroup(ctx, a.tx, id)
	case gatehouse.KindService:
		var sv gatehouse.Service
		sv, err = getService(ctx, a.tx, s.box(), id)
		for i := range sv.Plugins {
			sv.Plugins[i].Config = a.fingerprint(sv.Plugins[i].Config)
		}
		v = sv
	case gatehouse.KindAPIKey:
		var k gatehouse.APIKey
		k, err = getAPIKey(ctx, a.tx, s.box(), id)
		k.ClientSecret = a.fingerprint(k.ClientSecret)
		v = k
	case gatehouse.KindPlugin:
		v, err = getPlugin(ctx, a.tx, id)
	case gatehouse.KindUser:
		var u gatehouse.User
		var hash string
		u, hash, err = getUser(ctx, a.tx, id)
		u.Password = a.fingerprint(hash)
		v = u
	default:
		return nil, nil, fmt.Errorf("audit: unknown kind %q", kind)
	}
	if gatehouse.KindOf(err) == gatehouse.KindNotFound {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("audit %s %s: %w", kind, id, err)
	}
	return toObject(v)
}

// toObject turns v into its JSON object, numbers kept as written, and that JSON.
func toObject(v any) (map[string]any, []byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, nil, fmt.Errorf("audit: %w", err)
	}
	var m map[string]any
	if err := decodeNumbers(b, &m); err != nil {
		return nil, nil, err
	}
	return m, b, nil
}

func decodeNumbers(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("audit: decode: %w", err)
	}
	return nil
}

// record writes the entries of the revision rev whose changes are cs.
func (a *auditWriter) record(ctx context.Context, s *Store, rev, at int64, cs []gatehouse.Change) error {
	defer a.tx.close()
	type touched struct {
		kind, id string
		first    string // the first op recorded on it in this revision
		last     string
	}
	var order []*touched
	seen := map[[2]string]*touched{}
	for _, c := range cs {
		k := [2]string{c.Kind, c.ID}
		t := seen[k]
		if t == nil {
			t = &touched{kind: c.Kind, id: c.ID, first: c.Op}
			seen[k] = t
			order = append(order, t)
		}
		t.last = c.Op
	}
	actor, ip := gatehouse.ActorOf(ctx), gatehouse.RequestIPOf(ctx)
	for _, t := range order {
		before, err := a.snapshot(ctx, t.kind, t.id)
		if err != nil {
			return err
		}
		after, afterJSON, err := a.entityState(ctx, s, t.kind, t.id)
		if err != nil {
			return err
		}
		action := t.last
		switch {
		case before == nil && after != nil && t.first == gatehouse.OpCreate:
			action = gatehouse.OpCreate
		case after == nil:
			action = gatehouse.OpDelete
		}
		if err := a.saveSnapshot(ctx, t.kind, t.id, afterJSON); err != nil {
			return err
		}
		e := auditRow{revision: rev, at: at, actor: actor, ip: ip, action: action, kind: t.kind, id: t.id,
			changes: diff(before, after)}
		if a.prev, err = appendAudit(ctx, a.tx, a.prev, e); err != nil {
			return err
		}
	}
	return nil
}

func (a *auditWriter) snapshot(ctx context.Context, kind, id string) (map[string]any, error) {
	var js string
	err := a.tx.QueryRowContext(ctx, "SELECT json FROM audit_state WHERE kind = ? AND id = ?", kind, id).Scan(&js)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit state: %w", err)
	}
	var m map[string]any
	if err := decodeNumbers([]byte(js), &m); err != nil {
		return nil, err
	}
	return m, nil
}

func (a *auditWriter) saveSnapshot(ctx context.Context, kind, id string, state []byte) error {
	if state == nil {
		if _, err := a.tx.ExecContext(ctx, "DELETE FROM audit_state WHERE kind = ? AND id = ?", kind, id); err != nil {
			return fmt.Errorf("audit state: %w", err)
		}
		return nil
	}
	if _, err := a.tx.ExecContext(ctx, `INSERT INTO audit_state (kind, id, json) VALUES (?, ?, ?)
		ON CONFLICT (kind, id) DO UPDATE SET json = excluded.json`, kind, id, string(state)); err != nil {
		return fmt.Errorf("audit state: %w", err)
	}
	return nil
}

// diff lists the top-level fields whose values differ: [before, after],
// null for a side where the entity (or the field) does not exist, secrets
// redacted.
func diff(before, after map[string]any) map[string]any {
	out := map[string]any{}
	for k, b := range before {
		if av, ok := after[k]; !ok || !reflect.DeepEqual(b, av) {
			out[k] = []any{redact(b), redact(after[k])}
		}
	}
	for k, av := range after {
		if _, ok := before[k]; !ok {
			out[k] = []any{nil, redact(av)}
		}
	}
	return out
}

// redact replaces every fingerprint in v with "REDACTED".
func redact(v any) any {
	switch x := v.(type) {
	case string:
		if strings.HasPrefix(x, fingerprintPrefix) {
			return gatehouse.Redacted
		}
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = redact(x[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = redact(e)
		}
		return out
	}
	return v
}

// canonical is v's JSON as the hash chain reads it: keys sorted at every
// level (encoding/json sorts map keys), no insignificant whitespace, and
// '<', '>' and '&' written as themselves.
func canonical(v any) (string, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return "", fmt.Errorf("audit: encode: %w", err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// auditRow is one entry as stored, its changes as canonical JSON.
type auditRow struct {
	seq                         int64
	revision, at                int64
	actor, ip, action, kind, id string
	changes                     map[string]any
	changesJSON                 string
	hash                        string
}

// body is the entry's JSON without its hash, canonical: what the hash covers.
// changesJSON is canonical already when the store wrote it; a verifier reads
// it back from the row and canonicalizes it again, so that a row edited into
// another but equivalent spelling still verifies, and any other edit does not.
func (e *auditRow) body() (string, error) {
	var m map[string]any
	if err := decodeNumbers([]byte(e.changesJSON), &m); err != nil {
		return "", err
	}
	var changes any = m
	return e.bodyWith(changes)
}

func (e *auditRow) bodyWith(changes any) (string, error) {
	var ip any
	if e.ip != "" {
		ip = e.ip
	}
	return canonical(map[string]any{"revision": e.revision, "at": e.at, "actor": e.actor, "ip": ip,
		"action": e.action, "kind": e.kind, "id": e.id, "changes": changes})
}

// chainHash is the entry's hash after prev.
func chainHash(prev, body string) string {
	sum := sha256.Sum256([]byte(prev + body))
	return hex.EncodeToString(sum[:])
}

// appendAudit chains e to the last entry, whose hash is prev ("" to read
// it), stores it and returns its hash.
func appendAudit(ctx context.Context, tx *stmtCache, prev string, e auditRow) (string, error) {
	if prev == "" {
		prev = zeroHash
		err := tx.QueryRowContext(ctx, "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").Scan(&prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("audit: last hash: %w", err)
		}
	}
	changes, err := canonical(e.changes)
	if err != nil {
		return "", err
	}
	e.changesJSON = changes
	body, err := e.bodyWith(json.RawMessage(changes))
	if err != nil {
		return "", err
	}
	var ip any
	if e.ip != "" {
		ip = e.ip
	}
	hash := chainHash(prev, body)
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit (revision, at, actor, ip, action, kind, id, changes, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.revision, e.at, e.actor, ip, e.action, e.kind, e.id, changes,
		hash); err != nil {
		return "", fmt.Errorf("audit: insert: %w", err)
	}
	return hash, nil
}

// recordSession writes a sign-in, failed sign-in or sign-out entry of the
// user name, carrying the current revision, inside tx.
func (s *Store) recordSession(ctx context.Context, tx *sql.Tx, name, action string) error {
	rev, err := headRevision(ctx, tx)
	if err != nil {
		return err
	}
	c := &stmtCache{tx: tx, m: map[string]*sql.Stmt{}}
	defer c.close()
	_, err = appendAudit(ctx, c, "", auditRow{revision: rev, at: s.now().UnixMilli(),
		actor: gatehouse.UserActor(name), ip: gatehouse.RequestIPOf(ctx), action: action,
		kind: gatehouse.KindSession, id: name, changes: map[string]any{}})
	return err
}

// RecordSignInFailed writes a failed dashboard sign-in of the user name
// (who may not exist) to the audit log. Sign-ins and sign-outs are recorded
// by CreateSession and DeleteSession themselves.
func (s *Store) RecordSignInFailed(ctx context.Context, name string) error {
	return s.writeRaw(ctx, func(tx *sql.Tx) error {
		return s.recordSession(ctx, tx, name, gatehouse.ActionSignInFailed)
	})
}

const auditCols = "seq, revision, at, actor, COALESCE(ip, ''), action, kind, id, changes, hash"

func scanAudit(r rowScanner) (auditRow, error) {
	var e auditRow
	err := r.Scan(&e.seq, &e.revision, &e.at, &e.actor, &e.ip, &e.action, &e.kind, &e.id, &e.changesJSON, &e.hash)
	return e, err
}

func (e *auditRow) entry() (gatehouse.AuditEntry, error) {
	out := gatehouse.AuditEntry{Revision: e.revision, At: e.at, Actor: e.actor, Action: e.action,
		Kind: e.kind, ID: e.id, Hash: e.hash, Changes: map[string][2]json.RawMessage{}}
	if e.ip != "" {
		ip := e.ip
		out.IP = &ip
	}
	var raw map[string][2]json.RawMessage
	if err := json.Unmarshal([]byte(e.changesJSON), &raw); err != nil {
		return out, fmt.Errorf("audit: decode changes: %w", err)
	}
	if raw != nil {
		out.Changes = raw
	}
	return out, nil
}

// ListAudit returns one page of entries, newest first, and the total that
// match f.
func (s *Store) ListAudit(ctx context.Context, f gatehouse.AuditFilter, p gatehouse.Page) ([]gatehouse.AuditEntry, int, error) {
	var where []string
	var args []any
	if f.Since > 0 {
		where, args = append(where, "revision > ?"), append(args, f.Since)
	}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, f.Kind)
	}
	if f.ID != "" {
		where, args = append(where, "id = ?"), append(args, f.ID)
	}
	if f.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	out := []gatehouse.AuditEntry{}
	var total int
	err := s.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM audit"+cond, args...).Scan(&total); err != nil {
			return fmt.Errorf("count audit: %w", err)
		}
		rows, err := tx.QueryContext(ctx, "SELECT "+auditCols+" FROM audit"+cond+" ORDER BY seq DESC LIMIT ? OFFSET ?",
			append(args, p.Limit(), p.Offset())...)
		if err != nil {
			return fmt.Errorf("list audit: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanAudit(rows)
			if err != nil {
				return fmt.Errorf("list audit: %w", err)
			}
			e, err := r.entry()
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// ErrAuditBroken is what VerifyAudit wraps when the chain does not hold.
var ErrAuditBroken = errors.New("audit chain broken")

// VerifyAudit recomputes the hash chain from the stored entries. It returns
// nil when it holds, else an error wrapping ErrAuditBroken that names the
// revision of the first entry whose hash does not follow.
func (s *Store) VerifyAudit(ctx context.Context) (entries int, err error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+auditCols+" FROM audit ORDER BY seq")
	if err != nil {
		return 0, fmt.Errorf("read audit: %w", err)
	}
	defer rows.Close()
	prev := zeroHash
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return entries, fmt.Errorf("read audit: %w", err)
		}
		body, err := e.body()
		if err != nil || chainHash(prev, body) != e.hash {
			return entries, fmt.Errorf("%w at revision %d (entry %d)", ErrAuditBroken, e.revision, entries+1)
		}
		prev = e.hash
		entries++
	}
	return entries, rows.Err()
}
