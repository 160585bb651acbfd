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

// keyAPI serves the API key routes: /api/apikeys and the same routes nested
// under a group or a service.
type keyAPI struct {
	keys     KeyStore
	groups   GroupStore
	services ServiceStore
}

// keyScope is the group or service a key route is nested under: such a
// route reaches only the keys authorized on it, and a key created there
// without authorizedEntities is authorized on the group. The zero scope
// (/api/apikeys) reaches every key.
type keyScope struct {
	groupID   string
	serviceID string // set under /api/services/{id}
}

// scope resolves the route's {id}; a missing group or service is 404.
func (h *keyAPI) scope(r *http.Request) (keyScope, error) {
	id, ok := mux.Vars(r)["id"]
	switch {
	case !ok:
		return keyScope{}, nil
	case strings.HasPrefix(r.URL.Path, "/api/groups/"):
		g, err := h.groups.GetGroup(r.Context(), id)
		if err != nil {
			return keyScope{}, err
		}
		return keyScope{groupID: g.ID}, nil
	default:
		s, err := h.services.GetService(r.Context(), id)
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

// authorizedGroup is Otoroshi's shorthand for one group entity, the one
// field a key body may hold that the key does not have.
const authorizedGroup = "authorizedGroup"

// decodeKey decodes one key object on top of k, strictly, folding the
// "authorizedGroup": "<id>" shorthand into authorizedEntities.
func decodeKey(data []byte, k *gatehouse.APIKey, field string) error {
	if err := decodeObject(data, k, field, authorizedGroup); err != nil {
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

// list serves /api/apikeys (filters group, service, enabled, q) and the
// nested lists, which are the same list narrowed to their scope.
func (h *keyAPI) list(w http.ResponseWriter, r *http.Request) error {
	sc, err := h.scope(r)
	if err != nil {
		return err
	}
	p, err := parsePage(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := gatehouse.KeyFilter{GroupID: q.Get("group"), ServiceID: q.Get("service"), Q: q.Get("q")}
	if s := q.Get("enabled"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return gatehouse.Invalid("enabled", "must be true or false")
		}
		f.Enabled = &b
	}
	switch {
	case sc.serviceID != "":
		f.ServiceID = sc.serviceID
	case sc.groupID != "":
		f.GroupID = sc.groupID
	}
	ks, total, err := h.keys.ListAPIKeys(r.Context(), f, p)
	if err != nil {
		return err
	}
	writeList(w, ks, total)
	return nil
}

func (h *keyAPI) create(w http.ResponseWriter, r *http.Request) error {
	sc, err := h.scope(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		return err
	}
	k := gatehouse.DefaultAPIKey()
	if err := decodeKey(body, &k, ""); err != nil {
		return err
	}
	sc.defaultEntities(&k)
	if err := h.keys.CreateAPIKey(r.Context(), &k); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, k)
	return nil
}

// scopedKey loads the route's key, 404 when it is outside the route's scope.
func (h *keyAPI) scopedKey(r *http.Request) (keyScope, gatehouse.APIKey, error) {
	sc, err := h.scope(r)
	if err != nil {
		return sc, gatehouse.APIKey{}, err
	}
	k, err := h.keys.GetAPIKey(r.Context(), mux.Vars(r)["clientId"])
	if err != nil {
		return sc, k, err
	}
	if !sc.reaches(&k) {
		return sc, gatehouse.APIKey{}, gatehouse.NotFound("apikey not found")
	}
	return sc, k, nil
}

func (h *keyAPI) get(w http.ResponseWriter, r *http.Request) error {
	_, k, err := h.scopedKey(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, k)
	return nil
}

// put replaces the key: absent fields take their defaults, except the
// client id (the path's; a body may repeat it, not change it), the secret
// (kept) and, under a group or service, authorizedEntities (the scope's
// group, as on creation).
func (h *keyAPI) put(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		return err
	}
	sc, cur, err := h.scopedKey(r)
	if err != nil {
		return err
	}
	k := gatehouse.DefaultAPIKey()
	if err := decodeKey(body, &k, ""); err != nil {
		return err
	}
	if k.ClientID, err = putID("clientId", k.ClientID, cur.ClientID); err != nil {
		return err
	}
	sc.defaultEntities(&k)
	return h.update(w, r, &k, &cur)
}

func (h *keyAPI) patch(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		return err
	}
	_, cur, err := h.scopedKey(r)
	if err != nil {
		return err
	}
	k := gatehouse.DefaultAPIKey()
	err = patchEntity(r.Header.Get("Content-Type"), body, cur, func(data []byte) error {
		return decodeKey(data, &k, "")
	})
	if err != nil {
		return err
	}
	if err := sameID("clientId", k.ClientID, cur.ClientID); err != nil {
		return err
	}
	return h.update(w, r, &k, &cur)
}

// update writes k over cur; an absent secret keeps the current one.
func (h *keyAPI) update(w http.ResponseWriter, r *http.Request, k, cur *gatehouse.APIKey) error {
	if k.ClientSecret == "" {
		k.ClientSecret = cur.ClientSecret
	}
	if err := h.keys.UpdateAPIKey(r.Context(), k); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, k)
	return nil
}

func (h *keyAPI) delete(w http.ResponseWriter, r *http.Request) error {
	_, k, err := h.scopedKey(r)
	if err != nil {
		return err
	}
	if err := h.keys.DeleteAPIKey(r.Context(), k.ClientID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deleted)
	return nil
}

// bulk creates up to 10,000 keys in one transaction: all or nothing. A
// field error names the key's index: "[3].dailyQuota".
func (h *keyAPI) bulk(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, maxBulkBody)
	if err != nil {
		return err
	}
	var raws []json.RawMessage
	if err := decodeJSON(body, &raws, ""); err != nil {
		return err
	}
	if raws == nil {
		return gatehouse.Invalid("", "must be a JSON array of API keys")
	}
	if len(raws) > gatehouse.MaxBulkKeys {
		return gatehouse.Invalid("", "at most %d keys per bulk call, got %d", gatehouse.MaxBulkKeys, len(raws))
	}
	ks := make([]gatehouse.APIKey, len(raws))
	for i, raw := range raws {
		ks[i] = gatehouse.DefaultAPIKey()
		if err := decodeKey(raw, &ks[i], fmt.Sprintf("[%d].", i)); err != nil {
			return err
		}
	}
	if err := h.keys.CreateAPIKeys(r.Context(), ks); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, ks)
	return nil
}

// quotaAPI serves /api/apikeys/{clientId}/quotas.
type quotaAPI struct {
	quotas QuotaStore
	keys   KeyStore
}

func (h *quotaAPI) get(w http.ResponseWriter, r *http.Request) error {
	u, err := h.quotas.Usage(r.Context(), mux.Vars(r)["clientId"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (h *quotaAPI) reset(w http.ResponseWriter, r *http.Request) error {
	k, err := h.keys.GetAPIKey(r.Context(), mux.Vars(r)["clientId"])
	if err != nil {
		return err
	}
	if err := h.quotas.ResetUsage(r.Context(), k.ClientID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deleted)
	return nil
}
