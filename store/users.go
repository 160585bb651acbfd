package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"gatehouse"
)

func userNotFound(name string) error { return gatehouse.NotFound("user %q not found", name) }

// CreateUser stores a dashboard admin; an existing username is a Conflict.
func (s *Store) CreateUser(ctx context.Context, username, passwordHash string) error {
	if strings.TrimSpace(username) == "" {
		return gatehouse.Invalid("username", "must not be empty")
	}
	return s.createUser(ctx, username, gatehouse.RoleAdmin, passwordHash)
}

func (s *Store) createUser(ctx context.Context, username, role, passwordHash string) error {
	if passwordHash == "" {
		return gatehouse.Invalid("password", "must not be empty")
	}
	return s.write(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO users (username, password_hash, role) VALUES (?, ?, ?)",
			username, passwordHash, role)
		if isUniqueViolation(err) {
			return gatehouse.Conflict("user %q already exists", username)
		}
		if err != nil {
			return fmt.Errorf("insert user: %w", err)
		}
		tx.changed(gatehouse.KindUser, username, gatehouse.OpCreate)
		return nil
	})
}

// UserPasswordHash returns the user's password hash, or NotFound.
func (s *Store) UserPasswordHash(ctx context.Context, username string) (string, error) {
	var h string
	err := s.r.QueryRowContext(ctx, "SELECT password_hash FROM users WHERE username = ?", username).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", userNotFound(username)
	}
	if err != nil {
		return "", fmt.Errorf("get user: %w", err)
	}
	return h, nil
}

// SetUserPassword replaces an existing user's password hash.
func (s *Store) SetUserPassword(ctx context.Context, username, passwordHash string) error {
	if passwordHash == "" {
		return gatehouse.Invalid("password", "must not be empty")
	}
	return s.write(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, "UPDATE users SET password_hash = ? WHERE username = ?", passwordHash, username)
		if err != nil {
			return fmt.Errorf("set user password: %w", err)
		}
		if err := affected(res, userNotFound(username)); err != nil {
			return err
		}
		tx.changed(gatehouse.KindUser, username, gatehouse.OpUpdate)
		return nil
	})
}

// CreateSession stores a dashboard session for an existing user.
func (s *Store) CreateSession(ctx context.Context, se gatehouse.Session) error {
	if se.TokenHash == "" {
		return gatehouse.Invalid("tokenHash", "must not be empty")
	}
	return s.writeRaw(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, "SELECT 1 FROM users WHERE username = ?", se.Username)
		if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		if !ok {
			return userNotFound(se.Username)
		}
		csrf, err := s.box().seal(se.CSRFToken)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO sessions (token_hash, username, csrf_token, expires_at) VALUES (?, ?, ?, ?)",
			se.TokenHash, se.Username, csrf, se.ExpiresAt)
		if isUniqueViolation(err) {
			return gatehouse.Conflict("session already exists")
		}
		if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		return s.recordSession(ctx, tx, se.Username, gatehouse.ActionSignIn)
	})
}

// GetSession returns an unexpired session by token hash; a missing or
// expired one is NotFound.
func (s *Store) GetSession(ctx context.Context, tokenHash string) (gatehouse.Session, error) {
	return s.getSession(ctx, tokenHash, time.Now().Unix())
}

func (s *Store) getSession(ctx context.Context, tokenHash string, nowUnix int64) (gatehouse.Session, error) {
	var se gatehouse.Session
	err := s.r.QueryRowContext(ctx, `SELECT token_hash, s.username, csrf_token, expires_at, u.role
		FROM sessions s JOIN users u ON u.username = s.username
		WHERE token_hash = ? AND expires_at > ?`, tokenHash, nowUnix).
		Scan(&se.TokenHash, &se.Username, &se.CSRFToken, &se.ExpiresAt, &se.Role)
	if errors.Is(err, sql.ErrNoRows) {
		return gatehouse.Session{}, gatehouse.NotFound("session not found")
	}
	if err != nil {
		return gatehouse.Session{}, fmt.Errorf("get session: %w", err)
	}
	if se.CSRFToken, err = s.box().open(se.CSRFToken); err != nil {
		return gatehouse.Session{}, err
	}
	return se, nil
}

// DeleteSession removes a session and records its user's sign-out; a
// missing one is not an error (logout is idempotent).
func (s *Store) DeleteSession(ctx context.Context, tokenHash string) error {
	return s.writeRaw(ctx, func(tx *sql.Tx) error {
		var name string
		err := tx.QueryRowContext(ctx, "DELETE FROM sessions WHERE token_hash = ? RETURNING username", tokenHash).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete session: %w", err)
		}
		return s.recordSession(ctx, tx, name, gatehouse.ActionSignOut)
	})
}

// DeleteExpiredSessions removes sessions that expired at or before nowUnix.
func (s *Store) DeleteExpiredSessions(ctx context.Context, nowUnix int64) error {
	return s.writeRaw(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE expires_at <= ?", nowUnix); err != nil {
			return fmt.Errorf("delete expired sessions: %w", err)
		}
		return nil
	})
}

// GetMeta returns a bootstrap value and whether it is set.
func (s *Store) GetMeta(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := s.r.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("get meta: %w", err)
	}
	return v, true, nil
}

// SetMeta sets a bootstrap value, replacing any previous one.
func (s *Store) SetMeta(ctx context.Context, key, value string) error {
	return s.writeRaw(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
			return fmt.Errorf("set meta: %w", err)
		}
		return nil
	})
}
