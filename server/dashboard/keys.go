package dashboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"gatehouse"
	"gatehouse/views"
)

// keyCtx is where a key screen is: under a service (svc set) or under "All
// API keys", and the key of the path, if any.
type keyCtx struct {
	scope views.KeyScope
	svc   *gatehouse.Service
	key   gatehouse.APIKey
}

// loadKey loads the service of the path, if any, and the key it names; a key
// not authorized on the service is not found under it.
func (d *Dashboard) loadKey(r *http.Request) (keyCtx, error) {
	var kc keyCtx
	if id := r.PathValue("id"); id != "" {
		svc, err := d.b.GetService(r.Context(), id)
		if err != nil {
			return kc, err
		}
		kc.svc, kc.scope = &svc, views.KeyScope{ServiceID: svc.ID}
	}
	cid := r.PathValue("clientId")
	if cid == "" {
		return kc, nil
	}
	k, err := d.b.GetAPIKey(r.Context(), cid)
	if err != nil {
		return kc, err
	}
	if kc.svc != nil && !k.AuthorizedOn(kc.svc.ID, kc.svc.GroupID) {
		return kc, gatehouse.NotFound("apikey %q is not a key of this service", cid)
	}
	kc.key = k
	return kc, nil
}

func (kc keyCtx) shell(title string) views.Shell {
	if kc.svc != nil {
		return views.Shell{Title: title, Nav: views.NavServiceKeys, Service: kc.svc}
	}
	return views.Shell{Title: title, Nav: views.NavKeys}
}

// usage returns a key's live usage; an error is logged and shows as zero
// rather than hiding the whole table.
func (d *Dashboard) usage(r *http.Request, clientID string) gatehouse.QuotaUsage {
	u, err := d.b.Usage(r.Context(), clientID)
	if err != nil {
		d.log.WarnContext(r.Context(), "dashboard: key usage", "client_id", clientID, "err", err)
	}
	return u
}

func (d *Dashboard) nowMs() int64 { return d.now().UnixMilli() }

func (d *Dashboard) keyRow(r *http.Request, scope views.KeyScope, k gatehouse.APIKey) views.KeyRow {
	return views.KeyRow{Scope: scope, Key: k, Usage: d.usage(r, k.ClientID), NowMs: d.nowMs(), Location: d.loc}
}

func (d *Dashboard) handleKeys(w http.ResponseWriter, r *http.Request) {
	kc, err := d.loadKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	svc := *kc.svc
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	page := gatehouse.Page{Page: pageParam(r), PageSize: pageSize}
	keys, total, err := d.b.ListAPIKeys(r.Context(), gatehouse.KeyFilter{ServiceID: svc.ID, Q: q}, page)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	data := views.KeysData{
		Service: svc, Q: q,
		Pager: views.Pager{Page: page.Page, PageSize: pageSize, Total: total, Base: views.KeysURL(svc.ID), Query: url.Values{"q": {q}}},
	}
	if g, err := d.b.GetGroup(r.Context(), svc.GroupID); err == nil {
		data.GroupName = g.Name
	}
	for _, k := range keys {
		data.Rows = append(data.Rows, d.keyRow(r, kc.scope, k))
	}
	d.render(w, r, http.StatusOK, kc.shell("API keys of "+svc.Name), views.KeysPage(data), nil)
}

// handleAllKeys lists every key of every group, searched and paged.
func (d *Dashboard) handleAllKeys(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	sort := r.URL.Query().Get("sort")
	if !slices.ContainsFunc(views.SortOptions(), func(o views.SortOption) bool { return o.Value == sort }) {
		sort = gatehouse.SortCreated
	}
	page := gatehouse.Page{Page: pageParam(r), PageSize: pageSize}
	keys, total, err := d.listKeysSorted(r, gatehouse.KeyFilter{Q: q}, sort, page)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	query := url.Values{"q": {q}}
	if sort != gatehouse.SortCreated {
		query.Set("sort", sort)
	}
	data := views.AllKeysData{Q: q, Sort: sort,
		Pager: views.Pager{Page: page.Page, PageSize: pageSize, Total: total, Base: views.AllKeysURL(), Query: query}}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ClientID
	}
	last := d.lastUsed(r, ids...)
	for _, k := range keys {
		row := d.keyRow(r, views.KeyScope{}, k)
		row.Wide, row.LastUsed = true, last[k.ClientID]
		data.Rows = append(data.Rows, row)
	}
	d.render(w, r, http.StatusOK, views.Shell{Title: "All API keys", Nav: views.NavKeys}, views.AllKeysPage(data), nil)
}

