package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// Defaults of Options.
const (
	DefaultMaxConns         = 10
	DefaultConnectTimeout   = 5 * time.Second
	DefaultStatementTimeout = 10 * time.Second
)

// Options tunes the connection pool. A zero field takes the value the DSN
// gives (pool_max_conns, connect_timeout, statement_timeout), and the
// default when the DSN gives none.
type Options struct {
	// MaxConns bounds the connections this instance opens to the server.
	// Callers beyond it wait for a free connection (within their context).
	// Every instance has its own pool: the server's max_connections must
	// cover the sum. Default 10.
	MaxConns int32
	// ConnectTimeout bounds establishing one connection: TCP, TLS and
	// authentication. Default 5 s.
	ConnectTimeout time.Duration
	// StatementTimeout makes the server cancel a statement that runs
	// longer (PostgreSQL's statement_timeout), so that a lock held by a
	// stuck session fails requests instead of piling them up. Negative:
	// no timeout. Migrations run without it. Default 10 s.
	StatementTimeout time.Duration
}

// Store is a store.Store kept in a PostgreSQL database. It is safe for
// concurrent use, and any number of processes may share the database.
type Store struct {
	pool db
	addr string // host:port, for messages
}

// Open connects to the PostgreSQL database named by dsn (a postgres:// URL
// or a keyword/value list, as libpq takes), and brings its schema up to
// date. ctx bounds the opening and the migrations only. When the server
// cannot be reached the error says so and names host and port; no error
// shows the password.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := poolConfig(dsn, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{addr: address(cfg.ConnConfig)}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connecting to %s: %w", s.addr, connectCause(err, s.addr))
	}
	s.pool = db{pool}
	// The pool connects lazily: ping so that an unreachable server or a
	// wrong password is reported now, at start, and not by the first
	// request.
	if err := s.pool.Ping(ctx); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("postgres: connecting to %s: %w", s.addr, connectCause(err, s.addr))
	}
	if err := migrate(ctx, pool); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// poolConfig parses dsn and applies opts over it.
func poolConfig(dsn string, opts Options) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", parseError(err))
	}
	// pgxpool has read and removed pool_max_conns; whether the DSN gave
	// it is seen in pgconn's parse, where it is an unknown parameter.
	raw, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", parseError(err))
	}
	_, dsnMaxConns := raw.RuntimeParams["pool_max_conns"]
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !dsnMaxConns:
		cfg.MaxConns = DefaultMaxConns
	}
	cc := cfg.ConnConfig
	switch {
	case opts.ConnectTimeout > 0:
		cc.ConnectTimeout = opts.ConnectTimeout
	case cc.ConnectTimeout == 0:
		cc.ConnectTimeout = DefaultConnectTimeout
	}
	// Sent in the start-up message, so every connection of the pool has it
	// from its first statement; a SET would reach one connection only.
	_, dsnTimeout := cc.RuntimeParams["statement_timeout"]
	switch {
	case opts.StatementTimeout > 0:
		cc.RuntimeParams["statement_timeout"] = strconv.FormatInt(max(1, opts.StatementTimeout.Milliseconds()), 10)
	case opts.StatementTimeout < 0:
		cc.RuntimeParams["statement_timeout"] = "0"
	case !dsnTimeout:
		cc.RuntimeParams["statement_timeout"] = strconv.FormatInt(DefaultStatementTimeout.Milliseconds(), 10)
	}
	// Names the connections in pg_stat_activity, for the operator.
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "gatehouse"
	}
	return cfg, nil
}

// address returns the first server's host:port, for messages.
func address(cc *pgx.ConnConfig) string {
	return net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
}

