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
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run is the whole program, with its environment passed in so tests can run
// it in-process. A usageError means exit 2, any other error exit 1; help is
// printed on stdout and is not an error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve" // the default command, also when args start with a flag
	if len(args) > 0 {
		first := args[0]
		switch first {
		case "-h", "-help", "--help":
			first = "help"
		case "-version", "--version":
			first = "version"
		}
		if !strings.HasPrefix(first, "-") {
			cmd, args = first, args[1:]
		}
	}
	switch cmd {
	case "serve":
		cfg, err := parseConfig(args, getenv)
		if errors.Is(err, errHelp) {
			fmt.Fprint(stdout, flagHelp("serve", serveFlags))
			return nil
		}
		if err != nil {
			return err
		}
		return serve(ctx, cfg, getenv, stdout, stderr)
	case "version":
		if len(args) > 0 {
			return usageError{fmt.Sprintf("unexpected argument %q (gatehouse version takes none)", args[0])}
		}
		fmt.Fprintln(stdout, "gatehouse", version)
		return nil
	case "admin":
		return runAdmin(ctx, args, getenv, stdout)
	case "export", "apply":
		err := runExport
		if cmd == "apply" {
			err = runApply
		}
		if e := err(ctx, args, getenv, stdout); !errors.Is(e, errHelp) {
			return e
		}
		return help([]string{cmd}, getenv, stdout)
	case "audit":
		return runAuditCmd(ctx, args, getenv, stdout)
	case "help":
		return help(args, getenv, stdout)
	}
	return usageError{fmt.Sprintf("unknown command %q (gatehouse help lists the commands)", cmd)}
}

// runAdmin runs gatehouse admin <sub>.
func runAdmin(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"admin needs a subcommand: reset-password, new-key or rotate-secrets-key (gatehouse help admin)"}
	}
	sub := args[0]
	var do func(ctx context.Context, db string, key []byte, stdout io.Writer) error
	switch sub {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, adminUsage)
		return nil
	case "reset-password":
		do = resetPassword
	case "new-key":
		do = newAdminKey
	case "rotate-secrets-key":
		return rotateSecretsKey(ctx, args[1:], getenv, stdout)
	default:
		return usageError{fmt.Sprintf("unknown admin subcommand %q (want reset-password, new-key or rotate-secrets-key)", sub)}
	}
	db, key, err := parseAdminConfig("admin "+sub, args[1:], getenv)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, flagHelp("admin "+sub, adminFlags))
		return nil
	}
	if err != nil {
		return err
	}
	return do(ctx, db, key, stdout)
}

// help prints the commands, or with a command name that command's help.
func help(args []string, getenv func(string) string, stdout io.Writer) error {
	switch {
	case len(args) == 0:
		fmt.Fprintf(stdout, usage, version)
		return nil
	case len(args) == 1 && args[0] == "serve":
		fmt.Fprint(stdout, flagHelp("serve", serveFlags))
		return nil
	case len(args) == 1 && args[0] == "export":
		fmt.Fprint(stdout, flagHelp("export", exportFlags)+declarativeHelp)
		return nil
	case len(args) == 1 && args[0] == "apply":
		fmt.Fprint(stdout, flagHelp("apply", applyFlags)+declarativeHelp)
	case len(args) == 1 && args[0] == "audit":
		fmt.Fprint(stdout, auditUsage)
		return nil
	case len(args) == 1 && args[0] == "admin":
		fmt.Fprint(stdout, adminUsage)
		return nil
	case len(args) == 2 && args[0] == "admin":
		return runAdmin(context.Background(), []string{args[1], "--help"}, getenv, stdout)
	case len(args) == 1 && (args[0] == "version" || args[0] == "help"):
		fmt.Fprintf(stdout, usage, version)
		return nil
	}
	return usageError{fmt.Sprintf("no help for %q (gatehouse help lists the commands)", strings.Join(args, " "))}
}

const usage = `Gatehouse %s: an API gateway on one SQLite file.

usage: gatehouse [command] [flags]

commands:
  serve                  run the gateway and the admin listener (the default command)
  admin reset-password   set and print a new password for the dashboard user admin
  admin new-key          create and print a new admin API key
  export [-o FILE]       print a running gateway's configuration as YAML (admin API)
  apply -f FILE          make a running gateway's configuration equal to FILE
                         (--dry-run: print the plan only; --prune: delete what FILE lacks)
  admin rotate-secrets-key  re-encrypt the secrets with a new key file
  audit verify           check the audit log's hash chain (exit 1 names the broken revision)
  version                print the version (also --version)
  help [command]         print this help (also -h, --help), or a command's flags

'gatehouse help serve' (or 'gatehouse serve --help') lists the flags.
Exit status: 0 done, 1 failed, 2 bad command line (the message names the flag).
`

const declarativeHelp = `
export and apply call the admin API of a running gateway (--admin) with the
admin API key in GATEHOUSE_ADMIN_CLIENT_ID and GATEHOUSE_ADMIN_CLIENT_SECRET.
apply prints one line per change (+ created, ~ updated, - deleted) and a
summary. Exit status: 0 done, 1 failed (the message says why), 2 bad command line.
`

const adminUsage = `usage: gatehouse admin <subcommand> [--db FILE]

subcommands (on the database of a gateway, running or not; they never create one):
  reset-password   set and print a new password for the dashboard user admin
  new-key          create and print a new admin API key (group admin-api-group)
  rotate-secrets-key  re-encrypt every secret: --old-key-file A --new-key-file B

--db (env GATEHOUSE_DB, default gatehouse.db) names the SQLite file; a file that
does not exist is refused with exit status 1. On a database whose secrets are
encrypted, reset-password and new-key need --secrets-key-file (env
GATEHOUSE_SECRETS_KEY_FILE).
`
