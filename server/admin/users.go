package admin

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"

	"gatehouse"
)

// UserStore reads and writes dashboard users (contract section 14).
type UserStore interface {
	ListUsers(ctx context.Context, p gatehouse.Page) ([]gatehouse.User, int, error)
	GetUser(ctx context.Context, name string) (gatehouse.User, error)
	AddUser(ctx context.Context, u gatehouse.User, passwordHash string) error
	// UpdateUser changes the role and/or password hash ("" keeps either);
	// making the last admin a viewer is a Conflict.
	UpdateUser(ctx context.Context, name, role, passwordHash string) error
	// DeleteUser removes a user; the last admin is a Conflict.
	DeleteUser(ctx context.Context, name string) error
}

type userAPI struct{ users UserStore }

func (h *userAPI) list(w http.ResponseWriter, r *http.Request) error {
	p, err := parsePage(r)
	if err != nil {
		return err
	}
	us, total, err := h.users.ListUsers(r.Context(), p)
	if err != nil {
		return err
	}
	writeList(w, us, total)
	return nil
}

func (h *userAPI) create(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		return err
	}
	u := gatehouse.User{Role: gatehouse.RoleViewer}
	if err := decodeObject(body, &u, ""); err != nil {
		return err
	}
	if err := u.Validate(); err != nil {
		return err
	}
	hash, err := gatehouse.HashPassword(u.Password)
	if err != nil {
		return err
	}
	u.Password = ""
	if err := h.users.AddUser(r.Context(), u, hash); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, u)
	return nil
}

func (h *userAPI) get(w http.ResponseWriter, r *http.Request) error {
	u, err := h.users.GetUser(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

// patch changes a user's role or password (a JSON Patch or a merge patch of
// {"name", "role", "password"}); the name cannot change.
func (h *userAPI) patch(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		return err
	}
	cur, err := h.users.GetUser(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		return err
	}
	var u gatehouse.User
	err = patchEntity(r.Header.Get("Content-Type"), body, cur, func(data []byte) error {
		return decodeObject(data, &u, "")
	})
	if err != nil {
		return err
	}
	if err := sameID("name", u.Name, cur.Name); err != nil {
		return err
	}
	if err := u.Validate(); err != nil {
		return err
	}
	hash := ""
	if u.Password != "" {
		if hash, err = gatehouse.HashPassword(u.Password); err != nil {
			return err
		}
	}
	if err := h.users.UpdateUser(r.Context(), cur.Name, u.Role, hash); err != nil {
		return err
	}
	u.Password = ""
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (h *userAPI) delete(w http.ResponseWriter, r *http.Request) error {
	if err := h.users.DeleteUser(r.Context(), mux.Vars(r)["name"]); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deleted)
	return nil
}
