package route

import (
	"net/http"
	"net/netip"
	"testing"

	"gatehouse"
)

func svc(id, sub, env, domain string, mod ...func(*gatehouse.Service)) gatehouse.Service {
	s := gatehouse.DefaultService()
	s.ID, s.GroupID, s.Name = id, "g", id
	s.Subdomain, s.Env, s.Domain = sub, env, domain
	s.Targets = []gatehouse.Target{{Host: "127.0.0.1:1", Scheme: "http"}}
	for _, m := range mod {
		m(&s)
	}
	return s
}

func root(r string) func(*gatehouse.Service) {
	return func(s *gatehouse.Service) { s.MatchingRoot = &r }
}

func headers(kv ...string) func(*gatehouse.Service) {
	return func(s *gatehouse.Service) {
		for i := 0; i < len(kv); i += 2 {
			s.MatchingHeaders[kv[i]] = kv[i+1]
		}
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	services := []gatehouse.Service{
		svc("api", "api", "prod", "example.com"),
		svc("api-dev", "api", "dev", "example.com"),
		svc("wild-mid", "api-*", "prod", "example.com"), // older than "wild": wins their ties
		svc("wild", "*", "prod", "example.com"),
		svc("v2", "api", "prod", "example.com", root("/v2")),
		svc("v2-beta", "api", "prod", "example.com", root("/v2"), headers("X-Beta", "1")),
		svc("older", "dup", "prod", "example.com"),
		svc("newer", "dup", "prod", "example.com"),
		svc("off", "off", "prod", "example.com", func(s *gatehouse.Service) { s.Enabled = false }),
		svc("bare", "", "prod", "example.org"),
		svc("hdr-only", "hdr", "prod", "example.com", headers("X-Tenant", "a")),
	}
	tbl := Build(services, nil, func(id string, err error) { t.Errorf("service %s left out: %v", id, err) })
	cases := []struct {
		name, host, path string
		hdr              http.Header
		want             string // "" for no route
	}{
		{"exact host", "api.example.com", "/", nil, "api"},
		{"host case ignored", "API.Example.COM", "/x", nil, "api"},
		{"env joins the host unless prod", "api.dev.example.com", "/", nil, "api-dev"},
		{"wildcard label", "foo.example.com", "/", nil, "wild"},
		{"wildcard inside a label", "api-eu.example.com", "/", nil, "wild-mid"},
		{"wildcard needs one or more characters", "api-.example.com", "/", nil, "wild"},
		{"wildcard stays inside one label", "a.b.example.com", "/", nil, ""},
		{"exact beats wildcard", "api.example.com", "/", nil, "api"},
		{"longer matchingRoot wins", "api.example.com", "/v2/users", nil, "v2"},
		{"matchingRoot on a segment boundary", "api.example.com", "/v2x", nil, "api"},
		{"matchingRoot itself", "api.example.com", "/v2", nil, "v2"},
		{"more matchingHeaders win", "api.example.com", "/v2/users", http.Header{"X-Beta": {"1"}}, "v2-beta"},
		{"matchingHeaders value must equal", "api.example.com", "/v2/users", http.Header{"X-Beta": {"2"}}, "v2"},
		{"older service wins a tie", "dup.example.com", "/", nil, "older"},
		{"disabled service is no route", "off.example.com", "/", nil, "wild"},
		{"unknown host", "nothing.example.net", "/", nil, ""},
		{"domain alone", "example.org", "/", nil, "bare"},
		{"missing matching header", "hdr.example.com", "/", nil, "wild"},
		{"present matching header", "hdr.example.com", "/", http.Header{"X-Tenant": {"a"}}, "hdr-only"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := c.hdr
			if h == nil {
				h = http.Header{}
			}
			rt := tbl.Match(c.host, c.path, h)
			got := ""
			if rt != nil {
				got = rt.Service.ID
			}
			if got != c.want {
				t.Errorf("Match(%q, %q) = %q, want %q", c.host, c.path, got, c.want)
			}
		})
	}
}

func TestUpstreamPath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		root, matchingRoot, in, want string
	}{
		{"/", "", "/a/b", "/a/b"},
		{"/api", "", "/a", "/api/a"},
		{"/api/", "", "/a", "/api/a"},
		{"/api", "", "/", "/api"},
		{"/", "/v1", "/v1/users", "/users"},
		{"/", "/v1", "/v1", "/"},
		{"/internal", "/v1", "/v1/users/", "/internal/users/"},
		{"/", "/v1/", "/v1/x", "/x"},
	}
	for _, c := range cases {
		s := svc("s", "a", "prod", "b.c")
		s.Root = c.root
		if c.matchingRoot != "" {
			s.MatchingRoot = &c.matchingRoot
		}
		rt, err := compile(&s, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := rt.UpstreamPath(c.in); got != c.want {
			t.Errorf("root %q matchingRoot %q: UpstreamPath(%q) = %q, want %q", c.root, c.matchingRoot, c.in, got, c.want)
		}
	}
}

