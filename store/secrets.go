package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
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

// openKeySecrets opens a key's current and previous secrets as read.
func openKeySecrets(k *gatehouse.APIKey, box *secretBox) error {
	var err error
	if k.ClientSecret, err = box.open(k.ClientSecret); err != nil {
		return fmt.Errorf("apikey %q: %w", k.ClientID, err)
	}
	if k.PreviousSecret, err = box.open(k.PreviousSecret); err != nil {
		return fmt.Errorf("apikey %q: %w", k.ClientID, err)
	}
	return nil
}

// sealPluginConfigs returns sv with its plugins' config strings sealed (a
// copy: sv's own slice is left clear).
func sealPluginConfigs(sv gatehouse.Service, box *secretBox) (gatehouse.Service, error) {
	if box == nil || len(sv.Plugins) == 0 {
		return sv, nil
	}
	ps := make([]gatehouse.PluginRef, len(sv.Plugins))
	for i, p := range sv.Plugins {
		c, err := box.seal(p.Config)
		if err != nil {
			return sv, err
		}
		p.Config = c
		ps[i] = p
	}
	sv.Plugins = ps
	return sv, nil
}

func openPluginConfigs(sv *gatehouse.Service, box *secretBox) error {
	for i := range sv.Plugins {
		c, err := box.open(sv.Plugins[i].Config)
		if err != nil {
			return fmt.Errorf("service %q: %w", sv.ID, err)
		}
		sv.Plugins[i].Config = c
	}
	return nil
}

// UseSecretsKey sets the key secrets are sealed with (nil: none) and brings
// the database in line, before the store is shared: without a key, a
// database whose secrets are sealed is refused; with one, a database sealed
// with another key is refused, and every secret still clear is sealed, in
// one transaction. Refusals wrap ErrSecretsKey.
func (s *Store) UseSecretsKey(ctx context.Context, key []byte) error {
	id, sealed, err := s.GetMeta(ctx, metaSecretsKeyID)
	if err != nil {
		return err
	}
	if key == nil {
		if sealed {
			return fmt.Errorf("%w: the database's secrets are encrypted (key %s) and no key was given", ErrSecretsKey, id)
		}
		return nil
	}
	box, err := newSecretBox(key)
	if err != nil {
		return err
	}
	if sealed && id != box.id {
		return fmt.Errorf("%w: the database's secrets are encrypted with key %s, not with the given key %s", ErrSecretsKey, id, box.id)
	}
	if err := s.reseal(ctx, box, box); err != nil {
		return err
	}
	s.secrets = box
	return s.checkpoint(ctx)
}

