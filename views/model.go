// Package views holds the dashboard's templ components and the plain data
// they render. Components take only data (no store, no requests), so every
// one of them can be rendered to a buffer in a test.
package views

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"gatehouse"
)

// Shell is what the page layout needs besides the page's own content.
type Shell struct {
	Title   string
	Nav     string // the highlighted sidebar entry: NavServices, NavGroups, ...
	User    string
	Search  string              // the sidebar search box's value
	Sidebar []gatehouse.Service // services listed under the search box
	Service *gatehouse.Service  // the service being viewed: adds its own sidebar entries
	Flash   string              // confirmation of the write that led here
	Cluster bool                // a cluster leader: the sidebar links the Cluster page
}

// Sidebar entries.
const (
	NavServices       = "services"
	NavGroups         = "groups"
	NavPlugins        = "plugins"
	NavKeys           = "keys"
	NavServiceInfo    = "service"
	NavServiceKeys    = "service-keys"
	NavServicePlugins = "service-plugins"
)

type csrfKey struct{}

// WithCSRF returns a context whose rendered forms carry the session's
// anti-forgery token.
func WithCSRF(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, csrfKey{}, token)
}

func csrfToken(ctx context.Context) string {
	s, _ := ctx.Value(csrfKey{}).(string)
	return s
}

// htmxConfig makes htmx swap 422 (invalid input) and 409 (conflict) answers,
// which htmx 2 would otherwise drop, keeps no page snapshots in localStorage
// (pages hold client secrets) and needs no inline styles or eval (CSP).
const htmxConfig = `{"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},` +
	`{"code":"422","swap":true,"error":false},{"code":"409","swap":true,"error":false},` +
	`{"code":"[45]..","swap":false,"error":true}],` +
	`"historyCacheSize":0,"refreshOnHistoryMiss":true,"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}`

func hxHeaders(ctx context.Context) string {
	return `{"X-CSRF-Token":"` + csrfToken(ctx) + `"}`
}

// FormErrors maps an input field's name to its message; the empty name holds
// a message about the whole form.
type FormErrors map[string]string

// focusKey holds the field that gets the focus: the first invalid one.
const focusKey = "\x00focus"

// Focus marks the first field of order that has a message (or the whole
// form's message) as the one to focus, and returns e.
func (e FormErrors) Focus(order ...string) FormErrors {
	if len(e) == 0 {
		return e
	}
	for _, f := range order {
		if _, ok := e[f]; ok {
			e[focusKey] = f
			return e
		}
	}
	e[focusKey] = ""
	return e
}

func (e FormErrors) focused(field string) bool {
	f, ok := e[focusKey]
	return ok && f == field
}

// Any reports whether there is a message to show.
func (e FormErrors) Any() bool {
	for k := range e {
		if k != focusKey {
			return true
		}
	}
	return false
}

// Add records a message for field unless the field has one already, and
// folds a field the form does not show into the whole form's message.
func (e FormErrors) Add(err *gatehouse.Error, shown ...string) {
	field := err.Field
	msg := err.Message
	if field != "" && !slices.Contains(shown, field) {
		msg, field = field+": "+msg, ""
	}
	if old, ok := e[field]; ok {
		if field != "" || strings.Contains(old, msg) {
			return
		}
		msg = old + " " + msg
	}
	e[field] = msg
}

// ErrorsFrom turns a *gatehouse.Error into FormErrors; fields the form does
// not show are reported on the whole form.
func ErrorsFrom(e *gatehouse.Error, shown ...string) FormErrors {
	if e == nil {
		return nil
	}
	errs := FormErrors{}
	errs.Add(e, shown...)
	return errs.Focus(shown...)
}

// Pager describes one page of a list and builds the links to its neighbours.
type Pager struct {
	Page     int
	PageSize int
	Total    int
	Base     string     // path of the list
	Query    url.Values // other query parameters to keep (q, ...)
}

func (p Pager) From() int {
	if p.Total == 0 {
		return 0
	}
	return (p.Page-1)*p.PageSize + 1
}
func (p Pager) To() int         { return min(p.Page*p.PageSize, p.Total) }
func (p Pager) HasPrev() bool   { return p.Page > 1 }
func (p Pager) HasNext() bool   { return p.Page*p.PageSize < p.Total }
func (p Pager) PrevURL() string { return p.url(p.Page - 1) }
func (p Pager) NextURL() string { return p.url(p.Page + 1) }

func (p Pager) url(page int) string {
	q := url.Values{}
	for k, v := range p.Query {
		if len(v) > 0 && v[0] != "" {
			q.Set(k, v[0])
		}
	}
	if page > 1 {
		q.Set("page", strconv.Itoa(page))
	}
	if len(q) == 0 {
		return p.Base
	}
	return p.Base + "?" + q.Encode()
}

