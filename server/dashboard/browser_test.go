package dashboard

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"gatehouse/server/dashboard/browsertest"
)

var update = flag.Bool("update", false, "rewrite docs/screenshots/*.png from the browser tests")

// screenshotDir is where -update writes the screenshots, from the package directory.
const screenshotDir = "../../docs/screenshots"

// axeSource is axe-core, vendored from npm for these tests only (see testdata/axe).
//
//go:embed testdata/axe/axe.min.js
var axeSource string

const (
	desktopW, desktopH = browsertest.DesktopW, browsertest.DesktopH
	mobileW, mobileH   = browsertest.MobileW, browsertest.MobileH
	stepTimeout        = 15 * time.Second
)

// browser is one headless Chromium tab on a test dashboard, with page
// scripts on (htmx, app.js) or off.
type browser struct {
	t    *testing.T
	ctx  context.Context
	e    *env
	js   bool
	axed map[string]bool // screens axe has checked
}

func newBrowser(t *testing.T, e *env, js bool) *browser {
	t.Helper()
	ctx := browsertest.Start(t)
	b := &browser{t: t, ctx: ctx, e: e, js: js, axed: map[string]bool{}}
	if !js {
		b.scripts(false)
	}
	return b
}

// scripts turns the page's own scripts on or off for what the tab loads
// and runs next.
func (b *browser) scripts(on bool) {
	b.t.Helper()
	b.do(map[bool]string{true: "scripts on", false: "scripts off"}[on], chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: !on})
		return err
	}))
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func run[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// eval runs an expression in the page (DevTools evaluates it even with the
// page's own scripts off).
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	return run(b, js, chromedp.Evaluate[T](js))
}

// sel selects by data-testid, more narrowing it with a CSS suffix.
func sel(testid string, more ...string) string {
	return `[data-testid="` + testid + `"]` + strings.Join(more, "")
}

