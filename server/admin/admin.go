// Package admin is the admin REST API of the admin listener (contract
// section 8): JSON handlers for groups, services, API keys, quotas, WASM
// plugins, export and apply, plus /metrics, /health, /ready and its OpenAPI
// document at /api/openapi.json. Every write goes through the
// store, which commits it with its revision; the handlers check the input's
// shape (unknown fields, immutable ids) before anything reaches the store.
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

// The store's methods the admin API calls, one small interface per entity.
// The server's backend (the store plus the live quota counters and the WASM
// compiler) satisfies them all.

// GroupStore reads and writes service groups.
type GroupStore interface {
	CreateGroup(ctx context.Context, g *gatehouse.Group) error
	GetGroup(ctx context.Context, id string) (gatehouse.Group, error)
	ListGroups(ctx context.Context, p gatehouse.Page) ([]gatehouse.Group, int, error)
	UpdateGroup(ctx context.Context, g *gatehouse.Group) error
	DeleteGroup(ctx context.Context, id string) error
}

// ServiceStore reads and writes service descriptors.
type ServiceStore interface {
	CreateService(ctx context.Context, s *gatehouse.Service) error
	GetService(ctx context.Context, id string) (gatehouse.Service, error)
	ListServices(ctx context.Context, f gatehouse.ServiceFilter, p gatehouse.Page) ([]gatehouse.Service, int, error)
	UpdateService(ctx context.Context, s *gatehouse.Service) error
	DeleteService(ctx context.Context, id string) error
}

// KeyStore reads and writes API keys.
type KeyStore interface {
	CreateAPIKey(ctx context.Context, k *gatehouse.APIKey) error
	// CreateAPIKeys creates every key in one transaction, or none.
	CreateAPIKeys(ctx context.Context, ks []gatehouse.APIKey) error
	GetAPIKey(ctx context.Context, clientID string) (gatehouse.APIKey, error)
	ListAPIKeys(ctx context.Context, f gatehouse.KeyFilter, p gatehouse.Page) ([]gatehouse.APIKey, int, error)
	UpdateAPIKey(ctx context.Context, k *gatehouse.APIKey) error
	DeleteAPIKey(ctx context.Context, clientID string) error
}

// QuotaStore is the keys' live quota state.
type QuotaStore interface {
	// Usage is the key's live quota state; a *gatehouse.Error NotFound when
	// the key is unknown.
	Usage(ctx context.Context, clientID string) (gatehouse.QuotaUsage, error)
	// ResetUsage sets the key's counters to zero.
	ResetUsage(ctx context.Context, clientID string) error
}

// PluginStore reads and writes WASM plugins.
type PluginStore interface {
	CreatePlugin(ctx context.Context, p *gatehouse.Plugin, wasm []byte) error
	GetPlugin(ctx context.Context, id string) (gatehouse.Plugin, error)
	ListPlugins(ctx context.Context) ([]gatehouse.Plugin, error)
	UpdatePlugin(ctx context.Context, p *gatehouse.Plugin) error
	ReplacePluginWasm(ctx context.Context, id string, wasm []byte) (gatehouse.Plugin, error)
	DeletePlugin(ctx context.Context, id string) error
	// CheckWasm compiles the module and verifies its exports; a
	// *gatehouse.Error Invalid with field "wasm" when it is not a usable plugin.
	CheckWasm(ctx context.Context, wasm []byte) error
}

// Backend is all of them, so that one value wires the whole API.
type Backend interface {
	GroupStore
	ServiceStore
	KeyStore
	QuotaStore
	PluginStore
	ConfigStore
	RotateStore
	AuditStore
	UserStore
}

// Caller is who an authenticated admin request comes from.
type Caller struct {
	ClientID string // the admin API key's client id
	ReadOnly bool   // the key may only read (GET)
}

// Config wires the admin API.
type Config struct {
	Backend Backend
	// Authenticate returns the caller when the request presents an
	// admin-api-group key in a header. A nil Authenticate refuses every call
	// (fail closed). A *gatehouse.Error's message is shown to the caller;
	// any other error is answered with a fixed message.
	Authenticate func(r *http.Request) (Caller, error)
	// Health reports the node for /health and /ready (no authentication):
	// its role ("standalone", "leader", "worker"), the last revision it
	// applied, and whether it serves a configuration. A nil Health answers a
	// ready standalone node at revision 0.
	Health func() (role string, revision int64, ready bool)
	// Metrics serves /metrics (Prometheus text) behind Authenticate.
	Metrics http.Handler
	Logger  *slog.Logger

	// Cluster (contract section 11). Links, when set, adds a worker's
	// "leader" and "redis" to /health. Nodes, when set, answers
	// GET /api/cluster/nodes. Worker, when set (the leader's URL), answers
	// every route but /health, /ready and /metrics with 421.
	Links  func() (leader, redis string)
	Nodes  func() []ClusterNode
	Worker string
}

