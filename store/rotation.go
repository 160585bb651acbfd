package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gatehouse"
)

// readPrevious fills k's previous secret and its end from the row, inside tx.
func readPrevious(ctx context.Context, q querier, box *secretBox, k *gatehouse.APIKey) error {
	var prev sql.NullString
	var until sql.NullInt64
	err := q.QueryRowContext(ctx, "SELECT previous_secret, previous_valid_until FROM apikeys WHERE client_id = ?",
		k.ClientID).Scan(&prev, &until)
	if err != nil {
		return fmt.Errorf("read previous secret: %w", err)
	}
	k.PreviousSecret, k.PreviousSecretValidUntil = "", nil
	if prev.Valid && until.Valid {
		if k.PreviousSecret, err = box.open(prev.String); err != nil {
			return err
		}
		k.PreviousSecretValidUntil = &until.Int64
	}
	return nil
}

// RotateAPIKey makes newSecret (generated when empty) the key's secret and
// keeps accepting the one it replaces for graceHours (the key's own
// rotation.gracePeriod when negative) from now on the store's clock; 0
// revokes it at once. It is a revision of its own (op rotate) and returns
// the key as it is then.
func (s *Store) RotateAPIKey(ctx context.Context, clientID, newSecret string, graceHours int64) (gatehouse.APIKey, error) {
	return s.RotateAPIKeyAt(ctx, clientID, newSecret, graceHours, s.now().UnixMilli())
}

// RotateAPIKeyAt is RotateAPIKey at nowMs (epoch ms).
func (s *Store) RotateAPIKeyAt(ctx context.Context, clientID, newSecret string, graceHours, nowMs int64) (gatehouse.APIKey, error) {
	if newSecret == "" {
		newSecret = gatehouse.NewClientSecret()
	}
	if graceHours > gatehouse.MaxGracePeriod {
		return gatehouse.APIKey{}, gatehouse.Invalid("gracePeriod", "must be between 0 and %d hours", gatehouse.MaxGracePeriod)
	}
	var k gatehouse.APIKey
	err := s.write(ctx, func(tx *txn) error {
		cur, err := getAPIKey(ctx, tx, s.box(), clientID)
		if err != nil {
			return err
		}
		if graceHours < 0 {
			graceHours = cur.Rotation.GracePeriod
		}
		next := cur
		next.ClientSecret = newSecret
		if err := next.Validate(); err != nil {
			return err // the new secret's own rules, under its own field name
		}
		var prev, until any
		if graceHours > 0 && cur.ClientSecret != newSecret {
			if prev, err = tx.box.seal(cur.ClientSecret); err != nil {
				return err
			}
			until = nowMs + graceHours*3_600_000
		}
		sealed, err := tx.box.seal(newSecret)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE apikeys SET client_secret = ?, previous_secret = ?,
			previous_valid_until = ?, rotated_at = ? WHERE client_id = ?`,
			sealed, prev, until, nowMs, clientID); err != nil {
			return fmt.Errorf("rotate apikey: %w", err)
		}
		tx.changed(gatehouse.KindAPIKey, clientID, gatehouse.OpRotate)
		k, err = getAPIKey(ctx, tx, s.box(), clientID)
		return err
	})
	if err != nil {
		return gatehouse.APIKey{}, err
	}
	return k, nil
}

// DueRotations returns the keys whose automatic rotation is due at nowMs:
// rotation enabled and rotationEvery hours passed since the last rotation
// (or since rotation was switched on).
func (s *Store) DueRotations(ctx context.Context, nowMs int64) ([]string, error) {
	return queryIDs(ctx, s.r, `SELECT client_id FROM apikeys WHERE rotation_enabled
		AND rotated_at IS NOT NULL AND rotated_at + rotation_every * 3600000 <= ? ORDER BY seq`, nowMs)
}

// ForgetExpiredSecrets removes the previous secrets whose grace period has
// ended at nowMs, as one revision (so the database stops holding them and
// previousSecretValidUntil turns null); no revision when there are none.
func (s *Store) ForgetExpiredSecrets(ctx context.Context, nowMs int64) error {
	return s.write(ctx, func(tx *txn) error {
		ids, err := queryIDs(ctx, tx, `SELECT client_id FROM apikeys
			WHERE previous_valid_until IS NOT NULL AND previous_valid_until <= ? ORDER BY seq`, nowMs)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE apikeys SET previous_secret = NULL,
				previous_valid_until = NULL WHERE client_id = ?`, id); err != nil {
				return fmt.Errorf("forget previous secret: %w", err)
			}
			tx.changed(gatehouse.KindAPIKey, id, gatehouse.OpUpdate)
		}
		return nil
	})
}

// ScanPreviousSecrets calls fn with every previous secret still accepted at
// nowMs: what the gateway loads at start beside its key index.
func (s *Store) ScanPreviousSecrets(ctx context.Context, nowMs int64, fn func(clientID, secret string, until int64)) error {
	return scanPreviousSecrets(ctx, s.r, s.box(), nowMs, fn)
}

func scanPreviousSecrets(ctx context.Context, q querier, box *secretBox, nowMs int64, fn func(clientID, secret string, until int64)) error {
	rows, err := q.QueryContext(ctx, `SELECT client_id, previous_secret, previous_valid_until FROM apikeys
		WHERE previous_secret IS NOT NULL AND previous_valid_until > ?`, nowMs)
	if err != nil {
		return fmt.Errorf("scan previous secrets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, secret string
		var until int64
		if err := rows.Scan(&id, &secret, &until); err != nil {
			return fmt.Errorf("scan previous secrets: %w", err)
		}
		if secret, err = box.open(secret); err != nil {
			return fmt.Errorf("scan previous secrets: %w", err)
		}
		fn(id, secret, until)
	}
	return rows.Err()
}

func queryIDs(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list ids: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list ids: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// SetClock sets the clock the store stamps revisions, audit entries and the
// start of automatic rotation periods with (time.Now by default), so that
// they agree with the server's own; call it before the store is shared.
func (s *Store) SetClock(now func() time.Time) {
	s.writeMu.Lock()
	s.now = now
	s.writeMu.Unlock()
}
