package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse"
	"gatehouse/plugins"
)

// Plugin tests drive the real server as an operator and a client would:
// modules go in through the admin REST API, calls through the gateway.

const (
	adminID     = "admin"
	adminSecret = "admin-secret"
)

// pluginHarness is a harness whose plugins share the package's compilation
// cache, with the admin API served on loopback and an admin key.
type pluginHarness struct {
	*harness
	admin *httptest.Server
}

func newPluginHarness(t *testing.T) *pluginHarness {
	t.Helper()
	guests(t)
	h := newHarness(t, func(c *Config) {
		c.WasmCache = wasmCacheDir()
		// Some tests hold a request in the upstream while admin writes
		// compile modules: on a slow machine that outlasts the usual 5 s.
		c.UpstreamTimeout = time.Minute
	})
	admin := httptest.NewServer(h.srv.Admin())
	t.Cleanup(admin.Close)
	h.group(gatehouse.AdminGroupID)
	h.key(newKey(adminID, adminSecret, func(k *gatehouse.APIKey) {
		k.AuthorizedEntities = []string{gatehouse.GroupEntity(gatehouse.AdminGroupID)}
	}))
	h.group("g")
	return &pluginHarness{harness: h, admin: admin}
}

// api calls the admin API with the admin key and decodes a JSON answer into out (when not nil).
func (h *pluginHarness) api(method, path, contentType string, body []byte, out any) int {
	h.t.Helper()
	req, err := http.NewRequest(method, h.admin.URL+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.SetBasicAuth(adminID, adminSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: answer %d %q is not JSON: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// upload posts a module as a new plugin and returns it.
func (h *pluginHarness) upload(name string, wasm []byte, query string) gatehouse.Plugin {
	h.t.Helper()
	var p gatehouse.Plugin
	if code := h.api("POST", "/api/plugins?name="+name+query, "application/wasm", wasm, &p); code != http.StatusCreated {
		h.t.Fatalf("upload %s: status %d", name, code)
	}
	return p
}

// attach sets a service's plugins with a merge patch, as an operator does.
func (h *pluginHarness) attach(serviceID string, refs ...gatehouse.PluginRef) {
	h.t.Helper()
	if refs == nil {
		refs = []gatehouse.PluginRef{}
	}
	body, _ := json.Marshal(map[string]any{"plugins": refs})
	var errBody map[string]any
	if code := h.api("PATCH", "/api/services/"+serviceID, "application/merge-patch+json", body, &errBody); code != http.StatusOK {
		h.t.Fatalf("attach to %s: status %d %v", serviceID, code, errBody)
	}
}

// answer is what a client got from the gateway.
type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) msg() string { return a.header.Get("Otoroshi-Error-Msg") }

// send calls the gateway and reads the whole answer; safe from many goroutines
// (it reports with Errorf, never Fatal).
func (h *pluginHarness) send(method, host, target string, header ...string) answer {
	req, err := http.NewRequest(method, h.gw.URL+target, nil)
	if err != nil {
		h.t.Error(err)
		return answer{}
	}
	req.Host = host
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Error(err)
		return answer{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Error(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func ref(id, config string) gatehouse.PluginRef { return gatehouse.PluginRef{Ref: id, Config: config} }

func public(s *gatehouse.Service) { s.PublicPatterns = []string{"/.*"} }

func signature(secret, method, path string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(method + " " + path))
	return hex.EncodeToString(m.Sum(nil))
}

func basicHeader(id, secret string) []string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(id, secret)
	return []string{"Authorization", r.Header.Get("Authorization")}
}

func TestPluginUploadDescribesTheModule(t *testing.T) {
	t.Parallel()
	h := newPluginHarness(t)
	wasm := guests(t)["hmacauth"]
	p := h.upload("hmac", wasm, "&timeoutMs=250&poolSize=3")
	sum := sha256.Sum256(wasm)
	want := gatehouse.Plugin{ID: p.ID, Name: "hmac", SHA256: hex.EncodeToString(sum[:]), ABI: "http-wasm",
		MemoryLimitPages: 256, TimeoutMs: 250, PoolSize: 3}
	if p.ID == "" || p != want {
		t.Errorf("uploaded plugin %+v, want %+v", p, want)
	}
	var got gatehouse.Plugin
	if code := h.api("GET", "/api/plugins/"+p.ID, "", nil, &got); code != 200 || got != want {
		t.Errorf("GET plugin: %d %+v", code, got)
	}
}

// TestPluginHMACAuth: the hmacauth example, its secret in the config string.
func TestPluginHMACAuth(t *testing.T) {
	t.Parallel()
	h := newPluginHarness(t)
	w := guests(t)
	hm := h.upload("hmacauth", w["hmacauth"], "")
	mirror := h.upload("mirror", w["mirror"], "")
	up := newUpstream(t)
	h.service(newService("signed", "g", "signed.test", up, public))
	h.service(newService("keyed", "g", "keyed.test", up))
	h.key(newKey("good", "s3cret", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }))
	const secret = "hmac-topsecret"
	h.attach("signed", ref(hm.ID, secret))
	h.attach("keyed", ref(mirror.ID, "mirror-config"), ref(hm.ID, secret))

	t.Run("public path: the plugin is the authentication", func(t *testing.T) {
		before := up.hits.Load()
		a := h.send("GET", "signed.test", "/orders/7?x=1", "X-Signature", signature(secret, "GET", "/orders/7"))
		if a.status != 200 || a.body != "ok" || up.hits.Load() != before+1 {
			t.Fatalf("signed call: %d %q (upstream calls %d -> %d)", a.status, a.body, before, up.hits.Load())
		}
		if got := up.lastRequest().Header.Get("X-Signature"); got == "" {
			t.Error("the signature did not reach the upstream")
		}
		for name, hdr := range map[string][]string{
			"wrong signature":          {"X-Signature", signature("not-the-secret", "GET", "/orders/7")},
			"signature of a path":      {"X-Signature", signature(secret, "GET", "/orders/8")},
			"signature of a method":    {"X-Signature", signature(secret, "POST", "/orders/7")},
			"garbled signature":        {"X-Signature", "zz"},
			"no signature":             nil,
			"an API key is no help":    basicHeader("good", "s3cret"),
			"a smuggled client id too": {"Otoroshi-Client-Id", "good"},
		} {
			before := up.hits.Load()
			a := h.send("GET", "signed.test", "/orders/7", hdr...)
			if a.status != 401 || a.body != `{"error":"invalid signature"}` || a.header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: %d %q %q, want the plugin's 401", name, a.status, a.header.Get("Content-Type"), a.body)
			}
			if a.msg() != "" {
				t.Errorf("%s: the plugin's answer carries Otoroshi-Error-Msg %q", name, a.msg())
			}
			if up.hits.Load() != before {
				t.Errorf("%s: the upstream was reached", name)
			}
		}
	})

	t.Run("keyed path: the plugin sees the client id, never the secret", func(t *testing.T) {
		sig := []string{"X-Signature", signature(secret, "GET", "/me")}
		for name, cred := range map[string][]string{
			"basic":          basicHeader("good", "s3cret"),
			"id and secret":  {"Otoroshi-Client-Id", "good", "Otoroshi-Client-Secret", "s3cret"},
			"secret smuggle": append(basicHeader("good", "s3cret"), "Otoroshi-Client-Secret", "s3cret"),
		} {
			a := h.send("GET", "keyed.test", "/me", append(cred, sig...)...)
			if a.status != 200 {
				t.Fatalf("%s: status %d %q", name, a.status, a.msg())
			}
			if got := a.header.Get("X-Seen-Otoroshi-Client-Id"); got != "good" {
				t.Errorf("%s: plugin saw Otoroshi-Client-Id %q, want good", name, got)
			}
			if got := a.header.Get("X-Seen-Config"); got != "mirror-config" {
				t.Errorf("%s: plugin saw config %q", name, got)
			}
			for k, v := range a.header {
				if strings.HasPrefix(k, "X-Seen-") && strings.Contains(strings.Join(v, ","), "s3cret") {
					t.Errorf("%s: the plugin saw the secret in %s", name, k)
				}
			}
			for _, n := range []string{"Authorization", "Otoroshi-Client-Secret"} {
				if strings.Contains(a.header.Get("X-Seen-Names"), n) {
					t.Errorf("%s: the plugin saw %s (names %q)", name, n, a.header.Get("X-Seen-Names"))
				}
			}
		}
		// The key is checked before any plugin runs.
		a := h.send("GET", "keyed.test", "/me", sig...)
		if a.status != 401 || a.msg() != "no apikey" || a.header.Get("X-Seen-Names") != "" {
			t.Errorf("no key: %d %q, plugin ran: %v", a.status, a.msg(), a.header.Get("X-Seen-Names") != "")
		}
		// The plugin after the key: a valid key without a signature is denied by it.
		a = h.send("GET", "keyed.test", "/me", basicHeader("good", "s3cret")...)
		if a.status != 401 || a.body != `{"error":"invalid signature"}` {
			t.Errorf("key without signature: %d %q", a.status, a.body)
		}
		// The gateway's request id and quota headers still reach the client.
		if a.header.Get("Otoroshi-Request-Id") == "" || a.header.Get("Otoroshi-Daily-Calls-Remaining") == "" {
			t.Errorf("plugin answer without the gateway's headers: %v", a.header)
		}
	})
}

// TestPluginRewriteDenyAndOrder: the rewrite and deny examples at work, and
// the chain's order: handle_request in the service's order, handle_response
// in reverse.
func TestPluginRewriteDenyAndOrder(t *testing.T) {
	t.Parallel()
	h := newPluginHarness(t)
	w := guests(t)
	rw := h.upload("rewrite", w["rewrite"], "")
	deny := h.upload("deny", w["deny"], "")
	up := newUpstream(t)
	h.service(newService("rw", "g", "rw.test", up, public))
	h.service(newService("deny", "g", "deny.test", up, public))
	h.service(newService("order", "g", "order.test", up, public))

	h.attach("rw", ref(rw.ID, `{"requestHeaders": {"X-From-Gateway": "yes"}, "responseHeaders": {"X-Rewritten": "1"},
		"fromPrefix": "/old/", "toPrefix": "/new/"}`))
	a := h.send("GET", "rw.test", "/old/items?page=2")
	if a.status != 200 || a.header.Get("X-Rewritten") != "1" || a.header.Get("X-Upstream") != "yes" {
		t.Errorf("rewrite: %d X-Rewritten %q X-Upstream %q", a.status, a.header.Get("X-Rewritten"), a.header.Get("X-Upstream"))
	}
	r := up.lastRequest()
	if r.URL.Path != "/new/items" || r.URL.RawQuery != "page=2" || r.Header.Get("X-From-Gateway") != "yes" {
		t.Errorf("upstream got %s?%s X-From-Gateway %q", r.URL.Path, r.URL.RawQuery, r.Header.Get("X-From-Gateway"))
	}

	h.attach("deny", ref(deny.ID, `{"status": 451, "headers": {"Content-Type": "text/plain", "X-Why": "legal"}, "body": "go away"}`))
	before := up.hits.Load()
	a = h.send("POST", "deny.test", "/anything")
	if a.status != 451 || a.body != "go away" || a.header.Get("Content-Type") != "text/plain" || a.header.Get("X-Why") != "legal" {
		t.Errorf("deny: %d %q %v", a.status, a.body, a.header)
	}
	if a.header.Get("Otoroshi-Error") != "" || up.hits.Load() != before {
		t.Errorf("deny: Otoroshi-Error %q, upstream reached %v", a.header.Get("Otoroshi-Error"), up.hits.Load() != before)
	}

	step := func(name string) gatehouse.PluginRef {
		return ref(rw.ID, fmt.Sprintf(`{"requestHeaders": {"X-Order": %q}, "responseHeaders": {"X-Order": %q}}`, name, name))
	}
	for _, order := range [][]string{{"A", "B"}, {"B", "A"}, {"A", "B", "C"}} {
		var refs []gatehouse.PluginRef
		for _, n := range order {
			refs = append(refs, step(n))
		}
		h.attach("order", refs...)
		a := h.send("GET", "order.test", "/")
		// The last handle_request to set the header wins upstream; the
		// first plugin's handle_response runs last and wins at the client.
		last, first := order[len(order)-1], order[0]
		if got := up.lastRequest().Header.Get("X-Order"); got != last {
			t.Errorf("order %v: upstream X-Order %q, want %q", order, got, last)
		}
		if got := a.header.Get("X-Order"); a.status != 200 || got != first {
			t.Errorf("order %v: client %d X-Order %q, want %q", order, a.status, got, first)
		}
	}

	// A plugin's own answer goes back through the handle_response of the
	// plugins before it.
	h.attach("order", step("A"), ref(deny.ID, `{"status": 403, "body": "no"}`))
	a = h.send("GET", "order.test", "/")
	if a.status != 403 || a.body != "no" || a.header.Get("X-Order") != "A" {
		t.Errorf("rewrite then deny: %d %q X-Order %q", a.status, a.body, a.header.Get("X-Order"))
	}
}

// TestPluginMisbehaving: a guest that loops, exhausts its memory or traps
// fails its own service's requests (502 plugin failure) while other
// services go on answering; a fixed plugin works at once.
func TestPluginMisbehaving(t *testing.T) {
	t.Parallel()
	h := newPluginHarness(t)
	w := guests(t)
	up := newUpstream(t)
	noop := h.upload("noop", w["noop"], "")
	h.service(newService("plain", "g", "plain.test", up, public))
	h.service(newService("calm", "g", "calm.test", up, public))
	h.attach("calm", ref(noop.ID, ""))

	// Two clients call the healthy services for as long as the bad ones are exercised.
	done := make(chan struct{})
	var healthy sync.WaitGroup
	var healthyCalls atomic.Int64
	for _, host := range []string{"plain.test", "calm.test"} {
		healthy.Add(1)
		go func() {
			defer healthy.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					if i >= 3 {
						return
					}
				default:
				}
				if a := h.send("GET", host, "/"); a.status != 200 {
					t.Errorf("%s answered %d %q while another service's plugin misbehaved", host, a.status, a.msg())
				}
				healthyCalls.Add(1)
			}
		}()
	}

	for _, name := range []string{"loop", "membomb", "trap"} {
		t.Run(name, func(t *testing.T) {
			p := h.upload(name, w[name], "&poolSize=2")
			svc := "bad-" + name
			badUp := newUpstream(t)
			h.service(newService(svc, "g", svc+".test", badUp, public))
			h.attach(svc, ref(p.ID, ""))
			misbehave := func(n int) {
				t.Helper()
				for range n {
					a := h.send("GET", svc+".test", "/", "X-Misbehave", "1")
					if a.status != 502 || a.msg() != "plugin failure" || a.header.Get("Otoroshi-Error") != "true" ||
						a.body != `{"Otoroshi-Error":"plugin failure"}` {
						t.Fatalf("misbehaving call: %d %q %q", a.status, a.msg(), a.body)
					}
				}
			}
			misbehave(3)
			if badUp.hits.Load() != 0 {
				t.Fatalf("a failed plugin's call reached the upstream")
			}
			// The failed instances were thrown away; a fresh one serves the next call.
			if a := h.send("GET", svc+".test", "/"); a.status != 200 {
				t.Fatalf("well-behaved call after failures: %d %q", a.status, a.msg())
			}
			// Five failures in a row suspend the attachment: even a good call fails.
			misbehave(5)
			if a := h.send("GET", svc+".test", "/"); a.status != 502 || a.msg() != "plugin failure" {
				t.Fatalf("suspended attachment: %d %q, want 502 plugin failure", a.status, a.msg())
			}
			// A suspension lasts 30 s (on the server's clock), then calls run again.
			h.clock.Advance(plugins.SuspendFor)
			if a := h.send("GET", svc+".test", "/"); a.status != 200 {
				t.Fatalf("after the suspension: %d %q", a.status, a.msg())
			}
			misbehave(5)
			if a := h.send("GET", svc+".test", "/"); a.status != 502 {
				t.Fatalf("suspended again: %d %q, want 502", a.status, a.msg())
			}
			// Replacing the module with a fixed one ends the suspension at once.
			var fixed gatehouse.Plugin
			if code := h.api("PUT", "/api/plugins/"+p.ID, "application/wasm", w["noop"], &fixed); code != 200 || fixed.SHA256 != noop.SHA256 {
				t.Fatalf("PUT fixed module: %d %+v", code, fixed)
			}
			if a := h.send("GET", svc+".test", "/", "X-Misbehave", "1"); a.status != 200 || a.body != "ok" {
				t.Fatalf("fixed plugin: %d %q", a.status, a.msg())
			}
		})
	}

	t.Run("failOpen passes through", func(t *testing.T) {
		p := h.upload("trap-open", w["trap"], "")
		h.service(newService("open", "g", "open.test", up, public))
		h.attach("open", gatehouse.PluginRef{Ref: p.ID, FailOpen: true})
		for range 7 { // past the suspension too
			before := up.hits.Load()
			if a := h.send("GET", "open.test", "/", "X-Misbehave", "1"); a.status != 200 || a.body != "ok" || up.hits.Load() == before {
				t.Fatalf("failOpen: %d %q", a.status, a.msg())
			}
		}
	})

	close(done)
	healthy.Wait()
	if healthyCalls.Load() < 6 {
		t.Errorf("only %d healthy calls", healthyCalls.Load())
	}
}

