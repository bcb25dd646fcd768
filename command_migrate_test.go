package gatehouse

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
	"github.com/gatehouse-caddy/gatehouse/store/postgres/pgtest"
	"github.com/gatehouse-caddy/gatehouse/store/storetest"
)

// openService opens the database db names and builds the core on it as
// the server does (same builder, the secret kept in the database), with a
// cache of its own. It is closed when the test ends.
func openService(t *testing.T, db *DatabaseConfig) (*caddyauth.Service, store.Store) {
	t.Helper()
	a := &App{Database: db}
	if err := a.resolve(); err != nil {
		t.Fatal(err)
	}
	st, err := a.Database.open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc, err := a.newService(t.Context(), st, caddyauth.NewSessionCache(), cheapHasher(), nil, serviceHooks{})
	if err != nil {
		t.Fatal(err)
	}
	return svc, st
}

// resetToken claims the reset mail queued to email in st and returns the
// token of its link, opened with svc's secret.
func resetToken(t *testing.T, svc *caddyauth.Service, st store.Store, email string) string {
	t.Helper()
	msgs, err := st.ClaimMessages(t.Context(), time.Now().Add(time.Hour), time.Now().Add(2*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(msgs, func(m store.Message) bool { return m.To == email })
	if i < 0 {
		t.Fatalf("no mail queued to %s: %+v", email, msgs)
	}
	body, err := svc.OpenMailBody(msgs[i].Text)
	if err != nil {
		t.Fatalf("opening the queued mail: %v", err)
	}
	_, token, ok := strings.Cut(body, "?token=")
	if !ok {
		t.Fatalf("no link with a token in the mail: %q", body)
	}
	return strings.FieldsFunc(token, func(r rune) bool { return r == '\n' || r == ' ' || r == '"' || r == '<' })[0]
}

// TestMigrate: an installation populated through the command and the core
// goes from SQLite to PostgreSQL and back; a server on each copy lets the
// same users in with the same passwords, accepts the bearer token issued
// before the copy (the secret came along), and honours the mailed link.
func TestMigrate(t *testing.T) {
	cluster := pgtest.Shared(t)
	f := newFixture(t)
	alice := f.add(t, "Alice@Example.com", "alice-password-1", "--superuser", "--verified", "--role", "admin", "--role", "ops")
	f.add(t, "bob@example.com", "bob-password-1")
	f.add(t, "carol@example.com", "carol-password-1")
	f.run(t, "", "user", "set", "--email", "carol@example.com", "--inactive").ok(t)
	svc, _ := f.service(t)
	token := login(t, svc, "alice@example.com", "alice-password-1")
	if err := svc.ForgotPassword(t.Context(), "bob@example.com", caddyauth.Links{Reset: "https://app.example/reset"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Login(t.Context(), "bob@example.com", "wrong-password", store.TransportBearer, caddyauth.ClientInfo{IP: "192.0.2.9"}); !errors.Is(err, caddyauth.ErrBadCredentials) {
		t.Fatalf("Login with a wrong password: %v", err)
	}
	const copied = "copied 3 users, 1 session, 1 token, 1 message, 1 mail log entry, 2 limits, 1 setting\n"

	// To PostgreSQL, the DSN from the environment.
	dsn := cluster.NewDatabase(t)
	t.Setenv("GH_TEST_MIGRATE_DSN", dsn)
	if out := runCLI(t, "", "migrate", "--from", "sqlite:"+f.db, "--to", "postgres:{env.GH_TEST_MIGRATE_DSN}").ok(t); out != copied {
		t.Errorf("migrate printed %q, want %q", out, copied)
	}

	// Again into the same database: refused, and nothing changes.
	runCLI(t, "", "migrate", "--from", "sqlite:"+f.db, "--to", dsn).
		fails(t, "gatehouse: --to: importing: database not empty: it holds settings, users, sessions, tokens, messages, mail log, limits (migrate copies into a new, empty database only)")

	// And back to SQLite, into a new file: the same rows as the original.
	back := filepath.Join(t.TempDir(), "new", "back.db")
	if out := runCLI(t, "", "migrate", "--from", "postgres:"+dsn, "--to", "sqlite:"+back).ok(t); out != copied {
		t.Errorf("migrate back printed %q, want %q", out, copied)
	}
	pg, pgStore := openService(t, &DatabaseConfig{Driver: "postgres", DSN: dsn})
	lite, liteStore := openService(t, &DatabaseConfig{Driver: "sqlite", Path: back})
	_, original := f.service(t)
	storetest.CheckSameDump(t, "the copy of the copy", storetest.Dump(t, liteStore), storetest.Dump(t, original))

	// A server on either copy works as one on the original would.
	t.Run("PostgreSQL copy", func(t *testing.T) { checkMigrated(t, pg, pgStore, alice, token) })
	t.Run("SQLite copy of the copy", func(t *testing.T) { checkMigrated(t, lite, liteStore, alice, token) })
}

// checkMigrated checks a copy of TestMigrate's installation through the
// core: logins, the old bearer token, flags and roles, the ban-free
// failure count, and bob's reset link.
func checkMigrated(t *testing.T, svc *caddyauth.Service, st store.Store, aliceID, token string) {
	t.Helper()
	p, err := svc.AuthenticateBearer(t.Context(), token)
	if err != nil {
		t.Fatalf("the bearer token issued before the copy: %v", err)
	}
	if p.UserID != aliceID || !p.IsSuperuser || !p.IsVerified || !reflect.DeepEqual(p.Roles, []string{"admin", "ops"}) {
		t.Errorf("the token's principal = %+v", p)
	}
	login(t, svc, "ALICE@example.com", "alice-password-1")
	if _, err := svc.Login(t.Context(), "alice@example.com", "bob-password-1", store.TransportBearer, caddyauth.ClientInfo{}); !errors.Is(err, caddyauth.ErrBadCredentials) {
		t.Errorf("Login with another user's password: err = %v, want ErrBadCredentials", err)
	}
	if u := userOf(t, st, "bob@example.com"); !u.IsActive || u.IsSuperuser || u.IsVerified || len(u.Roles) != 0 {
		t.Errorf("bob = %+v", u)
	}
	if u := userOf(t, st, "carol@example.com"); u.IsActive {
		t.Errorf("carol, inactive, is active on the copy")
	}
	if _, err := svc.Login(t.Context(), "carol@example.com", "carol-password-1", store.TransportBearer, caddyauth.ClientInfo{}); !errors.Is(err, caddyauth.ErrBadCredentials) {
		t.Errorf("inactive carol's login: err = %v, want ErrBadCredentials", err)
	}
	// The reset mail queued before the copy opens with the copied secret,
	// and its link works once.
	reset := resetToken(t, svc, st, "bob@example.com")
	if err := svc.ResetPassword(t.Context(), reset, "bob-new-password-1"); err != nil {
		t.Fatalf("ResetPassword with the link mailed before the copy: %v", err)
	}
	login(t, svc, "bob@example.com", "bob-new-password-1")
}

// TestMigrateErrors: each mistake is one line on standard error, and
// creates nothing.
func TestMigrateErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := newFixture(t)
	f.add(t, "dora@example.com", "dora-password-1")
	missing := filepath.Join(dir, "missing.db")
	target := filepath.Join(dir, "target.db")
	usage := " (see 'caddy gatehouse migrate --help')"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no --from", []string{"--to", "sqlite:" + target}, "gatehouse: --from is required" + usage},
		{"no --to", []string{"--from", "sqlite:" + f.db}, "gatehouse: --to is required" + usage},
		{"missing file", []string{"--from", "sqlite:" + missing, "--to", "sqlite:" + target}, "gatehouse: --from: no database at " + missing},
		{"directory", []string{"--from", "sqlite:" + dir, "--to", "sqlite:" + target}, "gatehouse: --from: " + dir + " is a directory"},
		{"unknown driver", []string{"--from", "mysql:x", "--to", "sqlite:" + target}, "gatehouse: --from: a database is sqlite:<path> or postgres:<dsn>" + usage},
		{"bad --to", []string{"--from", "sqlite:" + f.db, "--to", target}, "gatehouse: --to: a database is sqlite:<path> or postgres:<dsn>" + usage},
		{"empty path", []string{"--from", "sqlite:", "--to", "sqlite:" + target}, "gatehouse: --from: sqlite: needs a path" + usage},
		{"unset placeholder", []string{"--from", "sqlite:" + f.db, "--to", "postgres:{env.GH_TEST_UNSET_DSN}"},
			"gatehouse: --to: database dsn: a placeholder in it is unknown or empty (an unset {env.*} variable?)" + usage},
		{"same file", []string{"--from", "sqlite:" + f.db, "--to", "sqlite:" + filepath.Join(filepath.Dir(f.db), ".", "gh.db")},
			"gatehouse: --from and --to name the same database" + usage},
		{"same postgres database", []string{"--from", "postgres://u:pw@127.0.0.1:1/gh", "--to", "postgres:host=127.0.0.1 port=1 dbname=gh user=v"},
			"gatehouse: --from and --to name the same database" + usage},
		{"argument", []string{"sqlite:" + f.db}, `gatehouse: unexpected argument "sqlite:` + f.db + `"` + usage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runCLI(t, "", append([]string{"migrate"}, tc.args...)...).fails(t, tc.want)
			for _, p := range []string{missing, target} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s exists after a refused migrate (err %v)", p, err)
				}
			}
		})
	}

	t.Run("target not empty", func(t *testing.T) {
		g := newFixture(t)
		g.add(t, "other@example.com", "other-password-1")
		before := g.run(t, "", "user", "list").ok(t)
		runCLI(t, "", "migrate", "--from", "sqlite:"+f.db, "--to", "sqlite:"+g.db).
			fails(t, "gatehouse: --to: importing: database not empty: it holds settings, users (migrate copies into a new, empty database only)")
		if after := g.run(t, "", "user", "list").ok(t); after != before {
			t.Errorf("the target changed: %q, was %q", after, before)
		}
	})

	t.Run("nothing to copy", func(t *testing.T) {
		// A database with no user and no secret: a new one, or the wrong
		// one. Refused, and the target stays empty.
		// Opened as the store, with its schema, and nothing else: not even
		// a secret, which a server or a CLI command would have made.
		empty := &DatabaseConfig{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "empty.db")}
		st, err := empty.open(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
		copyPath := filepath.Join(t.TempDir(), "copy.db")
		runCLI(t, "", "migrate", "--from", "sqlite:"+empty.Path, "--to", "sqlite:"+copyPath).
			fails(t, "gatehouse: --from: holds no user and no secret, so nothing was copied: is it the right database?")
		_, copied := openService(t, &DatabaseConfig{Driver: "sqlite", Path: copyPath})
		if users, err := copied.ListUsers(t.Context()); err != nil || len(users) != 0 {
			t.Errorf("the target holds %d users (err %v) after a refused copy", len(users), err)
		}
	})

	t.Run("SQLite to SQLite", func(t *testing.T) {
		copyPath := filepath.Join(t.TempDir(), "copy.db")
		if out := runCLI(t, "", "migrate", "--from", "sqlite:"+f.db, "--to", "sqlite:"+copyPath).ok(t); out != "copied 1 user, 0 sessions, 0 tokens, 0 messages, 0 mail log entries, 0 limits, 1 setting\n" {
			t.Errorf("migrate printed %q", out)
		}
		// Both stores were closed: SQLite removes the WAL file with the
		// last connection.
		for _, p := range []string{f.db, copyPath} {
			if _, err := os.Stat(p + "-wal"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s-wal still exists (err %v): a store was not closed", p, err)
			}
		}
		svc, _ := openService(t, &DatabaseConfig{Driver: "sqlite", Path: copyPath})
		login(t, svc, "dora@example.com", "dora-password-1")
	})
}

