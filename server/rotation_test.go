package server

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"gatehouse"
	"gatehouse/store"
)

// presentations are every way of presenting a secret (contract section 4).
var presentations = []struct {
	name  string
	setup func(t testing.TB, id, secret string) func(*http.Request)
}{
	{"basic", func(_ testing.TB, id, secret string) func(*http.Request) { return basic(id, secret) }},
	{"headers", func(_ testing.TB, id, secret string) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("Otoroshi-Client-Id", id)
			r.Header.Set("Otoroshi-Client-Secret", secret)
		}
	}},
	{"jwt", func(t testing.TB, id, secret string) func(*http.Request) {
		tok := hs256(t, secret, jwt.MapClaims{"iss": id})
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}},
}

func TestRotationGracePeriod(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	up := newUpstream(t)
	h.group("g")
	h.service(newService("svc", "g", "svc.test", up))
	h.service(newService("quiet", "g", "quiet.test", up, func(s *gatehouse.Service) { s.SendOtoroshiHeadersBack = false }))
	h.key(newKey("k", "old-secret", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }))
	ctx := context.Background()
	b := backend{h.st, h.srv}

	// Before: every presentation of the old secret works, no rotation headers.
	for _, p := range presentations {
		resp := h.call("GET", "svc.test", "/", p.setup(t, "k", "old-secret"))
		if resp.StatusCode != 200 || resp.Header.Get("Otoroshi-ApiKey-Rotation-At") != "" {
			t.Fatalf("%s before rotation: %d %v", p.name, resp.StatusCode, resp.Header)
		}
	}
	k, err := b.RotateAPIKey(ctx, "k", "new-secret", 2)
	if err != nil {
		t.Fatal(err)
	}
	start := h.clock.Now().UnixMilli()
	until := start + 2*3_600_000
	if k.ClientSecret != "new-secret" || k.PreviousSecretValidUntil == nil || *k.PreviousSecretValidUntil != until {
		t.Fatalf("rotated key = %+v", k)
	}
	h.clock.Advance(90 * time.Minute)
	for _, p := range presentations {
		resp := h.call("GET", "svc.test", "/", p.setup(t, "k", "new-secret"))
		if resp.StatusCode != 200 || resp.Header.Get("Otoroshi-ApiKey-Rotation-At") != "" {
			t.Errorf("%s new secret: %d, rotation header %q", p.name, resp.StatusCode, resp.Header.Get("Otoroshi-ApiKey-Rotation-At"))
		}
		resp = h.call("GET", "svc.test", "/", p.setup(t, "k", "old-secret"))
		if resp.StatusCode != 200 {
			t.Errorf("%s old secret in the grace period: %d %s", p.name, resp.StatusCode, resp.Header.Get("Otoroshi-Error-Msg"))
		}
		if got := resp.Header.Get("Otoroshi-ApiKey-Rotation-At"); got != strconv.FormatInt(until, 10) {
			t.Errorf("%s Rotation-At = %q, want %d", p.name, got, until)
		}
		if got := resp.Header.Get("Otoroshi-ApiKey-Rotation-Remaining"); got != strconv.FormatInt(30*60_000, 10) {
			t.Errorf("%s Rotation-Remaining = %q, want %d", p.name, got, 30*60_000)
		}
		if u := up.lastRequest(); u.Header.Get("Authorization") != "" || u.Header.Get("Otoroshi-Client-Secret") != "" {
			t.Errorf("%s: the upstream received the credential", p.name)
		}
		resp = h.call("GET", "quiet.test", "/", p.setup(t, "k", "old-secret"))
		if resp.StatusCode != 200 || resp.Header.Get("Otoroshi-ApiKey-Rotation-At") != "" || resp.Header.Get("Otoroshi-ApiKey-Rotation-Remaining") != "" {
			t.Errorf("%s on sendOtoroshiHeadersBack false: %d %v", p.name, resp.StatusCode, resp.Header)
		}
		resp = h.call("GET", "svc.test", "/", p.setup(t, "k", "wrong-secret"))
		if resp.StatusCode != 401 || resp.Header.Get("Otoroshi-Error-Msg") != "bad apikey" {
			t.Errorf("%s wrong secret: %d", p.name, resp.StatusCode)
		}
	}
	// A restart within the grace period keeps accepting the old secret.
	h.close()
	h.open()
	if resp := h.call("GET", "svc.test", "/", basic("k", "old-secret")); resp.StatusCode != 200 ||
		resp.Header.Get("Otoroshi-ApiKey-Rotation-At") != strconv.FormatInt(until, 10) {
		t.Errorf("old secret after a restart in the grace period: %d", resp.StatusCode)
	}
	b = backend{h.st, h.srv}

	// After the grace period the old secret is refused, the new one works.
	h.clock.Advance(30 * time.Minute)
	for _, p := range presentations {
		if resp := h.call("GET", "svc.test", "/", p.setup(t, "k", "old-secret")); resp.StatusCode != 401 ||
			resp.Header.Get("Otoroshi-Error-Msg") != "bad apikey" {
			t.Errorf("%s old secret after the grace period: %d", p.name, resp.StatusCode)
		}
		if resp := h.call("GET", "svc.test", "/", p.setup(t, "k", "new-secret")); resp.StatusCode != 200 {
			t.Errorf("%s new secret after the grace period: %d", p.name, resp.StatusCode)
		}
	}
	// The job forgets the expired secret: the key says so and the database no longer holds it.
	if err := h.srv.RotateDue(ctx); err != nil {
		t.Fatal(err)
	}
	if k, _ := h.st.GetAPIKey(ctx, "k"); k.PreviousSecretValidUntil != nil || k.PreviousSecret != "" {
		t.Errorf("after the grace period the key still has a previous secret: %+v", k)
	}
	if h.srv.previous.Len() != 0 {
		t.Errorf("the gateway holds %d previous secrets", h.srv.previous.Len())
	}

	// A grace period of 0 revokes the old secret at once.
	if _, err := b.RotateAPIKey(ctx, "k", "newest-secret", 0); err != nil {
		t.Fatal(err)
	}
	for _, p := range presentations {
		if resp := h.call("GET", "svc.test", "/", p.setup(t, "k", "new-secret")); resp.StatusCode != 401 {
			t.Errorf("%s secret rotated with grace 0: %d", p.name, resp.StatusCode)
		}
	}
}

func TestAutomaticRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	up := newUpstream(t)
	h.group("g")
	h.service(newService("svc", "g", "svc.test", up))
	h.key(newKey("auto", "first-secret", func(k *gatehouse.APIKey) {
		k.AuthorizedEntities = []string{"group_g"}
		k.Rotation = gatehouse.Rotation{Enabled: true, RotationEvery: 24, GracePeriod: 1}
	}))
	h.key(newKey("manual", "manual-secret", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }))
	ctx := context.Background()

	h.clock.Advance(23 * time.Hour)
	must(t, h.srv.RotateDue(ctx))
	if k, _ := h.st.GetAPIKey(ctx, "auto"); k.ClientSecret != "first-secret" {
		t.Fatalf("rotated before its period: %+v", k)
	}
	h.clock.Advance(time.Hour)
	must(t, h.srv.RotateDue(ctx))
	k, _ := h.st.GetAPIKey(ctx, "auto")
	if k.ClientSecret == "first-secret" || len(k.ClientSecret) != 64 || k.PreviousSecretValidUntil == nil ||
		*k.PreviousSecretValidUntil != h.clock.Now().UnixMilli()+3_600_000 {
		t.Fatalf("after 24 h: %+v", k)
	}
	if m, _ := h.st.GetAPIKey(ctx, "manual"); m.ClientSecret != "manual-secret" {
		t.Errorf("a key without rotation was rotated")
	}
	second := k.ClientSecret
	if resp := h.call("GET", "svc.test", "/", basic("auto", "first-secret")); resp.StatusCode != 200 ||
		resp.Header.Get("Otoroshi-ApiKey-Rotation-Remaining") != "3600000" {
		t.Errorf("old secret right after the automatic rotation: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := h.call("GET", "svc.test", "/", basic("auto", second)); resp.StatusCode != 200 {
		t.Errorf("new secret: %d", resp.StatusCode)
	}
	// The audit log says the system rotated it.
	es, _, err := h.st.ListAudit(ctx, gatehouse.AuditFilter{Kind: "apikey", ID: "auto"}, gatehouse.Page{})
	must(t, err)
	if len(es) == 0 || es[0].Action != "rotate" || es[0].Actor != "system" {
		t.Errorf("last audit entry of the key = %+v", es[0])
	}
	// The next one comes a period after this one, not after creation.
	h.clock.Advance(23 * time.Hour)
	must(t, h.srv.RotateDue(ctx))
	if k, _ := h.st.GetAPIKey(ctx, "auto"); k.ClientSecret != second {
		t.Errorf("rotated again within a period")
	}
	h.clock.Advance(time.Hour)
	must(t, h.srv.RotateDue(ctx))
	if k, _ := h.st.GetAPIKey(ctx, "auto"); k.ClientSecret == second {
		t.Errorf("not rotated after the second period")
	}
	if resp := h.call("GET", "svc.test", "/", basic("auto", "first-secret")); resp.StatusCode != 401 {
		t.Errorf("the first secret still works: %d", resp.StatusCode)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A rotation committed by another process on the same file reaches the
// gateway through the change log, previous secret included.
func TestRotationByAnotherProcess(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	up := newUpstream(t)
	h.group("g")
	h.service(newService("svc", "g", "svc.test", up))
	h.key(newKey("k", "old-secret", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g"} }))
	ctx := context.Background()
	other, err := store.Open(ctx, filepath.Join(h.dir, "gatehouse.db"))
	must(t, err)
	defer other.Close()
	if _, err := other.RotateAPIKeyAt(gatehouse.WithActor(ctx, gatehouse.ActorCLI), "k", "new-secret", 1, h.clock.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	must(t, h.st.Follow(ctx))
	for secret, want := range map[string]string{"old-secret": "3600000", "new-secret": ""} {
		resp := h.call("GET", "svc.test", "/", basic("k", secret))
		if resp.StatusCode != 200 || resp.Header.Get("Otoroshi-ApiKey-Rotation-Remaining") != want {
			t.Errorf("%s after another process rotated: %d, remaining %q", secret, resp.StatusCode, resp.Header.Get("Otoroshi-ApiKey-Rotation-Remaining"))
		}
	}
}