func TestPluginUploadRefusesBadModules(t *testing.T) {
	t.Parallel()
	h := newPluginHarness(t)
	w := guests(t)
	for name, body := range map[string][]byte{
		"garbage":         []byte("this is not webassembly at all"),
		"empty":           {},
		"wasm header":     []byte("\x00asm\x01\x00\x00\x00"),
		"exports nothing": w["noexports"],
	} {
		var e struct{ Error, Field string }
		if code := h.api("POST", "/api/plugins?name=bad", "application/wasm", body, &e); code != 400 || e.Field != "wasm" || e.Error == "" {
			t.Errorf("%s: %d %+v, want 400 field wasm", name, code, e)
		}
	}
	good := h.upload("good", w["noop"], "")
	var e struct{ Error, Field string }
	if code := h.api("PUT", "/api/plugins/"+good.ID, "application/wasm", w["noexports"], &e); code != 400 || e.Field != "wasm" {
		t.Errorf("PUT a module exporting nothing: %d %+v", code, e)
	}
	var list []gatehouse.Plugin
	if code := h.api("GET", "/api/plugins", "", nil, &list); code != 200 || len(list) != 1 || list[0] != good {
		t.Errorf("plugins after refused uploads: %d %+v, want only %+v", code, list, good)
	}
}

