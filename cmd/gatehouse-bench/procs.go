package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is one process of the benchmark: the upstream, the baseline proxy or
// a gatehouse instance.
type child struct {
	name    string
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed when the process has exited
	waitErr error
	out     *tailBuffer
}

// pinning says which CPU each side runs on; empty strings mean no pinning.
type pinning struct {
	loadCPU, proxyCPU string
}

// command builds argv for a child, under taskset when pinned. taskset execs
// the program, so the pid we get is the program's own.
func (p pinning) command(cpu, bin string, args ...string) *exec.Cmd {
	if cpu == "" {
		return exec.Command(bin, args...)
	}
	return exec.Command("taskset", append([]string{"-c", cpu, bin}, args...)...)
}

func startChild(name string, cmd *exec.Cmd, stdout io.Writer) (*child, error) {
	c := &child{name: name, cmd: cmd, done: make(chan struct{}), out: newTailBuffer(64 << 10)}
	if stdout == nil {
		stdout = c.out
	}
	cmd.Stdout = stdout
	cmd.Stderr = c.out
	// If the benchmark dies without cleaning up, its children die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// startListener starts one of our own subcommands and reads the address it
// prints once it listens.
func startListener(name string, cmd *exec.Cmd) (*child, string, error) {
	pr, pw := io.Pipe()
	c, err := startChild(name, cmd, pw)
	if err != nil {
		return nil, "", err
	}
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(pr)
		line, _ := br.ReadString('\n')
		lines <- line
		io.Copy(c.out, br) // keep draining so the child never blocks on stdout
	}()
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
		if !ok {
			c.stop()
			return nil, "", fmt.Errorf("%s did not start: %q %s", name, line, c.out.String())
		}
		return c, addr, nil
	case <-c.done:
		return nil, "", fmt.Errorf("%s exited at start: %v: %s", name, c.waitErr, c.out.String())
	case <-time.After(10 * time.Second):
		c.stop()
		return nil, "", fmt.Errorf("%s did not listen within 10s", name)
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop asks the process to end (SIGTERM: the gateway flushes its counters)
// and kills it if it has not within 20 s.
func (c *child) stop() error {
	if c == nil || c.exited() {
		return nil
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return nil
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s ignored SIGTERM for 20s; killed", c.name)
	}
}

// kill ends the process with SIGKILL, by its PID, and waits for it.
func (c *child) kill() {
	if c == nil || c.exited() {
		return
	}
	c.cmd.Process.Kill()
	<-c.done
}

// cpuTime is the user plus system CPU the process has used so far, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks).
func (c *child) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.pid()))
	if err != nil {
		return 0, fmt.Errorf("read stat: %w", err)
	}
	// The command name (field 2) may hold spaces; fields resume after ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", c.pid())
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse stat: %w", err)
	}
	return time.Duration(ut+st) * time.Second / time.Duration(clockTicks()), nil
}

// rss is the process's resident set size in bytes (VmRSS).
func (c *child) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.pid()))
	if err != nil {
		return 0, fmt.Errorf("read status: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS in status")
}

var clockTicks = sync.OnceValue(func() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100 // USER_HZ on every Linux architecture we run on
})

// freeAddr reserves a loopback port long enough to learn its number. Another
// process could take it before the child binds it; the child then fails to
// start, with a message saying so.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitReady polls until ready answers true, the child exits, or the timeout
// passes. Polling is fine here: this is a benchmark's start-up, and the
// poll interval (2 ms) bounds the start-up time's error.
func waitReady(ctx context.Context, c *child, timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ready() {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("%s exited: %v\n%s", c.name, c.waitErr, c.out.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v\n%s", c.name, timeout, c.out.String())
		}
	}
}

// probe sends one request of t and returns its status, 0 when it failed.
func probe(rt http.RoundTripper, t target) int {
	status, err := do(rt, t.newRequest())
	if err != nil {
		return 0
	}
	return status
}

// tailBuffer keeps the last bytes a child wrote, to show when it fails,
// without filling the disk with the access logs of millions of requests.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > t.max {
		b = b[len(b)-t.max:]
	}
	// The last few lines are what explains a failure.
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
