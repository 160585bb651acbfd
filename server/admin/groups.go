package admin

import (
	"net/http"

	"github.com/gorilla/mux"

	"gatehouse"
)

// groupAPI serves /api/groups and a group's services.
type groupAPI struct {
	groups   GroupStore
	services ServiceStore
}

func (h *groupAPI) list(w http.ResponseWriter, r *http.Request) error {
	p, err := parsePage(r)
	if err != nil {
		return err
	}
	gs, total, err := h.groups.ListGroups(r.Context(), p)
	if err != nil {
		return err
	}
	writeList(w, gs, total)
	return nil
}

func (h *groupAPI) create(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		return err
	}
	var g gatehouse.Group
	if err := decodeObject(body, &g, ""); err != nil {
		return err
	}
	if err := h.groups.CreateGroup(r.Context(), &g); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, g)
	return nil
}

func (h *groupAPI) get(w http.ResponseWriter, r *http.Request) error {
	g, err := h.groups.GetGroup(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

func (h *groupAPI) put(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		return err
	}
	var g gatehouse.Group
	if err := decodeObject(body, &g, ""); err != nil {
		return err
	}
	if g.ID, err = putID("id", g.ID, mux.Vars(r)["id"]); err != nil {
		return err
	}
	return h.update(w, r, &g)
}

func (h *groupAPI) patch(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		return err
	}
	cur, err := h.groups.GetGroup(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	var g gatehouse.Group
	if err := patchEntity(r.Header.Get("Content-Type"), body, cur, into(&g)); err != nil {
		return err
	}
	if err := sameID("id", g.ID, cur.ID); err != nil {
		return err
	}
	return h.update(w, r, &g)
}

func (h *groupAPI) update(w http.ResponseWriter, r *http.Request, g *gatehouse.Group) error {
	if err := h.groups.UpdateGroup(r.Context(), g); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

func (h *groupAPI) delete(w http.ResponseWriter, r *http.Request) error {
	if err := h.groups.DeleteGroup(r.Context(), mux.Vars(r)["id"]); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deleted)
	return nil
}

func (h *groupAPI) listServices(w http.ResponseWriter, r *http.Request) error {
	p, err := parsePage(r)
	if err != nil {
		return err
	}
	g, err := h.groups.GetGroup(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	ss, total, err := h.services.ListServices(r.Context(), gatehouse.ServiceFilter{GroupID: g.ID, Q: r.URL.Query().Get("q")}, p)
	if err != nil {
		return err
	}
	writeList(w, ss, total)
	return nil
}