// TestPluginReplaceDeleteAndReferences: PUT swaps the module under requests
// in flight without dropping one; references are checked.
func TestPluginReplaceDeleteAndReferences(t *testing.T) {
	t.Parallel()
	h := newPluginHarness(t)
	w := guests(t)
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Hold") != "" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(rw, "ok")
	}))
	t.Cleanup(up.Close)
	svc := newService("swap", "g", "swap.test", nil, public)
	svc.Targets = []gatehouse.Target{{Host: strings.TrimPrefix(up.URL, "http://"), Scheme: "http"}}
	h.service(svc)
	p := h.upload("swappable", w["echo"], "&timeoutMs=10000") // the held request must reach the upstream
	h.attach("swap", ref(p.ID, "cfg"))

	// One request holds an echo instance from handle_request until the upstream answers.
	held := make(chan answer, 1)
	go func() { held <- h.send("GET", "swap.test", "/", "X-Hold", "1", "X-Echo", "held") }()
	select { // a request that fails before the upstream ends the test instead of hanging it
	case <-arrived:
	case a := <-held:
		close(release)
		t.Fatalf("held request never reached the upstream: %d %q", a.status, a.msg())
	}

	// Meanwhile clients keep calling, and the module is swapped back and forth.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var calls atomic.Int64
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					if i >= 3 {
						return
					}
				default:
				}
				if a := h.send("GET", "swap.test", "/", "X-Echo", fmt.Sprint(c)); a.status != 200 {
					t.Errorf("call during swaps: %d %q", a.status, a.msg())
				}
				calls.Add(1)
			}
		}()
	}
	for i := range 4 {
		mod := w["mirror"]
		if i%2 == 1 {
			mod = w["echo"]
		}
		start := time.Now()
		if code := h.api("PUT", "/api/plugins/"+p.ID, "application/wasm", mod, nil); code != 200 {
			t.Fatalf("PUT: %d", code)
		}
		t.Logf("PUT %d took %v", i, time.Since(start))
	}
	close(release)
	a := <-held
	if a.status != 200 || a.body != "ok" || a.header.Get("X-Echo") != "held" {
		t.Errorf("request in flight across the swaps: %d %q X-Echo %q", a.status, a.msg(), a.header.Get("X-Echo"))
	}
	close(stop)
	wg.Wait()
	// The last PUT installed echo again: new requests see it.
	if a := h.send("GET", "swap.test", "/", "X-Echo", "after"); a.status != 200 || a.header.Get("X-Echo") != "after" {
		t.Errorf("after the swaps: %d X-Echo %q", a.status, a.header.Get("X-Echo"))
	}

	// References.
	var e struct{ Error, Field string }
	if code := h.api("DELETE", "/api/plugins/"+p.ID, "", nil, &e); code != 409 {
		t.Errorf("DELETE an attached plugin: %d %+v, want 409", code, e)
	}
	if a := h.send("GET", "swap.test", "/", "X-Echo", "still"); a.status != 200 || a.header.Get("X-Echo") != "still" {
		t.Errorf("after a refused DELETE: %d X-Echo %q", a.status, a.header.Get("X-Echo"))
	}
	bad := newService("dangling", "g", "dangling.test", nil, public)
	bad.Targets = svc.Targets
	bad.Plugins = []gatehouse.PluginRef{{Ref: "no-such-plugin"}}
	body, _ := json.Marshal(bad)
	e.Field = ""
	if code := h.api("POST", "/api/services", "application/json", body, &e); code != 400 || e.Field != "plugins" {
		t.Errorf("POST a service with an unknown plugin: %d %+v, want 400 field plugins", code, e)
	}
	e.Field = ""
	if code := h.api("PATCH", "/api/services/swap", "application/merge-patch+json",
		[]byte(`{"plugins": [{"ref": "no-such-plugin"}]}`), &e); code != 400 || e.Field != "plugins" {
		t.Errorf("PATCH in an unknown plugin: %d %+v, want 400 field plugins", code, e)
	}
	if a := h.send("GET", "swap.test", "/", "X-Echo", "kept"); a.header.Get("X-Echo") != "kept" {
		t.Errorf("after a refused PATCH the plugin is gone: %d X-Echo %q", a.status, a.header.Get("X-Echo"))
	}
	h.attach("swap")
	if code := h.api("DELETE", "/api/plugins/"+p.ID, "", nil, nil); code != 200 {
		t.Errorf("DELETE a detached plugin: %d", code)
	}
	if a := h.send("GET", "swap.test", "/", "X-Echo", "gone"); a.status != 200 || a.header.Get("X-Echo") != "" {
		t.Errorf("after detaching: %d X-Echo %q", a.status, a.header.Get("X-Echo"))
	}
	t.Logf("%d calls during the swaps", calls.Load())
}

