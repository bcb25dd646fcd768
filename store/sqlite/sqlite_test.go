package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gatehouse-caddy/gatehouse/store"
	"github.com/gatehouse-caddy/gatehouse/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	})
}

// open opens the store at path, failing the test on error. The caller
// closes it.
func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	return s
}

// openClosed opens the store at path and closes it when the test ends.
func openClosed(t *testing.T, path string) *Store {
	t.Helper()
	s := open(t, path)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	s := openClosed(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	ctx := t.Context()

	check := func(t *testing.T, c *sql.Conn, queryOnly int) {
		t.Helper()
		for _, p := range []struct {
			pragma string
			want   any
		}{
			{"journal_mode", "wal"},
			{"foreign_keys", "1"},
			{"busy_timeout", "10000"},
			{"synchronous", "2"}, // FULL
			{"query_only", fmt.Sprint(queryOnly)},
		} {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got); err != nil {
				t.Fatalf("PRAGMA %s: %v", p.pragma, err)
			}
			if got != p.want {
				t.Errorf("PRAGMA %s = %q, want %q", p.pragma, got, p.want)
			}
		}
	}

	t.Run("writer", func(t *testing.T) {
		c, err := s.writer.Conn(ctx)
		if err != nil {
			t.Fatalf("writer connection: %v", err)
		}
		defer c.Close()
		check(t, c, 0)
	})

	// Hold every connection of the reader pool at once, so that each one is
	// checked, not the same idle one again and again.
	t.Run("readers", func(t *testing.T) {
		n := max(4, runtime.NumCPU())
		if got := s.readers.Stats().MaxOpenConnections; got != n {
			t.Errorf("reader pool size = %d, want %d", got, n)
		}
		var conns []*sql.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range n {
			c, err := s.readers.Conn(ctx)
			if err != nil {
				t.Fatalf("reader connection: %v", err)
			}
			conns = append(conns, c)
		}
		if got := s.readers.Stats().OpenConnections; got != n {
			t.Fatalf("open reader connections = %d, want %d", got, n)
		}
		for _, c := range conns {
			check(t, c, 1)
			if _, err := c.ExecContext(ctx, "INSERT INTO settings (key, value) VALUES ('x', x'00')"); err == nil {
				t.Errorf("a write through a reader connection succeeded")
			}
		}
	})

	if got := s.writer.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer pool size = %d, want 1", got)
	}
}

// TestWriterTransactionsImmediate checks that a write transaction holds
// the write lock from BEGIN, so that a read-then-write transaction such as
// SettingOrInit cannot fail with SQLITE_BUSY halfway through.
func TestWriterTransactionsImmediate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s := openClosed(t, path)
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("BeginTx: %v", err)
	}
	defer tx.Rollback()

	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatalf("opening another connection: %v", err)
	}
	defer other.Close()
	_, err = other.ExecContext(ctx, "INSERT INTO settings (key, value) VALUES ('k', x'00')")
	if code := errCode(err); code&0xff != sqlite3.SQLITE_BUSY {
		t.Errorf("write beside an open writer transaction: err = %v, want SQLITE_BUSY", err)
	}
}

// appliedMigrations returns schema_migrations as version -> applied_at.
func appliedMigrations(t *testing.T, s *Store) map[int]int64 {
	t.Helper()
	rows, err := s.readers.QueryContext(t.Context(), "SELECT version, applied_at FROM schema_migrations")
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	defer rows.Close()
	m := map[int]int64{}
	for rows.Next() {
		var v int
		var at int64
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatalf("reading schema_migrations: %v", err)
		}
		m[v] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	return m
}

// wantVersions returns the versions of the embedded migrations.
func wantVersions(t *testing.T) []int {
	t.Helper()
	ms, err := migrations()
	if err != nil {
		t.Fatalf("migrations: %v", err)
	}
	var vs []int
	for _, m := range ms {
		vs = append(vs, m.Version)
	}
	return vs
}

func TestMigrationsNumbered(t *testing.T) {
	t.Parallel()
	vs := wantVersions(t)
	if len(vs) == 0 {
		t.Fatal("no migrations embedded")
	}
	for i, v := range vs {
		if v != i+1 {
			t.Errorf("migration versions = %v, want 1, 2, 3… without gaps", vs)
			break
		}
	}
}

func TestReopenIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s := open(t, path)
	before := appliedMigrations(t, s)
	if got := slices.Sorted(maps.Keys(before)); !slices.Equal(got, wantVersions(t)) {
		t.Fatalf("applied migrations = %v, want %v", got, wantVersions(t))
	}
	u := testUser("kept@example.com")
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for range 2 {
		s = open(t, path)
		after := appliedMigrations(t, s)
		if len(after) != len(before) {
			t.Errorf("after reopening, %d migrations recorded, want %d", len(after), len(before))
		}
		for v, at := range before {
			if after[v] != at {
				t.Errorf("migration %d applied again on reopening (applied_at %d, was %d)", v, after[v], at)
			}
		}
		if _, err := s.UserByID(ctx, u.ID); err != nil {
			t.Errorf("UserByID after reopening: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func TestConcurrentOpenOfNewFile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "new", "gatehouse.db")
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(ctx, path)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
		}
	}
	for _, s := range stores {
		if s != nil {
			t.Cleanup(func() { s.Close() })
		}
	}
	if t.Failed() {
		return
	}
	// SettingOrInit's promise across processes: every store sharing the
	// file gets the value of whichever came first.
	values := make([][]byte, n)
	for i, s := range stores {
		wg.Go(func() {
			values[i], errs[i] = s.SettingOrInit(ctx, "secret", []byte(fmt.Sprint("value ", i)))
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("SettingOrInit through store %d: %v", i, errs[i])
		}
		if string(values[i]) != string(values[0]) {
			t.Errorf("SettingOrInit through store %d = %q, store 0 got %q", i, values[i], values[0])
		}
	}
	for i, s := range stores {
		if err := s.CreateUser(ctx, testUser(fmt.Sprintf("user%d@example.com", i))); err != nil {
			t.Errorf("CreateUser through store %d: %v", i, err)
		}
	}
	for i, s := range stores {
		if got := slices.Sorted(maps.Keys(appliedMigrations(t, s))); !slices.Equal(got, wantVersions(t)) {
			t.Errorf("store %d: applied migrations = %v, want %v", i, got, wantVersions(t))
		}
		users, err := s.ListUsers(ctx)
		if err != nil || len(users) != n {
			t.Errorf("store %d: ListUsers = %d users, %v; want %d", i, len(users), err, n)
		}
	}
}

func TestAcknowledgedWriteSurvivesReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s := open(t, path)
	u := testUser("durable@example.com")
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	ss := testSession(u.ID, []byte("digest-0123456789abcdef0123456789"))
	if err := s.CreateSession(ctx, ss); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	seen := ss.LastSeenAt.Add(time.Minute)
	if err := s.TouchSession(ctx, ss.ID, seen); err != nil {
		t.Fatalf("TouchSession: %v", err)
	}
	revoked := testSession(u.ID, []byte("digest-revoked-0123456789abcdef01"))
	if err := s.CreateSession(ctx, revoked); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if err := s.DeleteSession(ctx, u.ID, revoked.ID); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	if _, err := s.SettingOrInit(ctx, "secret", []byte("s3cret")); err != nil {
		t.Fatalf("SettingOrInit: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openClosed(t, path)
	gotSession, gotUser, err := s.SessionByDigest(ctx, ss.TokenDigest)
	if err != nil {
		t.Fatalf("SessionByDigest after reopening: %v", err)
	}
	if gotUser.ID != u.ID || gotUser.Email != u.Email {
		t.Errorf("user after reopening = %s %q, want %s %q", gotUser.ID, gotUser.Email, u.ID, u.Email)
	}
	if !gotSession.LastSeenAt.Equal(seen) {
		t.Errorf("LastSeenAt after reopening = %v, want %v", gotSession.LastSeenAt, seen)
	}
	if _, _, err := s.SessionByDigest(ctx, revoked.TokenDigest); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoked session after reopening: err = %v, want ErrNotFound", err)
	}
	if v, err := s.SettingOrInit(ctx, "secret", []byte("other")); err != nil || string(v) != "s3cret" {
		t.Errorf("SettingOrInit after reopening = %q, %v; want %q", v, err, "s3cret")
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "var", "lib", "gatehouse")
	path := filepath.Join(dir, "gatehouse.db")
	s := openClosed(t, path)
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	if runtime.GOOS == "windows" {
		return
	}
	for _, f := range []struct {
		name string
		want os.FileMode
	}{{dir, 0o700 | os.ModeDir}, {path, 0o600}} {
		fi, err := os.Stat(f.name)
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		if fi.Mode() != f.want {
			t.Errorf("mode of %s = %v, want %v", f.name, fi.Mode(), f.want)
		}
	}
}

func TestAwkwardPath(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("'?' is not allowed in Windows file names")
	}
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "a dir%20", "gate?house#1&x=y.db")
	s := openClosed(t, path)
	if err := s.CreateUser(ctx, testUser("a@example.com")); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the database is not at the path given: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "a dir%20" {
		t.Errorf("files created beside the directory: %v", entries)
	}
}