// parseError rewords a DSN parse error without the DSN. pgx masks the
// password in the DSN it quotes, but only on a best-effort basis for a
// malformed one, which is exactly the DSN that fails to parse: keep pgx's
// reason and drop the quoted DSN.
func parseError(err error) error {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return fmt.Errorf("parsing the connection string: %w", err)
	}
	// pgx writes "cannot parse `<dsn>`: <reason>".
	reason := "malformed"
	if i := strings.LastIndex(pe.Error(), "`: "); i >= 0 {
		reason = pe.Error()[i+len("`: "):]
	}
	if pe.ConnString != "" && strings.Contains(reason, pe.ConnString) {
		reason = "malformed"
	}
	return fmt.Errorf("parsing the connection string: %s", reason)
}

// connectCause drops pgx's "failed to connect to `user=… database=…`:"
// prefix, which repeats the DSN's user and database, and the
// "host:port (host):" of each attempt on the server the caller names.
// pgx joins the errors of its attempts (errors.Join): one per address,
// and with the default sslmode=prefer two per address, TLS and then
// plain, which mostly fail alike: the same cause is given once.
func connectCause(err error, addr string) error {
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) || ce.Unwrap() == nil {
		return err
	}
	attempts := []error{ce.Unwrap()}
	if j, ok := attempts[0].(interface{ Unwrap() []error }); ok {
		attempts = j.Unwrap()
	}
	var causes []error
	var msgs []string
	for _, a := range attempts {
		if u, ok := a.(interface{ Unwrap() error }); ok && u.Unwrap() != nil && strings.HasPrefix(a.Error(), addr+" (") {
			a = u.Unwrap()
		}
		if !slices.Contains(msgs, a.Error()) {
			msgs = append(msgs, a.Error())
			causes = append(causes, a)
		}
	}
	if len(causes) == 1 {
		return causes[0]
	}
	args := make([]any, len(causes))
	for i, c := range causes {
		args[i] = c
	}
	return fmt.Errorf(strings.TrimSuffix(strings.Repeat("%w; ", len(causes)), "; "), args...)
}

// SQLSTATE codes the store maps to its sentinel errors.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

// pgCode returns the SQLSTATE of a server error, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// isUnique reports a violated UNIQUE or PRIMARY KEY constraint.
func isUnique(err error) bool { return pgCode(err) == codeUniqueViolation }

// isForeignKey reports a violated FOREIGN KEY constraint.
func isForeignKey(err error) bool { return pgCode(err) == codeForeignKeyViolation }

// write runs one statement and returns how many rows it changed; errors
// are prefixed with doing.
func (s *Store) write(ctx context.Context, doing, query string, args ...any) (int, error) {
	tag, err := s.pool.Exec(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", doing, err)
	}
	return int(tag.RowsAffected()), nil
}

// writeOne runs a statement that must change a row: store.ErrNotFound
// when it changed none.
func (s *Store) writeOne(ctx context.Context, doing, query string, args ...any) error {
	n, err := s.write(ctx, doing, query, args...)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", doing, store.ErrNotFound)
	}
	return nil
}

// inTx runs fn in a transaction (READ COMMITTED, the server's default) and
// commits when fn returns nil. fn's error is returned as it is, marked
// store.ErrUnavailable if it says so (see unavailable); those of BEGIN
// and COMMIT are prefixed with doing. A failed
// transaction is rolled back; if the rollback cannot be sent (ctx is done,
// the connection broke) pgx closes the connection, and the server rolls
// back when it sees it close, so nothing half done is ever committed.
func (s *Store) inTx(ctx context.Context, doing string, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: beginning transaction: %w", doing, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(ctx)
		return unavailable(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: committing: %w", doing, unavailable(err))
	}
	return nil
}

// utc returns t in UTC: pgx decodes timestamptz in the local zone.
func utc(t time.Time) time.Time { return t.UTC() }

// optTime encodes an optional time: NULL for the zero time.
func optTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// optUTC decodes an optional time: the zero time for NULL.
func optUTC(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return utc(t.Time)
}

// nonNil turns a nil byte slice into an empty one: pgx sends nil as NULL,
// and the SQLite store keeps an empty BLOB.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Interface guard.
var _ store.Store = (*Store)(nil)
