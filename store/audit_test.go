package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"gatehouse"
)

// canonicalJSON is the test's own rendering of section 14's canonical form,
// written apart from the store's: keys sorted at every level, no spaces,
// '<', '>' and '&' as themselves.
func canonicalJSON(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			b.WriteByte('{')
			for i, k := range keys {
				if i > 0 {
					b.WriteByte(',')
				}
				walk(k)
				b.WriteByte(':')
				walk(x[k])
			}
			b.WriteByte('}')
		case []any:
			b.WriteByte('[')
			for i, e := range x {
				if i > 0 {
					b.WriteByte(',')
				}
				walk(e)
			}
			b.WriteByte(']')
		default:
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(x); err != nil {
				t.Fatal(err)
			}
			b.WriteString(strings.TrimSpace(buf.String()))
		}
	}
	walk(v)
	return b.String()
}

// recomputeChain checks the hash of every entry of the API's list (newest
// first) from the entries alone.
func recomputeChain(t *testing.T, entries []gatehouse.AuditEntry) {
	t.Helper()
	prev := strings.Repeat("0", 64)
	for i := len(entries) - 1; i >= 0; i-- {
		raw, err := json.Marshal(entries[i])
		must(t, err)
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		must(t, d.Decode(&m))
		hash := m["hash"].(string)
		delete(m, "hash")
		sum := sha256.Sum256([]byte(prev + canonicalJSON(t, m)))
		if got := hex.EncodeToString(sum[:]); got != hash {
			t.Fatalf("entry of revision %d: hash %s, recomputed %s", entries[i].Revision, hash, got)
		}
		prev = hash
	}
}

