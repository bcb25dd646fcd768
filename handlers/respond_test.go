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
