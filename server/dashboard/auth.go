package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"gatehouse"
	"gatehouse/views"
)

type userKey struct{}

func userFrom(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics on failure)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is what the store keeps: a stolen database holds no usable cookie.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// requireSession lets through requests of a signed-in user and checks the
// anti-forgery token of every state-changing one.
func (d *Dashboard) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		se, ok := d.session(r)
		if !ok {
			d.toLogin(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			limit := int64(maxFormBytes)
			if r.URL.Path == views.PluginsURL() || strings.HasSuffix(r.URL.Path, "/wasm") {
				limit = gatehouse.MaxPluginUploadBytes + maxFormBytes
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			// The form is parsed whichever way the token comes: handlers read
			// r.PostForm, and htmx sends the token in a header (a form left
			// unparsed here once emptied a service's plugin chain).
			if err := parseForm(r); err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
					return
				}
				http.Error(w, "bad form", http.StatusBadRequest)
				return
			}
			token := r.Header.Get("X-CSRF-Token")
			if token == "" {
				token = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(token), []byte(se.CSRFToken)) != 1 {
				http.Error(w, "missing or wrong anti-forgery token; reload the page", http.StatusForbidden)
				return
			}
		}
		// A viewer (contract section 14) may read every page and sign out;
		// any other write of its session is refused.
		if se.Role == gatehouse.RoleViewer && viewerRefused(r) {
			http.Error(w, "viewers may not change anything", http.StatusForbidden)
			return
		}
		ctx := context.WithValue(r.Context(), userKey{}, se.Username)
		ctx = gatehouse.WithActor(ctx, gatehouse.UserActor(se.Username))
		ctx = gatehouse.WithRequestIP(ctx, clientIP(r))
		ctx = views.WithCSRF(ctx, se.CSRFToken)
		if se.Role == gatehouse.RoleViewer {
			ctx = views.WithViewer(ctx)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// parseForm parses urlencoded or multipart bodies; files beyond 8 MiB spill
// to temporary files rather than memory.
func parseForm(r *http.Request) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		return r.ParseMultipartForm(8 << 20)
	}
	return r.ParseForm()
}

func (d *Dashboard) session(r *http.Request) (gatehouse.Session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return gatehouse.Session{}, false
	}
	se, err := d.b.GetSession(r.Context(), hashToken(c.Value))
	if err != nil {
		if gatehouse.KindOf(err) != gatehouse.KindNotFound {
			d.log.ErrorContext(r.Context(), "dashboard: get session", "err", err)
		}
		return gatehouse.Session{}, false
	}
	if se.ExpiresAt <= d.now().Unix() {
		return gatehouse.Session{}, false
	}
	return se, true
}

