package admin

import (
	_ "embed"
	"fmt"
	"net/http"

	"sigs.k8s.io/yaml"
)

// openapiYAML is the OpenAPI 3.1 document of this API, written as YAML
// beside the handlers it describes; openapi_test.go holds it to them.
//
//go:embed openapi.yaml
var openapiYAML []byte

// openapiJSON is the document as GET /api/openapi.json answers it.
var openapiJSON, openapiErr = yaml.YAMLToJSON(openapiYAML)

func (a *api) handleOpenAPI(w http.ResponseWriter, _ *http.Request) error {
	if openapiErr != nil {
		return fmt.Errorf("openapi document: %w", openapiErr)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openapiJSON)
	return nil
}
