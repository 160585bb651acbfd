package auth

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func benchVerify(b *testing.B, r *http.Request) {
	ix := testIndex()
	b.ReportAllocs()
	for b.Loop() {
		c := Extract(r, AllSources)
		if _, res := Verify(&c, ix, nil, now); res != OK {
			b.Fatalf("Verify = %v", res)
		}
	}
}

// BenchmarkVerifyBasic is Extract + Verify of a Basic credential whose
// secret has the 64 characters the gateway generates.
func BenchmarkVerifyBasic(b *testing.B) {
	benchVerify(b, req("/", "Authorization: Basic "+basic("long", longSecret)))
}

// BenchmarkVerifyJWTFirstUse verifies tokens never seen before: the full
// HMAC and parse, as on a client's first call with a token.
func BenchmarkVerifyJWTFirstUse(b *testing.B) {
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		tok := hs256(b, longSecret, jwt.MapClaims{"clientId": "long", "iat": nowSec(0), "exp": nowSec(time.Hour), "n": i})
		reqs[i] = req("/", "Authorization: Bearer "+tok)
	}
	ix := testIndex()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c := Extract(reqs[i], AllSources)
		if _, res := Verify(&c, ix, nil, now); res != OK {
			b.Fatal(res)
		}
	}
}

// BenchmarkVerifyJWT is Extract + Verify of an HS256 JWT with iat and exp,
// the same token on every call (answered from the verified-token cache).
func BenchmarkVerifyJWT(b *testing.B) {
	tok := hs256(b, longSecret, jwt.MapClaims{"clientId": "long", "iat": nowSec(0), "exp": nowSec(time.Hour)})
	benchVerify(b, req("/", "Authorization: Bearer "+tok))
}
