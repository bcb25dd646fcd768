package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite" // the "sqlite" driver of database/sql, as store/sqlite uses

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
	"github.com/gatehouse-caddy/gatehouse/store/sqlite"
)

// config is one seeding run.
type config struct {
	path     string
	users    int
	sessions int
	password string
	force    bool
	rand     io.Reader        // user ids, the password's salt, session ids and tokens
	now      func() time.Time // creation time of every row
	progress io.Writer
	// sessionToken, when set, is given each session's token. Tests use it
	// to look sessions up by digest, as the server does; the command
	// throws the tokens away.
	sessionToken func(i int, token string)
}

// result is the line the command prints.
type result struct {
	Users    int     `json:"users"`
	Sessions int     `json:"sessions"`
	Seconds  float64 `json:"seconds"` // wall time of the whole run
	Bytes    int64   `json:"bytes"`   // database file, plus its -wal file if one is left
}

// The columns written, in the order of the row functions below. The
// migrations own the schema; checkSchema refuses a database whose users or
// sessions table has other columns, so that a new column (which would
// silently take its default here, but perhaps not in the server) stops
// the seeder instead of skewing the benchmark.
var (
	userColumns = []string{"id", "email", "email_key", "hashed_password", "is_active", "is_superuser",
		"is_verified", "full_name", "roles", "created_at", "updated_at"}
	sessionColumns = []string{"id", "user_id", "token_digest", "transport", "created_at", "last_seen_at",
		"expires_at", "user_agent", "ip"}
)

const (
	// rowsPerStatement rows go into one INSERT … VALUES (…), (…), …,
	// which spares a statement's fixed cost in database/sql and the driver
	// for all rows but one: about a sixth of the run, measured. Most of
	// the rest is SQLite's B-tree work for the random keys. 11 columns ×
	// 64 rows stays far below SQLite's limit of 32766 parameters.
	rowsPerStatement = 64
	// rowsPerTransaction rows are committed at once. Larger transactions
	// save little more, and progress is reported at each commit.
	rowsPerTransaction = 100_000
	// cacheKiB is the page cache of the loading connection, an upper bound
	// that SQLite fills only as the database grows: enough to keep a
	// million users and sessions (about 700 MiB) in memory, so that the
	// random keys (UUIDs, digests) are inserted without reading pages back.
	cacheKiB = 1 << 20
	// userAgent is a common browser's, so that session rows are as large
	// as real ones.
	userAgent = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
)

// emailOf is the address of seeded user i.
func emailOf(i int) string { return fmt.Sprintf("user%07d@seed.example", i) }

