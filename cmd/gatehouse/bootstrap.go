package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/crypto/bcrypt"

	"gatehouse"
	"gatehouse/store"
)

const (
	adminUser        = "admin"
	metaBootstrapped = "bootstrapped"
	demoGroupID      = "demo"
	demoServiceID    = "demo"
	demoClientID     = "demo-client"
)

// bootInfo is what a first start created; generated values are printed once.
type bootInfo struct {
	password, passwordFrom string
	clientID, secret       string
	keyFrom                string
}

// bootstrap creates, on an empty database only, the admin-api-group, the
// dashboard user and the admin API key. It answers nil on later starts.
func bootstrap(ctx context.Context, st *store.Store, getenv func(string) string) (*bootInfo, error) {
	if _, done, err := st.GetMeta(ctx, metaBootstrapped); err != nil {
		return nil, fmt.Errorf("read bootstrap state: %w", err)
	} else if done {
		return nil, nil
	}
	if err := ensureAdminGroup(ctx, st); err != nil {
		return nil, err
	}
	b := &bootInfo{password: getenv("GATEHOUSE_ADMIN_PASSWORD"), passwordFrom: "GATEHOUSE_ADMIN_PASSWORD"}
	if b.password == "" {
		b.password, b.passwordFrom = gatehouse.NewPassword(), ""
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(b.password), bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("hash admin password: %w", err)
	}
	if err := st.CreateUser(ctx, adminUser, string(hash)); err != nil && gatehouse.KindOf(err) != gatehouse.KindConflict {
		return nil, fmt.Errorf("create dashboard user: %w", err)
	}
	k, err := createAdminKey(ctx, st, getenv)
	if err != nil {
		return nil, err
	}
	b.clientID, b.secret = k.ClientID, k.ClientSecret
	if getenv("GATEHOUSE_ADMIN_CLIENT_SECRET") != "" {
		b.keyFrom = "GATEHOUSE_ADMIN_CLIENT_SECRET"
	}
	if err := st.SetMeta(ctx, metaBootstrapped, "1"); err != nil {
		return nil, fmt.Errorf("record bootstrap: %w", err)
	}
	return b, nil
}

func ensureAdminGroup(ctx context.Context, st *store.Store) error {
	if _, err := st.GetGroup(ctx, gatehouse.AdminGroupID); err == nil {
		return nil
	} else if gatehouse.KindOf(err) != gatehouse.KindNotFound {
		return fmt.Errorf("read admin group: %w", err)
	}
	g := gatehouse.Group{ID: gatehouse.AdminGroupID, Name: "Admin API", Description: "Keys of this group may call the admin REST API."}
	if err := st.CreateGroup(ctx, &g); err != nil {
		return fmt.Errorf("create admin group: %w", err)
	}
	return nil
}

// createAdminKey adds a key to admin-api-group; id and secret from the
// environment when given (first start only), else generated.
func createAdminKey(ctx context.Context, st *store.Store, getenv func(string) string) (gatehouse.APIKey, error) {
	k := gatehouse.DefaultAPIKey()
	k.ClientID = getenv("GATEHOUSE_ADMIN_CLIENT_ID")
	k.ClientSecret = getenv("GATEHOUSE_ADMIN_CLIENT_SECRET")
	k.ClientName = "admin api key"
	k.AuthorizedEntities = []string{gatehouse.GroupEntity(gatehouse.AdminGroupID)}
	if err := st.CreateAPIKey(ctx, &k); err != nil {
		return k, fmt.Errorf("create admin api key: %w", err)
	}
	return k, nil
}

func (b *bootInfo) print(w io.Writer) {
	fmt.Fprintln(w, "First start: bootstrap credentials (shown once; keep them safe)")
	if b.passwordFrom == "" {
		fmt.Fprintf(w, "  dashboard user:  admin\n  password:        %s\n", b.password)
	} else {
		fmt.Fprintf(w, "  dashboard user:  admin (password from %s)\n", b.passwordFrom)
	}
	if b.keyFrom == "" {
		fmt.Fprintf(w, "  admin API key:   %s\n  admin secret:    %s\n", b.clientID, b.secret)
	} else {
		fmt.Fprintf(w, "  admin API key:   %s (secret from %s)\n", b.clientID, b.keyFrom)
	}
	fmt.Fprintln(w, "  lost them? gatehouse admin reset-password / gatehouse admin new-key")
}

// openExisting opens the database of a gateway for an admin command. It
// never creates one: a path that does not hold a SQLite file, or a database
// gatehouse serve never started on, is an error naming the path (exit 1), so
// that a wrong --db cannot print credentials that match nothing.
func openExisting(ctx context.Context, path string) (*store.Store, error) {
	// name is the path and the flag: "/abs/g.db (--db)", or
	// "/abs/g.db (--db g.db)" for a relative path.
	name := path + " (--db)"
	if abs, err := filepath.Abs(path); err == nil && abs != path {
		name = fmt.Sprintf("%s (--db %s)", abs, path)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("database %s does not exist; name the gateway's file, or start gatehouse serve once to create it", name)
	case err != nil:
		return nil, fmt.Errorf("database %s: %s", name, pathReason(err))
	case fi.IsDir():
		return nil, fmt.Errorf("database %s is a folder, not a file", name)
	}
	if err := checkSQLiteHeader(path); err != nil {
		return nil, fmt.Errorf("database %s %w", name, err)
	}
	if !writable(path) || !writable(filepath.Dir(path)) {
		return nil, fmt.Errorf("database %s is not writable: the file and its folder must be", name)
	}
	st, err := store.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	if _, done, err := st.GetMeta(ctx, metaBootstrapped); err != nil || !done {
		st.Close()
		if err != nil {
			return nil, fmt.Errorf("read database %s: %w", name, err)
		}
		// By now store.Open has added our tables to that file: only the store
		// could look inside it first, and an empty or non-SQLite file, the
		// likely mistakes, were refused above without writing.
		return nil, fmt.Errorf("database %s was never started by gatehouse serve; start it once first", name)
	}
	return st, nil
}

