package admin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"

	"sigs.k8s.io/yaml"

	"gatehouse"
)

// maxApplyBody bounds an apply document: plugins travel in it as base64.
const maxApplyBody = 96 << 20

// apply takes a document (YAML or JSON), checks it whole and strictly, and
// makes the configuration equal to it (?dryRun=true: the plan only;
// ?prune=true: what the document lacks is deleted).
func (h *configAPI) apply(w http.ResponseWriter, r *http.Request) error {
	dryRun, err := boolParam(r, "dryRun", false)
	if err != nil {
		return err
	}
	prune, err := boolParam(r, "prune", false)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, maxApplyBody)
	if err != nil {
		return err
	}
	doc, err := decodeDocument(body)
	if err != nil {
		return err
	}
	res, err := h.config.Apply(r.Context(), &doc, dryRun, prune)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// rawDocument is a document's top level, its entities still undecoded.
type rawDocument struct {
	Format   string            `json:"format"`
	Groups   []json.RawMessage `json:"groups"`
	Services []json.RawMessage `json:"services"`
	APIKeys  []json.RawMessage `json:"apikeys"`
	Plugins  []json.RawMessage `json:"plugins"`
}

// decodeDocument reads a YAML or JSON document; every entity is decoded
// strictly on top of its defaults, and an error names the entity
// ("service/orders: ...") and its field ("services[0].targets").
func decodeDocument(body []byte) (gatehouse.Document, error) {
	var doc gatehouse.Document
	data := bytes.TrimSpace(body)
	if len(data) == 0 {
		return doc, gatehouse.Invalid("", "the body must be a gatehouse/v1 document (YAML or JSON)")
	}
	if data[0] != '{' {
		j, err := yaml.YAMLToJSON(data)
		if err != nil {
			return doc, gatehouse.Invalid("", "malformed YAML: %v", err)
		}
		data = j
	}
	var top rawDocument
	if err := decodeObject(data, &top, ""); err != nil {
		return doc, err
	}
	doc.Format = top.Format
	doc.Groups = make([]gatehouse.Group, len(top.Groups))
	for i, raw := range top.Groups {
		if err := decodeEntity(raw, &doc.Groups[i], "groups", i, gatehouse.KindGroup, "id", decodeObject); err != nil {
			return doc, err
		}
	}
	doc.Services = make([]gatehouse.Service, len(top.Services))
	for i, raw := range top.Services {
		doc.Services[i] = gatehouse.DefaultService()
		if err := decodeEntity(raw, &doc.Services[i], "services", i, gatehouse.KindService, "id", decodeObject); err != nil {
			return doc, err
		}
	}
	doc.APIKeys = make([]gatehouse.APIKey, len(top.APIKeys))
	for i, raw := range top.APIKeys {
		doc.APIKeys[i] = gatehouse.DefaultAPIKey()
		err := decodeEntity(raw, &doc.APIKeys[i], "apikeys", i, gatehouse.KindAPIKey, "clientId",
			func(data []byte, v any, field string, _ ...string) error {
				return decodeKey(data, v.(*gatehouse.APIKey), field)
			})
		if err != nil {
			return doc, err
		}
	}
	doc.Plugins = make([]gatehouse.PluginDocument, len(top.Plugins))
	for i, raw := range top.Plugins {
		def := gatehouse.DefaultPlugin()
		doc.Plugins[i] = gatehouse.PluginDocument{MemoryLimitPages: def.MemoryLimitPages,
			TimeoutMs: def.TimeoutMs, PoolSize: def.PoolSize}
		err := decodeEntity(raw, &doc.Plugins[i], "plugins", i, gatehouse.KindPlugin, "id",
			func(data []byte, v any, field string, _ ...string) error {
				// encoding/json's own base64 error names no field.
				var w struct {
					Wasm *string `json:"wasm"`
				}
				if json.Unmarshal(data, &w) == nil && w.Wasm != nil {
					if _, err := base64.StdEncoding.DecodeString(*w.Wasm); err != nil {
						return gatehouse.Invalid(field+"wasm", "must be the module in base64")
					}
				}
				return decodeObject(data, v, field)
			})
		if err != nil {
			return doc, err
		}
	}
	return doc, nil
}

type decodeFunc func(data []byte, v any, field string, extra ...string) error

// decodeEntity decodes list[i] with dec, naming the entity in the error's
// message by its id, when the raw object has one.
func decodeEntity(raw []byte, v any, list string, i int, kind, idField string, dec decodeFunc) error {
	prefix := fmt.Sprintf("%s[%d].", list, i)
	err := dec(raw, v, prefix)
	if err == nil {
		return nil
	}
	ge := gatehouse.AsError(err)
	if ge == nil {
		return err
	}
	name := fmt.Sprintf("%s[%d]", list, i)
	var ids map[string]any
	if json.Unmarshal(raw, &ids) == nil {
		if id, ok := ids[idField].(string); ok && id != "" {
			name = kind + "/" + id
		}
	}
	return gatehouse.Errorf(ge.Kind, ge.Field, "%s: %s", name, ge.Message)
}
