package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"gatehouse"
)

type errorBody struct {
	Error string `json:"error"`
}

// invalidBody is the 400 body: it always names the field, empty for a
// syntax error, so clients can read it without checking for presence.
type invalidBody struct {
	Error string `json:"error"`
	Field string `json:"field"`
}

// writeJSON answers v as JSON. Answers may hold client secrets, so none is
// cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own types are encoded; this is a bug, not input.
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

var deleted = map[string]bool{"deleted": true}

// statusError is an answer that is HTTP's own rather than the domain's:
// unauthenticated, an unknown route, a method the route does not take.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

var (
	errUnauthenticated  = &statusError{http.StatusUnauthorized, "admin api key required"}
	errMethodNotAllowed = &statusError{http.StatusMethodNotAllowed, "method not allowed"}
	errNotFound         = gatehouse.NotFound("not found")
)

// writeError is the one place errors become HTTP answers, by their kind's
// status (gatehouse.ErrorKind.Status, which the dashboard shares). An
// internal error is logged and answered with a fixed message, never its text.
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{
			Error: fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit)})
		return
	}
	var se *statusError
	if errors.As(err, &se) {
		writeJSON(w, se.status, errorBody{Error: se.msg})
		return
	}
	ge := gatehouse.AsError(err)
	if ge == nil || ge.Kind == gatehouse.KindInternal {
		a.log.ErrorContext(r.Context(), "admin api", "method", r.Method, "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
		return
	}
	if ge.Kind == gatehouse.KindInvalid {
		writeJSON(w, ge.Kind.Status(), invalidBody{Error: ge.Message, Field: ge.Field})
		return
	}
	writeJSON(w, ge.Kind.Status(), errorBody{Error: ge.Message})
}

// revisionWriter puts the revision the request's writes committed in the
// Gatehouse-Revision header, just before the status goes out.
type revisionWriter struct {
	http.ResponseWriter
	rec   *gatehouse.RevisionRecorder
	wrote bool
}

func (w *revisionWriter) WriteHeader(status int) {
	if !w.wrote {
		w.wrote = true
		if rev := w.rec.Revision(); rev > 0 {
			w.Header().Set("Gatehouse-Revision", strconv.FormatInt(rev, 10))
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *revisionWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *revisionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// readBody reads at most limit bytes of the request body; beyond that the
// error is an *http.MaxBytesError (413).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	// MaxBytesReader tells the server's own writer to close the connection
	// after an oversized body; it does not look through wrappers.
	if rw, ok := w.(*revisionWriter); ok {
		w = rw.ResponseWriter
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		return nil, gatehouse.Invalid("", "could not read request body")
	}
	return body, nil
}

// decodeJSON decodes data on top of v, which holds the defaults, so absent
// fields keep them; syntax and type errors are a 400 naming the field. It
// does not look for unknown fields: decodeObject does, for entities. field
// prefixes the field named in errors (for bulk: "[3].").
func decodeJSON(data []byte, v any, field string) error {
	if len(strings.TrimSpace(string(data))) == 0 {
		return gatehouse.Invalid(strings.TrimSuffix(field, "."), "request body must be a JSON object")
	}
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return gatehouse.Invalid(strings.TrimSuffix(field, "."), "must be a JSON %s", kindName(typeErr.Type))
		}
		return gatehouse.Invalid(field+typeErr.Field, "must be %s", describeType(typeErr.Type))
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return gatehouse.Invalid(strings.TrimSuffix(field, "."), "malformed JSON at byte %d", syntaxErr.Offset)
	}
	return gatehouse.Invalid(strings.TrimSuffix(field, "."), "malformed JSON")
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	}
	return "value"
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return describeType(t.Elem()) + " or null"
	}
	return "an object"
}

// parsePage reads page (from 1) and pageSize (1 to 1000, default 50).
func parsePage(r *http.Request) (gatehouse.Page, error) {
	p := gatehouse.Page{Page: 1, PageSize: gatehouse.DefaultPageSize}
	q := r.URL.Query()
	if s := q.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return p, gatehouse.Invalid("page", "must be a whole number from 1")
		}
		p.Page = n
	}
	if s := q.Get("pageSize"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > gatehouse.MaxPageSize {
			return p, gatehouse.Invalid("pageSize", "must be a whole number from 1 to %d", gatehouse.MaxPageSize)
		}
		p.PageSize = n
	}
	// Offset() multiplies; keep it far from overflowing int.
	if p.Page > (1<<31)/p.PageSize {
		return p, gatehouse.Invalid("page", "is too large")
	}
	return p, nil
}

// writeList answers one page of a list with its total in X-Total-Count.
func writeList[T any](w http.ResponseWriter, items []T, total int) {
	if items == nil {
		items = []T{}
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	writeJSON(w, http.StatusOK, items)
}