func TestTimesInUTC(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openClosed(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	u := testUser("utc@example.com")
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	ss := testSession(u.ID, []byte("digest"))
	if err := s.CreateSession(ctx, ss); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	gotSession, gotUser, err := s.SessionByDigest(ctx, ss.TokenDigest)
	if err != nil {
		t.Fatalf("SessionByDigest: %v", err)
	}
	for name, tm := range map[string]time.Time{
		"User.CreatedAt": gotUser.CreatedAt, "User.UpdatedAt": gotUser.UpdatedAt,
		"Session.CreatedAt": gotSession.CreatedAt, "Session.LastSeenAt": gotSession.LastSeenAt,
		"Session.ExpiresAt": gotSession.ExpiresAt,
	} {
		if tm.Location() != time.UTC {
			t.Errorf("%s in %v, want UTC", name, tm.Location())
		}
	}
}

func TestOpenCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "gatehouse.db"))
	if err == nil {
		s.Close()
		t.Fatal("Open with a cancelled context: no error")
	}
}

// testUser returns a user whose id derives from its email.
func testUser(email string) *store.User {
	id := sha256.Sum256([]byte(email))
	now := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.FixedZone("X", -5*60*60))
	return &store.User{
		ID:             fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16]),
		Email:          email,
		HashedPassword: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		IsActive:       true,
		Roles:          []string{"a"},
		CreatedAt:      now,
		UpdatedAt:      now,
	}
}

func testSession(userID string, digest []byte) *store.Session {
	now := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	return &store.Session{
		ID:          fmt.Sprintf("session-%x", digest),
		UserID:      userID,
		TokenDigest: digest,
		Transport:   store.TransportBearer,
		CreatedAt:   now,
		LastSeenAt:  now,
		ExpiresAt:   now.Add(time.Hour),
	}
}

// TestShared runs the multi-instance suite: n stores on one file, as n
// processes would open it. Within one process the single writer
// connection serialises writes anyway; between processes only SQLite's
// locking does, which is what this checks.
func TestShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T, n int) []store.Store {
		path := filepath.Join(t.TempDir(), "gatehouse.db")
		stores := make([]store.Store, n)
		for i := range stores {
			stores[i] = openClosed(t, path)
		}
		return stores
	})
}

// TestOutboxSurvivesReopen: a queued message, its lease and its retry
// state outlive the process.
func TestOutboxSurvivesReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s := open(t, path)
	u := testUser("durable@example.com")
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tok := testToken(u.ID, "durable")
	msg := testMessage(u.Email)
	if ok, err := s.IssueToken(ctx, tok, msg, store.MailLimit{Max: 1, Window: time.Hour}, now); err != nil || !ok {
		t.Fatalf("IssueToken = %v, %v", ok, err)
	}
	if _, err := s.ClaimMessages(ctx, now, now.Add(time.Minute), 10); err != nil {
		t.Fatalf("ClaimMessages: %v", err)
	}
	next := now.Add(time.Hour)
	if err := s.RetryMessage(ctx, msg.ID, next, "connection refused"); err != nil {
		t.Fatalf("RetryMessage: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openClosed(t, path)
	if _, err := s.TokenByDigest(ctx, tok.Purpose, tok.Digest); err != nil {
		t.Errorf("TokenByDigest after reopening: %v", err)
	}
	// The mail log survived too: the limit still holds.
	if ok, err := s.IssueToken(ctx, testToken(u.ID, "second"), testMessage(u.Email), store.MailLimit{Max: 1, Window: time.Hour}, now); err != nil || ok {
		t.Errorf("IssueToken over the limit after reopening = %v, %v; want false", ok, err)
	}
	msgs, err := s.ClaimMessages(ctx, next, next.Add(time.Minute), 10)
	if err != nil {
		t.Fatalf("ClaimMessages after reopening: %v", err)
	}
	if len(msgs) != 1 || msgs[0].ID != msg.ID || msgs[0].Attempts != 2 || msgs[0].LastError != "connection refused" {
		t.Errorf("ClaimMessages after reopening = %+v, want message %d at its second attempt", msgs, msg.ID)
	}
}

// TestUpgradeFromVersion1 opens a database made by the first release,
// with a user in it, and checks that the new tables arrive beside it.
func TestUpgradeFromVersion1(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	ms, err := migrations()
	if err != nil {
		t.Fatalf("migrations: %v", err)
	}
	writerDSN, err := dsn(path, false)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", writerDSN)
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(ctx, db, ms[0]); err != nil {
		t.Fatalf("applying %s: %v", ms[0].Name, err)
	}
	u := testUser("old@example.com")
	old := &Store{path: path, writer: db, readers: db}
	if err := old.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser in a version 1 database: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openClosed(t, path)
	if got := slices.Sorted(maps.Keys(appliedMigrations(t, s))); !slices.Equal(got, wantVersions(t)) {
		t.Errorf("applied migrations after upgrade = %v, want %v", got, wantVersions(t))
	}
	if _, err := s.UserByID(ctx, u.ID); err != nil {
		t.Fatalf("UserByID after upgrade: %v", err)
	}
	tok := testToken(u.ID, "upgrade")
	if ok, err := s.IssueToken(ctx, tok, testMessage(u.Email), store.MailLimit{}, time.Now()); err != nil || !ok {
		t.Fatalf("IssueToken after upgrade = %v, %v", ok, err)
	}
	// The cascade of the new table works on the old users table.
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.TokenByDigest(ctx, tok.Purpose, tok.Digest); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByDigest after DeleteUser: err = %v, want ErrNotFound", err)
	}
}

