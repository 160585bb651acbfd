package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"gatehouse"
)

// keyScope is the group or service a key route is nested under: such a
// route reaches only the keys authorized on it, and a key created there
// without authorizedEntities is authorized on the group. The zero scope
// (/api/apikeys) reaches every key.
type keyScope struct {
	groupID   string
	serviceID string // set under /api/services/{id}
}

// keyScope resolves the route's {id}; a missing group or service is 404.
func (a *api) keyScope(r *http.Request) (keyScope, error) {
	id, ok := mux.Vars(r)["id"]
	switch {
	case !ok:
		return keyScope{}, nil
	case strings.HasPrefix(r.URL.Path, "/api/groups/"):
		g, err := a.b.GetGroup(r.Context(), id)
		if err != nil {
			return keyScope{}, err
		}
		return keyScope{groupID: g.ID}, nil
	default:
		s, err := a.b.GetService(r.Context(), id)
		if err != nil {
			return keyScope{}, err
		}
		return keyScope{groupID: s.GroupID, serviceID: s.ID}, nil
	}
}

func (sc keyScope) reaches(k *gatehouse.APIKey) bool {
	switch {
	case sc.serviceID != "":
		return k.AuthorizedOn(sc.serviceID, sc.groupID)
	case sc.groupID != "":
		return slices.Contains(k.AuthorizedEntities, gatehouse.GroupEntity(sc.groupID))
	}
	return true
}

// defaultEntities authorizes k on the scope's group when the body named no
// entity.
func (sc keyScope) defaultEntities(k *gatehouse.APIKey) {
	if len(k.AuthorizedEntities) == 0 && sc.groupID != "" {
		k.AuthorizedEntities = []string{gatehouse.GroupEntity(sc.groupID)}
	}
}

// decodeKey decodes one key object on top of k, folding Otoroshi's
// "authorizedGroup": "<id>" shorthand into authorizedEntities.
func decodeKey(data []byte, k *gatehouse.APIKey, field string) error {
	if err := decodeObject(data, k, field); err != nil {
		return err
	}
	var extra struct {
		AuthorizedGroup *string `json:"authorizedGroup"`
	}
	if err := decodeJSON(data, &extra, field); err != nil {
		return err
	}
	if g := extra.AuthorizedGroup; g != nil && *g != "" {
		e := gatehouse.GroupEntity(*g)
		if !slices.Contains(k.AuthorizedEntities, e) {
			k.AuthorizedEntities = append(k.AuthorizedEntities, e)
		}
	}
	return nil
}

// handleKeyList serves /api/apikeys (filters group, service, enabled, q) and
// the nested lists, which are the same list narrowed to their scope.
func (a *api) handleKeyList(w http.ResponseWriter, r *http.Request) {
	sc, err := a.keyScope(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	p, err := parsePage(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	f := gatehouse.KeyFilter{GroupID: q.Get("group"), ServiceID: q.Get("service"), Q: q.Get("q")}
	if s := q.Get("enabled"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			a.writeError(w, r, gatehouse.Invalid("enabled", "must be true or false"))
			return
		}
		f.Enabled = &b
	}
	switch {
	case sc.serviceID != "":
		f.ServiceID = sc.serviceID
	case sc.groupID != "":
		f.GroupID = sc.groupID
	}
	ks, total, err := a.b.ListAPIKeys(r.Context(), f, p)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeList(w, ks, total)
}

func (a *api) handleKeyCreate(w http.ResponseWriter, r *http.Request) {
	sc, err := a.keyScope(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	k := gatehouse.DefaultAPIKey()
	if err := decodeKey(body, &k, ""); err != nil {
		a.writeError(w, r, err)
		return
	}
	sc.defaultEntities(&k)
	if err := a.b.CreateAPIKey(r.Context(), &k); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, k)
}

// scopedKey loads the route's key, 404 when it is outside the route's scope.
func (a *api) scopedKey(r *http.Request) (keyScope, gatehouse.APIKey, error) {
	sc, err := a.keyScope(r)
	if err != nil {
		return sc, gatehouse.APIKey{}, err
	}
	k, err := a.b.GetAPIKey(r.Context(), mux.Vars(r)["clientId"])
	if err != nil {
		return sc, k, err
	}
	if !sc.reaches(&k) {
		return sc, gatehouse.APIKey{}, gatehouse.NotFound("apikey not found")
	}
	return sc, k, nil
}

func (a *api) handleKeyGet(w http.ResponseWriter, r *http.Request) {
	_, k, err := a.scopedKey(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}

// handleKeyPut replaces the key: absent fields take their defaults, except
// the client id (from the path), the secret (kept) and, under a group or
// service, authorizedEntities (the scope's group, as on creation).
func (a *api) handleKeyPut(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	sc, cur, err := a.scopedKey(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	k := gatehouse.DefaultAPIKey()
	if err := decodeKey(body, &k, ""); err != nil {
		a.writeError(w, r, err)
		return
	}
	sc.defaultEntities(&k)
	a.saveKey(w, r, &k, &cur)
}

func (a *api) handleKeyPatch(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	_, cur, err := a.scopedKey(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	k := gatehouse.DefaultAPIKey()
	err = patchEntity(r.Header.Get("Content-Type"), body, cur, func(data []byte) error {
		return decodeKey(data, &k, "")
	})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.saveKey(w, r, &k, &cur)
}

// saveKey writes k over cur: the path's client id wins and an absent secret
// keeps the current one.
func (a *api) saveKey(w http.ResponseWriter, r *http.Request, k, cur *gatehouse.APIKey) {
	k.ClientID = cur.ClientID
	if k.ClientSecret == "" {
		k.ClientSecret = cur.ClientSecret
	}
	if err := a.b.UpdateAPIKey(r.Context(), k); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}

func (a *api) handleKeyDelete(w http.ResponseWriter, r *http.Request) {
	_, k, err := a.scopedKey(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.b.DeleteAPIKey(r.Context(), k.ClientID); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deleted)
}

// handleKeyBulk creates up to 10,000 keys in one transaction: all or nothing.
func (a *api) handleKeyBulk(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxBulkBody)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var raws []json.RawMessage
	if err := decodeJSON(body, &raws, ""); err != nil {
		a.writeError(w, r, err)
		return
	}
	if raws == nil {
		a.writeError(w, r, gatehouse.Invalid("", "must be a JSON array of API keys"))
		return
	}
	if len(raws) > maxBulkKeys {
		a.writeError(w, r, gatehouse.Invalid("", "at most %d keys per bulk call, got %d", maxBulkKeys, len(raws)))
		return
	}
	ks := make([]gatehouse.APIKey, len(raws))
	for i, raw := range raws {
		ks[i] = gatehouse.DefaultAPIKey()
		if err := decodeKey(raw, &ks[i], fmt.Sprintf("[%d].", i)); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	if err := a.b.CreateAPIKeys(r.Context(), ks); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, ks)
}

func (a *api) handleQuotaGet(w http.ResponseWriter, r *http.Request) {
	u, err := a.b.Usage(r.Context(), mux.Vars(r)["clientId"])
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (a *api) handleQuotaReset(w http.ResponseWriter, r *http.Request) {
	k, err := a.b.GetAPIKey(r.Context(), mux.Vars(r)["clientId"])
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.b.ResetUsage(r.Context(), k.ClientID); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deleted)
}
