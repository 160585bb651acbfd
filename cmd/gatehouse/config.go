package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gatehouse/server"
)

// config is the parsed, validated command line and environment.
type config struct {
	server.Config
	DB       string
	Demo     bool
	logLevel string
}

// flagSpec is one flag with its environment variable and default; flags beat env.
type flagSpec struct {
	name, env, def, help string
	isBool               bool
}

var flagSpecs = []flagSpec{
	{name: "db", env: "GATEHOUSE_DB", def: "gatehouse.db", help: "SQLite file; created and migrated on first start"},
	{name: "proxy-addr", env: "GATEHOUSE_PROXY_ADDR", def: ":8080", help: "gateway listener"},
	{name: "admin-addr", env: "GATEHOUSE_ADMIN_ADDR", def: "127.0.0.1:9000", help: "dashboard + admin REST API listener"},
	{name: "timezone", env: "GATEHOUSE_TIMEZONE", def: "UTC", help: "calendar for daily and monthly quotas"},
	{name: "flush-interval", env: "GATEHOUSE_FLUSH_INTERVAL", def: "1s", help: "how often quota counters are written to SQLite"},
	{name: "demo", env: "GATEHOUSE_DEMO", def: "false", help: "create a demo group, service (built-in echo upstream) and key; print curl lines", isBool: true},
	{name: "wasm-cache", env: "GATEHOUSE_WASM_CACHE", def: "", help: "wazero compilation cache directory (default <db>.wasm-cache)"},
	{name: "upstream-timeout", env: "GATEHOUSE_UPSTREAM_TIMEOUT", def: "30s", help: "until the upstream's response headers arrive; then 504"},
	{name: "shutdown-timeout", env: "GATEHOUSE_SHUTDOWN_TIMEOUT", def: "10s", help: "bound on finishing in-flight requests at SIGTERM"},
	{name: "trusted-proxies", env: "GATEHOUSE_TRUSTED_PROXIES", def: "", help: "comma-separated CIDRs whose X-Forwarded-For / X-Forwarded-Proto are believed"},
	{name: "proxy-tls-cert", env: "GATEHOUSE_PROXY_TLS_CERT", def: "", help: "certificate file: serve the gateway listener over TLS"},
	{name: "proxy-tls-key", env: "GATEHOUSE_PROXY_TLS_KEY", def: "", help: "key file for --proxy-tls-cert"},
	{name: "log-level", env: "GATEHOUSE_LOG_LEVEL", def: "info", help: "debug (logs every request), info, warn or error"},
}

// parseConfig reads flags, then fills what they left unset from the
// environment, then validates. Errors are usageErrors naming the flag.
func parseConfig(name string, args []string, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	vals := map[string]*string{}
	bools := map[string]*bool{}
	for _, f := range flagSpecs {
		if f.isBool {
			bools[f.name] = fs.Bool(f.name, false, f.help)
		} else {
			vals[f.name] = fs.String(f.name, f.def, f.help)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, usageError{flagHelp(name)}
		}
		return config{}, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return config{}, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	get := func(n string) (string, string) {
		for _, f := range flagSpecs {
			if f.name != n {
				continue
			}
			if !set[n] {
				if v := getenv(f.env); v != "" {
					return v, f.env
				}
			}
			if f.isBool {
				return strconv.FormatBool(*bools[n]), "--" + n
			}
			return *vals[n], "--" + n
		}
		panic("unknown flag " + n)
	}
	bad := func(n, src, v, why string) error {
		return usageError{fmt.Sprintf("invalid value %q for %s: %s", v, src, why)}
	}

	var c config
	c.DB, _ = get("db")
	if c.DB == "" {
		return c, usageError{"--db must not be empty"}
	}
	var src string
	for _, a := range []struct {
		n   string
		dst *string
	}{{"proxy-addr", &c.ProxyAddr}, {"admin-addr", &c.AdminAddr}} {
		v, s := get(a.n)
		if _, _, err := net.SplitHostPort(v); err != nil {
			return c, bad(a.n, s, v, "want host:port")
		}
		*a.dst = v
	}
	v, src := get("timezone")
	loc, err := time.LoadLocation(v)
	if err != nil {
		return c, bad("timezone", src, v, "unknown time zone")
	}
	c.Location = loc
	for _, d := range []struct {
		n   string
		dst *time.Duration
	}{{"flush-interval", &c.FlushInterval}, {"upstream-timeout", &c.UpstreamTimeout}, {"shutdown-timeout", &c.ShutdownTimeout}} {
		v, s := get(d.n)
		dur, err := time.ParseDuration(v)
		if err != nil || dur <= 0 {
			return c, bad(d.n, s, v, "want a positive duration such as 1s or 500ms")
		}
		*d.dst = dur
	}
	v, src = get("demo")
	if c.Demo, err = strconv.ParseBool(v); err != nil {
		return c, bad("demo", src, v, "want true or false")
	}
	c.WasmCache, _ = get("wasm-cache")
	if c.WasmCache == "" {
		c.WasmCache = c.DB + ".wasm-cache"
	}
	v, src = get("trusted-proxies")
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		pfx, err := parsePrefix(p)
		if err != nil {
			return c, bad("trusted-proxies", src, v, "want comma-separated CIDRs or IP addresses")
		}
		c.TrustedProxies = append(c.TrustedProxies, pfx)
	}
	c.ProxyTLSCert, _ = get("proxy-tls-cert")
	c.ProxyTLSKey, src = get("proxy-tls-key")
	if (c.ProxyTLSCert == "") != (c.ProxyTLSKey == "") {
		return c, usageError{"--proxy-tls-cert and --proxy-tls-key go together"}
	}
	v, src = get("log-level")
	if _, ok := logLevels[v]; !ok {
		return c, bad("log-level", src, v, "want debug, info, warn or error")
	}
	c.logLevel = v
	return c, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func flagHelp(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: gatehouse %s [flags]\n", name)
	for _, f := range flagSpecs {
		fmt.Fprintf(&b, "  --%-18s %s (env %s, default %q)\n", f.name, f.help, f.env, f.def)
	}
	return b.String()
}
