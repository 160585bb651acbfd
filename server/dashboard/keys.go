package dashboard

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gatehouse"
	"gatehouse/views"
)

// serviceKey loads the service of the path and, when the path names one,
// a key authorized on it; a key of another service is not found here.
func (d *Dashboard) serviceKey(r *http.Request) (gatehouse.Service, gatehouse.APIKey, error) {
	svc, err := d.b.GetService(r.Context(), r.PathValue("id"))
	if err != nil {
		return svc, gatehouse.APIKey{}, err
	}
	cid := r.PathValue("clientId")
	if cid == "" {
		return svc, gatehouse.APIKey{}, nil
	}
	k, err := d.b.GetAPIKey(r.Context(), cid)
	if err != nil {
		return svc, k, err
	}
	if !k.AuthorizedOn(svc.ID, svc.GroupID) {
		return svc, k, gatehouse.NotFound("apikey %q is not a key of this service", cid)
	}
	return svc, k, nil
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

func (d *Dashboard) keysShell(svc *gatehouse.Service, title string) views.Shell {
	return views.Shell{Title: title, Nav: views.NavServiceKeys, Service: svc}
}

func (d *Dashboard) handleKeys(w http.ResponseWriter, r *http.Request) {
	svc, _, err := d.serviceKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
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
		data.Rows = append(data.Rows, views.KeyRow{ServiceID: svc.ID, Key: k, Usage: d.usage(r, k.ClientID)})
	}
	d.render(w, r, http.StatusOK, d.keysShell(&svc, "API keys of "+svc.Name), views.KeysPage(data), nil)
}

func keyForm(svc gatehouse.Service, k gatehouse.APIKey, edit bool) views.KeyForm {
	return views.KeyForm{
		Service: svc, Edit: edit, ClientName: k.ClientName, ClientID: k.ClientID, ClientSecret: k.ClientSecret,
		Throttling: strconv.FormatInt(k.ThrottlingQuota, 10), Daily: strconv.FormatInt(k.DailyQuota, 10),
		Monthly: strconv.FormatInt(k.MonthlyQuota, 10), Enabled: k.Enabled,
	}
}

func readKeyForm(r *http.Request, svc gatehouse.Service) views.KeyForm {
	return views.KeyForm{
		Service: svc, ClientName: r.PostFormValue("clientName"),
		ClientID: strings.TrimSpace(r.PostFormValue("clientId")), ClientSecret: r.PostFormValue("clientSecret"),
		Throttling: r.PostFormValue("throttlingQuota"), Daily: r.PostFormValue("dailyQuota"),
		Monthly: r.PostFormValue("monthlyQuota"), Enabled: r.PostFormValue("enabled") == "true",
	}
}

// parseQuota reads a whole number, forgiving the separators people type.
func parseQuota(field, s string) (int64, error) {
	clean := strings.NewReplacer(",", "", "_", "", " ", "", "\u00a0", "").Replace(strings.TrimSpace(s))
	n, err := strconv.ParseInt(clean, 10, 64)
	if err != nil {
		return 0, gatehouse.Invalid(field, "must be a whole number")
	}
	return n, nil
}

// applyKeyForm writes the form's fields onto k.
func applyKeyForm(f views.KeyForm, k *gatehouse.APIKey) error {
	var err error
	if k.ThrottlingQuota, err = parseQuota("throttlingQuota", f.Throttling); err != nil {
		return err
	}
	if k.DailyQuota, err = parseQuota("dailyQuota", f.Daily); err != nil {
		return err
	}
	if k.MonthlyQuota, err = parseQuota("monthlyQuota", f.Monthly); err != nil {
		return err
	}
	k.ClientName = strings.TrimSpace(f.ClientName)
	k.ClientSecret = f.ClientSecret
	k.Enabled = f.Enabled
	return nil
}

