package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"sigs.k8s.io/yaml"

	"gatehouse"
)

// ConfigStore exports the whole configuration and applies a document
// (contract section 12).
type ConfigStore interface {
	Export(ctx context.Context) (gatehouse.Document, error)
	// Apply makes the configuration equal to doc in one transaction; with
	// dryRun it answers the same plan and writes nothing; with prune it
	// deletes what doc lacks. An invalid doc is a *gatehouse.Error Invalid
	// naming the entity and field, and nothing is written.
	Apply(ctx context.Context, doc *gatehouse.Document, dryRun, prune bool) (gatehouse.ApplyResult, error)
}

// configAPI serves /api/export and /api/apply.
type configAPI struct {
	config ConfigStore
}

// boolParam reads an optional true/false query parameter.
func boolParam(r *http.Request, name string, def bool) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, gatehouse.Invalid(name, "must be true or false")
	}
	return b, nil
}

// export answers the configuration as YAML, or JSON with ?format=json;
// ?secrets=false leaves the keys' clientSecret out.
func (h *configAPI) export(w http.ResponseWriter, r *http.Request) error {
	format := r.URL.Query().Get("format")
	if format != "" && format != "yaml" && format != "json" {
		return gatehouse.Invalid("format", "must be yaml or json")
	}
	secrets, err := boolParam(r, "secrets", true)
	if err != nil {
		return err
	}
	doc, err := h.config.Export(r.Context())
	if err != nil {
		return err
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode export: %w", err)
	}
	if !secrets {
		if body, err = withoutSecrets(body); err != nil {
			return err
		}
	}
	if format == "json" {
		writeJSON(w, http.StatusOK, json.RawMessage(body))
		return nil
	}
	out, err := yaml.JSONToYAML(body)
	if err != nil {
		return fmt.Errorf("encode export as yaml: %w", err)
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/yaml")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return nil
}

// withoutSecrets drops every apikeys[].clientSecret from an encoded
// document; numbers keep their digits.
func withoutSecrets(body []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("strip secrets: %w", err)
	}
	keys, _ := doc["apikeys"].([]any)
	for _, k := range keys {
		if m, ok := k.(map[string]any); ok {
			delete(m, "clientSecret")
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("strip secrets: %w", err)
	}
	return out, nil
}
