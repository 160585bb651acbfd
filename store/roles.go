package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"gatehouse"
)

// Dashboard users with roles (contract section 14): /api/users and the
// dashboard's Users page write through these.

func getUser(ctx context.Context, q querier, name string) (gatehouse.User, string, error) {
	u := gatehouse.User{Name: name}
	var hash string
	err := q.QueryRowContext(ctx, "SELECT role, password_hash FROM users WHERE username = ?", name).Scan(&u.Role, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return u, "", userNotFound(name)
	}
	if err != nil {
		return u, "", fmt.Errorf("get user: %w", err)
	}
	return u, hash, nil
}

// GetUser returns the user (without password), or NotFound.
func (s *Store) GetUser(ctx context.Context, name string) (gatehouse.User, error) {
	u, _, err := getUser(ctx, s.r, name)
	return u, err
}

// ListUsers returns one page of users in creation order and their total.
func (s *Store) ListUsers(ctx context.Context, p gatehouse.Page) ([]gatehouse.User, int, error) {
	us := []gatehouse.User{}
	var total int
	err := s.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM users").Scan(&total); err != nil {
			return fmt.Errorf("count users: %w", err)
		}
		rows, err := tx.QueryContext(ctx, "SELECT username, role FROM users ORDER BY rowid LIMIT ? OFFSET ?", p.Limit(), p.Offset())
		if err != nil {
			return fmt.Errorf("list users: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var u gatehouse.User
			if err := rows.Scan(&u.Name, &u.Role); err != nil {
				return fmt.Errorf("list users: %w", err)
			}
			us = append(us, u)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, err
	}
	return us, total, nil
}

// AddUser stores a new user with its role and bcrypt password hash; an
// existing name is a Conflict.
func (s *Store) AddUser(ctx context.Context, u gatehouse.User, passwordHash string) error {
	if err := u.Validate(); err != nil {
		return err
	}
	return s.createUser(ctx, u.Name, u.Role, passwordHash)
}

// UpdateUser changes a user's role and/or password hash ("" keeps either).
// Making the last admin a viewer is a Conflict. The role it has already and
// no password make no revision; a password hash is always new (bcrypt salts).
func (s *Store) UpdateUser(ctx context.Context, name, role, passwordHash string) error {
	if role != "" && role != gatehouse.RoleAdmin && role != gatehouse.RoleViewer {
		return gatehouse.Invalid("role", "must be %q or %q", gatehouse.RoleAdmin, gatehouse.RoleViewer)
	}
	return s.write(ctx, func(tx *txn) error {
		cur, _, err := getUser(ctx, tx, name)
		if err != nil {
			return err
		}
		if role == gatehouse.RoleViewer && cur.Role == gatehouse.RoleAdmin {
			if err := notLastAdmin(ctx, tx, name, "made a viewer"); err != nil {
				return err
			}
		}
		if role == cur.Role {
			role = ""
		}
		if role == "" && passwordHash == "" {
			return nil // nothing to change: no revision
		}
		if role != "" {
			if _, err := tx.ExecContext(ctx, "UPDATE users SET role = ? WHERE username = ?", role, name); err != nil {
				return fmt.Errorf("update user: %w", err)
			}
		}
		if passwordHash != "" {
			if _, err := tx.ExecContext(ctx, "UPDATE users SET password_hash = ? WHERE username = ?", passwordHash, name); err != nil {
				return fmt.Errorf("update user: %w", err)
			}
		}
		tx.changed(gatehouse.KindUser, name, gatehouse.OpUpdate)
		return nil
	})
}

// DeleteUser removes a user and its sessions; the last admin is a Conflict.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.write(ctx, func(tx *txn) error {
		cur, _, err := getUser(ctx, tx, name)
		if err != nil {
			return err
		}
		if cur.Role == gatehouse.RoleAdmin {
			if err := notLastAdmin(ctx, tx, name, "deleted"); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM users WHERE username = ?", name); err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		tx.changed(gatehouse.KindUser, name, gatehouse.OpDelete)
		return nil
	})
}

func notLastAdmin(ctx context.Context, q querier, name, what string) error {
	var n int
	if err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM users WHERE role = ? AND username <> ?",
		gatehouse.RoleAdmin, name).Scan(&n); err != nil {
		return fmt.Errorf("count admins: %w", err)
	}
	if n == 0 {
		return gatehouse.Conflict("user %q is the last admin: it cannot be %s", name, what)
	}
	return nil
}
