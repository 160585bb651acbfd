// Package dashboard serves the browser dashboard of the admin listener:
// server-rendered templ pages made live with htmx, behind a login with
// SQLite-backed sessions and cross-site forgery protection. Every write goes
// through the Backend (the store), whose hooks keep the gateway in step.
package dashboard

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/mux"

	"gatehouse"
	"gatehouse/assets"
	"gatehouse/views"
)

// Backend is what the dashboard needs: the store's methods (same signatures)
// plus live quota usage and the plugin host's checks from the gateway, split
// by the entity the screens handle.
type Backend interface {
	GroupBackend
	ServiceBackend
	KeyBackend
	PluginBackend
	SessionBackend
	AuditBackend
	UserBackend
}

// GroupBackend serves the group screens.
type GroupBackend interface {
	ListGroups(ctx context.Context, p gatehouse.Page) ([]gatehouse.Group, int, error)
	GetGroup(ctx context.Context, id string) (gatehouse.Group, error)
	CreateGroup(ctx context.Context, g *gatehouse.Group) error
	UpdateGroup(ctx context.Context, g *gatehouse.Group) error
	DeleteGroup(ctx context.Context, id string) error
}

// ServiceBackend serves the service screens.
type ServiceBackend interface {
	ListServices(ctx context.Context, f gatehouse.ServiceFilter, p gatehouse.Page) ([]gatehouse.Service, int, error)
	// AllServices lists every service: the dashboard filters them by the
	// host it shows.
	AllServices(ctx context.Context) ([]gatehouse.Service, error)
	GetService(ctx context.Context, id string) (gatehouse.Service, error)
	CreateService(ctx context.Context, s *gatehouse.Service) error
	UpdateService(ctx context.Context, s *gatehouse.Service) error
	DeleteService(ctx context.Context, id string) error
}

// KeyBackend serves the API key screens.
type KeyBackend interface {
	ListAPIKeys(ctx context.Context, f gatehouse.KeyFilter, p gatehouse.Page) ([]gatehouse.APIKey, int, error)
	GetAPIKey(ctx context.Context, clientID string) (gatehouse.APIKey, error)
	CreateAPIKey(ctx context.Context, k *gatehouse.APIKey) error
	UpdateAPIKey(ctx context.Context, k *gatehouse.APIKey) error
	DeleteAPIKey(ctx context.Context, clientID string) error
	// UsageDays is the key's calls per day from the usage history, which a
	// quota reset does not touch; LastUsed when each key was last admitted.
	UsageDays(ctx context.Context, clientID, fromDay, toDay string) ([]gatehouse.Counter, error)
	LastUsed(ctx context.Context, clientIDs ...string) (map[string]int64, error)
	// Usage is a key's live quota consumption (the gateway's in-memory counters).
	Usage(ctx context.Context, clientID string) (gatehouse.QuotaUsage, error)
	// ResetUsage sets a key's quota counters to zero.
	ResetUsage(ctx context.Context, clientID string) error
	// RotateAPIKey gives the key a new secret ("" generates one) and accepts
	// the old one for graceHours more (the key's own when negative).
	RotateAPIKey(ctx context.Context, clientID, newSecret string, graceHours int64) (gatehouse.APIKey, error)
}

// PluginBackend serves the plugin screens.
type PluginBackend interface {
	ListPlugins(ctx context.Context) ([]gatehouse.Plugin, error)
	CreatePlugin(ctx context.Context, p *gatehouse.Plugin, wasm []byte) error
	GetPlugin(ctx context.Context, id string) (gatehouse.Plugin, error)
	UpdatePlugin(ctx context.Context, p *gatehouse.Plugin) error
	ReplacePluginWasm(ctx context.Context, id string, wasm []byte) (gatehouse.Plugin, error)
	DeletePlugin(ctx context.Context, id string) error
	// CheckWasm tells whether the bytes are a module the plugin host can run;
	// a *gatehouse.Error's message is shown to the user.
	CheckWasm(ctx context.Context, wasm []byte) error
}

