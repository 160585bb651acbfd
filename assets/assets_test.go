package assets

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestHashedPaths(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile("htmx.min.js")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	want := "/assets/htmx." + hex.EncodeToString(sum[:])[:16] + ".min.js"
	if got := Path("htmx.min.js"); got != want {
		t.Errorf("Path(htmx.min.js) = %q, want %q", got, want)
	}
	if !regexp.MustCompile(`^/assets/app\.[0-9a-f]{16}\.css$`).MatchString(Path("app.css")) {
		t.Errorf("Path(app.css) = %q", Path("app.css"))
	}
}

func TestVendoredHTMXIsVersion2(t *testing.T) {
	t.Parallel()
	v, err := os.ReadFile("htmx.VERSION")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(v), "2.") {
		t.Errorf("vendored htmx %q is not 2.x", v)
	}
	body, _ := os.ReadFile("htmx.min.js")
	if !strings.HasPrefix(string(body), "/* htmx.org "+strings.TrimSpace(string(v))) {
		t.Error("htmx.min.js lacks its version comment")
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler())
	defer srv.Close()

	tests := []struct {
		path        string
		status      int
		contentType string
		cache       string
	}{
		{Path("htmx.min.js"), 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{Path("app.css"), 200, "text/css; charset=utf-8", "public, max-age=31536000, immutable"},
		{Path("icon.svg"), 200, "image/svg+xml", "public, max-age=31536000, immutable"},
		{"/assets/htmx.min.js", 404, "", ""},
		{"/assets/htmx.0000000000000000.min.js", 404, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			res, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if got := res.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if got := res.Header.Get("Cache-Control"); got != tc.cache {
				t.Errorf("Cache-Control %q", got)
			}
			if len(body) == 0 {
				t.Error("empty body")
			}
			// A revalidation with the ETag is answered 304.
			req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
			req.Header.Set("If-None-Match", res.Header.Get("ETag"))
			res2, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res2.Body.Close()
			if res2.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation status %d, want 304", res2.StatusCode)
			}
		})
	}
}
