package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var adminEnv = []string{"GATEHOUSE_ADMIN_CLIENT_ID=root", "GATEHOUSE_ADMIN_CLIENT_SECRET=root-secret"}

func TestExportApplyCommands(t *testing.T) {
	dir := t.TempDir()
	src := startChild(t, filepath.Join(dir, "src.db"))
	seedKeyedService(t, src, "127.0.0.1:9")

	// export -o FILE, then apply it to an empty gateway and export that.
	exported := filepath.Join(dir, "gatehouse.yaml")
	r := runBinary(t, dir, adminEnv, "export", "--admin", src.admin, "-o", exported)
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("export: %d %q %q", r.code, r.stdout, r.stderr)
	}
	doc, err := os.ReadFile(exported)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(exported); fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file mode %v, want 0600 (it holds secrets)", fi.Mode().Perm())
	}

	dst := startChild(t, filepath.Join(dir, "dst.db"))
	r = runBinary(t, dir, adminEnv, "apply", "--admin", dst.admin, "-f", exported, "--dry-run")
	want := "+ group/g\n+ service/s\n+ apikey/k\ndry run: 3 created, 0 updated, 0 deleted; nothing written (revision 3)\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("apply --dry-run: %d\n%s\nwant\n%s(stderr %q)", r.code, r.stdout, want, r.stderr)
	}
	r = runBinary(t, dir, adminEnv, "apply", "--admin", dst.admin, "-f", exported)
	if want := "+ group/g\n+ service/s\n+ apikey/k\napplied: 3 created, 0 updated, 0 deleted in revision 4\n"; r.code != 0 || r.stdout != want {
		t.Fatalf("apply: %d\n%s\nwant\n%s(stderr %q)", r.code, r.stdout, want, r.stderr)
	}
	r = runBinary(t, dir, adminEnv, "export", "--admin", dst.admin)
	if r.code != 0 || r.stdout != string(doc) {
		t.Fatalf("export after apply (%d):\n%s\nwant\n%s", r.code, r.stdout, doc)
	}
	r = runBinary(t, dir, adminEnv, "apply", "--admin", dst.admin, "-f", exported, "--prune")
	if want := "no changes: the gateway already holds this document (revision 4)\n"; r.code != 0 || r.stdout != want {
		t.Fatalf("apply again: %d %q", r.code, r.stdout)
	}

	// Edit: rename the group, drop the key; --prune deletes it.
	edited := strings.Replace(string(doc), "name: g\n", "name: renamed\n", 1)
	i := strings.Index(edited, "apikeys:")
	j := strings.Index(edited, "format:")
	edited = edited[:i] + "apikeys: []\n" + edited[j:]
	if err := os.WriteFile(filepath.Join(dir, "edited.yaml"), []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runBinary(t, dir, adminEnv, "apply", "--admin", dst.admin, "-f", "edited.yaml", "--prune")
	if want := "~ group/g\n- apikey/k\napplied: 0 created, 1 updated, 1 deleted in revision 5\n"; r.code != 0 || r.stdout != want {
		t.Fatalf("apply edited: %d\n%s\nwant\n%s(stderr %q, doc\n%s)", r.code, r.stdout, want, r.stderr, edited)
	}

	// Errors: the API's message, exit 1, nothing printed on stdout.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("format: gatehouse/v1\napikeys:\n  - clientId: k2\n    dailyQuta: 5\n"), 0o600)
	for _, c := range []struct {
		name    string
		env     []string
		args    []string
		code    int
		message string
	}{
		{"invalid document", adminEnv, []string{"apply", "--admin", dst.admin, "-f", bad}, 1,
			"gatehouse: apply: apikey/k2: unknown field (400, field apikeys[0].dailyQuta)"},
		{"wrong key", []string{"GATEHOUSE_ADMIN_CLIENT_ID=root", "GATEHOUSE_ADMIN_CLIENT_SECRET=nope"},
			[]string{"export", "--admin", dst.admin}, 1, "(401)"},
		{"no key", nil, []string{"export", "--admin", dst.admin}, 1, "set GATEHOUSE_ADMIN_CLIENT_ID and GATEHOUSE_ADMIN_CLIENT_SECRET"},
		{"no gateway", adminEnv, []string{"export", "--admin", "http://127.0.0.1:1"}, 1, "connection refused"},
		{"no -f", adminEnv, []string{"apply", "--admin", dst.admin}, 2, "apply needs -f FILE"},
		{"unreadable -f", adminEnv, []string{"apply", "-f", "missing.yaml"}, 2, `invalid value "missing.yaml" for -f`},
		{"bad --admin", adminEnv, []string{"export", "--admin", "ftp://x"}, 2, `invalid value "ftp://x" for --admin`},
		{"-o in a missing folder", adminEnv, []string{"export", "-o", "nope/x.yaml"}, 2, "folder nope does not exist"},
		{"unknown flag", adminEnv, []string{"apply", "--force"}, 2, "unknown flag --force"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runBinary(t, dir, c.env, c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.message) || r.stdout != "" {
				t.Fatalf("exit %d, stderr %q, stdout %q; want %d and %q", r.code, r.stderr, r.stdout, c.code, c.message)
			}
		})
	}
}
