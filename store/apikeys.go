package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gatehouse"
)

func keyNotFound(id string) error { return gatehouse.NotFound("apikey %q not found", id) }

func keyConflict(id string) error { return gatehouse.Conflict("apikey %q already exists", id) }

// prepareKey fills defaults and validates k; it touches no database.
func prepareKey(k *gatehouse.APIKey) error {
	k.FillDefaults()
	k.PreviousSecret, k.PreviousSecretValidUntil = "", nil // read-only: only a rotation sets them
	return k.Validate()
}

// keyRow is a key's column values in the order of keyCols.
type keyRow struct {
	args     []any
	entities []string
}

const keyCols = `client_secret, client_name, description, enabled, allow_client_id_only, read_only,
	throttling_quota, daily_quota, monthly_quota, valid_until, authorized_entities, metadata, tags,
	rotation_enabled, rotation_every, rotation_grace`

func encodeKey(k *gatehouse.APIKey, box *secretBox) (keyRow, error) {
	secret, err := box.seal(k.ClientSecret)
	if err != nil {
		return keyRow{}, err
	}
	ents, err := json.Marshal(k.AuthorizedEntities)
	if err != nil {
		return keyRow{}, fmt.Errorf("encode authorizedEntities: %w", err)
	}
	meta, err := json.Marshal(k.Metadata)
	if err != nil {
		return keyRow{}, fmt.Errorf("encode metadata: %w", err)
	}
	tags, err := json.Marshal(k.Tags)
	if err != nil {
		return keyRow{}, fmt.Errorf("encode tags: %w", err)
	}
	return keyRow{
		args: []any{secret, k.ClientName, k.Description, k.Enabled, k.AllowClientIDOnly, k.ReadOnly,
			k.ThrottlingQuota, k.DailyQuota, k.MonthlyQuota, intArg(k.ValidUntil), string(ents), string(meta), string(tags),
			k.Rotation.Enabled, k.Rotation.RotationEvery, k.Rotation.GracePeriod},
		entities: k.AuthorizedEntities,
	}, nil
}

// keyWriter holds the statements that insert keys inside one transaction,
// prepared once so a bulk import does not re-parse SQL per key.
type keyWriter struct {
	tx                   *txn
	insert, insertEntity *sql.Stmt
	seq                  int64
	now                  int64 // epoch ms: when automatic rotation's first period starts
	entities             entityChecker
}

func newKeyWriter(ctx context.Context, tx *txn) (*keyWriter, error) {
	seq, err := nextSeq(ctx, tx, "apikeys")
	if err != nil {
		return nil, err
	}
	ins, err := tx.PrepareContext(ctx, "INSERT INTO apikeys (client_id, seq, "+keyCols+
		", rotated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		return nil, fmt.Errorf("prepare insert apikey: %w", err)
	}
	ent, err := tx.PrepareContext(ctx, "INSERT OR IGNORE INTO apikey_entities (client_id, entity) VALUES (?, ?)")
	if err != nil {
		ins.Close()
		return nil, fmt.Errorf("prepare insert apikey entity: %w", err)
	}
	return &keyWriter{tx: tx, insert: ins, insertEntity: ent, seq: seq, now: tx.now}, nil
}

func (w *keyWriter) Close() {
	w.insert.Close()
	w.insertEntity.Close()
}

func (w *keyWriter) add(ctx context.Context, k *gatehouse.APIKey, field string) error {
	if err := w.entities.check(ctx, w.tx, k.AuthorizedEntities, field); err != nil {
		return err
	}
	row, err := encodeKey(k, w.tx.box)
	if err != nil {
		return err
	}
	args := append(append([]any{k.ClientID, w.seq}, row.args...), w.now)
	if _, err := w.insert.ExecContext(ctx, args...); err != nil {
		if isUniqueViolation(err) {
			return keyConflict(k.ClientID)
		}
		return fmt.Errorf("insert apikey: %w", err)
	}
	w.seq++
	w.tx.changed(gatehouse.KindAPIKey, k.ClientID, gatehouse.OpCreate)
	return writeEntities(ctx, w.insertEntity, k.ClientID, row.entities)
}

