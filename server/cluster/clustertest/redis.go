// Package clustertest starts a real redis-server for tests, on a unix
// socket in a temporary folder, and kills it by its PID. A missing
// redis-server fails the test: cluster tests never skip.
package clustertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is one redis-server process started by a test.
type Redis struct {
	t    testing.TB
	dir  string
	Sock string
	URL  string // unix:///.../redis.sock
	cmd  *exec.Cmd
}

// StartRedis starts redis-server with an append-only file written on every
// command, so that a killed and restarted server keeps its counts.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is required for the cluster tests (apt-get install redis-server): %v", err)
	}
	dir := t.TempDir()
	r := &Redis{t: t, dir: dir, Sock: filepath.Join(dir, "redis.sock")}
	r.URL = "unix://" + r.Sock
	r.start(bin)
	t.Cleanup(r.Kill)
	return r
}

func (r *Redis) start(bin string) {
	r.t.Helper()
	os.Remove(r.Sock)
	r.cmd = exec.Command(bin, "--port", "0", "--unixsocket", r.Sock, "--unixsocketperm", "700",
		"--dir", r.dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	done := make(chan error, 1)
	cmd := r.cmd
	go func() { done <- cmd.Wait() }()
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: r.Sock, MaxRetries: -1, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-done:
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("redis-server exited: %v\n%s", err, log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server did not answer: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // waiting for the socket to answer, not for a result
	}
}

// Stop sends SIGSTOP: the server holds its connections and answers nothing.
func (r *Redis) Stop() { r.signal(syscall.SIGSTOP) }

// Continue sends SIGCONT after Stop.
func (r *Redis) Continue() { r.signal(syscall.SIGCONT) }

func (r *Redis) signal(s syscall.Signal) {
	if err := r.cmd.Process.Signal(s); err != nil {
		r.t.Fatalf("signal redis-server: %v", err)
	}
}

// Kill kills the server (SIGKILL) by its PID; a killed server stays dead.
func (r *Redis) Kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
	_ = r.cmd.Process.Kill()
	_, _ = r.cmd.Process.Wait()
	r.cmd = nil
}

// Restart starts the server again on the same socket and files.
func (r *Redis) Restart() {
	r.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		r.t.Fatal(err)
	}
	r.start(bin)
}

// Client is a plain client of the server, for assertions.
func (r *Redis) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: r.Sock, Protocol: 2, DisableIdentity: true})
	r.t.Cleanup(func() { c.Close() })
	return c
}
