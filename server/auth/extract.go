// Package auth finds the API key credential a request presents (contract
// section 4), verifies it against the in-memory key index, and removes it from
// the request so that the upstream never sees it. It is shared by the gateway,
// which accepts every way of presenting a key, and the admin API, which only
// accepts headers.
package auth

import (
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// Sources is the set of places a credential may be read from.
type Sources uint8

const (
	FromAuthorization Sources = 1 << iota // Authorization: Basic / Bearer
	FromClientHeaders                     // Otoroshi-Client-Id + Otoroshi-Client-Secret
	FromAPIKeyHeader                      // x-api-key header
	FromOtoroshiAuth                      // Otoroshi-Token, Otoroshi-Authorization
	FromQuery                             // ?x-api-key=, ?bearer_auth=, ?basic_auth=
	FromCookie                            // cookie access_token

	// AllSources is what the gateway accepts.
	AllSources = FromAuthorization | FromClientHeaders | FromAPIKeyHeader | FromOtoroshiAuth | FromQuery | FromCookie
	// HeadersOnly is what the admin API accepts (contract section 8): never a
	// query parameter or a cookie, which a browser could be tricked into sending.
	HeadersOnly = FromAuthorization | FromClientHeaders
)

// Kind is the way a credential was presented.
type Kind uint8

const (
	None          Kind = iota // no credential found
	ClientIDOnly              // x-api-key
	ClientHeaders             // Otoroshi-Client-Id + Otoroshi-Client-Secret
	JWT                       // a JWT signed with the key's secret
	Basic                     // Basic id:secret
)

var kindNames = [...]string{"none", "x-api-key", "client-headers", "jwt", "basic"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Location is where in the request a credential was found.
type Location uint8

const (
	InHeader Location = iota + 1
	InQuery
	InCookie
)

var locationNames = [...]string{"", "header", "query", "cookie"}

func (l Location) String() string {
	if int(l) < len(locationNames) {
		return locationNames[l]
	}
	return "unknown"
}

// Credential is what Extract found. Secret and Token never appear in its
// String or LogValue forms, so logging a Credential cannot leak them.
type Credential struct {
	Kind Kind
	// ClientID is filled in by Verify for JWT (from the claims) and Basic
	// (once decoded).
	ClientID string
	// Secret is the ClientHeaders secret; for Basic, Verify fills it in
	// with the secret that matched.
	Secret string
	Token  string   // JWT: the raw token
	In     Location // where it was found
	Name   string   // header name (canonical), query parameter or cookie name

	// PreviousUntil is set by Verify when the key's previous secret matched
	// (a rotation's grace period): epoch ms when it stops being accepted.
	PreviousUntil int64

	basic string // Basic: the base64 of id:secret, decoded by Verify
}

const (
	hdrAuthorization = "Authorization"
	hdrClientID      = "Otoroshi-Client-Id"
	hdrClientSecret  = "Otoroshi-Client-Secret"
	hdrAPIKey        = "X-Api-Key"
	hdrOtoToken      = "Otoroshi-Token"
	hdrOtoAuth       = "Otoroshi-Authorization"

	qAPIKey = "x-api-key"
	qBearer = "bearer_auth"
	qBasic  = "basic_auth"

	cookieToken = "access_token"
)

// Extract finds the first credential of r in contract order, reading only
// the given sources:
//  1. x-api-key header, then ?x-api-key=;
//  2. Otoroshi-Client-Id + Otoroshi-Client-Secret;
//  3. JWT: Authorization: Bearer, Otoroshi-Token, ?bearer_auth=, cookie access_token;
//  4. Basic: Authorization: Basic, Otoroshi-Authorization: Basic, ?basic_auth=.
//
// An empty value counts as absent. Extract allocates only to unescape a
// query value, and accepts any bytes.
func Extract(r *http.Request, src Sources) Credential {
	h := r.Header
	var q queryValues
	if src&FromQuery != 0 && r.URL != nil && r.URL.RawQuery != "" {
		q = scanQuery(r.URL.RawQuery)
	}

	// 1. client id only.
	if src&FromAPIKeyHeader != 0 {
		if v := first(h, hdrAPIKey); v != "" {
			return Credential{Kind: ClientIDOnly, ClientID: v, In: InHeader, Name: hdrAPIKey}
		}
	}
	if v, ok := queryValue(q.apiKey, url.QueryUnescape); ok {
		return Credential{Kind: ClientIDOnly, ClientID: v, In: InQuery, Name: qAPIKey}
	}

	// 2. client id and secret headers; both are needed.
	if src&FromClientHeaders != 0 {
		id, secret := first(h, hdrClientID), first(h, hdrClientSecret)
		if id != "" && secret != "" {
			return Credential{Kind: ClientHeaders, ClientID: id, Secret: secret, In: InHeader, Name: hdrClientID}
		}
	}

	// Authorization carries either a JWT or Basic; read it once.
	var scheme, payload string
	if src&FromAuthorization != 0 {
		scheme, payload = splitAuthorization(first(h, hdrAuthorization))
	}

	// 3. JWT.
	if payload != "" && strings.EqualFold(scheme, "bearer") {
		return Credential{Kind: JWT, Token: payload, In: InHeader, Name: hdrAuthorization}
	}
	if src&FromOtoroshiAuth != 0 {
		if v := strings.TrimSpace(first(h, hdrOtoToken)); v != "" {
			return Credential{Kind: JWT, Token: v, In: InHeader, Name: hdrOtoToken}
		}
	}
	if v, ok := queryValue(q.bearer, url.QueryUnescape); ok {
		return Credential{Kind: JWT, Token: v, In: InQuery, Name: qBearer}
	}
	if src&FromCookie != 0 {
		if v := findCookie(h["Cookie"], cookieToken); v != "" {
			return Credential{Kind: JWT, Token: v, In: InCookie, Name: cookieToken}
		}
	}

	// 4. Basic.
	if payload != "" && strings.EqualFold(scheme, "basic") {
		return basicCredential(payload, InHeader, hdrAuthorization)
	}
	if src&FromOtoroshiAuth != 0 {
		s, p := splitAuthorization(first(h, hdrOtoAuth))
		if p != "" && strings.EqualFold(s, "basic") {
			return basicCredential(p, InHeader, hdrOtoAuth)
		}
	}
	// '+' is a base64 character: a '+' left unescaped in the query is kept,
	// not turned into a space.
	if v, ok := queryValue(q.basic, url.PathUnescape); ok {
		return basicCredential(v, InQuery, qBasic)
	}
	return Credential{}
}

// first is Header.Get for a canonical name, without canonicalising it again.
func first(h http.Header, canonical string) string {
	if v := h[canonical]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// splitAuthorization splits "Scheme payload" at the first run of spaces.
func splitAuthorization(v string) (scheme, payload string) {
	scheme, payload, _ = strings.Cut(strings.TrimSpace(v), " ")
	return scheme, strings.TrimLeft(payload, " ")
}

func basicCredential(b64 string, in Location, name string) Credential {
	return Credential{Kind: Basic, In: in, Name: name, basic: b64}
}

// basicBuf is the stack buffer a Basic credential decodes into: room for
// the base64 of 192 bytes, more than a generated id and secret need.
type basicBuf struct {
	in  [256]byte
	out [192]byte
}

// decodeBasic decodes the base64 of "id:secret" into buf (allocating only
// when it does not fit); the secret is everything after the first colon.
// Padding is optional, since clients often drop it.
func decodeBasic(buf *basicBuf, b64 string) (id, secret []byte, ok bool) {
	enc := base64.StdEncoding
	if len(b64)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	var src, dst []byte
	if len(b64) <= len(buf.in) {
		src = buf.in[:copy(buf.in[:], b64)]
		dst = buf.out[:]
	} else {
		src = []byte(b64)
		dst = make([]byte, enc.DecodedLen(len(b64)))
	}
	n, err := enc.Decode(dst, src)
	if err != nil {
		return nil, nil, false
	}
	i := indexByte(dst[:n], ':')
	if i < 0 {
		return nil, nil, false
	}
	return dst[:i], dst[i+1 : n], true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// queryValues holds the raw (still escaped) first value of each query
// parameter that can carry a credential.
type queryValues struct {
	apiKey, bearer, basic string
}

func queryValue(raw string, unescape func(string) (string, error)) (string, bool) {
	if raw == "" {
		return "", false
	}
	if strings.IndexByte(raw, '%') < 0 && strings.IndexByte(raw, '+') < 0 {
		return raw, true
	}
	v, err := unescape(raw)
	if err != nil || v == "" {
		return "", false
	}
	return v, true
}

// scanQuery finds the credential parameters in one pass without building
// url.Values. Like url.ParseQuery, it skips pairs containing ';' and pairs
// whose name does not unescape; the first non-empty value of a name is the
// one used (absent if it does not unescape).
func scanQuery(raw string) queryValues {
	var q queryValues
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		name, value, _ := strings.Cut(pair, "=")
		if value == "" || strings.IndexByte(pair, ';') >= 0 {
			continue
		}
		switch queryName(name) {
		case qAPIKey:
			if q.apiKey == "" {
				q.apiKey = value
			}
		case qBearer:
			if q.bearer == "" {
				q.bearer = value
			}
		case qBasic:
			if q.basic == "" {
				q.basic = value
			}
		}
	}
	return q
}

// queryName unescapes a parameter name, allocating only when it is escaped.
func queryName(name string) string {
	if strings.IndexByte(name, '%') < 0 && strings.IndexByte(name, '+') < 0 {
		return name
	}
	n, err := url.QueryUnescape(name)
	if err != nil {
		return ""
	}
	return n
}

// findCookie returns the value of the first cookie called name across the
// Cookie header lines, with surrounding quotes removed.
func findCookie(lines []string, name string) string {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			n, v, ok := strings.Cut(part, "=")
			if !ok || trimSpace(n) != name {
				continue
			}
			v = trimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if v != "" {
				return v
			}
		}
	}
	return ""
}

// trimSpace trims the spaces and tabs that may surround cookie pairs.
func trimSpace(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// Strip removes the credential from r wherever it was found, so that the
// upstream never sees it: the header (both headers for ClientHeaders), every
// query parameter of that name (other parameters kept as sent), or every
// access_token cookie (other cookies kept).
func (c *Credential) Strip(r *http.Request) {
	switch c.In {
	case InHeader:
		r.Header.Del(c.Name)
		if c.Kind == ClientHeaders {
			r.Header.Del(hdrClientSecret)
		}
	case InQuery:
		if r.URL != nil {
			r.URL.RawQuery = removeQueryParam(r.URL.RawQuery, c.Name)
		}
	case InCookie:
		stripCookie(r.Header, c.Name)
	}
}

// removeQueryParam drops every pair whose unescaped name is name and keeps
// the other pairs byte for byte, in order.
func removeQueryParam(raw, name string) string {
	var b strings.Builder
	rest := raw
	for rest != "" {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		n, _, _ := strings.Cut(pair, "=")
		if queryName(n) == name || n == name {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pair)
	}
	return b.String()
}

// stripCookie removes every cookie called name from the Cookie header lines,
// dropping a line that ends up empty.
func stripCookie(h http.Header, name string) {
	lines := h["Cookie"]
	kept := make([]string, 0, len(lines))
	for _, line := range lines {
		var b strings.Builder
		for rest := line; rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			n, _, _ := strings.Cut(part, "=")
			if trimSpace(n) == name || trimSpace(part) == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(trimSpace(part))
		}
		if b.Len() > 0 {
			kept = append(kept, b.String())
		}
	}
	if len(kept) == 0 {
		h.Del("Cookie")
		return
	}
	h["Cookie"] = kept
}

// String describes the credential without its secret or token.
func (c Credential) String() string {
	if c.Kind == None {
		return "none"
	}
	return c.Kind.String() + " client_id=" + c.ClientID + " in " + c.In.String() + " " + c.Name
}

// GoString keeps %#v from printing the secret or token.
func (c Credential) GoString() string { return "auth.Credential{" + c.String() + "}" }

// LogValue logs the credential without its secret or token.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("kind", c.Kind.String()),
		slog.String("client_id", c.ClientID),
		slog.String("in", c.In.String()),
		slog.String("name", c.Name),
	)
}
