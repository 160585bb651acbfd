package auth

import (
	"crypto/subtle"
	"errors"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"gatehouse/server/keys"
)

// Result is the outcome of Verify.
type Result uint8

const (
	OK           Result = iota
	NoCredential        // 401 "no apikey"
	Invalid             // 401 "invalid apikey": unknown client id, malformed Basic or JWT
	Bad                 // 401 "bad apikey": wrong secret, bad JWT, disabled or expired key
)

var messages = [...]string{"", "no apikey", "invalid apikey", "bad apikey"}

// Message is the Otoroshi-Error-Msg of a refusal (contract section 5); ""
// for OK.
func (r Result) Message() string {
	if int(r) < len(messages) {
		return messages[r]
	}
	return "bad apikey"
}

// jwtLeeway is the clock skew tolerated on exp, nbf and iat.
const jwtLeeway = 10 * time.Second

// clientIDClaims are read in this order; the first present one is the client id.
var clientIDClaims = [...]string{"clientId", "client_id", "cid", "iss"}

// hmacMethods are the only accepted JWT algorithms: the secret is shared.
var hmacMethods = []string{"HS256", "HS384", "HS512"}

// Verify checks c against the index at nowMs (epoch ms). The client id is
// looked up first: unknown is Invalid whatever the rest says. Then the secret
// (in constant time) or the JWT signature and time claims, then that the key
// is usable; a failure there is Bad. For a JWT it fills in c.ClientID. A
// secret or signature that the current secret does not verify is tried
// against the key's previous secret in prev (nil: none), and c.PreviousUntil
// says so.
func Verify(c *Credential, ix *keys.Index, prev *Previous, nowMs int64) (*keys.Key, Result) {
	switch c.Kind {
	case None:
		return nil, NoCredential
	case JWT:
		return verifyJWT(c, ix, prev, nowMs)
	case Basic:
		return verifyBasic(c, ix, prev, nowMs)
	case ClientIDOnly, ClientHeaders:
	default:
		return nil, Invalid
	}
	k, ok := ix.Get(c.ClientID)
	if !ok {
		return nil, Invalid
	}
	if c.Kind == ClientIDOnly {
		if !k.AllowClientIDOnly {
			return nil, Bad
		}
	} else if _, ok := matchSecret(c, k, c.Secret, prev, nowMs); !ok {
		return nil, Bad
	}
	if !k.Usable(nowMs) {
		return nil, Bad
	}
	return k, OK
}

// verifyBasic decodes the credential on the stack, so that a known client
// id costs no allocation: c.ClientID and c.Secret become the key's own
// strings. Only an unknown id is copied out, for c.ClientID.
func verifyBasic(c *Credential, ix *keys.Index, prev *Previous, nowMs int64) (*keys.Key, Result) {
	var buf basicBuf
	id, secret, ok := decodeBasic(&buf, c.basic)
	if !ok {
		return nil, Invalid
	}
	k, ok := ix.Get(string(id)) // a lookup: the string stays on the stack
	if !ok {
		c.ClientID = string(id)
		return nil, Invalid
	}
	c.ClientID = k.ClientID
	if c.Secret, ok = matchSecret(c, k, secret, prev, nowMs); !ok {
		return nil, Bad
	}
	if !k.Usable(nowMs) {
		return nil, Bad
	}
	return k, OK
}

// matchSecret compares secret with k's secret, then with its previous one
// (setting c.PreviousUntil when that one matches), and returns the secret
// that matched.
func matchSecret[S string | []byte](c *Credential, k *keys.Key, secret S, prev *Previous, nowMs int64) (string, bool) {
	if equalSecret(secret, k.Secret) {
		return k.Secret, true
	}
	old, until, ok := prev.get(k.ClientID, nowMs)
	if !ok || !equalSecret(secret, old) {
		return "", false
	}
	c.PreviousUntil = until
	return old, true
}

