package admin

import (
	"context"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"gatehouse"
)

// RotateStore rotates API key secrets (contract section 14).
type RotateStore interface {
	// RotateAPIKey makes newSecret (generated when "") the key's secret and
	// accepts the previous one for graceHours more (the key's own
	// rotation.gracePeriod when negative); it returns the key.
	RotateAPIKey(ctx context.Context, clientID, newSecret string, graceHours int64) (gatehouse.APIKey, error)
}

type rotateAPI struct{ keys RotateStore }

// rotateBody is POST /api/apikeys/{clientId}/rotate's optional body.
type rotateBody struct {
	GracePeriod  *int64 `json:"gracePeriod"`
	ClientSecret string `json:"clientSecret"`
}

func (h *rotateAPI) rotate(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		return err
	}
	var b rotateBody
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeObject(body, &b, ""); err != nil {
			return err
		}
	}
	grace := int64(-1)
	if b.GracePeriod != nil {
		if *b.GracePeriod < 0 || *b.GracePeriod > gatehouse.MaxGracePeriod {
			return gatehouse.Invalid("gracePeriod", "must be between 0 and %d hours", gatehouse.MaxGracePeriod)
		}
		grace = *b.GracePeriod
	}
	k, err := h.keys.RotateAPIKey(r.Context(), mux.Vars(r)["clientId"], b.ClientSecret, grace)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, k)
	return nil
}
