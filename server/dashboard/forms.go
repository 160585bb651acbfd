package dashboard

import (
	"net/http"
	"strconv"
	"strings"

	"gatehouse"
	"gatehouse/views"
)

// collectErrors runs validate again and again, each time putting the field
// it refused back to a value that passes (fix), so that a form shows every
// invalid field at once although an entity's Validate stops at the first.
// It stops at a field without a fix, one it saw already, or an error that
// is not about input.
func collectErrors(errs views.FormErrors, shown []string, validate func() error, fix func(field string) bool) {
	seen := map[string]bool{}
	for range 64 {
		e := gatehouse.AsError(validate())
		if e == nil || e.Kind != gatehouse.KindInvalid {
			return
		}
		errs.Add(e, shown...)
		if seen[e.Field] || !fix(e.Field) {
			return
		}
		seen[e.Field] = true
	}
}

// rowAction reads a row editor's button: "add-<list>" or
// "remove-<list>-<i>". ok is false for any other _action.
func rowAction(r *http.Request) (list string, remove int, ok bool) {
	a := r.PostFormValue("_action")
	if l, found := strings.CutPrefix(a, "add-"); found {
		return l, -1, true
	}
	if rest, found := strings.CutPrefix(a, "remove-"); found {
		i := strings.LastIndexByte(rest, '-')
		if i < 0 {
			return "", 0, false
		}
		n, err := strconv.Atoi(rest[i+1:])
		if err != nil || n < 0 {
			return "", 0, false
		}
		return rest[:i], n, true
	}
	return "", 0, false
}

// editRows applies an add (remove < 0) or a remove to rows and returns the
// index of the row to focus: the added one, or the one now in the removed
// row's place.
func editRows[T any](rows []T, remove int, blank T) ([]T, int) {
	if remove < 0 {
		return append(rows, blank), len(rows)
	}
	if remove < len(rows) {
		rows = append(rows[:remove:remove], rows[remove+1:]...)
	}
	if len(rows) == 0 {
		rows = []T{blank} // the list keeps one row to type into
	}
	return rows, min(remove, len(rows)-1)
}

// readKV reads a key/value row editor as typed (rows with an empty key too).
func readKV(r *http.Request, name string) []views.KVRow {
	keys, values := r.PostForm[name+"Key"], r.PostForm[name+"Value"]
	rows := make([]views.KVRow, 0, len(keys))
	for i, k := range keys {
		row := views.KVRow{Key: strings.TrimSpace(k)}
		if i < len(values) {
			row.Value = values[i]
		}
		rows = append(rows, row)
	}
	return rows
}

// kvMap turns rows into a map: rows without key and value are left out, a
// value without key or a key given twice is an error of field.
func kvMap(field string, rows []views.KVRow) (map[string]string, *gatehouse.Error) {
	m := make(map[string]string, len(rows))
	for _, row := range rows {
		if row.Key == "" {
			if strings.TrimSpace(row.Value) != "" {
				return m, gatehouse.Invalid(field, "the value %q has no name", row.Value)
			}
			continue
		}
		if _, dup := m[row.Key]; dup {
			return m, gatehouse.Invalid(field, "%q is given twice", row.Key)
		}
		m[row.Key] = row.Value
	}
	return m, nil
}

// lines splits a textarea into its non-empty trimmed lines.
func lines(s string) []string {
	out := []string{}
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// commaList splits "a, b,,c" into [a b c].
func commaList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseCount reads a whole number, forgiving the separators people type.
func parseCount(field, s string) (int64, *gatehouse.Error) {
	clean := strings.NewReplacer(",", "", "_", "", " ", "", "\u00a0", "").Replace(strings.TrimSpace(s))
	n, err := strconv.ParseInt(clean, 10, 64)
	if err != nil {
		return 0, gatehouse.Invalid(field, "must be a whole number")
	}
	return n, nil
}
