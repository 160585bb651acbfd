package main

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// The peers' configurations, templates filled in with addresses and keys.
//
//go:embed peers/nginx.conf peers/Caddyfile peers/haproxy.cfg
var peerConfigs embed.FS

// peer is another proxy measured in the same run: a Debian package's
// binary, a configuration from peers/, pinned like the baseline.
type peer struct {
	id, name string
	bin      string // looked up on PATH, then in /usr/sbin
	conf     string // template in peers/
	file     string // configuration written for this run
	keyMap   bool   // this configuration checks the Basic key
	args     func(conf string) []string
	env      func(dir string) []string
}

var peers = []peer{
	{id: "nginx", name: "nginx, key map + limit_req", bin: "nginx", conf: "nginx.conf", file: "nginx.conf", keyMap: true,
		args: func(conf string) []string { return []string{"-c", conf, "-e", "stderr"} }},
	{id: "caddy", name: "Caddy, plain proxy", bin: "caddy", conf: "Caddyfile", file: "Caddyfile",
		args: func(conf string) []string { return []string{"run", "--config", conf, "--adapter", "caddyfile"} },
		// Caddy keeps its data under XDG folders: keep them in the run's temp dir.
		env: func(dir string) []string {
			return []string{"XDG_DATA_HOME=" + filepath.Join(dir, "caddy-data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "caddy-config"), "HOME=" + dir}
		}},
	{id: "haproxy", name: "HAProxy, plain proxy", bin: "haproxy", conf: "haproxy.cfg", file: "haproxy.cfg",
		args: func(conf string) []string { return []string{"-db", "-f", conf} }},
	{id: "haproxy-map", name: "HAProxy, key map", bin: "haproxy", conf: "haproxy.cfg", file: "haproxy-keymap.cfg", keyMap: true,
		args: func(conf string) []string { return []string{"-db", "-f", conf} }},
}

// peerKey is one entry of a peer's key map.
type peerKey struct {
	ClientID, Secret string
}

func (k peerKey) Authorization() string { return basicAuth(k.ClientID, k.Secret) }

// Credential is what HAProxy's map holds: the Basic credential, base64.
func (k peerKey) Credential() string { return strings.TrimPrefix(k.Authorization(), "Basic ") }

// peerKeys are the small instance's keys: the bench key and fillers.
func peerKeys() []peerKey {
	rng := rand.New(rand.NewPCG(3, 4))
	keys := []peerKey{{keyID, keySecret}}
	for i := len(keys) + 1; i < smallKeys; i++ {
		keys = append(keys, peerKey{fmt.Sprintf("bench-filler-%d", i), randomSecret(rng)})
	}
	return keys
}

// peerConfig is what the templates see.
type peerConfig struct {
	Dir, Listen, Host, Port, Upstream, KeyMap string
	Keys                                      []peerKey
	Rate                                      int
}

// renderPeer writes p's configuration (and HAProxy's key map) into dir.
func renderPeer(p peer, dir, listen, upstream string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	cfg := peerConfig{Dir: dir, Listen: listen, Host: host, Port: port, Upstream: upstream,
		Keys: peerKeys(), Rate: 1_000_000}
	if p.keyMap && p.bin == "haproxy" {
		var m strings.Builder
		for _, k := range cfg.Keys {
			fmt.Fprintf(&m, "%s %s\n", k.Credential(), k.ClientID)
		}
		cfg.KeyMap = filepath.Join(dir, "keys.map")
		if err := os.WriteFile(cfg.KeyMap, []byte(m.String()), 0o644); err != nil {
			return "", err
		}
	}
	src, err := peerConfigs.ReadFile("peers/" + p.conf)
	if err != nil {
		return "", err
	}
	t, err := template.New(p.conf).Parse(string(src))
	if err != nil {
		return "", fmt.Errorf("parse peers/%s: %w", p.conf, err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, cfg); err != nil {
		return "", fmt.Errorf("render peers/%s: %w", p.conf, err)
	}
	file := filepath.Join(dir, p.file)
	return file, os.WriteFile(file, out.Bytes(), 0o644)
}

// lookPeer finds a peer's binary; Debian puts nginx and haproxy in /usr/sbin,
// which a user's PATH may lack.
func lookPeer(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found (Debian: apt-get install -y %s; `make bench` installs it)", name, name)
}

// startPeers starts every peer on the proxy CPU, each on a port of its own,
// and waits until it forwards (or, with a key map, refuses a missing key).
func (b *bench) startPeers(ctx context.Context) {
	for _, p := range peers {
		if err := b.startPeer(ctx, p); err != nil {
			b.fail("%s: %v", p.name, err)
		}
	}
}

func (b *bench) startPeer(ctx context.Context, p peer) error {
	bin, err := lookPeer(p.bin)
	if err != nil {
		return err
	}
	dir := filepath.Join(b.dir, p.id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	listen, err := freeAddr()
	if err != nil {
		return err
	}
	conf, err := renderPeer(p, dir, listen, b.upstreamAddr)
	if err != nil {
		return err
	}
	cmd := b.pin.command(b.pin.proxyCPU, bin, p.args(conf)...)
	cmd.Dir = dir
	if p.env != nil {
		cmd.Env = append(os.Environ(), p.env(dir)...)
	}
	c, err := startChild(p.name, cmd, nil)
	if err != nil {
		return err
	}
	b.peers = append(b.peers, c)
	tr := newClientTransport(1)
	defer tr.CloseIdleConnections()
	ready := target{addr: listen, host: mainHost, path: "/api/hello", want: 200}
	if p.keyMap {
		ready.header = http.Header{"Authorization": {basicAuth(keyID, keySecret)}}
	}
	if err := waitReady(ctx, c, 10*time.Second, func() bool { return probe(tr, ready) == 200 }); err != nil {
		c.stop()
		return err
	}
	if p.keyMap { // a key check that lets anyone through would measure nothing
		for _, h := range []http.Header{nil, {"Authorization": {basicAuth(keyID, "wrong-secret")}}} {
			if st := probe(tr, target{addr: listen, host: mainHost, path: "/api/hello", header: h, want: 401}); st != 401 {
				c.stop()
				return fmt.Errorf("answers %d without a valid key, want 401", st)
			}
		}
	}
	b.peerAddrs[p.id] = peerProc{addr: listen, proc: c}
	return nil
}

type peerProc struct {
	addr string
	proc *child
}

// peerRows are the peers' rows: each gets the Basic row's request, which the
// key-checking configurations check and the plain ones forward.
func (b *bench) peerRows() []*row {
	basic := http.Header{"Authorization": {basicAuth(keyID, keySecret)}}
	var rows []*row
	for _, p := range peers {
		r := &row{id: p.id, name: p.name, peer: true, tgt: target{host: mainHost, path: "/api/hello", header: basic, want: 200}}
		pp, ok := b.peerAddrs[p.id]
		switch {
		case b.cfg.noPeers:
			r.skip = "--no-peers"
		case !ok:
			r.skip = "did not start"
		default:
			r.tgt.addr = pp.addr
			proc := pp.proc
			r.proc = func() *child { return proc }
		}
		rows = append(rows, r)
	}
	return rows
}
