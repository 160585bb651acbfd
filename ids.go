package gatehouse

import "crypto/rand"

const (
	lowerDigits = "abcdefghijklmnopqrstuvwxyz0123456789"
	alnum       = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// randomString draws n characters of alphabet from crypto/rand without
// modulo bias (rejection sampling).
func randomString(n int, alphabet string) string {
	out := make([]byte, 0, n)
	limit := 256 - 256%len(alphabet)
	buf := make([]byte, n+n/2+8)
	for len(out) < n {
		rand.Read(buf) // never fails (crypto/rand panics on failure since Go 1.24)
		for _, b := range buf {
			if int(b) < limit {
				out = append(out, alphabet[int(b)%len(alphabet)])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out)
}

// NewID returns a fresh entity id: 16 characters of a-z0-9.
func NewID() string { return randomString(16, lowerDigits) }

// NewClientID returns a fresh API key client id: 16 characters of a-z0-9.
func NewClientID() string { return randomString(16, lowerDigits) }

// NewClientSecret returns a fresh API key secret: 64 characters of A-Za-z0-9.
func NewClientSecret() string { return randomString(64, alnum) }

// NewPassword returns a generated dashboard password.
func NewPassword() string { return randomString(24, alnum) }
