package auth

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"gatehouse/server/keys"
)

// now is the fixed clock of every test, in epoch ms.
const now int64 = 1_700_000_000_000

func nowSec(offset time.Duration) float64 {
	return float64(time.UnixMilli(now).Add(offset).Unix())
}

// longSecret has the length of a generated secret.
const longSecret = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01"

// testIndex holds one key per situation the tests need.
func testIndex() *keys.Index {
	ix := keys.NewIndex()
	for _, k := range []*keys.Key{
		{ClientID: "idonly", Secret: "s-idonly", Enabled: true, AllowClientIDOnly: true},
		{ClientID: "k1", Secret: "secret-1", Enabled: true},
		{ClientID: "k2", Secret: "sec:ret:2", Enabled: true},
		{ClientID: "plus", Secret: ">>>?>", Enabled: true},
		{ClientID: "off", Secret: "s-off", Enabled: false, AllowClientIDOnly: true},
		{ClientID: "old", Secret: "s-old", Enabled: true, ValidUntil: now - 1},
		{ClientID: "fresh", Secret: "s-fresh", Enabled: true, ValidUntil: now + 1},
		{ClientID: "long", Secret: longSecret, Enabled: true},
	} {
		ix.Put(k)
	}
	return ix
}

func sign(t testing.TB, m jwt.SigningMethod, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func hs256(t testing.TB, secret string, claims jwt.MapClaims) string {
	return sign(t, jwt.SigningMethodHS256, secret, claims)
}

// rawJWT builds a token from a literal header and claims and a junk signature,
// for algs that the library cannot sign with a shared secret.
func rawJWT(header, claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims)) + "." + enc.EncodeToString([]byte("not-a-signature"))
}

// unsignedNone is a genuine alg-none token, signed the way the library allows it.
func unsignedNone(clientID string) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"clientId": clientID}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		panic(err)
	}
	return s
}

func basic(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(id + ":" + secret))
}

// req builds a request to target with "Name: value" headers.
func req(target string, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://gw.test"+target, nil)
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		r.Header.Add(name, value)
	}
	return r
}

