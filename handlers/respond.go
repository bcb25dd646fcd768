package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// The ErrorCode strings of fastapi-users (router/common.py).
const (
	codeRegisterInvalidPassword = "REGISTER_INVALID_PASSWORD"
	codeRegisterUserExists      = "REGISTER_USER_ALREADY_EXISTS"
	codeLoginBadCredentials     = "LOGIN_BAD_CREDENTIALS"
	codeLoginNotVerified        = "LOGIN_USER_NOT_VERIFIED"
	codeUpdateEmailExists       = "UPDATE_USER_EMAIL_ALREADY_EXISTS"
	codeUpdateInvalidPassword   = "UPDATE_USER_INVALID_PASSWORD"
	codeResetBadToken           = "RESET_PASSWORD_BAD_TOKEN"
	codeResetInvalidPassword    = "RESET_PASSWORD_INVALID_PASSWORD"
	codeVerifyBadToken          = "VERIFY_USER_BAD_TOKEN"
	codeVerifyAlreadyVerified   = "VERIFY_USER_ALREADY_VERIFIED"
)

// errorResponse is one row of the table below.
type errorResponse struct {
	status int
	detail any
}

// coreErrors maps the core's errors to a status and `detail`: the one
// place where the wire contract meets the core. The *_INVALID_PASSWORD
// code depends on the route, so routes pass theirs to writeError.
var coreErrors = []struct {
	err error
	res errorResponse
}{
	{caddyauth.ErrUserExists, errorResponse{http.StatusBadRequest, codeRegisterUserExists}},
	{caddyauth.ErrEmailTaken, errorResponse{http.StatusBadRequest, codeUpdateEmailExists}},
	{caddyauth.ErrBadCredentials, errorResponse{http.StatusBadRequest, codeLoginBadCredentials}},
	{caddyauth.ErrNotVerified, errorResponse{http.StatusBadRequest, codeLoginNotVerified}},
	{caddyauth.ErrUnauthenticated, errorResponse{http.StatusUnauthorized, "Unauthorized"}},
	{caddyauth.ErrForbidden, errorResponse{http.StatusForbidden, "Forbidden"}},
	{caddyauth.ErrRegistrationClosed, errorResponse{http.StatusForbidden, "Forbidden"}},
	{caddyauth.ErrNotFound, errorResponse{http.StatusNotFound, "Not Found"}},
	{caddyauth.ErrResetBadToken, errorResponse{http.StatusBadRequest, codeResetBadToken}},
	{caddyauth.ErrVerifyBadToken, errorResponse{http.StatusBadRequest, codeVerifyBadToken}},
	{caddyauth.ErrVerifyAlreadyVerified, errorResponse{http.StatusBadRequest, codeVerifyAlreadyVerified}},
}

// writeError answers with the contract's status and detail for err.
// passwordCode is the route's *_INVALID_PASSWORD code. Errors the table
// does not know are failures of ours (a store that is down, say): they are
// logged and answered 500 without details.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error, passwordCode string) {
	var pe *caddyauth.PasswordError
	if errors.As(err, &pe) {
		writeJSON(w, http.StatusBadRequest, detail{map[string]string{"code": passwordCode, "reason": pe.Reason}})
		return
	}
	var fe *caddyauth.FieldError
	if errors.As(err, &fe) {
		writeValidation(w, []validationItem{fieldItem(fe)})
		return
	}
	var re *caddyauth.RetryError
	if errors.As(err, &re) {
		status := retryStatus(w, re)
		writeJSON(w, status, detail{http.StatusText(status)})
		return
	}
	for _, row := range coreErrors {
		if errors.Is(err, row.err) {
			writeJSON(w, row.res.status, detail{row.res.detail})
			return
		}
	}
	if errors.Is(err, errBodyTooLarge) {
		writeJSON(w, http.StatusRequestEntityTooLarge, detail{"Request Entity Too Large"})
		return
	}
	if errors.Is(err, errReadTimeout) {
		writeJSON(w, http.StatusRequestTimeout, detail{"Request Timeout"})
		return
	}
	if clientGone(w, r, log, err) {
		return
	}
	log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	if errors.Is(err, store.ErrUnavailable) {
		writeJSON(w, unavailable(w), detail{"Service Unavailable"})
		return
	}
	writeJSON(w, http.StatusInternalServerError, detail{"Internal Server Error"})
}

// unavailableRetryAfter is the Retry-After of a 503 for a database that
// cannot be reached: about what a database server takes to restart.
const unavailableRetryAfter = 5 * time.Second

// unavailable sets Retry-After for a request refused because the database
// cannot be reached, and returns 503 Service Unavailable: the failure is
// temporary (the store reconnects by itself), as a load balancer or a
// client should know, and not a fault in the request or the server.
func unavailable(w http.ResponseWriter) int {
	return retryStatus(w, &caddyauth.RetryError{RetryAfter: unavailableRetryAfter, Busy: true})
}

// clientGone answers a request whose client went away (while it waited
// to hash, say) and reports whether err was that. Nobody reads the answer,
// and it is no failure of ours: no error is logged.
func clientGone(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) bool {
	if !errors.Is(err, context.Canceled) || r.Context().Err() == nil {
		return false
	}
	log.DebugContext(r.Context(), "client gone", "method", r.Method, "path", r.URL.Path)
	w.WriteHeader(statusClientClosedRequest)
	return true
}

// statusClientClosedRequest is nginx's and Caddy's status for a request
// whose client hung up before the answer.
const statusClientClosedRequest = 499

// retryStatus sets Retry-After, in whole seconds rounded up (at least
// one), and returns the status of re: 429 Too Many Requests or 503
// Service Unavailable.
func retryStatus(w http.ResponseWriter, re *caddyauth.RetryError) int {
	secs := int64((re.RetryAfter + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	if re.Busy {
		return http.StatusServiceUnavailable
	}
	return http.StatusTooManyRequests
}

type detail struct {
	Detail any `json:"detail"`
}

// writeJSON writes v as the JSON body with the status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"detail":"Internal Server Error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeStatus writes a status with an empty body (204).
func writeStatus(w http.ResponseWriter, status int) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

// validationItem is one entry of a 422 list, in FastAPI's shape.
type validationItem struct {
	Type  string         `json:"type"`
	Loc   []any          `json:"loc"`
	Msg   string         `json:"msg"`
	Input any            `json:"input"`
	Ctx   map[string]any `json:"ctx,omitempty"`
}

func fieldItem(fe *caddyauth.FieldError) validationItem {
	return validationItem{Type: fe.Type, Loc: []any{"body", fe.Field}, Msg: fe.Msg, Input: fe.Input, Ctx: fe.Ctx}
}

func writeValidation(w http.ResponseWriter, items []validationItem) {
	writeJSON(w, http.StatusUnprocessableEntity, detail{items})
}
