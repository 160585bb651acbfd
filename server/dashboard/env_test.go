package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/gorilla/mux"
	"golang.org/x/crypto/bcrypt"

	"gatehouse"
	"gatehouse/server/admin"
	"gatehouse/store"
)

// testBackend is the real store plus the gateway's parts faked: usage from
// a map and a wasm check on the magic number.
type testBackend struct {
	*store.Store
	mu    sync.Mutex
	usage map[string]gatehouse.QuotaUsage
}

func (b *testBackend) Usage(_ context.Context, clientID string) (gatehouse.QuotaUsage, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.usage[clientID], nil
}

func (b *testBackend) ResetUsage(ctx context.Context, clientID string) error {
	b.mu.Lock()
	delete(b.usage, clientID)
	b.mu.Unlock()
	return b.Store.ResetQuotas(ctx, clientID)
}

func (b *testBackend) CheckWasm(_ context.Context, wasm []byte) error {
	if !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		return gatehouse.Invalid("wasm", "not a WebAssembly module")
	}
	return nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// adminToken stands for an admin API key in the tests' calls to the admin API.
const adminToken = "test-admin-token"

const (
	testUser     = "admin"
	testPassword = "correct horse battery staple"
)

type env struct {
	t      *testing.T
	srv    *httptest.Server
	st     *store.Store
	b      *testBackend
	clock  *clock
	client *http.Client
	csrf   string
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, testUser, string(hash)); err != nil {
		t.Fatal(err)
	}
	b := &testBackend{Store: st, usage: map[string]gatehouse.QuotaUsage{}}
	c := &clock{t: time.Now()}
	cfg.Backend, cfg.Now = b, c.Now
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := mux.NewRouter()
	New(cfg).Register(r)
	// The real admin API registers after the dashboard and must still be
	// reached: the tests read what the dashboard saved through it.
	admin.Register(r, admin.Config{Backend: b, Logger: cfg.Logger, Authenticate: func(r *http.Request) (admin.Caller, error) {
		if r.Header.Get("Authorization") != "Bearer "+adminToken {
			return admin.Caller{}, errors.New("no admin token")
		}
		return admin.Caller{ClientID: "test-admin"}, nil
	}})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &env{t: t, srv: srv, st: st, b: b, clock: c, client: client}
}

// resp is a finished answer with its body read.
type resp struct {
	*http.Response
	body string
}

func (r resp) doc(t *testing.T) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func (e *env) do(req *http.Request) resp {
	e.t.Helper()
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res, string(b)}
}

func (e *env) get(path string, hx bool) resp {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	if hx {
		req.Header.Set("HX-Request", "true")
	}
	return e.do(req)
}

// post sends a form with the session's csrf token, as the pages' forms do.
func (e *env) post(path string, form url.Values, hx bool) resp {
	e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" && e.csrf != "" {
		form.Set("csrf", e.csrf)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if hx {
		req.Header.Set("HX-Request", "true")
	}
	return e.do(req)
}

// postMultipart uploads a form with a file; the csrf token goes as htmx
// sends it (X-CSRF-Token from hx-headers) or as the page's hidden field.
func (e *env) postMultipart(path string, fields map[string]string, fileName string, file []byte, hx bool) resp {
	e.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if !hx {
		mw.WriteField("csrf", e.csrf)
	}
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if fileName != "" {
		fw, _ := mw.CreateFormFile("wasm", fileName)
		fw.Write(file)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", e.srv.URL+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if hx {
		req.Header.Set("HX-Request", "true")
		req.Header.Set("X-CSRF-Token", e.csrf)
	}
	return e.do(req)
}

func (e *env) login() {
	e.t.Helper()
	res := e.post("/login", url.Values{"username": {testUser}, "password": {testPassword}}, false)
	if res.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login: status %d: %s", res.StatusCode, res.body)
	}
	page := e.get("/services", false)
	tok, ok := page.doc(e.t).Find(`input[name="csrf"]`).First().Attr("value")
	if !ok || tok == "" {
		e.t.Fatal("no csrf token on the page after login")
	}
	e.csrf = tok
}

func tid(doc *goquery.Document, id string) *goquery.Selection {
	return doc.Find(`[data-testid="` + id + `"]`)
}

func attr(s *goquery.Selection, name string) string {
	v, _ := s.Attr(name)
	return v
}

func wantStatus(t *testing.T, r resp, status int) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body:\n%.2000s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.body)
	}
}

// seed creates a group, a service in it and a key authorized on the group.
func (e *env) seed() (gatehouse.Group, gatehouse.Service, gatehouse.APIKey) {
	e.t.Helper()
	ctx := context.Background()
	g := gatehouse.Group{ID: "shop", Name: "Shop"}
	if err := e.st.CreateGroup(ctx, &g); err != nil {
		e.t.Fatal(err)
	}
	s := gatehouse.DefaultService()
	s.ID, s.GroupID, s.Name, s.Subdomain, s.Domain = "orders", "shop", "Orders API", "orders", "example.com"
	s.Targets = []gatehouse.Target{{Host: "127.0.0.1:9001", Scheme: "http"}}
	if err := e.st.CreateService(ctx, &s); err != nil {
		e.t.Fatal(err)
	}
	k := gatehouse.DefaultAPIKey()
	k.ClientID, k.ClientSecret, k.ClientName = "mobile01", "s3cret", "Mobile app"
	k.AuthorizedEntities = []string{gatehouse.GroupEntity("shop")}
	k.DailyQuota = 1000
	if err := e.st.CreateAPIKey(ctx, &k); err != nil {
		e.t.Fatal(err)
	}
	return g, s, k
}

var pageAll = gatehouse.Page{Page: 1, PageSize: 1000}

func (e *env) srvURL() *url.URL {
	u, _ := url.Parse(e.srv.URL)
	return u
}

// api reads an entity from the admin API into v and returns the status.
func (e *env) api(path string, v any) int {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK && v != nil {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			e.t.Fatalf("GET %s: %v", path, err)
		}
	}
	return res.StatusCode
}