func TestExtractVerify(t *testing.T) {
	t.Parallel()
	ix := testIndex()
	good := hs256(t, "secret-1", jwt.MapClaims{"clientId": "k1"})
	plusB64 := basic("plus", ">>>?>")
	if !strings.Contains(plusB64, "+") {
		t.Fatalf("want a '+' in %q", plusB64)
	}

	tests := []struct {
		name   string
		r      *http.Request
		src    Sources
		kind   Kind
		in     Location
		at     string // header, query parameter or cookie name
		id     string
		result Result
	}{
		// Nothing, or nothing we recognise.
		{"nothing", req("/"), AllSources, None, 0, "", "", NoCredential},
		{"digest scheme", req("/", "Authorization: Digest abc"), AllSources, None, 0, "", "", NoCredential},
		{"empty bearer", req("/", "Authorization: Bearer "), AllSources, None, 0, "", "", NoCredential},
		{"empty query value", req("/?x-api-key=&bearer_auth="), AllSources, None, 0, "", "", NoCredential},
		{"client id without secret", req("/", "Otoroshi-Client-Id: k1"), AllSources, None, 0, "", "", NoCredential},

		// 1. x-api-key.
		{"x-api-key header", req("/", "X-Api-Key: idonly"), AllSources, ClientIDOnly, InHeader, "X-Api-Key", "idonly", OK},
		{"x-api-key query", req("/?x-api-key=idonly"), AllSources, ClientIDOnly, InQuery, "x-api-key", "idonly", OK},
		{"x-api-key escaped name", req("/?x%2Dapi%2Dkey=idonly"), AllSources, ClientIDOnly, InQuery, "x-api-key", "idonly", OK},
		{"x-api-key on key without allowClientIdOnly", req("/", "X-Api-Key: k1"), AllSources, ClientIDOnly, InHeader, "X-Api-Key", "k1", Bad},
		{"x-api-key unknown", req("/?x-api-key=nobody"), AllSources, ClientIDOnly, InQuery, "x-api-key", "nobody", Invalid},
		{"x-api-key disabled key", req("/", "X-Api-Key: off"), AllSources, ClientIDOnly, InHeader, "X-Api-Key", "off", Bad},

		// 2. client headers.
		{"client headers", req("/", "Otoroshi-Client-Id: k1", "Otoroshi-Client-Secret: secret-1"), AllSources, ClientHeaders, InHeader, "Otoroshi-Client-Id", "k1", OK},
		{"client headers wrong secret", req("/", "Otoroshi-Client-Id: k1", "Otoroshi-Client-Secret: secret-2"), AllSources, ClientHeaders, InHeader, "Otoroshi-Client-Id", "k1", Bad},
		{"client headers secret prefix", req("/", "Otoroshi-Client-Id: k1", "Otoroshi-Client-Secret: secret-"), AllSources, ClientHeaders, InHeader, "Otoroshi-Client-Id", "k1", Bad},
		{"client headers unknown id", req("/", "Otoroshi-Client-Id: nobody", "Otoroshi-Client-Secret: secret-1"), AllSources, ClientHeaders, InHeader, "Otoroshi-Client-Id", "nobody", Invalid},
		{"client headers disabled key", req("/", "Otoroshi-Client-Id: off", "Otoroshi-Client-Secret: s-off"), AllSources, ClientHeaders, InHeader, "Otoroshi-Client-Id", "off", Bad},
		{"client headers validUntil passed", req("/", "Otoroshi-Client-Id: old", "Otoroshi-Client-Secret: s-old"), AllSources, ClientHeaders, InHeader, "Otoroshi-Client-Id", "old", Bad},
		{"client headers validUntil ahead", req("/", "Otoroshi-Client-Id: fresh", "Otoroshi-Client-Secret: s-fresh"), AllSources, ClientHeaders, InHeader, "Otoroshi-Client-Id", "fresh", OK},

		// 3. JWT, every place.
		{"bearer", req("/", "Authorization: Bearer "+good), AllSources, JWT, InHeader, "Authorization", "k1", OK},
		{"bearer lower case", req("/", "Authorization: bearer "+good), AllSources, JWT, InHeader, "Authorization", "k1", OK},
		{"otoroshi-token", req("/", "Otoroshi-Token: "+good), AllSources, JWT, InHeader, "Otoroshi-Token", "k1", OK},
		{"bearer_auth query", req("/?a=1&bearer_auth=" + good), AllSources, JWT, InQuery, "bearer_auth", "k1", OK},
		{"access_token cookie", req("/", "Cookie: a=1; access_token="+good+"; b=2"), AllSources, JWT, InCookie, "access_token", "k1", OK},
		{"access_token quoted cookie", req("/", `Cookie: access_token="`+good+`"`), AllSources, JWT, InCookie, "access_token", "k1", OK},

		// 3. JWT, algorithms.
		{"HS384", req("/", "Authorization: Bearer "+sign(t, jwt.SigningMethodHS384, "secret-1", jwt.MapClaims{"clientId": "k1"})), AllSources, JWT, InHeader, "Authorization", "k1", OK},
		{"HS512", req("/", "Authorization: Bearer "+sign(t, jwt.SigningMethodHS512, "secret-1", jwt.MapClaims{"clientId": "k1"})), AllSources, JWT, InHeader, "Authorization", "k1", OK},
		{"alg none", req("/", "Authorization: Bearer "+unsignedNone("k1")), AllSources, JWT, InHeader, "Authorization", "k1", Bad},
		{"alg none unknown id", req("/", "Authorization: Bearer "+unsignedNone("nobody")), AllSources, JWT, InHeader, "Authorization", "nobody", Invalid},
		{"alg RS256", req("/", "Authorization: Bearer "+rawJWT(`{"alg":"RS256","typ":"JWT"}`, `{"clientId":"k1"}`)), AllSources, JWT, InHeader, "Authorization", "k1", Bad},
		{"alg unknown", req("/", "Authorization: Bearer "+rawJWT(`{"alg":"hs256"}`, `{"clientId":"k1"}`)), AllSources, JWT, InHeader, "Authorization", "k1", Bad},
		{"alg missing", req("/", "Authorization: Bearer "+rawJWT(`{"typ":"JWT"}`, `{"clientId":"k1"}`)), AllSources, JWT, InHeader, "Authorization", "k1", Bad},
		{"wrong secret", req("/", "Authorization: Bearer "+hs256(t, "secret-2", jwt.MapClaims{"clientId": "k1"})), AllSources, JWT, InHeader, "Authorization", "k1", Bad},
		{"wrong secret unknown id", req("/", "Authorization: Bearer "+hs256(t, "secret-2", jwt.MapClaims{"clientId": "nobody"})), AllSources, JWT, InHeader, "Authorization", "nobody", Invalid},
		{"signed with another key's secret", req("/", "Authorization: Bearer "+hs256(t, "sec:ret:2", jwt.MapClaims{"clientId": "k1"})), AllSources, JWT, InHeader, "Authorization", "k1", Bad},
		{"disabled key jwt", req("/", "Authorization: Bearer "+hs256(t, "s-off", jwt.MapClaims{"clientId": "off"})), AllSources, JWT, InHeader, "Authorization", "off", Bad},
		{"validUntil passed jwt", req("/", "Authorization: Bearer "+hs256(t, "s-old", jwt.MapClaims{"clientId": "old"})), AllSources, JWT, InHeader, "Authorization", "old", Bad},

		// 3. JWT, time claims with 10 s of leeway.
		{"expired", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"clientId": "k1", "exp": nowSec(-11 * time.Second)})), AllSources, JWT, InHeader, "Authorization", "k1", Bad},
		{"expired within leeway", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"clientId": "k1", "exp": nowSec(-9 * time.Second)})), AllSources, JWT, InHeader, "Authorization", "k1", OK},
		{"exp ahead", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"clientId": "k1", "exp": nowSec(time.Hour)})), AllSources, JWT, InHeader, "Authorization", "k1", OK},
		{"exp not a number", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"clientId": "k1", "exp": "tomorrow"})), AllSources, JWT, InHeader, "Authorization", "k1", Bad},
		{"not yet valid", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"clientId": "k1", "nbf": nowSec(11 * time.Second)})), AllSources, JWT, InHeader, "Authorization", "k1", Bad},
		{"nbf within leeway", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"clientId": "k1", "nbf": nowSec(9 * time.Second)})), AllSources, JWT, InHeader, "Authorization", "k1", OK},
		{"issued in the future", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"clientId": "k1", "iat": nowSec(11 * time.Second)})), AllSources, JWT, InHeader, "Authorization", "k1", Bad},
		{"iat within leeway", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"clientId": "k1", "iat": nowSec(9 * time.Second)})), AllSources, JWT, InHeader, "Authorization", "k1", OK},
		{"expired unknown id", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"clientId": "nobody", "exp": nowSec(-time.Hour)})), AllSources, JWT, InHeader, "Authorization", "nobody", Invalid},

		// 3. JWT, client id claims.
		{"claim client_id", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"client_id": "k1"})), AllSources, JWT, InHeader, "Authorization", "k1", OK},
		{"claim cid", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"cid": "k1"})), AllSources, JWT, InHeader, "Authorization", "k1", OK},
		{"claim iss", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"iss": "k1", "sub": "someone"})), AllSources, JWT, InHeader, "Authorization", "k1", OK},
		{"clientId beats iss", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"clientId": "nobody", "iss": "k1"})), AllSources, JWT, InHeader, "Authorization", "nobody", Invalid},
		{"client_id beats cid", req("/", "Authorization: Bearer "+hs256(t, "sec:ret:2", jwt.MapClaims{"client_id": "k2", "cid": "k1"})), AllSources, JWT, InHeader, "Authorization", "k2", OK},
		{"no client id claim", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"sub": "k1"})), AllSources, JWT, InHeader, "Authorization", "", Invalid},
		{"client id claim not a string", req("/", "Authorization: Bearer "+hs256(t, "secret-1", jwt.MapClaims{"clientId": 1, "iss": "k1"})), AllSources, JWT, InHeader, "Authorization", "", Invalid},
		{"not a jwt", req("/", "Authorization: Bearer abc"), AllSources, JWT, InHeader, "Authorization", "", Invalid},
		{"jwt segments not base64", req("/", "Authorization: Bearer a!.b!.c!"), AllSources, JWT, InHeader, "Authorization", "", Invalid},
		{"jwt claims not json", req("/", "Authorization: Bearer "+rawJWT(`{"alg":"HS256"}`, `clientId=k1`)), AllSources, JWT, InHeader, "Authorization", "", Invalid},

		// 4. Basic.
		{"basic", req("/", "Authorization: Basic "+basic("k1", "secret-1")), AllSources, Basic, InHeader, "Authorization", "k1", OK},
		{"basic upper case scheme", req("/", "Authorization: BASIC "+basic("k1", "secret-1")), AllSources, Basic, InHeader, "Authorization", "k1", OK},
		{"basic colon in secret", req("/", "Authorization: Basic "+basic("k2", "sec:ret:2")), AllSources, Basic, InHeader, "Authorization", "k2", OK},
		{"basic unpadded", req("/", "Authorization: Basic "+strings.TrimRight(basic("k1", "secret-1"), "=")), AllSources, Basic, InHeader, "Authorization", "k1", OK},
		{"otoroshi-authorization", req("/", "Otoroshi-Authorization: Basic "+basic("k1", "secret-1")), AllSources, Basic, InHeader, "Otoroshi-Authorization", "k1", OK},
		{"basic_auth query", req("/?basic_auth=" + basic("k1", "secret-1")), AllSources, Basic, InQuery, "basic_auth", "k1", OK},
		{"basic_auth query keeps +", req("/?basic_auth=" + plusB64), AllSources, Basic, InQuery, "basic_auth", "plus", OK},
		{"basic_auth query escaped", req("/?basic_auth=" + strings.ReplaceAll(plusB64, "+", "%2B")), AllSources, Basic, InQuery, "basic_auth", "plus", OK},
		{"basic wrong secret", req("/", "Authorization: Basic "+basic("k1", "secret-2")), AllSources, Basic, InHeader, "Authorization", "k1", Bad},
		{"basic unknown id", req("/", "Authorization: Basic "+basic("nobody", "secret-1")), AllSources, Basic, InHeader, "Authorization", "nobody", Invalid},
		{"basic bad base64", req("/", "Authorization: Basic !!!"), AllSources, Basic, InHeader, "Authorization", "", Invalid},
		{"basic no colon", req("/", "Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte("k1secret-1"))), AllSources, Basic, InHeader, "Authorization", "", Invalid},
		{"basic disabled key", req("/", "Authorization: Basic "+basic("off", "s-off")), AllSources, Basic, InHeader, "Authorization", "off", Bad},
		{"basic validUntil passed", req("/", "Authorization: Basic "+basic("old", "s-old")), AllSources, Basic, InHeader, "Authorization", "old", Bad},

		// Precedence: the first way present wins, even when it fails.
		{"x-api-key header beats query", req("/?x-api-key=k1", "X-Api-Key: idonly"), AllSources, ClientIDOnly, InHeader, "X-Api-Key", "idonly", OK},
		{"x-api-key beats client headers", req("/", "X-Api-Key: nobody", "Otoroshi-Client-Id: k1", "Otoroshi-Client-Secret: secret-1"), AllSources, ClientIDOnly, InHeader, "X-Api-Key", "nobody", Invalid},
		{"x-api-key query beats client headers", req("/?x-api-key=idonly", "Otoroshi-Client-Id: k1", "Otoroshi-Client-Secret: nope"), AllSources, ClientIDOnly, InQuery, "x-api-key", "idonly", OK},
		{"client headers beat jwt", req("/", "Otoroshi-Client-Id: k1", "Otoroshi-Client-Secret: nope", "Authorization: Bearer "+good), AllSources, ClientHeaders, InHeader, "Otoroshi-Client-Id", "k1", Bad},
		{"jwt beats basic", req("/?basic_auth="+basic("k1", "secret-1"), "Otoroshi-Token: garbage"), AllSources, JWT, InHeader, "Otoroshi-Token", "", Invalid},
		{"bearer beats otoroshi-token", req("/", "Otoroshi-Token: garbage", "Authorization: Bearer "+good), AllSources, JWT, InHeader, "Authorization", "k1", OK},
		{"otoroshi-token beats bearer_auth", req("/?bearer_auth=garbage", "Otoroshi-Token: "+good), AllSources, JWT, InHeader, "Otoroshi-Token", "k1", OK},
		{"bearer_auth beats cookie", req("/?bearer_auth="+good, "Cookie: access_token=garbage"), AllSources, JWT, InQuery, "bearer_auth", "k1", OK},
		{"cookie beats basic", req("/", "Cookie: access_token="+good, "Otoroshi-Authorization: Basic !!!"), AllSources, JWT, InCookie, "access_token", "k1", OK},
		{"authorization basic beats otoroshi-authorization", req("/", "Otoroshi-Authorization: Basic !!!", "Authorization: Basic "+basic("k1", "secret-1")), AllSources, Basic, InHeader, "Authorization", "k1", OK},
		{"otoroshi-authorization beats basic_auth", req("/?basic_auth=!!!", "Otoroshi-Authorization: Basic "+basic("k1", "secret-1")), AllSources, Basic, InHeader, "Otoroshi-Authorization", "k1", OK},

		// HeadersOnly: Authorization and the client headers, nothing else.
		{"headers only: bearer", req("/", "Authorization: Bearer "+good), HeadersOnly, JWT, InHeader, "Authorization", "k1", OK},
		{"headers only: basic", req("/", "Authorization: Basic "+basic("k1", "secret-1")), HeadersOnly, Basic, InHeader, "Authorization", "k1", OK},
		{"headers only: client headers", req("/", "Otoroshi-Client-Id: k1", "Otoroshi-Client-Secret: secret-1"), HeadersOnly, ClientHeaders, InHeader, "Otoroshi-Client-Id", "k1", OK},
		{"headers only: no x-api-key header", req("/", "X-Api-Key: idonly"), HeadersOnly, None, 0, "", "", NoCredential},
		{"headers only: no query", req("/?x-api-key=idonly&bearer_auth=" + good + "&basic_auth=" + basic("k1", "secret-1")), HeadersOnly, None, 0, "", "", NoCredential},
		{"headers only: no cookie", req("/", "Cookie: access_token="+good), HeadersOnly, None, 0, "", "", NoCredential},
		{"headers only: no otoroshi-token", req("/", "Otoroshi-Token: "+good), HeadersOnly, None, 0, "", "", NoCredential},
		{"headers only: no otoroshi-authorization", req("/", "Otoroshi-Authorization: Basic "+basic("k1", "secret-1")), HeadersOnly, None, 0, "", "", NoCredential},
		{"headers only: x-api-key ignored, basic used", req("/?x-api-key=idonly", "X-Api-Key: idonly", "Authorization: Basic "+basic("k1", "secret-1")), HeadersOnly, Basic, InHeader, "Authorization", "k1", OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Extract(tc.r, tc.src)
			if c.Kind != tc.kind || c.In != tc.in || c.Name != tc.at {
				t.Errorf("Extract = %v %v %q, want %v %v %q", c.Kind, c.In, c.Name, tc.kind, tc.in, tc.at)
			}
			k, res := Verify(&c, ix, nil, now)
			if res != tc.result {
				t.Errorf("Verify = %v (%q), want %v (%q)", res, res.Message(), tc.result, tc.result.Message())
			}
			if c.ClientID != tc.id {
				t.Errorf("ClientID = %q, want %q", c.ClientID, tc.id)
			}
			if (k != nil) != (res == OK) {
				t.Errorf("key = %v with result %v", k, res)
			}
			if k != nil && k.ClientID != c.ClientID {
				t.Errorf("key %q for credential %q", k.ClientID, c.ClientID)
			}
		})
	}
}

