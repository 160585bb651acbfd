package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Fixed names of what the benchmark seeds.
const (
	adminID     = "bench-admin"
	adminSecret = "bench-admin-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
	groupID     = "bench"
	keyID       = "bench-key"
	keySecret   = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"
	emptyKeyID  = "bench-empty" // dailyQuota 0: every call is a 429
	emptySecret = "bench-empty-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
	mainHost    = "bench.local"
	headersHost = "headers.bench.local"
	pluginHost  = "plugin.bench.local"
	smallKeys   = 10 // keys in the small instance, the admin key included
	bulkBatch   = 10_000
)

// gatehouse is one gateway process on a database of its own.
type gatehouse struct {
	name      string
	bin       string
	db        string
	proxyAddr string
	adminAddr string
	pin       pinning
	proc      *child
	admin     *http.Client
	args, env []string // more flags and environment: a cluster node's role
	// from the last start: exec until /health answers, and until the
	// readiness probe (a keyed request) answers 200.
	healthAfter, readyAfter time.Duration
}

func newGatehouse(name, bin, dir string, pin pinning) (*gatehouse, error) {
	proxy, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return &gatehouse{
		name: name, bin: bin, db: filepath.Join(dir, name+".db"),
		proxyAddr: proxy, adminAddr: admin, pin: pin,
		admin: &http.Client{Timeout: 5 * time.Minute},
	}, nil
}

// start runs the gateway and waits until /health answers and, when ready is
// given, until that request answers 200: with a key from the end of the
// bulk load, that is when the keys are served.
func (g *gatehouse) start(ctx context.Context, ready *target) error {
	args := append([]string{"serve",
		"--db", g.db, "--proxy-addr", g.proxyAddr, "--admin-addr", g.adminAddr,
		"--flush-interval", "1s"}, g.args...)
	cmd := g.pin.command(g.pin.proxyCPU, g.bin, args...)
	cmd.Env = append(cleanEnv(),
		"GATEHOUSE_ADMIN_CLIENT_ID="+adminID,
		"GATEHOUSE_ADMIN_CLIENT_SECRET="+adminSecret,
		"GATEHOUSE_ADMIN_PASSWORD=bench-dashboard-password")
	cmd.Env = append(cmd.Env, g.env...)
	c, err := startChild(g.name, cmd, nil)
	if err != nil {
		return err
	}
	g.proc = c
	health := target{addr: g.adminAddr, path: "/health", want: 200}
	tr := newClientTransport(1)
	defer tr.CloseIdleConnections()
	if err := waitReady(ctx, c, 60*time.Second, func() bool { return probe(tr, health) == 200 }); err != nil {
		return fmt.Errorf("%s /health: %w", g.name, err)
	}
	g.healthAfter = time.Since(c.started)
	g.readyAfter = g.healthAfter
	if ready != nil {
		if err := waitReady(ctx, c, 60*time.Second, func() bool { return probe(tr, *ready) == ready.want }); err != nil {
			return fmt.Errorf("%s readiness probe %s%s: %w", g.name, ready.host, ready.path, err)
		}
		g.readyAfter = time.Since(c.started)
	}
	return nil
}

func (g *gatehouse) stop() error {
	if g == nil || g.proc == nil {
		return nil
	}
	return g.proc.stop()
}

// cleanEnv is our environment without GATEHOUSE_* settings, which would
// change what is measured.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEHOUSE_") {
			env = append(env, kv)
		}
	}
	return env
}

