package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gatehouse"
	"gatehouse/store"
)

// apiHarness is a gateway with group g and its service api on host api.test.
func apiHarness(t *testing.T, opts ...harnessOpt) *harness {
	t.Helper()
	h := newHarness(t, opts...)
	h.group("g")
	h.service(newService("api", "g", "api.test", newUpstream(t)))
	return h
}

func withGroupKey(group string) func(*gatehouse.APIKey) {
	return func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{gatehouse.GroupEntity(group)} }
}

// A write made by another process on the file reaches the gateway only
// through the change log, in revision order: an update committed before a
// delete can never bring the deleted key back, however late the gateway
// applies them. The gateway here is paused between those commits and its
// applying them: no follow loop runs until the test calls Follow.
func TestChangeLogOrdersAnotherWritersChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := apiHarness(t)
	h.key(newKey("k", "s", withGroupKey("g")))

	other, err := store.Open(ctx, filepath.Join(h.dir, "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	k, err := other.GetAPIKey(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	k.ClientSecret = "s2"
	if err := other.UpdateAPIKey(ctx, &k); err != nil {
		t.Fatal(err)
	}
	if err := other.DeleteAPIKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	// Not applied yet: the gateway serves the state of the last revision it applied.
	if r := h.call("GET", "api.test", "/", basic("k", "s")); r.StatusCode != 200 {
		t.Fatalf("before following: status %d", r.StatusCode)
	}
	before := h.srv.Revision()
	if err := h.st.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.srv.Revision(); got != before+2 {
		t.Fatalf("revision after follow = %d, want %d", got, before+2)
	}
	for _, secret := range []string{"s", "s2"} {
		r := h.call("GET", "api.test", "/", basic("k", secret))
		if r.StatusCode != 401 || r.Header.Get("Otoroshi-Error-Msg") != "invalid apikey" {
			t.Fatalf("deleted key with secret %s: %d %q", secret, r.StatusCode, r.Header.Get("Otoroshi-Error-Msg"))
		}
	}
}

// One DELETE racing eight updates of the same key, 30 rounds: whatever the
// interleaving, once the delete has answered the key stays refused.
func TestDeleteRacingUpdates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := apiHarness(t)
	for round := range 30 {
		id := fmt.Sprintf("k%d", round)
		h.key(newKey(id, "s", withGroupKey("g")))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				k := newKey(id, "s", withGroupKey("g"), func(k *gatehouse.APIKey) { k.ClientName = fmt.Sprint("u", i) })
				if err := h.st.UpdateAPIKey(ctx, &k); err != nil && gatehouse.KindOf(err) != gatehouse.KindNotFound {
					t.Error(err)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := h.st.DeleteAPIKey(ctx, id); err != nil {
				t.Error(err)
			}
		}()
		close(start)
		wg.Wait()
		if r := h.call("GET", "api.test", "/", basic(id, "s")); r.StatusCode != 401 {
			t.Fatalf("round %d: the deleted key answers %d", round, r.StatusCode)
		}
	}
}

// A write whose effect the gateway cannot serve (here, a plugin whose bytes
// do not load, written past the admin API's own check) is rolled back: the
// store keeps nothing of it and the gateway keeps serving.
func TestWriteTheGatewayCannotServeIsRolledBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	guests(t) // builds the shared compilation cache
	h := apiHarness(t, func(c *Config) { c.WasmCache = wasmCacheDir() })
	before := h.srv.Revision()
	p := gatehouse.DefaultPlugin()
	p.ID, p.Name = "broken", "broken"
	err := h.st.CreatePlugin(ctx, &p, []byte("\x00asm but not really"))
	if err == nil || gatehouse.KindOf(err) != gatehouse.KindInternal {
		t.Fatalf("CreatePlugin of bytes that do not load = %v, want an internal error (500)", err)
	}
	if _, err := h.st.GetPlugin(ctx, "broken"); gatehouse.KindOf(err) != gatehouse.KindNotFound {
		t.Fatalf("the refused plugin was stored: %v", err)
	}
	if rev, _ := h.st.Revision(ctx); rev != before || h.srv.Revision() != before {
		t.Fatalf("revision moved to %d / %d from %d", rev, h.srv.Revision(), before)
	}
	if r := h.call("GET", "api.test", "/public", nil); r.StatusCode == 500 || r.StatusCode == 502 {
		t.Fatalf("gateway after the refused write: %d", r.StatusCode)
	}
}

