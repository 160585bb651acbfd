package views

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"gatehouse"
)

// KeyRow is one line of a key table.
type KeyRow struct {
	Scope    KeyScope
	Key      gatehouse.APIKey
	Usage    gatehouse.QuotaUsage
	NowMs    int64
	LastUsed int64 // epoch ms, 0 when never used (or not known)
	Wide     bool  // the "All API keys" table: a last use column
	Location *time.Location
}

// RowID is the table row's element id, the target of the inline toggle.
func (r KeyRow) RowID() string { return "key-" + r.Key.ClientID }

// ToggleID is the switch's id: htmx gives the focus back to an element of
// the same id after swapping the row.
func (r KeyRow) ToggleID() string { return "toggle-" + r.Key.ClientID }

// Admin reports whether the key is an admin API key.
func (r KeyRow) Admin() bool { return IsAdminKey(r.Key) }

// IsAdminKey reports whether the key may call the admin API.
func IsAdminKey(k gatehouse.APIKey) bool {
	for _, e := range k.AuthorizedEntities {
		if e == gatehouse.GroupEntity(gatehouse.AdminGroupID) {
			return true
		}
	}
	return false
}

// KeysData is the API keys screen of one service (its group's keys).
type KeysData struct {
	Service   gatehouse.Service
	GroupName string
	Rows      []KeyRow
	Q         string
	Pager     Pager
}

// AllKeysData is "All API keys": every key of every group.
type AllKeysData struct {
	Rows  []KeyRow
	Q     string
	Sort  string
	Pager Pager
}

// SortOption is one choice of the sort select.
type SortOption struct{ Value, Label string }

// SortOptions are the orders the key list offers.
func SortOptions() []SortOption {
	return []SortOption{{gatehouse.SortCreated, "Created (oldest first)"}, {gatehouse.SortName, "Name"},
		{gatehouse.SortLastUsed, "Last used (most recent first)"}}
}

// KVRow is one key/value line of a map field (metadata, headers), as typed.
type KVRow struct {
	Key   string
	Value string
}

