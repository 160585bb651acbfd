package gatehouse

// DocumentFormat names the shape of a Document (contract section 12).
const DocumentFormat = "gatehouse/v1"

// Document is the whole configuration, as GET /api/export answers it and
// POST /api/apply takes it: every group, service, API key and plugin except
// the built-in admin-api-group and the admin API keys.
type Document struct {
	Format   string           `json:"format"`
	Groups   []Group          `json:"groups"`
	Services []Service        `json:"services"`
	APIKeys  []APIKey         `json:"apikeys"`
	Plugins  []PluginDocument `json:"plugins"`
}

// PluginDocument is a plugin with its module, base64 in JSON and YAML. An
// apply may leave Wasm out for a plugin whose SHA256 the gateway already holds.
type PluginDocument struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	SHA256           string `json:"sha256"`
	MemoryLimitPages uint32 `json:"memoryLimitPages"`
	TimeoutMs        int64  `json:"timeoutMs"`
	PoolSize         int    `json:"poolSize"`
	Wasm             []byte `json:"wasm"`
}

// Plugin is the plugin's metadata, without its module.
func (p *PluginDocument) Plugin() Plugin {
	return Plugin{ID: p.ID, Name: p.Name, SHA256: p.SHA256, ABI: PluginABI,
		MemoryLimitPages: p.MemoryLimitPages, TimeoutMs: p.TimeoutMs, PoolSize: p.PoolSize}
}

// ApplyResult is what an apply did, or with a dry run would do: entries are
// "<kind>/<id>" (kind one of group, service, apikey, plugin). Revision is
// the revision the apply committed, or the current one when it wrote nothing.
type ApplyResult struct {
	Created  []string `json:"created"`
	Updated  []string `json:"updated"`
	Deleted  []string `json:"deleted"`
	Revision int64    `json:"revision"`
}
