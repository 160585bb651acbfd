package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"

	"gatehouse"
)

// AuditStore reads the audit log; nothing writes it but the store's own writes.
type AuditStore interface {
	ListAudit(ctx context.Context, f gatehouse.AuditFilter, p gatehouse.Page) ([]gatehouse.AuditEntry, int, error)
}

type auditAPI struct{ audit AuditStore }

// list serves GET /api/audit: newest first, filtered by since (a
// revision: entries after it), kind, id and actor, paged like every list.
func (h *auditAPI) list(w http.ResponseWriter, r *http.Request) error {
	p, err := parsePage(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := gatehouse.AuditFilter{Kind: q.Get("kind"), ID: q.Get("id"), Actor: q.Get("actor")}
	if s := q.Get("since"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return gatehouse.Invalid("since", "must be a revision: a whole number from 0")
		}
		f.Since = n
	}
	es, total, err := h.audit.ListAudit(r.Context(), f, p)
	if err != nil {
		return err
	}
	// Written with '<', '>' and '&' as themselves: the form the hash chain reads.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(es); err != nil {
		return err
	}
	hd := w.Header()
	hd.Set("X-Total-Count", strconv.Itoa(total))
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
	return nil
}

// remoteIP is the request's peer address without its port, for the audit log.
func remoteIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
