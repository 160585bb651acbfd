package dashboard

import (
	"context"
	"net/http"
	"strings"

	"gatehouse"
	"gatehouse/views"
)

// viewerSafe is the dashboard's backend: for a viewer's request (contract
// section 14) it reads keys without their secrets and services without their
// plugin configs, so that no page can show one whatever its template does.
type viewerSafe struct{ Backend }

func hideKey(k *gatehouse.APIKey) { k.ClientSecret, k.PreviousSecret = "", "" }

func hideService(s *gatehouse.Service) {
	ps := make([]gatehouse.PluginRef, len(s.Plugins))
	for i, p := range s.Plugins {
		p.Config = ""
		ps[i] = p
	}
	s.Plugins = ps
}

func (b viewerSafe) GetAPIKey(ctx context.Context, clientID string) (gatehouse.APIKey, error) {
	k, err := b.Backend.GetAPIKey(ctx, clientID)
	if views.Viewer(ctx) {
		hideKey(&k)
	}
	return k, err
}

func (b viewerSafe) ListAPIKeys(ctx context.Context, f gatehouse.KeyFilter, p gatehouse.Page) ([]gatehouse.APIKey, int, error) {
	ks, n, err := b.Backend.ListAPIKeys(ctx, f, p)
	if views.Viewer(ctx) {
		for i := range ks {
			hideKey(&ks[i])
		}
	}
	return ks, n, err
}

func (b viewerSafe) GetService(ctx context.Context, id string) (gatehouse.Service, error) {
	s, err := b.Backend.GetService(ctx, id)
	if views.Viewer(ctx) {
		hideService(&s)
	}
	return s, err
}

func (b viewerSafe) ListServices(ctx context.Context, f gatehouse.ServiceFilter, p gatehouse.Page) ([]gatehouse.Service, int, error) {
	ss, n, err := b.Backend.ListServices(ctx, f, p)
	if views.Viewer(ctx) {
		for i := range ss {
			hideService(&ss[i])
		}
	}
	return ss, n, err
}

func (b viewerSafe) AllServices(ctx context.Context) ([]gatehouse.Service, error) {
	ss, err := b.Backend.AllServices(ctx)
	if views.Viewer(ctx) {
		for i := range ss {
			hideService(&ss[i])
		}
	}
	return ss, err
}

// viewerRefused reports whether a viewer's request is a write, or asks for
// a page that is only a form to write with (new, edit, delete, reset).
func viewerRefused(r *http.Request) bool {
	if r.URL.Path == "/users" || strings.HasPrefix(r.URL.Path, "/users/") {
		return true // the Users page is for admins
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return r.URL.Path != "/logout" && r.URL.Path != views.PasswordURL()
	}
	for _, suffix := range []string{"/new", "/edit", "/delete", "/reset-quotas"} {
		if strings.HasSuffix(r.URL.Path, suffix) {
			return true
		}
	}
	return false
}