func (d *Dashboard) handleKeyNew(w http.ResponseWriter, r *http.Request) {
	svc, _, err := d.serviceKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	k := gatehouse.DefaultAPIKey()
	k.ClientID, k.ClientSecret = gatehouse.NewClientID(), gatehouse.NewClientSecret()
	f := keyForm(svc, k, false)
	d.render(w, r, http.StatusOK, d.keysShell(&svc, "New API key"), views.KeyFormPage(f), nil)
}

func (d *Dashboard) handleKeyEdit(w http.ResponseWriter, r *http.Request) {
	svc, k, err := d.serviceKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	f := keyForm(svc, k, true)
	d.render(w, r, http.StatusOK, d.keysShell(&svc, "Edit API key"), views.KeyFormPage(f), nil)
}

func (d *Dashboard) handleKeyCreate(w http.ResponseWriter, r *http.Request) {
	svc, _, err := d.serviceKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.saveKey(w, r, svc, nil)
}

func (d *Dashboard) handleKeyUpdate(w http.ResponseWriter, r *http.Request) {
	svc, k, err := d.serviceKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.saveKey(w, r, svc, &k)
}

// saveKey creates (existing nil) or updates a key of svc from the posted form.
// The regenerate buttons post the form too: they redraw it with a fresh value
// and save nothing, so they work with and without JavaScript.
func (d *Dashboard) saveKey(w http.ResponseWriter, r *http.Request, svc gatehouse.Service, existing *gatehouse.APIKey) {
	f := readKeyForm(r, svc)
	f.Edit = existing != nil
	if existing != nil {
		f.ClientID = existing.ClientID
	}
	shell := d.keysShell(&svc, "New API key")
	if f.Edit {
		shell.Title = "Edit API key"
	}
	switch r.PostFormValue("_action") {
	case "regenerate-clientId":
		if !f.Edit {
			f.ClientID = gatehouse.NewClientID()
		}
		d.render(w, r, http.StatusOK, shell, views.KeyFormPage(f), views.KeyFormEl(f))
		return
	case "regenerate-clientSecret":
		f.ClientSecret = gatehouse.NewClientSecret()
		d.render(w, r, http.StatusOK, shell, views.KeyFormPage(f), views.KeyFormEl(f))
		return
	}
	var k gatehouse.APIKey
	if existing != nil {
		k = *existing
	} else {
		k = gatehouse.DefaultAPIKey()
		k.ClientID = f.ClientID
		// A key made from a service's screen opens that service's whole group,
		// as in the admin API's /api/services/{id}/apikeys.
		k.AuthorizedEntities = []string{gatehouse.GroupEntity(svc.GroupID)}
		if f.ClientID == "" {
			err := gatehouse.Invalid("clientId", "must not be empty")
			f.Errors = views.ErrorsFrom(err, views.KeyFormFields...)
			d.render(w, r, http.StatusUnprocessableEntity, shell, views.KeyFormPage(f), views.KeyFormEl(f))
			return
		}
	}
	if f.ClientSecret == "" {
		// An empty secret would be generated silently by the store; say so instead.
		err := gatehouse.Invalid("clientSecret", "must not be empty")
		f.Errors = views.ErrorsFrom(err, views.KeyFormFields...)
		d.render(w, r, http.StatusUnprocessableEntity, shell, views.KeyFormPage(f), views.KeyFormEl(f))
		return
	}
	err := applyKeyForm(f, &k)
	if err == nil {
		if existing != nil {
			err = d.b.UpdateAPIKey(r.Context(), &k)
		} else {
			err = d.b.CreateAPIKey(r.Context(), &k)
		}
	}
	if e := userError(err); e != nil {
		if e.Kind == gatehouse.KindConflict && e.Field == "" {
			e = &gatehouse.Error{Kind: e.Kind, Field: "clientId", Message: "a key with this client id already exists"}
		}
		f.Errors = views.ErrorsFrom(e, views.KeyFormFields...)
		d.render(w, r, http.StatusUnprocessableEntity, shell, views.KeyFormPage(f), views.KeyFormEl(f))
		return
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, views.KeysURL(svc.ID))
}