// entityChoices lists what a key can be authorized on: every group (the
// built-in admin group makes admin API keys) and every service.
func (d *Dashboard) entityChoices(r *http.Request) (groups, services []views.EntityChoice, err error) {
	gs, _, err := d.allGroups(r)
	if err != nil {
		return nil, nil, err
	}
	for _, g := range gs {
		hint := ""
		if g.ID == gatehouse.AdminGroupID {
			hint = "(admin API keys)"
		}
		groups = append(groups, views.EntityChoice{Entity: gatehouse.GroupEntity(g.ID), Label: g.Name, Hint: hint})
	}
	svcs, err := d.b.AllServices(r.Context())
	if err != nil {
		return nil, nil, err
	}
	for _, s := range svcs {
		services = append(services, views.EntityChoice{Entity: gatehouse.ServiceEntity(s.ID), Label: s.Name, Hint: s.Host()})
	}
	return groups, services, nil
}

const dateTimeLocal = "2006-01-02T15:04"

func (d *Dashboard) keyForm(kc keyCtx, k gatehouse.APIKey, edit bool) views.KeyForm {
	f := views.KeyForm{
		Scope: kc.scope, Service: kc.svc, Edit: edit, ClientName: k.ClientName, ClientID: k.ClientID, ClientSecret: k.ClientSecret,
		Description: k.Description, Entities: slices.Clone(k.AuthorizedEntities),
		Throttling: strconv.FormatInt(k.ThrottlingQuota, 10), Daily: strconv.FormatInt(k.DailyQuota, 10),
		Monthly: strconv.FormatInt(k.MonthlyQuota, 10), Enabled: k.Enabled, ReadOnly: k.ReadOnly, AllowClientIDOnly: k.AllowClientIDOnly,
		Tags: strings.Join(k.Tags, ", "), Metadata: views.KVRows(k.Metadata), TimeZone: d.loc.String(), FocusRow: -1,
	}
	if k.ValidUntil != nil {
		f.ValidUntil = time.UnixMilli(*k.ValidUntil).In(d.loc).Format(dateTimeLocal)
	}
	return f
}

func (d *Dashboard) readKeyForm(r *http.Request, kc keyCtx) views.KeyForm {
	return views.KeyForm{
		Scope: kc.scope, Service: kc.svc, ClientName: r.PostFormValue("clientName"),
		ClientID: strings.TrimSpace(r.PostFormValue("clientId")), ClientSecret: r.PostFormValue("clientSecret"),
		Description: r.PostFormValue("description"), Entities: r.PostForm["authorizedEntities"],
		Throttling: r.PostFormValue("throttlingQuota"), Daily: r.PostFormValue("dailyQuota"),
		Monthly: r.PostFormValue("monthlyQuota"), ValidUntil: strings.TrimSpace(r.PostFormValue("validUntil")),
		Tags: r.PostFormValue("tags"), Metadata: readKV(r, "metadata"), TimeZone: d.loc.String(), FocusRow: -1,
		Enabled: r.PostFormValue("enabled") == "true", ReadOnly: r.PostFormValue("readOnly") == "true",
		AllowClientIDOnly: r.PostFormValue("allowClientIdOnly") == "true",
	}
}

