package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// Store is a store.Store kept in one SQLite file. It is safe for concurrent
// use, and several processes may open the same file.
type Store struct {
	path    string
	writer  *sql.DB // one connection: every write goes through it, in turn
	readers *sql.DB // read-only pool
}

// Open opens the SQLite database at path, creating it and its parent
// directory when needed, and brings its schema up to date. ctx bounds the
// opening and the migrations only.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("opening sqlite store: empty path")
	}
	// The file holds password hashes: readable by its owner only. SQLite
	// gives the -wal and -shm files the same mode as the database file.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating database directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("creating database file: %w", err)
	}

	writerDSN, err := dsn(path, false)
	if err != nil {
		return nil, err
	}
	readerDSN, err := dsn(path, true)
	if err != nil {
		return nil, err
	}

	writer, err := sql.Open("sqlite", writerDSN)
	if err != nil {
		return nil, fmt.Errorf("opening sqlite writer: %w", err)
	}
	// One writer connection: SQLite allows one writer at a time anyway, and
	// queueing in database/sql is cheaper and fairer than SQLITE_BUSY retries.
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	readers, err := sql.Open("sqlite", readerDSN)
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("opening sqlite readers: %w", err)
	}
	n := max(4, runtime.NumCPU())
	readers.SetMaxOpenConns(n)
	readers.SetMaxIdleConns(n)
	readers.SetConnMaxIdleTime(5 * time.Minute)

	s := &Store{path: path, writer: writer, readers: readers}
	// The writer connects and migrates first: it is the one that may turn a
	// new file into WAL mode and create the tables.
	if err := migrate(ctx, writer); err != nil {
		s.Close()
		return nil, err
	}
	if err := readers.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("connecting sqlite reader: %w", err)
	}
	return s, nil
}

// Path returns the database file's path, as given to Open.
func (s *Store) Path() string { return s.path }

// Close closes the readers and the writer.
func (s *Store) Close() error {
	return errors.Join(s.readers.Close(), s.writer.Close())
}

// dsn returns the driver's data source name for the file at path. Pragmas
// go in the DSN so that every connection of a pool runs them when it
// connects; an Exec("PRAGMA …") would reach one connection only.
func dsn(path string, reader bool) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("resolving database path: %w", err)
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") { // Windows: C:/x -> /C:/x
		p = "/" + p
	}
	q := url.Values{}
	// Waits for another process's lock instead of failing at once with
	// "database is locked". The driver applies it before the other pragmas.
	q.Add("_pragma", "busy_timeout(10000)")
	// Deleting a user must remove their sessions (ON DELETE CASCADE), and a
	// session must not name a missing user.
	q.Add("_pragma", "foreign_keys(1)")
	// Readers never block the writer, nor the writer readers.
	q.Add("_pragma", "journal_mode(WAL)")
	// FULL syncs the WAL on every commit, not only at checkpoints: an
	// acknowledged write (a login, a revocation, a password change) must
	// survive power loss, not only a crash of the process. Its cost, one
	// fsync per commit, is small beside a login's password hashing, which
	// bounds the write rate anyway.
	q.Add("_pragma", "synchronous(FULL)")
	if reader {
		q.Add("_pragma", "query_only(1)")
	} else {
		// Write transactions take the write lock at BEGIN: a deferred one
		// that reads first and then writes can fail with SQLITE_BUSY
		// without waiting, when another connection wrote in between.
		q.Set("_txlock", "immediate")
	}
	// A file: URI with the path escaped, so that '?', '#' or '%' in the
	// path cannot be read as the start of the parameters.
	u := url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}
	return u.String(), nil
}

// errCode returns the SQLite extended result code of err, or 0.
func errCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// isUnique reports whether err is a violated UNIQUE or PRIMARY KEY constraint.
func isUnique(err error) bool {
	c := errCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isForeignKey reports whether err is a violated FOREIGN KEY constraint.
func isForeignKey(err error) bool {
	return errCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// micros encodes t for an INTEGER column: unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros decodes an INTEGER time column, in UTC.
func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// write runs one statement on the writer and returns how many rows it
// changed; errors are prefixed with doing.
func (s *Store) write(ctx context.Context, doing, query string, args ...any) (int, error) {
	res, err := s.writer.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", doing, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", doing, err)
	}
	return int(n), nil
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

// Interface guard.
var _ store.Store = (*Store)(nil)
