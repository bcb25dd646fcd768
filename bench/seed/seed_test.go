package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
	"github.com/gatehouse-caddy/gatehouse/store/sqlite"
)

var update = flag.Bool("update", false, "rewrite testdata/schema.golden from the migrations")

const testPassword = "correct horse battery staple"

// TestSeed seeds a small database and reads it back through the store, as
// the server will.
func TestSeed(t *testing.T) {
	t.Parallel()
	const nUsers, nSessions = 300, 500
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "seed.db")
	now := time.Now()
	tokens := map[int]string{}
	res, err := seed(ctx, config{
		path: path, users: nUsers, sessions: nSessions, password: testPassword,
		rand:         mathrand.NewChaCha8([32]byte{1}),
		now:          func() time.Time { return now },
		progress:     io.Discard,
		sessionToken: func(i int, token string) { tokens[i] = token },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Users != nUsers || res.Sessions != nSessions {
		t.Errorf("result counts %d users, %d sessions; want %d, %d", res.Users, res.Sessions, nUsers, nSessions)
	}
	if len(tokens) != nSessions {
		t.Errorf("saw %d session tokens, want %d", len(tokens), nSessions)
	}

	// The file as the seeder left it, before anything else opens it.
	t.Run("file", func(t *testing.T) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if res.Bytes != fi.Size() {
			t.Errorf("result bytes = %d, file has %d", res.Bytes, fi.Size())
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("file mode %v, want 0600 (it holds password hashes)", fi.Mode().Perm())
		}
		if wal, err := os.Stat(path + "-wal"); err == nil && wal.Size() != 0 {
			t.Errorf("-wal file of %d bytes left after the checkpoint", wal.Size())
		}
		// Bytes 18 and 19 of the header are SQLite's write and read
		// versions: 2 for WAL, 1 for a rollback journal.
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		header := make([]byte, 20)
		if _, err := io.ReadFull(f, header); err != nil {
			t.Fatal(err)
		}
		if header[18] != 2 || header[19] != 2 {
			t.Errorf("header file format versions %d, %d; want 2, 2 (WAL)", header[18], header[19])
		}
	})

	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	var users []store.User // for "sessions per user"
	t.Run("users", func(t *testing.T) {
		listed, err := st.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		users = listed
		if len(users) != nUsers {
			t.Fatalf("store lists %d users, want %d", len(users), nUsers)
		}
		ids := map[string]bool{}
		for i, u := range users { // ordered by email, which is by index
			if u.Email != emailOf(i) {
				t.Fatalf("user %d has email %q, want %q", i, u.Email, emailOf(i))
			}
			if id, err := uuid.Parse(u.ID); err != nil || id.Version() != 4 || id.String() != u.ID {
				t.Errorf("user %d id %q is not a lowercase hyphenated version 4 UUID", i, u.ID)
			}
			if ids[u.ID] {
				t.Errorf("user %d id %q repeated", i, u.ID)
			}
			ids[u.ID] = true
			if !u.IsActive || !u.IsVerified || u.IsSuperuser || u.FullName != "" || len(u.Roles) != 0 {
				t.Errorf("user %d: active %v, verified %v, superuser %v, name %q, roles %q; want active, verified, plain",
					i, u.IsActive, u.IsVerified, u.IsSuperuser, u.FullName, u.Roles)
			}
			if u.HashedPassword != users[0].HashedPassword {
				t.Errorf("user %d has another hash than user 0", i)
			}
			if want := now.UTC().Truncate(time.Microsecond); !u.CreatedAt.Equal(want) || !u.UpdatedAt.Equal(want) {
				t.Errorf("user %d created %v, updated %v; want %v", i, u.CreatedAt, u.UpdatedAt, want)
			}
		}
	})

	t.Run("email lookup", func(t *testing.T) {
		for _, i := range []int{0, 17, nUsers - 1} {
			// Registration stores emails as NormalizeEmail gives them:
			// the seeded ones must already be in that form.
			if got, err := caddyauth.NormalizeEmail(emailOf(i)); err != nil || got != emailOf(i) {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want it unchanged", emailOf(i), got, err)
			}
			// A login looks the typed email up ignoring case.
			u, err := st.UserByEmail(ctx, strings.ToUpper(emailOf(i)))
			if err != nil {
				t.Fatalf("UserByEmail(%q): %v", strings.ToUpper(emailOf(i)), err)
			}
			if u.Email != emailOf(i) {
				t.Errorf("UserByEmail found %q, want %q", u.Email, emailOf(i))
			}
		}
		if _, err := st.UserByEmail(ctx, emailOf(nUsers)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UserByEmail(%q) = %v, want ErrNotFound", emailOf(nUsers), err)
		}
	})

	t.Run("password", func(t *testing.T) {
		u, err := st.UserByEmail(ctx, emailOf(42))
		if err != nil {
			t.Fatal(err)
		}
		h, err := caddyauth.NewHasher(caddyauth.HasherConfig{}, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ok, rehash, err := h.Verify(ctx, testPassword, u.HashedPassword)
		if err != nil || !ok || rehash {
			t.Errorf("Verify(right password) = %v, rehash %v, %v; want true, no rehash (default parameters)", ok, rehash, err)
		}
		ok, _, err = h.Verify(ctx, testPassword+"!", u.HashedPassword)
		if err != nil || ok {
			t.Errorf("Verify(wrong password) = %v, %v; want false", ok, err)
		}
	})

	t.Run("session lookup", func(t *testing.T) {
		created := now.UTC().Truncate(time.Second)
		for _, i := range []int{0, 1, nUsers - 1, nUsers, nSessions - 1} {
			digest := sha256.Sum256([]byte(tokens[i]))
			ss, u, err := st.SessionByDigest(ctx, digest[:])
			if err != nil {
				t.Fatalf("session %d: SessionByDigest: %v", i, err)
			}
			if u.Email != emailOf(i%nUsers) || ss.UserID != u.ID {
				t.Errorf("session %d belongs to %q (%s), want %q", i, u.Email, ss.UserID, emailOf(i%nUsers))
			}
			wantTransport := store.TransportBearer
			if i%2 == 1 {
				wantTransport = store.TransportCookie
			}
			if ss.Transport != wantTransport {
				t.Errorf("session %d transport %q, want %q", i, ss.Transport, wantTransport)
			}
			if len(ss.ID) != 32 || strings.Trim(ss.ID, "0123456789abcdef") != "" {
				t.Errorf("session %d id %q is not 32 lowercase hex digits", i, ss.ID)
			}
			if !ss.CreatedAt.Equal(created) || !ss.LastSeenAt.Equal(created) ||
				!ss.ExpiresAt.Equal(created.Add(caddyauth.DefaultSessionLifetime)) {
				t.Errorf("session %d created %v, seen %v, expires %v; want %v, %v, %v", i, ss.CreatedAt, ss.LastSeenAt,
					ss.ExpiresAt, created, created, created.Add(caddyauth.DefaultSessionLifetime))
			}
			if !ss.ExpiresAt.After(time.Now()) {
				t.Errorf("session %d expired at %v", i, ss.ExpiresAt)
			}
		}
		unknown := sha256.Sum256([]byte("not a seeded token"))
		if _, _, err := st.SessionByDigest(ctx, unknown[:]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SessionByDigest(unknown) = %v, want ErrNotFound", err)
		}
	})

	t.Run("sessions per user", func(t *testing.T) {
		if users == nil {
			t.Skip("no users listed")
		}
		total := 0
		for i, u := range users {
			ss, err := st.UserSessions(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			// Round-robin: the first nSessions mod nUsers users get one more.
			want := nSessions / nUsers
			if i < nSessions%nUsers {
				want++
			}
			if len(ss) != want {
				t.Errorf("user %d has %d sessions, want %d", i, len(ss), want)
			}
			total += len(ss)
		}
		if total != nSessions {
			t.Errorf("%d sessions in all, want %d", total, nSessions)
		}
	})

	t.Run("integrity", func(t *testing.T) {
		db := openRaw(t, path)
		var check string
		if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
			t.Errorf("integrity_check = %q, %v; want ok", check, err)
		}
		// The loader does not check foreign keys: this does.
		rows, err := db.QueryContext(ctx, "PRAGMA foreign_key_check")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		if rows.Next() {
			t.Error("foreign_key_check reports a row naming a missing parent")
		}
		if err := rows.Err(); err != nil {
			t.Error(err)
		}
		var mode string
		if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode = %q, %v; want wal", mode, err)
		}
	})
}

