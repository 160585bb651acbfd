package views

import "gatehouse"

// NavUsers and NavPassword are the sidebar entries of the user screens.
const (
	NavUsers    = "users"
	NavPassword = "password"
)

// UsersURL is the Users page (admins); PasswordURL where everyone changes
// their own password.
func UsersURL() string    { return "/users" }
func PasswordURL() string { return "/account/password" }

// UserURL is one user's form target.
func UserURL(name string) string { return "/users/" + name }

// UsersData is the Users page: every user and the new-user form.
type UsersData struct {
	Users []gatehouse.User
	Me    string
	New   UserForm
}

// UserForm is the new-user form as typed, with its errors.
type UserForm struct {
	Name, Role string
	Errors     FormErrors
}

// PasswordData is the own-password form.
type PasswordData struct {
	Errors FormErrors
}

var roles = []string{gatehouse.RoleViewer, gatehouse.RoleAdmin}
