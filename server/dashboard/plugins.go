package dashboard

import (
	"errors"
	"io"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"

	"gatehouse"
	"gatehouse/views"
)

func (d *Dashboard) pluginsShell() views.Shell {
	return views.Shell{Title: "Plugins", Nav: views.NavPlugins}
}

// pluginsData lists the plugins and the services each is attached to.
func (d *Dashboard) pluginsData(r *http.Request, form views.PluginForm) (views.PluginsData, error) {
	plugins, err := d.b.ListPlugins(r.Context())
	if err != nil {
		return views.PluginsData{}, err
	}
	services, _, err := d.b.ListServices(r.Context(), gatehouse.ServiceFilter{}, gatehouse.Page{Page: 1, PageSize: gatehouse.MaxPageSize})
	if err != nil {
		return views.PluginsData{}, err
	}
	used := map[string][]gatehouse.Service{}
	for _, s := range services {
		seen := map[string]bool{}
		for _, p := range s.Plugins {
			if !seen[p.Ref] {
				seen[p.Ref] = true
				used[p.Ref] = append(used[p.Ref], s)
			}
		}
	}
	return views.PluginsData{Plugins: plugins, UsedBy: used, Form: form}, nil
}

func defaultPluginForm() views.PluginForm {
	p := gatehouse.DefaultPlugin()
	return views.PluginForm{
		MemoryLimitPages: strconv.Itoa(int(p.MemoryLimitPages)),
		TimeoutMs:        strconv.FormatInt(p.TimeoutMs, 10),
		PoolSize:         strconv.Itoa(p.PoolSize),
	}
}

func (d *Dashboard) handlePlugins(w http.ResponseWriter, r *http.Request) {
	data, err := d.pluginsData(r, defaultPluginForm())
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, d.pluginsShell(), views.PluginsPage(data), nil)
}

func (d *Dashboard) handlePluginUpload(w http.ResponseWriter, r *http.Request) {
	// requireSession may have parsed the form already; parsing twice is a no-op.
	if err := parseForm(r); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			d.pluginFormError(w, r, http.StatusRequestEntityTooLarge, views.PluginForm{},
				gatehouse.Invalid("wasm", "must be at most %d MiB", gatehouse.MaxPluginUploadBytes>>20))
			return
		}
		d.fail(w, r, gatehouse.Invalid("", "the upload could not be read"))
		return
	}
	f := views.PluginForm{
		Name:             strings.TrimSpace(r.PostFormValue("name")),
		MemoryLimitPages: r.PostFormValue("memoryLimitPages"),
		TimeoutMs:        r.PostFormValue("timeoutMs"),
		PoolSize:         r.PostFormValue("poolSize"),
	}
	p := gatehouse.DefaultPlugin()
	p.Name = f.Name
	var wasm []byte
	err := func() error {
		mem, err := parseQuota("memoryLimitPages", f.MemoryLimitPages)
		if err != nil {
			return err
		}
		if p.TimeoutMs, err = parseQuota("timeoutMs", f.TimeoutMs); err != nil {
			return err
		}
		pool, err := parseQuota("poolSize", f.PoolSize)
		if err != nil {
			return err
		}
		if mem < 0 || mem > gatehouse.MaxPluginMemoryPages || pool < 0 || pool > gatehouse.MaxPluginPoolSize {
			return nil // out of range: Validate names the field
		}
		p.MemoryLimitPages, p.PoolSize = uint32(mem), int(pool)
		return nil
	}()
	if err == nil {
		file, hdr, ferr := r.FormFile("wasm")
		if ferr != nil {
			err = gatehouse.Invalid("wasm", "choose a .wasm file to upload")
		} else {
			defer file.Close()
			if p.Name == "" {
				p.Name = strings.TrimSuffix(path.Base(hdr.Filename), ".wasm")
			}
			wasm, err = io.ReadAll(io.LimitReader(file, gatehouse.MaxPluginUploadBytes+1))
			if err == nil && int64(len(wasm)) > gatehouse.MaxPluginUploadBytes {
				err = gatehouse.Invalid("wasm", "must be at most %d MiB", gatehouse.MaxPluginUploadBytes>>20)
			}
		}
	}
	if err == nil {
		if cerr := d.b.CheckWasm(r.Context(), wasm); cerr != nil {
			if userError(cerr) != nil {
				e := userError(cerr)
				err = gatehouse.Invalid("wasm", "%s", e.Message)
			} else {
				d.log.InfoContext(r.Context(), "dashboard: plugin rejected", "err", cerr)
				err = gatehouse.Invalid("wasm", "not a WebAssembly module the plugin host can run")
			}
		}
	}
	if err == nil {
		err = d.b.CreatePlugin(r.Context(), &p, wasm)
	}
	if e := userError(err); e != nil {
		d.pluginFormError(w, r, http.StatusUnprocessableEntity, f, e)
		return
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, views.PluginsURL())
}