// entityChecker checks that authorizedEntities name existing groups and
// services, inside the write's transaction (so nothing can delete them
// before the commit), remembering what it found for a bulk import.
type entityChecker map[string]bool

func (c *entityChecker) check(ctx context.Context, q querier, entities []string, field string) error {
	if *c == nil {
		*c = entityChecker{}
	}
	for _, e := range entities {
		if (*c)[e] {
			continue
		}
		var query, id string
		if g, ok := strings.CutPrefix(e, "group_"); ok {
			query, id = "SELECT 1 FROM groups WHERE id = ?", g
		} else if sv, ok := strings.CutPrefix(e, "service_"); ok {
			query, id = "SELECT 1 FROM services WHERE id = ?", sv
		}
		ok := false
		if query != "" {
			var err error
			if ok, err = exists(ctx, q, query, id); err != nil {
				return fmt.Errorf("check authorizedEntities: %w", err)
			}
		}
		if !ok {
			return gatehouse.Invalid(field+"authorizedEntities", "%q names no existing group or service", e)
		}
		(*c)[e] = true
	}
	return nil
}

func writeEntities(ctx context.Context, stmt *sql.Stmt, clientID string, entities []string) error {
	for _, e := range entities {
		if _, err := stmt.ExecContext(ctx, clientID, e); err != nil {
			return fmt.Errorf("insert apikey entity: %w", err)
		}
	}
	return nil
}

// CreateAPIKey stores a new key, generating a missing client id and secret;
// a duplicate client id is a Conflict.
func (s *Store) CreateAPIKey(ctx context.Context, k *gatehouse.APIKey) error {
	if err := prepareKey(k); err != nil {
		return err
	}
	return s.write(ctx, func(tx *txn) error {
		w, err := newKeyWriter(ctx, tx)
		if err != nil {
			return err
		}
		defer w.Close()
		return w.add(ctx, k, "")
	})
}

// CreateAPIKeys stores up to gatehouse.MaxBulkKeys keys in one transaction, all or
// nothing. Defaults are filled in place. A validation error's Field is
// prefixed with the key's index ("[3].dailyQuota"); a client id that repeats
// within ks or already exists is a Conflict naming it.
func (s *Store) CreateAPIKeys(ctx context.Context, ks []gatehouse.APIKey) error {
	if len(ks) > gatehouse.MaxBulkKeys {
		return gatehouse.Invalid("", "at most %d keys per bulk request", gatehouse.MaxBulkKeys)
	}
	if len(ks) == 0 {
		return nil
	}
	seen := make(map[string]struct{}, len(ks))
	for i := range ks {
		if err := prepareKey(&ks[i]); err != nil {
			if e := gatehouse.AsError(err); e != nil {
				field := fmt.Sprintf("[%d]", i)
				if e.Field != "" {
					field += "." + e.Field
				}
				return gatehouse.Errorf(e.Kind, field, "%s", e.Message)
			}
			return err
		}
		if _, dup := seen[ks[i].ClientID]; dup {
			return gatehouse.Conflict("apikey %q appears more than once in the request", ks[i].ClientID)
		}
		seen[ks[i].ClientID] = struct{}{}
	}
	return s.write(ctx, func(tx *txn) error {
		w, err := newKeyWriter(ctx, tx)
		if err != nil {
			return err
		}
		defer w.Close()
		for i := range ks {
			if err := w.add(ctx, &ks[i], fmt.Sprintf("[%d].", i)); err != nil {
				return err
			}
		}
		return nil
	})
}

// UpdateAPIKey replaces an existing key.
func (s *Store) UpdateAPIKey(ctx context.Context, k *gatehouse.APIKey) error {
	if k.ClientID == "" {
		return gatehouse.Invalid("clientId", "must not be empty")
	}
	if err := prepareKey(k); err != nil {
		return err
	}
	row, err := encodeKey(k, s.box())
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *txn) error { return updateKey(ctx, tx, k, row) })
}