func TestAuditLog(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := gatehouse.WithRequestIP(gatehouse.WithActor(context.Background(), "apikey:admin1"), "127.0.0.9")
	seedGroups(t, s, "g1")
	sv := seedService(t, s, "s1", "g1")
	sv.Name = "A & <B>"
	sv.Plugins = nil
	must(t, s.UpdateService(ctx, &sv))
	k := gatehouse.DefaultAPIKey()
	k.ClientID, k.ClientSecret, k.AuthorizedEntities = "k1", "first-secret-value", []string{"group_g1"}
	must(t, s.CreateAPIKey(ctx, &k))
	k.ClientSecret, k.DailyQuota = "second-secret-value", 5
	must(t, s.UpdateAPIKey(ctx, &k))
	if _, err := s.RotateAPIKeyAt(ctx, "k1", "third-secret-value", 2, 1000); err != nil {
		t.Fatal(err)
	}
	must(t, s.ResetQuotas(ctx, "k1"))
	must(t, s.AddUser(ctx, gatehouse.User{Name: "ann", Role: gatehouse.RoleViewer}, "$2a$10$hash-of-a-password"))
	must(t, s.CreateSession(ctx, gatehouse.Session{TokenHash: "th", Username: "ann", CSRFToken: "csrf", ExpiresAt: 1 << 40}))
	must(t, s.RecordSignInFailed(ctx, "bob"))
	must(t, s.DeleteSession(ctx, "th"))
	must(t, s.DeleteAPIKey(context.Background(), "k1"))

	all, total, err := s.ListAudit(ctx, gatehouse.AuditFilter{}, gatehouse.Page{PageSize: 100})
	must(t, err)
	if total != len(all) || total != 12 {
		t.Fatalf("total %d, entries %d, want 12", total, len(all))
	}
	type want struct {
		action, kind, id, actor string
		fields                  string // the changed fields, sorted, comma separated
	}
	wants := []want{ // oldest first
		{"create", "group", "g1", "system", "description,id,name"},
		{"create", "service", "s1", "system", ""},
		{"update", "service", "s1", "apikey:admin1", "name"},
		{"create", "apikey", "k1", "apikey:admin1", ""},
		{"update", "apikey", "k1", "apikey:admin1", "clientSecret,dailyQuota"},
		{"rotate", "apikey", "k1", "apikey:admin1", "clientSecret,previousSecretValidUntil"},
		{"reset-quotas", "apikey", "k1", "apikey:admin1", ""},
		{"create", "user", "ann", "apikey:admin1", "name,password,role"},
		{"sign-in", "session", "ann", "user:ann", ""},
		{"sign-in-failed", "session", "bob", "user:bob", ""},
		{"sign-out", "session", "ann", "user:ann", ""},
		{"delete", "apikey", "k1", "system", ""},
	}
	for i, w := range wants {
		e := all[len(all)-1-i]
		var fields []string
		for f := range e.Changes {
			fields = append(fields, f)
		}
		sort.Strings(fields)
		got := want{e.Action, e.Kind, e.ID, e.Actor, strings.Join(fields, ",")}
		if w.fields == "" && (e.Action == "create" || e.Action == "delete") {
			got.fields = "" // every field: checked below
		}
		if got != w {
			t.Errorf("entry %d = %+v, want %+v", i, got, w)
		}
	}
	// A creation's fields are [null, value], a deletion's [value, null].
	created, deleted := all[len(all)-4], all[0]
	if string(created.Changes["clientId"][0]) != "null" || string(created.Changes["clientId"][1]) != `"k1"` {
		t.Errorf("create clientId = %s", created.Changes["clientId"])
	}
	if string(deleted.Changes["dailyQuota"][0]) != "5" || string(deleted.Changes["dailyQuota"][1]) != "null" {
		t.Errorf("delete dailyQuota = %s", deleted.Changes["dailyQuota"])
	}
	upd := all[len(all)-5]
	if string(upd.Changes["clientSecret"][0]) != `"REDACTED"` || string(upd.Changes["clientSecret"][1]) != `"REDACTED"` {
		t.Errorf("clientSecret change = %s", upd.Changes["clientSecret"])
	}
	if upd.IP == nil || *upd.IP != "127.0.0.9" || deleted.IP != nil {
		t.Errorf("ip = %v / %v", upd.IP, deleted.IP)
	}
	// Sign-ins carry the revision current then.
	if si := all[3]; si.Revision != all[4].Revision {
		t.Errorf("sign-in revision %d, want %d", si.Revision, all[4].Revision)
	}
	// No secret or password hash anywhere in the log or its state table.
	dump := auditDump(t, s)
	for _, secret := range []string{"first-secret-value", "second-secret-value", "third-secret-value", "hash-of-a-password", "csrf"} {
		if strings.Contains(dump, secret) {
			t.Errorf("the audit tables hold %q", secret)
		}
	}
	recomputeChain(t, all)
	if n, err := s.VerifyAudit(ctx); err != nil || n != 12 {
		t.Fatalf("VerifyAudit = %d, %v", n, err)
	}

	// Filters and paging, newest first.
	page, total, err := s.ListAudit(ctx, gatehouse.AuditFilter{Kind: "apikey", ID: "k1"}, gatehouse.Page{Page: 2, PageSize: 2})
	must(t, err)
	if total != 5 || len(page) != 2 || page[0].Action != "rotate" || page[1].Action != "update" {
		t.Errorf("apikey k1 page 2 = %d %+v", total, page)
	}
	since := all[1].Revision - 1
	page, _, err = s.ListAudit(ctx, gatehouse.AuditFilter{Since: since, Actor: "system"}, gatehouse.Page{})
	must(t, err)
	if len(page) != 1 || page[0].Action != "delete" {
		t.Errorf("since %d by system = %+v", since, page)
	}
}

func auditDump(t *testing.T, s *Store) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{"SELECT actor || ip || changes || hash FROM audit", "SELECT json FROM audit_state"} {
		rows, err := s.r.Query(q)
		must(t, err)
		for rows.Next() {
			var v sql.NullString
			must(t, rows.Scan(&v))
			b.WriteString(v.String)
		}
		rows.Close()
	}
	return b.String()
}

func TestAuditTamperDetected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tamper := range []string{
		"UPDATE audit SET actor = 'cli' WHERE seq = 2",
		"UPDATE audit SET changes = '{}' WHERE seq = 2",
		"UPDATE audit SET at = at + 1 WHERE seq = 2",
		"DELETE FROM audit WHERE seq = 2",
	} {
		t.Run(tamper, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			seedGroups(t, s, "g1", "g2", "g3")
			if _, err := s.VerifyAudit(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := s.w.Exec(tamper); err != nil {
				t.Fatal(err)
			}
			_, err := s.VerifyAudit(ctx)
			wantRev := int64(2)
			if strings.HasPrefix(tamper, "DELETE") {
				wantRev = 3 // the entry after the gap no longer follows
			}
			if !errors.Is(err, ErrAuditBroken) || !strings.Contains(err.Error(), fmt.Sprintf("revision %d ", wantRev)) {
				t.Fatalf("VerifyAudit after %q = %v", tamper, err)
			}
		})
	}
}
