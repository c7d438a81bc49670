package core

import (
	"errors"
	"fmt"
)

// Kind classifies an Error so the server can map it to a status code.
type Kind int

const (
	KindInternal        Kind = iota // 500: a bug or an unexpected failure
	KindInvalid                     // 400: bad input
	KindUnauthenticated             // 401: the presented identity is not accepted
	KindForbidden                   // 403: policy denied
	KindNotFound                    // 404
	KindConflict                    // 409
	KindRateLimited                 // 429: a limit was hit
	KindUnavailable                 // 503: a dependency (target, audit sink) is down
)

// Error keeps the text that is safe to return (Public) apart from the
// internal cause, which is logged and audited but never sent to the caller.
type Error struct {
	Kind   Kind
	Code   string // machine-readable code, e.g. "invalid_request", "access_denied"
	Public string
	cause  error
}

func (e *Error) Error() string {
	if e.cause == nil {
		return e.Public
	}
	return e.Public + ": " + e.cause.Error()
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.cause }

// Cause returns the internal cause, for logs and audit.
func (e *Error) Cause() error { return e.cause }

// E builds an Error. code may be "" to use the kind's default.
func E(kind Kind, code, public string, cause error) *Error {
	if code == "" {
		code = DefaultCode(kind)
	}
	return &Error{Kind: kind, Code: code, Public: public, cause: cause}
}

// Invalid is a 400 with a reason safe to show.
func Invalid(format string, args ...any) *Error {
	return E(KindInvalid, "invalid_request", fmt.Sprintf(format, args...), nil)
}

// Unauthenticated is the one message every authentication failure shows;
// the precise reason is in cause.
func Unauthenticated(cause error) *Error {
	return E(KindUnauthenticated, "invalid_token", "invalid identity token", cause)
}

// Forbidden is a policy denial.
func Forbidden(public string, cause error) *Error {
	return E(KindForbidden, "access_denied", public, cause)
}

// DefaultCode is the OAuth-style error code for a kind.
func DefaultCode(k Kind) string {
	switch k {
	case KindInvalid:
		return "invalid_request"
	case KindUnauthenticated:
		return "invalid_token"
	case KindForbidden:
		return "access_denied"
	case KindNotFound:
		return "not_found"
	case KindConflict:
		return "conflict"
	case KindRateLimited:
		return "rate_limited"
	case KindUnavailable:
		return "temporarily_unavailable"
	default:
		return "server_error"
	}
}

// KindOf returns the kind of err, KindInternal when it is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// ErrNotFound is returned by stores when a record does not exist.
var ErrNotFound = errors.New("not found")
