package admin

import (
	"net/http"

	"github.com/gorilla/mux"

	"gatehouse"
)

func (a *api) handleGroupList(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	gs, total, err := a.b.ListGroups(r.Context(), p)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeList(w, gs, total)
}

func (a *api) handleGroupCreate(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var g gatehouse.Group
	if err := decodeObject(body, &g, ""); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.b.CreateGroup(r.Context(), &g); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, g)
}

func (a *api) handleGroupGet(w http.ResponseWriter, r *http.Request) {
	g, err := a.b.GetGroup(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (a *api) handleGroupPut(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var g gatehouse.Group
	if err := decodeObject(body, &g, ""); err != nil {
		a.writeError(w, r, err)
		return
	}
	g.ID = mux.Vars(r)["id"]
	if err := a.b.UpdateGroup(r.Context(), &g); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (a *api) handleGroupPatch(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	cur, err := a.b.GetGroup(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var g gatehouse.Group
	if err := patchEntity(r.Header.Get("Content-Type"), body, cur, into(&g)); err != nil {
		a.writeError(w, r, err)
		return
	}
	g.ID = cur.ID
	if err := a.b.UpdateGroup(r.Context(), &g); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (a *api) handleGroupDelete(w http.ResponseWriter, r *http.Request) {
	if err := a.b.DeleteGroup(r.Context(), mux.Vars(r)["id"]); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deleted)
}

func (a *api) handleGroupServices(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	g, err := a.b.GetGroup(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	ss, total, err := a.b.ListServices(r.Context(), gatehouse.ServiceFilter{GroupID: g.ID, Q: r.URL.Query().Get("q")}, p)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeList(w, ss, total)
}
