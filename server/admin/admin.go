// Package admin is the admin REST API of the admin listener (contract
// section 8): JSON handlers for groups, services, API keys, quotas and WASM
// plugins, plus /metrics and /health. Every write goes through the Backend
// (the store), whose hooks keep the gateway's in-memory state in sync.
package admin

import (
	"context"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/gorilla/mux"

	"gatehouse"
)

// Backend is what the admin API needs of the store, plus the live quota
// counters and the WASM compiler, which the lead's server type adds.
type Backend interface {
	CreateGroup(ctx context.Context, g *gatehouse.Group) error
	GetGroup(ctx context.Context, id string) (gatehouse.Group, error)
	ListGroups(ctx context.Context, p gatehouse.Page) ([]gatehouse.Group, int, error)
	UpdateGroup(ctx context.Context, g *gatehouse.Group) error
	DeleteGroup(ctx context.Context, id string) error

	CreateService(ctx context.Context, s *gatehouse.Service) error
	GetService(ctx context.Context, id string) (gatehouse.Service, error)
	ListServices(ctx context.Context, f gatehouse.ServiceFilter, p gatehouse.Page) ([]gatehouse.Service, int, error)
	UpdateService(ctx context.Context, s *gatehouse.Service) error
	DeleteService(ctx context.Context, id string) error

	CreateAPIKey(ctx context.Context, k *gatehouse.APIKey) error
	CreateAPIKeys(ctx context.Context, ks []gatehouse.APIKey) error
	GetAPIKey(ctx context.Context, clientID string) (gatehouse.APIKey, error)
	ListAPIKeys(ctx context.Context, f gatehouse.KeyFilter, p gatehouse.Page) ([]gatehouse.APIKey, int, error)
	UpdateAPIKey(ctx context.Context, k *gatehouse.APIKey) error
	DeleteAPIKey(ctx context.Context, clientID string) error

	CreatePlugin(ctx context.Context, p *gatehouse.Plugin, wasm []byte) error
	GetPlugin(ctx context.Context, id string) (gatehouse.Plugin, error)
	ListPlugins(ctx context.Context) ([]gatehouse.Plugin, error)
	UpdatePlugin(ctx context.Context, p *gatehouse.Plugin) error
	ReplacePluginWasm(ctx context.Context, id string, wasm []byte) (gatehouse.Plugin, error)
	DeletePlugin(ctx context.Context, id string) error

	// Usage is the key's live quota state; a *gatehouse.Error NotFound when
	// the key is unknown.
	Usage(ctx context.Context, clientID string) (gatehouse.QuotaUsage, error)
	// ResetUsage sets the key's counters to zero.
	ResetUsage(ctx context.Context, clientID string) error
	// CheckWasm compiles the module and verifies its exports; a
	// *gatehouse.Error Invalid with field "wasm" when it is not a usable plugin.
	CheckWasm(ctx context.Context, wasm []byte) error
}

// Config wires the admin API.
type Config struct {
	Backend Backend
	// Authenticate returns nil when the request presents an admin-api-group
	// key in a header. A nil Authenticate refuses every call (fail closed).
	// A *gatehouse.Error's message is shown to the caller; any other error
	// is answered with a fixed message.
	Authenticate func(r *http.Request) error
	// Metrics serves /metrics (Prometheus text) behind Authenticate.
	Metrics http.Handler
	Logger  *slog.Logger
}

// Body limits: one entity is small, a bulk import of 10,000 keys is not.
const (
	maxJSONBody = 1 << 20
	maxBulkBody = 16 << 20
	maxBulkKeys = 10_000
)

type api struct {
	b            Backend
	authenticate func(r *http.Request) error
	metrics      http.Handler
	log          *slog.Logger
}

