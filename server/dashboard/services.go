package dashboard

import (
	"net/http"
	"net/url"
	"strings"

	"gatehouse"
	"gatehouse/views"
)

func (d *Dashboard) handleSearch(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if !isFragment(r) {
		to := views.ServicesURL()
		if q != "" {
			to += "?q=" + url.QueryEscape(q)
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
		return
	}
	list, _, err := d.b.ListServices(r.Context(), gatehouse.ServiceFilter{Q: q}, gatehouse.Page{Page: 1, PageSize: sidebarSize})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.write(w, r, http.StatusOK, views.SearchResults(list, q))
}

// groupNames maps every group id to its name, for lists and selects.
func (d *Dashboard) allGroups(r *http.Request) ([]gatehouse.Group, map[string]string, error) {
	groups, _, err := d.b.ListGroups(r.Context(), gatehouse.Page{Page: 1, PageSize: gatehouse.MaxPageSize})
	if err != nil {
		return nil, nil, err
	}
	names := make(map[string]string, len(groups))
	for _, g := range groups {
		names[g.ID] = g.Name
	}
	return groups, names, nil
}

func (d *Dashboard) handleServices(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	page := gatehouse.Page{Page: pageParam(r), PageSize: pageSize}
	list, total, err := d.b.ListServices(r.Context(), gatehouse.ServiceFilter{Q: q}, page)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	_, names, err := d.allGroups(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	data := views.ServicesData{
		Services: list, Groups: names, Q: q,
		Pager: views.Pager{Page: page.Page, PageSize: pageSize, Total: total, Base: views.ServicesURL(), Query: url.Values{"q": {q}}},
	}
	d.render(w, r, http.StatusOK, views.Shell{Title: "All services", Nav: views.NavServices, Search: q}, views.ServicesPage(data), nil)
}

func (d *Dashboard) handleService(w http.ResponseWriter, r *http.Request) {
	svc, err := d.b.GetService(r.Context(), r.PathValue("id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	data := views.ServiceData{Service: svc, Plugins: map[string]string{}}
	if g, err := d.b.GetGroup(r.Context(), svc.GroupID); err == nil {
		data.GroupName = g.Name
	}
	if _, n, err := d.b.ListAPIKeys(r.Context(), gatehouse.KeyFilter{ServiceID: svc.ID}, gatehouse.Page{Page: 1, PageSize: 1}); err == nil {
		data.KeyCount = n
	}
	if ps, err := d.b.ListPlugins(r.Context()); err == nil {
		for _, p := range ps {
			data.Plugins[p.ID] = p.Name
		}
	}
	d.render(w, r, http.StatusOK, views.Shell{Title: svc.Name, Nav: views.NavServiceInfo, Service: &svc}, views.ServicePage(data), nil)
}

func serviceForm(s gatehouse.Service, edit bool) views.ServiceForm {
	f := views.ServiceForm{
		Edit: edit, ID: s.ID, GroupID: s.GroupID, Name: s.Name, Env: s.Env, Domain: s.Domain, Subdomain: s.Subdomain,
		Root: s.Root, Enabled: s.Enabled, MaintenanceMode: s.MaintenanceMode, BuildMode: s.BuildMode,
		ForceHTTPS: s.ForceHTTPS, SendHeaders: s.SendOtoroshiHeadersBack,
		PublicPatterns: strings.Join(s.PublicPatterns, "\n"), PrivatePatterns: strings.Join(s.PrivatePatterns, "\n"),
	}
	if s.MatchingRoot != nil {
		f.MatchingRoot = *s.MatchingRoot
	}
	for _, t := range s.Targets {
		f.Targets = append(f.Targets, views.TargetRow{Host: t.Host, Scheme: t.Scheme})
	}
	return f
}

// readServiceForm reads the posted service form as typed.
func readServiceForm(r *http.Request) views.ServiceForm {
	f := views.ServiceForm{
		ID: strings.TrimSpace(r.PostFormValue("id")), GroupID: r.PostFormValue("groupId"),
		Name: r.PostFormValue("name"), Env: strings.TrimSpace(r.PostFormValue("env")),
		Domain: strings.TrimSpace(r.PostFormValue("domain")), Subdomain: strings.TrimSpace(r.PostFormValue("subdomain")),
		Root: strings.TrimSpace(r.PostFormValue("root")), MatchingRoot: strings.TrimSpace(r.PostFormValue("matchingRoot")),
		Enabled: r.PostFormValue("enabled") == "true", MaintenanceMode: r.PostFormValue("maintenanceMode") == "true",
		BuildMode: r.PostFormValue("buildMode") == "true", ForceHTTPS: r.PostFormValue("forceHttps") == "true",
		SendHeaders:    r.PostFormValue("sendOtoroshiHeadersBack") == "true",
		PublicPatterns: r.PostFormValue("publicPatterns"), PrivatePatterns: r.PostFormValue("privatePatterns"),
	}
	hosts, schemes := r.PostForm["targetHost"], r.PostForm["targetScheme"]
	for i, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue // a cleared row is a removed target
		}
		scheme := "http"
		if i < len(schemes) && schemes[i] != "" {
			scheme = schemes[i]
		}
		f.Targets = append(f.Targets, views.TargetRow{Host: h, Scheme: scheme})
	}
	return f
}

// apply writes the form's fields onto s, leaving the fields the form does
// not show (headers, IP filtering, plugins) as they were.
func applyServiceForm(f views.ServiceForm, s *gatehouse.Service) {
	s.GroupID, s.Name, s.Env, s.Domain, s.Subdomain, s.Root = f.GroupID, strings.TrimSpace(f.Name), f.Env, f.Domain, f.Subdomain, f.Root
	s.MatchingRoot = nil
	if f.MatchingRoot != "" {
		mr := f.MatchingRoot
		s.MatchingRoot = &mr
	}
	s.Enabled, s.MaintenanceMode, s.BuildMode, s.ForceHTTPS, s.SendOtoroshiHeadersBack = f.Enabled, f.MaintenanceMode, f.BuildMode, f.ForceHTTPS, f.SendHeaders
	s.Targets = make([]gatehouse.Target, 0, len(f.Targets))
	for _, t := range f.Targets {
		s.Targets = append(s.Targets, gatehouse.Target{Host: t.Host, Scheme: t.Scheme})
	}
	s.PublicPatterns = lines(f.PublicPatterns)
	s.PrivatePatterns = lines(f.PrivatePatterns)
}

// lines splits a textarea into its non-empty trimmed lines.
func lines(s string) []string {
	out := []string{}
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (d *Dashboard) serviceFormShell(f views.ServiceForm) views.Shell {
	title := "New service"
	if f.Edit {
		title = "Edit " + f.Name
	}
	return views.Shell{Title: title, Nav: views.NavServices}
}

func (d *Dashboard) handleServiceNew(w http.ResponseWriter, r *http.Request) {
	groups, _, err := d.allGroups(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	s := gatehouse.DefaultService()
	s.GroupID = r.URL.Query().Get("group")
	f := serviceForm(s, false)
	f.Groups = groups
	d.render(w, r, http.StatusOK, d.serviceFormShell(f), views.ServiceFormPage(f), nil)
}

func (d *Dashboard) handleServiceEdit(w http.ResponseWriter, r *http.Request) {
	svc, err := d.b.GetService(r.Context(), r.PathValue("id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	groups, _, err := d.allGroups(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	f := serviceForm(svc, true)
	f.Groups = groups
	shell := d.serviceFormShell(f)
	shell.Service, shell.Nav = &svc, views.NavServiceInfo
	d.render(w, r, http.StatusOK, shell, views.ServiceFormPage(f), nil)
}

func (d *Dashboard) handleServiceCreate(w http.ResponseWriter, r *http.Request) {
	d.saveService(w, r, nil)
}

func (d *Dashboard) handleServiceUpdate(w http.ResponseWriter, r *http.Request) {
	svc, err := d.b.GetService(r.Context(), r.PathValue("id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.saveService(w, r, &svc)
}

// saveService creates (existing nil) or updates a service from the posted
// form; invalid input re-renders the form with 422.
func (d *Dashboard) saveService(w http.ResponseWriter, r *http.Request, existing *gatehouse.Service) {
	f := readServiceForm(r)
	f.Edit = existing != nil
	groups, _, err := d.allGroups(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	f.Groups = groups
	shell := d.serviceFormShell(f)
	if r.PostFormValue("_action") == "add-target" {
		f.Targets = append(f.Targets, views.TargetRow{Scheme: "http"})
		d.render(w, r, http.StatusOK, shell, views.ServiceFormPage(f), views.ServiceFormEl(f))
		return
	}
	var s gatehouse.Service
	if existing != nil {
		s = *existing
		f.ID = s.ID
	} else {
		s = gatehouse.DefaultService()
		s.ID = f.ID
	}
	applyServiceForm(f, &s)
	if existing != nil {
		err = d.b.UpdateService(r.Context(), &s)
	} else {
		err = d.b.CreateService(r.Context(), &s)
	}
	if e := userError(err); e != nil {
		if e.Kind == gatehouse.KindConflict && e.Field == "" {
			e = &gatehouse.Error{Kind: e.Kind, Field: "id", Message: e.Message}
		}
		f.Errors = views.ErrorsFrom(e, views.ServiceFormFields...)
		d.render(w, r, http.StatusUnprocessableEntity, shell, views.ServiceFormPage(f), views.ServiceFormEl(f))
		return
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, views.ServicesURL())
}

func (d *Dashboard) handleServiceDeleteConfirm(w http.ResponseWriter, r *http.Request) {
	svc, err := d.b.GetService(r.Context(), r.PathValue("id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	c := serviceDeleteConfirm(svc)
	d.render(w, r, http.StatusOK, views.Shell{Title: "Delete " + svc.Name, Nav: views.NavServiceInfo, Service: &svc}, views.ConfirmDeletePage(c), nil)
}

func serviceDeleteConfirm(svc gatehouse.Service) views.ConfirmDelete {
	return views.ConfirmDelete{
		Kind: "service", Name: svc.Name, Detail: "Requests to " + svc.Host() + " will no longer be routed. Its group's API keys stay.",
		Action: views.ServiceDeleteURL(svc.ID), CancelURL: views.ServiceURL(svc.ID),
	}
}

func (d *Dashboard) handleServiceDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := d.b.DeleteService(r.Context(), id)
	if e := userError(err); e != nil {
		svc, gerr := d.b.GetService(r.Context(), id)
		if gerr != nil {
			d.fail(w, r, gerr)
			return
		}
		c := serviceDeleteConfirm(svc)
		c.Error = e.Message
		d.render(w, r, http.StatusConflict, views.Shell{Title: "Delete " + svc.Name, Service: &svc}, views.ConfirmDeletePage(c), views.ConfirmDeletePanel(c))
		return
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, views.ServicesURL())
}
