package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzExtract feeds arbitrary bytes into every place a credential can come
// from. Extract, Verify and Strip must not panic, a success must name a real
// key, and after Strip the same place must no longer yield the credential.
func FuzzExtract(f *testing.F) {
	f.Add("Bearer a.b.c", "", "", "", "", "", "", "", false)
	f.Add("", "", "", "idonly", "", "", "", "x-api-key=idonly", false)
	f.Add("Basic "+basic("k1", "secret-1"), "", "", "", "", "", "a=1; access_token=x", "basic_auth=%zz&x", true)
	ix := testIndex()
	f.Fuzz(func(t *testing.T, authz, otoToken, otoAuth, apiKey, clientID, clientSecret, cookie, rawQuery string, headersOnly bool) {
		r := &http.Request{Method: http.MethodGet, Header: http.Header{}, URL: &url.URL{Path: "/", RawQuery: rawQuery}}
		for name, v := range map[string]string{
			"Authorization": authz, "Otoroshi-Token": otoToken, "Otoroshi-Authorization": otoAuth,
			"X-Api-Key": apiKey, "Otoroshi-Client-Id": clientID, "Otoroshi-Client-Secret": clientSecret, "Cookie": cookie,
		} {
			if v != "" {
				r.Header[name] = []string{v}
			}
		}
		src := AllSources
		if headersOnly {
			src = HeadersOnly
		}
		c := Extract(r, src)
		if headersOnly && (c.In == InQuery || c.In == InCookie || c.Name == "X-Api-Key" || c.Name == "Otoroshi-Token" || c.Name == "Otoroshi-Authorization") {
			t.Fatalf("HeadersOnly found %v", c)
		}
		k, res := Verify(&c, ix, nil, now)
		if res == OK && (k == nil || k.ClientID != c.ClientID || !k.Usable(now)) {
			t.Fatalf("OK with key %v for %v", k, c)
		}
		if res != OK && k != nil {
			t.Fatalf("%v with key %v", res, k)
		}
		if (c.Kind == None) != (res == NoCredential) {
			t.Fatalf("kind %v with result %v", c.Kind, res)
		}
		c.Strip(r)
		if again := Extract(r, src); again.Kind != None && again.In == c.In && again.Name == c.Name {
			t.Fatalf("still found after Strip: %v, was %v", again, c)
		}
	})
}

// FuzzBasic checks the Basic decoder on arbitrary text: it never panics, and
// what it returns is exactly the decoded id, a colon, and the rest.
func FuzzBasic(f *testing.F) {
	f.Add(basic("k1", "secret-1"))
	f.Add(basic("k2", "sec:ret:2"))
	f.Add("!!!")
	ix := testIndex()
	f.Fuzz(func(t *testing.T, b64 string) {
		var buf basicBuf
		idB, secretB, ok := decodeBasic(&buf, b64)
		id, secret := string(idB), string(secretB)
		if ok {
			if strings.Contains(id, ":") {
				t.Fatalf("id %q holds a colon", id)
			}
			raw, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				raw, err = base64.RawStdEncoding.DecodeString(b64)
			}
			if err != nil || string(raw) != id+":"+secret {
				t.Fatalf("decodeBasic(%q) = %q, %q; std decoding gives %q, %v", b64, id, secret, raw, err)
			}
		}
		r := &http.Request{Header: http.Header{"Authorization": {"Basic " + b64}}, URL: &url.URL{}}
		c := Extract(r, AllSources)
		k, res := Verify(&c, ix, nil, now)
		if res == OK && (k == nil || !ok || id != k.ClientID || secret != k.Secret || c.ClientID != id || c.Secret != secret) {
			t.Fatalf("OK for %q without the key's id and secret", b64)
		}
	})
}

// FuzzJWT verifies arbitrary tokens. A token is accepted only when an HMAC
// of its first two segments under the named key's secret, computed here
// independently of the jwt library, equals its signature.
func FuzzJWT(f *testing.F) {
	f.Add(hs256(f, "secret-1", jwt.MapClaims{"clientId": "k1"}))
	f.Add(unsignedNone("k1"))
	f.Add("a.b.c")
	ix := testIndex()
	f.Fuzz(func(t *testing.T, token string) {
		c := Credential{Kind: JWT, Token: token}
		k, res := Verify(&c, ix, nil, now)
		if res != OK {
			return
		}
		if k == nil || k.ClientID != c.ClientID {
			t.Fatalf("OK with key %v for %q", k, c.ClientID)
		}
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %q with %d segments", token, len(parts))
		}
		var header map[string]any // as the library reads it: "alg" exactly
		hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
		if err := json.Unmarshal(hb, &header); err != nil {
			t.Fatalf("accepted a header that does not decode: %q", hb)
		}
		var h func() hash.Hash
		switch header["alg"] {
		case "HS256":
			h = sha256.New
		case "HS384":
			h = sha512.New384
		case "HS512":
			h = sha512.New
		default:
			t.Fatalf("accepted alg %v", header["alg"])
		}
		mac := hmac.New(h, []byte(k.Secret))
		mac.Write([]byte(parts[0] + "." + parts[1]))
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
			t.Fatalf("accepted %q without a valid signature", token)
		}
	})
}
