package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"gatehouse"
)

func serviceNotFound(id string) error { return gatehouse.NotFound("service %q not found", id) }

// checkServiceRefs checks, inside the write transaction so nothing can
// delete them before commit, that the service's group and plugins exist.
func checkServiceRefs(ctx context.Context, tx querier, sv *gatehouse.Service) error {
	if sv.GroupID == gatehouse.AdminGroupID {
		// A service there would make every key of it an admin API key.
		return gatehouse.Invalid("groupId", "no service can be placed in the built-in group %q", sv.GroupID)
	}
	ok, err := exists(ctx, tx, "SELECT 1 FROM groups WHERE id = ?", sv.GroupID)
	if err != nil {
		return fmt.Errorf("check group: %w", err)
	}
	if !ok {
		return gatehouse.Invalid("groupId", "group %q does not exist", sv.GroupID)
	}
	for _, p := range sv.Plugins {
		ok, err := exists(ctx, tx, "SELECT 1 FROM plugins WHERE id = ?", p.Ref)
		if err != nil {
			return fmt.Errorf("check plugin: %w", err)
		}
		if !ok {
			return gatehouse.Invalid("plugins", "plugin %q does not exist", p.Ref)
		}
	}
	return nil
}

// prepareService fills defaults, validates and encodes a service for writing.
func prepareService(sv *gatehouse.Service, box *secretBox) ([]byte, error) {
	sv.FillDefaults()
	if err := sv.Validate(); err != nil {
		return nil, err
	}
	stored, err := sealPluginConfigs(*sv, box)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(stored)
	if err != nil {
		return nil, fmt.Errorf("encode service: %w", err)
	}
	return data, nil
}

// CreateService stores a new service descriptor. A missing group is Invalid
// "groupId", an unknown plugin ref Invalid "plugins", a duplicate id a Conflict.
func (s *Store) CreateService(ctx context.Context, sv *gatehouse.Service) error {
	data, err := prepareService(sv, s.box())
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *txn) error { return insertService(ctx, tx, sv, data) })
}

// insertService writes a new service (data is prepareService's) inside tx.
func insertService(ctx context.Context, tx *txn, sv *gatehouse.Service, data []byte) error {
	if err := checkServiceRefs(ctx, tx, sv); err != nil {
		return err
	}
	seq, err := nextSeq(ctx, tx, "services")
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO services (id, seq, group_id, data) VALUES (?, ?, ?, ?)",
		sv.ID, seq, sv.GroupID, data)
	if isUniqueViolation(err) {
		return gatehouse.Conflict("service %q already exists", sv.ID)
	}
	if err != nil {
		return fmt.Errorf("insert service: %w", err)
	}
	tx.changed(gatehouse.KindService, sv.ID, gatehouse.OpCreate)
	return nil
}

// UpdateService replaces an existing service descriptor.
func (s *Store) UpdateService(ctx context.Context, sv *gatehouse.Service) error {
	if sv.ID == "" {
		return gatehouse.Invalid("id", "must not be empty")
	}
	data, err := prepareService(sv, s.box())
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *txn) error { return updateService(ctx, tx, sv, data) })
}

// updateService rewrites an existing service (data is prepareService's)
// inside tx; a service equal to the stored one is left alone and records no
// change.
func updateService(ctx context.Context, tx *txn, sv *gatehouse.Service, data []byte) error {
	cur, err := getService(ctx, tx, tx.box, sv.ID)
	if err != nil {
		return err
	}
	if err := checkServiceRefs(ctx, tx, sv); err != nil {
		return err
	}
	same, err := sameService(cur, sv)
	if err != nil || same {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE services SET group_id = ?, data = ? WHERE id = ?",
		sv.GroupID, data, sv.ID); err != nil {
		return fmt.Errorf("update service: %w", err)
	}
	tx.changed(gatehouse.KindService, sv.ID, gatehouse.OpUpdate)
	return nil
}

