package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// TestUnavailable: which errors say the server cannot be reached. A
// request's own end and the server's answers about the request itself
// (a conflict, a bad statement) are not marked: those are no reason for a
// 503.
func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"broken pipe", fmt.Errorf("failed to write: %w", &net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE}), true},
		{"stream cut short", fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF), true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"statement timeout", &pgconn.PgError{Code: "57014"}, true},
		{"connection exception", &pgconn.PgError{Code: "08006"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"client went away", fmt.Errorf("reading: %w", context.Canceled), false},
		{"request deadline", fmt.Errorf("reading: %w", context.DeadlineExceeded), false},
		{"not found", store.ErrNotFound, false},
		{"plain error", errors.New("scanning: bad column"), false},
	} {
		got := unavailable(tc.err)
		if errors.Is(got, store.ErrUnavailable) != tc.want {
			t.Errorf("%s: unavailable(%v) = %v, marked %v, want %v", tc.name, tc.err, got, !tc.want, tc.want)
		}
		if tc.err != nil && !errors.Is(got, tc.err) {
			t.Errorf("%s: the cause is lost: %v", tc.name, got)
		}
		if tc.err != nil && got.Error() != tc.err.Error() {
			t.Errorf("%s: message %q, want %q", tc.name, got, tc.err)
		}
	}
}
