package plugins

import (
	"net/http"
	"strings"
	"testing"
)

// TestConformance drives the conformance guest through every host function
// and feature flag, and checks each from outside: what the upstream
// received and what the client got.
func TestConformance(t *testing.T) {
	h := newTestHost(t)
	h.load(t, "conformance")
	g := newGateway(t, h, "svc-conf", ref("conformance", "conf-string"))

	t.Run("request and response phases, buffered", func(t *testing.T) {
		g.upstream = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Up", "up")
			w.Header().Set("X-Remove-Resp", "gone")
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte("upstream body"))
		}
		res := g.do(t, "POST", "/orig/path?x=1", "hello world",
			"X-Case", "full", "X-Multi", "1", "X-Multi", "2", "X-Remove-Me", "x")
		got := g.received()
		wantUp := map[string]string{
			"X-Config":           "conf-string",
			"X-Method":           "POST",
			"X-URI":              "/orig/path?x=1",
			"X-Proto":            "HTTP/1.1",
			"X-Source":           "203.0.113.9:0",
			"X-Multi-Seen":       "1|2",
			"X-Has-Missing":      "false",
			"X-Host-Seen":        strings.TrimPrefix(g.srv.URL, "http://"),
			"X-Log-Debug":        "false",
			"X-Log-Error":        "true",
			"X-Start-Features":   "0",
			"X-Features":         "7",
			"X-Body-Seen":        "hello world",
			"X-Req-Trailer-Seen": "rt",
			"X-Remove-Me":        "",
		}
		for k, want := range wantUp {
			if v := got.Header.Get(k); v != want {
				t.Errorf("upstream %s = %q, want %q", k, v, want)
			}
		}
		if v := strings.Join(got.Header.Values("X-Added"), ","); v != "a,b" {
			t.Errorf("upstream X-Added = %q", v)
		}
		for _, n := range []string{"host", "x-case", "x-multi", "user-agent", "content-length"} {
			if !strings.Contains(","+got.Header.Get("X-Names-Seen")+",", ","+n+",") {
				t.Errorf("header names %q lack %q", got.Header.Get("X-Names-Seen"), n)
			}
		}
		if got.Method != "PUT" || got.URI != "/rewritten/path?q=1" || got.Body != "rewritten:hello world" {
			t.Errorf("upstream got %s %s %q", got.Method, got.URI, got.Body)
		}

		if res.Status != 201 {
			t.Errorf("status = %d, want 201 (set in handle_response)", res.Status)
		}
		wantClient := map[string]string{
			"X-Resp-Ctx":         "42",
			"X-Is-Error":         "false",
			"X-Upstream-Status":  "202",
			"X-Up-Seen":          "up",
			"X-Early":            "set-in-request",
			"X-Req-Method-After": "PUT",
			"X-Remove-Resp":      "",
			"Content-Length":     "", // trailers: the body is chunked
		}
		for k, want := range wantClient {
			if v := res.Header.Get(k); v != want {
				t.Errorf("client %s = %q, want %q", k, v, want)
			}
		}
		if v := strings.Join(res.Header.Values("X-Resp-Added"), ","); v != "1,2" {
			t.Errorf("client X-Resp-Added = %q", v)
		}
		if !strings.Contains(res.Header.Get("X-Resp-Names"), "x-up") {
			t.Errorf("response names = %q", res.Header.Get("X-Resp-Names"))
		}
		if res.Body != "wrapped(upstream body)" {
			t.Errorf("body = %q", res.Body)
		}
		if v := res.Trailer.Get("X-Resp-Trailer"); v != "done" {
			t.Errorf("trailer = %q", v)
		}
		logs := h.logs.String()
		if !strings.Contains(logs, `"msg":"conformance: full","plugin":"conformance","service":"svc-conf"`) {
			t.Errorf("guest log missing: %s", logs)
		}
		if strings.Contains(logs, "never logged") {
			t.Error("a log at level none was written")
		}
	})

	t.Run("deny with status, headers and body", func(t *testing.T) {
		before := g.upCalls.Load()
		res := g.do(t, "GET", "/x", "", "X-Case", "deny")
		if res.Status != 418 || res.Header.Get("X-Denied") != "yes" || res.Body != "denied by guest" {
			t.Fatalf("deny answer = %d %v %q", res.Status, res.Header, res.Body)
		}
		if v := strings.Join(res.Header.Values("X-Denied-Multi"), ","); v != "a,b" {
			t.Errorf("X-Denied-Multi = %q", v)
		}
		if g.upCalls.Load() != before {
			t.Error("a denied request reached the upstream")
		}
	})

	t.Run("streaming response: headers change, body passes", func(t *testing.T) {
		big := strings.Repeat("0123456789", 10000)
		g.upstream = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Up", "up")
			_, _ = w.Write([]byte(big[:50000]))
			w.(http.Flusher).Flush()
			_, _ = w.Write([]byte(big[50000:]))
		}
		res := g.do(t, "GET", "/stream", "", "X-Case", "stream")
		if res.Status != 200 || res.Header.Get("X-Stream") != "yes" || res.Header.Get("X-Resp-Ctx") != "7" {
			t.Fatalf("stream answer = %d %v", res.Status, res.Header)
		}
		if v := res.Header.Get("X-Resp-Body-Read"); v != "0/true" {
			t.Errorf("unbuffered response body read = %q, want EOF", v)
		}
		if res.Body != big {
			t.Errorf("streamed body has %d bytes, want %d", len(res.Body), len(big))
		}
	})

	t.Run("misuse traps and fails only that request", func(t *testing.T) {
		g.upstream = func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }
		for _, c := range []string{"oob", "bad-header", "trailer-without-feature", "write-without-buffer"} {
			if res := g.do(t, "GET", "/", "", "X-Case", c); res.Status != http.StatusBadGateway {
				t.Errorf("case %s: status %d, want 502", c, res.Status)
			}
			if res := g.do(t, "GET", "/", ""); res.Status != 200 || res.Body != "ok" {
				t.Errorf("after %s: status %d %q, want 200", c, res.Status, res.Body)
			}
		}
	})

	t.Run("request body over 8 MiB", func(t *testing.T) {
		res := g.do(t, "POST", "/", strings.Repeat("x", MaxBodyBytes+1), "X-Case", "full")
		if res.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413", res.Status)
		}
		if res := g.do(t, "GET", "/", ""); res.Status != 200 {
			t.Fatalf("next request: %d", res.Status)
		}
	})
}