// cliContext marks the admin commands' writes as made by the command line,
// for the change log and the audit log.
func cliContext(ctx context.Context) context.Context {
	return gatehouse.WithActor(ctx, gatehouse.ActorCLI)
}

// resetPassword sets a new generated dashboard password and prints it.
func resetPassword(ctx context.Context, db string, key []byte, stdout io.Writer) error {
	st, err := openExisting(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := useSecretsKey(ctx, st, key); err != nil {
		return err
	}
	ctx = cliContext(ctx)
	pw := gatehouse.NewPassword()
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	err = st.SetUserPassword(ctx, adminUser, string(hash))
	if gatehouse.KindOf(err) == gatehouse.KindNotFound {
		err = st.CreateUser(ctx, adminUser, string(hash))
	}
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	fmt.Fprintf(stdout, "dashboard user: admin\npassword: %s\n", pw)
	return nil
}

// newAdminKey adds a generated key to admin-api-group and prints it.
func newAdminKey(ctx context.Context, db string, key []byte, stdout io.Writer) error {
	st, err := openExisting(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := useSecretsKey(ctx, st, key); err != nil {
		return err
	}
	ctx = cliContext(ctx)
	if err := ensureAdminGroup(ctx, st); err != nil {
		return err
	}
	k, err := createAdminKey(ctx, st, func(string) string { return "" })
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "admin API key: %s\nadmin secret: %s\n", k.ClientID, k.ClientSecret)
	return nil
}

// demoSetup is the demo key to print curl lines for.
type demoSetup struct{ clientID, secret string }

// ensureDemo creates the demo group, service and key when missing, and points
// the demo service at this run's echo upstream (its port changes per start).
func ensureDemo(ctx context.Context, st *store.Store, echoAddr string) (*demoSetup, error) {
	if _, err := st.GetGroup(ctx, demoGroupID); gatehouse.KindOf(err) == gatehouse.KindNotFound {
		g := gatehouse.Group{ID: demoGroupID, Name: "Demo", Description: "Created by --demo."}
		if err := st.CreateGroup(ctx, &g); err != nil {
			return nil, fmt.Errorf("create demo group: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read demo group: %w", err)
	}
	target := []gatehouse.Target{{Host: echoAddr, Scheme: "http"}}
	svc, err := st.GetService(ctx, demoServiceID)
	switch {
	case gatehouse.KindOf(err) == gatehouse.KindNotFound:
		svc = gatehouse.DefaultService()
		svc.ID, svc.GroupID, svc.Name = demoServiceID, demoGroupID, "Demo echo"
		svc.Domain = "localhost"
		svc.Targets = target
		svc.PublicPatterns = []string{"/public(/.*)?"}
		if err := st.CreateService(ctx, &svc); err != nil {
			return nil, fmt.Errorf("create demo service: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("read demo service: %w", err)
	case !slices.Equal(svc.Targets, target):
		svc.Targets = target
		if err := st.UpdateService(ctx, &svc); err != nil {
			return nil, fmt.Errorf("update demo service: %w", err)
		}
	}
	k, err := st.GetAPIKey(ctx, demoClientID)
	if gatehouse.KindOf(err) == gatehouse.KindNotFound {
		k = gatehouse.DefaultAPIKey()
		k.ClientID, k.ClientName = demoClientID, "Demo key"
		k.AuthorizedEntities = []string{gatehouse.GroupEntity(demoGroupID)}
		k.ThrottlingQuota, k.DailyQuota, k.MonthlyQuota = 10, 1000, 10000
		if err := st.CreateAPIKey(ctx, &k); err != nil {
			return nil, fmt.Errorf("create demo key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read demo key: %w", err)
	}
	return &demoSetup{clientID: k.ClientID, secret: k.ClientSecret}, nil
}

// print writes curl lines that work as printed against the gateway at base.
func (d *demoSetup) print(w io.Writer, base string) {
	u, _ := url.Parse(base)
	host := ""
	if u != nil && u.Hostname() != "localhost" {
		host = " -H 'Host: localhost'" // the demo service answers on host "localhost"
	}
	fmt.Fprintf(w, "Demo service (built-in echo upstream); try:\n")
	fmt.Fprintf(w, "  curl -i%s -u %s:%s %s/hello\n", host, d.clientID, d.secret, base)
	fmt.Fprintf(w, "  curl -i%s -H 'Otoroshi-Client-Id: %s' -H 'Otoroshi-Client-Secret: %s' %s/hello\n", host, d.clientID, d.secret, base)
	fmt.Fprintf(w, "  curl -i%s %s/public/hello    # public path: no key needed\n", host, base)
	fmt.Fprintf(w, "  curl -i%s %s/hello           # no key: 401\n", host, base)
}