// SessionBackend serves the sign-in.
type SessionBackend interface {
	UserPasswordHash(ctx context.Context, username string) (string, error)
	CreateSession(ctx context.Context, s gatehouse.Session) error
	GetSession(ctx context.Context, tokenHash string) (gatehouse.Session, error)
	DeleteSession(ctx context.Context, tokenHash string) error
	DeleteExpiredSessions(ctx context.Context, nowUnix int64) error
	// RecordSignInFailed writes a failed sign-in to the audit log
	// (CreateSession and DeleteSession record sign-ins and sign-outs).
	RecordSignInFailed(ctx context.Context, username string) error
}

// Config is the dashboard's wiring.
type Config struct {
	Backend    Backend
	Logger     *slog.Logger
	GatewayURL string // base URL of the gateway listener for the curl lines, e.g. http://localhost:8080
	Now        func() time.Time
	Secure     bool           // the admin listener is served over HTTPS: cookies get Secure
	Location   *time.Location // calendar of daily counters (--timezone); nil means UTC
	// Nodes, on a cluster leader, lists the nodes for the Cluster page;
	// nil elsewhere (no page, no sidebar entry).
	Nodes func() []views.ClusterNode
}

// Dashboard is the http.Handler of every dashboard route.
type Dashboard struct {
	b       Backend
	log     *slog.Logger
	now     func() time.Time
	loc     *time.Location
	gateway string
	secure  bool
	limiter *loginLimiter
	handler http.Handler
	nodes   func() []views.ClusterNode
}

var _ http.Handler = (*Dashboard)(nil)

const (
	sessionCookie   = "gatehouse_session"
	sessionLifetime = 12 * time.Hour
	pageSize        = 50
	sidebarSize     = 20
	maxFormBytes    = 1 << 20
)

