package server

import (
	"net/http"
	"strings"
	"testing"

	"gatehouse"
)

// TestGatewayHeadersSurviveConnection: the headers the gateway sets for the
// upstream reach it whatever the client's Connection header names (the
// reverse proxy drops the hop-by-hop headers Connection names; the
// gateway's own are set after that).
func TestGatewayHeadersSurviveConnection(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	up := newUpstream(t)
	h.group("g")
	h.service(newService("api", "g", "api.test", up, func(s *gatehouse.Service) {
		s.AdditionalHeaders = map[string]string{"X-Env": "test", "X-Tenant": "acme"}
		s.PublicPatterns = []string{"/public/.*"}
	}))
	h.key(newKey("good", "s3cret", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"service_api"} }))
	proxy, _, stop := running(t, h) // the real listener: Connection is read off the wire
	defer stop()
	call := func(target string, setup func(*http.Request)) *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+proxy+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "api.test"
		setup(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	// What the upstream must get on a keyed call; the request id is checked
	// against the client's answer.
	want := map[string]string{
		"Otoroshi-Client-Id": "good",
		"X-Forwarded-For":    "127.0.0.1",
		"X-Forwarded-Proto":  "http",
		"X-Forwarded-Host":   "api.test",
		"X-Env":              "test",
		"X-Tenant":           "acme",
	}
	all := "Otoroshi-Client-Id, Otoroshi-Request-Id, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Env, X-Tenant"
	cases := []struct{ name, connection string }{
		{"Otoroshi-Client-Id", "close, Otoroshi-Client-Id"},
		{"Otoroshi-Request-Id", "Otoroshi-Request-Id"},
		{"X-Forwarded-For", "keep-alive, x-forwarded-for"},
		{"X-Forwarded-Proto", "X-Forwarded-Proto"},
		{"X-Forwarded-Host", "X-Forwarded-Host"},
		{"additionalHeaders X-Env", "X-Env"},
		{"additionalHeaders X-Tenant", "close, X-TENANT"},
		{"every one at once", all},
		{"every one on separate lines", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := call("/private", func(r *http.Request) {
				r.SetBasicAuth("good", "s3cret")
				if tc.connection == "" {
					r.Header["Connection"] = strings.Split(all, ", ")
				} else {
					r.Header.Set("Connection", tc.connection)
				}
			})
			if resp.StatusCode != 200 {
				t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get("Otoroshi-Error-Msg"))
			}
			r := up.lastRequest()
			for name, v := range want {
				if got := r.Header.Get(name); got != v {
					t.Errorf("upstream %s = %q, want %q", name, got, v)
				}
			}
			if id := r.Header.Get("Otoroshi-Request-Id"); id == "" || id != resp.Header.Get("Otoroshi-Request-Id") {
				t.Errorf("upstream Otoroshi-Request-Id %q, client's answer %q", id, resp.Header.Get("Otoroshi-Request-Id"))
			}
			if got := r.Header.Get("Otoroshi-Client-Secret"); got != "" {
				t.Errorf("upstream got Otoroshi-Client-Secret %q", got)
			}
		})
	}
	t.Run("public path: a client's own client id never reaches the upstream", func(t *testing.T) {
		resp := call("/public/x", func(r *http.Request) {
			r.Header.Set("Otoroshi-Client-Id", "good")
			r.Header.Set("Connection", "X-Env")
		})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		r := up.lastRequest()
		if got := r.Header.Get("Otoroshi-Client-Id"); got != "" {
			t.Errorf("upstream Otoroshi-Client-Id = %q on a public call", got)
		}
		if got := r.Header.Get("X-Env"); got != "test" {
			t.Errorf("upstream X-Env = %q, want test", got)
		}
	})
}
