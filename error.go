package linkd

import (
	"errors"
	"fmt"
	"time"
)

// Error codes are linkd's few failure classes. The transport maps each to one
// gRPC code and one HTTP status, in one table (server/errors.go).
const (
	EINVALID      = "invalid"             // the caller sent something malformed; Field names it
	ENOTFOUND     = "not_found"           // no such record, or not the caller's
	ECONFLICT     = "conflict"            // the record exists already
	EUNAUTHORIZED = "unauthorized"        // no or bad credentials
	EFORBIDDEN    = "forbidden"           // credentials fine, action not allowed
	EPRECONDITION = "failed_precondition" // not allowed in the current state (e.g. sandbox call against production)
	ERATELIMIT    = "rate_limited"        // slow down and retry later
	EUNAVAILABLE  = "unavailable"         // upstream or linkd unavailable; safe to retry
	EINTERNAL     = "internal"            // a bug or an unexpected failure; details only in logs
)

// ErrOutcomeUnknown marks, in an error's chain, a call whose effect linkd
// cannot know: the request may have reached Plaid and no answer came back
// (a timeout, a reset connection, a gateway error).
var ErrOutcomeUnknown = errors.New("outcome unknown")

// Error is linkd's error. Its Message is safe to show a caller: it never
// contains a token or secret.
type Error struct {
	// Code is one of the E* constants.
	Code string
	// Message is a human-readable explanation for the caller.
	Message string
	// Field names the offending request field for EINVALID, as a path in the
	// proto field names ("url", "accounts[1].meta.number").
	Field string
	// Plaid is set when the error came from Plaid.
	Plaid *PlaidError
	// Reason, when set, is a machine-readable cause in linkd's own words
	// (DUPLICATE_ITEM), with Metadata the caller may act on (item_id).
	// Neither ever holds a secret.
	Reason   string
	Metadata map[string]string
	// RetryAfter, when set on ERATELIMIT or EUNAVAILABLE, is how long the
	// caller should wait before trying again.
	RetryAfter time.Duration
	// Fact, when set, is one of the Err* facts below that the Plaid package
	// found in Plaid's answer; errors.Is reaches it through Unwrap.
	Fact error
}

// Facts about Plaid's answers that the service acts on. The Plaid package
// decides them from Plaid's error codes, so that no other package compares
// Plaid's strings.
var (
	// ErrPublicTokenSpent: Plaid refused a public token as invalid, which
	// for a well-formed token means spent (or expired).
	ErrPublicTokenSpent = errors.New("Plaid: public token spent or invalid")
	// ErrItemGone: Plaid no longer knows the Item (removed).
	ErrItemGone = errors.New("Plaid: item not found")
)

// Unwrap returns e.Fact, so that errors.Is(err, ErrItemGone) works.
func (e *Error) Unwrap() error { return e.Fact }

// PlaidError is the error body Plaid returned, minus anything secret.
type PlaidError struct {
	ErrorType      string
	ErrorCode      string
	ErrorMessage   string
	DisplayMessage string
	RequestID      string
	// HTTPStatus is the status Plaid answered with; 0 when unknown.
	HTTPStatus int
}

// Error implements error.
func (e *Error) Error() string {
	var s string
	if e.Field != "" {
		s = fmt.Sprintf("linkd %s: %s: %s", e.Code, e.Field, e.Message)
	} else {
		s = fmt.Sprintf("linkd %s: %s", e.Code, e.Message)
	}
	if e.Plaid != nil {
		s += fmt.Sprintf(" (plaid %s/%s, request_id %s)", e.Plaid.ErrorType, e.Plaid.ErrorCode, e.Plaid.RequestID)
	}
	return s
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidField returns an EINVALID *Error that names the offending field.
func InvalidField(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the *Error in err's chain, EINTERNAL for any
// other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of the *Error in err's chain,
// or a generic message for any other error (whose details belong in logs).
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