// until waits for a condition on the page, checked from Go: a page without
// scripts runs no in-page polling.
func (b *browser) until(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { try { return !!(`+cond+`) } catch (e) { return false } })()`))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: still not %s (%v); page: %.1500s", what, cond, err, b.mainText())
		}
		time.Sleep(20 * time.Millisecond) // a poll interval, not a wait for time to pass
	}
}

// settled waits until no htmx request or swap is in flight.
func (b *browser) settled(what string) {
	b.t.Helper()
	if b.js {
		b.until(what, `!document.querySelector(".htmx-request, .htmx-settling, .htmx-swapping, .htmx-added")`)
	}
}

func (b *browser) mainText() string {
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return s
}

func q(s string) string { return strconv.Quote(s) }

// ready waits for a loaded page holding sel; with scripts on, also for htmx.
func (b *browser) ready(what, selector string) {
	b.t.Helper()
	cond := `document.readyState === "complete" && document.querySelector(` + q(selector) + `)`
	if b.js {
		cond += ` && window.htmx`
	}
	b.until(what, cond)
}

func (b *browser) open(path, selector string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.e.srv.URL+path))
	b.ready("open "+path, selector)
}

// mark tags the current document; a new page load drops the tag.
func (b *browser) mark() { eval[chromedp.Void](b, `window.__sameDoc = true`) }

// landed waits until a new page holding selector replaced the marked one.
func (b *browser) landed(what, selector string) {
	b.t.Helper()
	b.until(what, `!window.__sameDoc && document.readyState === "complete" && document.querySelector(`+q(selector)+`)`+
		map[bool]string{true: ` && window.htmx`, false: ``}[b.js])
}

// click clicks the element and waits for a new page holding selector.
func (b *browser) clickTo(what, click, selector string) {
	b.t.Helper()
	b.mark()
	b.do(what, chromedp.Click(chromedp.CSS(click)))
	b.landed(what, selector)
}

// fill types text into an input or textarea as a user would, once any
// htmx swap has settled (a settling swap may move the focus mid-typing).
func (b *browser) fill(selector, text string) {
	b.t.Helper()
	b.settled("before typing into " + selector)
	b.do("clear "+selector, chromedp.WaitVisible(chromedp.CSS(selector)),
		chromedp.Evaluate[chromedp.Void](`document.querySelector(`+q(selector)+`).value = ""`))
	if text != "" {
		b.do("type into "+selector, chromedp.SendKeys(chromedp.CSS(selector), text))
	}
}

// choose sets a select's or a date input's value.
func (b *browser) choose(selector, value string) {
	b.t.Helper()
	b.do("set "+selector, chromedp.WaitVisible(chromedp.CSS(selector)),
		chromedp.Evaluate[chromedp.Void](`document.querySelector(`+q(selector)+`).value = `+q(value)))
}

// check sets a checkbox by clicking it when it is not as wanted.
func (b *browser) check(selector string, on bool) {
	b.t.Helper()
	if eval[bool](b, `document.querySelector(`+q(selector)+`).checked`) != on {
		b.do("tick "+selector, chromedp.Click(chromedp.CSS(selector)))
	}
}

func (b *browser) text(selector string) string {
	b.t.Helper()
	return strings.TrimSpace(eval[string](b, `(document.querySelector(`+q(selector)+`) || {}).textContent || ""`))
}

func (b *browser) value(selector string) string {
	b.t.Helper()
	return eval[string](b, `(document.querySelector(`+q(selector)+`) || {}).value || ""`)
}

func (b *browser) count(selector string) int {
	b.t.Helper()
	return eval[int](b, `document.querySelectorAll(`+q(selector)+`).length`)
}

// focused describes the element holding the focus: its id, else its data-testid.
func (b *browser) focused() string {
	b.t.Helper()
	return eval[string](b, `(document.activeElement && (document.activeElement.id || document.activeElement.getAttribute("data-testid"))) || ""`)
}

// wantFocus waits for the focus to reach the element of that id (htmx moves
// it when its swap settles) and reports where it is otherwise.
func (b *browser) wantFocus(what, id string) {
	b.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		got := b.focused()
		if got == id {
			return
		}
		if time.Now().After(deadline) {
			b.t.Errorf("%s: focus on %q, want %q", what, got, id)
			return
		}
		time.Sleep(20 * time.Millisecond) // a poll interval
	}
}

// flash checks the confirmation after a write.
func (b *browser) flash(want string) {
	b.t.Helper()
	b.until("flash", `document.querySelector('[data-testid="flash"]')`)
	if got := b.text(sel("flash")); !strings.Contains(got, want) {
		b.t.Errorf("flash %q, want it to say %q", got, want)
	}
}

// axe runs axe-core on the current screen and fails on any serious or
// critical violation, with the page's scripts on and off alike: DevTools
// injects and runs axe even where the page's own scripts do not run.
func (b *browser) axe(screen string) {
	b.t.Helper()
	if b.axed[screen] {
		return
	}
	b.axed[screen] = true
	// A swap in flight dims the form (htmx-request): check the settled screen.
	b.settled("before axe")
	if !b.js {
		// axe's promise needs timers, which run only with scripts on. What
		// the page skipped while loading stays skipped (no htmx, no app.js):
		// axe sees the screen as a browser without JavaScript shows it.
		b.scripts(true)
		defer b.scripts(false)
		if eval[bool](b, `!!window.htmx || document.documentElement.classList.contains("js")`) {
			b.t.Fatalf("axe %s: the page's scripts ran", screen)
		}
	}
	if !eval[bool](b, `typeof window.axe === "object"`) {
		eval[chromedp.Void](b, axeSource)
	}
	out := run(b, "axe "+screen, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))))`, chromedp.EvalAwaitPromise))
	var violations []struct {
		ID, Impact, Help string
		Nodes            []string
	}
	if err := json.Unmarshal([]byte(out), &violations); err != nil {
		b.t.Fatalf("axe %s: %v", screen, err)
	}
	for _, v := range violations {
		if v.Impact == "serious" || v.Impact == "critical" {
			b.t.Errorf("axe on %s: %s (%s): %s at %v", screen, v.ID, v.Impact, v.Help, v.Nodes)
		}
	}
}

// shot screenshots the page, checks it is a PNG of the viewport's width,
// and writes it to docs/screenshots only with -update.
func (b *browser) shot(name string, width int) {
	b.t.Helper()
	if !b.js {
		return
	}
	buf := run(b, "screenshot "+name, chromedp.FullScreenshot(100))
	cfg, err := png.DecodeConfig(bytes.NewReader(buf))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if cfg.Width != width {
		b.t.Errorf("screenshot %s is %d px wide, want %d", name, cfg.Width, width)
	}
	if !*update {
		return
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) login() {
	b.t.Helper()
	b.open("/", sel("login-form"))
	b.axe("login")
	b.shot("login", desktopW)
	b.fill(sel("login-username"), testUser)
	b.fill(sel("login-password"), testPassword)
	b.clickTo("sign in", sel("login-submit"), sel("services-table"))
}

// apiGet reads an entity through the admin API, failing unless it is there.
func apiGet[T any](b *browser, path string) T {
	b.t.Helper()
	var v T
	if st := b.e.api(path, &v); st != 200 {
		b.t.Fatalf("GET %s: status %d", path, st)
	}
	return v
}

func mode(js bool) string { return map[bool]string{true: "js", false: "nojs"}[js] }

func fmtJSON(v any) string {
	b, _ := json.Marshal(v)
	return fmt.Sprintf("%s", b)
}
