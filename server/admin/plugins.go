package admin

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"gatehouse"
)

// pluginLimits reads the optional limit query parameters of an upload onto p.
func pluginLimits(r *http.Request, p *gatehouse.Plugin) error {
	q := r.URL.Query()
	if s := q.Get("memoryLimitPages"); s != "" {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return gatehouse.Invalid("memoryLimitPages", "must be a whole number of 64 KiB pages")
		}
		p.MemoryLimitPages = uint32(n)
	}
	if s := q.Get("timeoutMs"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return gatehouse.Invalid("timeoutMs", "must be a whole number of milliseconds")
		}
		p.TimeoutMs = n
	}
	if s := q.Get("poolSize"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return gatehouse.Invalid("poolSize", "must be a whole number")
		}
		p.PoolSize = n
	}
	return nil
}

// handlePluginCreate takes the raw module as the body (application/wasm) and
// its name and limits as query parameters; the module is compiled and its
// exports checked before anything is stored.
func (a *api) handlePluginCreate(w http.ResponseWriter, r *http.Request) {
	p := gatehouse.DefaultPlugin()
	p.ID = gatehouse.NewID()
	p.Name = r.URL.Query().Get("name")
	if err := pluginLimits(r, &p); err != nil {
		a.writeError(w, r, err)
		return
	}
	// Refuse a bad name or limit before the expensive compilation.
	if err := p.Validate(); err != nil {
		a.writeError(w, r, err)
		return
	}
	wasm, err := readBody(w, r, gatehouse.MaxPluginUploadBytes)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.b.CheckWasm(r.Context(), wasm); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.b.CreatePlugin(r.Context(), &p, wasm); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

func (a *api) handlePluginList(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	ps, err := a.b.ListPlugins(r.Context())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	// Plugins are few; the store lists them whole and the page is cut here.
	total := len(ps)
	from := min(p.Offset(), total)
	to := min(from+p.Limit(), total)
	writeList(w, ps[from:to], total)
}

func (a *api) handlePluginGet(w http.ResponseWriter, r *http.Request) {
	p, err := a.b.GetPlugin(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// handlePluginPatch changes the name and limits; id, sha256 and abi belong to
// the stored module and are kept whatever the patch says.
func (a *api) handlePluginPatch(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	cur, err := a.b.GetPlugin(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	p := gatehouse.DefaultPlugin()
	if err := patchEntity(r.Header.Get("Content-Type"), body, cur, into(&p)); err != nil {
		a.writeError(w, r, err)
		return
	}
	p.ID, p.SHA256, p.ABI = cur.ID, cur.SHA256, cur.ABI
	if err := a.b.UpdatePlugin(r.Context(), &p); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// handlePluginPut replaces the module's bytes; the gateway swaps its pools
// through the store's hook.
func (a *api) handlePluginPut(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if _, err := a.b.GetPlugin(r.Context(), id); err != nil {
		a.writeError(w, r, err)
		return
	}
	wasm, err := readBody(w, r, gatehouse.MaxPluginUploadBytes)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.b.CheckWasm(r.Context(), wasm); err != nil {
		a.writeError(w, r, err)
		return
	}
	p, err := a.b.ReplacePluginWasm(r.Context(), id, wasm)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (a *api) handlePluginDelete(w http.ResponseWriter, r *http.Request) {
	if err := a.b.DeletePlugin(r.Context(), mux.Vars(r)["id"]); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deleted)
}
