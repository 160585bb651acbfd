// Command gatehouse runs the Gatehouse API gateway: the proxy listener, the
// admin REST API and the dashboard, on one SQLite file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "gatehouse:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "gatehouse:", err)
		os.Exit(1)
	}
}

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run is the whole program, with its environment passed in so tests can run
// it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := parseConfig("serve", args, getenv)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "gatehouse", version)
		return nil
	case "admin":
		if len(args) == 0 {
			return usageError{"admin needs a subcommand: reset-password or new-key"}
		}
		sub, rest := args[0], args[1:]
		cfg, err := parseConfig("admin "+sub, rest, getenv)
		if err != nil {
			return err
		}
		switch sub {
		case "reset-password":
			return resetPassword(ctx, cfg, stdout)
		case "new-key":
			return newAdminKey(ctx, cfg, getenv, stdout)
		}
		return usageError{fmt.Sprintf("unknown admin subcommand %q (want reset-password or new-key)", sub)}
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q (want serve, version or admin)", cmd)}
}

const usage = `usage: gatehouse [serve] [flags]   run the gateway (the default)
       gatehouse version
       gatehouse admin reset-password --db FILE
       gatehouse admin new-key --db FILE
Run 'gatehouse serve --help' for the flags.
`