// updateKey rewrites an existing, validated key (row is encodeKey's) inside
// tx; a key whose row would be written as it is stored is left alone and
// records no change.
func updateKey(ctx context.Context, tx *txn, k *gatehouse.APIKey, row keyRow) error {
	var ec entityChecker
	if err := ec.check(ctx, tx, k.AuthorizedEntities, ""); err != nil {
		return err
	}
	cur, err := getAPIKey(ctx, tx, tx.box, k.ClientID)
	if err != nil {
		return err
	}
	same, err := sameKeyRow(&cur, k)
	if err != nil {
		return err
	}
	if same {
		k.PreviousSecret, k.PreviousSecretValidUntil = cur.PreviousSecret, cur.PreviousSecretValidUntil
		return nil
	}
	res, err := tx.ExecContext(ctx, `UPDATE apikeys SET client_secret = ?, client_name = ?, description = ?,
		enabled = ?, allow_client_id_only = ?, read_only = ?, throttling_quota = ?, daily_quota = ?,
		monthly_quota = ?, valid_until = ?, authorized_entities = ?, metadata = ?, tags = ?,
		rotation_enabled = ?, rotation_every = ?, rotation_grace = ?,
		rotated_at = CASE WHEN rotation_enabled THEN rotated_at ELSE ? END
		WHERE client_id = ?`, append(row.args, tx.now, k.ClientID)...)
	if err != nil {
		return fmt.Errorf("update apikey: %w", err)
	}
	if err := affected(res, keyNotFound(k.ClientID)); err != nil {
		return err
	}
	if err := readPrevious(ctx, tx, tx.box, k); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM apikey_entities WHERE client_id = ?", k.ClientID); err != nil {
		return fmt.Errorf("update apikey entities: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, "INSERT OR IGNORE INTO apikey_entities (client_id, entity) VALUES (?, ?)")
	if err != nil {
		return fmt.Errorf("update apikey entities: %w", err)
	}
	defer stmt.Close()
	tx.changed(gatehouse.KindAPIKey, k.ClientID, gatehouse.OpUpdate)
	return writeEntities(ctx, stmt, k.ClientID, row.entities)
}

// sameKeyRow reports whether writing k would store cur's row again. The
// rows are compared in clear (sealing is never the same twice); what a key
// shows but no update writes (the previous secret) cannot make it differ.
func sameKeyRow(cur, k *gatehouse.APIKey) (bool, error) {
	was, err := encodeKey(cur, nil)
	if err != nil {
		return false, err
	}
	now, err := encodeKey(k, nil)
	if err != nil {
		return false, err
	}
	return reflect.DeepEqual(was, now), nil
}

// DeleteAPIKey removes a key with its quota counters and usage history.
func (s *Store) DeleteAPIKey(ctx context.Context, clientID string) error {
	return s.write(ctx, func(tx *txn) error { return deleteKey(ctx, tx, clientID) })
}

// deleteKey removes a key, its counters and usage history inside tx.
func deleteKey(ctx context.Context, tx *txn, clientID string) error {
	res, err := tx.ExecContext(ctx, "DELETE FROM apikeys WHERE client_id = ?", clientID)
	if err != nil {
		return fmt.Errorf("delete apikey: %w", err)
	}
	if err := affected(res, keyNotFound(clientID)); err != nil {
		return err
	}
	for _, table := range []string{"counters", "usage_days", "key_last_used"} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE client_id = ?", clientID); err != nil {
			return fmt.Errorf("delete apikey %s: %w", table, err)
		}
	}
	tx.changed(gatehouse.KindAPIKey, clientID, gatehouse.OpDelete)
	return nil
}

