package server

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if guestDir != "" {
		os.RemoveAll(guestDir)
	}
	os.Exit(code)
}

// The test plugins this package uploads, by name (plugins/internal/buildguests
// knows the shared ones; NAME=path builds one of ours).
var guestNames = []string{
	"hmacauth", "rewrite", "deny", "echo", "noop", "membomb", "loop", "trap", "noexports",
	"mirror=./server/testdata/guests/mirror", "readbody=./server/testdata/guests/readbody",
}

var (
	guestOnce sync.Once
	guestErr  error
	guestDir  string            // built modules and the shared compilation cache
	guestWasm map[string][]byte // name -> module bytes
)

// guests builds the test plugins once per test binary, on first use, so
// tests without plugins (and fuzz workers) never pay for it. The modules are
// compiled into one wazero cache shared by every harness of the package,
// by a process without the race detector: under -race, compiling a Go guest
// in this process would take seconds each time.
func guests(t testing.TB) map[string][]byte {
	t.Helper()
	guestOnce.Do(func() { guestErr = buildGuests() })
	if guestErr != nil {
		t.Fatalf("building test plugins: %v", guestErr)
	}
	return guestWasm
}

func buildGuests() error {
	dir, err := os.MkdirTemp("", "gatehouse-server-guests-")
	if err != nil {
		return err
	}
	guestDir = dir
	// wazero names its cache directory after its own version as the binary
	// sees it: the builder must be linked to see the same.
	cmd := exec.Command("go", append([]string{"run",
		"-ldflags=-X github.com/tetratelabs/wazero/internal/version.version=" + wazeroVersion(),
		"gatehouse/plugins/internal/buildguests", "-out", dir, "-cache", wasmCacheDir()}, guestNames...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	guestWasm = map[string][]byte{}
	for _, n := range guestNames {
		n, _, _ = strings.Cut(n, "=")
		b, err := os.ReadFile(filepath.Join(dir, n+".wasm"))
		if err != nil {
			return err
		}
		guestWasm[n] = b
	}
	return nil
}

// wasmCacheDir is the compilation cache every plugin harness shares.
func wasmCacheDir() string { return filepath.Join(guestDir, "wasm-cache") }

// wazeroVersion is what wazero's internal/version reports in this binary:
// the module version of its dependency, or "dev" when there is none (as in
// a test binary).
func wazeroVersion() string {
	v := ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if strings.Contains(d.Path, "github.com/tetratelabs/wazero") {
				v = d.Version
			}
		}
		if v == "" || v == "(devel)" {
			v = info.Main.Version
		}
	}
	if v == "" || v == "(devel)" {
		return "dev"
	}
	return v
}
