package caddyauth

import (
	"errors"
	"time"
)

// Errors of the core. The handlers package maps each to one HTTP status and
// `detail` in a single table; nothing here knows about status codes.
var (
	// ErrUserExists: register with an email that is taken (ignoring case).
	ErrUserExists = errors.New("user already exists")
	// ErrEmailTaken: an update moves a user to an email that is taken.
	ErrEmailTaken = errors.New("email already taken")
	// ErrBadCredentials: unknown user, wrong password or inactive user; the
	// three are deliberately indistinguishable.
	ErrBadCredentials = errors.New("bad credentials")
	// ErrNotVerified: right password, but require_verified is on and the
	// user has not verified their email.
	ErrNotVerified = errors.New("user not verified")
	// ErrUnauthenticated: no credential, or one that does not resolve to a
	// live session of an active user.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: authenticated, but an access rule fails.
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: no such user (or session).
	ErrNotFound = errors.New("not found")
	// ErrRegistrationClosed: registration is closed by configuration.
	ErrRegistrationClosed = errors.New("registration closed")
	// ErrResetBadToken: a reset token that is unknown, used, expired, for
	// an inactive user, or for an address the account no longer has.
	ErrResetBadToken = errors.New("bad reset token")
	// ErrVerifyBadToken: a verify token that is unknown, expired, or for an
	// address the account no longer has.
	ErrVerifyBadToken = errors.New("bad verify token")
	// ErrVerifyAlreadyVerified: the account is verified already.
	ErrVerifyAlreadyVerified = errors.New("already verified")
)

// PasswordError is a password that the policy refuses, or a wrong current
// password. Reason is shown to the user verbatim.
type PasswordError struct {
	Reason string
}

func (e *PasswordError) Error() string { return "invalid password: " + e.Reason }

// FieldError is an input that fails validation; it becomes one item of a
// 422 list. Type and Msg follow pydantic's vocabulary.
type FieldError struct {
	Field string // JSON field name
	Type  string // e.g. "value_error", "missing", "string_too_long"
	Msg   string
	Input any // the offending value, echoed back
	Ctx   map[string]any
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// RetryError is a refusal that passes with time: the client should come
// back after RetryAfter. Busy is false for a client that made too many
// failed attempts (its address is banned for a while: 429) and true when
// the server has no capacity to spare right now (every password-hashing
// slot is taken and the queue is full: 503).
type RetryError struct {
	RetryAfter time.Duration
	Busy       bool
}

func (e *RetryError) Error() string {
	if e.Busy {
		return "busy: retry after " + e.RetryAfter.String()
	}
	return "too many failed attempts: retry after " + e.RetryAfter.String()
}