func TestResultMessage(t *testing.T) {
	t.Parallel()
	for res, want := range map[Result]string{OK: "", NoCredential: "no apikey", Invalid: "invalid apikey", Bad: "bad apikey"} {
		if got := res.Message(); got != want {
			t.Errorf("%d.Message() = %q, want %q", res, got, want)
		}
	}
}

func TestStrip(t *testing.T) {
	t.Parallel()
	ix := testIndex()
	good := hs256(t, "secret-1", jwt.MapClaims{"clientId": "k1"})
	b64 := basic("k1", "secret-1")

	tests := []struct {
		name      string
		r         *http.Request
		wantQuery string
		header    http.Header // headers expected after Strip (only these names are checked)
		gone      []string    // header names that must be absent
	}{
		{
			name:      "x-api-key query, other parameters kept as sent",
			r:         req("/p?a=1&x-api-key=idonly&b=%20x+y&x-api-key=again&c"),
			wantQuery: "a=1&b=%20x+y&c",
		},
		{
			name:      "escaped parameter name",
			r:         req("/p?x%2Dapi%2Dkey=idonly&z=9"),
			wantQuery: "z=9",
		},
		{
			name:      "bearer_auth query",
			r:         req("/p?bearer_auth=" + good + "&basic_auth=" + b64),
			wantQuery: "basic_auth=" + b64, // only the credential used goes
		},
		{
			name:      "basic_auth query, only parameter",
			r:         req("/p?basic_auth=" + b64),
			wantQuery: "",
		},
		{
			name:   "cookie, other cookies kept",
			r:      req("/p", "Cookie: a=1; access_token="+good+"; b=2"),
			header: http.Header{"Cookie": {"a=1; b=2"}},
		},
		{
			name:   "cookie alone on its line",
			r:      req("/p", "Cookie: access_token="+good, "Cookie: theme=dark"),
			header: http.Header{"Cookie": {"theme=dark"}},
		},
		{
			name: "only cookie",
			r:    req("/p", "Cookie: access_token="+good),
			gone: []string{"Cookie"},
		},
		{
			name:   "authorization bearer",
			r:      req("/p", "Authorization: Bearer "+good, "Otoroshi-Authorization: Basic "+b64, "X-Other: 1"),
			header: http.Header{"Otoroshi-Authorization": {"Basic " + b64}, "X-Other": {"1"}},
			gone:   []string{"Authorization"},
		},
		{
			name:   "otoroshi-token",
			r:      req("/p", "Otoroshi-Token: "+good, "X-Other: 1"),
			header: http.Header{"X-Other": {"1"}},
			gone:   []string{"Otoroshi-Token"},
		},
		{
			name: "authorization basic",
			r:    req("/p", "Authorization: Basic "+b64),
			gone: []string{"Authorization"},
		},
		{
			name: "otoroshi-authorization",
			r:    req("/p", "Otoroshi-Authorization: Basic "+b64),
			gone: []string{"Otoroshi-Authorization"},
		},
		{
			name:   "client headers",
			r:      req("/p", "Otoroshi-Client-Id: k1", "Otoroshi-Client-Secret: secret-1", "X-Other: 1"),
			header: http.Header{"X-Other": {"1"}},
			gone:   []string{"Otoroshi-Client-Id", "Otoroshi-Client-Secret"},
		},
		{
			name: "x-api-key header",
			r:    req("/p", "X-Api-Key: idonly"),
			gone: []string{"X-Api-Key"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Extract(tc.r, AllSources)
			if _, res := Verify(&c, ix, nil, now); res != OK {
				t.Fatalf("Verify = %v, want OK", res)
			}
			before := tc.r.URL.RawQuery
			c.Strip(tc.r)
			switch got := tc.r.URL.RawQuery; {
			case c.In == InQuery && got != tc.wantQuery:
				t.Errorf("query = %q, want %q", got, tc.wantQuery)
			case c.In != InQuery && got != before:
				t.Errorf("query changed from %q to %q", before, got)
			}
			for name, want := range tc.header {
				if got := tc.r.Header.Values(name); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("header %s = %q, want %q", name, got, want)
				}
			}
			for _, name := range tc.gone {
				if v, ok := tc.r.Header[name]; ok {
					t.Errorf("header %s still there: %q", name, v)
				}
			}
			// Stripped means gone: the same way of presenting finds nothing.
			again := Extract(tc.r, AllSources)
			if again.Kind == c.Kind && again.In == c.In && again.Name == c.Name {
				t.Errorf("credential still found after Strip: %v", again)
			}
		})
	}
}

