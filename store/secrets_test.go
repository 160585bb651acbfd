package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gatehouse"
)

func newKey32(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// grepFiles fails the test for every secret found in the database file or
// its WAL (or shared-memory index).
func grepFiles(t *testing.T, path string, secrets ...string) {
	t.Helper()
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		must(t, err)
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q in clear", filepath.Base(f), s)
			}
		}
	}
}

func TestSecretsAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	key, other := newKey32(t), newKey32(t)

	// A database of clear secrets, as before the key file.
	s := openAt(t, path)
	must(t, s.UseSecretsKey(ctx, nil))
	seedGroups(t, s, "g")
	p := gatehouse.DefaultPlugin()
	p.ID, p.Name = "p", "p"
	must(t, s.CreatePlugin(ctx, &p, []byte("\x00asm-bytes")))
	sv := gatehouse.DefaultService()
	sv.ID, sv.GroupID, sv.Name, sv.Domain = "s", "g", "s", "s.test"
	sv.Targets = []gatehouse.Target{{Host: "127.0.0.1:1"}}
	sv.Plugins = []gatehouse.PluginRef{{Ref: "p", Config: "plugin-config-token-1"}}
	must(t, s.CreateService(ctx, &sv))
	k := gatehouse.DefaultAPIKey()
	k.ClientID, k.ClientSecret = "k1", "clear-secret-number-one"
	must(t, s.CreateAPIKey(ctx, &k))
	must(t, s.AddUser(ctx, gatehouse.User{Name: "u", Role: "admin"}, "$2a$10$x"))
	must(t, s.CreateSession(ctx, gatehouse.Session{TokenHash: "th", Username: "u", CSRFToken: "csrf-token-number-one", ExpiresAt: 1 << 40}))
	must(t, s.Close())

	// The first start with the key seals them all; values read the same.
	s = openAt(t, path)
	must(t, s.UseSecretsKey(ctx, key))
	if k, err := s.GetAPIKey(ctx, "k1"); err != nil || k.ClientSecret != "clear-secret-number-one" {
		t.Fatalf("after sealing: %+v %v", k, err)
	}
	if sv, err := s.GetService(ctx, "s"); err != nil || sv.Plugins[0].Config != "plugin-config-token-1" {
		t.Fatalf("service after sealing: %+v %v", sv, err)
	}
	if se, err := s.GetSession(ctx, "th"); err != nil || se.CSRFToken != "csrf-token-number-one" {
		t.Fatalf("session after sealing: %+v %v", se, err)
	}
	// Writes with the key: a rotation (so a previous secret), a new key, a
	// new plugin config, a new session.
	if _, err := s.RotateAPIKeyAt(ctx, "k1", "rotated-secret-number-two", 5, 1); err != nil {
		t.Fatal(err)
	}
	k2 := gatehouse.DefaultAPIKey()
	k2.ClientID, k2.ClientSecret = "k2", "fresh-secret-number-three"
	must(t, s.CreateAPIKey(ctx, &k2))
	sv.Plugins[0].Config = "plugin-config-token-2"
	must(t, s.UpdateService(ctx, &sv))
	must(t, s.CreateSession(ctx, gatehouse.Session{TokenHash: "th2", Username: "u", CSRFToken: "csrf-token-number-two", ExpiresAt: 1 << 40}))
	got, err := s.GetAPIKey(ctx, "k1")
	must(t, err)
	if got.ClientSecret != "rotated-secret-number-two" || got.PreviousSecret != "clear-secret-number-one" {
		t.Fatalf("rotated key read back as %+v", got)
	}
	var scanned []string
	must(t, s.ScanKeyAuth(ctx, func(k *gatehouse.APIKey) error { scanned = append(scanned, k.ClientSecret); return nil }))
	must(t, s.ScanPreviousSecrets(ctx, 0, func(_, secret string, _ int64) { scanned = append(scanned, secret) }))
	if strings.Join(scanned, ",") != "rotated-secret-number-two,fresh-secret-number-three,clear-secret-number-one" {
		t.Errorf("scanned secrets %v", scanned)
	}
	secrets := []string{"clear-secret-number-one", "rotated-secret-number-two", "fresh-secret-number-three",
		"plugin-config-token-1", "plugin-config-token-2", "csrf-token-number-one", "csrf-token-number-two"}
	grepFiles(t, path, secrets...) // while open: file and WAL
	must(t, s.Close())
	grepFiles(t, path, secrets...)

	// Without the key, or with another, the database is refused.
	for name, k := range map[string][]byte{"no key": nil, "another key": other} {
		s = openAt(t, path)
		if err := s.UseSecretsKey(ctx, k); !errors.Is(err, ErrSecretsKey) {
			t.Errorf("%s: UseSecretsKey = %v", name, err)
		}
		must(t, s.Close())
	}

	// rotate-secrets-key: everything re-sealed under the new key at once.
	s = openAt(t, path)
	must(t, s.RotateSecretsKey(ctx, key, other))
	must(t, s.Close())
	s = openAt(t, path)
	if err := s.UseSecretsKey(ctx, key); !errors.Is(err, ErrSecretsKey) {
		t.Errorf("the old key still opens the database: %v", err)
	}
	must(t, s.Close())
	s = openAt(t, path)
	defer s.Close()
	must(t, s.UseSecretsKey(ctx, other))
	if k, err := s.GetAPIKey(ctx, "k1"); err != nil || k.ClientSecret != "rotated-secret-number-two" || k.PreviousSecret != "clear-secret-number-one" {
		t.Errorf("after key rotation: %+v %v", k, err)
	}
	if sv, err := s.GetService(ctx, "s"); err != nil || sv.Plugins[0].Config != "plugin-config-token-2" {
		t.Errorf("service after key rotation: %+v %v", sv, err)
	}
	if se, err := s.GetSession(ctx, "th2"); err != nil || se.CSRFToken != "csrf-token-number-two" {
		t.Errorf("session after key rotation: %+v %v", se, err)
	}
	// The audit log kept working through all of it, and holds no secret.
	if n, err := s.VerifyAudit(ctx); err != nil || n == 0 {
		t.Errorf("VerifyAudit = %d, %v", n, err)
	}
	grepFiles(t, path, secrets...)
}

func TestParseSecretsKey(t *testing.T) {
	t.Parallel()
	k := bytes.Repeat([]byte{7}, 32)
	for _, in := range []string{base64.StdEncoding.EncodeToString(k) + "\n", base64.RawURLEncoding.EncodeToString(k)} {
		if got, err := ParseSecretsKey([]byte(in)); err != nil || !bytes.Equal(got, k) {
			t.Errorf("ParseSecretsKey(%q) = %x, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(k[:16])} {
		if _, err := ParseSecretsKey([]byte(in)); !errors.Is(err, ErrSecretsKey) {
			t.Errorf("ParseSecretsKey(%q) = %v, want ErrSecretsKey", in, err)
		}
	}
}