// TestPluginConcurrentRequestsIsolated: 64 requests through one plugin at
// once each see only their own request.
func TestPluginConcurrentRequestsIsolated(t *testing.T) {
	t.Parallel()
	h := newPluginHarness(t)
	up := newUpstream(t)
	// Isolation is tested here, not the time limit nor the busy wait: a long
	// timeout, and an instance for every request in flight.
	p := h.upload("echo", guests(t)["echo"], "&timeoutMs=10000&poolSize=64")
	h.service(newService("echo", "g", "echo.test", up, public))
	h.attach("echo", ref(p.ID, "echo-config"))
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := fmt.Sprintf("request-%d", i)
			a := h.send("GET", "echo.test", "/", "X-Echo", mine)
			if a.status != 200 || a.header.Get("X-Echo") != mine || a.header.Get("X-Echo-Config") != "echo-config" {
				t.Errorf("%s got %d X-Echo %q config %q", mine, a.status, a.header.Get("X-Echo"), a.header.Get("X-Echo-Config"))
			}
		}()
	}
	wg.Wait()
}

// TestPluginAfterQuotas: plugins run after quotas (contract section 3), and
// a call the quota stage let through counts whatever a plugin answers
// (section 6).
func TestPluginAfterQuotas(t *testing.T) {
	t.Parallel()
	h := newPluginHarness(t)
	w := guests(t)
	up := newUpstream(t)
	mirror := h.upload("mirror", w["mirror"], "")
	deny := h.upload("deny", w["deny"], "")
	h.service(newService("q", "g", "q.test", up))
	h.attach("q", ref(mirror.ID, ""), ref(deny.ID, `{"status": 403, "body": "denied by plugin"}`))
	const n = 3
	h.key(newKey("few", "s3cret", func(k *gatehouse.APIKey) {
		k.AuthorizedEntities = []string{"group_g"}
		k.DailyQuota = n
	}))
	for i := range n {
		a := h.send("GET", "q.test", "/", basicHeader("few", "s3cret")...)
		if a.status != 403 || a.body != "denied by plugin" || a.header.Get("X-Seen-Otoroshi-Client-Id") != "few" {
			t.Fatalf("call %d: %d %q, plugin saw %q", i, a.status, a.body, a.header.Get("X-Seen-Otoroshi-Client-Id"))
		}
		if got := a.header.Get("Otoroshi-Daily-Calls-Remaining"); got != fmt.Sprint(n-1-i) {
			t.Errorf("call %d: Otoroshi-Daily-Calls-Remaining %q, want %d", i, got, n-1-i)
		}
	}
	var u gatehouse.QuotaUsage
	if code := h.api("GET", "/api/apikeys/few/quotas", "", nil, &u); code != 200 || u.CurrentCallsPerDay != n {
		t.Errorf("plugin-denied calls counted %d (status %d), want %d", u.CurrentCallsPerDay, code, n)
	}
	a := h.send("GET", "q.test", "/", basicHeader("few", "s3cret")...)
	if a.status != 429 || a.msg() != "too many requests: daily quota" {
		t.Fatalf("over quota: %d %q", a.status, a.msg())
	}
	if a.header.Get("X-Seen-Names") != "" || a.body == "denied by plugin" {
		t.Errorf("the plugin ran on a call the quota refused")
	}
	if up.hits.Load() != 0 {
		t.Errorf("upstream reached %d times", up.hits.Load())
	}
}

