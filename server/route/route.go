// Package route is the gateway's in-memory routing table: it turns service
// descriptors into matchers once per admin write, so that picking a service
// for a request reads no SQLite and compiles nothing.
package route

import (
	"net/http"
	"net/netip"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"

	"gatehouse"
)

// Route is one enabled service, precompiled for matching and forwarding.
type Route struct {
	Service *gatehouse.Service

	hostLabels   []string // host pattern split on dots; a label may hold '*'
	wildcard     bool
	matchingRoot string // "" when the service has none
	matchHeaders []headerPair
	public       []*regexp.Regexp
	private      []*regexp.Regexp
	whitelist    []netip.Prefix
	blacklist    []netip.Prefix
	order        int // position in creation order: older services win ties

	// AddHeaders are the service's additionalHeaders with canonical names.
	AddHeaders []headerPair
	// Targets in configuration order; NextTarget spreads requests round
	// robin. The counter is the service's, shared by the tables built for
	// it, so that an admin write does not start every service over.
	Targets []gatehouse.Target
	next    *atomic.Uint64

	// Handler is what the gateway forwards through (reverse proxy, plugin chain);
	// set by the gateway when it builds the table.
	Handler any
}

type headerPair struct{ Name, Value string }

// Header name and value, exported for the forwarder.
func (h headerPair) Pair() (string, string) { return h.Name, h.Value }

// NextTarget returns the target for this request, round robin.
func (rt *Route) NextTarget() (gatehouse.Target, bool) {
	if len(rt.Targets) == 0 {
		return gatehouse.Target{}, false
	}
	n := rt.next.Add(1) - 1
	return rt.Targets[n%uint64(len(rt.Targets))], true
}

// Table holds every enabled service; it is immutable once built and swapped
// whole (atomically) by the gateway on admin writes.
type Table struct {
	exact     map[string][]*Route // by lowercase host, most specific first
	wildcards []*Route            // most specific first
	Routes    []*Route            // every route, in creation order
}

// Build compiles services (in creation order) into a table. Disabled
// services are left out: their hosts answer 404 like unknown ones. Patterns
// were validated when written, so a pattern that fails to compile here drops
// only that service (and is reported through onError). A service that has a
// route in prev (the table being replaced; nil for the first) keeps its
// round-robin position.
func Build(services []gatehouse.Service, prev *Table, onError func(id string, err error)) *Table {
	t := &Table{exact: make(map[string][]*Route)}
	counters := map[string]*atomic.Uint64{}
	if prev != nil {
		for _, rt := range prev.Routes {
			counters[rt.Service.ID] = rt.next
		}
	}
	for i := range services {
		s := services[i]
		if !s.Enabled {
			continue
		}
		rt, err := compile(&s, i)
		if err != nil {
			if onError != nil {
				onError(s.ID, err)
			}
			continue
		}
		if c := counters[s.ID]; c != nil {
			rt.next = c
		}
		t.Routes = append(t.Routes, rt)
		if rt.wildcard {
			t.wildcards = append(t.wildcards, rt)
		} else {
			h := strings.Join(rt.hostLabels, ".")
			t.exact[h] = append(t.exact[h], rt)
		}
	}
	for _, rs := range t.exact {
		sortSpecific(rs)
	}
	sortSpecific(t.wildcards)
	return t
}

// sortSpecific orders routes sharing a host kind: longer matchingRoot first,
// then more matchingHeaders, then the older service.
func sortSpecific(rs []*Route) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if len(a.matchingRoot) != len(b.matchingRoot) {
			return len(a.matchingRoot) > len(b.matchingRoot)
		}
		if len(a.matchHeaders) != len(b.matchHeaders) {
			return len(a.matchHeaders) > len(b.matchHeaders)
		}
		return a.order < b.order
	})
}

func compile(s *gatehouse.Service, order int) (*Route, error) {
	rt := &Route{Service: s, order: order, Targets: s.Targets, next: new(atomic.Uint64)}
	host := strings.ToLower(s.Host())
	rt.hostLabels = strings.Split(host, ".")
	rt.wildcard = strings.Contains(host, "*")
	if s.MatchingRoot != nil && *s.MatchingRoot != "" && *s.MatchingRoot != "/" {
		rt.matchingRoot = strings.TrimSuffix(*s.MatchingRoot, "/")
	}
	for k, v := range s.MatchingHeaders {
		rt.matchHeaders = append(rt.matchHeaders, headerPair{http.CanonicalHeaderKey(k), v})
	}
	for k, v := range s.AdditionalHeaders {
		rt.AddHeaders = append(rt.AddHeaders, headerPair{http.CanonicalHeaderKey(k), v})
	}
	// Maps iterate randomly: sort so that forwarding is deterministic.
	sort.Slice(rt.AddHeaders, func(i, j int) bool { return rt.AddHeaders[i].Name < rt.AddHeaders[j].Name })
	var err error
	if rt.public, err = anchored(s.PublicPatterns); err != nil {
		return nil, err
	}
	if rt.private, err = anchored(s.PrivatePatterns); err != nil {
		return nil, err
	}
	for _, e := range s.IPFiltering.Whitelist {
		p, err := gatehouse.ParseIPMatch(e)
		if err != nil {
			return nil, err
		}
		rt.whitelist = append(rt.whitelist, p)
	}
	for _, e := range s.IPFiltering.Blacklist {
		p, err := gatehouse.ParseIPMatch(e)
		if err != nil {
			return nil, err
		}
		rt.blacklist = append(rt.blacklist, p)
	}
	return rt, nil
}

