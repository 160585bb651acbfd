package views

import "gatehouse"

// ServicesData is the all-services list.
type ServicesData struct {
	Services []gatehouse.Service
	Groups   map[string]string // group id -> name
	Q        string
	Pager    Pager
	Group    *gatehouse.Group // when the list is one group's services
}

// ServiceData is one service's overview page.
type ServiceData struct {
	Service   gatehouse.Service
	GroupName string
	KeyCount  int
	Plugins   map[string]string // plugin id -> name
}

// TargetRow is one editable target line of the service form.
type TargetRow struct {
	Host   string
	Scheme string
}

// ServiceForm holds what the service form shows, as typed.
type ServiceForm struct {
	Edit            bool
	ID              string
	GroupID         string
	Name            string
	Env             string
	Domain          string
	Subdomain       string
	Targets         []TargetRow
	Root            string
	MatchingRoot    string
	Enabled         bool
	MaintenanceMode bool
	BuildMode       bool
	ForceHTTPS      bool
	SendHeaders     bool
	PublicPatterns  string
	PrivatePatterns string
	Groups          []gatehouse.Group
	Errors          FormErrors
}

// ServiceFormFields are the service fields the form shows, for ErrorsFrom.
var ServiceFormFields = []string{"id", "groupId", "name", "env", "domain", "subdomain", "targets",
	"root", "matchingRoot", "publicPatterns", "privatePatterns"}

// Action is where the form posts.
func (f ServiceForm) Action() string {
	if f.Edit {
		return ServiceURL(f.ID)
	}
	return ServicesURL()
}

// TargetRows returns the targets plus one empty row to add another.
func (f ServiceForm) TargetRows() []TargetRow {
	rows := append([]TargetRow(nil), f.Targets...)
	return append(rows, TargetRow{Scheme: "http"})
}