// openRaw opens the database with database/sql, for pragmas the store does
// not expose.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestSchemaGolden breaks when a migration changes the schema in any way,
// so that the seeder is reviewed with it: a new column may need a value
// the server would write, a new table rows of its own. checkSchema stops a
// seeding run only when users or sessions gain or lose a column.
func TestSchemaGolden(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "schema.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	got := schemaDump(t, openRaw(t, path))
	golden := filepath.Join("testdata", "schema.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("the schema differs from %s: check that bench/seed writes every column of users and sessions "+
			"as the server would, then run go test ./bench/seed -run TestSchemaGolden -update\n--- got\n%s", golden, got)
	}
}

// schemaDump lists the applied migrations and every table, index and
// trigger with the SQL that made it.
func schemaDump(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	rows, err := db.QueryContext(t.Context(), "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "-- migration %d\n", v)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		t.Fatal(err)
	}
	rows, err = db.QueryContext(t.Context(),
		"SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY tbl_name, type DESC, name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var typ, name, sqlText string
		if err := rows.Scan(&typ, &name, &sqlText); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "\n-- %s %s\n%s;\n", typ, name, sqlText)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestCheckSchema: a column added to or dropped from users or sessions
// stops the seeder.
func TestCheckSchema(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		alter string // "" leaves the schema as the migrations made it
		table string // named in the error
	}{
		{name: "as migrated"},
		{name: "users gains a column", alter: "ALTER TABLE users ADD COLUMN locale TEXT NOT NULL DEFAULT 'en'", table: "users"},
		{name: "users loses a column", alter: "ALTER TABLE users DROP COLUMN full_name", table: "users"},
		{name: "sessions gains a column", alter: "ALTER TABLE sessions ADD COLUMN device TEXT NOT NULL DEFAULT ''", table: "sessions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "check.db")
			st, err := sqlite.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.alter != "" {
				// Closed at once: the loader needs the file to itself.
				raw := openRaw(t, path)
				if _, err := raw.ExecContext(ctx, tc.alter); err != nil {
					t.Fatal(err)
				}
				if err := raw.Close(); err != nil {
					t.Fatal(err)
				}
			}
			db, err := openBulk(path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			err = checkSchema(ctx, conn)
			switch {
			case tc.table == "" && err != nil:
				t.Errorf("checkSchema = %v, want nil", err)
			case tc.table != "" && (err == nil || !strings.Contains(err.Error(), "table "+tc.table+" has the columns")):
				t.Errorf("checkSchema = %v, want an error about %s", err, tc.table)
			}
		})
	}
}

