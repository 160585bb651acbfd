package views

import "gatehouse"

// GroupsData is the list of service groups.
type GroupsData struct {
	Groups   []gatehouse.Group
	Services map[string]int // group id -> number of services
	Pager    Pager
}

// GroupForm holds what the group form shows, as typed.
type GroupForm struct {
	Edit        bool
	ID          string
	Name        string
	Description string
	Errors      FormErrors
}

// GroupFormFields are the group fields the form shows, for ErrorsFrom.
var GroupFormFields = []string{"name", "id", "description"}

func (f GroupForm) Action() string {
	if f.Edit {
		return GroupURL(f.ID)
	}
	return GroupsURL()
}

// PluginForm is the upload form, as typed.
type PluginForm struct {
	Name             string
	MemoryLimitPages string
	TimeoutMs        string
	PoolSize         string
	Errors           FormErrors
}

// PluginFormFields are the plugin fields the upload form shows.
var PluginFormFields = []string{"name", "wasm", "memoryLimitPages", "timeoutMs", "poolSize"}

// PluginsData is the plugins screen: the uploaded modules and the upload form.
type PluginsData struct {
	Plugins []gatehouse.Plugin
	UsedBy  map[string][]gatehouse.Service // plugin id -> services it is attached to
	Form    PluginForm
}

// PluginRow is one attachment line of a service's plugin chain, as typed.
type PluginRow struct {
	Position string
	Ref      string
	Config   string
	FailOpen bool
}

// ServicePluginsForm edits a service's ordered plugin chain.
type ServicePluginsForm struct {
	Service gatehouse.Service
	Rows    []PluginRow
	Plugins []gatehouse.Plugin
	Errors  FormErrors
}

// AllRows returns the attachments plus one empty row to attach another.
func (f ServicePluginsForm) AllRows() []PluginRow {
	rows := append([]PluginRow(nil), f.Rows...)
	return append(rows, PluginRow{Position: itoa(len(f.Rows) + 1)})
}

// PluginEditForm changes a plugin's name and limits.
type PluginEditForm struct {
	Plugin           gatehouse.Plugin
	Name             string
	MemoryLimitPages string
	TimeoutMs        string
	PoolSize         string
	Errors           FormErrors
}

// PluginEditFields are the fields of the limits form, in their order.
var PluginEditFields = []string{"name", "memoryLimitPages", "timeoutMs", "poolSize"}

// PluginReplaceForm uploads new bytes for a plugin.
type PluginReplaceForm struct {
	Plugin gatehouse.Plugin
	Errors FormErrors
}

// PluginData is one plugin's page: what it is, where it runs, its limits
// and its module.
type PluginData struct {
	Plugin  gatehouse.Plugin
	UsedBy  []gatehouse.Service
	Edit    PluginEditForm
	Replace PluginReplaceForm
}
