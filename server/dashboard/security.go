package dashboard

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

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

// UserBackend serves the Users page and the own-password page.
type UserBackend interface {
	ListUsers(ctx context.Context, p gatehouse.Page) ([]gatehouse.User, int, error)
	AddUser(ctx context.Context, u gatehouse.User, passwordHash string) error
	UpdateUser(ctx context.Context, name, role, passwordHash string) error
	DeleteUser(ctx context.Context, name string) error
}

func (d *Dashboard) renderUsers(w http.ResponseWriter, r *http.Request, status int, form views.UserForm) {
	us, _, err := d.b.ListUsers(r.Context(), gatehouse.Page{Page: 1, PageSize: gatehouse.MaxPageSize})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if form.Role == "" {
		form.Role = gatehouse.RoleViewer
	}
	data := views.UsersData{Users: us, Me: userFrom(r.Context()), New: form}
	d.render(w, r, status, views.Shell{Title: "Users", Nav: views.NavUsers}, views.UsersPage(data), nil)
}

func (d *Dashboard) handleUsers(w http.ResponseWriter, r *http.Request) {
	d.renderUsers(w, r, http.StatusOK, views.UserForm{})
}

func (d *Dashboard) handleUserCreate(w http.ResponseWriter, r *http.Request) {
	f := views.UserForm{Name: strings.TrimSpace(r.PostFormValue("name")), Role: r.PostFormValue("role"), Errors: views.FormErrors{}}
	u := gatehouse.User{Name: f.Name, Role: f.Role}
	if err := u.Validate(); err != nil {
		f.Errors[fieldOf(err)] = gatehouse.AsError(err).Message
	}
	hash, err := gatehouse.HashPassword(r.PostFormValue("password"))
	if err != nil {
		f.Errors["password"] = gatehouse.AsError(err).Message
	}
	if f.Errors.Any() {
		f.Errors.Focus("name", "role", "password")
		d.renderUsers(w, r, http.StatusUnprocessableEntity, f)
		return
	}
	if err := d.b.AddUser(r.Context(), u, hash); err != nil {
		if ge := gatehouse.AsError(err); ge != nil && ge.Kind == gatehouse.KindConflict {
			f.Errors["name"] = ge.Message
			f.Errors.Focus("name")
			d.renderUsers(w, r, http.StatusUnprocessableEntity, f)
			return
		}
		d.fail(w, r, err)
		return
	}
	d.done(w, r, views.UsersURL(), "User "+u.Name+" created ("+u.Role+").")
}

func (d *Dashboard) handleUserUpdate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	role := r.PostFormValue("role")
	if err := d.b.UpdateUser(r.Context(), name, role, ""); err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, views.UsersURL(), "User "+name+" is now "+role+".")
}

func (d *Dashboard) handleUserDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := d.b.DeleteUser(r.Context(), name); err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, views.UsersURL(), "User "+name+" deleted.")
}

func (d *Dashboard) handlePasswordPage(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, views.Shell{Title: "Your password", Nav: views.NavPassword}, views.PasswordPage(views.PasswordData{}), nil)
}

// handlePassword changes the signed-in user's own password, viewers'
// included, once the current one is given.
func (d *Dashboard) handlePassword(w http.ResponseWriter, r *http.Request) {
	me := userFrom(r.Context())
	errs := views.FormErrors{}
	cur, err := d.b.UserPasswordHash(r.Context(), me)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if bcrypt.CompareHashAndPassword([]byte(cur), []byte(r.PostFormValue("current"))) != nil {
		errs["current"] = "This is not your current password."
	}
	hash, err := gatehouse.HashPassword(r.PostFormValue("password"))
	if err != nil {
		errs["password"] = gatehouse.AsError(err).Message
	}
	if errs.Any() {
		errs.Focus("current", "password")
		d.render(w, r, http.StatusUnprocessableEntity, views.Shell{Title: "Your password", Nav: views.NavPassword},
			views.PasswordPage(views.PasswordData{Errors: errs}), nil)
		return
	}
	if err := d.b.UpdateUser(r.Context(), me, "", hash); err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, views.PasswordURL(), "Password changed.")
}

func fieldOf(err error) string {
	if ge := gatehouse.AsError(err); ge != nil {
		return ge.Field
	}
	return ""
}