// TestMigrateUnreachable: a PostgreSQL server that cannot be reached is
// named by address and port, on one line, without the password.
func TestMigrateUnreachable(t *testing.T) {
	t.Parallel()
	const password = "Sup3r-secret-pw"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	f := newFixture(t)
	f.add(t, "eve@example.com", "eve-password-1")
	for _, tc := range []struct {
		name, flag string
		args       []string
	}{
		{"--to URL", "--to", []string{"--from", "sqlite:" + f.db, "--to", "postgres://gatehouse:" + password + "@" + addr + "/gh?sslmode=disable"}},
		{"--from keyword/value", "--from", []string{"--from", "postgres:host=127.0.0.1 port=" + port + " user=gatehouse password=" + password + " dbname=gh sslmode=disable",
			"--to", "sqlite:" + filepath.Join(t.TempDir(), "never.db")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, "", append([]string{"migrate"}, tc.args...)...)
			r.failsPrefix(t, "gatehouse: "+tc.flag+": opening database: postgres: connecting to "+addr+": ")
			t.Logf("stderr: %s", r.stderr)
			if strings.Contains(r.stderr, password) {
				t.Errorf("stderr %q shows the password", r.stderr)
			}
		})
	}
}

func TestMigrateRegisteredAndHelp(t *testing.T) {
	t.Parallel()
	c := caddycmd.Commands()["gatehouse"]
	gh := &cobra.Command{Use: "gatehouse"}
	c.CobraFunc(gh)
	if !slices.ContainsFunc(gh.Commands(), func(cmd *cobra.Command) bool { return cmd.Name() == "migrate" }) {
		t.Error("no migrate subcommand registered")
	}
	if !strings.Contains(c.Long, "migrate --from <database> --to <database>") || !strings.Contains(c.Long, "Stop the servers first") {
		t.Errorf("the gatehouse help does not describe migrate:\n%s", c.Long)
	}
	out := runCLI(t, "", "migrate", "--help").ok(t)
	for _, want := range []string{"--from", "--to", "new and empty", "Stop the servers", "are not copied", "sqlite:<path>", "postgres:<dsn>", "{env."} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate help lacks %q:\n%s", want, out)
		}
	}
}
