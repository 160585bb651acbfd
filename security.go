package gatehouse

import (
	"encoding/json"

	"golang.org/x/crypto/bcrypt"
)

// AuditEntry is one line of the tamper-evident audit log (contract section
// 14). Hash chains it to the entry before it: see store's audit.go.
type AuditEntry struct {
	Revision int64                         `json:"revision"`
	At       int64                         `json:"at"` // epoch ms
	Actor    string                        `json:"actor"`
	IP       *string                       `json:"ip"` // null for the command line and automatic jobs
	Action   string                        `json:"action"`
	Kind     string                        `json:"kind"`
	ID       string                        `json:"id"`
	Changes  map[string][2]json.RawMessage `json:"changes"` // field: [before, after]
	Hash     string                        `json:"hash"`
}

// AuditFilter narrows the audit log: entries of revisions after Since, of
// one kind, one entity id, one actor; the zero value keeps everything.
type AuditFilter struct {
	Since int64
	Kind  string
	ID    string
	Actor string
}

// Redacted replaces secrets and passwords in the audit log.
const Redacted = "REDACTED"

// Dashboard user roles: a viewer sees every page but no secret and may not write.
const (
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// User is a dashboard user as /api/users speaks it; Password is write only.
type User struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	Password string `json:"password,omitempty"`
}

// Validate checks a user's name and role; the password is the caller's to hash.
func (u *User) Validate() error {
	if err := checkID("name", u.Name); err != nil {
		return err
	}
	if u.Role != RoleAdmin && u.Role != RoleViewer {
		return Invalid("role", "must be %q or %q", RoleAdmin, RoleViewer)
	}
	return nil
}

// Password length bounds: bcrypt reads at most 72 bytes.
const (
	MinPassword = 8
	MaxPassword = 72
)

// CheckPassword checks a new password's length.
func CheckPassword(pw string) error {
	if len(pw) < MinPassword || len(pw) > MaxPassword {
		return Invalid("password", "must be %d to %d bytes long", MinPassword, MaxPassword)
	}
	return nil
}

// HashPassword checks a new password's length (bcrypt reads 72 bytes at
// most) and returns its bcrypt hash: the one way the admin API and the
// dashboard store a password someone chose.
func HashPassword(pw string) (string, error) {
	if err := CheckPassword(pw); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", err
	}
	return string(h), nil
}
