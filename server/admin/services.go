package admin

import (
	"net/http"

	"github.com/gorilla/mux"

	"gatehouse"
)

// serviceAPI serves /api/services.
type serviceAPI struct {
	services ServiceStore
}

// list also takes the filters group and q, which the dashboard's search box
// and scripts find handy.
func (h *serviceAPI) list(w http.ResponseWriter, r *http.Request) error {
	p, err := parsePage(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := gatehouse.ServiceFilter{GroupID: q.Get("group"), Q: q.Get("q")}
	ss, total, err := h.services.ListServices(r.Context(), f, p)
	if err != nil {
		return err
	}
	writeList(w, ss, total)
	return nil
}

func (h *serviceAPI) create(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		return err
	}
	s := gatehouse.DefaultService()
	if err := decodeObject(body, &s, ""); err != nil {
		return err
	}
	if err := h.services.CreateService(r.Context(), &s); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s)
	return nil
}

func (h *serviceAPI) get(w http.ResponseWriter, r *http.Request) error {
	s, err := h.services.GetService(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s)
	return nil
}

func (h *serviceAPI) put(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		return err
	}
	s := gatehouse.DefaultService()
	if err := decodeObject(body, &s, ""); err != nil {
		return err
	}
	if s.ID, err = putID("id", s.ID, mux.Vars(r)["id"]); err != nil {
		return err
	}
	return h.update(w, r, &s)
}

func (h *serviceAPI) patch(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		return err
	}
	cur, err := h.services.GetService(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	s := gatehouse.DefaultService()
	if err := patchEntity(r.Header.Get("Content-Type"), body, cur, into(&s)); err != nil {
		return err
	}
	if err := sameID("id", s.ID, cur.ID); err != nil {
		return err
	}
	return h.update(w, r, &s)
}

func (h *serviceAPI) update(w http.ResponseWriter, r *http.Request, s *gatehouse.Service) error {
	if err := h.services.UpdateService(r.Context(), s); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s)
	return nil
}

func (h *serviceAPI) delete(w http.ResponseWriter, r *http.Request) error {
	if err := h.services.DeleteService(r.Context(), mux.Vars(r)["id"]); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deleted)
	return nil
}