// Resetting quotas zeroes the counters everywhere they live and keeps the
// usage history; the counts in SQLite are increments of what was flushed.
func TestResetQuotasKeepsHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := apiHarness(t)
	h.key(newKey("k", "s", withGroupKey("g"), func(k *gatehouse.APIKey) { k.DailyQuota = 3 }))
	for range 3 {
		if r := h.call("GET", "api.test", "/", basic("k", "s")); r.StatusCode != 200 {
			t.Fatalf("status %d", r.StatusCode)
		}
	}
	if err := h.srv.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if r := h.call("GET", "api.test", "/", basic("k", "s")); r.StatusCode != 429 {
		t.Fatalf("4th call: %d", r.StatusCode)
	}
	if err := (backend{h.st, h.srv}).ResetUsage(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if u := h.quota(t, "k"); u.CurrentCallsPerDay != 0 || u.RemainingCallsPerDay != 3 {
		t.Fatalf("after reset: %+v", u)
	}
	if r := h.call("GET", "api.test", "/", basic("k", "s")); r.StatusCode != 200 {
		t.Fatalf("after reset: %d", r.StatusCode)
	}
	if err := h.srv.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	day := h.clock.Now().UTC().Format("2006-01-02")
	cs, err := h.st.KeyCounters(ctx, "k", day, day)
	if err != nil || len(cs) != 1 || cs[0].Count != 1 {
		t.Fatalf("quota counter after reset and one call = %+v, %v; want 1", cs, err)
	}
	hist, err := h.st.UsageDays(ctx, "k", day, day)
	if err != nil || len(hist) != 1 || hist[0].Count != 4 {
		t.Fatalf("usage history = %+v, %v; want the 4 calls", hist, err)
	}
	last, err := h.st.LastUsed(ctx, "k")
	if err != nil || last["k"] != h.clock.Now().UnixMilli() {
		t.Fatalf("last used = %v, %v; want %d", last, err, h.clock.Now().UnixMilli())
	}
}

// A full disk: the gateway keeps serving and counting in memory, admin
// writes are refused as storage full and write nothing, the failure is logged
// once when it starts and once when it ends, and every count is written once
// there is room again. The database lives on a 2 MiB tmpfs that the test
// fills (the tests run as root, as CI does).
func TestFullDisk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs for the full-disk test (needs root, as CI runs): %v\n%s", err, out)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })

	logs := &syncBuffer{}
	h := &harness{t: t, dir: mnt, clock: newFakeClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))}
	h.open(func(c *Config) {
		c.WasmCache = filepath.Join(t.TempDir(), "wasm-cache")
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	up := newUpstream(t)
	h.group("g")
	h.service(newService("api", "g", "api.test", up))
	h.key(newKey("k", "s", withGroupKey("g")))
	h.group(gatehouse.AdminGroupID)
	h.key(newKey("root", "root-secret", withGroupKey(gatehouse.AdminGroupID)))
	admin := httptest.NewServer(h.srv.Admin())
	defer admin.Close()

	filler := fill(t, mnt)
	const calls = 20
	for i := range calls {
		if r := h.call("GET", "api.test", "/", basic("k", "s")); r.StatusCode != 200 {
			t.Fatalf("call %d on a full disk: %d", i, r.StatusCode)
		}
		if i%5 == 4 {
			if err := h.srv.Flush(ctx); !gatehouse.IsStorageFull(err) {
				t.Fatalf("flush on a full disk = %v, want storage full", err)
			}
		}
	}
	req, _ := http.NewRequest("POST", admin.URL+"/api/groups", strings.NewReader(`{"id": "new", "name": "new"}`))
	req.SetBasicAuth("root", "root-secret")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInsufficientStorage || strings.TrimSpace(string(body)) != `{"error":"storage full"}` {
		t.Fatalf("admin write on a full disk: %d %s, want 507 storage full", resp.StatusCode, body)
	}
	if _, err := h.st.GetGroup(ctx, "new"); gatehouse.KindOf(err) != gatehouse.KindNotFound {
		t.Fatalf("refused write was stored: %v", err)
	}
	if u := h.quota(t, "k"); u.CurrentCallsPerDay != calls {
		t.Fatalf("in-memory count on a full disk = %d, want %d", u.CurrentCallsPerDay, calls)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Flush(ctx); err != nil {
		t.Fatalf("flush with room again: %v", err)
	}
	day := h.clock.Now().UTC().Format("2006-01-02")
	if cs, err := h.st.KeyCounters(ctx, "k", day, day); err != nil || len(cs) != 1 || cs[0].Count != calls {
		t.Fatalf("stored count after the disk freed = %+v, %v; want %d", cs, err, calls)
	}
	if err := h.st.CreateGroup(ctx, &gatehouse.Group{ID: "new", Name: "new"}); err != nil {
		t.Fatalf("admin write with room again: %v", err)
	}
	text := logs.String()
	if n := strings.Count(text, `msg="storage full`); n != 1 {
		t.Fatalf("storage full logged %d times, want once:\n%s", n, text)
	}
	if n := strings.Count(text, `msg="storage writable again`); n != 1 {
		t.Fatalf("recovery logged %d times, want once:\n%s", n, text)
	}
}

// fill writes a file into dir until the file system has no room left.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := bytes.Repeat([]byte{0xff}, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return path
		}
	}
}
