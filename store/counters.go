package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"gatehouse"
)

// SaveCounters upserts absolute counts in one transaction. Counts of keys
// that no longer exist are skipped, so a flush racing a delete neither fails
// nor resurrects the deleted key's history.
func (s *Store) SaveCounters(ctx context.Context, cs []gatehouse.Counter) error {
	if len(cs) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO counters (client_id, period, count)
			SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM apikeys WHERE client_id = ?1)
			ON CONFLICT (client_id, period) DO UPDATE SET count = excluded.count`)
		if err != nil {
			return fmt.Errorf("save counters: %w", err)
		}
		defer stmt.Close()
		for _, c := range cs {
			if _, err := stmt.ExecContext(ctx, c.ClientID, c.Period, c.Count); err != nil {
				return fmt.Errorf("save counter %s/%s: %w", c.ClientID, c.Period, err)
			}
		}
		return nil
	})
}

// ScanCounters calls fn with every key's counter in one of periods.
func (s *Store) ScanCounters(ctx context.Context, periods []string, fn func(gatehouse.Counter)) error {
	if len(periods) == 0 {
		return nil
	}
	args := make([]any, len(periods))
	for i, p := range periods {
		args[i] = p
	}
	ph := strings.TrimSuffix(strings.Repeat("?, ", len(periods)), ", ")
	rows, err := s.r.QueryContext(ctx, "SELECT client_id, period, count FROM counters WHERE period IN ("+ph+")", args...)
	if err != nil {
		return fmt.Errorf("scan counters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c gatehouse.Counter
		if err := rows.Scan(&c.ClientID, &c.Period, &c.Count); err != nil {
			return fmt.Errorf("scan counters: %w", err)
		}
		fn(c)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan counters: %w", err)
	}
	return nil
}

// KeyCounters returns a key's counters with fromPeriod <= period <= toPeriod
// in string order, of the same kind as fromPeriod: days ("2006-01-02") and
// months ("2006-01") share the table, and a range of days must not return
// the months that sort inside it.
func (s *Store) KeyCounters(ctx context.Context, clientID, fromPeriod, toPeriod string) ([]gatehouse.Counter, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT client_id, period, count FROM counters
		WHERE client_id = ? AND period >= ? AND period <= ? AND length(period) = length(?) ORDER BY period`,
		clientID, fromPeriod, toPeriod, fromPeriod)
	if err != nil {
		return nil, fmt.Errorf("key counters: %w", err)
	}
	defer rows.Close()
	cs := []gatehouse.Counter{}
	for rows.Next() {
		var c gatehouse.Counter
		if err := rows.Scan(&c.ClientID, &c.Period, &c.Count); err != nil {
			return nil, fmt.Errorf("key counters: %w", err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("key counters: %w", err)
	}
	return cs, nil
}

// DeleteCounters removes every counter of a key (a quota reset).
func (s *Store) DeleteCounters(ctx context.Context, clientID string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM counters WHERE client_id = ?", clientID); err != nil {
			return fmt.Errorf("delete counters: %w", err)
		}
		return nil
	})
}
