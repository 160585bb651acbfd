package gatehouse

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrorKind classifies an error for the one place that maps errors to HTTP answers.
type ErrorKind int

const (
	KindInternal    ErrorKind = iota // 500, message never shown
	KindInvalid                      // 400
	KindNotFound                     // 404
	KindConflict                     // 409
	KindForbidden                    // 403: authenticated, but not allowed to do this
	KindStorageFull                  // 507: the database cannot be written (a full disk)
)

// Status is the HTTP status of an error of this kind: the one map the admin
// API and the dashboard share.
func (k ErrorKind) Status() int {
	switch k {
	case KindInvalid:
		return http.StatusBadRequest
	case KindNotFound:
		return http.StatusNotFound
	case KindConflict:
		return http.StatusConflict
	case KindForbidden:
		return http.StatusForbidden
	case KindStorageFull:
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}

// Error is an error meant for the caller: its message is safe to show, and
// Field names the offending input field, if any.
type Error struct {
	Kind    ErrorKind
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Errorf builds an *Error of the given kind.
func Errorf(kind ErrorKind, field, format string, args ...any) *Error {
	return &Error{Kind: kind, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Invalid, NotFound and Conflict are shorthands for the common kinds.
func Invalid(field, format string, args ...any) *Error {
	return Errorf(KindInvalid, field, format, args...)
}
func NotFound(format string, args ...any) *Error  { return Errorf(KindNotFound, "", format, args...) }
func Conflict(format string, args ...any) *Error  { return Errorf(KindConflict, "", format, args...) }
func Forbidden(format string, args ...any) *Error { return Errorf(KindForbidden, "", format, args...) }

// ErrStorageFull is the error of a write refused because the database cannot
// be written; its message is what the admin API answers.
var ErrStorageFull = &Error{Kind: KindStorageFull, Message: "storage full"}

// KindOf returns the kind of the first *Error in err's chain, or KindInternal.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// AsError returns the first *Error in err's chain, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// IsStorageFull reports whether err is a write refused for want of space.
func IsStorageFull(err error) bool { return KindOf(err) == KindStorageFull }
