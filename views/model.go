// Package views holds the dashboard's templ components and the plain data
// they render. Components take only data (no store, no requests), so every
// one of them can be rendered to a buffer in a test.
package views

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

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
}

// Sidebar entries.
const (
	NavServices       = "services"
	NavGroups         = "groups"
	NavPlugins        = "plugins"
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

// ErrorsFrom turns a *gatehouse.Error into FormErrors; fields the form does
// not show are reported on the whole form.
func ErrorsFrom(e *gatehouse.Error, shown ...string) FormErrors {
	if e == nil {
		return nil
	}
	for _, f := range shown {
		if f == e.Field {
			return FormErrors{e.Field: e.Message}
		}
	}
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + e.Message
	}
	return FormErrors{"": msg}
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
func ServicesURL() string             { return "/services" }
func ServiceURL(id string) string     { return "/services/" + url.PathEscape(id) }
func ServiceEditURL(id string) string { return ServiceURL(id) + "/edit" }
func ServiceDeleteURL(id string) string {
	return ServiceURL(id) + "/delete"
}
func ServicePluginsURL(id string) string { return ServiceURL(id) + "/plugins" }
func KeysURL(serviceID string) string    { return ServiceURL(serviceID) + "/apikeys" }
func KeyNewURL(serviceID string) string  { return KeysURL(serviceID) + "/new" }
func KeyURL(serviceID, clientID string) string {
	return KeysURL(serviceID) + "/" + url.PathEscape(clientID)
}
func KeyEditURL(serviceID, clientID string) string   { return KeyURL(serviceID, clientID) + "/edit" }
func KeyToggleURL(serviceID, clientID string) string { return KeyURL(serviceID, clientID) + "/toggle" }
func KeyDeleteURL(serviceID, clientID string) string { return KeyURL(serviceID, clientID) + "/delete" }
func GroupsURL() string                              { return "/groups" }
func GroupURL(id string) string                      { return "/groups/" + url.PathEscape(id) }
func GroupEditURL(id string) string                  { return GroupURL(id) + "/edit" }
func GroupDeleteURL(id string) string                { return GroupURL(id) + "/delete" }
func PluginsURL() string                             { return "/plugins" }
func PluginDeleteURL(id string) string               { return "/plugins/" + url.PathEscape(id) + "/delete" }

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