// ClusterNode is one node of GET /api/cluster/nodes.
type ClusterNode struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	Address  string `json:"address"`
	Revision int64  `json:"revision"`
	LastSeen int64  `json:"lastSeen"`
	Leader   string `json:"leader"`
	Redis    string `json:"redis"`
}

// Body limits: one entity is small, a bulk import of 10,000 keys is not.
const (
	maxJSONBody = 1 << 20
	maxBulkBody = 16 << 20
)

// handler is what every route's method does: it writes its answer and
// returns nil, or returns what went wrong and writes nothing; serve turns the
// error into the answer.
type handler func(w http.ResponseWriter, r *http.Request) error

type api struct {
	authenticate func(r *http.Request) (Caller, error)
	health       func() (string, int64, bool)
	links        func() (string, string)
	metrics      http.Handler
	log          *slog.Logger
}

// Register mounts /api/..., /metrics, /health and /ready on r. The routes
// under /api live on a subrouter whose NotFoundHandler and
// MethodNotAllowedHandler answer JSON; r's own handlers are left to the
// caller, so a dashboard on the same router keeps its HTML 404 page.
func Register(r *mux.Router, cfg Config) {
	a := &api{authenticate: cfg.Authenticate, health: cfg.Health, links: cfg.Links, metrics: cfg.Metrics, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.health == nil {
		a.health = func() (string, int64, bool) { return "standalone", 0, true }
	}
	b := cfg.Backend
	groups := &groupAPI{groups: b, services: b}
	services := &serviceAPI{services: b}
	keys := &keyAPI{keys: b, groups: b, services: b}
	quotas := &quotaAPI{quotas: b, keys: b}
	plugins := &pluginAPI{plugins: b}
	config := &configAPI{config: b}
	rotate := &rotateAPI{keys: b}
	audit := &auditAPI{audit: b}
	users := &userAPI{users: b}

	r.Path("/health").Handler(a.serve(methods{http.MethodGet: a.handleHealth}.dispatch))
	r.Path("/ready").Handler(a.serve(methods{http.MethodGet: a.handleReady}.dispatch))
	r.Path("/metrics").Handler(a.auth(a.serve(methods{http.MethodGet: a.handleMetrics}.dispatch)))
	if cfg.Worker != "" {
		// A worker takes its configuration from the leader: nothing
		// else is served here, the dashboard included.
		r.NotFoundHandler = workerRefusal(cfg.Worker)
		return
	}

	// "/api" itself and everything below it, but not "/apix".
	sub := r.MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool {
		return req.URL.Path == "/api" || strings.HasPrefix(req.URL.Path, "/api/")
	}).Subrouter()
	sub.NotFoundHandler = a.auth(a.serve(func(http.ResponseWriter, *http.Request) error {
		return errNotFound
	}))
	sub.MethodNotAllowedHandler = a.auth(a.serve(func(http.ResponseWriter, *http.Request) error {
		return errMethodNotAllowed
	}))

	// The document of the API itself needs no key.
	sub.Path("/api/openapi.json").Handler(a.serve(methods{"GET": a.handleOpenAPI}.dispatch))
	route := func(path string, m methods) { sub.Path(path).Handler(a.auth(a.serve(m.dispatch))) }

	route("/api/groups", methods{"GET": groups.list, "POST": groups.create})
	route("/api/groups/{id}", methods{"GET": groups.get, "PUT": groups.put,
		"PATCH": groups.patch, "DELETE": groups.delete})
	route("/api/groups/{id}/services", methods{"GET": groups.listServices})

	route("/api/services", methods{"GET": services.list, "POST": services.create})
	route("/api/services/{id}", methods{"GET": services.get, "PUT": services.put,
		"PATCH": services.patch, "DELETE": services.delete})

	for _, kind := range []string{"groups", "services"} {
		route("/api/"+kind+"/{id}/apikeys", methods{"GET": keys.list, "POST": keys.create})
		route("/api/"+kind+"/{id}/apikeys/{clientId}", methods{"GET": keys.get, "PUT": keys.put,
			"PATCH": keys.patch, "DELETE": keys.delete})
	}
	// _bulk before {clientId}, so that GET /api/apikeys/_bulk is a 405.
	route("/api/apikeys", methods{"GET": keys.list})
	route("/api/apikeys/_bulk", methods{"POST": keys.bulk})
	route("/api/apikeys/{clientId}", methods{"GET": keys.get, "PUT": keys.put,
		"PATCH": keys.patch, "DELETE": keys.delete})
	route("/api/apikeys/{clientId}/quotas", methods{"GET": quotas.get, "DELETE": quotas.reset})
	route("/api/apikeys/{clientId}/rotate", methods{"POST": rotate.rotate})
	route("/api/audit", methods{"GET": audit.list})
	route("/api/users", methods{"GET": users.list, "POST": users.create})
	route("/api/users/{name}", methods{"GET": users.get, "PATCH": users.patch, "DELETE": users.delete})

	if cfg.Nodes != nil {
		route("/api/cluster/nodes", methods{"GET": func(w http.ResponseWriter, _ *http.Request) error {
			writeJSON(w, http.StatusOK, cfg.Nodes())
			return nil
		}})
	}

	route("/api/plugins", methods{"GET": plugins.list, "POST": plugins.create})
	route("/api/plugins/{id}", methods{"GET": plugins.get, "PATCH": plugins.patch,
		"PUT": plugins.put, "DELETE": plugins.delete})

	route("/api/export", methods{"GET": config.export})
	route("/api/apply", methods{"POST": config.apply})
}