// URLs of the dashboard's screens, in one place.
func ServicesURL() string { return "/services" }
func ServiceNewURL(groupID string) string {
	if groupID == "" {
		return ServicesURL() + "/new"
	}
	return ServicesURL() + "/new?group=" + url.QueryEscape(groupID)
}
func ServiceURL(id string) string     { return "/services/" + url.PathEscape(id) }
func ServiceEditURL(id string) string { return ServiceURL(id) + "/edit" }
func ServiceDeleteURL(id string) string {
	return ServiceURL(id) + "/delete"
}
func ServicePluginsURL(id string) string { return ServiceURL(id) + "/plugins" }
func GroupsURL() string                  { return "/groups" }
func GroupURL(id string) string          { return "/groups/" + url.PathEscape(id) }
func GroupEditURL(id string) string      { return GroupURL(id) + "/edit" }
func GroupDeleteURL(id string) string    { return GroupURL(id) + "/delete" }
func PluginsURL() string                 { return "/plugins" }
func PluginURL(id string) string         { return "/plugins/" + url.PathEscape(id) }
func PluginDeleteURL(id string) string   { return PluginURL(id) + "/delete" }
func PluginWasmURL(id string) string     { return PluginURL(id) + "/wasm" }
func AllKeysURL() string                 { return "/apikeys" }

// KeyScope is where a key's screens live: under a service (its keys, that
// is its group's) or under "All API keys" (ServiceID empty).
type KeyScope struct{ ServiceID string }

// KeysURL is the key list of a service's scope.
func KeysURL(serviceID string) string { return ServiceURL(serviceID) + "/apikeys" }

func (s KeyScope) List() string {
	if s.ServiceID == "" {
		return AllKeysURL()
	}
	return KeysURL(s.ServiceID)
}
func (s KeyScope) New() string                { return s.List() + "/new" }
func (s KeyScope) Key(clientID string) string { return s.List() + "/" + url.PathEscape(clientID) }
func (s KeyScope) Edit(clientID string) string {
	return s.Key(clientID) + "/edit"
}
func (s KeyScope) Toggle(clientID string) string { return s.Key(clientID) + "/toggle" }
func (s KeyScope) Delete(clientID string) string { return s.Key(clientID) + "/delete" }
func (s KeyScope) Reset(clientID string) string  { return s.Key(clientID) + "/reset-quotas" }

// KeyNewURL is the new key form on a service's screens.
func KeyNewURL(serviceID string) string { return KeyScope{serviceID}.New() }

// Statuses say what the gateway does, in the order it decides.
const (
	StatusEnabled      = "enabled"
	StatusDisabled     = "disabled"
	StatusExpired      = "expired"
	StatusRotating     = "rotating"
	StatusMaintenance  = "maintenance"
	StatusConstruction = "under construction"
)

// KeyStatus is what the gateway does with a key at nowMs: a key whose
// validUntil has passed (validUntil <= now, as the gateway's index has it)
// is refused like a disabled one.
func KeyStatus(k gatehouse.APIKey, nowMs int64) string {
	switch {
	case !k.Enabled:
		return StatusDisabled
	case k.ValidUntil != nil && *k.ValidUntil <= nowMs:
		return StatusExpired
	case k.PreviousSecretValidUntil != nil && *k.PreviousSecretValidUntil > nowMs:
		return StatusRotating // the old secret is still accepted
	}
	return StatusEnabled
}

// ServiceStatus is what the gateway answers for a service: not routed when
// disabled, then maintenance before build mode.
func ServiceStatus(s gatehouse.Service) string {
	switch {
	case !s.Enabled:
		return StatusDisabled
	case s.MaintenanceMode:
		return StatusMaintenance
	case s.BuildMode:
		return StatusConstruction
	}
	return StatusEnabled
}

func statusClass(status string) string {
	if status == StatusEnabled {
		return "badge on"
	}
	if status == StatusDisabled || status == StatusExpired {
		return "badge off"
	}
	return "badge warn"
}

// dateTime formats epoch milliseconds for people, in loc.
func dateTime(ms int64, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return time.UnixMilli(ms).In(loc).Format("2006-01-02 15:04 MST")
}

func itoa(n int) string     { return strconv.Itoa(n) }
func i64(n int64) string    { return strconv.FormatInt(n, 10) }
func onOff(b bool) string   { return map[bool]string{true: "on", false: "off"}[b] }
func boolStr(b bool) string { return strconv.FormatBool(b) }

// human formats a count with thin separators: 10000000 -> 10,000,000.
func human(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// targetsText shows a service's targets compactly: http://a:1, https://b.
func targetsText(ts []gatehouse.Target) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.Scheme + "://" + t.Host
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

func joinLines(xs []string, sep string) string { return strings.Join(xs, sep) }

type viewerKey struct{}

// WithViewer marks a request of a viewer (contract section 14): pages show
// no secret and no control that writes.
func WithViewer(ctx context.Context) context.Context {
	return context.WithValue(ctx, viewerKey{}, true)
}

// Viewer reports whether the page is rendered for a viewer.
func Viewer(ctx context.Context) bool {
	v, _ := ctx.Value(viewerKey{}).(bool)
	return v
}
