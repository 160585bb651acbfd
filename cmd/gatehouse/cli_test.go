package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"gatehouse/store"
)

// result is what one run of the binary left: exit status, output, files.
type result struct {
	code           int
	stdout, stderr string
	files          []string // every path under the run's folder afterwards
}

// runBinary runs the built gatehouse in dir with only the environment given
// (the machine's GATEHOUSE_* variables must not leak in).
func runBinary(t *testing.T, dir string, environ []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"HOME=" + dir}, environ...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run gatehouse %v: %v", args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String(), files: listFiles(t, dir)}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// writeTLSPair writes a self-signed certificate and its key under dir.
func writeTLSPair(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := writeTLSPair(t, dir)
	aFile := filepath.Join(dir, "a-file")
	if err := os.WriteFile(aFile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "g.db")
	cases := []struct {
		name    string
		args    []string
		env     func(string) string
		wantErr string // substring; "" for success
		check   func(t *testing.T, c config)
	}{
		{name: "defaults", env: env(), check: func(t *testing.T, c config) {
			if c.DB != "gatehouse.db" || c.ProxyAddr != ":8080" || c.AdminAddr != "127.0.0.1:9000" ||
				c.FlushInterval != time.Second || c.UpstreamTimeout != 30*time.Second || c.ShutdownTimeout != 10*time.Second ||
				c.Location.String() != "UTC" || c.WasmCache != "gatehouse.db.wasm-cache" || c.Demo || c.logLevel != "info" ||
				c.ProxyTLSCert != "" || len(c.TrustedProxies) != 0 {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "env fills what flags leave unset", env: env("GATEHOUSE_DB", db, "GATEHOUSE_TIMEZONE", "Europe/Paris", "GATEHOUSE_DEMO", "true"),
			check: func(t *testing.T, c config) {
				if c.DB != db || c.Location.String() != "Europe/Paris" || !c.Demo || c.WasmCache != db+".wasm-cache" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "flags beat env", args: []string{"--proxy-addr", "127.0.0.1:1234"}, env: env("GATEHOUSE_PROXY_ADDR", "nonsense"),
			check: func(t *testing.T, c config) {
				if c.ProxyAddr != "127.0.0.1:1234" {
					t.Errorf("proxy addr %q", c.ProxyAddr)
				}
			}},
		{name: "addresses at the port bounds", args: []string{"--proxy-addr", "[::1]:0", "--admin-addr", "localhost:65535"}, env: env(),
			check: func(t *testing.T, c config) {
				if c.ProxyAddr != "[::1]:0" || c.AdminAddr != "localhost:65535" {
					t.Errorf("%q %q", c.ProxyAddr, c.AdminAddr)
				}
			}},
		{name: "both listeners on port 0", args: []string{"--proxy-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, env: env(),
			check: func(t *testing.T, c config) {}},
		{name: "trusted proxies", args: []string{"--trusted-proxies", "10.0.0.0/8, 192.168.1.1,::ffff:10.1.1.1"}, env: env(),
			check: func(t *testing.T, c config) {
				if len(c.TrustedProxies) != 3 || c.TrustedProxies[0].String() != "10.0.0.0/8" ||
					c.TrustedProxies[1].String() != "192.168.1.1/32" || c.TrustedProxies[2].String() != "10.1.1.1/32" {
					t.Errorf("%v", c.TrustedProxies)
				}
			}},
		{name: "tls pair", args: []string{"--proxy-tls-cert", cert, "--proxy-tls-key", key}, env: env(),
			check: func(t *testing.T, c config) {
				if c.ProxyTLSCert != cert || c.ProxyTLSKey != key {
					t.Errorf("%q %q", c.ProxyTLSCert, c.ProxyTLSKey)
				}
			}},
		{name: "wasm cache in a folder yet to be made", args: []string{"--wasm-cache", filepath.Join(dir, "a", "b")}, env: env(),
			check: func(t *testing.T, c config) {
				if c.WasmCache != filepath.Join(dir, "a", "b") {
					t.Errorf("%q", c.WasmCache)
				}
			}},
		{name: "log level", env: env("GATEHOUSE_LOG_LEVEL", "debug"), check: func(t *testing.T, c config) {
			if c.logLevel != "debug" {
				t.Errorf("%q", c.logLevel)
			}
		}},
		{name: "observability defaults off", env: env(), check: func(t *testing.T, c config) {
			if c.AccessLog != "off" || c.OTLPEndpoint != "" {
				t.Errorf("access log %q, otlp %q", c.AccessLog, c.OTLPEndpoint)
			}
		}},
		{name: "access log file and otlp endpoint", args: []string{"--access-log", filepath.Join(dir, "access.log")},
			env: env("GATEHOUSE_OTLP_ENDPOINT", "http://127.0.0.1:4318"), check: func(t *testing.T, c config) {
				if c.AccessLog != filepath.Join(dir, "access.log") || c.OTLPEndpoint != "http://127.0.0.1:4318" {
					t.Errorf("access log %q, otlp %q", c.AccessLog, c.OTLPEndpoint)
				}
			}},
		{name: "access log stdout", env: env("GATEHOUSE_ACCESS_LOG", "stdout"), check: func(t *testing.T, c config) {
			if c.AccessLog != "stdout" {
				t.Errorf("%q", c.AccessLog)
			}
		}},
		{name: "access log in a missing folder", args: []string{"--access-log", filepath.Join(dir, "nope", "a.log")}, env: env(),
			wantErr: "--access-log"},
		{name: "access log is a folder", args: []string{"--access-log", dir}, env: env(), wantErr: "--access-log"},
		{name: "otlp endpoint not a URL", env: env("GATEHOUSE_OTLP_ENDPOINT", "127.0.0.1:4318"),
			wantErr: "GATEHOUSE_OTLP_ENDPOINT (--otlp-endpoint)"},
		{name: "otlp endpoint with a bad port", args: []string{"--otlp-endpoint", "http://127.0.0.1:99999"}, env: env(),
			wantErr: "--otlp-endpoint"},
		{name: "help", args: []string{"--help"}, env: env(), wantErr: "help requested"},

		{name: "unknown flag", args: []string{"--nope"}, env: env(), wantErr: "unknown flag --nope"},
		{name: "flag without its value", args: []string{"--db"}, env: env(), wantErr: "flag --db needs a value"},
		{name: "stray argument", args: []string{"--db", db, "extra"}, env: env(), wantErr: `unexpected argument "extra"`},
		{name: "bad duration", args: []string{"--flush-interval", "soon"}, env: env(), wantErr: "--flush-interval"},
		{name: "zero duration", args: []string{"--shutdown-timeout", "0s"}, env: env(), wantErr: "--shutdown-timeout"},
		{name: "negative duration", args: []string{"--upstream-timeout", "-1s"}, env: env(), wantErr: "--upstream-timeout"},
		{name: "bad env value names the variable and the flag", env: env("GATEHOUSE_SHUTDOWN_TIMEOUT", "x"), wantErr: "GATEHOUSE_SHUTDOWN_TIMEOUT (--shutdown-timeout)"},
		{name: "bad zone", args: []string{"--timezone", "Mars/Olympus"}, env: env(), wantErr: "--timezone"},
		{name: "empty zone", args: []string{"--timezone", ""}, env: env(), wantErr: "--timezone"},
		{name: "address without port", args: []string{"--admin-addr", "nowhere"}, env: env(), wantErr: "--admin-addr"},
		{name: "port above 65535", args: []string{"--admin-addr", "127.0.0.1:99999"}, env: env(), wantErr: "--admin-addr"},
		{name: "negative port", args: []string{"--proxy-addr", "127.0.0.1:-1"}, env: env(), wantErr: "--proxy-addr"},
		{name: "named port", args: []string{"--proxy-addr", "127.0.0.1:http"}, env: env(), wantErr: "--proxy-addr"},
		{name: "bad host", args: []string{"--proxy-addr", "no_such host:80"}, env: env(), wantErr: "--proxy-addr"},
		{name: "bad address from env", env: env("GATEHOUSE_ADMIN_ADDR", "127.0.0.1:70000"), wantErr: "GATEHOUSE_ADMIN_ADDR"},
		{name: "both listeners on one port", args: []string{"--proxy-addr", ":9000", "--admin-addr", "127.0.0.1:9000"}, env: env(), wantErr: "--proxy-addr :9000 and --admin-addr 127.0.0.1:9000 both take port 9000"},
		{name: "bad cidr", args: []string{"--trusted-proxies", "10.0.0.0/99"}, env: env(), wantErr: "--trusted-proxies"},
		{name: "cert without key", args: []string{"--proxy-tls-cert", cert}, env: env(), wantErr: "--proxy-tls-key"},
		{name: "cert file missing", args: []string{"--proxy-tls-cert", filepath.Join(dir, "none.pem"), "--proxy-tls-key", key}, env: env(), wantErr: "--proxy-tls-cert"},
		{name: "key file missing", args: []string{"--proxy-tls-cert", cert, "--proxy-tls-key", filepath.Join(dir, "none.pem")}, env: env(), wantErr: "--proxy-tls-key"},
		{name: "cert is a folder", args: []string{"--proxy-tls-cert", dir, "--proxy-tls-key", key}, env: env(), wantErr: "--proxy-tls-cert"},
		{name: "cert is not PEM", args: []string{"--proxy-tls-cert", aFile, "--proxy-tls-key", key}, env: env(), wantErr: "--proxy-tls-cert"},
		{name: "cert and key swapped", args: []string{"--proxy-tls-cert", key, "--proxy-tls-key", cert}, env: env(), wantErr: "--proxy-tls-cert"},
		{name: "bad bool", env: env("GATEHOUSE_DEMO", "maybe"), wantErr: "GATEHOUSE_DEMO"},
		{name: "bad bool flag", args: []string{"--demo=maybe"}, env: env(), wantErr: "--demo"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, env: env(), wantErr: "--log-level"},
		{name: "empty db", args: []string{"--db", ""}, env: env(), wantErr: "--db"},
		{name: "db in a missing folder", args: []string{"--db", filepath.Join(dir, "missing", "g.db")}, env: env(), wantErr: "folder " + filepath.Join(dir, "missing") + " does not exist"},
		{name: "db is a folder", args: []string{"--db", dir}, env: env(), wantErr: "it is a folder"},
		{name: "db under a file", args: []string{"--db", filepath.Join(aFile, "g.db")}, env: env(), wantErr: "is not a folder"},
		{name: "db is not SQLite", args: []string{"--db", aFile}, env: env(), wantErr: "the file is not a SQLite database"},
		{name: "wasm cache is a file", args: []string{"--wasm-cache", aFile}, env: env(), wantErr: "--wasm-cache"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseConfig(c.args, c.env)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				if _, ok := err.(usageError); !ok && err != errHelp {
					t.Errorf("err is %T, want usageError (exit 2)", err)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("message is not one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
	if files := listFiles(t, dir); len(files) != 3 {
		t.Errorf("parsing created files: %v", files)
	}
}

// TestBadCommandLinesCreateNothing runs the real binary: every bad flag or
// environment value exits 2 with one line on stderr naming it, prints
// nothing on stdout, and leaves the folder (the default --db's) empty.
func TestBadCommandLinesCreateNothing(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		args    []string
		environ []string
		want    string
	}{
		{"port out of range", []string{"--admin-addr", "127.0.0.1:99999"}, nil, "--admin-addr"},
		{"port out of range on serve", []string{"serve", "--proxy-addr", "127.0.0.1:65536", "--admin-addr", "127.0.0.1:0"}, nil, "--proxy-addr"},
		{"address from env", []string{"serve"}, []string{"GATEHOUSE_PROXY_ADDR=localhost"}, "GATEHOUSE_PROXY_ADDR"},
		{"time zone", []string{"--timezone", "Mars/Olympus"}, nil, "--timezone"},
		{"time zone from env", nil, []string{"GATEHOUSE_TIMEZONE=Nowhere"}, "GATEHOUSE_TIMEZONE"},
		{"duration", []string{"serve", "--flush-interval", "0s"}, nil, "--flush-interval"},
		{"duration from env", nil, []string{"GATEHOUSE_UPSTREAM_TIMEOUT=forever"}, "GATEHOUSE_UPSTREAM_TIMEOUT"},
		{"cidr", []string{"--trusted-proxies", "10.0.0.0/8,300.1.1.1"}, nil, "--trusted-proxies"},
		{"tls files missing", []string{"--proxy-tls-cert", "cert.pem", "--proxy-tls-key", "key.pem"}, nil, "--proxy-tls-cert"},
		{"tls key alone", nil, []string{"GATEHOUSE_PROXY_TLS_KEY=key.pem"}, "--proxy-tls-cert"},
		{"db folder missing", []string{"--db", "no/such/folder/g.db"}, nil, "folder no/such/folder does not exist"},
		{"db folder missing from env", nil, []string{"GATEHOUSE_DB=nope/g.db"}, "GATEHOUSE_DB (--db)"},
		{"bool", []string{"--demo=perhaps"}, nil, "--demo"},
		{"log level", nil, []string{"GATEHOUSE_LOG_LEVEL=chatty"}, "GATEHOUSE_LOG_LEVEL"},
		{"unknown flag", []string{"--bogus"}, nil, "unknown flag --bogus"},
		{"unknown single-dash flag", []string{"serve", "-bogus"}, nil, "unknown flag --bogus"},
		{"flag without value", []string{"serve", "--admin-addr"}, nil, "flag --admin-addr needs a value"},
		{"stray argument", []string{"serve", "now"}, nil, `unexpected argument "now"`},
		{"unknown command", []string{"frobnicate"}, nil, `unknown command "frobnicate"`},
		{"admin without subcommand", []string{"admin"}, nil, "admin needs a subcommand"},
		{"unknown admin subcommand", []string{"admin", "frob"}, nil, `unknown admin subcommand "frob"`},
		{"serve flag on an admin command", []string{"admin", "new-key", "--proxy-addr", ":1"}, nil, "unknown flag --proxy-addr"},
		{"admin empty db", []string{"admin", "reset-password", "--db", ""}, nil, "--db"},
		{"version with an argument", []string{"version", "x"}, nil, `unexpected argument "x"`},
		{"help on nothing", []string{"help", "frob"}, nil, `no help for "frob"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := runBinary(t, dir, c.environ, c.args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, c.want) {
				t.Errorf("stderr %q does not name %q", r.stderr, c.want)
			}
			if n := strings.Count(r.stderr, "\n"); n != 1 || !strings.HasPrefix(r.stderr, "gatehouse: ") {
				t.Errorf("stderr is not one 'gatehouse: ' line: %q", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if len(r.files) != 0 {
				t.Errorf("files created: %v", r.files)
			}
		})
	}
}

// TestDBFolderNotWritable meets folders and files this process may not
// write: as root the binary runs as user nobody, for whom they are read-only.
func TestDBFolderNotWritable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// t.TempDir's folders are 0700: let the other user through.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	rw := filepath.Join(dir, "rw")
	if err := os.Mkdir(rw, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(rw, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	roFile := filepath.Join(rw, "ro.db")
	if err := os.WriteFile(roFile, []byte("SQLite format 3\x00"), 0o444); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"serve in a read-only folder", []string{"--db", filepath.Join(ro, "g.db")}, 2, "folder " + ro + " is not writable"},
		{"serve on a read-only file", []string{"--db", roFile}, 2, "the file is not writable"},
		{"wasm cache in a read-only folder", []string{"--db", filepath.Join(rw, "g.db"), "--wasm-cache", filepath.Join(ro, "cache")}, 2, "--wasm-cache"},
		{"admin on a read-only file", []string{"admin", "new-key", "--db", roFile}, 1, roFile + " (--db) is not writable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(binary, c.args...)
			cmd.Dir = dir
			cmd.Env = []string{"HOME=" + dir}
			if os.Geteuid() == 0 {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			}
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			var ee *exec.ExitError
			if err := cmd.Run(); err != nil && !errors.As(err, &ee) {
				t.Fatalf("run gatehouse as another user: %v", err)
			}
			if code := cmd.ProcessState.ExitCode(); code != c.code || !strings.Contains(errb.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want exit %d naming %q", code, errb.String(), c.code, c.want)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q", out.String())
			}
		})
	}
	if files := listFiles(t, dir); strings.Join(files, " ") != "ro rw rw/ro.db" {
		t.Errorf("files afterwards: %v", files)
	}
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	commands := []string{"serve", "admin reset-password", "admin new-key", "version", "help"}
	serveFlagNames := []string{"--db", "--proxy-addr", "--admin-addr", "--timezone", "--flush-interval", "--demo", "--wasm-cache",
		"--upstream-timeout", "--shutdown-timeout", "--trusted-proxies", "--proxy-tls-cert", "--proxy-tls-key", "--log-level", "GATEHOUSE_ADMIN_ADDR"}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, commands},
		{[]string{"--help"}, commands},
		{[]string{"-h"}, commands},
		{[]string{"help", "help"}, commands},
		{[]string{"serve", "--help"}, serveFlagNames},
		{[]string{"serve", "-h"}, serveFlagNames},
		{[]string{"--db", "x.db", "--help"}, serveFlagNames},
		{[]string{"help", "serve"}, serveFlagNames},
		{[]string{"admin", "--help"}, []string{"reset-password", "new-key", "--db"}},
		{[]string{"help", "admin"}, []string{"reset-password", "new-key", "--db"}},
		{[]string{"admin", "new-key", "--help"}, []string{"admin new-key", "--db", "GATEHOUSE_DB"}},
		{[]string{"help", "admin", "reset-password"}, []string{"admin reset-password", "--db"}},
		{[]string{"version"}, []string{"gatehouse " + testVersion + "\n"}},
		{[]string{"--version"}, []string{"gatehouse " + testVersion + "\n"}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := runBinary(t, dir, nil, c.args...)
			if r.code != 0 || r.stderr != "" {
				t.Errorf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
			if len(r.files) != 0 {
				t.Errorf("files created: %v", r.files)
			}
		})
	}
}

// TestAdminCommandsNeverCreateADatabase: a --db that is missing, empty or
// not SQLite exits 1 naming the path, and is left as it was.
func TestAdminCommandsNeverCreateADatabase(t *testing.T) {
	t.Parallel()
	for _, sub := range []string{"reset-password", "new-key"} {
		for _, c := range []struct {
			name    string
			setup   func(dir string) // files the run starts with
			args    []string
			environ []string
			want    string // in stderr; DIR stands for the run's folder
			files   string
		}{
			{name: "default db in the working folder", want: "database DIR/gatehouse.db (--db gatehouse.db) does not exist"},
			{name: "--db missing", args: []string{"--db", "DIR/g.db"}, want: "database DIR/g.db (--db) does not exist"},
			{name: "GATEHOUSE_DB missing", environ: []string{"GATEHOUSE_DB=DIR/env.db"}, want: "database DIR/env.db (--db) does not exist"},
			{name: "folder missing", args: []string{"--db", "DIR/no/g.db"}, want: "DIR/no/g.db (--db) does not exist"},
			{name: "a folder", setup: func(d string) { os.Mkdir(filepath.Join(d, "sub"), 0o755) },
				args: []string{"--db", "DIR/sub"}, want: "DIR/sub (--db) is a folder", files: "sub"},
			{name: "an empty file", setup: func(d string) { os.WriteFile(filepath.Join(d, "g.db"), nil, 0o644) },
				args: []string{"--db", "DIR/g.db"}, want: "DIR/g.db (--db) is not a SQLite database", files: "g.db"},
			{name: "not SQLite", setup: func(d string) { os.WriteFile(filepath.Join(d, "g.db"), []byte("hello, world, this is text"), 0o644) },
				args: []string{"--db", "DIR/g.db"}, want: "DIR/g.db (--db) is not a SQLite database", files: "g.db"},
		} {
			t.Run(sub+" "+c.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				if c.setup != nil {
					c.setup(dir)
				}
				args := []string{"admin", sub}
				for _, a := range c.args {
					args = append(args, strings.ReplaceAll(a, "DIR", dir))
				}
				var environ []string
				for _, e := range c.environ {
					environ = append(environ, strings.ReplaceAll(e, "DIR", dir))
				}
				before := sizes(t, dir)
				r := runBinary(t, dir, environ, args...)
				want := strings.ReplaceAll(c.want, "DIR", dir)
				if r.code != 1 || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
					t.Errorf("exit %d, stderr %q; want exit 1 and one line naming %q", r.code, r.stderr, want)
				}
				if r.stdout != "" {
					t.Errorf("stdout %q, want nothing", r.stdout)
				}
				if got := strings.Join(r.files, " "); got != c.files {
					t.Errorf("files afterwards %q, want %q", got, c.files)
				}
				if after := sizes(t, dir); after != before {
					t.Errorf("files changed: %s -> %s", before, after)
				}
			})
		}
	}
}

// sizes describes the files under dir by name and size.
func sizes(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, f := range listFiles(t, dir) {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%v:%d ", f, fi.Mode(), fi.Size())
	}
	return b.String()
}

// TestAdminCommandsOnAGatewaysDatabase: on a file gatehouse serve made, the
// printed password opens the dashboard user and the printed key the admin
// API of the next start.
func TestAdminCommandsOnAGatewaysDatabase(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "g.db")
	serveArgs := []string{"--db", db, "--proxy-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}
	lines, cancel, errc := startInProcess(t, serveArgs, env())
	lines.wait(t, regexp.MustCompile(`dashboard: (http://\S+)`), errc)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	if err := run(context.Background(), []string{"admin", "reset-password", "--db", db}, env(), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	pw := regexp.MustCompile(`^dashboard user: admin\npassword: (\S+)\n$`).FindStringSubmatch(out.String())
	if pw == nil {
		t.Fatalf("no password printed: %q", out.String())
	}
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := st.UserPasswordHash(context.Background(), "admin")
	st.Close()
	if err != nil || bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw[1])) != nil {
		t.Fatalf("printed password does not open the dashboard user: %v", err)
	}

	out.Reset()
	if err := run(context.Background(), []string{"admin", "new-key"}, env("GATEHOUSE_DB", db), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`^admin API key: (\S+)\nadmin secret: (\S+)\n$`).FindStringSubmatch(out.String())
	if key == nil {
		t.Fatalf("no key printed: %q", out.String())
	}
	lines, cancel, errc = startInProcess(t, serveArgs, env())
	admin := lines.wait(t, regexp.MustCompile(`dashboard: (http://\S+)`), errc)[1]
	defer func() { cancel(); <-errc }()
	if strings.Contains(lines.all(), "First start") {
		t.Errorf("the admin commands made the next start bootstrap again:\n%s", lines.all())
	}
	if code := adminGet(t, admin+"/api/services", key[1], key[2]); code != 200 {
		t.Errorf("admin API with the new key: %d", code)
	}
}

// adminGet calls the admin API with a key and returns the status.
func adminGet(t *testing.T, url, clientID, secret string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.SetBasicAuth(clientID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdminCommandRefusesAForeignDatabase: a SQLite file gatehouse serve
// never started on is refused; its credentials would match nothing.
func TestAdminCommandRefusesAForeignDatabase(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "other.db")
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	var out strings.Builder
	err = run(context.Background(), []string{"admin", "new-key", "--db", db}, env(), &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), db+" (--db) was never started by gatehouse serve") {
		t.Fatalf("err = %v", err)
	}
	if _, ok := err.(usageError); ok {
		t.Errorf("a database problem is exit 1, not a usage error")
	}
	if out.Len() != 0 {
		t.Errorf("printed %q", out.String())
	}
}