// toLogin sends an anonymous request to the login page: a 303 for the
// browser, HX-Redirect for htmx (which would otherwise swap the login page
// into a fragment's place).
func (d *Dashboard) toLogin(w http.ResponseWriter, r *http.Request) {
	to := "/login"
	if r.Method == http.MethodGet && r.URL.Path != "/" {
		to += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	if r.Header.Get("HX-Request") == "true" {
		w.Header().Set("HX-Redirect", to)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return views.ServicesURL()
	}
	return next
}

func (d *Dashboard) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := d.session(r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	d.write(w, r, http.StatusOK, views.LoginPage(views.LoginData{Next: r.URL.Query().Get("next")}))
}

func (d *Dashboard) handleLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	username := strings.TrimSpace(r.PostFormValue("username"))
	data := views.LoginData{Username: username, Next: r.PostFormValue("next")}
	now := d.now()
	key := strings.ToLower(username) + "|" + clientIP(r)
	if wait := d.limiter.wait(key, now); wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		data.Error = fmt.Sprintf("Too many failed sign-ins. Try again in %d seconds.", secs)
		d.write(w, r, http.StatusTooManyRequests, views.LoginPage(data))
		return
	}
	hash, err := d.b.UserPasswordHash(r.Context(), username)
	if err != nil && gatehouse.KindOf(err) != gatehouse.KindNotFound {
		d.fail(w, r, err)
		return
	}
	if err != nil {
		hash = dummyHash() // same work for unknown users: no username oracle by timing
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(r.PostFormValue("password"))) != nil || err != nil {
		d.limiter.fail(key, now)
		d.log.WarnContext(r.Context(), "dashboard: failed sign-in", "user", username, "ip", clientIP(r))
		if err := d.b.RecordSignInFailed(gatehouse.WithRequestIP(r.Context(), clientIP(r)), username); err != nil {
			d.log.ErrorContext(r.Context(), "dashboard: audit a failed sign-in", "err", err)
		}
		data.Error = "Wrong username or password."
		d.write(w, r, http.StatusUnauthorized, views.LoginPage(data))
		return
	}
	d.limiter.reset(key)
	if err := d.b.DeleteExpiredSessions(r.Context(), now.Unix()); err != nil {
		d.log.WarnContext(r.Context(), "dashboard: delete expired sessions", "err", err)
	}
	token := randomToken()
	se := gatehouse.Session{
		TokenHash: hashToken(token),
		Username:  username,
		CSRFToken: randomToken(),
		ExpiresAt: now.Add(sessionLifetime).Unix(),
	}
	if err := d.b.CreateSession(gatehouse.WithRequestIP(r.Context(), clientIP(r)), se); err != nil { // audited as a sign-in
		d.fail(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    token,
		Path:     "/",
		MaxAge:   int(sessionLifetime / time.Second),
		HttpOnly: true,
		Secure:   d.secure,
		SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, safeNext(data.Next), http.StatusSeeOther)
}

func (d *Dashboard) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := d.b.DeleteSession(gatehouse.WithRequestIP(r.Context(), clientIP(r)), hashToken(c.Value)); err != nil { // audited as a sign-out
			d.fail(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: d.secure, SameSite: http.SameSiteLaxMode})
	d.done(w, r, "/login", "")
}

var dummyHash = sync.OnceValue(func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(randomToken()), bcrypt.DefaultCost)
	if err != nil {
		panic(err) // only on a cost out of range
	}
	return string(h)
})

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// loginLimiter slows down password guessing per username and client IP:
// after freeFailures failures in a row, each further attempt must wait a
// lockout that doubles with every failure, up to maxLockout.
type loginLimiter struct {
	mu sync.Mutex
	m  map[string]*loginFailures
}

type loginFailures struct {
	count int
	until time.Time // no attempt before this
	last  time.Time
}

const (
	freeFailures   = 5
	baseLockout    = 30 * time.Second
	maxLockout     = 15 * time.Minute
	limiterEntries = 10_000
	forgetAfter    = time.Hour
)

func newLoginLimiter() *loginLimiter { return &loginLimiter{m: map[string]*loginFailures{}} }

func (l *loginLimiter) wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[key]
	if f == nil || !now.Before(f.until) {
		return 0
	}
	return f.until.Sub(now)
}

func (l *loginLimiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) >= limiterEntries {
		l.prune(now)
	}
	f := l.m[key]
	if f == nil {
		f = &loginFailures{}
		l.m[key] = f
	}
	f.count++
	f.last = now
	if f.count >= freeFailures {
		lock := baseLockout << min(f.count-freeFailures, 10)
		f.until = now.Add(min(lock, maxLockout))
	}
}

func (l *loginLimiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, key)
}

// prune forgets stale entries so a flood of usernames cannot grow the map
// without bound; when every entry is fresh, arbitrary ones go until half remain.
func (l *loginLimiter) prune(now time.Time) {
	for k, f := range l.m {
		if now.Sub(f.last) > forgetAfter && !now.Before(f.until) {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) < limiterEntries/2 {
			break
		}
		delete(l.m, k)
	}
}