func TestCanonical(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"":             "/",
		"/":            "/",
		"/a/b":         "/a/b",
		"/a//b":        "/a/b",
		"/a/./b":       "/a/b",
		"/a/../b":      "/b",
		"/../../etc":   "/etc",
		"/a/b/":        "/a/b/",
		"/a/b/..":      "/a",
		"/a/b/../":     "/a/",
		"//a":          "/a",
		"/a/.hidden":   "/a/.hidden",
		"/a/..b":       "/a/..b",
		"a/b":          "/a/b",
		"/public/./x/": "/public/x/",
	}
	for in, want := range cases {
		if got := Canonical(in); got != want {
			t.Errorf("Canonical(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPublicPrivatePatterns(t *testing.T) {
	t.Parallel()
	s := svc("s", "a", "prod", "b.c", func(s *gatehouse.Service) {
		s.PublicPatterns = []string{"/public/.*", "/health"}
		s.PrivatePatterns = []string{"/public/secret.*"}
	})
	rt, err := compile(&s, 0)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]bool{
		"/public/a":        true,
		"/health":          true,
		"/healthz":         false, // the pattern must match the whole path
		"/x/health":        false,
		"/public/secret/1": false, // private wins
		"/private":         false,
	}
	for p, want := range cases {
		if got := rt.IsPublic(p); got != want {
			t.Errorf("IsPublic(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestIPAllowed(t *testing.T) {
	t.Parallel()
	s := svc("s", "a", "prod", "b.c", func(s *gatehouse.Service) {
		s.IPFiltering.Whitelist = []string{"10.0.0.0/8", "192.168.1.7"}
		s.IPFiltering.Blacklist = []string{"10.1.0.0/16"}
	})
	rt, err := compile(&s, 0)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]bool{
		"10.2.3.4":    true,
		"10.1.2.3":    false, // blacklisted inside the whitelist
		"192.168.1.7": true,
		"192.168.1.8": false, // off a non-empty whitelist
		"::1":         false,
	}
	for ip, want := range cases {
		if got := rt.IPAllowed(netip.MustParseAddr(ip)); got != want {
			t.Errorf("IPAllowed(%s) = %v, want %v", ip, got, want)
		}
	}
	open := svc("o", "a", "prod", "b.c")
	rt, _ = compile(&open, 0)
	if !rt.IPAllowed(netip.MustParseAddr("203.0.113.9")) {
		t.Error("a service without lists must admit every address")
	}
}

func TestRoundRobin(t *testing.T) {
	t.Parallel()
	s := svc("s", "a", "prod", "b.c", func(s *gatehouse.Service) {
		s.Targets = []gatehouse.Target{{Host: "h1", Scheme: "http"}, {Host: "h2", Scheme: "http"}, {Host: "h3", Scheme: "https"}}
	})
	rt, _ := compile(&s, 0)
	seen := map[string]int{}
	for range 9 {
		tg, ok := rt.NextTarget()
		if !ok {
			t.Fatal("no target")
		}
		seen[tg.Host]++
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		if seen[h] != 3 {
			t.Errorf("target %s got %d of 9 requests, want 3", h, seen[h])
		}
	}
}

// TestRoundRobinSurvivesRebuild: a rebuilt table (an admin write) carries
// each surviving service's round-robin position; a new service starts at
// its first target.
func TestRoundRobinSurvivesRebuild(t *testing.T) {
	t.Parallel()
	targets := func(hosts ...string) func(*gatehouse.Service) {
		return func(s *gatehouse.Service) {
			s.Targets = nil
			for _, h := range hosts {
				s.Targets = append(s.Targets, gatehouse.Target{Host: h, Scheme: "http"})
			}
		}
	}
	next := func(tbl *Table, id string) string {
		t.Helper()
		for _, rt := range tbl.Routes {
			if rt.Service.ID == id {
				tg, _ := rt.NextTarget()
				return tg.Host
			}
		}
		t.Fatalf("no route for %s", id)
		return ""
	}
	a := svc("a", "a", "prod", "example.com", targets("a1", "a2", "a3"))
	b := svc("b", "b", "prod", "example.com", targets("b1", "b2"))
	t1 := Build([]gatehouse.Service{a}, nil, nil)
	got := []string{next(t1, "a"), next(t1, "a")}
	t2 := Build([]gatehouse.Service{a, b}, t1, nil)
	got = append(got, next(t2, "a"), next(t2, "b"))
	t3 := Build([]gatehouse.Service{a, b}, t2, nil)
	got = append(got, next(t3, "a"), next(t3, "b"), next(t3, "a"))
	want := []string{"a1", "a2", "a3", "b1", "a1", "b2", "a2"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("targets %v, want %v", got, want)
		}
	}
	// A service rebuilt after it was gone starts over.
	t4 := Build([]gatehouse.Service{b}, t3, nil)
	t5 := Build([]gatehouse.Service{a, b}, t4, nil)
	if got := next(t5, "a"); got != "a1" {
		t.Errorf("a service back after a rebuild without it: %s, want a1", got)
	}
}
