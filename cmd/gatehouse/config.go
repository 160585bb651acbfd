package main

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gatehouse"
	"gatehouse/server"
)

// config is the parsed, validated command line and environment.
type config struct {
	server.Config
	DB         string
	Demo       bool
	logLevel   string
	secretsKey []byte // nil: secrets are stored in clear
}

// flagSpec is one flag with its environment variable and default; flags beat env.
type flagSpec struct {
	name, env, def, help string
	shownDef             string // the default as help shows it, when def is not it
	isBool               bool
}

var (
	dbFlag     = flagSpec{name: "db", env: "GATEHOUSE_DB", def: "gatehouse.db", help: "SQLite file; created and migrated on first start"}
	serveFlags = []flagSpec{
		dbFlag,
		{name: "proxy-addr", env: "GATEHOUSE_PROXY_ADDR", def: ":8080", help: "gateway listener, host:port"},
		{name: "admin-addr", env: "GATEHOUSE_ADMIN_ADDR", def: "127.0.0.1:9000", help: "dashboard + admin REST API listener, host:port"},
		{name: "timezone", env: "GATEHOUSE_TIMEZONE", def: "UTC", help: "calendar for daily and monthly quotas (IANA name)"},
		{name: "flush-interval", env: "GATEHOUSE_FLUSH_INTERVAL", def: "1s", help: "how often quota counters are written to SQLite"},
		{name: "demo", env: "GATEHOUSE_DEMO", def: "false", help: "create a demo group, service (built-in echo upstream) and key; print curl lines", isBool: true},
		{name: "wasm-cache", env: "GATEHOUSE_WASM_CACHE", def: "", shownDef: "<db>.wasm-cache", help: "wazero compilation cache directory"},
		{name: "upstream-timeout", env: "GATEHOUSE_UPSTREAM_TIMEOUT", def: "30s", help: "until the upstream's response headers arrive; then 504"},
		{name: "shutdown-timeout", env: "GATEHOUSE_SHUTDOWN_TIMEOUT", def: "10s", help: "bound on finishing in-flight requests at SIGTERM"},
		{name: "trusted-proxies", env: "GATEHOUSE_TRUSTED_PROXIES", def: "", help: "comma-separated CIDRs whose X-Forwarded-For / X-Forwarded-Proto are believed"},
		{name: "proxy-tls-cert", env: "GATEHOUSE_PROXY_TLS_CERT", def: "", help: "PEM certificate file: serve the gateway listener over TLS"},
		{name: "proxy-tls-key", env: "GATEHOUSE_PROXY_TLS_KEY", def: "", help: "PEM key file for --proxy-tls-cert"},
		{name: "log-level", env: "GATEHOUSE_LOG_LEVEL", def: "info", help: "debug (logs every request), info, warn or error"},
		{name: "access-log", env: "GATEHOUSE_ACCESS_LOG", def: "off", help: "off, stdout, or a file path: one JSON line per gateway request"},
		{name: "otlp-endpoint", env: "GATEHOUSE_OTLP_ENDPOINT", def: "", help: "OTLP/HTTP traces endpoint, such as http://127.0.0.1:4318"},
		{name: "role", env: "GATEHOUSE_ROLE", def: "standalone", help: "standalone, leader or worker (a cluster on one Redis)"},
		{name: "redis", env: "GATEHOUSE_REDIS", def: "", help: "redis://[:password@]host:port[/db] or unix:///path/redis.sock; leader and worker only"},
		{name: "leader", env: "GATEHOUSE_LEADER", def: "", help: "a worker's leader: its admin listener URL, http:// or https://"},
		{name: "leader-ca", env: "GATEHOUSE_LEADER_CA", def: "", shownDef: "system roots", help: "PEM file of the CA that signed an https:// leader's certificate"},
		{name: "cluster-token", env: "GATEHOUSE_CLUSTER_TOKEN", def: "", help: "the secret leader and workers share, at least 32 characters"},
		{name: "node-name", env: "GATEHOUSE_NODE_NAME", def: "", shownDef: "the host name", help: "how this node is listed in the cluster"},
		secretsKeyFlag,
	}
	// The admin commands work on an existing database and take nothing else,
	// so a serve-only variable in the environment cannot make them fail.
	adminFlags = []flagSpec{{name: dbFlag.name, env: dbFlag.env, def: dbFlag.def, help: "the gateway's SQLite file; it must exist"}, secretsKeyFlag}
)

