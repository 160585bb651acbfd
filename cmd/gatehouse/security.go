package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"gatehouse/store"
)

// The security commands and checks (contract section 14): the secrets key
// file, gatehouse audit verify, gatehouse admin rotate-secrets-key.

var secretsKeyFlag = flagSpec{name: "secrets-key-file", env: "GATEHOUSE_SECRETS_KEY_FILE", def: "",
	help: "file of 32 random bytes, base64: secrets encrypted at rest"}

// checkSecretsKey reads and parses the key file a flag names; "" is no key.
func checkSecretsKey(s source) ([]byte, error) {
	if s.value == "" {
		return nil, nil
	}
	b, err := os.ReadFile(s.value)
	if err != nil {
		return nil, s.bad("cannot read it: " + pathReason(err))
	}
	k, err := store.ParseSecretsKey(b)
	if err != nil {
		return nil, s.bad("want 32 random bytes, base64 (make one with: head -c 32 /dev/urandom | base64)")
	}
	return k, nil
}

// useSecretsKey applies the key to an open store; a database that the key
// (or its absence) cannot read exits 1 naming the flag.
func useSecretsKey(ctx context.Context, st *store.Store, key []byte) error {
	if err := st.UseSecretsKey(ctx, key); err != nil {
		if errors.Is(err, store.ErrSecretsKey) {
			return fmt.Errorf("--secrets-key-file: %w", err)
		}
		return err
	}
	return nil
}

var (
	auditFlags       = []flagSpec{{name: dbFlag.name, env: dbFlag.env, def: dbFlag.def, help: "the gateway's SQLite file; it must exist"}}
	rotateFlags      = append(append([]flagSpec{}, auditFlags...), oldKeyFlag, newKeyFlag)
	oldKeyFlag       = flagSpec{name: "old-key-file", env: "GATEHOUSE_OLD_SECRETS_KEY_FILE", def: "", help: "the key file the secrets are encrypted with now"}
	newKeyFlag       = flagSpec{name: "new-key-file", env: "GATEHOUSE_NEW_SECRETS_KEY_FILE", def: "", help: "the key file to encrypt them with"}
	auditUsage       = "usage: gatehouse audit verify [--db FILE]\n\nrecomputes the audit log's hash chain: exit 0 when it holds, 1 naming the first revision where it breaks.\n"
	rotateKeyCommand = "admin rotate-secrets-key"
)

// runAuditCmd runs gatehouse audit <sub>.
func runAuditCmd(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"audit needs a subcommand: verify (gatehouse help audit)"}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	case "verify":
	default:
		return usageError{fmt.Sprintf("unknown audit subcommand %q (want verify)", args[0])}
	}
	v, err := parseFlags("audit verify", auditFlags, args[1:], getenv)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, flagHelp("audit verify", auditFlags))
		return nil
	}
	if err != nil {
		return err
	}
	if v["db"].value == "" {
		return v["db"].bad("want a file path")
	}
	st, err := openExisting(ctx, v["db"].value)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := st.VerifyAudit(ctx)
	if err != nil {
		return err // names the revision
	}
	fmt.Fprintf(stdout, "audit log: %d entries, the hash chain holds\n", n)
	return nil
}

// rotateSecretsKey re-encrypts every secret of the database from the old
// key file's key to the new one's, in one transaction.
func rotateSecretsKey(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	v, err := parseFlags(rotateKeyCommand, rotateFlags, args, getenv)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, flagHelp(rotateKeyCommand, rotateFlags))
		return nil
	}
	if err != nil {
		return err
	}
	if v["db"].value == "" {
		return v["db"].bad("want a file path")
	}
	var keys [2][]byte
	for i, name := range []string{"old-key-file", "new-key-file"} {
		s := v[name]
		if s.value == "" {
			return usageError{fmt.Sprintf("%s is required (gatehouse %s --help)", s, rotateKeyCommand)}
		}
		if keys[i], err = checkSecretsKey(s); err != nil {
			return err
		}
	}
	st, err := openExisting(ctx, v["db"].value)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RotateSecretsKey(ctx, keys[0], keys[1]); err != nil {
		if errors.Is(err, store.ErrSecretsKey) {
			return fmt.Errorf("--old-key-file: %w", err)
		}
		return err
	}
	fmt.Fprintln(stdout, "secrets re-encrypted with the new key; start gatehouse serve with --secrets-key-file", v["new-key-file"].value)
	return nil
}
