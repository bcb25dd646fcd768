package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
	"github.com/gatehouse-caddy/gatehouse/store/postgres/pgtest"
	"github.com/gatehouse-caddy/gatehouse/store/sqlite"
	"github.com/gatehouse-caddy/gatehouse/store/storetest"
)

// Most tests share one cluster, each with databases of its own; a test
// that stops the server starts its own.
func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

func TestConformance(t *testing.T) {
	c := pgtest.Shared(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, c.NewDatabase(t))
	})
}

func TestCopy(t *testing.T) {
	c := pgtest.Shared(t)
	storetest.RunCopy(t, func(t *testing.T) store.Store {
		return open(t, c.NewDatabase(t))
	})
}

// TestCopyAcrossStores: SQLite to PostgreSQL and back keeps every row, and
// each copy works; so the two stores agree on what they keep.
func TestCopyAcrossStores(t *testing.T) {
	t.Parallel()
	dir, c := t.TempDir(), pgtest.Shared(t)
	storetest.CopyChain(t,
		openSQLite(t, filepath.Join(dir, "first.db")),
		openClosed(t, c.NewDatabase(t)),
		openSQLite(t, filepath.Join(dir, "second.db")),
		openClosed(t, c.NewDatabase(t)),
	)
}

// openSQLite opens an SQLite store at path and closes it when the test
// ends.
func openSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// open opens the store at dsn with default options, failing the test on
// error. The caller closes it.
func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// openClosed opens the store at dsn and closes it when the test ends.
func openClosed(t *testing.T, dsn string) *Store {
	t.Helper()
	s := open(t, dsn)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestShared runs the multi-instance suite: n stores on one database, as
// n Caddy instances would open it.
func TestShared(t *testing.T) {
	c := pgtest.Shared(t)
	storetest.RunShared(t, func(t *testing.T, n int) []store.Store {
		dsn := c.NewDatabase(t)
		stores := make([]store.Store, n)
		for i := range stores {
			stores[i] = openClosed(t, dsn)
		}
		return stores
	})
}

func testUser(email string) *store.User {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &store.User{
		ID:             newID(),
		Email:          email,
		HashedPassword: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		IsActive:       true,
		Roles:          []string{},
		CreatedAt:      now,
		UpdatedAt:      now,
	}
}

var idSeq struct {
	sync.Mutex
	n int
}

// newID returns a new UUID-shaped id, unique within the test binary.
func newID() string {
	idSeq.Lock()
	defer idSeq.Unlock()
	idSeq.n++
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", idSeq.n)
}

// appliedMigrations reads schema_migrations: version → applied_at.
func appliedMigrations(t *testing.T, s *Store) map[int]time.Time {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), `SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	defer rows.Close()
	applied := map[int]time.Time{}
	for rows.Next() {
		var (
			v  int
			at time.Time
		)
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatalf("reading schema_migrations: %v", err)
		}
		applied[v] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	return applied
}

// wantVersions are the versions of the embedded migrations.
func wantVersions(t *testing.T) []int {
	t.Helper()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var vs []int
	for _, m := range ms {
		vs = append(vs, m.Version)
	}
	return vs
}

func TestMigrationsNumbered(t *testing.T) {
	vs := wantVersions(t)
	if len(vs) == 0 {
		t.Fatal("no migrations embedded")
	}
	for i, v := range vs {
		if v != i+1 {
			t.Errorf("migration versions %v: want 1, 2, 3, … without gaps", vs)
			break
		}
	}
}

func TestReopenIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	s := open(t, dsn)
	before := appliedMigrations(t, s)
	if got := slices.Sorted(maps.Keys(before)); !slices.Equal(got, wantVersions(t)) {
		t.Fatalf("applied migrations = %v, want %v", got, wantVersions(t))
	}
	u := testUser("kept@example.com")
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	s.Close()
	for range 2 {
		s = open(t, dsn)
		after := appliedMigrations(t, s)
		if !maps.EqualFunc(before, after, time.Time.Equal) {
			t.Errorf("after reopening, schema_migrations = %v, want it unchanged: %v", after, before)
		}
		if _, err := s.UserByID(ctx, u.ID); err != nil {
			t.Errorf("UserByID after reopening: %v", err)
		}
		s.Close()
	}
}

// Instances that start together on a new database migrate it once: the
// others wait for the advisory lock and find every version recorded.
func TestConcurrentOpenOfNewDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	const n = 6
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(ctx, dsn, Options{})
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
		}
		if stores[i] != nil {
			t.Cleanup(func() { stores[i].Close() })
		}
	}
	if t.Failed() {
		return
	}
	for i, s := range stores {
		if got := slices.Sorted(maps.Keys(appliedMigrations(t, s))); !slices.Equal(got, wantVersions(t)) {
			t.Errorf("store %d: applied migrations = %v, want %v", i, got, wantVersions(t))
		}
	}
	// The migration lock is not left held: another Open gets it at once.
	openCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := Open(openCtx, dsn, Options{})
	if err != nil {
		t.Fatalf("Open after the concurrent ones: %v", err)
	}
	s.Close()
}

// The key columns sort in byte order whatever the database's collation
// (pgtest's clusters default to ICU en-US, which would put "ab" before
// "a_c" and ignore the punctuation): ListUsers agrees with the SQLite store.
func TestListUsersByteOrder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openClosed(t, pgtest.Shared(t).NewDatabase(t))
	emails := []string{"ab@x.io", "a_c@x.io", "a-d@x.io", "A.e@x.io", "aa@x.io", "é@x.io", "z@x.io"}
	for _, e := range emails {
		if err := s.CreateUser(ctx, testUser(e)); err != nil {
			t.Fatalf("CreateUser(%q): %v", e, err)
		}
	}
	users, err := s.ListUsers(ctx)
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	var got []string
	for _, u := range users {
		got = append(got, u.Email)
	}
	want := slices.Clone(emails)
	slices.SortFunc(want, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	if !slices.Equal(got, want) {
		t.Errorf("ListUsers order = %q, want byte order of the folded emails %q", got, want)
	}
}

func TestTimesInUTC(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openClosed(t, pgtest.Shared(t).NewDatabase(t))
	u := testUser("zone@example.com")
	u.CreatedAt = time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.FixedZone("X", -7*3600))
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	got, err := s.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt in %v, want UTC", got.CreatedAt.Location())
	}
	if want := u.CreatedAt.Truncate(time.Microsecond); !got.CreatedAt.Equal(want) {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want)
	}
}

// An unreachable server gives a clear error naming host and port, at once
// (refused) or within the connect timeout (silent), and never the password.
func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	const password = "Sup3r-secret-pw"

	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := l.Addr().String()
	l.Close()

	// A port that accepts connections and never answers: only the connect
	// timeout ends the wait.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		silent.Close() // ends Accept
		conns.Wait()
	})
	conns.Go(func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	})

	tests := []struct {
		name    string
		dsn     string
		opts    Options
		addr    string
		within  time.Duration
		message string
	}{
		{"refused, URL", "postgres://gatehouse:" + password + "@" + closedAddr + "/gatehouse?sslmode=disable", Options{},
			closedAddr, 2 * time.Second, "refused"},
		{"refused, keyword/value", "host=127.0.0.1 port=" + portOf(closedAddr) + " user=gatehouse password=" + password + " dbname=gatehouse sslmode=disable", Options{},
			closedAddr, 2 * time.Second, "refused"},
		// The default sslmode=prefer tries TLS, then plain: two attempts,
		// one cause.
		{"refused, default sslmode", "postgres://gatehouse:" + password + "@" + closedAddr + "/gatehouse", Options{},
			closedAddr, 2 * time.Second, "refused"},
		{"silent server", "postgres://gatehouse:" + password + "@" + silent.Addr().String() + "/gatehouse?sslmode=disable", Options{ConnectTimeout: 300 * time.Millisecond},
			silent.Addr().String(), 3 * time.Second, "timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			begun := time.Now()
			s, err := Open(t.Context(), tc.dsn, tc.opts)
			took := time.Since(begun)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			msg := err.Error()
			t.Logf("Open: %v (after %v)", msg, took.Round(time.Millisecond))
			if want := "postgres: connecting to " + tc.addr + ": "; !strings.HasPrefix(msg, want) {
				t.Errorf("error %q does not start with %q", msg, want)
			}
			if !strings.Contains(msg, tc.message) {
				t.Errorf("error %q does not say %q", msg, tc.message)
			}
			if strings.Contains(msg, tc.addr+" ("+strings.Split(tc.addr, ":")[0]+")") {
				t.Errorf("error %q repeats pgx's per-address prefix", msg)
			}
			if strings.Count(msg, tc.message) != 1 {
				t.Errorf("error %q gives the cause %d times, want once", msg, strings.Count(msg, tc.message))
			}
			if strings.Contains(msg, password) {
				t.Errorf("error %q shows the password", msg)
			}
			if took > tc.within {
				t.Errorf("Open took %v, want at most %v", took, tc.within)
			}
		})
	}
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// A wrong password and malformed DSNs are reported without the password.
func TestOpenErrorsHidePassword(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	dsn := c.NewDatabase(t)
	wrong := strings.Replace(dsn, c.Password(), "Wr0ng-Secret-pw", 1)
	_, err := Open(t.Context(), wrong, Options{})
	if err == nil {
		t.Fatal("Open with a wrong password succeeded")
	}
	t.Logf("wrong password: %v", err)
	if !strings.HasPrefix(err.Error(), "postgres: connecting to "+c.Addr()+": ") || !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("wrong password: error %q, want it to name the server and the failed authentication", err)
	}
	if strings.Contains(err.Error(), "Wr0ng-Secret-pw") {
		t.Errorf("wrong password: error %q shows the password", err)
	}

	const password = "Sup3r-secret-pw"
	for _, dsn := range []string{
		"postgres://gatehouse:" + password + "@127.0.0.1:notaport/db",
		"postgres://gatehouse:" + password + "%zz@127.0.0.1:5432/db",
		"postgres://gatehouse:" + password + "@127.0.0.1:5432/db?connect_timeout=soon",
		"postgres://gatehouse:" + password + "@127.0.0.1:5432/db?pool_max_conns=many",
		"host=127.0.0.1 password=" + password + " port=x",
		"host=127.0.0.1 password='" + password + "' sslmode=sometimes",
		"user=gatehouse password=" + password + " host='unterminated",
	} {
		_, err := Open(t.Context(), dsn, Options{})
		if err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		t.Logf("malformed DSN: %v", err)
		if !strings.HasPrefix(err.Error(), "postgres: parsing the connection string: ") {
			t.Errorf("Open of a malformed DSN: error %q, want it to say the DSN could not be parsed", err)
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("Open of a malformed DSN: error %q shows the password", err)
		}
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	base := "postgres://u:p@127.0.0.1:5432/db"
	tests := []struct {
		name      string
		dsn       string
		opts      Options
		maxConns  int32
		connect   time.Duration
		statement string
	}{
		{"defaults", base, Options{}, DefaultMaxConns, DefaultConnectTimeout, "10000"},
		{"options", base, Options{MaxConns: 3, ConnectTimeout: time.Second, StatementTimeout: 1500 * time.Millisecond}, 3, time.Second, "1500"},
		{"no statement timeout", base, Options{StatementTimeout: -1}, DefaultMaxConns, DefaultConnectTimeout, "0"},
		{"from the DSN", base + "?pool_max_conns=7&connect_timeout=2&statement_timeout=2500", Options{}, 7, 2 * time.Second, "2500"},
		{"options over the DSN", base + "?pool_max_conns=7&connect_timeout=2&statement_timeout=2500",
			Options{MaxConns: 4, ConnectTimeout: 3 * time.Second, StatementTimeout: time.Second}, 4, 3 * time.Second, "1000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := poolConfig(tc.dsn, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MaxConns != tc.maxConns {
				t.Errorf("MaxConns = %d, want %d", cfg.MaxConns, tc.maxConns)
			}
			if cfg.ConnConfig.ConnectTimeout != tc.connect {
				t.Errorf("ConnectTimeout = %v, want %v", cfg.ConnConfig.ConnectTimeout, tc.connect)
			}
			if got := cfg.ConnConfig.RuntimeParams["statement_timeout"]; got != tc.statement {
				t.Errorf("statement_timeout = %q, want %q", got, tc.statement)
			}
			if got := cfg.ConnConfig.RuntimeParams["application_name"]; got != "gatehouse" {
				t.Errorf("application_name = %q, want gatehouse", got)
			}
		})
	}
}

// The statement timeout reaches every connection of the pool, and a
// statement cut short by it is an error.
func TestStatementTimeout(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := Open(ctx, pgtest.Shared(t).NewDatabase(t), Options{StatementTimeout: 200 * time.Millisecond, MaxConns: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			var got string
			if err := s.pool.QueryRow(ctx, `SHOW statement_timeout`).Scan(&got); err != nil || got != "200ms" {
				t.Errorf("SHOW statement_timeout = %q, %v; want 200ms", got, err)
			}
			_, err := s.pool.Exec(ctx, `SELECT pg_sleep(2)`)
			if pgCode(err) != "57014" || !errors.Is(err, store.ErrUnavailable) { // query_canceled
				t.Errorf("a statement longer than the timeout: err = %v, want SQLSTATE 57014, ErrUnavailable", err)
			}
		})
	}
	wg.Wait()
}

// Requests fail while the server is down, with errors that are never
// ErrNotFound (callers fail closed on them) and always ErrUnavailable
// (callers answer 503), and work again once it is
// back, through the same Store.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t) // its own: stopping the shared one would break the others
	ctx := t.Context()
	s, err := Open(ctx, c.NewDatabase(t), Options{ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := testUser("restart@example.com")
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	ss := &store.Session{
		ID: newID(), UserID: u.ID, TokenDigest: []byte("digest of restart"), Transport: store.TransportCookie,
		CreatedAt: u.CreatedAt, LastSeenAt: u.CreatedAt, ExpiresAt: u.CreatedAt.Add(time.Hour),
	}
	if err := s.CreateSession(ctx, ss); err != nil {
		t.Fatal(err)
	}
	// Fill the pool with connections that the stop will break.
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if _, _, err := s.SessionByDigest(ctx, ss.TokenDigest); err != nil {
				t.Errorf("SessionByDigest before the stop: %v", err)
			}
		})
	}
	wg.Wait()

	c.Stop(t)
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"SessionByDigest", func(ctx context.Context) error { _, _, err := s.SessionByDigest(ctx, ss.TokenDigest); return err }},
		{"UserByID", func(ctx context.Context) error { _, err := s.UserByID(ctx, u.ID); return err }},
		{"UserByEmail", func(ctx context.Context) error { _, err := s.UserByEmail(ctx, u.Email); return err }},
		{"BannedUntil", func(ctx context.Context) error { _, err := s.BannedUntil(ctx, "k", time.Now()); return err }},
		{"RecordFailure", func(ctx context.Context) error {
			_, _, err := s.RecordFailure(ctx, "k", store.Limit{Max: 3, Window: time.Hour, Ban: time.Hour}, time.Now())
			return err
		}},
		{"CreateUser", func(ctx context.Context) error { return s.CreateUser(ctx, testUser("new@example.com")) }},
		{"DeleteSession", func(ctx context.Context) error { return s.DeleteSession(ctx, u.ID, ss.ID) }},
		{"SettingOrInit", func(ctx context.Context) error { _, err := s.SettingOrInit(ctx, "secret", []byte("x")); return err }},
	}
	// Twice: the first round meets the pool's broken connections, the
	// second has to connect and is refused.
	for round := range 2 {
		for _, call := range calls {
			begun := time.Now()
			err := call.call(ctx)
			switch {
			case err == nil:
				t.Errorf("round %d: %s with the server down: no error", round, call.name)
			case errors.Is(err, store.ErrNotFound):
				t.Errorf("round %d: %s with the server down: %v, must not be ErrNotFound", round, call.name, err)
			case !errors.Is(err, store.ErrUnavailable):
				t.Errorf("round %d: %s with the server down: %v, want ErrUnavailable (the handlers answer 503)", round, call.name, err)
			}
			if took := time.Since(begun); took > 3*time.Second {
				t.Errorf("round %d: %s with the server down took %v: it must fail fast", round, call.name, took)
			}
		}
	}

	c.Start(t)
	// The pool reconnects by itself: within a few tries every call works
	// again, and then keeps working.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, _, err := s.SessionByDigest(ctx, ss.TokenDigest)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SessionByDigest still failing 15s after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for range 3 {
		for range 8 {
			wg.Go(func() {
				got, gotUser, err := s.SessionByDigest(ctx, ss.TokenDigest)
				if err != nil || got.ID != ss.ID || gotUser.ID != u.ID {
					t.Errorf("SessionByDigest after the restart = %v, %v, %v", got, gotUser, err)
				}
			})
		}
		wg.Wait()
	}
	if err := s.CreateUser(ctx, testUser("after@example.com")); err != nil {
		t.Errorf("CreateUser after the restart: %v", err)
	}
	// A write refused while the server was down was not done.
	if _, err := s.UserByEmail(ctx, "new@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByEmail of the user created while down: err = %v, want ErrNotFound", err)
	}
}