func TestTokenAndMessageTimesInUTC(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openClosed(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	u := testUser("utc@example.com")
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	zone := time.FixedZone("X", 3*60*60)
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, zone)
	tok := testToken(u.ID, "utc")
	if ok, err := s.IssueToken(ctx, tok, testMessage(u.Email), store.MailLimit{}, now); err != nil || !ok {
		t.Fatalf("IssueToken = %v, %v", ok, err)
	}
	if err := s.UseToken(ctx, tok.Purpose, tok.Digest, now); err != nil {
		t.Fatalf("UseToken: %v", err)
	}
	got, err := s.TokenByDigest(ctx, tok.Purpose, tok.Digest)
	if err != nil {
		t.Fatalf("TokenByDigest: %v", err)
	}
	msgs, err := s.ClaimMessages(ctx, now, now.Add(time.Minute), 1)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("ClaimMessages = %d messages, %v", len(msgs), err)
	}
	for name, tm := range map[string]time.Time{
		"ActionToken.CreatedAt": got.CreatedAt, "ActionToken.ExpiresAt": got.ExpiresAt,
		"ActionToken.UsedAt": got.UsedAt, "Message.CreatedAt": msgs[0].CreatedAt,
		"Message.NextAttemptAt": msgs[0].NextAttemptAt,
	} {
		if tm.Location() != time.UTC {
			t.Errorf("%s in %v, want UTC", name, tm.Location())
		}
	}
}

// testToken returns a reset token of userID whose digest derives from seed.
func testToken(userID, seed string) *store.ActionToken {
	digest := sha256.Sum256([]byte(seed))
	now := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.FixedZone("X", -5*60*60))
	return &store.ActionToken{
		Digest:    digest[:],
		UserID:    userID,
		Purpose:   store.PurposeResetPassword,
		Email:     "owner@example.com",
		CreatedAt: now,
		ExpiresAt: now.Add(time.Hour),
	}
}

// testMessage returns a message to to with zero times: IssueToken sets
// them to its now; queued with QueueMessage, it is due at once.
func testMessage(to string) *store.Message {
	return &store.Message{To: to, Subject: "Subject", Text: "text", HTML: "<p>html</p>"}
}

// Mail-limit records of addresses never written to again are removed by
// the periodic sweep once older than store.MailLogRetention.
func TestMailLogPruned(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "gh.db"))
	ctx := t.Context()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, addr := range []string{"old@example.com", "other@example.com"} {
		if _, err := s.NoteMailRequest(ctx, addr, store.MailLimit{Max: 3, Window: time.Hour}, t0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.NoteMailRequest(ctx, "recent@example.com", store.MailLimit{Max: 3, Window: time.Hour}, t0.Add(store.MailLogRetention)); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		var n int
		if err := s.readers.QueryRowContext(ctx, `SELECT count(*) FROM mail_log`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 3 {
		t.Fatalf("%d mail log rows, want 3", n)
	}
	if _, err := s.DeleteExpiredTokens(ctx, t0.Add(store.MailLogRetention+time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d mail log rows after the sweep, want only the recent one", n)
	}
}

func TestCopy(t *testing.T) {
	storetest.RunCopy(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	})
}