// api calls the admin REST API with the admin key and decodes the answer
// into out when given; any status but 200 or 201 is an error.
func (g *gatehouse) api(ctx context.Context, method, path, ctype string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+g.adminAddr+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.SetBasicAuth(adminID, adminSecret)
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := g.admin.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func (g *gatehouse) post(ctx context.Context, path string, v any, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return g.api(ctx, http.MethodPost, path, "application/json", b, out)
}

type obj = map[string]any

// seed creates the group, the services and the small set of keys every
// gatehouse row uses; with wasm, also the plugin and the service running it.
func (g *gatehouse) seed(ctx context.Context, upstreamAddr string, wasm []byte) error {
	if err := g.post(ctx, "/api/groups", obj{"id": groupID, "name": "bench"}, nil); err != nil {
		return err
	}
	targets := []obj{{"host": upstreamAddr, "scheme": "http"}}
	services := []obj{
		{"id": "bench-api", "groupId": groupID, "name": "bench api", "domain": mainHost,
			"targets": targets, "publicPatterns": []string{"/public/.*"}},
		{"id": "bench-headers", "groupId": groupID, "name": "bench headers", "domain": headersHost,
			"targets": targets, "additionalHeaders": map[string]string{
				"X-Bench-Tenant": "acme", "X-Bench-Env": "bench", "X-Bench-Region": "eu-west-1",
				"X-Bench-Version": "2026-01", "X-Bench-Trace": "on"}},
	}
	if wasm != nil {
		var p struct {
			ID string `json:"id"`
		}
		// poolSize 64: an operator sizes a plugin's pool for the requests in
		// flight at once; with the default 8, most of the 32 connections
		// would wait for an instance and the row would measure that wait.
		if err := g.api(ctx, http.MethodPost, "/api/plugins?name=bench-noop&poolSize=64", "application/wasm", wasm, &p); err != nil {
			return fmt.Errorf("upload plugin: %w", err)
		}
		services = append(services, obj{"id": "bench-plugin", "groupId": groupID, "name": "bench plugin",
			"domain": pluginHost, "targets": targets, "plugins": []obj{{"ref": p.ID, "config": ""}}})
	}
	for _, s := range services {
		if err := g.post(ctx, "/api/services", s, nil); err != nil {
			return err
		}
	}
	keys := []obj{
		{"clientId": keyID, "clientSecret": keySecret, "clientName": "bench",
			"throttlingQuota": 1_000_000_000, "dailyQuota": 1_000_000_000_000, "monthlyQuota": 1_000_000_000_000},
		{"clientId": emptyKeyID, "clientSecret": emptySecret, "clientName": "bench empty", "dailyQuota": 0},
	}
	for i := len(keys) + 1; i < smallKeys; i++ { // +1: the admin key
		keys = append(keys, obj{"clientId": fmt.Sprintf("bench-filler-%d", i), "clientName": "filler"})
	}
	for _, k := range keys {
		if err := g.post(ctx, "/api/groups/"+groupID+"/apikeys", k, nil); err != nil {
			return err
		}
	}
	return nil
}

type bulkKey struct {
	ClientID           string   `json:"clientId"`
	ClientSecret       string   `json:"clientSecret"`
	ClientName         string   `json:"clientName"`
	AuthorizedEntities []string `json:"authorizedEntities"`
	ThrottlingQuota    int64    `json:"throttlingQuota"`
	DailyQuota         int64    `json:"dailyQuota"`
	MonthlyQuota       int64    `json:"monthlyQuota"`
}

// bulkLoad adds n keys through POST /api/apikeys/_bulk in batches of 10,000
// and returns the id and secret of the last one, for the readiness probe.
func (g *gatehouse) bulkLoad(ctx context.Context, n int, progress func(done int)) (lastID, lastSecret string, err error) {
	rng := rand.New(rand.NewPCG(1, 2)) // deterministic: same keys every run
	batch := make([]bulkKey, 0, bulkBatch)
	entities := []string{"group_" + groupID}
	for i := 0; i < n; {
		batch = batch[:0]
		for ; i < n && len(batch) < bulkBatch; i++ {
			k := bulkKey{
				ClientID: fmt.Sprintf("bulk-%07d", i), ClientSecret: randomSecret(rng),
				ClientName: fmt.Sprintf("bulk key %d", i), AuthorizedEntities: entities,
				ThrottlingQuota: 1000, DailyQuota: 100_000, MonthlyQuota: 1_000_000,
			}
			batch = append(batch, k)
			lastID, lastSecret = k.ClientID, k.ClientSecret
		}
		b, err := json.Marshal(batch)
		if err != nil {
			return "", "", fmt.Errorf("encode bulk keys: %w", err)
		}
		if err := g.api(ctx, http.MethodPost, "/api/apikeys/_bulk", "application/json", b, nil); err != nil {
			return "", "", err
		}
		if progress != nil {
			progress(i)
		}
	}
	return lastID, lastSecret, nil
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomSecret(rng *rand.Rand) string {
	var b [64]byte
	for i := range b {
		b[i] = alnum[rng.IntN(len(alnum))]
	}
	return string(b[:])
}

func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

// hs256 signs a JWT whose clientId claim names the key, with its secret.
func hs256(clientID, secret string) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	payload := enc.EncodeToString(fmt.Appendf(nil, `{"clientId":%q}`, clientID))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(header + "." + payload))
	return header + "." + payload + "." + enc.EncodeToString(mac.Sum(nil))
}

// gcPauses reads the gateway's stop-the-world GC pauses so far from its
// /metrics (go_gc_duration_seconds, fed by runtime/metrics): their sum in
// seconds and their count.
func (g *gatehouse) gcPauses(ctx context.Context) (gcSample, error) {
	text, err := g.metrics(ctx)
	if err != nil {
		return gcSample{}, err
	}
	return parseGCPauses(text)
}

// metrics reads the gateway's /metrics with the admin key (a worker knows
// the key from its leader's configuration).
func (g *gatehouse) metrics(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.adminAddr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(adminID, adminSecret)
	resp, err := g.admin.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s GET /metrics: %w", g.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s GET /metrics: %s %v", g.name, resp.Status, err)
	}
	return string(b), nil
}

// gcSample is a reading of a process's GC pause summary.
type gcSample struct {
	sum   float64 // seconds
	count float64
}

func parseGCPauses(text string) (gcSample, error) {
	var s gcSample
	var haveSum, haveCount bool
	for line := range strings.Lines(text) {
		name, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "go_gc_duration_seconds_sum":
			dst, haveSum = &s.sum, true
		case "go_gc_duration_seconds_count":
			dst, haveCount = &s.count, true
		default:
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return s, fmt.Errorf("parse %s: %w", name, err)
		}
		*dst = f
	}
	if !haveSum || !haveCount {
		return s, fmt.Errorf("no go_gc_duration_seconds in /metrics")
	}
	return s, nil
}
