package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"gatehouse"
)

// AddCounters adds flushed call counts to the stored ones in one
// transaction: each Counter's Count is added to its quota counter and, for a
// day, its Calls to the usage history; each key's last use moves forward. Counts of keys that no longer exist are skipped, so a flush racing
// a delete neither fails nor resurrects the deleted key's history. It makes
// no revision: counters are not configuration.
func (s *Store) AddCounters(ctx context.Context, cs []gatehouse.Counter) error {
	if len(cs) == 0 {
		return nil
	}
	return s.writeRaw(ctx, func(tx *sql.Tx) error {
		add, err := tx.PrepareContext(ctx, `INSERT INTO counters (client_id, period, count)
			SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM apikeys WHERE client_id = ?1)
			ON CONFLICT (client_id, period) DO UPDATE SET count = count + excluded.count`)
		if err != nil {
			return fmt.Errorf("add counters: %w", err)
		}
		defer add.Close()
		day, err := tx.PrepareContext(ctx, `INSERT INTO usage_days (client_id, day, count)
			SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM apikeys WHERE client_id = ?1)
			ON CONFLICT (client_id, day) DO UPDATE SET count = count + excluded.count`)
		if err != nil {
			return fmt.Errorf("add usage: %w", err)
		}
		defer day.Close()
		last, err := tx.PrepareContext(ctx, `INSERT INTO key_last_used (client_id, at)
			SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM apikeys WHERE client_id = ?1)
			ON CONFLICT (client_id) DO UPDATE SET at = max(at, excluded.at)`)
		if err != nil {
			return fmt.Errorf("add last use: %w", err)
		}
		defer last.Close()
		for _, c := range cs {
			if c.Count != 0 {
				if _, err := add.ExecContext(ctx, c.ClientID, c.Period, c.Count); err != nil {
					return fmt.Errorf("add counter %s/%s: %w", c.ClientID, c.Period, err)
				}
			}
			if c.Calls != 0 && len(c.Period) == len("2006-01-02") {
				if _, err := day.ExecContext(ctx, c.ClientID, c.Period, c.Calls); err != nil {
					return fmt.Errorf("add usage %s/%s: %w", c.ClientID, c.Period, err)
				}
			}
			if c.LastUsed > 0 {
				if _, err := last.ExecContext(ctx, c.ClientID, c.LastUsed); err != nil {
					return fmt.Errorf("add last use %s: %w", c.ClientID, err)
				}
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

// KeyCounters returns a key's quota counters with fromPeriod <= period <=
// toPeriod in string order, of the same kind as fromPeriod: days
// ("2006-01-02") and months ("2006-01") share the table, and a range of days
// must not return the months that sort inside it. A quota reset empties them;
// UsageDays keeps the history.
func (s *Store) KeyCounters(ctx context.Context, clientID, fromPeriod, toPeriod string) ([]gatehouse.Counter, error) {
	return queryCounters(ctx, s.r, `SELECT client_id, period, count FROM counters
		WHERE client_id = ? AND period >= ? AND period <= ? AND length(period) = length(?) ORDER BY period`,
		clientID, fromPeriod, toPeriod, fromPeriod)
}

// UsageDays returns the key's calls per day, fromDay..toDay ("2006-01-02",
// inclusive), from the usage history, which a quota reset does not touch.
// Days without calls are absent.
func (s *Store) UsageDays(ctx context.Context, clientID, fromDay, toDay string) ([]gatehouse.Counter, error) {
	return queryCounters(ctx, s.r, `SELECT client_id, day, count FROM usage_days
		WHERE client_id = ? AND day >= ? AND day <= ? ORDER BY day`, clientID, fromDay, toDay)
}

func queryCounters(ctx context.Context, q querier, query string, args ...any) ([]gatehouse.Counter, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	defer rows.Close()
	cs := []gatehouse.Counter{}
	for rows.Next() {
		var c gatehouse.Counter
		if err := rows.Scan(&c.ClientID, &c.Period, &c.Count); err != nil {
			return nil, fmt.Errorf("read counters: %w", err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	return cs, nil
}

// LastUsed returns, per client id, when the gateway last admitted a call
// with it (epoch ms, as of the last counter flush); ids never used are absent.
func (s *Store) LastUsed(ctx context.Context, clientIDs ...string) (map[string]int64, error) {
	out := make(map[string]int64, len(clientIDs))
	// SQLite binds at most 32766 parameters; pages are far smaller.
	for len(clientIDs) > 0 {
		n := min(len(clientIDs), 500)
		batch := clientIDs[:n]
		clientIDs = clientIDs[n:]
		args := make([]any, len(batch))
		for i, id := range batch {
			args[i] = id
		}
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(batch)), ", ")
		rows, err := s.r.QueryContext(ctx, "SELECT client_id, at FROM key_last_used WHERE client_id IN ("+ph+")", args...)
		if err != nil {
			return nil, fmt.Errorf("last used: %w", err)
		}
		for rows.Next() {
			var id string
			var at int64
			if err := rows.Scan(&id, &at); err != nil {
				rows.Close()
				return nil, fmt.Errorf("last used: %w", err)
			}
			out[id] = at
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("last used: %w", err)
		}
	}
	return out, nil
}
