package views

import (
	"fmt"
	"strings"

	"gatehouse"
)

// KeyRow is one line of a service's key table.
type KeyRow struct {
	ServiceID string
	Key       gatehouse.APIKey
	Usage     gatehouse.QuotaUsage
}

// RowID is the table row's element id, the target of the inline toggle.
func (r KeyRow) RowID() string { return "key-" + r.Key.ClientID }

// KeysData is the API keys screen of one service (its group's keys).
type KeysData struct {
	Service   gatehouse.Service
	GroupName string
	Rows      []KeyRow
	Q         string
	Pager     Pager
}

// KeyForm holds what the key form shows, as typed.
type KeyForm struct {
	Service      gatehouse.Service
	Edit         bool
	ClientName   string
	ClientID     string
	ClientSecret string
	Throttling   string
	Daily        string
	Monthly      string
	Enabled      bool
	Errors       FormErrors
}

// KeyFormFields are the key fields the form shows, for ErrorsFrom.
var KeyFormFields = []string{"clientName", "clientId", "clientSecret", "throttlingQuota", "dailyQuota", "monthlyQuota"}

func (f KeyForm) Action() string {
	if f.Edit {
		return KeyURL(f.Service.ID, f.ClientID)
	}
	return KeysURL(f.Service.ID)
}

// CurlLine is a ready-to-run command calling the service with a key.
type CurlLine struct {
	Label   string
	Command string
}

// DayCount is one day's number of calls.
type DayCount struct {
	Day   string // 2006-01-02
	Count int64
}

// KeyDetailData is one key's page: its quotas, how to call, and its history.
type KeyDetailData struct {
	Service gatehouse.Service
	Key     gatehouse.APIKey
	Usage   gatehouse.QuotaUsage
	Curl    []CurlLine
	Days    []DayCount // oldest first
}

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

// meterHigh marks the last 20% of a quota as the warning zone of the bar.
func meterHigh(limit int64) string { return i64(limit - limit/5) }

func sumDays(days []DayCount) int64 {
	var n int64
	for _, d := range days {
		n += d.Count
	}
	return n
}
