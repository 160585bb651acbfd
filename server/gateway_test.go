package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"gatehouse"
	"gatehouse/store"
)

// fakeClock is the injected clock: tests move time instead of sleeping.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// upstream records what it received and answers 200 "ok".
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	last *http.Request
	body string
	hits atomic.Int64
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.last, u.body = r, string(b)
		u.mu.Unlock()
		u.hits.Add(1)
		w.Header().Set("X-Upstream", "yes")
		io.WriteString(w, "ok")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) lastRequest() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

func (u *upstream) host() string { return strings.TrimPrefix(u.URL, "http://") }

// harness is a real server on a real SQLite file, its gateway on loopback.
type harness struct {
	t     testing.TB
	st    *store.Store
	srv   *Server
	gw    *httptest.Server
	clock *fakeClock
	dir   string
}

type harnessOpt func(*Config)

func newHarness(t testing.TB, opts ...harnessOpt) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, clock: newFakeClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))}
	h.open(opts...)
	return h
}

func (h *harness) open(opts ...harnessOpt) {
	t := h.t
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(h.dir, "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Location:        time.UTC,
		FlushInterval:   time.Hour,
		UpstreamTimeout: 5 * time.Second,
		ShutdownTimeout: 5 * time.Second,
		WasmCache:       filepath.Join(h.dir, "wasm-cache"),
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:             h.clock.Now,
		ProxyAddr:       "127.0.0.1:0",
		AdminAddr:       "127.0.0.1:0",
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(ctx, cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	h.st, h.srv = st, srv
	h.gw = httptest.NewServer(srv.Gateway())
	t.Cleanup(h.close)
}

func (h *harness) close() {
	if h.gw == nil {
		return
	}
	h.gw.Close()
	h.srv.plugins.Close(context.Background())
	h.st.Close()
	h.gw = nil
}

func (h *harness) group(id string) {
	h.t.Helper()
	g := gatehouse.Group{ID: id, Name: id}
	if err := h.st.CreateGroup(context.Background(), &g); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) service(s gatehouse.Service) gatehouse.Service {
	h.t.Helper()
	if err := h.st.CreateService(context.Background(), &s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *harness) key(k gatehouse.APIKey) gatehouse.APIKey {
	h.t.Helper()
	if err := h.st.CreateAPIKey(context.Background(), &k); err != nil {
		h.t.Fatal(err)
	}
	return k
}

func newService(id, group, domain string, u *upstream, mod ...func(*gatehouse.Service)) gatehouse.Service {
	s := gatehouse.DefaultService()
	s.ID, s.GroupID, s.Name, s.Domain = id, group, id, domain
	if u != nil {
		s.Targets = []gatehouse.Target{{Host: u.host(), Scheme: "http"}}
	}
	for _, m := range mod {
		m(&s)
	}
	return s
}

func newKey(id, secret string, mod ...func(*gatehouse.APIKey)) gatehouse.APIKey {
	k := gatehouse.DefaultAPIKey()
	k.ClientID, k.ClientSecret, k.ClientName = id, secret, id
	for _, m := range mod {
		m(&k)
	}
	return k
}

// call sends a request to the gateway for host and path, with extra setup.
func (h *harness) call(method, host, target string, setup func(*http.Request)) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.gw.URL+target, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Host = host
	if setup != nil {
		setup(req)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func basic(id, secret string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(id, secret) }
}

func hs256(t testing.TB, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGatewayAnswers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	up := newUpstream(t)
	h.group("g")
	h.group("other")
	h.service(newService("api", "g", "api.test", up))
	h.service(newService("off", "g", "off.test", up, func(s *gatehouse.Service) { s.Enabled = false }))
	h.service(newService("maint", "g", "maint.test", up, func(s *gatehouse.Service) { s.MaintenanceMode = true }))
	h.service(newService("build", "g", "build.test", up, func(s *gatehouse.Service) { s.BuildMode = true }))
	h.service(newService("https", "g", "https.test", up, func(s *gatehouse.Service) { s.ForceHTTPS = true }))
	h.service(newService("black", "g", "black.test", up, func(s *gatehouse.Service) { s.IPFiltering.Blacklist = []string{"127.0.0.0/8"} }))
	h.service(newService("white", "g", "white.test", up, func(s *gatehouse.Service) { s.IPFiltering.Whitelist = []string{"10.0.0.1"} }))
	h.service(newService("elsewhere", "other", "elsewhere.test", up))
	h.service(newService("dead", "g", "dead.test", nil, func(s *gatehouse.Service) {
		s.Targets = []gatehouse.Target{{Host: "127.0.0.1:1", Scheme: "http"}}
	}))
	auth := func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }
	h.key(newKey("good", "s3cret", auth))
	h.key(newKey("off", "s3cret", auth, func(k *gatehouse.APIKey) { k.Enabled = false }))
	past := h.clock.Now().Add(-time.Hour).UnixMilli()
	h.key(newKey("expired", "s3cret", auth, func(k *gatehouse.APIKey) { k.ValidUntil = &past }))
	h.key(newKey("ro", "s3cret", auth, func(k *gatehouse.APIKey) { k.ReadOnly = true }))
	h.key(newKey("zero", "s3cret", auth, func(k *gatehouse.APIKey) { k.DailyQuota = 0 }))
	h.key(newKey("idonly", "s3cret", auth, func(k *gatehouse.APIKey) { k.AllowClientIDOnly = true }))

	cases := []struct {
		name, method, host, target string
		setup                      func(*http.Request)
		status                     int
		msg                        string
	}{
		{"no route", "GET", "nowhere.test", "/", nil, 404, "no route found"},
		{"disabled service", "GET", "off.test", "/", basic("good", "s3cret"), 404, "no route found"},
		{"maintenance", "GET", "maint.test", "/", basic("good", "s3cret"), 503, "service in maintenance mode"},
		{"build mode", "GET", "build.test", "/", basic("good", "s3cret"), 503, "service under construction"},
		{"blacklisted ip", "GET", "black.test", "/", basic("good", "s3cret"), 403, "ip address not allowed"},
		{"off the whitelist", "GET", "white.test", "/", basic("good", "s3cret"), 403, "ip address not allowed"},
		{"no credential", "GET", "api.test", "/", nil, 401, "no apikey"},
		{"unknown client id", "GET", "api.test", "/", basic("nobody", "s3cret"), 401, "invalid apikey"},
		{"malformed basic", "GET", "api.test", "/", func(r *http.Request) { r.Header.Set("Authorization", "Basic !!!") }, 401, "invalid apikey"},
		{"malformed jwt", "GET", "api.test", "/", func(r *http.Request) { r.Header.Set("Authorization", "Bearer not.a.jwt") }, 401, "invalid apikey"},
		{"wrong secret", "GET", "api.test", "/", basic("good", "nope"), 401, "bad apikey"},
		{"bad jwt signature", "GET", "api.test", "/", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+hs256(t, "wrong", jwt.MapClaims{"clientId": "good"}))
		}, 401, "bad apikey"},
		{"disabled key", "GET", "api.test", "/", basic("off", "s3cret"), 401, "bad apikey"},
		{"expired key", "GET", "api.test", "/", basic("expired", "s3cret"), 401, "bad apikey"},
		{"x-api-key on a key without allowClientIdOnly", "GET", "api.test", "/", func(r *http.Request) { r.Header.Set("x-api-key", "good") }, 401, "bad apikey"},
		{"not authorized", "GET", "elsewhere.test", "/", basic("good", "s3cret"), 403, "apikey not authorized on this service"},
		{"read-only key writing", "POST", "api.test", "/", basic("ro", "s3cret"), 405, "method not allowed"},
		{"zero daily quota", "GET", "api.test", "/", basic("zero", "s3cret"), 429, "too many requests: daily quota"},
		{"upstream refused", "GET", "dead.test", "/", basic("good", "s3cret"), 502, "bad gateway"},
		{"ok with basic", "GET", "api.test", "/", basic("good", "s3cret"), 200, ""},
		{"ok with read-only GET", "GET", "api.test", "/", basic("ro", "s3cret"), 200, ""},
		{"ok with x-api-key", "GET", "api.test", "/?x-api-key=idonly", nil, 200, ""},
		{"ok with client headers", "GET", "api.test", "/", func(r *http.Request) {
			r.Header.Set("Otoroshi-Client-Id", "good")
			r.Header.Set("Otoroshi-Client-Secret", "s3cret")
		}, 200, ""},
		{"ok with jwt", "GET", "api.test", "/", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+hs256(t, "s3cret", jwt.MapClaims{"iss": "good"}))
		}, 200, ""},
		{"host port ignored, case too", "GET", "API.TEST:8443", "/", basic("good", "s3cret"), 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := h.call(c.method, c.host, c.target, c.setup)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d (msg %q)", resp.StatusCode, c.status, resp.Header.Get("Otoroshi-Error-Msg"))
			}
			if c.msg == "" {
				if resp.Header.Get("Otoroshi-Error") != "" {
					t.Errorf("a proxied answer carries Otoroshi-Error %q", resp.Header.Get("Otoroshi-Error-Msg"))
				}
				return
			}
			if got := resp.Header.Get("Otoroshi-Error"); got != "true" {
				t.Errorf("Otoroshi-Error = %q, want true", got)
			}
			if got := resp.Header.Get("Otoroshi-Error-Msg"); got != c.msg {
				t.Errorf("Otoroshi-Error-Msg = %q, want %q", got, c.msg)
			}
			if c.status == 401 && c.msg == "no apikey" && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 no apikey without WWW-Authenticate")
			}
			if c.status == 429 && resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		})
	}

	t.Run("json and html bodies", func(t *testing.T) {
		req, _ := http.NewRequest("GET", h.gw.URL+"/", nil)
		req.Host = "nowhere.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if body["Otoroshi-Error"] != "no route found" {
			t.Errorf("JSON body %v", body)
		}
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(b), "no route found") {
			t.Errorf("HTML answer: %s %q", resp.Header.Get("Content-Type"), b)
		}
	})

	t.Run("forceHttps redirects", func(t *testing.T) {
		resp := h.call("GET", "https.test", "/a?b=c", nil)
		if resp.StatusCode != 303 || resp.Header.Get("Location") != "https://https.test/a?b=c" {
			t.Errorf("got %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})

	t.Run("bad request path", func(t *testing.T) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "http://api.test/x", nil)
		req.URL = &url.URL{Path: "/a%zz", RawPath: "/a%zz"}
		h.srv.Gateway().ServeHTTP(rec, req)
		if rec.Code != 400 || rec.Header().Get("Otoroshi-Error-Msg") != "bad request path" {
			t.Errorf("got %d %q", rec.Code, rec.Header().Get("Otoroshi-Error-Msg"))
		}
	})
}

func TestGatewayForwarding(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	up := newUpstream(t)
	h.group("g")
	mr := "/v1"
	h.service(newService("api", "g", "api.test", up, func(s *gatehouse.Service) {
		s.Root = "/internal"
		s.MatchingRoot = &mr
		s.AdditionalHeaders = map[string]string{"X-Env": "test"}
		s.PublicPatterns = []string{"/v1/public/.*"}
	}))
	h.key(newKey("good", "s3cret", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"service_api"} }))

	check := func(t *testing.T, name string, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	t.Run("basic credential removed, identity added", func(t *testing.T) {
		resp := h.call("GET", "api.test", "/v1/users/./a//b?q=1", func(r *http.Request) {
			r.SetBasicAuth("good", "s3cret")
			r.Header.Set("Otoroshi-Client-Secret", "smuggled")
		})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get("Otoroshi-Error-Msg"))
		}
		r := up.lastRequest()
		check(t, "upstream path", r.URL.Path, "/internal/users/a/b")
		check(t, "upstream query", r.URL.RawQuery, "q=1")
		check(t, "Authorization", r.Header.Get("Authorization"), "")
		check(t, "Otoroshi-Client-Secret", r.Header.Get("Otoroshi-Client-Secret"), "")
		check(t, "Otoroshi-Client-Id", r.Header.Get("Otoroshi-Client-Id"), "good")
		check(t, "X-Env", r.Header.Get("X-Env"), "test")
		check(t, "X-Forwarded-For", r.Header.Get("X-Forwarded-For"), "127.0.0.1")
		check(t, "X-Forwarded-Proto", r.Header.Get("X-Forwarded-Proto"), "http")
		check(t, "X-Forwarded-Host", r.Header.Get("X-Forwarded-Host"), "api.test")
		if r.Header.Get("Otoroshi-Request-Id") == "" || r.Header.Get("Otoroshi-Request-Id") != resp.Header.Get("Otoroshi-Request-Id") {
			t.Errorf("request id upstream %q, client %q", r.Header.Get("Otoroshi-Request-Id"), resp.Header.Get("Otoroshi-Request-Id"))
		}
	})
	t.Run("query and cookie credentials removed, the rest kept", func(t *testing.T) {
		tok := hs256(t, "s3cret", jwt.MapClaims{"client_id": "good"})
		resp := h.call("GET", "api.test", "/v1/x?a=1&bearer_auth="+tok+"&b=2", func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "theme", Value: "dark"})
		})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get("Otoroshi-Error-Msg"))
		}
		r := up.lastRequest()
		if r.URL.Query().Has("bearer_auth") || r.URL.Query().Get("a") != "1" || r.URL.Query().Get("b") != "2" {
			t.Errorf("upstream query %q", r.URL.RawQuery)
		}
		resp = h.call("GET", "api.test", "/v1/x", func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "theme", Value: "dark"})
			r.AddCookie(&http.Cookie{Name: "access_token", Value: tok})
		})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get("Otoroshi-Error-Msg"))
		}
		r = up.lastRequest()
		if _, err := r.Cookie("access_token"); err == nil {
			t.Error("access_token cookie reached the upstream")
		}
		if c, err := r.Cookie("theme"); err != nil || c.Value != "dark" {
			t.Errorf("other cookie lost: %v", err)
		}
		resp = h.call("GET", "api.test", "/v1/x?basic_auth="+base64.StdEncoding.EncodeToString([]byte("good:s3cret")), nil)
		if resp.StatusCode != 200 || up.lastRequest().URL.Query().Has("basic_auth") {
			t.Errorf("basic_auth query: status %d, upstream query %q", resp.StatusCode, up.lastRequest().URL.RawQuery)
		}
	})
	t.Run("public path: credentials untouched, nothing counted, identity headers removed", func(t *testing.T) {
		before := h.quota(t, "good").CurrentCallsPerDay
		resp := h.call("GET", "api.test", "/v1/public/doc", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer whatever")
			r.Header.Set("Otoroshi-Client-Id", "good")
			r.Header.Set("Otoroshi-Client-Secret", "guess")
		})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		r := up.lastRequest()
		check(t, "Authorization", r.Header.Get("Authorization"), "Bearer whatever")
		check(t, "Otoroshi-Client-Id", r.Header.Get("Otoroshi-Client-Id"), "")
		check(t, "Otoroshi-Client-Secret", r.Header.Get("Otoroshi-Client-Secret"), "")
		check(t, "upstream path", r.URL.Path, "/internal/public/doc")
		if after := h.quota(t, "good").CurrentCallsPerDay; after != before {
			t.Errorf("public call counted: %d -> %d", before, after)
		}
		if resp.Header.Get("Otoroshi-Daily-Calls-Remaining") != "" {
			t.Error("quota headers on an unkeyed answer")
		}
	})
	t.Run("response headers", func(t *testing.T) {
		resp := h.call("GET", "api.test", "/v1/x", basic("good", "s3cret"))
		for _, name := range []string{"Otoroshi-Daily-Calls-Remaining", "Otoroshi-Monthly-Calls-Remaining", "Ratelimit-Limit", "Ratelimit-Remaining", "Otoroshi-Proxy-Latency", "Otoroshi-Upstream-Latency"} {
			v := resp.Header.Get(name)
			if _, err := strconv.ParseInt(v, 10, 64); err != nil {
				t.Errorf("%s = %q, want an integer", name, v)
			}
		}
		if resp.Header.Get("Ratelimit-Limit") != strconv.Itoa(gatehouse.DefaultQuota) {
			t.Errorf("RateLimit-Limit = %q", resp.Header.Get("Ratelimit-Limit"))
		}
		st := resp.Header.Get("Server-Timing")
		if !regexp.MustCompile(`^proxy;dur=\d+\.\d{3}, upstream;dur=\d+\.\d{3}$`).MatchString(st) {
			t.Errorf("Server-Timing = %q", st)
		}
		if resp.Header.Get("X-Upstream") != "yes" {
			t.Error("upstream's own header lost")
		}
	})
}