// errHelp asks run to print the command's help on stdout and exit 0.
var errHelp = errors.New("help requested")

// textValue is a flag.Value that only records its text: every value is
// checked afterwards, by our code, so that each message names the flag (or
// the environment variable) the same way.
type textValue struct {
	s      string
	isBool bool
}

func (v *textValue) String() string     { return v.s }
func (v *textValue) Set(s string) error { v.s = s; return nil }
func (v *textValue) IsBoolFlag() bool   { return v.isBool }

// source is a value with where it came from, for messages.
type source struct {
	flag, env string // env is set when the value came from the environment
	value     string
}

func (s source) String() string {
	if s.env != "" {
		return s.env + " (" + dashed(s.flag) + ")"
	}
	return dashed(s.flag)
}

// dashed is a flag as users type it: -f, --admin.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// bad is the one-line message for a value that does not pass its check.
func (s source) bad(why string) error {
	return usageError{fmt.Sprintf("invalid value %q for %s: %s", s.value, s, why)}
}

// parseFlags reads args into specs' flags and fills what they left unset
// from the environment. Every problem is a usageError naming the flag; -h and
// --help are errHelp.
func parseFlags(name string, specs []flagSpec, args []string, getenv func(string) string) (map[string]source, error) {
	fset := flag.NewFlagSet(name, flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	vals := map[string]*textValue{}
	for _, f := range specs {
		v := &textValue{s: f.def, isBool: f.isBool}
		vals[f.name] = v
		fset.Var(v, f.name, f.help)
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, usageError{flagError(name, err)}
	}
	if fset.NArg() > 0 {
		return nil, usageError{fmt.Sprintf("unexpected argument %q (gatehouse %s takes flags only)", fset.Arg(0), name)}
	}
	set := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	out := map[string]source{}
	for _, f := range specs {
		s := source{flag: f.name, value: vals[f.name].s}
		if !set[f.name] {
			if v := getenv(f.env); v != "" {
				s.env, s.value = f.env, v
			}
		}
		out[f.name] = s
	}
	return out, nil
}

// flagError rewrites the flag package's messages to name flags as users
// type them (--name) and point at the help.
func flagError(cmd string, err error) string {
	msg := err.Error()
	hint := fmt.Sprintf(" (gatehouse %s --help lists the flags)", cmd)
	if n, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return "unknown flag --" + strings.TrimLeft(n, "-") + hint
	}
	if n, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return "flag --" + strings.TrimLeft(n, "-") + " needs a value"
	}
	return msg + hint
}

