package dashboard

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"gatehouse"
	"gatehouse/views"
)

// services lists the services whose name, id or shown host (with its
// matching root) holds q, case-insensitively, one page of them.
func (d *Dashboard) services(r *http.Request, q string, p gatehouse.Page) ([]gatehouse.Service, int, error) {
	all, err := d.b.AllServices(r.Context())
	if err != nil {
		return nil, 0, err
	}
	q = strings.ToLower(q)
	match := all[:0]
	for _, s := range all {
		mr := ""
		if s.MatchingRoot != nil {
			mr = *s.MatchingRoot
		}
		if q == "" || strings.Contains(strings.ToLower(s.Name), q) || strings.Contains(strings.ToLower(s.ID), q) ||
			strings.Contains(strings.ToLower(s.Host()+mr), q) {
			match = append(match, s)
		}
	}
	from := min(p.Offset(), len(match))
	to := min(from+p.Limit(), len(match))
	return match[from:to], len(match), nil
}

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
	list, _, err := d.services(r, q, gatehouse.Page{Page: 1, PageSize: sidebarSize})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.write(w, r, http.StatusOK, views.SearchResults(list, q))
}

// allGroups lists every group and maps each id to its name, for lists and selects.
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

// serviceGroups are the groups a service may be placed in: not the built-in
// admin API group.
func (d *Dashboard) serviceGroups(r *http.Request) ([]gatehouse.Group, error) {
	groups, _, err := d.allGroups(r)
	if err != nil {
		return nil, err
	}
	out := groups[:0]
	for _, g := range groups {
		if g.ID != gatehouse.AdminGroupID {
			out = append(out, g)
		}
	}
	return out, nil
}

func (d *Dashboard) handleServices(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	page := gatehouse.Page{Page: pageParam(r), PageSize: pageSize}
	list, total, err := d.services(r, q, page)
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
		Additional: views.KVRows(s.AdditionalHeaders), Matching: views.KVRows(s.MatchingHeaders),
		Whitelist: strings.Join(s.IPFiltering.Whitelist, "\n"), Blacklist: strings.Join(s.IPFiltering.Blacklist, "\n"),
	}
	if s.MatchingRoot != nil {
		f.MatchingRoot = *s.MatchingRoot
	}
	for _, t := range s.Targets {
		f.Targets = append(f.Targets, views.TargetRow{Host: t.Host, Scheme: t.Scheme})
	}
	return f
}

// readServiceForm reads the posted service form as typed, empty rows included.
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
		Additional: readKV(r, "additionalHeaders"), Matching: readKV(r, "matchingHeaders"),
		Whitelist: r.PostFormValue("ipFiltering.whitelist"), Blacklist: r.PostFormValue("ipFiltering.blacklist"),
	}
	hosts, schemes := r.PostForm["targetHost"], r.PostForm["targetScheme"]
	for i, h := range hosts {
		scheme := "http"
		if i < len(schemes) && schemes[i] != "" {
			scheme = schemes[i]
		}
		f.Targets = append(f.Targets, views.TargetRow{Host: strings.TrimSpace(h), Scheme: scheme})
	}
	return f
}

