package dashboard

import (
	"net/http"

	"gatehouse"
)

// dailyCalls returns the key's calls per day, fromDay..toDay, from the usage
// history: a quota reset leaves it as it is.
func (d *Dashboard) dailyCalls(r *http.Request, clientID, fromDay, toDay string) (map[string]int64, error) {
	days, err := d.b.UsageDays(r.Context(), clientID, fromDay, toDay)
	if err != nil {
		return nil, err
	}
	byDay := make(map[string]int64, len(days))
	for _, c := range days {
		byDay[c.Period] = c.Count
	}
	return byDay, nil
}

// lastUsed returns when each key was last used (epoch ms); keys never used
// are absent. An error is logged and shows as "never" rather than hiding the page.
func (d *Dashboard) lastUsed(r *http.Request, clientIDs ...string) map[string]int64 {
	m, err := d.b.LastUsed(r.Context(), clientIDs...)
	if err != nil {
		d.log.WarnContext(r.Context(), "dashboard: last used", "err", err)
		return map[string]int64{}
	}
	return m
}

// listKeysSorted lists keys in the order asked (gatehouse.Sort*).
func (d *Dashboard) listKeysSorted(r *http.Request, f gatehouse.KeyFilter, sort string, p gatehouse.Page) ([]gatehouse.APIKey, int, error) {
	f.Sort = sort
	return d.b.ListAPIKeys(r.Context(), f, p)
}
