package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"

	"gatehouse/server"
	"gatehouse/store"
)

var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// serve opens the store, bootstraps credentials, and runs until ctx is done.
func serve(ctx context.Context, c config, getenv func(string) string, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevels[c.logLevel]}))
	c.Logger = log
	c.Stdout = stdout // --access-log stdout
	st, err := store.Open(ctx, c.DB)
	if err != nil {
		return fmt.Errorf("open database %s (--db): %w", c.DB, err)
	}
	defer st.Close()
	if err := useSecretsKey(ctx, st, c.secretsKey); err != nil {
		return err
	}

	// A worker's configuration, credentials included, is its leader's.
	if c.Role != server.RoleWorker {
		boot, err := bootstrap(ctx, st, getenv)
		if err != nil {
			return err
		}
		if boot != nil {
			boot.print(stdout)
		}
	}

	var demo *demoSetup
	if c.Demo {
		echo, err := startEcho()
		if err != nil {
			return fmt.Errorf("start demo echo upstream: %w", err)
		}
		defer echo.Close()
		if demo, err = ensureDemo(ctx, st, echo.Addr().String()); err != nil {
			return err
		}
	}

	srv, err := server.New(ctx, c.Config, st)
	if err != nil {
		return err
	}
	return srv.Run(ctx, func(proxy, admin net.Addr) {
		log.Info("gatehouse listening", "proxy", proxy.String(), "admin", admin.String(), "db", c.DB, "version", version)
		if c.Role == server.RoleWorker {
			fmt.Fprintf(stdout, "Gatehouse %s, worker %s of %s\n  gateway:   %s\n  health:    %s/health\n", version,
				c.Cluster.NodeName, c.Cluster.Leader, server.BaseURL(proxy.String(), c.ProxyTLSCert != ""), server.BaseURL(admin.String(), false))
			return
		}
		fmt.Fprintf(stdout, "Gatehouse %s\n  gateway:   %s\n  dashboard: %s (user admin)\n", version,
			server.BaseURL(proxy.String(), c.ProxyTLSCert != ""), server.BaseURL(admin.String(), false))
		if demo != nil {
			demo.print(stdout, server.BaseURL(proxy.String(), c.ProxyTLSCert != ""))
		}
	})
}

// startEcho serves the demo upstream on a free loopback port: it answers
// every request with what it received, as JSON.
func startEcho() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go http.Serve(ln, http.HandlerFunc(echoHandler)) //nolint:errcheck // ends when ln is closed
	return ln, nil
}

func echoHandler(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n  \"method\": %q,\n  \"path\": %q,\n  \"query\": %q,\n  \"headers\": {", r.Method, r.URL.Path, r.URL.RawQuery)
	first := true
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "\n    %q: %q", k, strings.Join(r.Header[k], ", "))
	}
	b.WriteString("\n  }\n}\n")
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, b.String())
}
