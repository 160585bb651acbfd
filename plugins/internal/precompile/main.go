// Command precompile fills a wazero compilation cache directory with the
// given modules, through the plugins host. The package's tests run it
// (without the race detector) before a -race run: compiling a module is
// pure Go work that -race slows tenfold, and the cached machine code is the
// same either way.
//
//	go run ./plugins/internal/precompile -cache DIR a.wasm b.wasm ...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"gatehouse/plugins"
)

func main() {
	cache := flag.String("cache", "", "compilation cache directory")
	flag.Parse()
	if err := run(*cache, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "precompile:", err)
		os.Exit(1)
	}
}

func run(cache string, files []string) error {
	ctx := context.Background()
	h, err := plugins.NewHost(ctx, plugins.Config{CacheDir: cache})
	if err != nil {
		return err
	}
	defer h.Close(ctx)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		// Check compiles with the runtime configuration every plugin
		// uses; modules that are meant to fail still fail here, harmlessly.
		_ = h.Check(ctx, b)
	}
	return nil
}
