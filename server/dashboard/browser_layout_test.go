package dashboard

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserSmallScreenAndKeyboard checks, with JavaScript on and off, the
// skip link, the sidebar folded behind "Menu" at 375 px, and a secret field
// that keeps a usable width there.
func TestBrowserSmallScreenAndKeyboard(t *testing.T) {
	for _, js := range []bool{true, false} {
		t.Run(mode(js), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Config{})
			_, s, k := e.seed()
			b := newBrowser(t, e, js)
			b.login()

			// The first Tab reaches the skip link; following it moves the focus to the content.
			b.open("/services/"+s.ID+"/apikeys", sel("keys-table"))
			b.do("first Tab", chromedp.KeyEvent("\t"))
			b.wantFocus("first Tab", "skip-link")
			if !eval[bool](b, `document.activeElement.getBoundingClientRect().top >= 0`) {
				t.Error("the focused skip link is off screen")
			}
			b.do("follow the skip link", chromedp.KeyEvent("\r"))
			b.wantFocus("after the skip link", "main")

			// 375 px: the sidebar folds to a bar; Menu opens it.
			b.do("narrow", chromedp.EmulateViewport(mobileW, mobileH))
			b.open("/services/"+s.ID+"/apikeys", sel("keys-table"))
			if h := eval[float64](b, `document.querySelector('[data-testid="sidebar"]').getBoundingClientRect().height`); h > 80 {
				t.Errorf("folded sidebar is %.0f px tall at 375 px, want at most 80", h)
			}
			if eval[bool](b, `document.querySelector('[data-testid="nav-all-keys"]').checkVisibility()`) {
				t.Error("sidebar links visible while folded")
			}
			b.axe("keys at 375 px")
			b.shot("keys-mobile", mobileW)
			b.do("open the menu", chromedp.Click(chromedp.CSS(sel("menu-toggle"))))
			b.until("menu open", `document.querySelector('[data-testid="nav-all-keys"]').checkVisibility()`)
			if js && b.text(`[data-testid="menu-toggle"][aria-expanded="true"]`) == "" {
				t.Error("the menu button does not say it is expanded")
			}
			b.axe("menu open at 375 px")
			b.shot("menu-mobile", mobileW)
			b.clickTo("go to All API keys", sel("nav-all-keys"), sel("keys-table"))
			if eval[bool](b, `document.querySelector('[data-testid="nav-all-keys"]').checkVisibility()`) {
				t.Error("the menu stays open on the next page")
			}

			// The key form at 375 px: the secret field keeps its width.
			b.open("/services/"+s.ID+"/apikeys/"+k.ClientID+"/edit", sel("key-form"))
			if w := eval[float64](b, `document.querySelector('[data-testid="field-clientSecret"]').getBoundingClientRect().width`); w < 200 {
				t.Errorf("secret field %.0f px wide at 375 px, want at least 200", w)
			}
			if w := eval[float64](b, `document.documentElement.scrollWidth`); w > mobileW {
				t.Errorf("the key form scrolls sideways at 375 px: %.0f px wide", w)
			}
			b.axe("key form at 375 px")
			b.shot("key-edit-mobile", mobileW)
			b.do("desktop", chromedp.EmulateViewport(desktopW, desktopH))
			b.open("/services/"+s.ID+"/apikeys/"+k.ClientID+"/edit", sel("key-form"))
			b.shot("key-edit", desktopW)
		})
	}
}