// TestRun runs the command as the harness does: one JSON line, a refusal
// to overwrite, and -force.
func TestRun(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "run.db")
	args := []string{"-db", path, "-users", "3", "-sessions", "5", "-password", testPassword}

	var stdout, stderr bytes.Buffer
	if code := run(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s", code, stderr.String())
	}
	line, rest, _ := strings.Cut(stdout.String(), "\n")
	if rest != "" {
		t.Errorf("stdout has more than one line: %q", stdout.String())
	}
	var got map[string]float64
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("stdout %q is not a JSON object: %v", line, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got["users"] != 3 || got["sessions"] != 5 || got["bytes"] != float64(fi.Size()) ||
		got["seconds"] <= 0 {
		t.Errorf("stdout %q; want users 3, sessions 5, bytes %d, seconds > 0, nothing else", line, fi.Size())
	}

	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "-force") {
		t.Errorf("second run: exit status %d, stderr %q; want 1 and a hint at -force", code, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("a refused run printed %q", stdout.String())
	}
	if fi2, err := os.Stat(path); err != nil || !fi2.ModTime().Equal(fi.ModTime()) || fi2.Size() != fi.Size() {
		t.Errorf("a refused run touched the database: %v", err)
	}

	stdout.Reset()
	stderr.Reset()
	args = []string{"-db", path, "-users", "1", "-sessions", "0", "-password", testPassword, "-force"}
	if code := run(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("-force run: exit status %d, want 0; stderr:\n%s", code, stderr.String())
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if users, err := st.ListUsers(ctx); err != nil || len(users) != 1 {
		t.Errorf("after -force with one user the store lists %d users (%v), want 1", len(users), err)
	}
}

// TestFailureRemovesDatabase: a run that fails midway leaves no file.
func TestFailureRemovesDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "fail.db")
	errRandom := errors.New("randomness ran out")
	// Enough for the salt and a few dozen user ids, then an error.
	r := io.MultiReader(io.LimitReader(rand.Reader, 1000), errReader{errRandom})
	_, err := seed(t.Context(), config{path: path, users: 300, sessions: 300, password: testPassword,
		rand: r, now: time.Now, progress: io.Discard})
	if !errors.Is(err, errRandom) {
		t.Errorf("seed = %v, want the reader's error", err)
	}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if _, err := os.Stat(path + suffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", filepath.Base(path+suffix), err)
		}
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestPrepare: what an existing path does to a run.
func TestPrepare(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		db, wal string // contents; "-" for no file
		force   bool
		wantErr bool
		gone    bool // the files were deleted
	}{
		{name: "no file", db: "-", wal: "-"},
		{name: "empty file", db: "", wal: "-"},
		{name: "non-empty", db: "x", wal: "-", wantErr: true},
		{name: "empty with a wal", db: "", wal: "x", wantErr: true},
		{name: "non-empty forced", db: "x", wal: "x", force: true, gone: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "p.db")
			for suffix, content := range map[string]string{"": tc.db, "-wal": tc.wal} {
				if content != "-" {
					if err := os.WriteFile(path+suffix, []byte(content), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			err := prepare(path, tc.force)
			if (err != nil) != tc.wantErr {
				t.Errorf("prepare = %v, want error %v", err, tc.wantErr)
			}
			_, statErr := os.Stat(path)
			if exists := statErr == nil; tc.db != "-" && exists == tc.gone {
				t.Errorf("database exists %v after prepare, want %v", exists, !tc.gone)
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		if err := prepare(t.TempDir(), true); err == nil {
			t.Error("prepare(a directory, force) = nil, want an error")
		}
	})
}

// TestFlags: bad flags exit 2 with a message, before any work.
func TestFlags(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "flags.db")
	// After the parallel subtests, which run once this function returns.
	t.Cleanup(func() {
		if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a run with bad flags created the database (%v)", err)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no flags", nil, 2, "-db is required"},
		{"no password", []string{"-db", db}, 2, "-password is required"},
		{"negative users", []string{"-db", db, "-password", "pw", "-users", "-1"}, 2, "-users -1 is negative"},
		{"negative sessions", []string{"-db", db, "-password", "pw", "-sessions", "-1"}, 2, "-sessions -1 is negative"},
		{"sessions without users", []string{"-db", db, "-password", "pw", "-users", "0", "-sessions", "1"}, 2, "at least one user"},
		{"stray argument", []string{"-db", db, "-password", "pw", "extra"}, 2, `unexpected argument "extra"`},
		{"not a number", []string{"-db", db, "-password", "pw", "-users", "many"}, 2, "invalid value"},
		{"unknown flag", []string{"-db", db, "-password", "pw", "-admins", "3"}, 2, "flag provided but not defined"},
		{"help", []string{"-h"}, 0, "-sessions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit status %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}