// New builds the dashboard and its routes.
func New(cfg Config) *Dashboard {
	d := &Dashboard{
		b:       viewerSafe{cfg.Backend},
		log:     cfg.Logger,
		now:     cfg.Now,
		loc:     cfg.Location,
		gateway: strings.TrimRight(cfg.GatewayURL, "/"),
		secure:  cfg.Secure,
		nodes:   cfg.Nodes,
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.loc == nil {
		d.loc = time.UTC
	}
	if d.gateway == "" {
		d.gateway = "http://localhost:8080"
	}
	d.limiter = newLoginLimiter()

	app := http.NewServeMux()
	app.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, views.ServicesURL(), http.StatusSeeOther)
	})
	app.HandleFunc("POST /logout", d.handleLogout)
	app.HandleFunc("GET /search", d.handleSearch)

	app.HandleFunc("GET /services", d.handleServices)
	app.HandleFunc("POST /services", d.handleServiceCreate)
	app.HandleFunc("GET /services/new", d.handleServiceNew)
	app.HandleFunc("GET /services/{id}", d.handleService)
	app.HandleFunc("POST /services/{id}", d.handleServiceUpdate)
	app.HandleFunc("GET /services/{id}/edit", d.handleServiceEdit)
	app.HandleFunc("GET /services/{id}/delete", d.handleServiceDeleteConfirm)
	app.HandleFunc("POST /services/{id}/delete", d.handleServiceDelete)
	app.HandleFunc("GET /services/{id}/plugins", d.handleServicePlugins)
	app.HandleFunc("POST /services/{id}/plugins", d.handleServicePluginsSave)

	app.HandleFunc("GET /services/{id}/apikeys", d.handleKeys)
	app.HandleFunc("GET /apikeys", d.handleAllKeys)
	// A key's screens, under a service (its group's keys) and under "All API keys".
	for _, base := range []string{"/services/{id}/apikeys", "/apikeys"} {
		app.HandleFunc("POST "+base, d.handleKeyCreate)
		app.HandleFunc("GET "+base+"/new", d.handleKeyNew)
		app.HandleFunc("GET "+base+"/{clientId}", d.handleKey)
		app.HandleFunc("POST "+base+"/{clientId}", d.handleKeyUpdate)
		app.HandleFunc("GET "+base+"/{clientId}/edit", d.handleKeyEdit)
		app.HandleFunc("POST "+base+"/{clientId}/toggle", d.handleKeyToggle)
		app.HandleFunc("GET "+base+"/{clientId}/delete", d.handleKeyDeleteConfirm)
		app.HandleFunc("POST "+base+"/{clientId}/delete", d.handleKeyDelete)
		app.HandleFunc("GET "+base+"/{clientId}/reset-quotas", d.handleKeyResetConfirm)
		app.HandleFunc("POST "+base+"/{clientId}/reset-quotas", d.handleKeyReset)
		app.HandleFunc("POST "+base+"/{clientId}/rotate", d.handleKeyRotate)
	}

	app.HandleFunc("GET /groups", d.handleGroups)
	app.HandleFunc("POST /groups", d.handleGroupCreate)
	app.HandleFunc("GET /groups/new", d.handleGroupNew)
	app.HandleFunc("GET /groups/{id}", d.handleGroup)
	app.HandleFunc("POST /groups/{id}", d.handleGroupUpdate)
	app.HandleFunc("GET /groups/{id}/edit", d.handleGroupEdit)
	app.HandleFunc("GET /groups/{id}/delete", d.handleGroupDeleteConfirm)
	app.HandleFunc("POST /groups/{id}/delete", d.handleGroupDelete)

	app.HandleFunc("GET /audit", d.handleAudit)
	app.HandleFunc("GET /users", d.handleUsers)
	app.HandleFunc("POST /users", d.handleUserCreate)
	app.HandleFunc("POST /users/{name}", d.handleUserUpdate)
	app.HandleFunc("POST /users/{name}/delete", d.handleUserDelete)
	app.HandleFunc("GET /account/password", d.handlePasswordPage)
	app.HandleFunc("POST /account/password", d.handlePassword)

	app.HandleFunc("GET /plugins", d.handlePlugins)
	app.HandleFunc("POST /plugins", d.handlePluginUpload)
	app.HandleFunc("GET /plugins/{id}", d.handlePlugin)
	app.HandleFunc("POST /plugins/{id}", d.handlePluginUpdate)
	app.HandleFunc("POST /plugins/{id}/wasm", d.handlePluginReplace)
	app.HandleFunc("GET /plugins/{id}/delete", d.handlePluginDeleteConfirm)
	app.HandleFunc("POST /plugins/{id}/delete", d.handlePluginDelete)
	if d.nodes != nil {
		app.HandleFunc("GET /cluster", func(w http.ResponseWriter, r *http.Request) {
			data := views.ClusterData{Nodes: d.nodes(), Location: d.loc}
			d.render(w, r, http.StatusOK, views.Shell{Title: "Cluster", Nav: views.NavCluster}, views.ClusterPage(data), nil)
		})
	}
	app.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, r, gatehouse.NotFound("page not found"))
	})

	root := http.NewServeMux()
	root.Handle("GET "+assets.Prefix, assets.Handler())
	root.HandleFunc("GET /login", d.handleLoginPage)
	root.HandleFunc("POST /login", d.handleLogin)
	root.Handle("/", d.requireSession(app))

	// Go's cross-origin protection refuses state-changing requests that a
	// browser marks as cross-site (Sec-Fetch-Site, or Origin against Host);
	// the per-session token checked in requireSession covers older browsers.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	d.handler = secureHeaders(cop.Handler(root))
	return d
}

// Register mounts the dashboard on "/" and everything below it, except the
// admin API's paths (/api, /metrics, /health), whichever is registered first.
func (d *Dashboard) Register(r *mux.Router) {
	r.MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool {
		return !adminAPIPath(req.URL.Path)
	}).Handler(d)
}

