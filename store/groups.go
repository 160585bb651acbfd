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
	return s.write(ctx, func(tx *txn) error { return insertGroup(ctx, tx, g) })
}

// insertGroup writes a new, validated group inside tx.
func insertGroup(ctx context.Context, tx *txn, g *gatehouse.Group) error {
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
	tx.changed(gatehouse.KindGroup, g.ID, gatehouse.OpCreate)
	return nil
}

// GetGroup returns the group with id, or NotFound.
func (s *Store) GetGroup(ctx context.Context, id string) (gatehouse.Group, error) {
	return getGroup(ctx, s.r, id)
}

func getGroup(ctx context.Context, q querier, id string) (gatehouse.Group, error) {
	g := gatehouse.Group{}
	err := q.QueryRowContext(ctx, "SELECT id, name, description FROM groups WHERE id = ?", id).
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
	return s.write(ctx, func(tx *txn) error { return updateGroup(ctx, tx, g) })
}

// updateGroup rewrites an existing, validated group inside tx; a group
// equal to the stored one is left alone and records no change.
func updateGroup(ctx context.Context, tx *txn, g *gatehouse.Group) error {
	cur, err := getGroup(ctx, tx, g.ID)
	if err != nil {
		return err
	}
	if cur == *g {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "UPDATE groups SET name = ?, description = ? WHERE id = ?",
		g.Name, g.Description, g.ID); err != nil {
		return fmt.Errorf("update group: %w", err)
	}
	tx.changed(gatehouse.KindGroup, g.ID, gatehouse.OpUpdate)
	return nil
}

// DeleteGroup removes a group that no service is in and no key is
// authorized on; otherwise, and for the built-in admin-api-group, it is a
// Conflict.
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *txn) error { return deleteGroup(ctx, tx, id) })
}

// deleteGroup removes a group inside tx, refusing what DeleteGroup refuses.
func deleteGroup(ctx context.Context, tx *txn, id string) error {
	if id == gatehouse.AdminGroupID {
		return gatehouse.Conflict("group %q is built in and cannot be deleted", id)
	}
	var svc string
	err := tx.QueryRowContext(ctx, "SELECT id FROM services WHERE group_id = ? ORDER BY seq LIMIT 1", id).Scan(&svc)
	if err == nil {
		return gatehouse.Conflict("group %q still has services (%q)", id, svc)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("delete group: %w", err)
	}
	if err := checkUnreferenced(ctx, tx, "group", gatehouse.GroupEntity(id), id); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, "DELETE FROM groups WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete group: %w", err)
	}
	if err := affected(res, groupNotFound(id)); err != nil {
		return err
	}
	tx.changed(gatehouse.KindGroup, id, gatehouse.OpDelete)
	return nil
}

// checkUnreferenced is a Conflict when a key is authorized on entity, so a
// delete never leaves keys naming what no longer exists (and gaining access
// the day someone creates an entity with that id).
func checkUnreferenced(ctx context.Context, q querier, what, entity, id string) error {
	var key string
	err := q.QueryRowContext(ctx, "SELECT client_id FROM apikey_entities WHERE entity = ? LIMIT 1", entity).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check %s references: %w", what, err)
	}
	return gatehouse.Conflict("%s %q is named by the authorizedEntities of api key %q", what, id, key)
}