func (d *Dashboard) pluginFormError(w http.ResponseWriter, r *http.Request, status int, f views.PluginForm, e *gatehouse.Error) {
	f.Errors = views.ErrorsFrom(e, views.PluginFormFields...)
	data, err := d.pluginsData(r, f)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, status, d.pluginsShell(), views.PluginsPage(data), views.PluginFormEl(f))
}

func pluginDeleteConfirm(p gatehouse.Plugin) views.ConfirmDelete {
	return views.ConfirmDelete{Kind: "plugin", Name: p.Name, Detail: "sha256 " + p.SHA256 + ". A plugin attached to a service cannot be deleted.",
		Action: views.PluginDeleteURL(p.ID), CancelURL: views.PluginsURL()}
}

func (d *Dashboard) handlePluginDeleteConfirm(w http.ResponseWriter, r *http.Request) {
	p, err := d.b.GetPlugin(r.Context(), r.PathValue("id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, d.pluginsShell(), views.ConfirmDeletePage(pluginDeleteConfirm(p)), nil)
}

func (d *Dashboard) handlePluginDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := d.b.DeletePlugin(r.Context(), id)
	if e := userError(err); e != nil {
		p, gerr := d.b.GetPlugin(r.Context(), id)
		if gerr != nil {
			d.fail(w, r, gerr)
			return
		}
		c := pluginDeleteConfirm(p)
		c.Error = e.Message
		d.render(w, r, http.StatusConflict, d.pluginsShell(), views.ConfirmDeletePage(c), views.ConfirmDeletePanel(c))
		return
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, views.PluginsURL())
}

func (d *Dashboard) servicePluginsForm(r *http.Request, svc gatehouse.Service) (views.ServicePluginsForm, error) {
	plugins, err := d.b.ListPlugins(r.Context())
	if err != nil {
		return views.ServicePluginsForm{}, err
	}
	f := views.ServicePluginsForm{Service: svc, Plugins: plugins}
	for i, p := range svc.Plugins {
		f.Rows = append(f.Rows, views.PluginRow{Position: strconv.Itoa(i + 1), Ref: p.Ref, Config: p.Config, FailOpen: p.FailOpen})
	}
	return f, nil
}

func (d *Dashboard) handleServicePlugins(w http.ResponseWriter, r *http.Request) {
	svc, err := d.b.GetService(r.Context(), r.PathValue("id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	f, err := d.servicePluginsForm(r, svc)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	shell := views.Shell{Title: "Plugins of " + svc.Name, Nav: views.NavServicePlugins, Service: &svc}
	d.render(w, r, http.StatusOK, shell, views.ServicePluginsPage(f), nil)
}

// handleServicePluginsSave replaces the service's plugin chain: rows with a
// plugin, sorted by their order field (ties keep the form's order).
func (d *Dashboard) handleServicePluginsSave(w http.ResponseWriter, r *http.Request) {
	svc, err := d.b.GetService(r.Context(), r.PathValue("id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	f, err := d.servicePluginsForm(r, svc)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	positions, refs, configs := r.PostForm["position"], r.PostForm["ref"], r.PostForm["config"]
	failOpen := map[string]bool{}
	for _, v := range r.PostForm["failOpen"] {
		failOpen[v] = true
	}
	type row struct {
		pos int
		r   views.PluginRow
	}
	var rows []row
	var bad *gatehouse.Error
	for i, ref := range refs {
		pr := views.PluginRow{Ref: ref, FailOpen: failOpen[strconv.Itoa(i)]}
		if i < len(positions) {
			pr.Position = strings.TrimSpace(positions[i])
		}
		if i < len(configs) {
			pr.Config = configs[i]
		}
		if ref == "" {
			continue // an empty row detaches or adds nothing
		}
		pos, perr := strconv.Atoi(pr.Position)
		if perr != nil && bad == nil {
			bad = gatehouse.Invalid("plugins", "order %q of row %d must be a whole number", pr.Position, i+1)
		}
		rows = append(rows, row{pos, pr})
	}
	sort.SliceStable(rows, func(a, b int) bool { return rows[a].pos < rows[b].pos })
	f.Rows = f.Rows[:0]
	svc.Plugins = []gatehouse.PluginRef{}
	for _, rw := range rows {
		f.Rows = append(f.Rows, rw.r)
		svc.Plugins = append(svc.Plugins, gatehouse.PluginRef{Ref: rw.r.Ref, Config: rw.r.Config, FailOpen: rw.r.FailOpen})
	}
	if bad == nil {
		err = d.b.UpdateService(r.Context(), &svc)
	}
	e := bad
	if e == nil {
		e = userError(err)
	}
	if e != nil {
		f.Errors = views.ErrorsFrom(e, "plugins")
		shell := views.Shell{Title: "Plugins of " + svc.Name, Nav: views.NavServicePlugins, Service: &svc}
		d.render(w, r, http.StatusUnprocessableEntity, shell, views.ServicePluginsPage(f), views.ServicePluginsFormEl(f))
		return
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, views.ServicePluginsURL(svc.ID))
}
