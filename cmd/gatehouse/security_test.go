package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func writeKeyFile(t *testing.T, dir, name string) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// stop ends a child with SIGINT and waits: the store closes and checkpoints.
func (c *child) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("gatehouse exited with %v", err)
	}
}

func (c *child) mustDo(t *testing.T, method, path, body string, status int) []byte {
	t.Helper()
	resp := c.adminDo(t, method, path, body)
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b.String())
	}
	return b.Bytes()
}

func grepDB(t *testing.T, db string, secrets ...string) {
	t.Helper()
	for _, f := range []string{db, db + "-wal"} {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q in clear", filepath.Base(f), s)
			}
		}
	}
}

func TestSecretsKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "g.db")
	keyA, keyB := writeKeyFile(t, dir, "a.key"), writeKeyFile(t, dir, "b.key")

	// A gateway without a key stores clear secrets.
	c := startChild(t, db)
	c.mustDo(t, "POST", "/api/groups", `{"id":"g","name":"g"}`, 201)
	c.mustDo(t, "POST", "/api/groups/g/apikeys", `{"clientId":"k1","clientSecret":"secret-written-in-clear"}`, 201)
	c.stop(t)

	// The first start with the key encrypts them; new writes are encrypted.
	c = startChild(t, db, "--secrets-key-file", keyA)
	c.mustDo(t, "POST", "/api/groups/g/apikeys", `{"clientId":"k2","clientSecret":"secret-written-sealed"}`, 201)
	c.mustDo(t, "POST", "/api/apikeys/k1/rotate", `{"clientSecret":"secret-after-rotation"}`, 200)
	var k apiKeyView
	json.Unmarshal(c.mustDo(t, "GET", "/api/apikeys/k1", "", 200), &k)
	if k.ClientSecret != "secret-after-rotation" || k.PreviousSecretValidUntil == nil {
		t.Errorf("k1 read back as %+v", k)
	}
	secrets := []string{"root-secret", "secret-written-in-clear", "secret-written-sealed", "secret-after-rotation"}
	grepDB(t, db, secrets...)
	c.stop(t)
	grepDB(t, db, secrets...)

	// Without the key, or with another one: exit 1 naming the flag, before listening.
	for name, args := range map[string][]string{
		"no key":                  {"serve", "--db", db, "--proxy-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"},
		"another key":             {"serve", "--db", db, "--proxy-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--secrets-key-file", keyB},
		"new-key without the key": {"admin", "new-key", "--db", db},
	} {
		r := runBinary(t, dir, nil, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "--secrets-key-file") || strings.Contains(r.stdout, "gateway:") || strings.Contains(r.stdout, "admin secret") {
			t.Errorf("%s: exit %d\nstdout %s\nstderr %s", name, r.code, r.stdout, r.stderr)
		}
	}
	// A key file that is not one: exit 2 naming the flag, nothing opened.
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("too short"), 0o600)
	for _, f := range []string{bad, filepath.Join(dir, "missing.key")} {
		r := runBinary(t, dir, nil, "serve", "--db", db, "--secrets-key-file", f)
		if r.code != 2 || !strings.Contains(r.stderr, "--secrets-key-file") {
			t.Errorf("key file %s: exit %d %s", f, r.code, r.stderr)
		}
	}
	r := runBinary(t, dir, []string{"GATEHOUSE_SECRETS_KEY_FILE=" + keyA}, "admin", "new-key", "--db", db)
	if r.code != 0 || !strings.Contains(r.stdout, "admin secret: ") {
		t.Fatalf("new-key with the key: %d %s %s", r.code, r.stdout, r.stderr)
	}
	newSecret := strings.TrimSpace(strings.SplitN(r.stdout, "admin secret: ", 2)[1])
	grepDB(t, db, newSecret)

	// rotate-secrets-key: the old key opens the file no more, the new one does.
	keyC := writeKeyFile(t, dir, "c.key")
	r = runBinary(t, dir, nil, "admin", "rotate-secrets-key", "--db", db, "--old-key-file", keyC, "--new-key-file", keyB)
	if r.code != 1 || !strings.Contains(r.stderr, "--old-key-file") {
		t.Errorf("rotate with a wrong old key: %d %s", r.code, r.stderr)
	}
	r = runBinary(t, dir, nil, "admin", "rotate-secrets-key", "--db", db, "--old-key-file", keyA)
	if r.code != 2 || !strings.Contains(r.stderr, "--new-key-file") {
		t.Errorf("rotate without a new key: %d %s", r.code, r.stderr)
	}
	r = runBinary(t, dir, nil, "admin", "rotate-secrets-key", "--db", db, "--old-key-file", keyA, "--new-key-file", keyB)
	if r.code != 0 {
		t.Fatalf("rotate-secrets-key: %d %s", r.code, r.stderr)
	}
	r = runBinary(t, dir, nil, "serve", "--db", db, "--proxy-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--secrets-key-file", keyA)
	if r.code != 1 || !strings.Contains(r.stderr, "--secrets-key-file") {
		t.Errorf("the old key after rotation: %d %s", r.code, r.stderr)
	}
	c = startChild(t, db, "--secrets-key-file", keyB)
	json.Unmarshal(c.mustDo(t, "GET", "/api/apikeys/k2", "", 200), &k)
	if k.ClientSecret != "secret-written-sealed" {
		t.Errorf("k2 after rotate-secrets-key: %+v", k)
	}
	if code := adminGet(t, c.admin+"/api/groups", "root", "root-secret"); code != 200 {
		t.Errorf("the bootstrap admin key after rotate-secrets-key: %d", code)
	}
	c.stop(t)
	grepDB(t, db, append(secrets, newSecret)...)
}

type apiKeyView struct {
	ClientSecret             string `json:"clientSecret"`
	PreviousSecretValidUntil *int64 `json:"previousSecretValidUntil"`
}

func TestAuditVerifyCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "g.db")
	c := startChild(t, db)
	resp := c.adminDo(t, "POST", "/api/groups", `{"id":"g","name":"g"}`)
	resp.Body.Close()
	first := resp.Header.Get("Gatehouse-Revision")
	c.mustDo(t, "PATCH", "/api/groups/g", `{"description":"d"}`, 200)
	c.stop(t)

	r := runBinary(t, dir, nil, "audit", "verify", "--db", db)
	if r.code != 0 || !strings.Contains(r.stdout, "the hash chain holds") {
		t.Fatalf("audit verify: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// Edit the actor of the admin API's entries in the file itself.
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("apikey:root")) {
		t.Fatal("no entry of the admin key in the file")
	}
	if err := os.WriteFile(db, bytes.ReplaceAll(b, []byte("apikey:root"), []byte("apikey:r00t")), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runBinary(t, dir, nil, "audit", "verify", "--db", db)
	if n, _ := strconv.Atoi(first); r.code != 1 || n == 0 || !strings.Contains(r.stderr, "revision "+first+" ") {
		t.Errorf("tampered audit verify: exit %d (want 1 naming revision %s)\nstdout %s\nstderr %s", r.code, first, r.stdout, r.stderr)
	}
}