// TestPluginHeadersOff: a service that wants none of the gateway's headers
// back gets none, through a plugin as without one.
func TestPluginHeadersOff(t *testing.T) {
	t.Parallel()
	h := newPluginHarness(t)
	w := guests(t)
	up := newUpstream(t)
	noop := h.upload("noop", w["noop"], "")
	deny := h.upload("deny", w["deny"], "")
	quiet := func(s *gatehouse.Service) { s.SendOtoroshiHeadersBack = false }
	h.service(newService("quiet", "g", "quiet.test", up, quiet))
	h.service(newService("quiet-deny", "g", "quiet-deny.test", up, quiet))
	h.attach("quiet", ref(noop.ID, ""))
	h.attach("quiet-deny", ref(deny.ID, `{"status": 403}`))
	h.key(newKey("k", "s3cret", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }))
	for host, status := range map[string]int{"quiet.test": 200, "quiet-deny.test": 403} {
		a := h.send("GET", host, "/", basicHeader("k", "s3cret")...)
		if a.status != status {
			t.Fatalf("%s: status %d %q", host, a.status, a.msg())
		}
		for _, name := range ownHeaders {
			if v := a.header.Get(name); v != "" {
				t.Errorf("%s: %s = %q on a service with sendOtoroshiHeadersBack false", host, name, v)
			}
		}
	}
}

