package views

import (
	"net/url"
	"slices"
	"strconv"
	"time"

	"gatehouse"
)

// NavAudit is the sidebar entry of the audit log.
const NavAudit = "audit"

// AuditURL is the audit log page.
func AuditURL() string { return "/audit" }

// AuditData is the audit log page: a page of entries and the filter.
type AuditData struct {
	Filter   gatehouse.AuditFilter
	Entries  []gatehouse.AuditEntry
	Total    int
	Page     int
	PageSize int
	Location *time.Location
}

// Pager pages the list keeping the filter.
func (d AuditData) Pager() Pager {
	q := url.Values{}
	for k, v := range map[string]string{"kind": d.Filter.Kind, "id": d.Filter.ID, "actor": d.Filter.Actor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if d.Filter.Since > 0 {
		q.Set("since", strconv.FormatInt(d.Filter.Since, 10))
	}
	return Pager{Page: d.Page, PageSize: d.PageSize, Total: d.Total, Base: AuditURL(), Query: q}
}

// AuditChange is one changed field of an entry, before and after as JSON.
type AuditChange struct{ Field, Before, After string }

// Changes lists an entry's changed fields in name order.
func (e AuditRow) Changes() []AuditChange {
	names := make([]string, 0, len(e.Entry.Changes))
	for f := range e.Entry.Changes {
		names = append(names, f)
	}
	slices.Sort(names)
	out := make([]AuditChange, len(names))
	for i, f := range names {
		c := e.Entry.Changes[f]
		out[i] = AuditChange{Field: f, Before: string(c[0]), After: string(c[1])}
	}
	return out
}

// AuditRow is one entry as the page shows it.
type AuditRow struct {
	Entry    gatehouse.AuditEntry
	Location *time.Location
}

// Rows are the page's entries.
func (d AuditData) Rows() []AuditRow {
	out := make([]AuditRow, len(d.Entries))
	for i, e := range d.Entries {
		out[i] = AuditRow{Entry: e, Location: d.Location}
	}
	return out
}

// IP is the entry's address, or a dash.
func (e AuditRow) IP() string {
	if e.Entry.IP == nil {
		return "—"
	}
	return *e.Entry.IP
}

var auditKinds = []string{gatehouse.KindGroup, gatehouse.KindService, gatehouse.KindAPIKey, gatehouse.KindPlugin,
	gatehouse.KindUser, gatehouse.KindSession}

func sinceValue(n int64) string {
	if n <= 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}
