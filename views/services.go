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
	Additional      []KVRow
	Matching        []KVRow
	Whitelist       string // one entry a line
	Blacklist       string
	Groups          []gatehouse.Group
	FocusRow        map[string]int // the row just added, per row list, gets the focus
	Errors          FormErrors
}

func (f ServiceForm) focusRow(list string) int {
	if i, ok := f.FocusRow[list]; ok {
		return i
	}
	return -1
}

func atLeastOne(rows []KVRow) []KVRow {
	if len(rows) == 0 {
		return []KVRow{{}}
	}
	return rows
}

// ServiceFormFields are the service fields the form shows, for ErrorsFrom.
var ServiceFormFields = []string{"name", "id", "groupId", "subdomain", "env", "domain", "targets",
	"root", "matchingRoot", "publicPatterns", "privatePatterns", "additionalHeaders", "matchingHeaders",
	"ipFiltering.whitelist", "ipFiltering.blacklist"}

// Action is where the form posts.
func (f ServiceForm) Action() string {
	if f.Edit {
		return ServiceURL(f.ID)
	}
	return ServicesURL()
}

// TargetRows are the rows shown: at least one, to type the first target.
func (f ServiceForm) TargetRows() []TargetRow {
	if len(f.Targets) == 0 {
		return []TargetRow{{Scheme: "http"}}
	}
	return f.Targets
}
