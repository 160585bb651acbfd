// Package browsertest starts the headless Chromium (Debian's chromium)
// that the dashboard's browser tests drive with chromedp: one launcher, so
// every browser test runs the same browser with the same flags. A missing
// Chromium fails the test: browser tests never skip.
package browsertest

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// The viewports the dashboard is checked at.
const (
	DesktopW, DesktopH = 1280, 800
	MobileW, MobileH   = 375, 812
)

// Path finds the browser: Debian's /usr/bin/chromium first, then the names
// chromedp itself tries on Linux.
func Path(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "headless-shell",
		"headless_shell", "google-chrome", "google-chrome-stable", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: the dashboard's browser tests need it; install it with `apt-get install chromium`")
	return ""
}

// Start launches a headless Chromium with a profile of its own under
// t.TempDir and returns its first tab, at the desktop viewport; the browser
// is stopped when the test ends.
func Start(t testing.TB) context.Context {
	t.Helper()
	exe := Path(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox, // CI and this machine run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// Only loopback traffic: nothing the browser would fetch for itself.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium-profile")),
		chromedp.WindowSize(DesktopW, DesktopH),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first Do starts the browser and binds it to ctx: no timeout here,
	// every later step gets its own.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(DesktopW, DesktopH)); err != nil {
		t.Fatalf("start Chromium %s: %v (install it with `apt-get install chromium`)", exe, err)
	}
	return ctx
}