// applyKeyForm writes the form's fields onto k and returns every field it
// could not read, each with its message.
func (d *Dashboard) applyKeyForm(f views.KeyForm, k *gatehouse.APIKey) views.FormErrors {
	errs := views.FormErrors{}
	add := func(e *gatehouse.Error) {
		if e != nil {
			errs.Add(e, views.KeyFormFields...)
		}
	}
	var e *gatehouse.Error
	k.ThrottlingQuota, e = parseCount("throttlingQuota", f.Throttling)
	add(e)
	k.DailyQuota, e = parseCount("dailyQuota", f.Daily)
	add(e)
	k.MonthlyQuota, e = parseCount("monthlyQuota", f.Monthly)
	add(e)
	k.ValidUntil = nil
	if f.ValidUntil != "" {
		t, err := time.ParseInLocation(dateTimeLocal, f.ValidUntil, d.loc)
		if err != nil {
			t, err = time.ParseInLocation(dateTimeLocal+":05", f.ValidUntil, d.loc)
		}
		if err != nil {
			add(gatehouse.Invalid("validUntil", "must be a date and time such as 2030-12-31T23:59"))
		} else {
			ms := t.UnixMilli()
			k.ValidUntil = &ms
		}
	}
	k.Metadata, e = kvMap("metadata", f.Metadata)
	add(e)
	k.ClientName = strings.TrimSpace(f.ClientName)
	k.ClientSecret = f.ClientSecret
	k.Description = f.Description
	k.AuthorizedEntities = slices.Compact(slices.Sorted(slices.Values(f.Entities)))
	k.Tags = commaList(f.Tags)
	k.Enabled, k.ReadOnly, k.AllowClientIDOnly = f.Enabled, f.ReadOnly, f.AllowClientIDOnly
	if f.ClientSecret == "" {
		// An empty secret would be generated silently by the store; say so instead.
		add(gatehouse.Invalid("clientSecret", "must not be empty"))
	}
	if k.ClientID == "" {
		add(gatehouse.Invalid("clientId", "must not be empty"))
	}
	// What Validate refuses, all of it: each refused field is set to a value
	// that passes until nothing is left.
	probe := *k
	collectErrors(errs, views.KeyFormFields, probe.Validate, func(field string) bool {
		def := gatehouse.DefaultAPIKey()
		switch field {
		case "clientId":
			probe.ClientID = "x"
		case "clientSecret":
			probe.ClientSecret = "x"
		case "clientName":
			probe.ClientName = ""
		case "description":
			probe.Description = ""
		case "authorizedEntities":
			probe.AuthorizedEntities = nil
		case "throttlingQuota":
			probe.ThrottlingQuota = def.ThrottlingQuota
		case "dailyQuota":
			probe.DailyQuota = def.DailyQuota
		case "monthlyQuota":
			probe.MonthlyQuota = def.MonthlyQuota
		case "validUntil":
			probe.ValidUntil = nil
		default:
			return false
		}
		return true
	})
	return errs
}

func (d *Dashboard) renderKeyForm(w http.ResponseWriter, r *http.Request, kc keyCtx, f views.KeyForm, status int) {
	var err error
	if f.Groups, f.Services, err = d.entityChoices(r); err != nil {
		d.fail(w, r, err)
		return
	}
	title := "New API key"
	if f.Edit {
		title = "Edit API key"
	}
	var frag templ.Component // a GET from htmx gets the page's content
	if r.Method == http.MethodPost {
		frag = views.KeyFormEl(f)
	}
	d.render(w, r, status, kc.shell(title), views.KeyFormPage(f), frag)
}

func (d *Dashboard) handleKeyNew(w http.ResponseWriter, r *http.Request) {
	kc, err := d.loadKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	k := gatehouse.DefaultAPIKey()
	k.ClientID, k.ClientSecret = gatehouse.NewClientID(), gatehouse.NewClientSecret()
	if kc.svc != nil {
		// A key made from a service's screen opens that service's whole group,
		// as in the admin API's /api/services/{id}/apikeys.
		k.AuthorizedEntities = []string{gatehouse.GroupEntity(kc.svc.GroupID)}
	}
	d.renderKeyForm(w, r, kc, d.keyForm(kc, k, false), http.StatusOK)
}

