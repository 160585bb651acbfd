package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"gatehouse"
)

func groupNotFound(id string) error { return gatehouse.NotFound("group %q not found", id) }

// CreateGroup stores a new group; a duplicate id is a Conflict.
func (s *Store) CreateGroup(ctx context.Context, g *gatehouse.Group) error {
	g.FillDefaults()
	if err := g.Validate(); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		seq, err := nextSeq(ctx, tx, "groups")
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO groups (id, seq, name, description) VALUES (?, ?, ?, ?)",
			g.ID, seq, g.Name, g.Description)
		if isUniqueViolation(err) {
			return gatehouse.Conflict("group %q already exists", g.ID)
		}
		if err != nil {
			return fmt.Errorf("insert group: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.catalogChanged()
	return nil
}

// GetGroup returns the group with id, or NotFound.
func (s *Store) GetGroup(ctx context.Context, id string) (gatehouse.Group, error) {
	g := gatehouse.Group{}
	err := s.r.QueryRowContext(ctx, "SELECT id, name, description FROM groups WHERE id = ?", id).
		Scan(&g.ID, &g.Name, &g.Description)
	if errors.Is(err, sql.ErrNoRows) {
		return g, groupNotFound(id)
	}
	if err != nil {
		return g, fmt.Errorf("get group: %w", err)
	}
	return g, nil
}

// ListGroups returns one page of groups in creation order and the total count.
func (s *Store) ListGroups(ctx context.Context, p gatehouse.Page) ([]gatehouse.Group, int, error) {
	gs := []gatehouse.Group{}
	var total int
	err := s.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM groups").Scan(&total); err != nil {
			return fmt.Errorf("count groups: %w", err)
		}
		rows, err := tx.QueryContext(ctx, "SELECT id, name, description FROM groups ORDER BY seq LIMIT ? OFFSET ?",
			p.Limit(), p.Offset())
		if err != nil {
			return fmt.Errorf("list groups: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var g gatehouse.Group
			if err := rows.Scan(&g.ID, &g.Name, &g.Description); err != nil {
				return fmt.Errorf("list groups: %w", err)
			}
			gs = append(gs, g)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list groups: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return gs, total, nil
}

// UpdateGroup replaces the name and description of an existing group.
func (s *Store) UpdateGroup(ctx context.Context, g *gatehouse.Group) error {
	if g.ID == "" {
		return gatehouse.Invalid("id", "must not be empty")
	}
	g.FillDefaults()
	if err := g.Validate(); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE groups SET name = ?, description = ? WHERE id = ?",
			g.Name, g.Description, g.ID)
		if err != nil {
			return fmt.Errorf("update group: %w", err)
		}
		return affected(res, groupNotFound(g.ID))
	})
	if err != nil {
		return err
	}
	s.catalogChanged()
	return nil
}

// DeleteGroup removes a group that has no services; one that still has
// services is a Conflict.
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		busy, err := exists(ctx, tx, "SELECT 1 FROM services WHERE group_id = ? LIMIT 1", id)
		if err != nil {
			return fmt.Errorf("delete group: %w", err)
		}
		if busy {
			return gatehouse.Conflict("group %q still has services", id)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM groups WHERE id = ?", id)
		if err != nil {
			return fmt.Errorf("delete group: %w", err)
		}
		return affected(res, groupNotFound(id))
	})
	if err != nil {
		return err
	}
	s.catalogChanged()
	return nil
}
