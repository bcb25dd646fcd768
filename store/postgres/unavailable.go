package postgres

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// db is the connection pool, with every error that says the server cannot
// be reached marked store.ErrUnavailable (see unavailable), so that the
// handlers answer 503 and Retry-After rather than 500 while the server is
// down or restarting. It has only the methods the store uses, each
// wrapped (the pool is a named field, so that no unwrapped method of it
// can be called by mistake); an error inside a transaction is marked by
// inTx.
type db struct{ p *pgxpool.Pool }

func (d db) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := d.p.Exec(ctx, sql, args...)
	return tag, unavailable(err)
}

func (d db) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := d.p.Query(ctx, sql, args...)
	if err != nil {
		return nil, unavailable(err)
	}
	return markedRows{rows}, nil
}

func (d db) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return markedRow{d.p.QueryRow(ctx, sql, args...)}
}

func (d db) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := d.p.Begin(ctx)
	return tx, unavailable(err)
}

func (d db) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	tx, err := d.p.BeginTx(ctx, opts)
	return tx, unavailable(err)
}

func (d db) Ping(ctx context.Context) error { return unavailable(d.p.Ping(ctx)) }

// Close closes the pool, waiting for connections in use to be returned.
func (d db) Close() { d.p.Close() }

// markedRow is a pgx.Row whose Scan marks its error.
type markedRow struct{ pgx.Row }

func (r markedRow) Scan(dest ...any) error { return unavailable(r.Row.Scan(dest...)) }

// markedRows is a pgx.Rows whose Err marks its error (a connection lost
// in the middle of a result).
type markedRows struct{ pgx.Rows }

func (r markedRows) Err() error { return unavailable(r.Rows.Err()) }

// unavailable returns err marked store.ErrUnavailable when it says that
// the server cannot be reached or is not serving, and err unchanged
// otherwise:
//
//   - a new connection failed (pgconn.ConnectError: refused, timed out,
//     or refused by a server that is starting or stopping);
//   - a connection broke while in use: a network error (reset, broken
//     pipe, timeout) or the stream ending in the middle of a message;
//   - the server said so: SQLSTATE class 08 (connection exception),
//     57P01 to 57P03 (shutting down, crashed, not accepting connections
//     yet), or 57014, a statement cancelled by statement_timeout (the
//     server is stuck behind a lock; a later try may succeed).
//
// A request whose own context ended is not marked: the client went away
// (or its deadline passed), which the handlers tell apart themselves.
func unavailable(err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && !isConnect(err) {
		return err
	}
	if !isUnreachable(err) {
		return err
	}
	return unavailableError{err}
}

func isConnect(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

func isUnreachable(err error) bool {
	if isConnect(err) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03", "57014":
			return true
		}
		return len(pe.Code) == 5 && pe.Code[:2] == "08"
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// unavailableError is err, marked store.ErrUnavailable.
type unavailableError struct{ err error }

func (e unavailableError) Error() string { return e.err.Error() }
func (e unavailableError) Unwrap() []error {
	return []error{store.ErrUnavailable, e.err}
}