// sameService reports whether writing sv would store cur again: both are
// compared in clear (sealing is never the same twice), sv as it reads back
// once stored.
func sameService(cur gatehouse.Service, sv *gatehouse.Service) (bool, error) {
	clear, err := json.Marshal(sv)
	if err != nil {
		return false, fmt.Errorf("encode service: %w", err)
	}
	next, err := decodeService(clear, nil)
	if err != nil {
		return false, err
	}
	return sameJSON(cur, next), nil
}

// DeleteService removes a service that no key names as service_<id>; one
// that a key names is a Conflict.
func (s *Store) DeleteService(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *txn) error { return deleteService(ctx, tx, id) })
}

// deleteService removes a service inside tx, refusing what DeleteService refuses.
func deleteService(ctx context.Context, tx *txn, id string) error {
	if err := checkUnreferenced(ctx, tx, "service", gatehouse.ServiceEntity(id), id); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, "DELETE FROM services WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete service: %w", err)
	}
	if err := affected(res, serviceNotFound(id)); err != nil {
		return err
	}
	tx.changed(gatehouse.KindService, id, gatehouse.OpDelete)
	return nil
}

func decodeService(data []byte, box *secretBox) (gatehouse.Service, error) {
	// Decoding on top of the defaults keeps rows written before a field
	// existed at that field's default.
	sv := gatehouse.DefaultService()
	if err := json.Unmarshal(data, &sv); err != nil {
		return sv, fmt.Errorf("decode service: %w", err)
	}
	return sv, openPluginConfigs(&sv, box)
}

// GetService returns the service with id, or NotFound.
func (s *Store) GetService(ctx context.Context, id string) (gatehouse.Service, error) {
	return getService(ctx, s.r, s.box(), id)
}

func getService(ctx context.Context, q querier, box *secretBox, id string) (gatehouse.Service, error) {
	var data []byte
	err := q.QueryRowContext(ctx, "SELECT data FROM services WHERE id = ?", id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return gatehouse.Service{}, serviceNotFound(id)
	}
	if err != nil {
		return gatehouse.Service{}, fmt.Errorf("get service: %w", err)
	}
	return decodeService(data, box)
}

// ListServices returns one page of services in creation order, narrowed by
// group and by a case-insensitive substring of name, id, domain or subdomain.
func (s *Store) ListServices(ctx context.Context, f gatehouse.ServiceFilter, p gatehouse.Page) ([]gatehouse.Service, int, error) {
	var where []string
	var args []any
	if f.GroupID != "" {
		where = append(where, "group_id = ?")
		args = append(args, f.GroupID)
	}
	if f.Q != "" {
		where = append(where, `(id LIKE ? ESCAPE '\' OR json_extract(data, '$.name') LIKE ? ESCAPE '\'
			OR json_extract(data, '$.domain') LIKE ? ESCAPE '\' OR json_extract(data, '$.subdomain') LIKE ? ESCAPE '\')`)
		q := likeArg(f.Q)
		args = append(args, q, q, q, q)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	var svs []gatehouse.Service
	err := s.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM services"+cond, args...).Scan(&total); err != nil {
			return fmt.Errorf("count services: %w", err)
		}
		var err error
		svs, err = queryServices(ctx, tx, s.box(), "SELECT data FROM services"+cond+" ORDER BY seq LIMIT ? OFFSET ?",
			append(args, p.Limit(), p.Offset())...)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return svs, total, nil
}

// AllServices returns every service in creation order, for the routing table.
func (s *Store) AllServices(ctx context.Context) ([]gatehouse.Service, error) {
	return queryServices(ctx, s.r, s.box(), "SELECT data FROM services ORDER BY seq")
}

func queryServices(ctx context.Context, q querier, box *secretBox, query string, args ...any) ([]gatehouse.Service, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	defer rows.Close()
	svs := []gatehouse.Service{}
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("list services: %w", err)
		}
		sv, err := decodeService(data, box)
		if err != nil {
			return nil, err
		}
		svs = append(svs, sv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	return svs, nil
}
