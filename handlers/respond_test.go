package handlers

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

func TestWriteErrorRetry(t *testing.T) {
	cases := []struct {
		err        *caddyauth.RetryError
		status     int
		retryAfter string
	}{
		{&caddyauth.RetryError{RetryAfter: 90 * time.Second}, http.StatusTooManyRequests, "90"},
		{&caddyauth.RetryError{RetryAfter: 1500 * time.Millisecond}, http.StatusTooManyRequests, "2"},
		{&caddyauth.RetryError{RetryAfter: 0}, http.StatusTooManyRequests, "1"},
		{&caddyauth.RetryError{RetryAfter: 3 * time.Second, Busy: true}, http.StatusServiceUnavailable, "3"},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		writeError(w, httptest.NewRequest("POST", "/auth/jwt/login", nil), slog.New(slog.DiscardHandler), fmt.Errorf("login: %w", c.err), "")
		want := fmt.Sprintf(`{"detail":%q}`, http.StatusText(c.status))
		if w.Code != c.status || w.Header().Get("Retry-After") != c.retryAfter || w.Body.String() != want {
			t.Errorf("%v: %d, Retry-After %q, %s; want %d, %q, %s", c.err, w.Code, w.Header().Get("Retry-After"), w.Body, c.status, c.retryAfter, want)
		}
	}
}

// TestWriteErrorClientGone: a client that hung up is no failure of ours:
// no error is logged, and no 500 is recorded.
func TestWriteErrorClientGone(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest("POST", "/auth/jwt/login", nil).WithContext(ctx)
	w := httptest.NewRecorder()
	writeError(w, r, log, fmt.Errorf("waiting to hash: %w", context.Canceled), "")
	if w.Code != statusClientClosedRequest || logged.Len() != 0 {
		t.Fatalf("status %d, log %q; want 499 and nothing logged", w.Code, logged.String())
	}
	// The same error while the request is live is ours: 500, logged.
	w = httptest.NewRecorder()
	writeError(w, httptest.NewRequest("POST", "/auth/jwt/login", nil), log, fmt.Errorf("store: %w", context.Canceled), "")
	if w.Code != http.StatusInternalServerError || logged.Len() == 0 {
		t.Fatalf("status %d, log %q; want 500, logged", w.Code, logged.String())
	}
}

// TestWriteErrorUnavailable: a database that cannot be reached is a
// temporary failure, 503 with Retry-After, logged; any other store
// failure stays 500.
func TestWriteErrorUnavailable(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	w := httptest.NewRecorder()
	err := fmt.Errorf("login: reading user: %w", fmt.Errorf("%w: dial tcp: connection refused", store.ErrUnavailable))
	writeError(w, httptest.NewRequest("POST", "/auth/jwt/login", nil), log, err, "")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "5" || w.Body.String() != `{"detail":"Service Unavailable"}` {
		t.Errorf("got %d, Retry-After %q, %s; want 503, 5, Service Unavailable", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if !bytes.Contains(logged.Bytes(), []byte("connection refused")) {
		t.Errorf("the cause was not logged: %q", logged.String())
	}
	w = httptest.NewRecorder()
	writeError(w, httptest.NewRequest("POST", "/auth/jwt/login", nil), log, fmt.Errorf("reading user: disk I/O error"), "")
	if w.Code != http.StatusInternalServerError || w.Header().Get("Retry-After") != "" {
		t.Errorf("other failure: %d, Retry-After %q; want 500 without Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
}