// seed creates the database and fills it. On failure it removes what it
// created.
func seed(ctx context.Context, cfg config) (_ result, err error) {
	start := time.Now()
	if cfg.sessions > 0 && cfg.users == 0 {
		return result{}, errors.New("sessions need at least one user to belong to")
	}
	if err := prepare(cfg.path, cfg.force); err != nil {
		return result{}, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, removeDB(cfg.path))
		}
	}()

	// The store makes the file (mode 0600) and the schema, and turns on
	// WAL, exactly as the server will; then it lets go, for the loader
	// needs the file to itself.
	st, err := sqlite.Open(ctx, cfg.path)
	if err != nil {
		return result{}, err
	}
	if err := st.Close(); err != nil {
		return result{}, fmt.Errorf("closing the store: %w", err)
	}

	// One hash for all users: each costs about 100 ms and 64 MiB, a day of
	// CPU for a million. The server's default parameters, so that it
	// verifies the hash without asking for a re-hash.
	logf(cfg.progress, "hashing the password (argon2id, default parameters)")
	hasher, err := caddyauth.NewHasher(caddyauth.HasherConfig{}, cfg.rand)
	if err != nil {
		return result{}, fmt.Errorf("making the hasher: %w", err)
	}
	hash, err := hasher.Hash(ctx, cfg.password)
	if err != nil {
		return result{}, fmt.Errorf("hashing the password: %w", err)
	}

	db, err := openBulk(cfg.path)
	if err != nil {
		return result{}, err
	}
	defer func() { err = errors.Join(err, db.Close()) }() // a no-op once closed
	// One connection throughout: the bulk pragmas and the exclusive lock
	// belong to it.
	conn, err := db.Conn(ctx)
	if err != nil {
		return result{}, fmt.Errorf("connecting to the database: %w", err)
	}
	defer func() { err = errors.Join(err, ignoreDone(conn.Close())) }()

	if err := checkSchema(ctx, conn); err != nil {
		return result{}, err
	}

	// Random bytes come in 64 KiB reads: one system call per thousand
	// rows, not several per row.
	r := bufio.NewReaderSize(cfg.rand, 64<<10)
	now := cfg.now().UTC()
	u := &userRows{r: r, ids: make([]uuid.UUID, cfg.users), hash: hash,
		created: now.Truncate(time.Microsecond).UnixMicro()}
	err = load(ctx, conn, "users", userColumns, cfg.users, u.row, progress(cfg.progress, "users", cfg.users, start))
	if err != nil {
		return result{}, err
	}
	sessionStart := now.Truncate(time.Second)
	s := &sessionRows{r: r, users: u.ids, sink: cfg.sessionToken,
		created: sessionStart.UnixMicro(),
		expires: sessionStart.Add(caddyauth.DefaultSessionLifetime).UnixMicro()}
	err = load(ctx, conn, "sessions", sessionColumns, cfg.sessions, s.row,
		progress(cfg.progress, "sessions", cfg.sessions, start))
	if err != nil {
		return result{}, err
	}

	if err := finish(ctx, conn); err != nil {
		return result{}, err
	}
	// Closed before measuring: closing SQLite's last connection to the
	// file is what deletes the (empty) -wal file.
	if err := errors.Join(ignoreDone(conn.Close()), db.Close()); err != nil {
		return result{}, fmt.Errorf("closing the database: %w", err)
	}
	if err := syncFile(cfg.path); err != nil {
		return result{}, err
	}
	size, err := dbSize(cfg.path)
	if err != nil {
		return result{}, err
	}
	seconds := math.Round(time.Since(start).Seconds()*1000) / 1000
	logf(cfg.progress, "done: %d users, %d sessions, %d bytes in %.1fs", cfg.users, cfg.sessions, size, seconds)
	return result{Users: cfg.users, Sessions: cfg.sessions, Seconds: seconds, Bytes: size}, nil
}

// prepare refuses a database that exists and is not empty, unless force,
// which deletes it first. An empty file is used as it is: the store
// creates the schema in it.
func prepare(path string, force bool) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("checking the database: %w", err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	}
	wal, err := os.Stat(path + "-wal")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("checking the database: %w", err)
	}
	if fi.Size() == 0 && (err != nil || wal.Size() == 0) {
		return nil
	}
	if !force {
		return fmt.Errorf("%s exists and is not empty (-force deletes it first)", path)
	}
	return removeDB(path)
}

// removeDB deletes the database and the files SQLite keeps beside it.
func removeDB(path string) error {
	var errs []error
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing the database: %w", err))
		}
	}
	return errors.Join(errs...)
}

// openBulk opens the database for loading. The pragmas trade safety for
// speed, which is right for a file that is deleted if the load fails: no
// rollback journal and no fsync while loading (journal_mode OFF,
// synchronous OFF), so that each page is written once instead of twice;
// an exclusive lock, held from the first transaction to the close, so that
// no server opens the file half-filled and no transaction takes and
// releases file locks; and a large cache. finish puts the file back into WAL mode. Foreign keys are
// not checked while loading: a session's user id is taken from the users
// just inserted, so the check (a sixth of the run for a million sessions)
// could not fail; the tests run PRAGMA foreign_key_check on the result.
func openBulk(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolving the database path: %w", err)
	}
	q := url.Values{}
	for _, p := range []string{
		"locking_mode(EXCLUSIVE)",
		"journal_mode(OFF)",
		"synchronous(OFF)",
		"foreign_keys(0)",
		fmt.Sprintf("cache_size(%d)", -cacheKiB), // negative: KiB, not pages
		"temp_store(MEMORY)",
	} {
		q.Add("_pragma", p)
	}
	// A file: URI with the path escaped, so that '?' or '#' in it is not
	// read as the start of the parameters.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("opening the database: %w", err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// checkSchema refuses a database whose users or sessions table has other