// TestPluginMemoryLimitChecked: a module whose memory cannot fit its
// plugin's memoryLimitPages is refused before anything is stored, on upload,
// on PUT and on a PATCH that lowers the limit; the plugin in use goes on.
func TestPluginMemoryLimitChecked(t *testing.T) {
	t.Parallel()
	h := newPluginHarness(t)
	up := newUpstream(t)
	noop := guests(t)["noop"]
	var e struct{ Error, Field string }
	if code := h.api("POST", "/api/plugins?name=small&memoryLimitPages=1", "application/wasm", noop, &e); code != 400 || e.Field != "memoryLimitPages" {
		t.Fatalf("upload over its memory limit: %d %+v, want 400 memoryLimitPages", code, e)
	}
	var list []gatehouse.Plugin
	if h.api("GET", "/api/plugins", "", nil, &list); len(list) != 0 {
		t.Fatalf("a refused upload was stored: %+v", list)
	}
	p := h.upload("ok", noop, "")
	h.service(newService("svc", "g", "svc.test", up, public))
	h.attach("svc", ref(p.ID, ""))
	e = struct{ Error, Field string }{}
	if code := h.api("PATCH", "/api/plugins/"+p.ID, "application/merge-patch+json", []byte(`{"memoryLimitPages": 1}`), &e); code != 400 || e.Field != "memoryLimitPages" {
		t.Fatalf("PATCH under the module's memory: %d %+v, want 400 memoryLimitPages", code, e)
	}
	var got gatehouse.Plugin
	if h.api("GET", "/api/plugins/"+p.ID, "", nil, &got); got.MemoryLimitPages != p.MemoryLimitPages {
		t.Errorf("a refused PATCH changed the plugin: %+v", got)
	}
	if a := h.send("GET", "svc.test", "/"); a.status != 200 || a.body != "ok" {
		t.Errorf("plugin in use after a refused PATCH: %d %q", a.status, a.msg())
	}
}