// ResetQuotas sets an existing key's quota counters to zero, as a revision
// of its own, so that every reader of the change log resets them too. The
// usage history is kept.
func (s *Store) ResetQuotas(ctx context.Context, clientID string) error {
	return s.write(ctx, func(tx *txn) error {
		ok, err := exists(ctx, tx, "SELECT 1 FROM apikeys WHERE client_id = ?", clientID)
		if err != nil {
			return fmt.Errorf("reset quotas: %w", err)
		}
		if !ok {
			return keyNotFound(clientID)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM counters WHERE client_id = ?", clientID); err != nil {
			return fmt.Errorf("reset quotas: %w", err)
		}
		tx.changed(gatehouse.KindAPIKey, clientID, gatehouse.OpResetQuotas)
		return nil
	})
}

const keySelect = "SELECT client_id, " + keyCols + ", previous_secret, previous_valid_until FROM apikeys"

func scanKey(r rowScanner, box *secretBox) (gatehouse.APIKey, error) {
	var k gatehouse.APIKey
	var until, prevUntil sql.NullInt64
	var prev sql.NullString
	var ents, meta, tags []byte
	if err := r.Scan(&k.ClientID, &k.ClientSecret, &k.ClientName, &k.Description, &k.Enabled,
		&k.AllowClientIDOnly, &k.ReadOnly, &k.ThrottlingQuota, &k.DailyQuota, &k.MonthlyQuota,
		&until, &ents, &meta, &tags, &k.Rotation.Enabled, &k.Rotation.RotationEvery, &k.Rotation.GracePeriod,
		&prev, &prevUntil); err != nil {
		return k, err
	}
	k.ValidUntil = nullInt(until)
	if prev.Valid && prevUntil.Valid {
		k.PreviousSecret, k.PreviousSecretValidUntil = prev.String, &prevUntil.Int64
	}
	if err := openKeySecrets(&k, box); err != nil {
		return k, err
	}
	if err := json.Unmarshal(ents, &k.AuthorizedEntities); err != nil {
		return k, fmt.Errorf("decode authorizedEntities: %w", err)
	}
	if err := json.Unmarshal(meta, &k.Metadata); err != nil {
		return k, fmt.Errorf("decode metadata: %w", err)
	}
	if err := json.Unmarshal(tags, &k.Tags); err != nil {
		return k, fmt.Errorf("decode tags: %w", err)
	}
	k.FillDefaults() // JSON null decodes to nil; answer [] and {}
	return k, nil
}

// GetAPIKey returns the key with clientID, or NotFound.
func (s *Store) GetAPIKey(ctx context.Context, clientID string) (gatehouse.APIKey, error) {
	return getAPIKey(ctx, s.r, s.box(), clientID)
}

func getAPIKey(ctx context.Context, q querier, box *secretBox, clientID string) (gatehouse.APIKey, error) {
	k, err := scanKey(q.QueryRowContext(ctx, keySelect+" WHERE client_id = ?", clientID), box)
	if errors.Is(err, sql.ErrNoRows) {
		return gatehouse.APIKey{}, keyNotFound(clientID)
	}
	if err != nil {
		return gatehouse.APIKey{}, fmt.Errorf("get apikey: %w", err)
	}
	return k, nil
}

// keysByID calls fn with each key of ids that exists, in creation order.
func keysByID(ctx context.Context, q querier, box *secretBox, ids []string, fn func(k *gatehouse.APIKey) error) error {
	return eachKeyRow(ctx, q, keySelect, ids, func(rows *sql.Rows) error {
		k, err := scanKey(rows, box)
		if err != nil {
			return fmt.Errorf("get apikeys: %w", err)
		}
		return fn(&k)
	})
}