// columns than those the seeder writes.
func checkSchema(ctx context.Context, conn *sql.Conn) error {
	for _, t := range []struct {
		table   string
		columns []string
	}{{"users", userColumns}, {"sessions", sessionColumns}} {
		got, err := tableColumns(ctx, conn, t.table)
		if err != nil {
			return err
		}
		if !slices.Equal(got, t.columns) {
			return fmt.Errorf("table %s has the columns %s, but the seeder writes %s: a migration changed it; bring bench/seed up to date",
				t.table, strings.Join(got, ", "), strings.Join(t.columns, ", "))
		}
	}
	return nil
}

const sqlTableColumns = `SELECT name FROM pragma_table_info(?) ORDER BY cid`

// tableColumns lists a table's columns in their order.
func tableColumns(ctx context.Context, conn *sql.Conn, table string) (_ []string, err error) {
	rows, err := conn.QueryContext(ctx, sqlTableColumns, table)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	defer func() { err = errors.Join(err, rows.Close()) }()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("reading the columns of %s: %w", table, err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	return cols, nil
}

// insertSQL is an INSERT of n rows into table.
func insertSQL(table string, columns []string, n int) string {
	row := "(?" + strings.Repeat(", ?", len(columns)-1) + ")"
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", table, strings.Join(columns, ", "))
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// rowFunc fills the arguments of row i, one per column.
type rowFunc func(i int, args []any) error

// load inserts rows 0 to n-1 of table, rowsPerTransaction to a
// transaction, calling done after each commit with the rows so far.
func load(ctx context.Context, conn *sql.Conn, table string, columns []string, n int, row rowFunc, done func(int)) error {
	batch := insertSQL(table, columns, rowsPerStatement)
	args := make([]any, len(columns)*rowsPerStatement)
	for from := 0; from < n; from += rowsPerTransaction {
		to := min(from+rowsPerTransaction, n)
		if err := loadRange(ctx, conn, table, columns, batch, args, from, to, row); err != nil {
			return fmt.Errorf("inserting %s: %w", table, err)
		}
		done(to)
	}
	return nil
}

// loadRange inserts rows from to to-1 in one transaction: full statements
// of rowsPerStatement rows with the prepared batch, then one statement for
// the rest.
func loadRange(ctx context.Context, conn *sql.Conn, table string, columns []string, batch string, args []any,
	from, to int, row rowFunc) (err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	stmt, err := tx.PrepareContext(ctx, batch)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stmt.Close()) }()
	nc := len(columns)
	i := from
	for ; i+rowsPerStatement <= to; i += rowsPerStatement {
		for k := range rowsPerStatement {
			if err := row(i+k, args[k*nc:(k+1)*nc]); err != nil {
				return err
			}
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	if rest := to - i; rest > 0 {
		for k := range rest {
			if err := row(i+k, args[k*nc:(k+1)*nc]); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, insertSQL(table, columns, rest), args[:rest*nc]...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// userRows makes the users' rows, remembering their ids for the sessions.
type userRows struct {
	r       io.Reader
	ids     []uuid.UUID
	hash    string
	created int64 // unix microseconds
}

// row makes user i: a random (version 4) UUID as registration gives,
// active and verified, no roles. The email is already in the store's
// canonical form (the core's NormalizeEmail leaves it as it is), and its
// key is folded as the store folds it.
func (u *userRows) row(i int, args []any) error {
	id, err := uuid.NewRandomFromReader(u.r)
	if err != nil {
		return fmt.Errorf("making a user id: %w", err)
	}
	u.ids[i] = id
	email := emailOf(i)
	args[0] = id.String()
	args[1] = email
	args[2] = store.EmailKey(email)
	args[3] = u.hash
	args[4] = true  // is_active
	args[5] = false // is_superuser
	args[6] = true  // is_verified
	args[7] = ""    // full_name
	args[8] = "[]"  // roles
	args[9] = u.created
	args[10] = u.created
	return nil
}

// sessionRows makes the sessions' rows.
type sessionRows struct {
	r                io.Reader
	users            []uuid.UUID
	sink             func(i int, token string)
	created, expires int64 // unix microseconds
}

// row makes session i, of user i mod len(users), formed as a login forms
// it: a random 128-bit id in hex, and the SHA-256 digest of a token of 32
// random bytes in unpadded base64url. That is the cookie transport's
// token; a bearer token is a JWT signed with the installation's secret,
// which the server makes at its first start, so bearer sessions get a
// random token of the cookie's form instead. Nobody presents these tokens,
// and a digest is 32 uniform bytes whatever was hashed.
func (s *sessionRows) row(i int, args []any) error {
	var b [16 + 32]byte
	if _, err := io.ReadFull(s.r, b[:]); err != nil {
		return fmt.Errorf("reading randomness: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b[16:])
	digest := sha256.Sum256([]byte(token))
	if s.sink != nil {
		s.sink(i, token)
	}
	transport := store.TransportBearer
	if i%2 == 1 {
		transport = store.TransportCookie
	}
	args[0] = hex.EncodeToString(b[:16])
	args[1] = s.users[i%len(s.users)].String()
	args[2] = digest[:]
	args[3] = string(transport)
	args[4] = s.created
	args[5] = s.created // last_seen_at
	args[6] = s.expires
	args[7] = userAgent
	// Addresses from 198.18.0.0/15, the range set aside for benchmarks
	// (RFC 2544), varied so that the column is not one repeated value.
	args[8] = netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)}).String()
	return nil
}

const (
	sqlWAL        = `PRAGMA journal_mode = WAL`
	sqlCheckpoint = `PRAGMA wal_checkpoint(TRUNCATE)`
)

// finish puts the file into the state the server expects: WAL mode (the
// store's DSN would turn it on anyway, but a server opening the file
// read-only could not), and nothing left in the WAL. It does not ANALYZE:
// the store never does, so a server's own database of a million users has
// no statistics, and the benchmark must plan queries as it would.
//
// These pragmas run on the loading connection itself, not in a DSN: they
// change the file, once, rather than set up each connection.
func finish(ctx context.Context, conn *sql.Conn) error {
	var mode string
	if err := conn.QueryRowContext(ctx, sqlWAL).Scan(&mode); err != nil {
		return fmt.Errorf("turning on WAL: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("turning on WAL: journal mode is %q", mode)
	}
	var busy, logged, checkpointed int
	if err := conn.QueryRowContext(ctx, sqlCheckpoint).Scan(&busy, &logged, &checkpointed); err != nil {
		return fmt.Errorf("checkpointing: %w", err)
	}
	if busy != 0 {
		return errors.New("checkpointing: the database is busy")
	}
	return nil
}

// syncFile flushes the database to disk. Loading skipped every fsync; this
// one makes the result durable, and spares the benchmark that follows the
// kernel's writeback of hundreds of megabytes.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("syncing the database: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing the database: %w", err)
	}
	return f.Close()
}

// dbSize is the size of the database file and of its -wal file, if any.
func dbSize(path string) (int64, error) {
	var total int64
	for _, suffix := range []string{"", "-wal"} {
		fi, err := os.Stat(path + suffix)
		if suffix != "" && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("measuring the database: %w", err)
		}
		total += fi.Size()
	}
	return total, nil
}

// ignoreDone drops the error of closing what is already closed.
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) || errors.Is(err, sql.ErrConnDone) {
		return nil
	}
	return err
}

// progress returns a reporter of rows loaded into table, for load.
func progress(w io.Writer, table string, total int, start time.Time) func(int) {
	return func(done int) {
		logf(w, "%s: %d/%d (%.1fs)", table, done, total, time.Since(start).Seconds())
	}
}

// logf writes one line of progress.
func logf(w io.Writer, format string, a ...any) {
	if w != nil {
		fmt.Fprintf(w, "seed: "+format+"\n", a...)
	}
}
