package admin

import (
	"net/http"

	"github.com/gorilla/mux"

	"gatehouse"
)

// handleServiceList also takes the filters group and q, which the dashboard's
// search box and scripts find handy.
func (a *api) handleServiceList(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	f := gatehouse.ServiceFilter{GroupID: q.Get("group"), Q: q.Get("q")}
	ss, total, err := a.b.ListServices(r.Context(), f, p)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeList(w, ss, total)
}

func (a *api) handleServiceCreate(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	s := gatehouse.DefaultService()
	if err := decodeObject(body, &s, ""); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.b.CreateService(r.Context(), &s); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, s)
}

func (a *api) handleServiceGet(w http.ResponseWriter, r *http.Request) {
	s, err := a.b.GetService(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (a *api) handleServicePut(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	s := gatehouse.DefaultService()
	if err := decodeObject(body, &s, ""); err != nil {
		a.writeError(w, r, err)
		return
	}
	s.ID = mux.Vars(r)["id"]
	if err := a.b.UpdateService(r.Context(), &s); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (a *api) handleServicePatch(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	cur, err := a.b.GetService(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	s := gatehouse.DefaultService()
	if err := patchEntity(r.Header.Get("Content-Type"), body, cur, into(&s)); err != nil {
		a.writeError(w, r, err)
		return
	}
	s.ID = cur.ID
	if err := a.b.UpdateService(r.Context(), &s); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (a *api) handleServiceDelete(w http.ResponseWriter, r *http.Request) {
	if err := a.b.DeleteService(r.Context(), mux.Vars(r)["id"]); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deleted)
}