// TestPluginBusy: with every instance of a pool held, a request waits 1 s
// for one, then answers 503 plugin busy; the held request is unharmed.
func TestPluginBusy(t *testing.T) {
	t.Parallel()
	h := newPluginHarness(t)
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Hold") != "" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(rw, "ok")
	}))
	t.Cleanup(up.Close)
	svc := newService("one", "g", "one.test", nil, public)
	svc.Targets = []gatehouse.Target{{Host: strings.TrimPrefix(up.URL, "http://"), Scheme: "http"}}
	h.service(svc)
	p := h.upload("echo", guests(t)["echo"], "&poolSize=1&timeoutMs=10000") // the held request must reach the upstream
	h.attach("one", ref(p.ID, ""))
	held := make(chan answer, 1)
	go func() { held <- h.send("GET", "one.test", "/", "X-Hold", "1", "X-Echo", "held") }()
	select { // a request that fails before the upstream ends the test instead of hanging it
	case <-arrived:
	case a := <-held:
		close(release)
		t.Fatalf("held request never reached the upstream: %d %q", a.status, a.msg())
	}
	if a := h.send("GET", "one.test", "/"); a.status != 503 || a.msg() != "plugin busy" {
		t.Errorf("pool exhausted: %d %q, want 503 plugin busy", a.status, a.msg())
	}
	close(release)
	if a := <-held; a.status != 200 || a.header.Get("X-Echo") != "held" {
		t.Errorf("held request: %d X-Echo %q", a.status, a.header.Get("X-Echo"))
	}
	if a := h.send("GET", "one.test", "/", "X-Echo", "next"); a.status != 200 || a.header.Get("X-Echo") != "next" {
		t.Errorf("after the pool freed: %d X-Echo %q", a.status, a.header.Get("X-Echo"))
	}
}
