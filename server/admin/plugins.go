package admin

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"gatehouse"
)

// pluginAPI serves /api/plugins.
type pluginAPI struct {
	plugins PluginStore
}

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

// create takes the raw module as the body (application/wasm) and its name
// and limits as query parameters; the module is compiled and its exports
// checked before anything is stored.
func (h *pluginAPI) create(w http.ResponseWriter, r *http.Request) error {
	p := gatehouse.DefaultPlugin()
	p.ID = gatehouse.NewID()
	p.Name = r.URL.Query().Get("name")
	if err := pluginLimits(r, &p); err != nil {
		return err
	}
	// Refuse a bad name or limit before the expensive compilation.
	if err := p.Validate(); err != nil {
		return err
	}
	wasm, err := readBody(w, r, gatehouse.MaxPluginUploadBytes)
	if err != nil {
		return err
	}
	if err := h.plugins.CheckWasm(r.Context(), wasm); err != nil {
		return err
	}
	if err := h.plugins.CreatePlugin(r.Context(), &p, wasm); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, p)
	return nil
}

func (h *pluginAPI) list(w http.ResponseWriter, r *http.Request) error {
	p, err := parsePage(r)
	if err != nil {
		return err
	}
	ps, err := h.plugins.ListPlugins(r.Context())
	if err != nil {
		return err
	}
	// Plugins are few; the store lists them whole and the page is cut here.
	total := len(ps)
	from := min(p.Offset(), total)
	to := min(from+p.Limit(), total)
	writeList(w, ps[from:to], total)
	return nil
}

func (h *pluginAPI) get(w http.ResponseWriter, r *http.Request) error {
	p, err := h.plugins.GetPlugin(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// patch changes the name and limits. The id cannot be changed, and sha256
// and abi belong to the stored module: a patch that changes them is a 400
// naming the field, not silently ignored.
func (h *pluginAPI) patch(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		return err
	}
	cur, err := h.plugins.GetPlugin(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	p := gatehouse.DefaultPlugin()
	if err := patchEntity(r.Header.Get("Content-Type"), body, cur, into(&p)); err != nil {
		return err
	}
	if err := sameID("id", p.ID, cur.ID); err != nil {
		return err
	}
	if p.SHA256 != cur.SHA256 {
		return gatehouse.Invalid("sha256", "is the uploaded module's: PUT new bytes to change it")
	}
	if p.ABI != cur.ABI {
		return gatehouse.Invalid("abi", "is the uploaded module's: it cannot be changed")
	}
	if err := h.plugins.UpdatePlugin(r.Context(), &p); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// put replaces the module's bytes; the gateway swaps the plugin's pools
// without dropping requests in flight.
func (h *pluginAPI) put(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if _, err := h.plugins.GetPlugin(r.Context(), id); err != nil {
		return err
	}
	wasm, err := readBody(w, r, gatehouse.MaxPluginUploadBytes)
	if err != nil {
		return err
	}
	if err := h.plugins.CheckWasm(r.Context(), wasm); err != nil {
		return err
	}
	p, err := h.plugins.ReplacePluginWasm(r.Context(), id, wasm)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (h *pluginAPI) delete(w http.ResponseWriter, r *http.Request) error {
	if err := h.plugins.DeletePlugin(r.Context(), mux.Vars(r)["id"]); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deleted)
	return nil
}
