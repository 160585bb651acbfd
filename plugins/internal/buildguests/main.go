// Command buildguests builds test plugins (the examples and the guests under
// plugins/testdata/guests, in Go, C and Rust) into a directory, and optionally
// fills a wazero compilation cache with them. Test packages run it from
// their TestMain, so each package builds its guests once, and compiles them
// in a process without the race detector (compiling is pure Go work that
// -race slows tenfold; the cached machine code is the same either way):
//
//	go run ./plugins/internal/buildguests -out DIR [-cache DIR] hmacauth trap ...
//
// A NAME=./path argument builds the Go package at path (relative to the
// module root) as NAME: a package's own test guests.
//
// It finds the guests' sources from the module root (go env GOMOD), so it
// runs from any directory of the module. A -cache run must be linked with the wazero
// version the reading process sees (-ldflags -X .../internal/version.version=V),
// because wazero names its cache directory after that version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"gatehouse/plugins"
)

// Guests by name: Go packages and C files, relative to the module root.
var (
	goGuests = map[string]string{
		"hmacauth":    "./plugins/examples/hmacauth",
		"rewrite":     "./plugins/examples/rewrite",
		"deny":        "./plugins/examples/deny",
		"noop":        "./plugins/testdata/guests/noop",
		"echo":        "./plugins/testdata/guests/echo",
		"membomb":     "./plugins/testdata/guests/membomb",
		"conformance": "./plugins/testdata/guests/conformance",
	}
	cGuests = map[string]string{
		"c":         "plugins/testdata/guests/c/guest.c",
		"loop":      "plugins/testdata/guests/loop/loop.c",
		"trap":      "plugins/testdata/guests/trap/trap.c",
		"noexports": "plugins/testdata/guests/noexports/noexports.c",
	}
	rustGuests = map[string]string{
		"rust": "plugins/testdata/guests/rust/guest.rs",
	}
)

func main() {
	out := flag.String("out", "", "directory to write NAME.wasm files into")
	cache := flag.String("cache", "", "wazero compilation cache directory to fill (optional)")
	flag.Parse()
	if err := run(*out, *cache, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "buildguests:", err)
		os.Exit(1)
	}
}

func run(out, cache string, names []string) error {
	if out == "" {
		return errors.New("-out is required")
	}
	if len(names) == 0 {
		for n := range goGuests {
			names = append(names, n)
		}
		for n := range cGuests {
			names = append(names, n)
		}
		for n := range rustGuests {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmds := make([]*exec.Cmd, 0, len(names))
	for i, n := range names {
		pkg := goGuests[n]
		if name, path, ok := strings.Cut(n, "="); ok {
			n, pkg = name, path
			names[i] = name
		}
		dst := filepath.Join(out, n+".wasm")
		switch {
		case pkg != "":
			cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", dst, pkg)
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
			cmds = append(cmds, cmd)
		case cGuests[n] != "":
			cmds = append(cmds, exec.Command("clang", "--target=wasm32-wasi", "--sysroot=/usr", "-O2",
				"-mexec-model=reactor", "-o", dst, cGuests[n]))
		case rustGuests[n] != "":
			cmds = append(cmds, exec.Command(rustc(), "--target", "wasm32-wasi", "-O", "-C", "strip=symbols",
				"-o", dst, rustGuests[n]))
		default:
			return fmt.Errorf("unknown guest %q", n)
		}
		cmds[len(cmds)-1].Dir = root
	}
	if err := runAll(cmds); err != nil {
		return err
	}
	if cache == "" {
		return nil
	}
	return precompile(cache, out, names)
}

// rustc is Debian's rustc, whose wasm32 standard library apt installs;
// another rustc (rustup's) may come first on PATH without that target.
func rustc() string {
	if _, err := os.Stat("/usr/bin/rustc"); err == nil {
		return "/usr/bin/rustc"
	}
	return "rustc"
}

func moduleRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the gatehouse module")
	}
	return filepath.Dir(gomod), nil
}

// runAll runs the builds two at a time: the machines that run the tests are small.
func runAll(cmds []*exec.Cmd) error {
	errs := make([]error, len(cmds))
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i, c := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if b, err := c.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("%s: %w\n%s(needs: apt-get install golang clang lld wasi-libc libclang-rt-14-dev-wasm32 rustc libstd-rust-dev-wasm32)",
					c.String(), err, b)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// precompile compiles every module once through the plugins host, which
// stores the machine code in the cache; two at a time, as the builds.
func precompile(cache, out string, names []string) error {
	ctx := context.Background()
	h, err := plugins.NewHost(ctx, plugins.Config{CacheDir: cache})
	if err != nil {
		return err
	}
	defer h.Close(ctx)
	errs := make([]error, len(names))
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			b, err := os.ReadFile(filepath.Join(out, n+".wasm"))
			if err != nil {
				errs[i] = err
				return
			}
			// Modules meant to be refused (noexports) still compile before
			// the export check refuses them, so they land in the cache too.
			_ = h.Check(ctx, b)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