// eachKeyRow runs sel (a SELECT of apikeys) on the rows of ids, in creation
// order, with one query however many ids there are, and calls scan on each.
func eachKeyRow(ctx context.Context, q querier, sel string, ids []string, scan func(rows *sql.Rows) error) error {
	if len(ids) == 0 {
		return nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("get apikeys: %w", err)
	}
	rows, err := q.QueryContext(ctx, sel+" WHERE client_id IN (SELECT value FROM json_each(?)) ORDER BY seq", string(list))
	if err != nil {
		return fmt.Errorf("get apikeys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ListAPIKeys returns one page of keys in creation order and the total that
// match f. A ServiceID that does not exist is NotFound.
func (s *Store) ListAPIKeys(ctx context.Context, f gatehouse.KeyFilter, p gatehouse.Page) ([]gatehouse.APIKey, int, error) {
	ks := []gatehouse.APIKey{}
	var total int
	err := s.read(ctx, func(tx *sql.Tx) error {
		var where []string
		var args []any
		if f.GroupID != "" {
			where = append(where, "client_id IN (SELECT client_id FROM apikey_entities WHERE entity = ?)")
			args = append(args, gatehouse.GroupEntity(f.GroupID))
		}
		if f.ServiceID != "" {
			var groupID string
			err := tx.QueryRowContext(ctx, "SELECT group_id FROM services WHERE id = ?", f.ServiceID).Scan(&groupID)
			if errors.Is(err, sql.ErrNoRows) {
				return serviceNotFound(f.ServiceID)
			}
			if err != nil {
				return fmt.Errorf("list apikeys: %w", err)
			}
			where = append(where, "client_id IN (SELECT client_id FROM apikey_entities WHERE entity IN (?, ?))")
			args = append(args, gatehouse.ServiceEntity(f.ServiceID), gatehouse.GroupEntity(groupID))
		}
		if f.Enabled != nil {
			where = append(where, "enabled = ?")
			args = append(args, *f.Enabled)
		}
		if f.Q != "" {
			where = append(where, `(client_id LIKE ? ESCAPE '\' OR client_name LIKE ? ESCAPE '\')`)
			q := likeArg(f.Q)
			args = append(args, q, q)
		}
		cond := ""
		if len(where) > 0 {
			cond = " WHERE " + strings.Join(where, " AND ")
		}
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM apikeys"+cond, args...).Scan(&total); err != nil {
			return fmt.Errorf("count apikeys: %w", err)
		}
		order, err := keyOrder(f.Sort)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, keySelect+cond+order+" LIMIT ? OFFSET ?", append(args, p.Limit(), p.Offset())...)
		if err != nil {
			return fmt.Errorf("list apikeys: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			k, err := scanKey(rows, s.box())
			if err != nil {
				return fmt.Errorf("list apikeys: %w", err)
			}
			ks = append(ks, k)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list apikeys: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return ks, total, nil
}

// keyOrder is the ORDER BY of a key list; seq last keeps pages stable.
func keyOrder(sort string) (string, error) {
	switch sort {
	case "", gatehouse.SortCreated:
		return " ORDER BY seq", nil
	case gatehouse.SortName:
		return " ORDER BY client_name COLLATE NOCASE, seq", nil
	case gatehouse.SortLastUsed:
		return " ORDER BY (SELECT at FROM key_last_used u WHERE u.client_id = apikeys.client_id) DESC NULLS LAST, seq", nil
	}
	return "", gatehouse.Invalid("sort", "must be %s, %s or %s", gatehouse.SortCreated, gatehouse.SortName, gatehouse.SortLastUsed)
}

// ScanKeyAuth calls fn with every key, filling only what authentication,
// authorization and quotas need: client id and secret, enabled,
// allowClientIdOnly, readOnly, the three quotas, validUntil and
// authorizedEntities. k is reused between calls (copy it to keep it); its
// AuthorizedEntities slice is fresh each call, and equal entity strings are
// shared between keys to keep a million keys small in memory.
func (s *Store) ScanKeyAuth(ctx context.Context, fn func(k *gatehouse.APIKey) error) error {
	return scanKeyAuth(ctx, s.r, s.box(), fn)
}

func scanKeyAuth(ctx context.Context, q querier, box *secretBox, fn func(k *gatehouse.APIKey) error) error {
	rows, err := q.QueryContext(ctx, `SELECT client_id, client_secret, enabled, allow_client_id_only, read_only,
		throttling_quota, daily_quota, monthly_quota, valid_until, authorized_entities FROM apikeys`)
	if err != nil {
		return fmt.Errorf("scan apikeys: %w", err)
	}
	defer rows.Close()
	var (
		k                                 gatehouse.APIKey
		enabled, idOnly, readOnly         intCol
		throttling, daily, monthly, until intCol
		ents                              string
		intern                            = map[string]string{}
	)
	for rows.Next() {
		k = gatehouse.APIKey{}
		if err := rows.Scan(&k.ClientID, &k.ClientSecret, &enabled, &idOnly, &readOnly,
			&throttling, &daily, &monthly, &until, &ents); err != nil {
			return fmt.Errorf("scan apikeys: %w", err)
		}
		if isSealed(k.ClientSecret) {
			if k.ClientSecret, err = box.open(k.ClientSecret); err != nil {
				return fmt.Errorf("scan apikey %q: %w", k.ClientID, err)
			}
		}
		k.Enabled, k.AllowClientIDOnly, k.ReadOnly = enabled.v != 0, idOnly.v != 0, readOnly.v != 0
		k.ThrottlingQuota, k.DailyQuota, k.MonthlyQuota = throttling.v, daily.v, monthly.v
		if until.valid {
			v := until.v
			k.ValidUntil = &v
		}
		k.AuthorizedEntities, err = decodeEntities(ents, intern)
		if err != nil {
			return fmt.Errorf("scan apikey %q: %w", k.ClientID, err)
		}
		if err := fn(&k); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan apikeys: %w", err)
	}
	return nil
}

// intCol scans an INTEGER column (NULL allowed) as an sql.Scanner, which
// database/sql calls directly instead of taking its reflection path for
// *int64, which is measurably slower over a million rows.
type intCol struct {
	v     int64
	valid bool
}

func (c *intCol) Scan(src any) error {
	switch x := src.(type) {
	case int64:
		c.v, c.valid = x, true
	case bool: // a column declared BOOLEAN
		c.v, c.valid = 0, true
		if x {
			c.v = 1
		}
	case nil:
		c.v, c.valid = 0, false
	default:
		return fmt.Errorf("want an integer, got %T", src)
	}
	return nil
}

// decodeEntities decodes a JSON array of strings as the store writes it
// (json.Marshal of []string). Strings without escapes, which is every valid
// entity, are cut out directly; anything else goes through encoding/json.
// Results are interned in intern.
func decodeEntities(b string, intern map[string]string) ([]string, error) {
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return slowEntities(b)
	}
	body := b[1 : len(b)-1]
	if len(body) == 0 {
		return []string{}, nil
	}
	n := 1
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case ',':
			n++
		case '\\', ' ', '\t', '\n', '\r':
			return slowEntities(b)
		}
	}
	out := make([]string, 0, n)
	for len(body) > 0 {
		if len(body) < 2 || body[0] != '"' {
			return slowEntities(b)
		}
		end := 1
		for end < len(body) && body[end] != '"' {
			end++
		}
		if end == len(body) {
			return slowEntities(b)
		}
		raw := body[1:end]
		str, ok := intern[raw]
		if !ok {
			str = strings.Clone(raw) // not a slice of b: that would pin the whole row's JSON
			intern[str] = str
		}
		out = append(out, str)
		body = body[end+1:]
		if len(body) > 0 {
			if body[0] != ',' {
				return slowEntities(b)
			}
			body = body[1:]
			if len(body) == 0 {
				return slowEntities(b)
			}
		}
	}
	return out, nil
}

func slowEntities(b string) ([]string, error) {
	out := []string{}
	if err := json.Unmarshal([]byte(b), &out); err != nil {
		return nil, fmt.Errorf("decode authorizedEntities: %w", err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}