// parseConfig parses and checks the flags of gatehouse serve. Nothing is
// created or opened: files and folders are only looked at.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	v, err := parseFlags("serve", serveFlags, args, getenv)
	if err != nil {
		return config{}, err
	}
	var c config
	if c.DB, err = checkServeDB(v["db"]); err != nil {
		return c, err
	}
	if c.ProxyAddr, err = checkAddr(v["proxy-addr"]); err != nil {
		return c, err
	}
	if c.AdminAddr, err = checkAddr(v["admin-addr"]); err != nil {
		return c, err
	}
	if sameListener(c.ProxyAddr, c.AdminAddr) {
		_, port, _ := net.SplitHostPort(c.ProxyAddr)
		return c, usageError{fmt.Sprintf("--proxy-addr %s and --admin-addr %s both take port %s: give them different ports", c.ProxyAddr, c.AdminAddr, port)}
	}
	tz := v["timezone"]
	if tz.value == "" {
		return c, tz.bad("want an IANA time zone such as UTC or Europe/Paris")
	}
	if c.Location, err = time.LoadLocation(tz.value); err != nil {
		return c, tz.bad("unknown time zone; want an IANA name such as UTC or Europe/Paris")
	}
	for _, d := range []struct {
		n   string
		dst *time.Duration
	}{{"flush-interval", &c.FlushInterval}, {"upstream-timeout", &c.UpstreamTimeout}, {"shutdown-timeout", &c.ShutdownTimeout}} {
		s := v[d.n]
		dur, err := time.ParseDuration(s.value)
		if err != nil || dur <= 0 {
			return c, s.bad("want a positive duration such as 1s or 500ms")
		}
		*d.dst = dur
	}
	demo := v["demo"]
	if c.Demo, err = strconv.ParseBool(demo.value); err != nil {
		return c, demo.bad("want true or false")
	}
	wc := v["wasm-cache"]
	if wc.value == "" {
		wc.value = c.DB + ".wasm-cache"
	}
	if err := checkCacheDir(wc); err != nil {
		return c, err
	}
	c.WasmCache = wc.value
	tp := v["trusted-proxies"]
	for _, p := range strings.Split(tp.value, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		pfx, err := gatehouse.ParseIPMatch(p)
		if err != nil {
			return c, tp.bad(fmt.Sprintf("%q is not a CIDR or an IP address", p))
		}
		c.TrustedProxies = append(c.TrustedProxies, pfx)
	}
	if err := checkTLS(v["proxy-tls-cert"], v["proxy-tls-key"]); err != nil {
		return c, err
	}
	c.ProxyTLSCert, c.ProxyTLSKey = v["proxy-tls-cert"].value, v["proxy-tls-key"].value
	ll := v["log-level"]
	if _, ok := logLevels[ll.value]; !ok {
		return c, ll.bad("want debug, info, warn or error")
	}
	c.logLevel = ll.value
	if c.AccessLog, err = checkAccessLog(v["access-log"]); err != nil {
		return c, err
	}
	if c.OTLPEndpoint, err = checkOTLPEndpoint(v["otlp-endpoint"]); err != nil {
		return c, err
	}
	if c.secretsKey, err = checkSecretsKey(v[secretsKeyFlag.name]); err != nil {
		return c, err
	}
	if err := checkCluster(&c, v); err != nil {
		return c, err
	}
	return c, nil
}

// checkAccessLog wants off, stdout, or a file the process can append to: an
// existing writable regular file, or a new name in a writable folder.
func checkAccessLog(s source) (string, error) {
	switch s.value {
	case "off", "stdout":
		return s.value, nil
	case "":
		return "", s.bad("want off, stdout or a file path")
	}
	fi, err := os.Stat(s.value)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return "", s.bad("it is not a regular file")
	case err == nil && !writable(s.value):
		return "", s.bad("the file is not writable")
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return "", s.bad(pathReason(err))
	}
	if err := checkFolder(s, filepath.Dir(s.value)); err != nil {
		return "", err
	}
	return s.value, nil
}

// checkOTLPEndpoint wants an http:// or https:// URL with a host and port.
func checkOTLPEndpoint(s source) (string, error) {
	if s.value == "" {
		return "", nil
	}
	u, err := url.Parse(s.value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return "", s.bad("want an OTLP/HTTP URL such as http://127.0.0.1:4318")
	}
	if _, err := checkAddr(source{flag: s.flag, env: s.env, value: u.Host}); err != nil {
		return "", s.bad("want host:port in the URL, such as http://127.0.0.1:4318")
	}
	return s.value, nil
}