func adminAPIPath(p string) bool {
	for _, prefix := range []string{"/api", "/metrics", "/health"} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.handler.ServeHTTP(w, r) }

// contentSecurityPolicy allows only our own scripts and styles: htmx is
// configured to need no inline style or eval.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Pages differ with HX-Request (fragment or whole page): caches must know.
		h.Add("Vary", "HX-Request")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		next.ServeHTTP(w, r)
	})
}

// isFragment reports whether htmx asked for a part of a page. A history
// restore asks for the whole page even though it comes from htmx.
func isFragment(r *http.Request) bool {
	return r.Header.Get("HX-Request") == "true" && r.Header.Get("HX-History-Restore-Request") != "true"
}

// render answers with the fragment for htmx and the whole page otherwise.
// fragment nil means the page's content is the fragment.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, shell views.Shell, content, fragment templ.Component) {
	var c templ.Component
	if isFragment(r) {
		c = fragment
		if c == nil {
			c = content
		}
	} else {
		shell.User = userFrom(r.Context())
		shell.Cluster = d.nodes != nil
		if shell.Sidebar == nil {
			list, _, err := d.services(r, shell.Search, gatehouse.Page{Page: 1, PageSize: sidebarSize})
			if err != nil {
				d.log.ErrorContext(r.Context(), "dashboard: sidebar services", "err", err)
			}
			shell.Sidebar = list
		}
		if shell.Flash == "" {
			shell.Flash = takeFlash(w, r)
		}
		c = views.Page(shell, content)
	}
	d.write(w, r, status, c)
}

// write renders into a buffer first, so a failing component becomes a clean 500.
func (d *Dashboard) write(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	var buf bytes.Buffer
	if err := c.Render(r.Context(), &buf); err != nil {
		d.log.ErrorContext(r.Context(), "dashboard: render", "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

const flashCookie = "gatehouse_flash"

// setFlash leaves a confirmation for the next page the browser loads.
func (d *Dashboard) setFlash(w http.ResponseWriter, msg string) {
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(msg), Path: "/", MaxAge: 60,
		HttpOnly: true, Secure: d.secure, SameSite: http.SameSiteLaxMode})
}

// takeFlash reads the confirmation left by the last write, once.
func takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil || c.Value == "" {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	msg, err := url.QueryUnescape(c.Value)
	if err != nil {
		return ""
	}
	return msg
}

// done ends a successful write: it leaves flash for the next page, then
// answers 303 to it, or for htmx an HX-Redirect that makes the browser load it.
func (d *Dashboard) done(w http.ResponseWriter, r *http.Request, to, flash string) {
	if flash != "" {
		d.setFlash(w, flash)
	}
	if r.Header.Get("HX-Request") == "true" {
		w.Header().Set("HX-Redirect", to)
		w.WriteHeader(http.StatusOK)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// fail maps an error to an error page; the text of an internal error is
// logged, never shown.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	kind := gatehouse.KindOf(err)
	status, msg := kind.Status(), "Something went wrong. The error has been logged."
	if e := gatehouse.AsError(err); e != nil && kind != gatehouse.KindInternal {
		msg = e.Error()
	} else {
		d.log.ErrorContext(r.Context(), "dashboard: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	d.render(w, r, status, views.Shell{Title: http.StatusText(status)}, views.ErrorPage(status, msg), nil)
}

// userError returns the *gatehouse.Error a form should show, or nil when err
// is internal or a not-found (handled by fail).
func userError(err error) *gatehouse.Error {
	e := gatehouse.AsError(err)
	if e == nil || (e.Kind != gatehouse.KindInvalid && e.Kind != gatehouse.KindConflict) {
		return nil
	}
	return e
}

func pageParam(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || n < 1 {
		return 1
	}
	return n
}
