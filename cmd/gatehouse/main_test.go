package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/store"
)

// binary is the gatehouse command built once for the tests that need a real
// process (signals, SIGKILL).
var binary string

// testVersion is stamped into the test binary as make build stamps a release.
const testVersion = "v0.0.0-test"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by every user: a test runs it as another user to meet a
	// folder it may not write.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gatehouse")
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+testVersion, "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build gatehouse: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// lines collects a writer's lines and lets a test wait for one that matches.
type lines struct {
	mu    sync.Mutex
	buf   []string
	part  string
	added chan struct{}
}

func newLines() *lines { return &lines{added: make(chan struct{}, 1)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.part += string(p)
	for {
		i := strings.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		l.buf = append(l.buf, l.part[:i])
		l.part = l.part[i+1:]
	}
	l.mu.Unlock()
	select {
	case l.added <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *lines) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.buf, "\n")
}

// wait returns the first submatches of re in the output once it appears.
func (l *lines) wait(t *testing.T, re *regexp.Regexp, errc <-chan error) []string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(l.all()); m != nil {
			return m
		}
		select {
		case <-l.added:
		case err := <-errc:
			t.Fatalf("gatehouse stopped early: %v\noutput:\n%s", err, l.all())
		case <-timeout:
			t.Fatalf("no %v in output:\n%s", re, l.all())
		}
	}
}

// startInProcess runs the command in-process until the test ends.
func startInProcess(t *testing.T, args []string, getenv func(string) string) (*lines, context.CancelFunc, <-chan error) {
	t.Helper()
	out := newLines()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, args, getenv, out, io.Discard) }()
	return out, cancel, errc
}

var curlBasic = regexp.MustCompile(`curl -i(?: -H 'Host: ([^']+)')? -u (demo-client):(\S+) (http://\S+)/hello`)

func TestFirstRunDemoAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"serve", "--demo", "--db", filepath.Join(dir, "g.db"), "--proxy-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}
	getenv := env("GATEHOUSE_ADMIN_CLIENT_ID", "root", "GATEHOUSE_ADMIN_CLIENT_SECRET", "root-secret")

	out, cancel, errc := startInProcess(t, args, getenv)
	m := out.wait(t, curlBasic, errc)
	host, secret, base := m[1], m[3], m[4]
	if !strings.Contains(out.all(), "First start") || !strings.Contains(out.all(), "password:") {
		t.Errorf("first start printed no bootstrap credentials:\n%s", out.all())
	}
	if strings.Contains(out.all(), "root-secret") {
		t.Error("a secret given through the environment was printed")
	}
	// The printed line works as printed: the key opens the demo service.
	req, _ := http.NewRequest("GET", base+"/hello", nil)
	if host != "" {
		req.Host = host
	}
	req.SetBasicAuth("demo-client", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"Otoroshi-Client-Id": "demo-client"`) {
		t.Fatalf("demo call: %d %s", resp.StatusCode, body)
	}
	admin := regexp.MustCompile(`dashboard: (http://\S+)`).FindStringSubmatch(out.all())[1]
	if code := adminGet(t, admin+"/api/groups", "root", "root-secret"); code != 200 {
		t.Fatalf("admin API with the bootstrap key: %d", code)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("graceful stop: %v", err)
	}

	// Second start: no bootstrap output, the same demo key printed again.
	out2, cancel2, errc2 := startInProcess(t, args, getenv)
	m2 := out2.wait(t, curlBasic, errc2)
	if m2[3] != secret {
		t.Errorf("demo secret changed across restarts")
	}
	if strings.Contains(out2.all(), "First start") {
		t.Errorf("bootstrap credentials printed again:\n%s", out2.all())
	}
	cancel2()
	if err := <-errc2; err != nil {
		t.Fatal(err)
	}
}

// child is the real binary started as a process, for signal tests.
type child struct {
	cmd          *exec.Cmd
	out          *lines
	proxy, admin string
}

func startChild(t *testing.T, db string, extra ...string) *child {
	t.Helper()
	args := append([]string{"serve", "--db", db, "--proxy-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "GATEHOUSE_ADMIN_CLIENT_ID=root", "GATEHOUSE_ADMIN_CLIENT_SECRET=root-secret")
	c := &child{cmd: cmd, out: newLines()}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	errc := make(chan error, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			c.out.Write([]byte(s.Text() + "\n"))
		}
		errc <- fmt.Errorf("stdout closed")
	}()
	m := c.out.wait(t, regexp.MustCompile(`gateway: +(http://\S+)\n +dashboard: (http://\S+)`), errc)
	c.proxy, c.admin = m[1], m[2]
	return c
}

func (c *child) adminDo(t *testing.T, method, path, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, c.admin+path, strings.NewReader(body))
	req.SetBasicAuth("root", "root-secret")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// flushes reads gatehouse_counter_flushes_total from /metrics.
func (c *child) flushes(t *testing.T) int {
	t.Helper()
	resp := c.adminDo(t, "GET", "/metrics", "")
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^gatehouse_counter_flushes_total (\d+)`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("no flush counter in /metrics")
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

func seedKeyedService(t *testing.T, c *child, upstream string) {
	t.Helper()
	for _, r := range []struct{ path, body string }{
		{"/api/groups", `{"id":"g","name":"g"}`},
		{"/api/services", `{"id":"s","groupId":"g","name":"s","domain":"localhost","targets":[{"host":"` + upstream + `","scheme":"http"}]}`},
		{"/api/groups/g/apikeys", `{"clientId":"k","clientSecret":"ks"}`},
	} {
		resp := c.adminDo(t, "POST", r.path, r.body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("POST %s: %d", r.path, resp.StatusCode)
		}
	}
}

func callKey(base string) (int, error) {
	req, _ := http.NewRequest("GET", base+"/x", nil)
	req.Host = "localhost" // the seeded service's domain
	req.SetBasicAuth("k", "ks")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func storedDailyCount(t *testing.T, db string) int64 {
	t.Helper()
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.IntegrityCheck(context.Background()); err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Format("2006-01-02")
	cs, err := st.KeyCounters(context.Background(), "k", day, day)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) == 0 {
		return 0
	}
	return cs[0].Count
}

func newEcho(t *testing.T) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(echoHandler)}
	ln, err := startEcho()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); ln.Close() })
	return ln.Addr().String()
}

func TestSIGTERMFlushesEveryCount(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "g.db")
	c := startChild(t, db, "--flush-interval", "1h") // only the shutdown flush can save them
	seedKeyedService(t, c, newEcho(t))
	const n = 37
	for range n {
		if code, err := callKey(c.proxy); err != nil || code != 200 {
			t.Fatalf("call: %d %v", code, err)
		}
	}
	if err := c.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGINT: %v", err)
	}
	if got := storedDailyCount(t, db); got != n {
		t.Errorf("stored daily count %d after a graceful stop, want %d", got, n)
	}
}

func TestSIGKILLLosesAtMostOneFlush(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "g.db")
	c := startChild(t, db, "--flush-interval", "50ms")
	seedKeyedService(t, c, newEcho(t))

	var mu sync.Mutex
	ok := 0
	stop := make(chan struct{})
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, err := callKey(c.proxy)
				if err != nil {
					return // the process is gone
				}
				if code == 200 {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}
		}()
	}
	// Let load run until a good number of calls are in, then note how many
	// had been answered (r0) and wait until two more flushes complete: the
	// second began after r0 was read, so it holds every one of those calls.
	for {
		mu.Lock()
		n := ok
		mu.Unlock()
		if n >= 200 {
			break
		}
		if code, err := callKey(c.proxy); err != nil || code != 200 {
			t.Fatalf("call: %d %v", code, err)
		}
		mu.Lock()
		ok++
		mu.Unlock()
	}
	mu.Lock()
	r0 := ok
	mu.Unlock()
	f0 := c.flushes(t)
	for c.flushes(t) < f0+2 {
		code, err := callKey(c.proxy)
		if err != nil {
			t.Fatal(err)
		}
		if code == 200 {
			mu.Lock()
			ok++
			mu.Unlock()
		}
	}
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
	close(stop)
	for range 4 {
		<-done
	}
	mu.Lock()
	total := ok
	mu.Unlock()
	stored := storedDailyCount(t, db)
	t.Logf("answered 200: %d, stored after SIGKILL: %d (guaranteed at least %d)", total, stored, r0)
	if stored < int64(r0) {
		t.Errorf("a completed flush was lost: stored %d < %d calls answered before two later flushes", stored, r0)
	}
	// Calls in flight at the kill may have been counted without their answer
	// arriving: at most one per client.
	const inFlight = 4
	if stored > int64(total+inFlight) {
		t.Errorf("stored %d calls but only %d were answered (+%d in flight)", stored, total, inFlight)
	}
}

// TestAdminCommandsReachARunningGateway: what `gatehouse admin` writes to the
// file of a running gateway is honoured without a restart, through the
// change log the gateway follows.
func TestAdminCommandsReachARunningGateway(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "g.db")
	c := startChild(t, db)

	var out strings.Builder
	if err := run(context.Background(), []string{"admin", "new-key", "--db", db}, env(), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	key := regexp.MustCompile(`admin API key: (\S+)\nadmin secret: (\S+)\n`).FindStringSubmatch(out.String())
	if key == nil {
		t.Fatalf("no key printed: %q", out.String())
	}
	// Wait on the gateway's own answer; the contract's bound is 1 s, the
	// deadline here only keeps a broken build from hanging.
	deadline := written.Add(10 * time.Second)
	for adminGet(t, c.admin+"/api/groups", key[1], key[2]) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("the running gateway still refuses the key written by admin new-key after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("admin new-key honoured by the running gateway %v after it was written", time.Since(written).Round(time.Millisecond))
}
