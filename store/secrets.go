package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"gatehouse"
)

// Secrets at rest (contract section 14): with a secrets key, API key
// secrets (current and previous), dashboard session CSRF tokens (the session
// token itself is only stored as its SHA-256), plugin config strings inside
// services' JSON and the audit log's fingerprint key are stored as
//
//	enc:v1:<key id>:<base64 of nonce || AES-256-GCM ciphertext>
//
// where the key id (the first 8 bytes of the key's SHA-256, in hex) says which
// key sealed the value, so a wrong key is told apart from a damaged value and
// keys can be rotated. Values are opened when they are read from the
// database (at start for the gateway's key index, on admin reads), never on
// the request path.

// ErrSecretsKey is wrapped by every error that means the secrets key is
// missing or is not the one the database was encrypted with.
var ErrSecretsKey = errors.New("secrets key")

// sealedPrefix starts every sealed value; gatehouse.SealedPrefix refuses it
// in a clear secret, so a clear value is never read as a sealed one.
const sealedPrefix = gatehouse.SealedPrefix

// metaSecretsKeyID records which key sealed the database's secrets.
const metaSecretsKeyID = "secrets_key_id"

// SecretsKeySize is the length of a secrets key: AES-256.
const SecretsKeySize = 32

// secretBox seals and opens values with one key. A nil *secretBox leaves
// values clear and refuses to open sealed ones.
type secretBox struct {
	id   string
	aead cipher.AEAD
}

// ParseSecretsKey decodes a key file's content: 32 bytes, base64 (standard
// or URL alphabet, padded or not), surrounding white space ignored.
func ParseSecretsKey(content []byte) ([]byte, error) {
	s := strings.TrimSpace(string(content))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != SecretsKeySize {
				return nil, fmt.Errorf("%w: want %d bytes, base64, got %d", ErrSecretsKey, SecretsKeySize, len(k))
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: not base64", ErrSecretsKey)
}

func newSecretBox(key []byte) (*secretBox, error) {
	if len(key) != SecretsKeySize {
		return nil, fmt.Errorf("%w: want %d bytes, got %d", ErrSecretsKey, SecretsKeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSecretsKey, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSecretsKey, err)
	}
	sum := sha256.Sum256(key)
	return &secretBox{id: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// seal returns v sealed, or v itself without a key. The empty string stays
// empty: there is nothing to hide and it keeps "no config" recognisable.
func (b *secretBox) seal(v string) (string, error) {
	if b == nil || v == "" {
		return v, nil
	}
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(v)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	// The key id is authenticated too: a value cannot be moved under another id.
	out := b.aead.Seal(nonce, nonce, []byte(v), []byte(b.id))
	return sealedPrefix + b.id + ":" + base64.RawStdEncoding.EncodeToString(out), nil
}

// isSealed reports whether v is a sealed value.
func isSealed(v string) bool { return strings.HasPrefix(v, sealedPrefix) }

// open returns v opened; a clear v is returned as it is (a database written
// before the key, or by a process without it, is encrypted on the next start).
func (b *secretBox) open(v string) (string, error) {
	if !isSealed(v) {
		return v, nil
	}
	id, data, ok := strings.Cut(v[len(sealedPrefix):], ":")
	if !ok {
		return "", fmt.Errorf("open secret: malformed sealed value")
	}
	if b == nil {
		return "", fmt.Errorf("%w: the database holds secrets encrypted with key %s and no key was given", ErrSecretsKey, id)
	}
	if id != b.id {
		return "", fmt.Errorf("%w: the database holds secrets encrypted with key %s, not with the given key %s", ErrSecretsKey, id, b.id)
	}
	raw, err := base64.RawStdEncoding.DecodeString(data)
	if err != nil || len(raw) < b.aead.NonceSize() {
		return "", fmt.Errorf("open secret: malformed sealed value")
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(b.id))
	if err != nil {
		return "", fmt.Errorf("open secret: %w", err)
	}
	return string(plain), nil
}
