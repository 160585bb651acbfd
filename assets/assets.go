// Package assets embeds the dashboard's static files (the vendored htmx, the
// stylesheet, a small script and the icon) and serves them under
// content-hashed URLs, so browsers may cache them forever.
//
// htmx is htmx.org 2.0.11 from the npm registry (see htmx.VERSION and
// htmx.LICENSE); update-htmx.sh refreshes it.
package assets

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed htmx.min.js htmx.LICENSE app.css app.js icon.svg
var files embed.FS

// Prefix is the URL path under which assets are served.
const Prefix = "/assets/"

// asset is one embedded file and its hashed URL path.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

var (
	byName = map[string]string{} // "htmx.min.js" -> "/assets/htmx.<hash>.min.js"
	byPath = map[string]asset{}  // hashed path -> asset
)

// Computed once at start from the embedded bytes: a new build with changed
// files gets new URLs, so the immutable caching never serves stale files.
func init() {
	entries, err := files.ReadDir(".")
	if err != nil {
		panic(fmt.Sprintf("assets: read embedded files: %v", err))
	}
	for _, e := range entries {
		name := e.Name()
		body, err := files.ReadFile(name)
		if err != nil {
			panic(fmt.Sprintf("assets: read %s: %v", name, err))
		}
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:])[:16]
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" || name == "htmx.LICENSE" {
			ct = "text/plain; charset=utf-8"
		}
		p := Prefix + hashedName(name, hash)
		byName[name] = p
		byPath[p] = asset{body: body, contentType: ct, etag: `"` + hash + `"`}
	}
}

// hashedName puts the hash after the first dot-free part of the name:
// htmx.min.js -> htmx.<hash>.min.js, app.css -> app.<hash>.css.
func hashedName(name, hash string) string {
	base, ext, ok := strings.Cut(name, ".")
	if !ok {
		return name + "." + hash
	}
	return base + "." + hash + "." + ext
}

// Path returns the hashed URL path of an embedded file, e.g.
// Path("htmx.min.js") == "/assets/htmx.1a2b3c4d5e6f7a8b.min.js". It panics on
// an unknown name: that is a programming error caught by any render test.
func Path(name string) string {
	p, ok := byName[name]
	if !ok {
		panic("assets: unknown asset " + name)
	}
	return p
}

// Handler serves the embedded files at their hashed paths with a year-long
// immutable cache lifetime; any other path under Prefix is 404.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := byPath[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("ETag", a.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}
