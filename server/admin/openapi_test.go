package admin

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/mux"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/helpers"
	"sigs.k8s.io/yaml"
)

// The admin tests send their calls through testAPI.send, which holds every
// request and answer to the OpenAPI document (checkOpenAPI): the document
// cannot drift from the code without a test failing.

var (
	specOnce      sync.Once
	specValidator validator.Validator
	specErr       error
	// The validator is not documented as safe for concurrent use.
	specMu sync.Mutex
)

func openAPIValidator(t testing.TB) validator.Validator {
	t.Helper()
	specOnce.Do(func() {
		if openapiErr != nil {
			specErr = openapiErr
			return
		}
		doc, err := libopenapi.NewDocument(openapiJSON)
		if err != nil {
			specErr = err
			return
		}
		// The tests authenticate with a test header, not the schemes the
		// document declares; authentication has tests of its own.
		v, errs := validator.NewValidator(doc, config.WithoutSecurityValidation())
		if len(errs) > 0 {
			specErr = errs[0]
			return
		}
		specValidator = v
	})
	if specErr != nil {
		t.Fatalf("openapi document: %v", specErr)
	}
	return specValidator
}

// checkOpenAPI checks one call of the tests against the document: every
// answer must be one the document gives for the route and method (status,
// content type, body), and a request the API accepted (2xx) must be one the
// document describes. Requests the API refused are meant to be invalid, and
// calls to routes or methods that do not exist (the 404 and 405 tests) have
// no operation to check against.
func checkOpenAPI(t testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) {
	t.Helper()
	v := openAPIValidator(t)
	vreq := req.Clone(req.Context())
	if len(reqBody) > 0 && vreq.Header.Get("Content-Type") == "" {
		// The API reads a body without a Content-Type as JSON, and the tests
		// often send one so.
		vreq.Header.Set("Content-Type", "application/json")
	}
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	// The validator reads JSON bodies only; a YAML document is checked as
	// the JSON it stands for (export and apply describe both the same way).
	header = header.Clone()
	reqBody, body = asJSON(vreq.Header, reqBody), asJSON(header, body)
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	res := &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)), Request: vreq}
	specMu.Lock()
	_, errs := v.ValidateHttpResponse(vreq, res)
	var reqErrs []string
	if status/100 == 2 && len(errs) == 0 {
		vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
		if ok, rerrs := v.ValidateHttpRequestSync(vreq); !ok {
			for _, e := range rerrs {
				reqErrs = append(reqErrs, describe(e.Message, e.Reason, e.SchemaValidationErrors))
			}
		}
	}
	specMu.Unlock()
	var problems []string
	for _, e := range errs {
		if e.ValidationType == helpers.PathValidation && (status == http.StatusNotFound ||
			status == http.StatusMethodNotAllowed || status == http.StatusUnauthorized) {
			// No such route or method (refused before it is told apart when
			// anonymous): nothing documented to hold it to.
			continue
		}
		problems = append(problems, describe(e.Message, e.Reason, e.SchemaValidationErrors))
	}
	problems = append(problems, reqErrs...)
	if len(problems) > 0 {
		t.Errorf("openapi: %s %s answered %d %s\n  %s", req.Method, req.URL.RequestURI(), status, body, strings.Join(problems, "\n  "))
	}
}

// asJSON converts a YAML body to JSON and says so in h; other bodies are
// returned as they are.
func asJSON(h http.Header, body []byte) []byte {
	if h.Get("Content-Type") != "application/yaml" || len(body) == 0 {
		return body
	}
	j, err := yaml.YAMLToJSON(body)
	if err != nil {
		return body // not YAML: the API's own answer says so
	}
	h.Set("Content-Type", "application/json")
	return j
}

func describe[S any](msg, reason string, schemaErrs []S) string {
	out := msg
	if reason != "" {
		out += ": " + reason
	}
	for _, se := range schemaErrs {
		b, _ := json.Marshal(se)
		out += "\n    " + string(b)
	}
	return out
}

func TestOpenAPIDocument(t *testing.T) {
	a := newTestAPI(t)
	r := a.send("GET", "/api/openapi.json", "", nil, false)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("openapi.json without a key: %d %q", r.status, r.header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	if ok, errs := openAPIValidator(t).ValidateDocument(); !ok {
		for _, e := range errs {
			t.Errorf("document: %s: %s", e.Message, e.Reason)
		}
	}

	// Every route the API registers is documented, with the methods it
	// takes, and the document names no route that does not exist.
	routes := map[string][]string{}
	router := newRouter(newTestBackend(t), io.Discard)
	err := router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return nil // the /api subrouter's matcher
		}
		routes[tpl] = nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for path := range routes {
		// The methods a route takes are the ones it does not answer 405.
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			concrete := strings.NewReplacer("{id}", "x", "{clientId}", "y").Replace(path)
			req, _ := http.NewRequest(m, a.srv.URL+concrete, strings.NewReader("{}"))
			req.Header.Set(authHeader, authValue)
			req.Header.Set("Content-Type", "application/json")
			res, err := a.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusMethodNotAllowed {
				routes[path] = append(routes[path], strings.ToLower(m))
			}
		}
	}
	var missing, extra []string
	for path, ms := range routes {
		for _, m := range ms {
			if _, ok := doc.Paths[path][m]; !ok {
				missing = append(missing, m+" "+path)
			}
		}
	}
	for path, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			if !slices.Contains(routes[path], m) {
				extra = append(extra, m+" "+path)
			}
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("routes not in the document: %v\ndocumented but not served: %v", missing, extra)
	}
	if len(routes) < 20 {
		t.Fatalf("walked only %d routes", len(routes))
	}
}

// TestClusterNodesRoute: a leader lists its nodes in the shape the document
// gives (send checks the answer against it), behind the admin key.
func TestClusterNodesRoute(t *testing.T) {
	a := newTestAPI(t)
	r := a.do("GET", "/api/cluster/nodes", "", "")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"name":"leader-1"`) {
		t.Fatalf("GET /api/cluster/nodes: %d %s", r.status, r.body)
	}
	if r := a.send("GET", "/api/cluster/nodes", "", nil, false); r.status != http.StatusUnauthorized {
		t.Fatalf("without a key: %d", r.status)
	}
}