func (d *Dashboard) handleKeyEdit(w http.ResponseWriter, r *http.Request) {
	kc, err := d.loadKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.renderKeyForm(w, r, kc, d.keyForm(kc, kc.key, true), http.StatusOK)
}

func (d *Dashboard) handleKeyCreate(w http.ResponseWriter, r *http.Request) {
	kc, err := d.loadKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.saveKey(w, r, kc, false)
}

func (d *Dashboard) handleKeyUpdate(w http.ResponseWriter, r *http.Request) {
	kc, err := d.loadKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.saveKey(w, r, kc, true)
}

// saveKey creates or updates (edit) a key from the posted form. The
// regenerate and row buttons post the form too: they redraw it and save
// nothing, so they work with and without JavaScript.
func (d *Dashboard) saveKey(w http.ResponseWriter, r *http.Request, kc keyCtx, edit bool) {
	f := d.readKeyForm(r, kc)
	f.Edit = edit
	if edit {
		f.ClientID = kc.key.ClientID
	}
	switch r.PostFormValue("_action") {
	case "regenerate-clientId":
		if !edit {
			f.ClientID = gatehouse.NewClientID()
		}
		d.renderKeyForm(w, r, kc, f, http.StatusOK)
		return
	case "regenerate-clientSecret":
		f.ClientSecret = gatehouse.NewClientSecret()
		d.renderKeyForm(w, r, kc, f, http.StatusOK)
		return
	}
	if list, remove, ok := rowAction(r); ok && list == "metadata" {
		f.Metadata, f.FocusRow = editRows(f.Metadata, remove, views.KVRow{})
		d.renderKeyForm(w, r, kc, f, http.StatusOK)
		return
	}
	k := gatehouse.DefaultAPIKey()
	if edit {
		k = kc.key
	} else {
		k.ClientID = f.ClientID
	}
	errs := d.applyKeyForm(f, &k)
	if !errs.Any() {
		var err error
		if edit {
			err = d.b.UpdateAPIKey(r.Context(), &k)
		} else {
			err = d.b.CreateAPIKey(r.Context(), &k)
		}
		if e := userError(err); e != nil {
			if e.Kind == gatehouse.KindConflict && e.Field == "" {
				e = &gatehouse.Error{Kind: e.Kind, Field: "clientId", Message: "a key with this client id already exists"}
			}
			errs.Add(e, views.KeyFormFields...)
		} else if err != nil {
			d.fail(w, r, err)
			return
		}
	}
	if errs.Any() {
		f.Errors = errs.Focus(views.KeyFormFields...)
		d.renderKeyForm(w, r, kc, f, http.StatusUnprocessableEntity)
		return
	}
	verb := "created"
	if edit {
		verb = "updated"
	}
	to := kc.scope.Key(k.ClientID)
	if kc.svc != nil && !k.AuthorizedOn(kc.svc.ID, kc.svc.GroupID) {
		to = views.KeyScope{}.Key(k.ClientID) // no longer a key of this service
	}
	d.done(w, r, to, "API key "+keyName(k)+" "+verb+".")
}

func keyName(k gatehouse.APIKey) string {
	if k.ClientName != "" {
		return "“" + k.ClientName + "”"
	}
	return k.ClientID
}

// handleKeyToggle sets a key's enabled flag from the table; htmx gets the
// redrawn row and the confirmation out of band.
func (d *Dashboard) handleKeyToggle(w http.ResponseWriter, r *http.Request) {
	kc, err := d.loadKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	enabled, perr := strconv.ParseBool(r.PostFormValue("enabled"))
	if perr != nil {
		d.fail(w, r, gatehouse.Invalid("enabled", "must be true or false"))
		return
	}
	k := kc.key
	k.Enabled = enabled
	if err := d.b.UpdateAPIKey(r.Context(), &k); err != nil {
		d.fail(w, r, err)
		return
	}
	msg := "API key " + keyName(k) + " disabled."
	if enabled {
		msg = "API key " + keyName(k) + " enabled."
	}
	if !isFragment(r) {
		d.done(w, r, kc.scope.List(), msg)
		return
	}
	row := d.keyRow(r, kc.scope, k)
	row.Wide = kc.svc == nil
	if row.Wide {
		row.LastUsed = d.lastUsed(r, k.ClientID)[k.ClientID]
	}
	d.write(w, r, http.StatusOK, views.KeyRowWithFlash(row, msg))
}