// anchored compiles patterns so that each must match the whole path.
func anchored(patterns []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, p := range patterns {
		re, err := regexp.Compile(`^(?:` + p + `)$`)
		if err != nil {
			return nil, err
		}
		out = append(out, re)
	}
	return out, nil
}

// Match picks the route for a request: host (port already removed, any case),
// canonical path and headers. An exact host beats a wildcard.
func (t *Table) Match(host, canonicalPath string, h http.Header) *Route {
	if rs, ok := t.exact[host]; ok {
		if rt := firstMatch(rs, canonicalPath, h); rt != nil {
			return rt
		}
	} else if hasUpper(host) {
		if rs, ok := t.exact[strings.ToLower(host)]; ok {
			if rt := firstMatch(rs, canonicalPath, h); rt != nil {
				return rt
			}
		}
	}
	for _, rt := range t.wildcards {
		if rt.hostMatches(host) && rt.pathAndHeadersMatch(canonicalPath, h) {
			return rt
		}
	}
	return nil
}

func firstMatch(rs []*Route, p string, h http.Header) *Route {
	for _, rt := range rs {
		if rt.pathAndHeadersMatch(p, h) {
			return rt
		}
	}
	return nil
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

func (rt *Route) pathAndHeadersMatch(p string, h http.Header) bool {
	if rt.matchingRoot != "" && !underRoot(p, rt.matchingRoot) {
		return false
	}
	for _, mh := range rt.matchHeaders {
		if h.Get(mh.Name) != mh.Value {
			return false
		}
	}
	return true
}

// underRoot reports whether p starts with root on a segment boundary.
func underRoot(p, root string) bool {
	return strings.HasPrefix(p, root) && (len(p) == len(root) || p[len(root)] == '/')
}

// hostMatches compares host label by label; '*' in a label stands for one or
// more characters within that label.
func (rt *Route) hostMatches(host string) bool {
	for i, pat := range rt.hostLabels {
		var label string
		if i == len(rt.hostLabels)-1 {
			label = host
			host = ""
		} else {
			dot := strings.IndexByte(host, '.')
			if dot < 0 {
				return false
			}
			label, host = host[:dot], host[dot+1:]
		}
		if !globLabel(pat, label) {
			return false
		}
	}
	return host == ""
}

// globLabel matches one label against a pattern whose '*'s each stand for one
// or more characters; case is ignored.
func globLabel(pat, s string) bool {
	if !strings.Contains(pat, "*") {
		return strings.EqualFold(pat, s)
	}
	star := strings.IndexByte(pat, '*')
	prefix := pat[:star]
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return false
	}
	rest, s := pat[star+1:], s[len(prefix):]
	// The star takes at least one character, then the rest of the pattern
	// must match what remains at some split.
	for i := 1; i <= len(s); i++ {
		if globLabel(rest, s[i:]) {
			return true
		}
	}
	return false
}

// IsPublic reports whether the canonical path needs no API key: it matches
// no private pattern and some public pattern.
func (rt *Route) IsPublic(p string) bool {
	for _, re := range rt.private {
		if re.MatchString(p) {
			return false
		}
	}
	for _, re := range rt.public {
		if re.MatchString(p) {
			return true
		}
	}
	return false
}

// IPAllowed applies the blacklist, then a non-empty whitelist.
func (rt *Route) IPAllowed(ip netip.Addr) bool {
	for _, p := range rt.blacklist {
		if p.Contains(ip) {
			return false
		}
	}
	if len(rt.whitelist) == 0 {
		return true
	}
	for _, p := range rt.whitelist {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// UpstreamPath strips matchingRoot (when the path is under it) and prepends root.
func (rt *Route) UpstreamPath(p string) string {
	if rt.matchingRoot != "" && underRoot(p, rt.matchingRoot) {
		p = p[len(rt.matchingRoot):]
	}
	root := rt.Service.Root
	if root == "" || root == "/" {
		if p == "" {
			return "/"
		}
		return p
	}
	if p == "" || p == "/" {
		return root
	}
	return strings.TrimSuffix(root, "/") + p
}

// Canonical returns the canonical form of a decoded URL path: dot-segments
// and repeated slashes removed, a trailing slash kept.
func Canonical(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	if isClean(p) {
		return p
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// isClean is the common case's fast path: no "//", no "." or ".." segment.
func isClean(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		if i+1 < len(p) && p[i+1] == '/' {
			return false
		}
		if i+1 < len(p) && p[i+1] == '.' {
			rest := p[i+1:]
			if rest == "." || rest == ".." || strings.HasPrefix(rest, "./") || strings.HasPrefix(rest, "../") {
				return false
			}
		}
	}
	return true
}