// KVRows turns a map into rows sorted by key.
func KVRows(m map[string]string) []KVRow {
	rows := make([]KVRow, 0, len(m))
	for k, v := range m {
		rows = append(rows, KVRow{k, v})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
	return rows
}

// EntityChoice is one group or service a key can be authorized on.
type EntityChoice struct {
	Entity string // group_<id> or service_<id>
	Label  string
	Hint   string
}

// KeyForm holds what the key form shows, as typed.
type KeyForm struct {
	Scope             KeyScope
	Service           *gatehouse.Service // the service whose screens the form is on, if any
	Edit              bool
	ClientName        string
	ClientID          string
	ClientSecret      string
	Description       string
	Entities          []string // checked authorizedEntities
	Groups            []EntityChoice
	Services          []EntityChoice
	Throttling        string
	Daily             string
	Monthly           string
	ValidUntil        string // datetime-local value, in TimeZone
	TimeZone          string
	Tags              string // comma separated
	Metadata          []KVRow
	Enabled           bool
	ReadOnly          bool
	AllowClientIDOnly bool
	FocusRow          int // metadata row to focus after adding one; -1 for none
	Errors            FormErrors
}

// KeyFormFields are the key fields the form shows, in their order.
var KeyFormFields = []string{"clientName", "clientId", "clientSecret", "description", "authorizedEntities",
	"throttlingQuota", "dailyQuota", "monthlyQuota", "validUntil", "tags", "metadata"}

func (f KeyForm) Action() string {
	if f.Edit {
		return f.Scope.Key(f.ClientID)
	}
	return f.Scope.List()
}

// Checked reports whether an entity is ticked.
func (f KeyForm) Checked(entity string) bool {
	for _, e := range f.Entities {
		if e == entity {
			return true
		}
	}
	return false
}

// MetadataRows are the rows shown: at least one, to type the first entry.
func (f KeyForm) MetadataRows() []KVRow {
	if len(f.Metadata) == 0 {
		return []KVRow{{}}
	}
	return f.Metadata
}

// CurlLine is a ready-to-run command calling the service with a key; Masked
// is the same command with the credential hidden, shown until revealed.
type CurlLine struct {
	Label   string
	Command string
	Masked  string
}

// DayCount is one day's number of calls.
type DayCount struct {
	Day   string // 2006-01-02
	Count int64
}

// EntityLink names one entity a key is authorized on.
type EntityLink struct {
	Kind  string // "group" or "service"
	Label string
	URL   string // empty when the entity no longer exists
}

// KeyDetailData is one key's page: its settings, quotas, how to call, and
// its history.
type KeyDetailData struct {
	Scope    KeyScope
	Service  *gatehouse.Service
	Key      gatehouse.APIKey
	Entities []EntityLink
	Usage    gatehouse.QuotaUsage
	Curl     []CurlLine
	Days     []DayCount // oldest first
	NowMs    int64
	LastUsed int64 // epoch ms, 0 when never used
	Location *time.Location
}

// Status is the key's status as the gateway sees it now.
func (d KeyDetailData) Status() string { return KeyStatus(d.Key, d.NowMs) }

// Bar is one column of the usage chart, in SVG user units.
type Bar struct {
	X, Y, W, H float64
	Day        string
	Count      int64
}

// Chart geometry: a fixed viewBox the browser scales to the panel's width.
const (
	chartW, chartH       = 600.0, 160.0
	chartLeft, chartBase = 36.0, 140.0
)

// ChartBars lays the days out as bars scaled to the busiest day.
func ChartBars(days []DayCount) []Bar {
	if len(days) == 0 {
		return nil
	}
	var peak int64
	for _, d := range days {
		peak = max(peak, d.Count)
	}
	slot := (chartW - chartLeft) / float64(len(days))
	bars := make([]Bar, len(days))
	for i, d := range days {
		h := 0.0
		if peak > 0 {
			h = float64(d.Count) / float64(peak) * (chartBase - 10)
		}
		if d.Count > 0 && h < 1 {
			h = 1 // a day with calls stays visible next to a huge peak
		}
		bars[i] = Bar{X: chartLeft + float64(i)*slot + slot*0.15, Y: chartBase - h, W: slot * 0.7, H: h, Day: d.Day, Count: d.Count}
	}
	return bars
}

// LabelX places a day's axis label: centred under its bar, except the last
// one, which ends at its bar's right edge so the viewBox does not clip it.
func (b Bar) LabelX(last bool) float64 {
	if last {
		return b.X + b.W
	}
	return b.X + b.W/2
}

func labelAnchor(last bool) string {
	if last {
		return "end"
	}
	return "middle"
}

// ChartPeak is the label of the chart's top line.
func ChartPeak(days []DayCount) int64 {
	var peak int64
	for _, d := range days {
		peak = max(peak, d.Count)
	}
	return peak
}

func fnum(f float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", f), "0"), ".")
}

func chartViewBox() string { return fmt.Sprintf("0 0 %g %g", chartW, chartH) }

// shortDay turns 2006-01-02 into 01-02 for axis labels.
func shortDay(day string) string {
	if len(day) == 10 {
		return day[5:]
	}
	return day
}

// Quota levels of a usage bar: warn from 90 % of the quota, whatever its
// size (3 of 3 is full, 2 of 3 is not yet a warning), full at the quota.
const (
	LevelOK   = "ok"
	LevelWarn = "warn"
	LevelFull = "full"
)

// QuotaLevel compares used calls with a quota in whole numbers.
func QuotaLevel(used, limit int64) string {
	switch {
	case used >= limit:
		return LevelFull
	case used*10 >= limit*9:
		return LevelWarn
	}
	return LevelOK
}

func sumDays(days []DayCount) int64 {
	var n int64
	for _, d := range days {
		n += d.Count
	}
	return n
}

func lastUsedText(ms int64, loc *time.Location) string {
	if ms == 0 {
		return "never"
	}
	return dateTime(ms, loc)
}

func accessText(k gatehouse.APIKey) string {
	s := "read and write"
	if k.ReadOnly {
		s = "read only (GET, HEAD and OPTIONS)"
	}
	if k.AllowClientIDOnly {
		s += "; the client id alone is accepted"
	}
	return s
}