func keyDeleteConfirm(kc keyCtx) views.ConfirmDelete {
	return views.ConfirmDelete{
		Kind: "API key", Name: nameOrID(kc.key), Detail: "Client id " + kc.key.ClientID + ": calls with it will be refused at once.",
		Action: kc.scope.Delete(kc.key.ClientID), CancelURL: kc.scope.List(),
	}
}

func nameOrID(k gatehouse.APIKey) string {
	if k.ClientName == "" {
		return k.ClientID
	}
	return k.ClientName
}

func (d *Dashboard) handleKeyDeleteConfirm(w http.ResponseWriter, r *http.Request) {
	kc, err := d.loadKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, kc.shell("Delete API key"), views.ConfirmDeletePage(keyDeleteConfirm(kc)), nil)
}

func (d *Dashboard) handleKeyDelete(w http.ResponseWriter, r *http.Request) {
	kc, err := d.loadKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if err := d.b.DeleteAPIKey(r.Context(), kc.key.ClientID); err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, kc.scope.List(), "API key "+keyName(kc.key)+" deleted.")
}

func (d *Dashboard) handleKeyResetConfirm(w http.ResponseWriter, r *http.Request) {
	kc, err := d.loadKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	c := views.ResetQuotas{Name: nameOrID(kc.key), ClientID: kc.key.ClientID,
		Action: kc.scope.Reset(kc.key.ClientID), CancelURL: kc.scope.Key(kc.key.ClientID)}
	d.render(w, r, http.StatusOK, kc.shell("Reset quotas"), views.ResetQuotasPage(c), nil)
}

func (d *Dashboard) handleKeyReset(w http.ResponseWriter, r *http.Request) {
	kc, err := d.loadKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if err := d.b.ResetUsage(r.Context(), kc.key.ClientID); err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, kc.scope.Key(kc.key.ClientID), "Quotas of "+keyName(kc.key)+" reset.")
}

// chartDays is how much history the key page draws.
const chartDays = 30

func (d *Dashboard) handleKey(w http.ResponseWriter, r *http.Request) {
	kc, err := d.loadKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	k := kc.key
	days := lastDays(d.now().In(d.loc), chartDays)
	counts, err := d.dailyCalls(r, k.ClientID, days[0].Day, days[len(days)-1].Day)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	for i := range days {
		days[i].Count = counts[days[i].Day]
	}
	data := views.KeyDetailData{Scope: kc.scope, Service: kc.svc, Key: k, Usage: d.usage(r, k.ClientID), Days: days,
		NowMs: d.nowMs(), LastUsed: d.lastUsed(r, k.ClientID)[k.ClientID], Location: d.loc}
	data.Entities, data.Curl = d.keyEntities(r, kc, k)
	if views.Viewer(r.Context()) {
		data.Curl = nil // they hold the secret
	}
	d.render(w, r, http.StatusOK, kc.shell(nameOrID(k)), views.KeyDetailPage(data), nil)
}