// Register mounts /api/..., /metrics and /health on r. The routes under /api
// live on a subrouter whose NotFoundHandler and MethodNotAllowedHandler
// answer JSON; r's own handlers are left to the caller, so a dashboard on
// the same router keeps its HTML 404 page.
func Register(r *mux.Router, cfg Config) {
	a := &api{b: cfg.Backend, authenticate: cfg.Authenticate, metrics: cfg.Metrics, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.Default()
	}

	r.Path("/health").Handler(methods{http.MethodGet: http.HandlerFunc(a.handleHealth)})
	r.Path("/metrics").Handler(a.auth(methods{http.MethodGet: http.HandlerFunc(a.handleMetrics)}))

	// "/api" itself and everything below it, but not "/apix".
	api := r.MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool {
		return req.URL.Path == "/api" || strings.HasPrefix(req.URL.Path, "/api/")
	}).Subrouter()
	api.NotFoundHandler = a.auth(http.HandlerFunc(handleNotFound))
	api.MethodNotAllowedHandler = a.auth(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method not allowed"})
	}))

	route := func(path string, m methods) { api.Path(path).Handler(a.auth(m)) }

	route("/api/groups", methods{"GET": a.handleGroupList, "POST": a.handleGroupCreate})
	route("/api/groups/{id}", methods{"GET": a.handleGroupGet, "PUT": a.handleGroupPut,
		"PATCH": a.handleGroupPatch, "DELETE": a.handleGroupDelete})
	route("/api/groups/{id}/services", methods{"GET": a.handleGroupServices})

	route("/api/services", methods{"GET": a.handleServiceList, "POST": a.handleServiceCreate})
	route("/api/services/{id}", methods{"GET": a.handleServiceGet, "PUT": a.handleServicePut,
		"PATCH": a.handleServicePatch, "DELETE": a.handleServiceDelete})

	for _, kind := range []string{"groups", "services"} {
		route("/api/"+kind+"/{id}/apikeys", methods{"GET": a.handleKeyList, "POST": a.handleKeyCreate})
		route("/api/"+kind+"/{id}/apikeys/{clientId}", methods{"GET": a.handleKeyGet, "PUT": a.handleKeyPut,
			"PATCH": a.handleKeyPatch, "DELETE": a.handleKeyDelete})
	}
	// _bulk before {clientId}, so that GET /api/apikeys/_bulk is a 405.
	route("/api/apikeys", methods{"GET": a.handleKeyList})
	route("/api/apikeys/_bulk", methods{"POST": a.handleKeyBulk})
	route("/api/apikeys/{clientId}", methods{"GET": a.handleKeyGet, "PUT": a.handleKeyPut,
		"PATCH": a.handleKeyPatch, "DELETE": a.handleKeyDelete})
	route("/api/apikeys/{clientId}/quotas", methods{"GET": a.handleQuotaGet, "DELETE": a.handleQuotaReset})

	route("/api/plugins", methods{"GET": a.handlePluginList, "POST": a.handlePluginCreate})
	route("/api/plugins/{id}", methods{"GET": a.handlePluginGet, "PATCH": a.handlePluginPatch,
		"PUT": a.handlePluginPut, "DELETE": a.handlePluginDelete})
}

// methods dispatches on the request method and answers 405 with an Allow
// header (mux's own 405 has none) for the others.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, ok := m[r.Method]; ok {
		h(w, r)
		return
	}
	allow := make([]string, 0, len(m))
	for k := range m {
		allow = append(allow, k)
	}
	sort.Strings(allow)
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method not allowed"})
}

// auth refuses the request with 401 unless Authenticate accepts it. It wraps
// the 404 and 405 answers too, so an anonymous caller learns nothing about
// which routes exist.
func (a *api) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.authenticate == nil {
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "admin api key required"})
			return
		}
		if err := a.authenticate(r); err != nil {
			msg := "admin api key required"
			if ge := gatehouse.AsError(err); ge != nil {
				msg = ge.Message
			}
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: msg})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *api) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *api) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if a.metrics == nil {
		handleNotFound(w, r)
		return
	}
	a.metrics.ServeHTTP(w, r)
}

func handleNotFound(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusNotFound, errorBody{Error: "not found"})
}