// checkCluster checks the flags of section 11: a leader and a worker need
// Redis and the cluster token, a worker its leader; standalone takes none.
func checkCluster(c *config, v map[string]source) error {
	role := v["role"]
	switch role.value {
	case server.RoleStandalone, server.RoleLeader, server.RoleWorker:
	default:
		return role.bad("want standalone, leader or worker")
	}
	c.Role = role.value
	rd, ld, ca, tok, name := v["redis"], v["leader"], v["leader-ca"], v["cluster-token"], v["node-name"]
	if c.Role == server.RoleStandalone {
		for _, s := range []source{rd, ld, ca, tok} {
			if s.value != "" {
				return usageError{fmt.Sprintf("%s is for a cluster node: give --role leader or --role worker, or leave it out", s)}
			}
		}
		return nil
	}
	if rd.value == "" {
		return usageError{fmt.Sprintf("--redis is required with --role %s", c.Role)}
	}
	if err := checkRedisURL(rd); err != nil {
		return err
	}
	if tok.value == "" {
		return usageError{fmt.Sprintf("--cluster-token is required with --role %s", c.Role)}
	}
	if len(tok.value) < 32 {
		return usageError{fmt.Sprintf("invalid value for %s: at least 32 characters, got %d", tok, len(tok.value))}
	}
	switch {
	case c.Role == server.RoleWorker && ld.value == "":
		return usageError{"--leader is required with --role worker"}
	case c.Role != server.RoleWorker && ld.value != "":
		return usageError{fmt.Sprintf("%s is for --role worker", ld)}
	case c.Role != server.RoleWorker && ca.value != "":
		return usageError{fmt.Sprintf("%s is for --role worker", ca)}
	case c.Role == server.RoleWorker && c.Demo:
		return usageError{"--demo writes configuration: give it to the leader, not to a worker"}
	}
	if ld.value != "" {
		u, err := url.Parse(ld.value)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return ld.bad("want the leader's admin listener URL, such as http://127.0.0.1:9000")
		}
		if _, err := checkAddr(source{flag: ld.flag, env: ld.env, value: hostPort(u)}); err != nil {
			return ld.bad("want the leader's admin listener URL, such as http://127.0.0.1:9000")
		}
	}
	if ca.value != "" {
		pem, err := os.ReadFile(ca.value)
		if err != nil {
			return ca.bad("cannot read it: " + pathReason(err))
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return ca.bad("no PEM certificate in it")
		}
	}
	if name.value == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return usageError{"--node-name: the host name is unknown; give a name"}
		}
		name.value = h
	}
	c.Cluster = server.ClusterConfig{Redis: rd.value, Leader: strings.TrimSuffix(ld.value, "/"), LeaderCA: ca.value,
		Token: tok.value, NodeName: name.value}
	return nil
}

// hostPort is u's host with the scheme's port when it names none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// checkRedisURL wants redis://[:password@]host:port[/db] or unix:///path.
func checkRedisURL(s source) error {
	const want = "want redis://[:password@]host:port[/db] or unix:///path/redis.sock"
	u, err := url.Parse(s.value)
	if err != nil {
		return s.bad(want)
	}
	switch u.Scheme {
	case "redis":
		if _, err := checkAddr(source{value: u.Host}); err != nil || u.Port() == "" || u.Hostname() == "" {
			return s.bad(want)
		}
		if db := strings.TrimPrefix(u.Path, "/"); db != "" {
			if n, err := strconv.Atoi(db); err != nil || n < 0 {
				return s.bad("the database after the / must be a number")
			}
		}
	case "unix":
		if u.Path == "" || u.Host != "" {
			return s.bad(want)
		}
	default:
		return s.bad(want)
	}
	return nil
}

// parseAdminConfig parses the flags of the admin subcommands: --db and the
// secrets key file of an encrypted database. That the database exists is
// checked when it is opened (exit 1).
func parseAdminConfig(name string, args []string, getenv func(string) string) (string, []byte, error) {
	v, err := parseFlags(name, adminFlags, args, getenv)
	if err != nil {
		return "", nil, err
	}
	if v["db"].value == "" {
		return "", nil, v["db"].bad("want a file path")
	}
	key, err := checkSecretsKey(v[secretsKeyFlag.name])
	if err != nil {
		return "", nil, err
	}
	return v["db"].value, key, nil
}

// checkAddr wants host:port with a numeric port from 0 to 65535 and a host
// that is empty, an IP address or a host name (not looked up here).
func checkAddr(s source) (string, error) {
	host, port, err := net.SplitHostPort(s.value)
	if err != nil {
		return "", s.bad("want host:port, such as 127.0.0.1:9000 or :8080")
	}
	if n, err := strconv.Atoi(port); err != nil || n > 65535 || strings.Trim(port, "0123456789") != "" {
		return "", s.bad("the port must be a number from 0 to 65535")
	}
	if host != "" && !validHost(host) {
		return "", s.bad(fmt.Sprintf("%q is not an IP address or a host name", host))
	}
	return s.value, nil
}

