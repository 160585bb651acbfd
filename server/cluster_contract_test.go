package server

// Contract section 11, sentence by sentence, against real parts: a
// redis-server on a unix socket, gateway nodes on loopback, SQLite files.
// Bounds are the contract's (1 s, 5 s, 10 s), measured from the answer of
// the write or from the fault; conditions are polled, never slept on.

import (
	"context"
	"encoding/base64"
	"encoding/json"
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
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"gatehouse"
	"gatehouse/server/cluster"
	"gatehouse/server/cluster/clustertest"
	"gatehouse/store"
)

// contractClient never waits long on a node: an answer that takes seconds
// is a failure the test reports, not a hang.
var contractClient = &http.Client{Timeout: 10 * time.Second}

// within polls cond until it holds and fails once bound has passed since
// from: the bound is the contract's. It answers how long it took.
func within(t *testing.T, from time.Time, bound time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	for {
		if cond() {
			return time.Since(from)
		}
		if d := time.Since(from); d > bound {
			t.Fatalf("%s: not within %v (%v and counting)", what, bound, d.Round(time.Millisecond))
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for a result
	}
}

// api calls the node's admin API with the admin key and a JSON body.
func (n *clusterNode) api(method, path, body string) (int, http.Header, string) {
	n.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://"+n.admin+path, rd)
	req.Header.Set("Otoroshi-Client-Id", "admin")
	req.Header.Set("Otoroshi-Client-Secret", "admin-secret")
	switch method {
	case http.MethodPatch:
		req.Header.Set("Content-Type", "application/merge-patch+json")
	default:
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := contractClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// through sends one keyed request through the node's gateway for host and
// answers its status and Otoroshi-Error-Msg.
func (n *clusterNode) through(host, id, secret string) (int, string) {
	n.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+n.proxy+"/", nil)
	req.Host = host
	req.Header.Set("Otoroshi-Client-Id", id)
	req.Header.Set("Otoroshi-Client-Secret", secret)
	resp, err := contractClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Otoroshi-Error-Msg")
}

// healthOK reads the node's /health, answering nil when it does not answer.
func (n *clusterNode) healthOK() map[string]any {
	resp, err := contractClient.Get("http://" + n.admin + "/health")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var m map[string]any
	if json.NewDecoder(resp.Body).Decode(&m) != nil {
		return nil
	}
	return m
}

// metric reads one unlabelled sample of the node's /metrics ("" when absent).
func (n *clusterNode) metric(name string) string {
	n.t.Helper()
	code, _, body := n.api("GET", "/metrics", "")
	if code != 200 {
		n.t.Fatalf("%s /metrics: %d", n.name, code)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// nodes answers the leader's GET /api/cluster/nodes by name.
func (n *clusterNode) nodes() map[string]map[string]any {
	n.t.Helper()
	code, _, body := n.api("GET", "/api/cluster/nodes", "")
	var list []map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil {
		n.t.Fatalf("GET /api/cluster/nodes: %d %s", code, body)
	}
	out := map[string]map[string]any{}
	for _, e := range list {
		out[fmt.Sprint(e["name"])] = e
	}
	return out
}

// startCluster starts Redis, a leader seeded with seedLeader (key racer of
// dailyQuota daily) and workers, each at the leader's revision.
func startCluster(t *testing.T, daily int64, workers int, mod func(*Config)) (*clustertest.Redis, *upstream, *clusterNode, []*clusterNode) {
	t.Helper()
	r := clustertest.StartRedis(t)
	up := newUpstream(t)
	leader := startNode(t, "leader", RoleLeader, r.URL, "", mod)
	seedLeader(t, leader, up, daily)
	var ws []*clusterNode
	for i := range workers {
		ws = append(ws, startNode(t, fmt.Sprintf("w%d", i+1), RoleWorker, r.URL, leader.url(), mod))
	}
	for _, w := range ws {
		waitUntil(t, w.name+" at the leader's revision", func() bool { return w.srv.Revision() == leader.srv.Revision() })
	}
	return r, up, leader, ws
}

func startNode(t *testing.T, name, role, redisURL, leader string, mod func(*Config)) *clusterNode {
	n := &clusterNode{t: t, name: name, role: role, db: t.TempDir() + "/" + name + ".db", adminAddr: "127.0.0.1:0", mod: mod}
	n.start(redisURL, leader)
	return n
}

// "A write committed on the leader is served by every connected worker
// within 1 s": a create, an update and a delete of a key and of a service,
// each timed from the admin API's answer; and the worker's /health
// revision is the write's.
func TestClusterContractWriteServedByEveryWorkerWithinOneSecond(t *testing.T) {
	_, up, leader, workers := startCluster(t, 1000, 2, nil)
	var worst time.Duration
	for _, s := range []struct {
		what, method, path, body string
		want                     int // the status the gateway answers once it serves the write
		msg                      string
		host, id, secret         string
	}{
		{"key created", "POST", "/api/groups/g/apikeys", `{"clientId": "p1", "clientSecret": "p1-secret", "clientName": "p1"}`,
			200, "", "api.test", "p1", "p1-secret"},
		{"key disabled", "PATCH", "/api/apikeys/p1", `{"enabled": false}`, 401, "bad apikey", "api.test", "p1", "p1-secret"},
		{"key enabled again", "PATCH", "/api/apikeys/p1", `{"enabled": true}`, 200, "", "api.test", "p1", "p1-secret"},
		{"key deleted", "DELETE", "/api/apikeys/p1", "", 401, "invalid apikey", "api.test", "p1", "p1-secret"},
		{"service created", "POST", "/api/services", `{"id": "fresh", "groupId": "g", "name": "fresh", "domain": "fresh.test",
			"targets": [{"host": "` + up.host() + `", "scheme": "http"}]}`, 200, "", "fresh.test", "racer", "racer-secret"},
		{"service in maintenance", "PATCH", "/api/services/fresh", `{"maintenanceMode": true}`, 503, "service in maintenance mode",
			"fresh.test", "racer", "racer-secret"},
		{"service deleted", "DELETE", "/api/services/fresh", "", 404, "no route found", "fresh.test", "racer", "racer-secret"},
	} {
		code, hdr, body := leader.api(s.method, s.path, s.body)
		answered := time.Now()
		if code/100 != 2 {
			t.Fatalf("%s: %s %s: %d %s", s.what, s.method, s.path, code, body)
		}
		rev := hdr.Get("Gatehouse-Revision")
		if rev == "" {
			t.Fatalf("%s: no Gatehouse-Revision", s.what)
		}
		for _, w := range workers {
			d := within(t, answered, time.Second, w.name+" serving "+s.what, func() bool {
				code, msg := w.through(s.host, s.id, s.secret)
				return code == s.want && msg == s.msg
			})
			worst = max(worst, d)
			if h := w.healthOK(); fmt.Sprint(h["revision"]) != rev {
				t.Fatalf("%s: %s serves it, its /health says revision %v, the write was %s", s.what, w.name, h["revision"], rev)
			}
		}
	}
	t.Logf("slowest worker: %v after the write's answer", worst.Round(time.Millisecond))
}

// "its DELETE resets them on every node within 1 s": a key used up through
// the leader and two workers admits again on each within 1 s of the
// answer, and GET answers the cluster-wide count from zero.
func TestClusterContractQuotaResetOnEveryNodeWithinOneSecond(t *testing.T) {
	const n = 6
	_, _, leader, workers := startCluster(t, n, 2, nil)
	nodes := append([]*clusterNode{leader}, workers...)
	admitted, refusedOn := 0, map[string]bool{}
	for i := 0; len(refusedOn) < len(nodes); i++ {
		if i > 1000 {
			t.Fatalf("%d admitted, refusals on %v: the quota never ran out", admitted, refusedOn)
		}
		nd := nodes[i%len(nodes)]
		switch code, msg := nd.through("api.test", "racer", "racer-secret"); {
		case code == 200:
			admitted++
		case code == 429 && msg == "too many requests: daily quota":
			refusedOn[nd.name] = true
		default:
			t.Fatalf("%s: %d %s", nd.name, code, msg)
		}
	}
	if admitted != n {
		t.Fatalf("%d admitted through three nodes on dailyQuota %d", admitted, n)
	}
	code, _, body := leader.api("DELETE", "/api/apikeys/racer/quotas", "")
	answered := time.Now()
	if code != 200 {
		t.Fatalf("DELETE quotas: %d %s", code, body)
	}
	for _, nd := range nodes {
		d := within(t, answered, time.Second, nd.name+" admitting after the reset", func() bool {
			code, _ := nd.through("api.test", "racer", "racer-secret")
			return code == 200
		})
		t.Logf("%s admits %v after the reset's answer", nd.name, d.Round(time.Millisecond))
	}
	waitUntil(t, "the cluster-wide count after the reset", func() bool {
		_, _, body := leader.api("GET", "/api/apikeys/racer/quotas", "")
		return strings.Contains(body, fmt.Sprintf(`"currentCallsPerDay":%d,`, len(nodes)))
	})
}

// prodTimeouts gives a node the Redis timeout a deployed node has (the
// cluster package's default), not the generous one of the other tests.
func prodTimeouts(c *Config) { c.Cluster.RedisTimeout = 0 }

// "A node sees a lost leader or Redis within 5 s and a returned one within
// 10 s": the worker's /health "leader" and "redis", gatehouse_redis_up on
// both nodes, and the leader's own entry of /api/cluster/nodes, through
// Redis stopped (SIGSTOP) and continued, Redis killed and restarted, and
// the leader stopped and started again.
func TestClusterContractLostAndReturnedLinks(t *testing.T) {
	r, _, leader, ws := startCluster(t, 1000, 1, prodTimeouts)
	w := ws[0]
	linked := func(what string, from time.Time, bound time.Duration, leaderLink, redisLink string, leaderUp bool) {
		t.Helper()
		up := map[string]string{cluster.Connected: "1", cluster.Unreachable: "0"}[redisLink]
		d := within(t, from, bound, "the worker's /health after "+what, func() bool {
			h := w.healthOK()
			return h != nil && h["leader"] == leaderLink && h["redis"] == redisLink && h["role"] == "worker"
		})
		within(t, from, bound, "the worker's gatehouse_redis_up after "+what, func() bool { return w.metric("gatehouse_redis_up") == up })
		if leaderUp {
			within(t, from, bound, "the leader's gatehouse_redis_up after "+what, func() bool { return leader.metric("gatehouse_redis_up") == up })
			within(t, from, bound, "the leader's own entry after "+what, func() bool {
				e := leader.nodes()["leader"]
				return e["redis"] == redisLink && e["leader"] == cluster.Connected
			})
		}
		t.Logf("%s: the worker's /health says leader %s, redis %s after %v", what, leaderLink, redisLink, d.Round(time.Millisecond))
	}
	linked("start", time.Now(), 0, cluster.Connected, cluster.Connected, true)

	r.Stop()
	linked("redis stopped", time.Now(), 5*time.Second, cluster.Connected, cluster.Unreachable, true)
	waitUntil(t, "the worker reporting redis unreachable to the leader", func() bool { return leader.nodes()["w1"]["redis"] == cluster.Unreachable })
	r.Continue()
	linked("redis continued", time.Now(), 10*time.Second, cluster.Connected, cluster.Connected, true)

	r.Kill()
	linked("redis killed", time.Now(), 5*time.Second, cluster.Connected, cluster.Unreachable, true)
	r.Restart()
	linked("redis restarted", time.Now(), 10*time.Second, cluster.Connected, cluster.Connected, true)
	waitUntil(t, "the worker reporting redis connected to the leader", func() bool { return leader.nodes()["w1"]["redis"] == cluster.Connected })

	if err := leader.stop(); err != nil {
		t.Fatal(err)
	}
	linked("the leader stopped", time.Now(), 5*time.Second, cluster.Unreachable, cluster.Connected, false)
	leader.start(r.URL, "")
	linked("the leader started again", time.Now(), 10*time.Second, cluster.Connected, cluster.Connected, true)
}

// GET /api/cluster/nodes: exactly the contract's fields, the leader's own
// entry ("connected"), each worker as it reports itself, the dashboard's
// Cluster page showing the same rows; a worker that stops is listed while
// it was seen in the last minute and not after (the leader's clock is
// moved, nothing waits a minute).
func TestClusterContractNodesSeenInTheLastMinute(t *testing.T) {
	var skew atomic.Int64
	clock := func(c *Config) {
		if c.Role == RoleLeader {
			c.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		}
	}
	_, _, leader, ws := startCluster(t, 1000, 2, clock)
	page := loginDashboard(t, leader)
	fields := []string{"address", "lastSeen", "leader", "name", "redis", "revision", "role"}
	rev := leader.srv.Revision()
	var list map[string]map[string]any
	waitUntil(t, "every worker reporting the leader's revision", func() bool {
		list = leader.nodes()
		return len(list) == 3 && list["w1"]["revision"] == float64(rev) && list["w2"]["revision"] == float64(rev)
	})
	now := float64(time.Now().Add(time.Duration(skew.Load())).UnixMilli())
	for _, nd := range append([]*clusterNode{leader}, ws...) {
		e := list[nd.name]
		var keys []string
		for k := range e {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if strings.Join(keys, " ") != strings.Join(fields, " ") {
			t.Errorf("%s: fields %v, want %v", nd.name, keys, fields)
		}
		if e["role"] != nd.role || e["address"] != BaseURL(nd.proxy, false) || e["leader"] != cluster.Connected || e["redis"] != cluster.Connected {
			t.Errorf("%s: %v", nd.name, e)
		}
		if ls, _ := e["lastSeen"].(float64); ls > now || ls < now-float64((10*time.Second).Milliseconds()) {
			t.Errorf("%s: lastSeen %v, the leader's clock says %v", nd.name, e["lastSeen"], now)
		}
	}
	checkPage := func() {
		t.Helper()
		want := []string{}
		for _, e := range leader.nodes() {
			want = append(want, fmt.Sprintf("%v/%v/%v/%v/%v/%v", e["name"], e["role"], e["address"], e["revision"], e["leader"], e["redis"]))
		}
		sort.Strings(want)
		got := []string{}
		page("/cluster").Find(`[data-testid="cluster-node"]`).Each(func(_ int, s *goquery.Selection) {
			cell := func(id string) string { return strings.TrimSpace(s.Find(`[data-testid="` + id + `"]`).Text()) }
			got = append(got, strings.Join([]string{cell("node-name"), cell("node-role"), cell("node-address"),
				cell("node-revision"), cell("node-leader"), cell("node-redis")}, "/"))
		})
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("Cluster page rows %v, API %v", got, want)
		}
	}
	checkPage()

	if err := ws[1].stop(); err != nil {
		t.Fatal(err)
	}
	skew.Store(int64(50 * time.Second))
	if _, ok := leader.nodes()["w2"]; !ok {
		t.Fatal("a worker seen 50 s ago is not listed")
	}
	skew.Store(int64(61 * time.Second))
	waitUntil(t, "the list without the stopped worker, with the running one", func() bool {
		l := leader.nodes()
		_, w1 := l["w1"]
		_, w2 := l["w2"]
		return w1 && !w2 && l["leader"]["leader"] == cluster.Connected
	})
	checkPage()
}

// loginDashboard signs in to the node's dashboard and answers a getter of
// its pages.
func loginDashboard(t *testing.T, n *clusterNode) func(path string) *goquery.Document {
	t.Helper()
	c := dashboardSession(t, n)
	return func(path string) *goquery.Document {
		t.Helper()
		resp, err := c.Get("http://" + n.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		doc, err := goquery.NewDocumentFromReader(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return doc
	}
}

// dashboardSession creates the user "admin" and signs in: the client holds
// the session cookie.
func dashboardSession(t *testing.T, n *clusterNode) *http.Client {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw-for-the-test"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.st.CreateUser(context.Background(), "admin", string(hash)); err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.PostForm("http://"+n.admin+"/login", url.Values{"username": {"admin"}, "password": {"pw-for-the-test"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse("http://" + n.admin + "/")
	if len(jar.Cookies(u)) == 0 {
		t.Fatalf("sign-in: %d, no session cookie", resp.StatusCode)
	}
	return c
}

// "the routes a worker uses on the leader (all under /api/cluster/, except
// /api/cluster/nodes, which is an ordinary admin route) take only
// Authorization: Bearer <cluster token>: anything else, the admin key and
// a dashboard session included, is 401."
func TestClusterContractClusterRoutesTakeOnlyTheToken(t *testing.T) {
	_, _, leader, _ := startCluster(t, 1000, 0, nil)
	session := dashboardSession(t, leader)
	adminJWT := hs256(t, "admin-secret", jwt.MapClaims{"clientId": "admin"})
	basic := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	}
	type cred struct {
		name    string
		hdr     map[string]string
		session bool
	}
	none := cred{name: "no header"}
	adminHeaders := cred{name: "the admin key in Otoroshi headers", hdr: map[string]string{"Otoroshi-Client-Id": "admin", "Otoroshi-Client-Secret": "admin-secret"}}
	adminBasic := cred{name: "the admin key as Basic", hdr: map[string]string{"Authorization": basic("admin", "admin-secret")}}
	adminBearer := cred{name: "the admin key as a Bearer JWT", hdr: map[string]string{"Authorization": "Bearer " + adminJWT}}
	cookie := cred{name: "a dashboard session", session: true}
	wrong := cred{name: "a wrong token", hdr: map[string]string{"Authorization": "Bearer " + strings.Repeat("x", len(testClusterToken))}}
	prefix := cred{name: "the token's first half", hdr: map[string]string{"Authorization": "Bearer " + testClusterToken[:len(testClusterToken)/2]}}
	tokenBasic := cred{name: "the token as Basic", hdr: map[string]string{"Authorization": basic("x", testClusterToken)}}
	tokenBare := cred{name: "the token without Bearer", hdr: map[string]string{"Authorization": testClusterToken}}
	token := cred{name: "the cluster token", hdr: map[string]string{"Authorization": "Bearer " + testClusterToken}}
	do := func(path string, c cred) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+leader.admin+path, nil)
		for k, v := range c.hdr {
			req.Header.Set(k, v)
		}
		client := contractClient
		if c.session {
			client = session
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	for _, path := range []string{"/api/cluster/changes?from=0", "/api/cluster/snapshot", "/api/cluster/other"} {
		for _, c := range []cred{none, adminHeaders, adminBasic, adminBearer, cookie, wrong, prefix, tokenBasic, tokenBare} {
			if code, ct := do(path, c); code != 401 || !strings.HasPrefix(ct, "application/json") {
				t.Errorf("%s with %s: %d %s, want 401 JSON", path, c.name, code, ct)
			}
		}
	}
	for path, want := range map[string]int{"/api/cluster/changes?from=0": 200, "/api/cluster/snapshot": 200, "/api/cluster/other": 404} {
		if code, _ := do(path, token); code != want {
			t.Errorf("%s with the cluster token: %d, want %d", path, code, want)
		}
	}
	// /api/cluster/nodes is an admin route: the admin key, never the token.
	for _, c := range []struct {
		c    cred
		want int
	}{{none, 401}, {token, 401}, {cookie, 401}, {wrong, 401}, {adminHeaders, 200}, {adminBasic, 200}, {adminBearer, 200}} {
		if code, _ := do("/api/cluster/nodes", c.c); code != c.want {
			t.Errorf("/api/cluster/nodes with %s: %d, want %d", c.c.name, code, c.want)
		}
	}
}

// A worker's admin listener: /ready 503 before its first configuration and
// 200 once it serves one, /health and /metrics, and 421 with the exact body
// for every other admin and dashboard route (a sample of each, with and
// without the admin key).
func TestClusterContractWorkerAdminListener(t *testing.T) {
	r := clustertest.StartRedis(t)
	up := newUpstream(t)
	// The leader's address is taken before it listens: the worker starts first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	leaderAddr := ln.Addr().String()
	ln.Close()
	leaderURL := "http://" + leaderAddr
	w := startNode(t, "w1", RoleWorker, r.URL, leaderURL, nil)
	get := func(path string) (int, string) {
		resp, err := contractClient.Get("http://" + w.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/ready"); code != 503 {
		t.Fatalf("/ready of a worker without a configuration: %d %s, want 503", code, body)
	}
	if h := w.healthOK(); h["status"] != "ok" || h["role"] != "worker" || h["revision"] != float64(0) ||
		h["leader"] != cluster.Unreachable || h["redis"] != cluster.Connected {
		t.Fatalf("/health of a worker without its leader: %v", h)
	}

	leader := &clusterNode{t: t, name: "leader", role: RoleLeader, db: t.TempDir() + "/leader.db", adminAddr: leaderAddr}
	leader.start(r.URL, "")
	seedLeader(t, leader, up, 1000)
	waitUntil(t, "the worker ready", func() bool { code, _ := get("/ready"); return code == 200 })
	waitUntil(t, "the worker at the leader's revision", func() bool { return w.srv.Revision() == leader.srv.Revision() })
	h := w.healthOK()
	var keys []string
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, " ") != "leader redis revision role status" || h["status"] != "ok" || h["role"] != "worker" ||
		h["revision"] != float64(leader.srv.Revision()) || h["leader"] != cluster.Connected || h["redis"] != cluster.Connected {
		t.Fatalf("/health of a worker: %v", h)
	}
	if code, _, body := w.api("GET", "/metrics", ""); code != 200 || !strings.Contains(body, "\ngatehouse_redis_up 1\n") {
		t.Fatalf("/metrics with the admin key: %d", code)
	}
	if code, _ := get("/metrics"); code != 401 {
		t.Fatalf("/metrics without a key: %d, want 401", code)
	}

	want := map[string]any{"error": "this node is a worker", "leader": leaderURL}
	for _, rt := range []struct{ method, path, body string }{
		{"GET", "/api/groups", ""}, {"POST", "/api/groups", `{"id": "x", "name": "x"}`}, {"GET", "/api/groups/g", ""},
		{"GET", "/api/services", ""}, {"PUT", "/api/services/api", "{}"}, {"DELETE", "/api/services/api", ""},
		{"GET", "/api/apikeys", ""}, {"GET", "/api/apikeys/racer", ""}, {"PATCH", "/api/apikeys/racer", `{"enabled": false}`},
		{"GET", "/api/apikeys/racer/quotas", ""}, {"DELETE", "/api/apikeys/racer/quotas", ""},
		{"POST", "/api/apikeys/_bulk", "[]"}, {"POST", "/api/apikeys/racer/rotate", ""},
		{"GET", "/api/groups/g/apikeys", ""}, {"GET", "/api/plugins", ""}, {"GET", "/api/export", ""},
		{"POST", "/api/apply", "format: gatehouse/v1"}, {"GET", "/api/audit", ""}, {"GET", "/api/users", ""},
		{"GET", "/api/cluster/nodes", ""}, {"GET", "/api/cluster/changes?from=0", ""}, {"GET", "/api/openapi.json", ""},
		{"GET", "/api/nothing-here", ""},
		{"GET", "/", ""}, {"GET", "/login", ""}, {"POST", "/login", "username=admin&password=x"}, {"GET", "/services", ""},
		{"GET", "/apikeys", ""}, {"GET", "/cluster", ""}, {"GET", "/audit", ""}, {"GET", "/users", ""},
		{"GET", "/assets/app.css", ""}, {"GET", "/no-such-page", ""},
	} {
		for _, keyed := range []bool{false, true} {
			req, _ := http.NewRequest(rt.method, "http://"+w.admin+rt.path, strings.NewReader(rt.body))
			if keyed {
				req.Header.Set("Otoroshi-Client-Id", "admin")
				req.Header.Set("Otoroshi-Client-Secret", "admin-secret")
			}
			resp, err := contractClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var got map[string]any
			if resp.StatusCode != 421 || json.Unmarshal(b, &got) != nil || !reflect.DeepEqual(got, want) ||
				!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Errorf("%s %s (admin key %v): %d %s %q, want 421 %v", rt.method, rt.path, keyed, resp.StatusCode,
					resp.Header.Get("Content-Type"), b, want)
			}
		}
	}
}

// liveEverywhere waits until every node counts every node live (Redis's
// heartbeats), which the throttling shares divide by.
func liveEverywhere(t *testing.T, nodes []*clusterNode) {
	t.Helper()
	waitUntil(t, "every node counting every node live", func() bool {
		for _, nd := range nodes {
			if nd.srv.cq.LiveNodes() != int64(len(nodes)) {
				return false
			}
		}
		return true
	})
}

// hammer sends calls for key id from clients goroutines, each going round
// the nodes, and answers the statuses, the time the first call was sent and
// the time the last answer came.
func hammer(t *testing.T, nodes []*clusterNode, id string, clients, per int) (codes map[int]int, first, last time.Time) {
	t.Helper()
	var mu sync.Mutex
	codes = map[int]int{}
	var wg sync.WaitGroup
	first = time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				code, _ := nodes[(c+i)%len(nodes)].through("api.test", id, id+"-secret")
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return codes, first, time.Now()
}

// "Quotas hold across the nodes: throttling ... count every node's calls":
// section 6's bound, at most N + N*T calls over T seconds, for the three
// nodes together, through their gateways, on a fresh key per rate. T is
// taken from the first call sent to the last answer, so the bound is the
// loosest honest one; three nodes each admitting a whole burst of N would
// pass 3N at once.
func TestClusterContractThrottlingHoldsAcrossNodes(t *testing.T) {
	_, _, leader, ws := startCluster(t, 1_000_000, 2, nil)
	nodes := append([]*clusterNode{leader}, ws...)
	liveEverywhere(t, nodes)
	for _, n := range []int64{1, 2, 9, 30} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			id := fmt.Sprintf("rate%d", n)
			k := newKey(id, id+"-secret", withGroupKey("g"), func(k *gatehouse.APIKey) { k.ThrottlingQuota = n })
			if err := leader.st.CreateAPIKey(context.Background(), &k); err != nil {
				t.Fatal(err)
			}
			for _, w := range ws {
				waitUntil(t, w.name+" at the leader's revision", func() bool { return w.srv.Revision() == leader.srv.Revision() })
			}
			codes, first, last := hammer(t, nodes, id, 24, 15)
			secs := last.Sub(first).Seconds()
			bound := float64(n) + float64(n)*secs
			if codes[200] == 0 || float64(codes[200]) > bound || codes[200]+codes[429] != 24*15 {
				t.Fatalf("throttlingQuota %d through 3 nodes over %.2f s: %v, at most %.1f may pass", n, secs, codes, bound)
			}
			t.Logf("throttlingQuota %d: %d admitted over %.2f s (bound %.1f), %d refused", n, codes[200], secs, bound, codes[429])
		})
	}
}

// "Usage history per day (section 9) is kept by the leader in SQLite":
// calls made through a worker only are on the leader's dashboard key page,
// survive a quota reset, and are in the leader's SQLite file.
func TestClusterContractUsageHistoryOnTheLeader(t *testing.T) {
	_, _, leader, ws := startCluster(t, 1000, 1, nil)
	for i := range 7 {
		if code, msg := ws[0].through("api.test", "racer", "racer-secret"); code != 200 {
			t.Fatalf("call %d through the worker: %d %s", i, code, msg)
		}
	}
	page := loginDashboard(t, leader)
	day := time.Now().UTC().Format("2006-01-02")
	count := func() string {
		return page("/apikeys/racer").Find(`[data-testid="usage-bar"][data-day="`+day+`"]`).AttrOr("data-count", "")
	}
	waitUntil(t, "the worker's calls in the leader's usage history", func() bool { return count() == "7" })
	if code, _, body := leader.api("DELETE", "/api/apikeys/racer/quotas", ""); code != 200 {
		t.Fatalf("DELETE quotas: %d %s", code, body)
	}
	if got := count(); got != "7" {
		t.Fatalf("usage of today after a quota reset: %q, want 7", got)
	}
	db := leader.db
	if err := leader.stop(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs, err := st.UsageDays(context.Background(), "racer", day, day)
	if err != nil || len(cs) != 1 || cs[0].Count != 7 {
		t.Fatalf("the leader's SQLite file: %+v %v, want 7 calls on %s", cs, err, day)
	}
}

// "No request waits on Redis for long: with Redis unreachable a node
// answers within its usual latency": with Redis stopped (SIGSTOP) every
// answer of three nodes, for a key they hold slices of, a key near its
// limit and a key they never saw, comes within 1 s (a generous bound: the
// only timing asserted); what they admit stays within the quota and is
// added to Redis when it is back (the leader's cluster-wide count).
func TestClusterContractNoRequestWaitsOnAStoppedRedis(t *testing.T) {
	r, _, leader, ws := startCluster(t, 3000, 2, prodTimeouts)
	nodes := append([]*clusterNode{leader}, ws...)
	ctx := context.Background()
	for _, k := range []gatehouse.APIKey{
		newKey("near", "near-secret", withGroupKey("g"), func(k *gatehouse.APIKey) { k.DailyQuota = 40 }),
		newKey("cold", "cold-secret", withGroupKey("g")),
	} {
		if err := leader.st.CreateAPIKey(ctx, &k); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range ws {
		waitUntil(t, w.name+" at the leader's revision", func() bool { return w.srv.Revision() == leader.srv.Revision() })
	}
	liveEverywhere(t, nodes)
	type key struct {
		id    string
		daily int64
		warm  int
	}
	keys := []key{{"racer", 3000, 300}, {"near", 40, 30}, {"cold", 10_000_000, 0}}
	admitted := map[string]int64{}
	for _, k := range keys {
		for i := range k.warm {
			if code, msg := nodes[i%3].through("api.test", k.id, k.id+"-secret"); code != 200 {
				t.Fatalf("%s warming up, call %d: %d %s", k.id, i, code, msg)
			}
			admitted[k.id]++
		}
	}

	r.Stop()
	var mu sync.Mutex
	var slowest time.Duration
	codes := map[string]map[int]int{}
	var wg sync.WaitGroup
	for c := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				k := keys[(c+i)%len(keys)]
				start := time.Now()
				code, _ := nodes[(c+i/3)%3].through("api.test", k.id, k.id+"-secret")
				d := time.Since(start)
				mu.Lock()
				slowest = max(slowest, d)
				if codes[k.id] == nil {
					codes[k.id] = map[int]int{}
				}
				codes[k.id][code]++
				mu.Unlock()
				if d > time.Second {
					t.Errorf("%s through %s with redis stopped: answered after %v", k.id, nodes[(c+i/3)%3].name, d)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("redis stopped: slowest answer %v; statuses %v", slowest.Round(time.Millisecond), codes)
	for _, k := range keys {
		if n := codes[k.id][200] + codes[k.id][429]; n != 120 {
			t.Fatalf("%s: statuses %v, want only 200 and 429", k.id, codes[k.id])
		}
		admitted[k.id] += int64(codes[k.id][200])
		if admitted[k.id] > k.daily {
			t.Fatalf("%s: %d admitted on dailyQuota %d", k.id, admitted[k.id], k.daily)
		}
	}
	if codes["racer"][200] == 0 {
		t.Fatal("nothing admitted from the slices and shares the nodes held while redis was stopped")
	}

	r.Continue()
	for _, nd := range nodes {
		waitUntil(t, nd.name+" seeing redis again", func() bool { return nd.healthOK() != nil && nd.srv.cq.Up() })
	}
	for _, k := range keys {
		waitUntil(t, "the calls admitted during the outage in the cluster-wide count of "+k.id, func() bool {
			_, _, body := leader.api("GET", "/api/apikeys/"+k.id+"/quotas", "")
			return strings.Contains(body, fmt.Sprintf(`"currentCallsPerDay":%d,`, admitted[k.id]))
		})
	}
}

// "daily and monthly quotas of section 6 count every node's calls": a key
// of monthlyQuota 5 (and a daily quota far above it) through three nodes
// passes 5 calls between them, then each node answers the monthly 429.
func TestClusterContractMonthlyQuotaAcrossNodes(t *testing.T) {
	_, _, leader, ws := startCluster(t, 1000, 2, nil)
	nodes := append([]*clusterNode{leader}, ws...)
	code, _, body := leader.api("PATCH", "/api/apikeys/racer", `{"monthlyQuota": 5}`)
	if code != 200 {
		t.Fatalf("PATCH: %d %s", code, body)
	}
	for _, w := range ws {
		waitUntil(t, w.name+" at the leader's revision", func() bool { return w.srv.Revision() == leader.srv.Revision() })
	}
	ok := 0
	for i := range 12 {
		switch code, msg := nodes[i%3].through("api.test", "racer", "racer-secret"); {
		case code == 200:
			ok++
		case code != 429 || msg != "too many requests: monthly quota":
			t.Fatalf("call %d through %s: %d %q", i, nodes[i%3].name, code, msg)
		}
	}
	if ok != 5 {
		t.Fatalf("%d calls through three nodes on monthlyQuota 5", ok)
	}
	for _, nd := range nodes {
		if code, msg := nd.through("api.test", "racer", "racer-secret"); code != 429 || msg != "too many requests: monthly quota" {
			t.Fatalf("%s after the month's 5: %d %q", nd.name, code, msg)
		}
	}
}

// "Leader and worker share --cluster-token": a worker with another token
// is refused by the leader, never serves its configuration and says its
// leader is unreachable.
func TestClusterContractWorkerWithAnotherTokenIsRefused(t *testing.T) {
	r, _, leader, _ := startCluster(t, 1000, 0, nil)
	var logs syncBuffer
	w := startNode(t, "stranger", RoleWorker, r.URL, leader.url(), func(c *Config) {
		c.Cluster.Token = strings.Repeat("z", len(testClusterToken))
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	waitUntil(t, "the leader refusing the worker", func() bool { return strings.Contains(logs.String(), "401 Unauthorized") })
	if _, _, body := leader.api("GET", "/api/cluster/nodes", ""); strings.Contains(body, "stranger") {
		t.Fatalf("a worker with another token listed: %s", body)
	}
	h := w.healthOK()
	if w.ready() || h["leader"] != cluster.Unreachable || h["revision"] != float64(0) {
		t.Fatalf("a worker with another token: ready %v, /health %v", w.ready(), h)
	}
	if code, msg := w.through("api.test", "racer", "racer-secret"); code != 404 || msg != "no route found" {
		t.Fatalf("a worker with another token serves: %d %q", code, msg)
	}
}

// cutLink is the network between a worker and its leader, as a reverse
// proxy a test can cut: while cut, every call, in flight or new, fails.
type cutLink struct {
	*httptest.Server
	mu     sync.Mutex
	cut    bool
	cancel context.CancelFunc
	ctx    context.Context
	paths  []string
}

func newCutLink(t *testing.T, leaderAdmin string) *cutLink {
	target, _ := url.Parse("http://" + leaderAdmin)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	l := &cutLink{}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		cut, ctx := l.cut, l.ctx
		l.paths = append(l.paths, r.URL.Path)
		l.mu.Unlock()
		if cut {
			panic(http.ErrAbortHandler)
		}
		rp.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(l.Close)
	return l
}

// set cuts the link (true) or mends it (false); cutting fails the calls in
// flight too.
func (l *cutLink) set(cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = cut
	if cut {
		l.cancel()
		l.ctx, l.cancel = context.WithCancel(context.Background())
	}
	l.paths = nil
}

func (l *cutLink) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.paths...)
}

// "A worker that was cut off catches up from the revision it holds": a
// running worker cut off from its leader while keys are created, changed
// and deleted serves what it held, and once the link is back serves every
// write, from the change log (no snapshot asked for).
func TestClusterContractCutOffWorkerCatchesUpFromItsRevision(t *testing.T) {
	r := clustertest.StartRedis(t)
	up := newUpstream(t)
	leader := startNode(t, "leader", RoleLeader, r.URL, "", nil)
	seedLeader(t, leader, up, 1000)
	link := newCutLink(t, leader.admin)
	w := startNode(t, "w1", RoleWorker, r.URL, link.URL, nil)
	waitUntil(t, "the worker at the leader's revision", func() bool { return w.srv.Revision() == leader.srv.Revision() })

	link.set(true)
	within(t, time.Now(), 5*time.Second, "the cut-off worker seeing its leader lost", func() bool {
		return w.healthOK()["leader"] == cluster.Unreachable
	})
	held := w.srv.Revision()
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/groups/g/apikeys", `{"clientId": "m1", "clientSecret": "m1-secret"}`},
		{"POST", "/api/groups/g/apikeys", `{"clientId": "m2", "clientSecret": "m2-secret"}`},
		{"PATCH", "/api/apikeys/racer", `{"enabled": false}`},
		{"DELETE", "/api/apikeys/m2", ""},
	} {
		if code, _, body := leader.api(c.method, c.path, c.body); code/100 != 2 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, code, body)
		}
	}
	if code, msg := w.through("api.test", "m1", "m1-secret"); code != 401 || msg != "invalid apikey" {
		t.Fatalf("a key created while the worker was cut off: %d %q before the link is back", code, msg)
	}
	if code, _ := w.through("api.test", "racer", "racer-secret"); code != 200 || w.srv.Revision() != held {
		t.Fatalf("the cut-off worker: racer %d, revision %d (held %d)", code, w.srv.Revision(), held)
	}

	link.set(false)
	within(t, time.Now(), 10*time.Second, "the worker seeing its leader back", func() bool {
		return w.healthOK()["leader"] == cluster.Connected
	})
	waitUntil(t, "the worker at the leader's revision again", func() bool { return w.srv.Revision() == leader.srv.Revision() })
	for _, c := range []struct {
		id   string
		code int
		msg  string
	}{{"m1", 200, ""}, {"m2", 401, "invalid apikey"}, {"racer", 401, "bad apikey"}} {
		if code, msg := w.through("api.test", c.id, c.id+"-secret"); code != c.code || msg != c.msg {
			t.Errorf("%s after catching up: %d %q, want %d %q", c.id, code, msg, c.code, c.msg)
		}
	}
	for _, p := range link.seen() {
		if p != "/api/cluster/changes" {
			t.Fatalf("the worker asked the leader for %s after the cut (all: %v), want changes only", p, link.seen())
		}
	}
}

// "Quota time comes from one clock for all nodes (Redis's)": a worker
// whose own clock is a day and a half ahead still counts today's calls on
// Redis's day: a key used up through the leader stays refused through it,
// with the leader's Retry-After (the same midnight), and it is not given a
// new day's quota.
func TestClusterContractQuotaTimeIsRedisClock(t *testing.T) {
	ahead := func(c *Config) {
		if c.Role == RoleWorker {
			c.Now = func() time.Time { return time.Now().Add(36 * time.Hour) }
		}
	}
	_, _, leader, ws := startCluster(t, 3, 1, ahead)
	w := ws[0]
	for i := range 3 {
		if code, msg := leader.through("api.test", "racer", "racer-secret"); code != 200 {
			t.Fatalf("call %d through the leader: %d %s", i, code, msg)
		}
	}
	retryAfter := func(n *clusterNode) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+n.proxy+"/", nil)
		req.Host = "api.test"
		req.Header.Set("Otoroshi-Client-Id", "racer")
		req.Header.Set("Otoroshi-Client-Secret", "racer-secret")
		resp, err := contractClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	lc, lra := retryAfter(leader)
	wc, wra := retryAfter(w)
	l, _ := strconv.Atoi(lra)
	wv, _ := strconv.Atoi(wra)
	if lc != 429 || wc != 429 || l < 1 || wv < 1 || wv > l+5 || l > wv+5 {
		t.Fatalf("after the day's 3: the leader %d Retry-After %q, the worker (its clock 36 h ahead) %d Retry-After %q", lc, lra, wc, wra)
	}
}

// A write committed on the leader's file by another process (gatehouse
// admin, another writer) is a write on the leader too: every worker serves
// it within 1 s of its commit.
func TestClusterContractAnotherWritersCommitReachesWorkersWithinOneSecond(t *testing.T) {
	_, _, leader, ws := startCluster(t, 1000, 2, nil)
	other, err := store.Open(context.Background(), leader.db)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	k := newKey("outside", "outside-secret", withGroupKey("g"))
	if err := other.CreateAPIKey(context.Background(), &k); err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	for _, w := range ws {
		d := within(t, committed, time.Second, w.name+" serving a key another writer created", func() bool {
			code, _ := w.through("api.test", "outside", "outside-secret")
			return code == 200
		})
		t.Logf("%s serves it %v after the commit", w.name, d.Round(time.Millisecond))
	}
}
