package server

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"gatehouse"
	"gatehouse/server/cluster/clustertest"
	"gatehouse/store"
)

const testClusterToken = "a-cluster-token-of-at-least-32-characters"

// clusterNode is one gateway process of a cluster test, in-process.
type clusterNode struct {
	t            testing.TB
	name, role   string
	db           string
	adminAddr    string // fixed, so a restarted leader is where workers look
	caFile       string // a worker's --leader-ca
	st           *store.Store
	srv          *Server
	proxy, admin string
	stop         func() error
	mod          func(*Config) // a test's changes to the node's configuration
}

// testLogger discards the nodes' logs unless GATEHOUSE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("GATEHOUSE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newClusterNode(t *testing.T, name, role, redisURL, leader string) *clusterNode {
	return newClusterNodeTB(t, name, role, redisURL, leader)
}

func newClusterNodeTB(t testing.TB, name, role, redisURL, leader string) *clusterNode {
	n := &clusterNode{t: t, name: name, role: role, db: filepath.Join(t.TempDir(), name+".db"), adminAddr: "127.0.0.1:0"}
	n.start(redisURL, leader)
	return n
}

func (n *clusterNode) start(redisURL, leader string) {
	t := n.t
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, n.db)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Location:        time.UTC,
		FlushInterval:   100 * time.Millisecond,
		UpstreamTimeout: 5 * time.Second,
		ShutdownTimeout: 5 * time.Second,
		WasmCache:       filepath.Join(filepath.Dir(n.db), "wasm-cache"),
		Logger:          testLogger(),
		ProxyAddr:       "127.0.0.1:0",
		AdminAddr:       n.adminAddr,
		Role:            n.role,
		Cluster: ClusterConfig{Redis: redisURL, Leader: leader, LeaderCA: n.caFile, Token: testClusterToken, NodeName: n.name,
			RedisTimeout: 2 * time.Second},
	}
	if n.mod != nil {
		n.mod(&cfg)
	}
	srv, err := New(ctx, cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	addrs := make(chan [2]string, 1)
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(runCtx, func(p, a net.Addr) { addrs <- [2]string{p.String(), a.String()} }) }()
	select {
	case a := <-addrs:
		// A restart binds the same admin port: workers find their leader.
		n.proxy, n.admin, n.adminAddr = a[0], a[1], a[1]
	case err := <-errc:
		cancel()
		t.Fatalf("%s: Run: %v", n.name, err)
	}
	n.st, n.srv = st, srv
	stopped := false
	n.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		err := <-errc
		st.Close()
		return err
	}
	t.Cleanup(func() { n.stop() })
}

func (n *clusterNode) url() string { return "http://" + n.adminAddr }