// equalSecret compares in constant time for equal lengths, like
// subtle.ConstantTimeCompare, without copying either to a byte slice.
func equalSecret[S string | []byte](a S, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var v byte
	for i := 0; i < len(a); i++ {
		v |= a[i] ^ b[i]
	}
	return subtle.ConstantTimeByteEq(v, 0) == 1
}

// jwtVerifier is one reusable parser whose clock is set per call; pooled
// because a parser's options (the clock among them) are fixed at creation.
type jwtVerifier struct {
	now    time.Time
	parser *jwt.Parser
	claims jwt.MapClaims
	ix     *keys.Index
	key    *keys.Key
	keyFn  jwt.Keyfunc
	// previous is the secret a second parse verifies with, when the current
	// one did not verify the signature.
	previous   []byte
	previousFn jwt.Keyfunc
}

var errUnknownClient = errors.New("unknown client id")

var verifiers = sync.Pool{New: func() any {
	v := &jwtVerifier{claims: jwt.MapClaims{}}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(hmacMethods),
		jwt.WithLeeway(jwtLeeway),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return v.now }),
	)
	v.keyFn = v.lookup
	v.previousFn = func(*jwt.Token) (any, error) { return v.previous, nil }
	return v
}}

// lookup is the parser's key function: it runs after the header and claims
// are decoded and the alg is accepted, and before the signature is checked,
// so the key's own secret verifies the token.
func (v *jwtVerifier) lookup(*jwt.Token) (any, error) {
	id, ok := clientIDOf(v.claims)
	if !ok {
		return nil, errUnknownClient
	}
	k, ok := v.ix.Get(id)
	if !ok {
		return nil, errUnknownClient
	}
	v.key = k
	return []byte(k.Secret), nil
}

func verifyJWT(c *Credential, ix *keys.Index, prev *Previous, nowMs int64) (*keys.Key, Result) {
	if k, id, ok := verifiedJWTs.get(c.Token, ix, nowMs); ok {
		if !k.Usable(nowMs) {
			return nil, Bad
		}
		c.ClientID = id
		return k, OK
	}
	v := verifiers.Get().(*jwtVerifier)
	defer func() {
		if len(v.claims) > 32 {
			v.claims = jwt.MapClaims{} // do not keep a huge map in the pool
		} else {
			clear(v.claims)
		}
		v.ix, v.key, v.previous = nil, nil, nil
		verifiers.Put(v)
	}()
	v.now, v.ix = time.UnixMilli(nowMs), ix

	// One verified parse. When it fails before the key function ran (alg
	// refused or unknown), the claims are decoded all the same and the client
	// id is looked up from them, so that an unknown id is Invalid first.
	_, err := v.parser.ParseWithClaims(c.Token, v.claims, v.keyFn)
	if err != nil && errors.Is(err, jwt.ErrTokenMalformed) {
		return nil, Invalid
	}
	id, ok := clientIDOf(v.claims)
	if !ok {
		return nil, Invalid
	}
	c.ClientID = id
	k := v.key
	if k == nil {
		if k, ok = ix.Get(id); !ok {
			return nil, Invalid
		}
	}
	if err != nil && errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		// Signed with the secret a rotation replaced, still accepted? Not
		// cached: the cache cannot tell when that secret stops working.
		if old, until, ok := prev.get(id, nowMs); ok {
			clear(v.claims)
			v.previous = []byte(old)
			if _, err2 := v.parser.ParseWithClaims(c.Token, v.claims, v.previousFn); err2 == nil && k.Usable(nowMs) {
				c.PreviousUntil = until
				return k, OK
			}
		}
		return nil, Bad
	}
	if err != nil || !k.Usable(nowMs) {
		return nil, Bad
	}
	verifiedJWTs.put(c.Token, k, id, v.claims)
	return k, OK
}

// clientIDOf returns the first present client-id claim; a present claim that
// is not a non-empty string names no key.
func clientIDOf(claims jwt.MapClaims) (string, bool) {
	for _, name := range clientIDClaims {
		if v, present := claims[name]; present {
			s, ok := v.(string)
			return s, ok && s != ""
		}
	}
	return "", false
}