// applyServiceForm writes the form's fields onto s (plugins stay as they
// are: they have their own page) and returns every field it could not read.
func applyServiceForm(f views.ServiceForm, s *gatehouse.Service) views.FormErrors {
	errs := views.FormErrors{}
	s.GroupID, s.Name, s.Env, s.Domain, s.Subdomain, s.Root = f.GroupID, strings.TrimSpace(f.Name), f.Env, f.Domain, f.Subdomain, f.Root
	s.MatchingRoot = nil
	if f.MatchingRoot != "" {
		mr := f.MatchingRoot
		s.MatchingRoot = &mr
	}
	s.Enabled, s.MaintenanceMode, s.BuildMode, s.ForceHTTPS, s.SendOtoroshiHeadersBack = f.Enabled, f.MaintenanceMode, f.BuildMode, f.ForceHTTPS, f.SendHeaders
	s.Targets = make([]gatehouse.Target, 0, len(f.Targets))
	for _, t := range f.Targets {
		if t.Host != "" { // an empty row adds nothing
			s.Targets = append(s.Targets, gatehouse.Target{Host: t.Host, Scheme: t.Scheme})
		}
	}
	if len(s.Targets) == 0 {
		errs.Add(gatehouse.Invalid("targets", "a service needs at least one target"), views.ServiceFormFields...)
	}
	s.PublicPatterns = lines(f.PublicPatterns)
	s.PrivatePatterns = lines(f.PrivatePatterns)
	s.IPFiltering = gatehouse.IPFiltering{Whitelist: lines(f.Whitelist), Blacklist: lines(f.Blacklist)}
	var e *gatehouse.Error
	if s.AdditionalHeaders, e = kvMap("additionalHeaders", f.Additional); e != nil {
		errs.Add(e, views.ServiceFormFields...)
	}
	if s.MatchingHeaders, e = kvMap("matchingHeaders", f.Matching); e != nil {
		errs.Add(e, views.ServiceFormFields...)
	}
	probe := *s
	probe.FillDefaults()
	if probe.ID == "" {
		probe.ID = "x"
	}
	collectErrors(errs, views.ServiceFormFields, probe.Validate, func(field string) bool {
		switch field {
		case "id":
			probe.ID = "x"
		case "groupId":
			probe.GroupID = "x"
		case "name":
			probe.Name = "x"
		case "env":
			probe.Env = "prod"
		case "domain":
			probe.Domain = "x"
		case "subdomain":
			probe.Subdomain = ""
		case "targets":
			probe.Targets = []gatehouse.Target{{Host: "x", Scheme: "http"}}
		case "root":
			probe.Root = "/"
		case "matchingRoot":
			probe.MatchingRoot = nil
		case "publicPatterns":
			probe.PublicPatterns = nil
		case "privatePatterns":
			probe.PrivatePatterns = nil
		case "additionalHeaders":
			probe.AdditionalHeaders = nil
		case "matchingHeaders":
			probe.MatchingHeaders = nil
		case "ipFiltering.whitelist":
			probe.IPFiltering.Whitelist = nil
		case "ipFiltering.blacklist":
			probe.IPFiltering.Blacklist = nil
		default:
			return false
		}
		return true
	})
	return errs
}

func (d *Dashboard) serviceFormShell(f views.ServiceForm, svc *gatehouse.Service) views.Shell {
	if f.Edit {
		return views.Shell{Title: "Edit " + f.Name, Nav: views.NavServiceInfo, Service: svc}
	}
	return views.Shell{Title: "New service", Nav: views.NavServices}
}