// get calls the node's admin listener with the leader's admin key.
func (n *clusterNode) adminCall(method, path string, hdr map[string]string) (int, string) {
	n.t.Helper()
	req, _ := http.NewRequest(method, "http://"+n.admin+path, nil)
	req.Header.Set("Otoroshi-Client-Id", "admin")
	req.Header.Set("Otoroshi-Client-Secret", "admin-secret")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// call sends one keyed request through the node's gateway.
func (n *clusterNode) call(id, secret string) int {
	req, _ := http.NewRequest("GET", "http://"+n.proxy+"/", nil)
	req.Host = "api.test"
	req.Header.Set("Otoroshi-Client-Id", id)
	req.Header.Set("Otoroshi-Client-Secret", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// seedLeader writes the admin key, a group, a service and a key on the leader.
func seedLeader(t testing.TB, leader *clusterNode, up *upstream, daily int64) {
	ctx := context.Background()
	for _, g := range []string{gatehouse.AdminGroupID, "g"} {
		grp := gatehouse.Group{ID: g, Name: g}
		if err := leader.st.CreateGroup(ctx, &grp); err != nil {
			t.Fatal(err)
		}
	}
	ak := newKey("admin", "admin-secret", withGroupKey(gatehouse.AdminGroupID))
	if err := leader.st.CreateAPIKey(ctx, &ak); err != nil {
		t.Fatal(err)
	}
	sv := newService("api", "g", "api.test", up)
	if err := leader.st.CreateService(ctx, &sv); err != nil {
		t.Fatal(err)
	}
	k := newKey("racer", "racer-secret", withGroupKey("g"), func(k *gatehouse.APIKey) { k.DailyQuota = daily })
	if err := leader.st.CreateAPIKey(ctx, &k); err != nil {
		t.Fatal(err)
	}
}

func (n *clusterNode) ready() bool {
	resp, err := http.Get("http://" + n.admin + "/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func (n *clusterNode) health(t *testing.T) map[string]any {
	resp, err := http.Get("http://" + n.admin + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestClusterLeaderAndTwoWorkers(t *testing.T) {
	r := clustertest.StartRedis(t)
	up := newUpstream(t)
	leader := newClusterNode(t, "leader", RoleLeader, r.URL, "")
	const n = 60
	seedLeader(t, leader, up, n)
	w1 := newClusterNode(t, "w1", RoleWorker, r.URL, leader.url())
	w2 := newClusterNode(t, "w2", RoleWorker, r.URL, leader.url())
	nodes := []*clusterNode{leader, w1, w2}
	for _, w := range []*clusterNode{w1, w2} {
		waitUntil(t, w.name+" ready at the leader's revision", func() bool {
			return w.ready() && w.srv.Revision() == leader.srv.Revision()
		})
		h := w.health(t)
		if h["role"] != "worker" || h["leader"] != "connected" || h["redis"] != "connected" ||
			h["revision"] != float64(leader.srv.Revision()) {
			t.Fatalf("%s /health: %v", w.name, h)
		}
		code, body := w.adminCall("GET", "/api/groups", nil)
		if code != 421 || !strings.Contains(body, `"error":"this node is a worker"`) ||
			!strings.Contains(body, `"leader":"`+leader.url()+`"`) {
			t.Fatalf("%s GET /api/groups: %d %s", w.name, code, body)
		}
		if code, _ := w.adminCall("GET", "/", nil); code != 421 {
			t.Fatalf("%s dashboard: %d, want 421", w.name, code)
		}
		if code, body := w.adminCall("GET", "/metrics", nil); code != 200 || !strings.Contains(body, "gatehouse_redis_up 1") ||
			!strings.Contains(body, "gatehouse_cluster_revision_lag 0") {
			t.Fatalf("%s /metrics: %d", w.name, code)
		}
	}

	t.Run("48 clients through three nodes get exactly N", func(t *testing.T) {
		var ok, refused atomic.Int64
		var wg sync.WaitGroup
		for c := range 48 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 4 {
					switch code := nodes[(c+i)%3].call("racer", "racer-secret"); code {
					case 429:
						refused.Add(1)
					case 200:
						ok.Add(1)
					default:
						t.Errorf("status %d", code)
					}
				}
			}()
		}
		wg.Wait()
		if ok.Load() != n {
			t.Fatalf("%d non-429 answers on dailyQuota %d (%d refused)", ok.Load(), n, refused.Load())
		}
		waitUntil(t, "the leader's cluster-wide count", func() bool {
			_, body := leader.adminCall("GET", "/api/apikeys/racer/quotas", nil)
			return strings.Contains(body, fmt.Sprintf(`"currentCallsPerDay":%d,`, n))
		})
		day := time.Now().UTC().Format("2006-01-02")
		waitUntil(t, "every node's calls in the leader's usage history", func() bool {
			cs, err := leader.st.UsageDays(context.Background(), "racer", day, day)
			return err == nil && len(cs) == 1 && cs[0].Count == n
		})
	})

	t.Run("a reset on the leader reaches every node", func(t *testing.T) {
		if code, body := leader.adminCall("DELETE", "/api/apikeys/racer/quotas", nil); code != 200 {
			t.Fatalf("DELETE quotas: %d %s", code, body)
		}
		for _, w := range []*clusterNode{w1, w2} {
			waitUntil(t, w.name+" admitting again", func() bool { return w.call("racer", "racer-secret") == 200 })
		}
	})

	t.Run("a write on the leader is served by every worker", func(t *testing.T) {
		k := newKey("fresh", "fresh-secret", withGroupKey("g"))
		if err := leader.st.CreateAPIKey(context.Background(), &k); err != nil {
			t.Fatal(err)
		}
		for _, w := range []*clusterNode{w1, w2} {
			waitUntil(t, w.name+" serving the new key", func() bool { return w.call("fresh", "fresh-secret") == 200 })
		}
		if err := leader.st.DeleteAPIKey(context.Background(), "fresh"); err != nil {
			t.Fatal(err)
		}
		for _, w := range []*clusterNode{w1, w2} {
			waitUntil(t, w.name+" refusing the deleted key", func() bool { return w.call("fresh", "fresh-secret") == 401 })
		}
	})

	t.Run("nodes", func(t *testing.T) {
		code, body := leader.adminCall("GET", "/api/cluster/nodes", nil)
		var list []map[string]any
		if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 3 {
			t.Fatalf("GET /api/cluster/nodes: %d %s", code, body)
		}
		for i, want := range []struct{ name, role string }{{"leader", "leader"}, {"w1", "worker"}, {"w2", "worker"}} {
			e := list[i]
			if e["name"] != want.name || e["role"] != want.role || e["leader"] != "connected" || e["redis"] != "connected" ||
				!strings.HasPrefix(e["address"].(string), "http://") || e["lastSeen"].(float64) <= 0 || e["revision"].(float64) <= 0 {
				t.Fatalf("node %d: %v", i, e)
			}
		}
	})

	t.Run("the dashboard's Cluster page", func(t *testing.T) {
		hash, err := bcrypt.GenerateFromPassword([]byte("pw-for-the-test"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		if err := leader.st.CreateUser(context.Background(), "admin", string(hash)); err != nil {
			t.Fatal(err)
		}
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		resp, err := c.PostForm("http://"+leader.admin+"/login", url.Values{"username": {"admin"}, "password": {"pw-for-the-test"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		resp, err = c.Get("http://" + leader.admin + "/cluster")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		doc, err := goquery.NewDocumentFromReader(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /cluster: %d %v", resp.StatusCode, err)
		}
		var names []string
		doc.Find(`[data-testid="cluster-node"]`).Each(func(_ int, s *goquery.Selection) {
			names = append(names, s.Find(`[data-testid="node-name"]`).Text()+"/"+s.Find(`[data-testid="node-role"]`).Text()+
				"/"+s.Find(`[data-testid="node-redis"]`).Text())
		})
		if strings.Join(names, " ") != "leader/leader/connected w1/worker/connected w2/worker/connected" {
			t.Fatalf("Cluster page rows: %v", names)
		}
		if doc.Find(`[data-testid="nav-cluster"]`).Length() != 1 {
			t.Fatal("no Cluster entry in the leader's sidebar")
		}
	})

	t.Run("cluster routes take the cluster token only", func(t *testing.T) {
		for _, c := range []struct {
			hdr  map[string]string
			want int
		}{
			{nil, 401}, // the admin key adminCall sends
			{map[string]string{"Authorization": "Bearer wrong-token-wrong-token-wrong-token"}, 401},
			{map[string]string{"Authorization": "Bearer " + testClusterToken}, 200},
		} {
			if code, _ := leader.adminCall("GET", "/api/cluster/changes?from=1", c.hdr); code != c.want {
				t.Errorf("changes with %v: %d, want %d", c.hdr, code, c.want)
			}
		}
	})
}

func TestClusterWorkerAloneOnItsFileThenCatchesUp(t *testing.T) {
	r := clustertest.StartRedis(t)
	up := newUpstream(t)
	leader := newClusterNode(t, "leader", RoleLeader, r.URL, "")
	seedLeader(t, leader, up, 1000)
	w := newClusterNode(t, "w", RoleWorker, r.URL, leader.url())
	waitUntil(t, "the worker at the leader's revision", func() bool { return w.srv.Revision() == leader.srv.Revision() })
	if err := w.stop(); err != nil {
		t.Fatal(err)
	}

	// Writes the worker misses while it is down.
	k := newKey("missed", "missed-secret", withGroupKey("g"))
	if err := leader.st.CreateAPIKey(context.Background(), &k); err != nil {
		t.Fatal(err)
	}
	if err := leader.stop(); err != nil {
		t.Fatal(err)
	}

	// The worker starts alone on its file: ready, serving what it holds.
	w.start(r.URL, leader.url())
	if !w.ready() {
		t.Fatal("a worker restarted on its file is not ready without its leader")
	}
	if code := w.call("racer", "racer-secret"); code != 200 {
		t.Fatalf("a worker alone: %d", code)
	}
	waitUntil(t, "the worker seeing its leader gone", func() bool { return w.health(t)["leader"] == "unreachable" })
	if code := w.call("missed", "missed-secret"); code != 401 {
		t.Fatalf("a key the worker has not received: %d", code)
	}

	// The leader comes back: the worker catches up from its revision.
	leader.start(r.URL, "")
	waitUntil(t, "the worker serving the missed key", func() bool { return w.call("missed", "missed-secret") == 200 })
	waitUntil(t, "the worker connected again", func() bool { return w.health(t)["leader"] == "connected" })
}

// BenchmarkClusterSnapshot1M measures how long a fresh worker takes to load
// and serve a leader's snapshot of 1,000,000 keys (contract: at most 10 s).
// Run with: go test -run '^$' -bench ClusterSnapshot1M -benchtime 1x ./server/
func BenchmarkClusterSnapshot1M(b *testing.B) {
	for range b.N {
		b.StopTimer()
		r := clustertest.StartRedis(b)
		up := newUpstream(b)
		leader := newClusterNodeTB(b, "leader", RoleLeader, r.URL, "")
		seedLeader(b, leader, up, 1000)
		n := 1_000_000
		if v, err := strconv.Atoi(os.Getenv("GATEHOUSE_SNAPSHOT_KEYS")); err == nil {
			n = v // a smaller run, to try it out
		}
		// The keys go into the stopped leader's file, and the leader loads
		// them at its restart in one scan: a running leader applying the 100
		// bulks one by one spent a fifth of the seeding's CPU doing so.
		if err := leader.stop(); err != nil {
			b.Fatal(err)
		}
		st, err := store.Open(context.Background(), leader.db)
		if err != nil {
			b.Fatal(err)
		}
		batch := make([]gatehouse.APIKey, 0, gatehouse.MaxBulkKeys)
		for i := range n {
			batch = append(batch, newKey(fmt.Sprintf("key-%07d", i), "secret", withGroupKey("g")))
			if len(batch) == cap(batch) || i == n-1 {
				if err := st.CreateAPIKeys(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		leader.start(r.URL, "")
		b.StartTimer()
		start := time.Now()
		w := newClusterNodeTB(b, "w", RoleWorker, r.URL, leader.url())
		for w.srv.Revision() != leader.srv.Revision() || w.srv.keys.Len() != leader.srv.keys.Len() {
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("the worker took more than 5 minutes: %d of %d keys", w.srv.keys.Len(), leader.srv.keys.Len())
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/snapshot")
		b.StopTimer()
		w.stop()
		leader.stop()
	}
}

func TestClusterWorkerTakesASnapshotWhenTheLeaderLacksItsChanges(t *testing.T) {
	r := clustertest.StartRedis(t)
	up := newUpstream(t)
	a := newClusterNode(t, "leader", RoleLeader, r.URL, "")
	seedLeader(t, a, up, 1000)
	ctx := context.Background()
	for i := range 5 { // more revisions than the next leader will have
		k := newKey(fmt.Sprintf("extra-%d", i), "s", withGroupKey("g"))
		if err := a.st.CreateAPIKey(ctx, &k); err != nil {
			t.Fatal(err)
		}
	}
	w := newClusterNode(t, "w", RoleWorker, r.URL, a.url())
	waitUntil(t, "the worker at the first leader's revision", func() bool { return w.srv.Revision() == a.srv.Revision() })
	if code := w.call("racer", "racer-secret"); code != 200 {
		t.Fatalf("racer through the worker: %d", code)
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}

	// Another leader, on a new file, where the first one was.
	b := &clusterNode{t: t, name: "leader-b", role: RoleLeader, db: filepath.Join(t.TempDir(), "b.db"), adminAddr: a.adminAddr}
	b.start(r.URL, "")
	seedLeader(t, b, up, 1000)
	k := newKey("other", "other-secret", withGroupKey("g"))
	if err := b.st.CreateAPIKey(ctx, &k); err != nil {
		t.Fatal(err)
	}
	if b.srv.Revision() >= w.srv.Revision() {
		t.Fatalf("the new leader is at %d, the worker at %d: no gap to test", b.srv.Revision(), w.srv.Revision())
	}
	waitUntil(t, "the worker serving the new leader's key", func() bool { return w.call("other", "other-secret") == 200 })
	if w.srv.Revision() != b.srv.Revision() {
		t.Fatalf("worker at revision %d after the snapshot, leader at %d", w.srv.Revision(), b.srv.Revision())
	}
	if code := w.call("extra-1", "s"); code != 401 {
		t.Fatalf("a key only the first leader had: %d after the snapshot, want 401", code)
	}
}

func TestClusterHTTPSLeaderIsVerified(t *testing.T) {
	r := clustertest.StartRedis(t)
	up := newUpstream(t)
	leader := newClusterNode(t, "leader", RoleLeader, r.URL, "")
	seedLeader(t, leader, up, 1000)
	// The leader behind a TLS proxy, whose certificate only the CA file vouches for.
	target, _ := url.Parse("http://" + leader.admin)
	var handshakeErrs syncBuffer
	ts := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	ts.Config.ErrorLog = log.New(&handshakeErrs, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}

	trusting := &clusterNode{t: t, name: "trusting", role: RoleWorker, db: filepath.Join(t.TempDir(), "t.db"), adminAddr: "127.0.0.1:0"}
	trusting.caFile = ca
	trusting.start(r.URL, ts.URL)
	waitUntil(t, "the worker with --leader-ca serving the leader's key", func() bool {
		return trusting.ready() && trusting.call("racer", "racer-secret") == 200
	})

	doubting := newClusterNode(t, "doubting", RoleWorker, r.URL, ts.URL)
	waitUntil(t, "the worker without the CA refused by the TLS handshake", func() bool {
		return strings.Contains(handshakeErrs.String(), "TLS handshake error")
	})
	if doubting.ready() || doubting.health(t)["leader"] != "unreachable" {
		t.Fatalf("a worker that cannot verify its https leader: ready %v, health %v", doubting.ready(), doubting.health(t))
	}
}

// BenchmarkClusterGateway is the Basic-key row through a standalone
// gateway, a leader and a worker on one Redis, every quota on (throttling,
// daily and monthly far from their limits), one request at a time: the
// cost per proxy core, and how many Redis calls 1,000 requests make at
// steady state. Run with: go test -run '^$' -bench ClusterGateway ./server/
func BenchmarkClusterGateway(b *testing.B) {
	up := newUpstream(b)
	standalone := newHarness(b, func(c *Config) { c.Now = time.Now })
	standalone.group("g")
	standalone.service(newService("api", "g", "api.test", up))
	quotas := func(k *gatehouse.APIKey) {
		k.ThrottlingQuota, k.DailyQuota, k.MonthlyQuota = 100_000_000, 1_000_000_000, 1_000_000_000
	}
	standalone.key(newKey("racer", "racer-secret", withGroupKey("g"), quotas))

	r := clustertest.StartRedis(b)
	leader := newClusterNodeTB(b, "leader", RoleLeader, r.URL, "")
	seedLeader(b, leader, up, 1_000_000_000)
	k, err := leader.st.GetAPIKey(context.Background(), "racer")
	if err != nil {
		b.Fatal(err)
	}
	quotas(&k)
	if err := leader.st.UpdateAPIKey(context.Background(), &k); err != nil {
		b.Fatal(err)
	}
	worker := newClusterNodeTB(b, "worker", RoleWorker, r.URL, leader.url())
	waitUntil(b, "the worker at the leader's revision", func() bool { return worker.srv.Revision() == leader.srv.Revision() })

	for _, c := range []struct {
		name string
		srv  *Server
	}{{"standalone", standalone.srv}, {"leader", leader.srv}, {"worker", worker.srv}} {
		b.Run(c.name, func(b *testing.B) {
			h := c.srv.Gateway()
			call := func() {
				req := httptest.NewRequest("GET", "http://api.test/x", nil)
				req.SetBasicAuth("racer", "racer-secret")
				w := &discardWriter{h: http.Header{}}
				h.ServeHTTP(w, req)
				if w.status != 200 {
					b.Fatalf("status %d %s", w.status, w.h.Get("Otoroshi-Error-Msg"))
				}
			}
			for range 2000 { // to steady state: slices sized from the rate
				call()
			}
			var calls0 float64
			if c.srv.cq != nil {
				calls0 = testutil.ToFloat64(c.srv.cq.RedisCalls())
			}
			b.ResetTimer()
			for range b.N {
				call()
			}
			b.StopTimer()
			if c.srv.cq != nil {
				b.ReportMetric((testutil.ToFloat64(c.srv.cq.RedisCalls())-calls0)*1000/float64(b.N), "redis-calls/1000req")
			}
		})
	}
}