// methods dispatches on the request method; the others are a 405 with an
// Allow header (mux's own 405 has none).
type methods map[string]handler

func (m methods) dispatch(w http.ResponseWriter, r *http.Request) error {
	if h, ok := m[r.Method]; ok {
		return h(w, r)
	}
	allow := make([]string, 0, len(m))
	for k := range m {
		allow = append(allow, k)
	}
	sort.Strings(allow)
	w.Header().Set("Allow", strings.Join(allow, ", "))
	return errMethodNotAllowed
}

// serve runs h and answers its error: the one place a handler's error
// becomes an answer.
func (a *api) serve(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	})
}

// auth refuses the request with 401 unless Authenticate accepts it, and a
// read-only caller's writes with 403. It wraps the 404 and 405 answers too,
// so an anonymous caller learns nothing about which routes exist. What
// passes carries its actor, for the change log, and a revision recorder,
// whose revision the answer carries in Gatehouse-Revision.
func (a *api) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.authenticate == nil {
			a.writeError(w, r, errUnauthenticated)
			return
		}
		c, err := a.authenticate(r)
		if err != nil {
			msg := errUnauthenticated.msg
			if ge := gatehouse.AsError(err); ge != nil {
				msg = ge.Message
			}
			a.writeError(w, r, &statusError{http.StatusUnauthorized, msg})
			return
		}
		if c.ReadOnly && r.Method != http.MethodGet {
			a.writeError(w, r, gatehouse.Forbidden("this admin api key is read-only: it may only use GET"))
			return
		}
		ctx := gatehouse.WithActor(r.Context(), gatehouse.APIKeyActor(c.ClientID))
		ctx = gatehouse.WithRequestIP(ctx, remoteIP(r))
		ctx, rec := gatehouse.WithRevisionRecorder(ctx)
		next.ServeHTTP(&revisionWriter{ResponseWriter: w, rec: rec}, r.WithContext(ctx))
	})
}

func (a *api) handleHealth(w http.ResponseWriter, _ *http.Request) error {
	role, rev, _ := a.health()
	b := healthBody{Status: "ok", Role: role, Revision: rev}
	if a.links != nil {
		b.Leader, b.Redis = a.links()
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

type healthBody struct {
	Status   string `json:"status"`
	Role     string `json:"role"`
	Revision int64  `json:"revision"`
	Leader   string `json:"leader,omitempty"`
	Redis    string `json:"redis,omitempty"`
}

// workerRefusal answers every route a worker does not serve.
func workerRefusal(leader string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusMisdirectedRequest, map[string]string{"error": "this node is a worker", "leader": leader})
	})
}

func (a *api) handleReady(w http.ResponseWriter, _ *http.Request) error {
	if _, _, ready := a.health(); !ready {
		writeJSON(w, http.StatusServiceUnavailable, map[string]bool{"ready": false})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	return nil
}

func (a *api) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	if a.metrics == nil {
		return errNotFound
	}
	a.metrics.ServeHTTP(w, r)
	return nil
}