// handleServiceNew preselects the group of ?group=, else the first group a
// service may go in.
func (d *Dashboard) handleServiceNew(w http.ResponseWriter, r *http.Request) {
	groups, err := d.serviceGroups(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	s := gatehouse.DefaultService()
	s.GroupID = r.URL.Query().Get("group")
	if s.GroupID == "" && len(groups) > 0 {
		s.GroupID = groups[0].ID
	}
	f := serviceForm(s, false)
	f.Groups = groups
	d.render(w, r, http.StatusOK, d.serviceFormShell(f, nil), views.ServiceFormPage(f), nil)
}

func (d *Dashboard) handleServiceEdit(w http.ResponseWriter, r *http.Request) {
	svc, err := d.b.GetService(r.Context(), r.PathValue("id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	groups, err := d.serviceGroups(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	f := serviceForm(svc, true)
	f.Groups = groups
	d.render(w, r, http.StatusOK, d.serviceFormShell(f, &svc), views.ServiceFormPage(f), nil)
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
// form; invalid input re-renders the form with 422 and every message.
func (d *Dashboard) saveService(w http.ResponseWriter, r *http.Request, existing *gatehouse.Service) {
	f := readServiceForm(r)
	f.Edit = existing != nil
	groups, err := d.serviceGroups(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	f.Groups = groups
	if existing != nil {
		f.ID = existing.ID
	}
	shell := d.serviceFormShell(f, existing)
	if list, remove, ok := rowAction(r); ok {
		var focus int
		switch list {
		case "targets":
			f.Targets, focus = editRows(f.Targets, remove, views.TargetRow{Scheme: "http"})
		case "additionalHeaders":
			f.Additional, focus = editRows(f.Additional, remove, views.KVRow{})
		case "matchingHeaders":
			f.Matching, focus = editRows(f.Matching, remove, views.KVRow{})
		}
		f.FocusRow = map[string]int{list: focus}
		d.render(w, r, http.StatusOK, shell, views.ServiceFormPage(f), views.ServiceFormEl(f))
		return
	}
	s := gatehouse.DefaultService()
	if existing != nil {
		s = *existing
	} else {
		s.ID = f.ID
	}
	errs := applyServiceForm(f, &s)
	if !errs.Any() {
		if existing != nil {
			err = d.b.UpdateService(r.Context(), &s)
		} else {
			err = d.b.CreateService(r.Context(), &s)
		}
		if e := userError(err); e != nil {
			if e.Kind == gatehouse.KindConflict && e.Field == "" {
				e = &gatehouse.Error{Kind: e.Kind, Field: "id", Message: e.Message}
			}
			errs.Add(e, views.ServiceFormFields...)
		} else if err != nil {
			d.fail(w, r, err)
			return
		}
	}
	if errs.Any() {
		f.Errors = errs.Focus(views.ServiceFormFields...)
		d.render(w, r, http.StatusUnprocessableEntity, shell, views.ServiceFormPage(f), views.ServiceFormEl(f))
		return
	}
	verb := "created"
	if existing != nil {
		verb = "updated"
	}
	d.done(w, r, views.ServiceURL(s.ID), "Service “"+s.Name+"” "+verb+".")
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

// maxConflictLinks bounds the links a refused delete lists, and
// maxConflictScan the keys it reads to find them.
const (
	maxConflictLinks = 20
	maxConflictScan  = 10 * gatehouse.MaxPageSize
)

// keyLinks lists the keys of f whose authorizedEntities name entity, for a
// 409: the first maxConflictLinks, then a link to All API keys for the rest.
func (d *Dashboard) keyLinks(r *http.Request, f gatehouse.KeyFilter, entity string) []views.Link {
	var out []views.Link
	more, unread := 0, false
	for page := 1; ; page++ {
		keys, total, err := d.b.ListAPIKeys(r.Context(), f, gatehouse.Page{Page: page, PageSize: gatehouse.MaxPageSize})
		if err != nil {
			d.log.WarnContext(r.Context(), "dashboard: keys naming an entity", "err", err)
			break
		}
		for _, k := range keys {
			if !slices.Contains(k.AuthorizedEntities, entity) {
				continue
			}
			if len(out) < maxConflictLinks {
				out = append(out, views.Link{Label: "API key " + nameOrID(k), URL: views.KeyScope{}.Key(k.ClientID)})
			} else {
				more++
			}
		}
		if page*gatehouse.MaxPageSize >= total {
			break
		}
		if page*gatehouse.MaxPageSize >= maxConflictScan {
			unread = true
			break
		}
	}
	switch {
	case unread:
		out = append(out, views.Link{Label: "and more keys in All API keys", URL: views.AllKeysURL()})
	case more > 0:
		out = append(out, views.Link{Label: "and " + plural(more, "more key", "more keys") + " in All API keys", URL: views.AllKeysURL()})
	}
	return out
}

func (d *Dashboard) handleServiceDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	svc, err := d.b.GetService(r.Context(), id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	err = d.b.DeleteService(r.Context(), id)
	if e := userError(err); e != nil {
		c := serviceDeleteConfirm(svc)
		c.Error = e.Message
		c.Links = d.keyLinks(r, gatehouse.KeyFilter{ServiceID: id}, gatehouse.ServiceEntity(id))
		d.render(w, r, http.StatusConflict, views.Shell{Title: "Delete " + svc.Name, Service: &svc}, views.ConfirmDeletePage(c), views.ConfirmDeletePanel(c))
		return
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, views.ServicesURL(), "Service “"+svc.Name+"” deleted.")
}