func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// sameListener reports whether two checked addresses would bind the same
// fixed port on the same host (port 0 picks a free port each time).
func sameListener(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	na, _ := strconv.Atoi(pa)
	nb, _ := strconv.Atoi(pb)
	if na == 0 || na != nb {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wild(ha) || wild(hb)
}

// writable reports whether this process may write path (access(2), W_OK).
func writable(path string) bool {
	const wOK = 2
	return syscall.Access(path, wOK) == nil
}

// checkServeDB wants a database file that gatehouse serve can open or
// create: an existing writable regular file, or a new name in an existing
// writable folder. The folder must be writable either way, since SQLite keeps
// its -wal and -shm files beside the database.
func checkServeDB(s source) (string, error) {
	if s.value == "" {
		return "", s.bad("want a file path")
	}
	fi, err := os.Stat(s.value)
	switch {
	case err == nil && fi.IsDir():
		return "", s.bad("it is a folder, not a file")
	case err == nil && !fi.Mode().IsRegular():
		return "", s.bad("it is not a regular file")
	case err == nil && !writable(s.value):
		return "", s.bad("the file is not writable")
	case err == nil && fi.Size() > 0:
		// An empty file SQLite makes a new database; any other must be one.
		if err := checkSQLiteHeader(s.value); err != nil {
			return "", s.bad("the file " + err.Error())
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
		return "", s.bad(pathReason(err)) // ENOTDIR: the folder check below says which
	}
	if err := checkFolder(s, filepath.Dir(s.value)); err != nil {
		return "", err
	}
	return s.value, nil
}

// sqliteHeader opens every SQLite 3 database file.
const sqliteHeader = "SQLite format 3\x00"

// checkSQLiteHeader reads the file's first bytes only: an empty file or
// another kind of file is refused before SQLite would turn it into a database.
func checkSQLiteHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot be read: %s", pathReason(err))
	}
	defer f.Close()
	b := make([]byte, len(sqliteHeader))
	if _, err := io.ReadFull(f, b); err != nil || string(b) != sqliteHeader {
		return errors.New("is not a SQLite database")
	}
	return nil
}

// checkFolder wants dir to be an existing folder this process may write.
func checkFolder(s source, dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s.bad(fmt.Sprintf("folder %s does not exist", dir))
	case err != nil:
		return s.bad(pathReason(err))
	case !fi.IsDir():
		return s.bad(fmt.Sprintf("%s is not a folder", dir))
	case !writable(dir):
		return s.bad(fmt.Sprintf("folder %s is not writable", dir))
	}
	return nil
}

// checkCacheDir wants the wasm cache to be a writable folder, or a path that
// can be made one: its nearest existing ancestor is a writable folder.
func checkCacheDir(s source) error {
	dir := s.value
	for {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return s.bad(fmt.Sprintf("%s is not a folder", dir))
			}
			if !writable(dir) {
				return s.bad(fmt.Sprintf("folder %s is not writable", dir))
			}
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return s.bad(pathReason(err))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return s.bad("no folder of it exists")
		}
		dir = parent
	}
}

// checkTLS wants both files or neither, each readable, and a certificate
// that matches its key.
func checkTLS(cert, key source) error {
	if (cert.value == "") != (key.value == "") {
		return usageError{"--proxy-tls-cert and --proxy-tls-key go together: give both or neither"}
	}
	if cert.value == "" {
		return nil
	}
	certPEM, err := os.ReadFile(cert.value)
	if err != nil {
		return cert.bad("cannot read it: " + pathReason(err))
	}
	keyPEM, err := os.ReadFile(key.value)
	if err != nil {
		return key.bad("cannot read it: " + pathReason(err))
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return cert.bad(fmt.Sprintf("not a PEM certificate matching %s: %v", key, err))
	}
	return nil
}

// pathReason is an os error without the path the message already shows.
func pathReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func flagHelp(name string, specs []flagSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: gatehouse %s [flags]\n\nflags (each also read from its environment variable; a flag beats the variable):\n", name)
	for _, f := range specs {
		def := cmp.Or(f.shownDef, f.def, "none")
		env := ""
		if f.env != "" {
			env = "env " + f.env + ", "
		}
		fmt.Fprintf(&b, "  %-20s %s\n  %-20s %sdefault %s\n", dashed(f.name), f.help, "", env, def)
	}
	fmt.Fprintf(&b, "  -h, --help           print this help\n")
	return b.String()
}