// keyEntities names what the key is authorized on, and the curl lines that
// call the first service it opens (the page's own service when there is one).
func (d *Dashboard) keyEntities(r *http.Request, kc keyCtx, k gatehouse.APIKey) ([]views.EntityLink, []views.CurlLine) {
	var links []views.EntityLink
	target := kc.svc
	for _, e := range k.AuthorizedEntities {
		if id, ok := strings.CutPrefix(e, "group_"); ok {
			l := views.EntityLink{Kind: "group", Label: id}
			if g, err := d.b.GetGroup(r.Context(), id); err == nil {
				l.Label, l.URL = g.Name, views.GroupURL(g.ID)
				if target == nil && g.ID != gatehouse.AdminGroupID {
					if list, _, err := d.b.ListServices(r.Context(), gatehouse.ServiceFilter{GroupID: g.ID}, gatehouse.Page{Page: 1, PageSize: 1}); err == nil && len(list) > 0 {
						target = &list[0]
					}
				}
			}
			links = append(links, l)
		} else if id, ok := strings.CutPrefix(e, "service_"); ok {
			l := views.EntityLink{Kind: "service", Label: id}
			if s, err := d.b.GetService(r.Context(), id); err == nil {
				l.Label, l.URL = s.Name, views.ServiceURL(s.ID)
				if target == nil {
					target = &s
				}
			}
			links = append(links, l)
		}
	}
	if target == nil {
		return links, nil
	}
	return links, d.curlLines(*target, k)
}

// lastDays lists the n calendar days ending with now's, oldest first.
func lastDays(now time.Time, n int) []views.DayCount {
	y, m, day := now.Date()
	out := make([]views.DayCount, n)
	for i := range n {
		// Noon of each date steps over DST changes safely.
		t := time.Date(y, m, day-(n-1-i), 12, 0, 0, 0, now.Location())
		out[i] = views.DayCount{Day: t.Format("2006-01-02")}
	}
	return out
}

// masked stands for a credential in the curl lines shown before "Reveal".
const masked = "••••••••"

// curlLines are commands that call the service through the gateway with the
// key, naming the service's host in a Host header so they work against any
// gateway address: Basic, the Otoroshi headers, a JWT signed with the
// secret, and the client id alone when the key allows it.
func (d *Dashboard) curlLines(svc gatehouse.Service, k gatehouse.APIKey) []views.CurlLine {
	host := strings.ReplaceAll(svc.Host(), "*", "test")
	path := "/"
	if svc.MatchingRoot != nil {
		path = *svc.MatchingRoot
	}
	base := "curl -i " + shellQuote(d.gateway+path) + " -H " + shellQuote("Host: "+host)
	line := func(label, full, hidden string) views.CurlLine {
		return views.CurlLine{Label: label, Command: base + full, Masked: base + hidden}
	}
	lines := []views.CurlLine{
		line("Basic authentication", " -u "+shellQuote(k.ClientID+":"+k.ClientSecret), " -u "+shellQuote(k.ClientID+":"+masked)),
		line("Otoroshi-Client-Id and Otoroshi-Client-Secret headers",
			" -H "+shellQuote("Otoroshi-Client-Id: "+k.ClientID)+" -H "+shellQuote("Otoroshi-Client-Secret: "+k.ClientSecret),
			" -H "+shellQuote("Otoroshi-Client-Id: "+k.ClientID)+" -H "+shellQuote("Otoroshi-Client-Secret: "+masked)),
		line("JWT (HS256, signed with the secret, valid for one hour)",
			" -H "+shellQuote("Authorization: Bearer "+d.jwt(k)), " -H "+shellQuote("Authorization: Bearer "+masked)),
	}
	if k.AllowClientIDOnly {
		lines = append(lines, views.CurlLine{Label: "Client id alone (x-api-key)",
			Command: base + " -H " + shellQuote("x-api-key: "+k.ClientID), Masked: base + " -H " + shellQuote("x-api-key: "+k.ClientID)})
	}
	return lines
}

// jwt signs a token for the key with its secret (HS256), as a client would.
func (d *Dashboard) jwt(k gatehouse.APIKey) string {
	enc := base64.RawURLEncoding
	now := d.now().Unix()
	claims, _ := json.Marshal(map[string]any{"clientId": k.ClientID, "iat": now, "exp": now + 3600})
	unsigned := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, []byte(k.ClientSecret))
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil))
}

// shellQuote wraps s in single quotes for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