// quota reads a key's usage as the admin API would.
func (h *harness) quota(t *testing.T, clientID string) gatehouse.QuotaUsage {
	t.Helper()
	u, err := backend{h.st, h.srv}.Usage(context.Background(), clientID)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSendOtoroshiHeadersBackOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	up := newUpstream(t)
	h.group("g")
	h.service(newService("quiet", "g", "quiet.test", up, func(s *gatehouse.Service) { s.SendOtoroshiHeadersBack = false }))
	h.key(newKey("k", "s", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }))
	resp := h.call("GET", "quiet.test", "/", basic("k", "s"))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, name := range []string{"Otoroshi-Daily-Calls-Remaining", "Otoroshi-Monthly-Calls-Remaining", "Ratelimit-Limit", "Ratelimit-Remaining", "Otoroshi-Request-Id", "Otoroshi-Proxy-Latency", "Otoroshi-Upstream-Latency", "Server-Timing"} {
		if v := resp.Header.Get(name); v != "" {
			t.Errorf("%s = %q on a service with sendOtoroshiHeadersBack false", name, v)
		}
	}
}

func TestQuotasThroughTheGateway(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	up := newUpstream(t)
	h.group("g")
	h.group("other")
	h.service(newService("api", "g", "api.test", up))
	h.service(newService("elsewhere", "other", "elsewhere.test", up))
	const n = 25
	h.key(newKey("daily", "s", func(k *gatehouse.APIKey) {
		k.AuthorizedEntities = []string{"group_g"}
		k.DailyQuota = n
	}))

	// Refused calls consume nothing.
	for range 3 {
		if r := h.call("GET", "elsewhere.test", "/", basic("daily", "s")); r.StatusCode != 403 {
			t.Fatalf("status %d", r.StatusCode)
		}
		if r := h.call("GET", "api.test", "/", basic("daily", "wrong")); r.StatusCode != 401 {
			t.Fatalf("status %d", r.StatusCode)
		}
	}
	if got := h.quota(t, "daily").CurrentCallsPerDay; got != 0 {
		t.Fatalf("refused calls counted: %d", got)
	}

	// 64 clients race; exactly n get through.
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2 {
				req, _ := http.NewRequest("GET", h.gw.URL+"/", nil)
				req.Host = "api.test"
				req.SetBasicAuth("daily", "s")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					ok.Add(1)
				case 429:
					refused.Add(1)
					if resp.Header.Get("Otoroshi-Daily-Calls-Remaining") != "0" {
						t.Errorf("429 with daily remaining %q", resp.Header.Get("Otoroshi-Daily-Calls-Remaining"))
					}
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != n || refused.Load() != 128-n {
		t.Fatalf("%d admitted and %d refused, want %d and %d", ok.Load(), refused.Load(), n, 128-n)
	}
	if got := up.hits.Load(); got != n {
		t.Errorf("upstream saw %d calls, want %d", got, n)
	}

	// The day turns at midnight in the configured zone.
	h.clock.Advance(12 * time.Hour)
	if r := h.call("GET", "api.test", "/", basic("daily", "s")); r.StatusCode != 200 || r.Header.Get("Otoroshi-Daily-Calls-Remaining") != strconv.Itoa(n-1) {
		t.Fatalf("after midnight: status %d, remaining %q", r.StatusCode, r.Header.Get("Otoroshi-Daily-Calls-Remaining"))
	}
}

func TestCountersSurviveRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	up := newUpstream(t)
	h.group("g")
	h.service(newService("api", "g", "api.test", up))
	h.key(newKey("k", "s", func(k *gatehouse.APIKey) {
		k.AuthorizedEntities = []string{"group_g"}
		k.MonthlyQuota = 100
	}))
	for range 7 {
		if r := h.call("GET", "api.test", "/", basic("k", "s")); r.StatusCode != 200 {
			t.Fatalf("status %d", r.StatusCode)
		}
	}
	if err := h.srv.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.close()
	h.open()
	r := h.call("GET", "api.test", "/", basic("k", "s"))
	if r.StatusCode != 200 || r.Header.Get("Otoroshi-Monthly-Calls-Remaining") != "92" {
		t.Fatalf("after restart: status %d, monthly remaining %q, want 92", r.StatusCode, r.Header.Get("Otoroshi-Monthly-Calls-Remaining"))
	}
}

func TestUpstreamTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	h := newHarness(t, func(c *Config) { c.UpstreamTimeout = 50 * time.Millisecond })
	h.group("g")
	s := newService("slow", "g", "slow.test", nil)
	s.Targets = []gatehouse.Target{{Host: strings.TrimPrefix(slow.URL, "http://"), Scheme: "http"}}
	s.PublicPatterns = []string{"/.*"}
	h.service(s)
	resp := h.call("GET", "slow.test", "/", nil)
	if resp.StatusCode != 504 || resp.Header.Get("Otoroshi-Error-Msg") != "gateway timeout" {
		t.Errorf("got %d %q", resp.StatusCode, resp.Header.Get("Otoroshi-Error-Msg"))
	}
}

func TestAdminWriteVisibleBeforeResponse(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	up := newUpstream(t)
	h.group("g")
	h.service(newService("api", "g", "api.test", up))
	k := h.key(newKey("k", "s", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }))
	if r := h.call("GET", "api.test", "/", basic("k", "s")); r.StatusCode != 200 {
		t.Fatalf("status %d", r.StatusCode)
	}
	k.Enabled = false
	if err := h.st.UpdateAPIKey(context.Background(), &k); err != nil {
		t.Fatal(err)
	}
	if r := h.call("GET", "api.test", "/", basic("k", "s")); r.StatusCode != 401 {
		t.Fatalf("disabled key: status %d", r.StatusCode)
	}
	if err := h.st.DeleteAPIKey(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	if r := h.call("GET", "api.test", "/", basic("k", "s")); r.StatusCode != 401 || r.Header.Get("Otoroshi-Error-Msg") != "invalid apikey" {
		t.Fatalf("deleted key: status %d %q", r.StatusCode, r.Header.Get("Otoroshi-Error-Msg"))
	}
	s, _ := h.st.GetService(context.Background(), "api")
	s.MaintenanceMode = true
	if err := h.st.UpdateService(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
	if r := h.call("GET", "api.test", "/", nil); r.StatusCode != 503 {
		t.Fatalf("maintenance: status %d", r.StatusCode)
	}
}
