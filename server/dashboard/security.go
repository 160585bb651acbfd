package dashboard

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gatehouse"
	"gatehouse/views"
)

// handleKeyRotate rotates a key's secret (contract section 14) with the
// grace period the form names in hours (the key's own when empty).
func (d *Dashboard) handleKeyRotate(w http.ResponseWriter, r *http.Request) {
	kc, err := d.loadKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	grace := int64(-1)
	if s := strings.TrimSpace(r.PostFormValue("gracePeriod")); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > gatehouse.MaxGracePeriod {
			d.fail(w, r, gatehouse.Invalid("gracePeriod", "the grace period must be whole hours from 0 to %d", gatehouse.MaxGracePeriod))
			return
		}
		grace = n
	}
	k, err := d.b.RotateAPIKey(r.Context(), kc.key.ClientID, "", grace)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	msg := "Secret of " + keyName(k) + " rotated; the old one is refused from now on."
	if k.PreviousSecretValidUntil != nil {
		msg = "Secret of " + keyName(k) + " rotated; the old one works until " +
			time.UnixMilli(*k.PreviousSecretValidUntil).In(d.loc).Format("2006-01-02 15:04 MST") + "."
	}
	d.done(w, r, kc.scope.Key(k.ClientID), msg)
}

// AuditBackend reads the audit log.
type AuditBackend interface {
	ListAudit(ctx context.Context, f gatehouse.AuditFilter, p gatehouse.Page) ([]gatehouse.AuditEntry, int, error)
}

// handleAudit lists the audit log, newest first, filtered like GET /api/audit.
func (d *Dashboard) handleAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := gatehouse.AuditFilter{Kind: q.Get("kind"), ID: q.Get("id"), Actor: q.Get("actor")}
	if s := q.Get("since"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			d.fail(w, r, gatehouse.Invalid("since", "since must be a revision number"))
			return
		}
		f.Since = n
	}
	page := 1
	if s := q.Get("page"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 1<<20 {
			page = n
		}
	}
	es, total, err := d.b.ListAudit(r.Context(), f, gatehouse.Page{Page: page, PageSize: pageSize})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	data := views.AuditData{Filter: f, Entries: es, Total: total, Page: page, PageSize: pageSize, Location: d.loc}
	d.render(w, r, http.StatusOK, views.Shell{Title: "Audit log", Nav: views.NavAudit}, views.AuditPage(data), nil)
}
