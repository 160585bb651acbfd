package admin

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"sync"

	"gatehouse"
)

// decodeObject decodes one JSON object on top of v (which holds the
// defaults) and refuses a field that v's type does not have, at any depth,
// so that a typo such as "dailyQuta" is a 400 naming it rather than a key
// with the default quota. Names match exactly (encoding/json alone would
// take "DailyQuota" too). extra names further top-level fields the caller
// reads itself (a key's "authorizedGroup"). field prefixes the field named
// in errors (for bulk: "[3].").
func decodeObject(data []byte, v any, field string, extra ...string) error {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] != '{' {
		return gatehouse.Invalid(strings.TrimSuffix(field, "."), "must be a JSON object")
	}
	if err := decodeJSON(data, v, field); err != nil {
		return err
	}
	if name := unknownField(data, reflect.TypeOf(v), field, extra); name != "" {
		return gatehouse.Invalid(name, "unknown field")
	}
	return nil
}

// unknownField returns the path of the first field of data, in document
// order, that t does not have ("" when there is none). Nested fields are
// named as encoding/json names them in type errors: "targets.host". data
// is valid JSON of t's shape (decodeJSON said so).
func unknownField(data []byte, t reflect.Type, prefix string, extra []string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		fields := jsonFields(t)
		dec := json.NewDecoder(bytes.NewReader(data))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return "" // null: nothing to look at
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return ""
			}
			name, _ := tok.(string)
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return ""
			}
			ft, ok := fields[name]
			if !ok {
				if slices.Contains(extra, name) {
					continue
				}
				return prefix + name
			}
			if f := unknownField(raw, ft, prefix+name+".", nil); f != "" {
				return f
			}
		}
	case reflect.Slice, reflect.Array:
		var elems []json.RawMessage
		if json.Unmarshal(data, &elems) != nil {
			return ""
		}
		for _, e := range elems {
			if f := unknownField(e, t.Elem(), prefix, nil); f != "" {
				return f
			}
		}
	}
	// Maps (metadata, headers) take any key; scalars have no fields.
	return ""
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields maps the JSON names of a struct's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	fieldCache.Store(t, m)
	return m
}