// checkpoint copies the WAL into the database file and truncates it, so
// that the clear values a reseal replaced survive in neither.
func (s *Store) checkpoint(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// RotateSecretsKey re-seals every secret sealed with oldKey (and any still
// clear) with newKey, in one transaction; the store then uses newKey.
func (s *Store) RotateSecretsKey(ctx context.Context, oldKey, newKey []byte) error {
	from, err := newSecretBox(oldKey)
	if err != nil {
		return fmt.Errorf("old key: %w", err)
	}
	to, err := newSecretBox(newKey)
	if err != nil {
		return fmt.Errorf("new key: %w", err)
	}
	id, sealed, err := s.GetMeta(ctx, metaSecretsKeyID)
	if err != nil {
		return err
	}
	if sealed && id != from.id && id != to.id {
		return fmt.Errorf("%w: the database's secrets are encrypted with key %s, not with the old key %s", ErrSecretsKey, id, from.id)
	}
	if err := s.reseal(ctx, from, to); err != nil {
		return err
	}
	s.secrets = to
	return s.checkpoint(ctx)
}

// reseal seals with to every secret that is not sealed with it yet, opening
// it with from (a clear one needs no key), in one transaction.
func (s *Store) reseal(ctx context.Context, from, to *secretBox) error {
	mine := sealedPrefix + to.id + ":%"
	move := func(v string) (string, bool, error) {
		if strings.HasPrefix(v, sealedPrefix+to.id+":") || v == "" {
			return v, false, nil
		}
		plain, err := from.open(v)
		if err != nil {
			return "", false, err
		}
		out, err := to.seal(plain)
		return out, true, err
	}
	return s.writeRaw(ctx, func(tx *sql.Tx) error {
		type row struct {
			id, a string
			b     sql.NullString
		}
		collect := func(query string, args ...any) ([]row, error) {
			rows, err := tx.QueryContext(ctx, query, args...)
			if err != nil {
				return nil, fmt.Errorf("reseal: %w", err)
			}
			defer rows.Close()
			var out []row
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.id, &r.a, &r.b); err != nil {
					return nil, fmt.Errorf("reseal: %w", err)
				}
				out = append(out, r)
			}
			return out, rows.Err()
		}
		// API keys: current and previous secrets.
		keys, err := collect(`SELECT client_id, client_secret, previous_secret FROM apikeys
			WHERE client_secret NOT LIKE ? OR (previous_secret IS NOT NULL AND previous_secret NOT LIKE ?)`, mine, mine)
		if err != nil {
			return err
		}
		for _, r := range keys {
			a, _, err := move(r.a)
			if err != nil {
				return fmt.Errorf("apikey %q: %w", r.id, err)
			}
			var b any
			if r.b.Valid {
				if b, _, err = move(r.b.String); err != nil {
					return fmt.Errorf("apikey %q: %w", r.id, err)
				}
			}
			if _, err := tx.ExecContext(ctx, "UPDATE apikeys SET client_secret = ?, previous_secret = ? WHERE client_id = ?", a, b, r.id); err != nil {
				return fmt.Errorf("reseal apikey: %w", err)
			}
		}
		// Dashboard sessions' CSRF tokens.
		sessions, err := collect("SELECT token_hash, csrf_token, NULL FROM sessions WHERE csrf_token NOT LIKE ?", mine)
		if err != nil {
			return err
		}
		for _, r := range sessions {
			a, _, err := move(r.a)
			if err != nil {
				return fmt.Errorf("session: %w", err)
			}
			if _, err := tx.ExecContext(ctx, "UPDATE sessions SET csrf_token = ? WHERE token_hash = ?", a, r.id); err != nil {
				return fmt.Errorf("reseal session: %w", err)
			}
		}
		// The audit log's fingerprint key.
		meta, err := collect("SELECT key, value, NULL FROM meta WHERE key = ?", metaAuditKey)
		if err != nil {
			return err
		}
		for _, r := range meta {
			if a, changed, err := move(r.a); err != nil {
				return fmt.Errorf("audit key: %w", err)
			} else if changed {
				if _, err := tx.ExecContext(ctx, "UPDATE meta SET value = ? WHERE key = ?", a, r.id); err != nil {
					return fmt.Errorf("reseal audit key: %w", err)
				}
			}
		}
		// Plugin config strings inside services' JSON.
		services, err := collect("SELECT id, data, NULL FROM services")
		if err != nil {
			return err
		}
		for _, r := range services {
			var sv map[string]json.RawMessage
			if err := json.Unmarshal([]byte(r.a), &sv); err != nil {
				return fmt.Errorf("service %q: %w", r.id, err)
			}
			var ps []map[string]json.RawMessage
			if raw, ok := sv["plugins"]; !ok || json.Unmarshal(raw, &ps) != nil || len(ps) == 0 {
				continue
			}
			changedAny := false
			for _, p := range ps {
				var c string
				if json.Unmarshal(p["config"], &c) != nil {
					continue
				}
				out, changed, err := move(c)
				if err != nil {
					return fmt.Errorf("service %q: %w", r.id, err)
				}
				if changed {
					p["config"], _ = json.Marshal(out)
					changedAny = true
				}
			}
			if !changedAny {
				continue
			}
			sv["plugins"], _ = json.Marshal(ps)
			data, err := json.Marshal(sv)
			if err != nil {
				return fmt.Errorf("service %q: %w", r.id, err)
			}
			if _, err := tx.ExecContext(ctx, "UPDATE services SET data = ? WHERE id = ?", string(data), r.id); err != nil {
				return fmt.Errorf("reseal service: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, metaSecretsKeyID, to.id); err != nil {
			return fmt.Errorf("reseal: %w", err)
		}
		return nil
	})
}