func TestCredentialNeverPrintsSecrets(t *testing.T) {
	t.Parallel()
	good := hs256(t, "secret-1", jwt.MapClaims{"clientId": "k1"})
	for _, r := range []*http.Request{
		req("/", "Authorization: Bearer "+good),
		req("/", "Authorization: Basic "+basic("k1", "secret-1")),
		req("/", "Otoroshi-Client-Id: k1", "Otoroshi-Client-Secret: secret-1"),
	} {
		c := Extract(r, AllSources)
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("auth", "cred", c)
		out := fmt.Sprintf("%v %+v %#v %s %s", c, c, c, &c, buf.String())
		if strings.Contains(out, "secret-1") || strings.Contains(out, good) {
			t.Errorf("secret printed: %s", out)
		}
		if !strings.Contains(out, c.Kind.String()) {
			t.Errorf("kind missing from %s", out)
		}
	}
}

// TestJWTClockPerCall checks that verifiers reused across goroutines each use
// their own call's clock: the same token is valid before exp and refused after.
func TestJWTClockPerCall(t *testing.T) {
	t.Parallel()
	ix := testIndex()
	tok := hs256(t, "secret-1", jwt.MapClaims{"clientId": "k1", "exp": nowSec(0)})
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				at, want := now, OK
				if (g+i)%2 == 1 {
					at, want = now+11_000, Bad
				}
				c := Credential{Kind: JWT, Token: tok}
				if _, res := Verify(&c, ix, nil, at); res != want {
					errs <- fmt.Sprintf("at %d: %v, want %v", at, res, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestAllocations(t *testing.T) {
	ix := testIndex()
	headerReq := req("/", "Otoroshi-Client-Id: k1", "Otoroshi-Client-Secret: secret-1")
	basicReq := req("/", "Authorization: Basic "+basic("long", longSecret))
	for _, tc := range []struct {
		name string
		r    *http.Request
		max  float64
	}{
		{"client headers", headerReq, 0},
		{"basic", basicReq, 0}, // decoded on the stack
	} {
		got := testing.AllocsPerRun(100, func() {
			c := Extract(tc.r, AllSources)
			if _, res := Verify(&c, ix, nil, now); res != OK {
				t.Fatalf("Verify = %v", res)
			}
		})
		if got > tc.max {
			t.Errorf("%s: %v allocations per Extract+Verify, want at most %v", tc.name, got, tc.max)
		}
	}
}