// handleKeyToggle sets a key's enabled flag from the table; htmx gets the
// redrawn row.
func (d *Dashboard) handleKeyToggle(w http.ResponseWriter, r *http.Request) {
	svc, k, err := d.serviceKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	enabled, perr := strconv.ParseBool(r.PostFormValue("enabled"))
	if perr != nil {
		d.fail(w, r, gatehouse.Invalid("enabled", "must be true or false"))
		return
	}
	k.Enabled = enabled
	if err := d.b.UpdateAPIKey(r.Context(), &k); err != nil {
		d.fail(w, r, err)
		return
	}
	if !isFragment(r) {
		http.Redirect(w, r, views.KeysURL(svc.ID), http.StatusSeeOther)
		return
	}
	d.write(w, r, http.StatusOK, views.KeyRowEl(views.KeyRow{ServiceID: svc.ID, Key: k, Usage: d.usage(r, k.ClientID)}))
}

func keyDeleteConfirm(svc gatehouse.Service, k gatehouse.APIKey) views.ConfirmDelete {
	name := k.ClientName
	if name == "" {
		name = k.ClientID
	}
	return views.ConfirmDelete{
		Kind: "API key", Name: name, Detail: "Client id " + k.ClientID + ": calls with it will be refused at once.",
		Action: views.KeyDeleteURL(svc.ID, k.ClientID), CancelURL: views.KeysURL(svc.ID),
	}
}

func (d *Dashboard) handleKeyDeleteConfirm(w http.ResponseWriter, r *http.Request) {
	svc, k, err := d.serviceKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, d.keysShell(&svc, "Delete API key"), views.ConfirmDeletePage(keyDeleteConfirm(svc, k)), nil)
}

func (d *Dashboard) handleKeyDelete(w http.ResponseWriter, r *http.Request) {
	svc, k, err := d.serviceKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if err := d.b.DeleteAPIKey(r.Context(), k.ClientID); err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, views.KeysURL(svc.ID))
}

// chartDays is how much history the key page draws.
const chartDays = 30

func (d *Dashboard) handleKey(w http.ResponseWriter, r *http.Request) {
	svc, k, err := d.serviceKey(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	days := lastDays(d.now().In(d.loc), chartDays)
	counters, err := d.b.KeyCounters(r.Context(), k.ClientID, days[0].Day, days[len(days)-1].Day)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	byDay := make(map[string]int64, len(counters))
	for _, c := range counters {
		if len(c.Period) == len("2006-01-02") { // monthly periods sort between days: skip them
			byDay[c.Period] = c.Count
		}
	}
	for i := range days {
		days[i].Count = byDay[days[i].Day]
	}
	data := views.KeyDetailData{Service: svc, Key: k, Usage: d.usage(r, k.ClientID), Days: days, Curl: d.curlLines(svc, k)}
	d.render(w, r, http.StatusOK, d.keysShell(&svc, k.ClientName), views.KeyDetailPage(data), nil)
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

// curlLines are commands that call the service through the gateway with the
// key, naming the service's host in a Host header so they work against any
// gateway address.
func (d *Dashboard) curlLines(svc gatehouse.Service, k gatehouse.APIKey) []views.CurlLine {
	host := strings.ReplaceAll(svc.Host(), "*", "test")
	path := "/"
	if svc.MatchingRoot != nil {
		path = *svc.MatchingRoot
	}
	target := shellQuote(d.gateway + path)
	hostHeader := shellQuote("Host: " + host)
	return []views.CurlLine{
		{Label: "Basic authentication", Command: "curl -i " + target + " -H " + hostHeader + " -u " + shellQuote(k.ClientID+":"+k.ClientSecret)},
		{Label: "Otoroshi-Client-Id and Otoroshi-Client-Secret headers", Command: "curl -i " + target + " -H " + hostHeader +
			" -H " + shellQuote("Otoroshi-Client-Id: "+k.ClientID) + " -H " + shellQuote("Otoroshi-Client-Secret: "+k.ClientSecret)},
	}
}

// shellQuote wraps s in single quotes for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
