package gatehouse

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// cheapArgon2 keeps the tests fast, under -race too. Production hashes
// with caddyauth.DefaultArgon2Params (TestCommandRegistered checks the
// registered command does).
var cheapArgon2 = caddyauth.Argon2Params{Memory: 64, Time: 1, Threads: 1}

func cheapHasher() *caddyauth.Hasher {
	h, err := caddyauth.NewHasher(caddyauth.HasherConfig{Params: cheapArgon2}, rand.Reader)
	if err != nil {
		panic(err) // unreachable: cheapArgon2 is valid
	}
	return h
}

var testCLI = cliOptions{newHasher: cheapHasher}

// cliRun is the outcome of one command line.
type cliRun struct {
	stdout, stderr string
	err            error
}

// runCLI runs `caddy gatehouse args...` in-process, under a root command
// set up as Caddy's is, with stdin as standard input.
func runCLI(t *testing.T, stdin string, args ...string) cliRun {
	t.Helper()
	return runTree(t, newGatehouseCommand(testCLI), stdin, args...)
}

func runTree(t *testing.T, gatehouse *cobra.Command, stdin string, args ...string) cliRun {
	t.Helper()
	root := &cobra.Command{Use: "caddy", SilenceUsage: true} // as caddycmd's root
	root.AddCommand(gatehouse)
	var stdout, stderr bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(append([]string{"gatehouse"}, args...))
	err := root.ExecuteContext(t.Context())
	return cliRun{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// ok fails the test unless the command succeeded silently on stderr; it
// returns stdout.
func (r cliRun) ok(t *testing.T) string {
	t.Helper()
	if r.err != nil || r.stderr != "" {
		t.Fatalf("command failed: err = %v, stderr = %q, stdout = %q", r.err, r.stderr, r.stdout)
	}
	return r.stdout
}

// fails fails the test unless the command failed with exactly one line on
// stderr, equal to want, and nothing on stdout.
func (r cliRun) fails(t *testing.T, want string) {
	t.Helper()
	r.failsWith(t, func(line string) bool { return line == want }, want)
}

// failsPrefix is fails with a line that starts with prefix.
func (r cliRun) failsPrefix(t *testing.T, prefix string) {
	t.Helper()
	r.failsWith(t, func(line string) bool { return strings.HasPrefix(line, prefix) }, prefix+"…")
}

func (r cliRun) failsWith(t *testing.T, match func(string) bool, want string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("command succeeded (stdout %q), want failure %q", r.stdout, want)
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing", r.stdout)
	}
	line, ok := strings.CutSuffix(r.stderr, "\n")
	if !ok || strings.Contains(line, "\n") {
		t.Fatalf("stderr = %q, want exactly one line", r.stderr)
	}
	if !match(line) {
		t.Fatalf("stderr = %q, want %q", line, want)
	}
}

// fixture is a Caddyfile naming a database that does not exist yet.
type fixture struct {
	dir       string
	caddyfile string // path of the Caddyfile
	db        string // path of the database it names
}

func newFixture(t *testing.T, globalExtra ...string) fixture {
	t.Helper()
	dir := t.TempDir()
	f := fixture{dir: dir, caddyfile: filepath.Join(dir, "Caddyfile"), db: filepath.Join(dir, "data", "gh.db")}
	cfg := fmt.Sprintf(`{
	admin off
	gatehouse {
		database sqlite %s
		%s
	}
}

http://localhost:8080 {
	gatehouse_endpoints
	respond "hello"
}
`, f.db, strings.Join(globalExtra, "\n\t\t"))
	if err := os.WriteFile(f.caddyfile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// run runs `caddy gatehouse <args> --config <the Caddyfile>`.
func (f fixture) run(t *testing.T, stdin string, args ...string) cliRun {
	t.Helper()
	return runCLI(t, stdin, append(args, "--config", f.caddyfile)...)
}

// add creates a user through the command and returns its id.
func (f fixture) add(t *testing.T, email, password string, flags ...string) string {
	t.Helper()
	out := f.run(t, password+"\n", append([]string{"user", "add", "--email", email}, flags...)...).ok(t)
	id := strings.TrimSuffix(out, "\n")
	if _, err := uuid.Parse(id); err != nil || strings.Contains(id, "\n") {
		t.Fatalf("user add printed %q, want the new user's id on one line", out)
	}
	return id
}

// service opens the fixture's database as the server would (same builder,
// same persisted secret) with a cache of its own: what another process
// sees. It is closed when the test ends.
func (f fixture) service(t *testing.T) (*caddyauth.Service, store.Store) {
	t.Helper()
	return openService(t, &DatabaseConfig{Driver: "sqlite", Path: f.db})
}

// login opens a bearer session for the user and returns its token.
func login(t *testing.T, svc *caddyauth.Service, email, password string) string {
	t.Helper()
	res, err := svc.Login(t.Context(), email, password, store.TransportBearer, caddyauth.ClientInfo{UserAgent: "test"})
	if err != nil {
		t.Fatalf("Login(%s): %v", email, err)
	}
	return res.Credential
}

func sessionCount(t *testing.T, st store.Store, userID string) int {
	t.Helper()
	ss, err := st.UserSessions(t.Context(), userID)
	if err != nil {
		t.Fatal(err)
	}
	return len(ss)
}

// wantRefused fails unless token no longer authenticates in a process
// that has never seen it (a fresh service: no cached principal).
func (f fixture) wantRefused(t *testing.T, token string) {
	t.Helper()
	svc, _ := f.service(t)
	if _, err := svc.AuthenticateBearer(t.Context(), token); !errors.Is(err, caddyauth.ErrUnauthenticated) {
		t.Fatalf("AuthenticateBearer after the command: err = %v, want ErrUnauthenticated", err)
	}
}

// wantAccepted fails unless token authenticates in a fresh service.
func (f fixture) wantAccepted(t *testing.T, token string) {
	t.Helper()
	svc, _ := f.service(t)
	if _, err := svc.AuthenticateBearer(t.Context(), token); err != nil {
		t.Fatalf("AuthenticateBearer: %v", err)
	}
}

func userOf(t *testing.T, st store.Store, email string) *store.User {
	t.Helper()
	u, err := st.UserByEmail(t.Context(), email)
	if err != nil {
		t.Fatalf("UserByEmail(%s): %v", email, err)
	}
	return u
}

func TestCommandRegistered(t *testing.T) {
	t.Parallel()
	c, ok := caddycmd.Commands()["gatehouse"]
	if !ok || c.CobraFunc == nil {
		t.Fatalf("no gatehouse command with a CobraFunc registered: %+v", c)
	}
	gh := &cobra.Command{Use: "gatehouse"}
	c.CobraFunc(gh)
	var names []string
	for _, group := range gh.Commands() {
		for _, sub := range group.Commands() {
			names = append(names, group.Name()+" "+sub.Name())
		}
	}
	slices.Sort(names)
	want := []string{"sessions revoke", "user add", "user delete", "user list", "user passwd", "user set"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("subcommands = %q, want %q", names, want)
	}
	// Production hashes with the server's parameters, not the tests':
	// the defaults, or the config's password_hash settings.
	for _, tc := range []struct {
		app  *App
		want caddyauth.Argon2Params
	}{
		{new(App), caddyauth.DefaultArgon2Params},
		{&App{PasswordHash: &PasswordHashConfig{Memory: 8 << 20, Time: 2, Threads: 1}}, caddyauth.Argon2Params{Memory: 8 << 10, Time: 2, Threads: 1}},
	} {
		h, err := (cliOptions{}).hasher(tc.app)
		if err != nil {
			t.Fatal(err)
		}
		hash, err := h.Hash(t.Context(), "any-password")
		if err != nil {
			t.Fatal(err)
		}
		p := tc.want
		if want := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$", p.Memory, p.Time, p.Threads); !strings.HasPrefix(hash, want) {
			t.Errorf("default hasher made %q, want the prefix %q", hash, want)
		}
	}
	f := newFixture(t)
	out := runTree(t, gh, "", "user", "list", "--config", f.caddyfile).ok(t)
	if out != "EMAIL  ID  ACTIVE  SUPERUSER  VERIFIED  ROLES\n" {
		t.Errorf("list of an empty database = %q", out)
	}
}

// TestCommandCreatesDatabase: the first superuser can be made before the
// server ever ran; the database and its directory are created and
// migrated, and the user's attributes and password are as given.
func TestCommandCreatesDatabase(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := os.Stat(filepath.Dir(f.db)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("database directory exists before the command: %v", err)
	}
	id := f.add(t, " Admin@Example.COM ", "admin-password-1", "--superuser", "--verified", "--role", "admin", "--role", "ops", "--role", "admin")
	if _, err := os.Stat(f.db); err != nil {
		t.Fatalf("database not created: %v", err)
	}
	svc, st := f.service(t)
	u := userOf(t, st, "admin@example.com")
	if u.ID != id || u.Email != "Admin@example.com" || !u.IsActive || !u.IsSuperuser || !u.IsVerified ||
		!reflect.DeepEqual(u.Roles, []string{"admin", "ops"}) {
		t.Errorf("stored user = %+v", u)
	}
	if !strings.HasPrefix(u.HashedPassword, "$argon2id$") || strings.Contains(u.HashedPassword, "admin-password-1") {
		t.Errorf("stored hash = %q", u.HashedPassword)
	}
	login(t, svc, "admin@example.com", "admin-password-1")

	plain := f.add(t, "plain@example.com", "plain-password-1")
	p := userOf(t, st, "plain@example.com")
	if p.ID != plain || !p.IsActive || p.IsSuperuser || p.IsVerified || len(p.Roles) != 0 {
		t.Errorf("user added without flags = %+v", p)
	}
}

// TestCommandDefaultDatabase: with no gatehouse block, the database is
// the server's default, in Caddy's data directory.
func TestCommandDefaultDatabase(t *testing.T) {
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	dir := t.TempDir()
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte("http://localhost:8080 {\n\tgatehouse_endpoints\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runCLI(t, "default-password-1\n", "user", "add", "--config", caddyfile, "--email", "d@example.com").ok(t)
	if _, err := os.Stat(filepath.Join(data, "caddy", "gatehouse", "gatehouse.db")); err != nil {
		t.Fatalf("default database not created: %v", err)
	}
}

func TestCommandPasswordFromStdin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	svc, _ := f.service(t)
	for i, tc := range []struct {
		stdin, password string
	}{
		{"lf-password\n", "lf-password"},
		{"crlf-password\r\nsecond line\n", "crlf-password"},
		{"no-line-ending", "no-line-ending"},
		{"  spaces kept  \n", "  spaces kept  "},
		{"tab\tinside-it\n\n", "tab\tinside-it"},
		{"ünïcödé-pässwörd\n", "ünïcödé-pässwörd"},
	} {
		email := fmt.Sprintf("stdin%d@example.com", i)
		runCLI(t, tc.stdin, "user", "add", "--config", f.caddyfile, "--email", email).ok(t)
		login(t, svc, email, tc.password)
		if tc.password != strings.TrimSpace(tc.password) {
			if _, err := svc.Login(t.Context(), email, strings.TrimSpace(tc.password), store.TransportBearer, caddyauth.ClientInfo{}); !errors.Is(err, caddyauth.ErrBadCredentials) {
				t.Errorf("%q: the trimmed password logs in too (err %v)", tc.stdin, err)
			}
		}
	}
	if _, err := svc.Login(t.Context(), "stdin1@example.com", "crlf-password\r", store.TransportBearer, caddyauth.ClientInfo{}); !errors.Is(err, caddyauth.ErrBadCredentials) {
		t.Errorf("the CR was kept in the password (err %v)", err)
	}
}

func TestCommandUserAddErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "password_min_length 12")
	f.add(t, "taken@example.com", "taken-password-1")
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"empty stdin", "", nil, "gatehouse: no password on standard input (its first line is the password)"},
		{"empty line", "\nsecond-line-password\n", nil, "gatehouse: no password on standard input (its first line is the password)"},
		{"CRLF only", "\r\n", nil, "gatehouse: no password on standard input (its first line is the password)"},
		{"not UTF-8", "\xff\xfe-password-1\n", nil, "gatehouse: the password on standard input is not valid UTF-8"},
		{"config's minimum", "eleven-char\n", nil, "gatehouse: password refused: Password should be at least 12 characters"},
		{"too long", strings.Repeat("x", 5000) + "\n", nil, "gatehouse: password refused: Password should be at most 1024 characters"},
		{"contains email", "my new@example.com pw\n", nil, "gatehouse: password refused: Password should not contain e-mail"},
		{"email taken, other case", "another-password-1\n", []string{"--email", "TAKEN@example.com"},
			"gatehouse: a user with email TAKEN@example.com already exists"},
		{"bad email", "another-password-1\n", []string{"--email", "no-at-sign"},
			"gatehouse: invalid --email: value is not a valid email address: An email address must have an @-sign. (see 'caddy gatehouse user add --help')"},
		{"bad role", "another-password-1\n", []string{"--role", "a,b"},
			"gatehouse: invalid --role: a role is 1 to 64 letters, digits or . _ : - (see 'caddy gatehouse user add --help')"},
		{"empty role", "another-password-1\n", []string{"--role", ""},
			"gatehouse: invalid --role: a role is 1 to 64 letters, digits or . _ : - (see 'caddy gatehouse user add --help')"},
		{"config from stdin", "another-password-1\n", []string{"--config", "-"},
			"gatehouse: --config -: standard input carries the password; name a config file (see 'caddy gatehouse user add --help')"},
		{"password as argument", "", []string{"secret-password-1"},
			`gatehouse: unexpected argument "secret-password-1" (see 'caddy gatehouse user add --help')`},
		{"password flag", "", []string{"--password", "secret-password-1"},
			"gatehouse: unknown flag: --password (see 'caddy gatehouse user add --help')"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"user", "add", "--config", f.caddyfile, "--email", "new@example.com"}
			runCLI(t, tc.stdin, append(args, tc.args...)...).fails(t, tc.want)
		})
	}
	t.Run("missing email", func(t *testing.T) {
		t.Parallel()
		runCLI(t, "another-password-1\n", "user", "add", "--config", f.caddyfile).
			fails(t, "gatehouse: --email is required (see 'caddy gatehouse user add --help')")
	})
	t.Run("no user made", func(t *testing.T) {
		t.Parallel()
		out := f.run(t, "", "user", "list").ok(t)
		if strings.Count(out, "\n") != 2 || !strings.Contains(out, "taken@example.com") {
			t.Errorf("after the failures, list = %q, want only taken@example.com", out)
		}
	})
	t.Run("bad email creates no database", func(t *testing.T) {
		t.Parallel()
		g := newFixture(t)
		g.run(t, "another-password-1\n", "user", "add", "--email", "x").failsPrefix(t, "gatehouse: invalid --email: ")
		if _, err := os.Stat(g.db); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("database exists after a rejected email: %v", err)
		}
	})
}

// TestCommandConfigErrors: --config and --adapter as `caddy run` takes
// them, and each config fault on one line.
func TestCommandConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caddyfileBody := "{\n\tgatehouse {\n\t\tdatabase sqlite " + filepath.Join(dir, "gh.db") + "\n\t}\n}\n"
	oddName := write("gatehouse.conf", caddyfileBody)
	badOption := write("Caddyfile.bad", "{\n\tgatehouse {\n\t\tfrobnicate on\n\t}\n}\n")
	badJSON := write("bad.json", `{"apps":{"gatehouse":{"registration":"sometimes","database":{"path":"`+filepath.Join(dir, "x.db")+`"}}}}`)
	unknownField := write("unknown.json", `{"apps":{"gatehouse":{"frobnicate":true}}}`)
	shortSecret := write("secret.json", `{"apps":{"gatehouse":{"secret":"short","database":{"path":"`+filepath.Join(dir, "y.db")+`"}}}}`)

	for _, tc := range []struct {
		name   string
		args   []string
		want   string
		prefix bool
	}{
		{"no --config", []string{"user", "list"}, "gatehouse: --config is required (see 'caddy gatehouse user list --help')", false},
		{"missing file", []string{"user", "list", "--config", filepath.Join(dir, "nope")}, "gatehouse: reading config from file: open " + filepath.Join(dir, "nope") + ": no such file or directory", false},
		{"adapter by file name", []string{"user", "list", "--config", oddName}, "gatehouse: config is not valid JSON: ", true},
		{"unknown adapter", []string{"user", "list", "--config", oddName, "--adapter", "nope"}, "gatehouse: unrecognized config adapter: nope", false},
		{"bad option", []string{"user", "list", "--config", badOption}, "gatehouse: adapting config using caddyfile: ", true},
		{"invalid app", []string{"user", "list", "--config", badJSON}, `gatehouse: gatehouse config: registration: "sometimes" is neither open nor closed`, false},
		{"unknown field", []string{"user", "list", "--config", unknownField}, "gatehouse: reading the gatehouse app of the config: ", true},
		{"short secret", []string{"user", "list", "--config", shortSecret}, "gatehouse: gatehouse config: secret: must be at least 32 bytes, got 5", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, "", tc.args...)
			if tc.prefix {
				r.failsPrefix(t, tc.want)
			} else {
				r.fails(t, tc.want)
			}
		})
	}
	t.Run("--adapter", func(t *testing.T) {
		t.Parallel()
		runCLI(t, "adapter-password-1\n", "user", "add", "--config", oddName, "--adapter", "caddyfile", "--email", "a@example.com").ok(t)
		out := runCLI(t, "", "user", "list", "-c", oddName, "-a", "caddyfile").ok(t)
		if !strings.Contains(out, "a@example.com") {
			t.Errorf("list = %q", out)
		}
	})
	t.Run("JSON config", func(t *testing.T) {
		t.Parallel()
		cfg := write("caddy.json", `{"apps":{"gatehouse":{"database":{"driver":"sqlite","path":"`+filepath.Join(dir, "json.db")+`"}}}}`)
		runCLI(t, "", "user", "list", "--config", cfg).ok(t)
		if _, err := os.Stat(filepath.Join(dir, "json.db")); err != nil {
			t.Errorf("database named by the JSON config not created: %v", err)
		}
	})
}

func TestCommandUserList(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if out := f.run(t, "", "user", "list", "--json").ok(t); out != "[]\n" {
		t.Errorf("--json of no users = %q, want []", out)
	}
	bob := f.add(t, "bob@example.com", "bob-password-1", "--role", "editor", "--role", "ops")
	alice := f.add(t, "Alice@example.com", "alice-password-1", "--superuser", "--verified")
	f.run(t, "", "user", "set", "--email", "bob@example.com", "--inactive").ok(t)

	t.Run("table", func(t *testing.T) {
		t.Parallel()
		out := f.run(t, "", "user", "list").ok(t)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		want := [][]string{
			{"EMAIL", "ID", "ACTIVE", "SUPERUSER", "VERIFIED", "ROLES"},
			{"Alice@example.com", alice, "yes", "yes", "yes", "-"},
			{"bob@example.com", bob, "no", "no", "no", "editor,ops"},
		}
		if len(lines) != len(want) {
			t.Fatalf("list = %q, want %d lines", out, len(want))
		}
		for i, l := range lines {
			if got := strings.Fields(l); !reflect.DeepEqual(got, want[i]) {
				t.Errorf("line %d = %q, want fields %q", i, l, want[i])
			}
		}
		// Columns are aligned: every ID starts at the same offset.
		if strings.Index(lines[1], alice) != strings.Index(lines[0], "ID") || strings.Index(lines[2], bob) != strings.Index(lines[0], "ID") {
			t.Errorf("columns not aligned:\n%s", out)
		}
	})
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		out := f.run(t, "", "user", "list", "--json").ok(t)
		var raw []map[string]any
		if err := json.Unmarshal([]byte(out), &raw); err != nil {
			t.Fatalf("--json output %q: %v", out, err)
		}
		want := []map[string]any{
			{"id": alice, "email": "Alice@example.com", "is_active": true, "is_superuser": true, "is_verified": true, "full_name": nil, "roles": []any{}},
			{"id": bob, "email": "bob@example.com", "is_active": false, "is_superuser": false, "is_verified": false, "full_name": nil, "roles": []any{"editor", "ops"}},
		}
		if !reflect.DeepEqual(raw, want) {
			t.Errorf("--json = %s\nwant %v", out, want)
		}
		if strings.Contains(out, "argon2") || strings.Contains(out, "password") {
			t.Errorf("--json leaks a password hash: %s", out)
		}
	})
	t.Run("arguments", func(t *testing.T) {
		t.Parallel()
		f.run(t, "", "user", "list", "bob@example.com").
			fails(t, `gatehouse: unexpected argument "bob@example.com" (see 'caddy gatehouse user list --help')`)
		f.run(t, "", "user", "list", "--json=maybe").
			failsPrefix(t, `gatehouse: invalid argument "maybe" for "--json" flag: `)
	})
}

func TestCommandUserSet(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.add(t, "carol@example.com", "carol-password-1")
	svc, st := f.service(t)

	steps := []struct {
		args  []string
		check func(*store.User) bool
	}{
		{[]string{"--superuser", "--role", "a", "--role", "b"}, func(u *store.User) bool {
			return u.IsSuperuser && reflect.DeepEqual(u.Roles, []string{"a", "b"})
		}},
		// --role replaces the list, it does not add to it.
		{[]string{"--role", "c"}, func(u *store.User) bool { return u.IsSuperuser && reflect.DeepEqual(u.Roles, []string{"c"}) }},
		{[]string{"--no-roles"}, func(u *store.User) bool { return len(u.Roles) == 0 }},
		{[]string{"--no-superuser", "--verified"}, func(u *store.User) bool { return !u.IsSuperuser && u.IsVerified }},
		{[]string{"--unverified"}, func(u *store.User) bool { return !u.IsVerified }},
	}
	for _, s := range steps {
		// Lookups ignore case.
		out := f.run(t, "", append([]string{"user", "set", "--email", "CAROL@example.com"}, s.args...)...).ok(t)
		if out != "" {
			t.Errorf("set %q printed %q", s.args, out)
		}
		if u := userOf(t, st, "carol@example.com"); !s.check(u) {
			t.Fatalf("after set %q: %+v", s.args, u)
		}
	}

	t.Run("inactive ends sessions", func(t *testing.T) {
		token := login(t, svc, "carol@example.com", "carol-password-1")
		login(t, svc, "carol@example.com", "carol-password-1")
		f.wantAccepted(t, token)
		f.run(t, "", "user", "set", "--email", "carol@example.com", "--inactive").ok(t)
		if n := sessionCount(t, st, id); n != 0 {
			t.Errorf("%d sessions left after --inactive", n)
		}
		f.wantRefused(t, token)
		if _, err := svc.Login(t.Context(), "carol@example.com", "carol-password-1", store.TransportBearer, caddyauth.ClientInfo{}); !errors.Is(err, caddyauth.ErrBadCredentials) {
			t.Errorf("inactive user's login: err = %v, want ErrBadCredentials", err)
		}
		f.run(t, "", "user", "set", "--email", "carol@example.com", "--active").ok(t)
		login(t, svc, "carol@example.com", "carol-password-1")
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--email", "nobody@example.com", "--inactive"}, "gatehouse: no user with email nobody@example.com"},
			{[]string{"--inactive"}, "gatehouse: --email is required (see 'caddy gatehouse user set --help')"},
			{[]string{"--email", "carol@example.com"}, "gatehouse: nothing to change: give --active, --inactive, --superuser, --no-superuser, --verified, --unverified, --role or --no-roles (see 'caddy gatehouse user set --help')"},
			{[]string{"--email", "carol@example.com", "--active", "--inactive"}, "gatehouse: --active and --inactive exclude each other (see 'caddy gatehouse user set --help')"},
			{[]string{"--email", "carol@example.com", "--superuser", "--no-superuser"}, "gatehouse: --superuser and --no-superuser exclude each other (see 'caddy gatehouse user set --help')"},
			{[]string{"--email", "carol@example.com", "--verified", "--unverified"}, "gatehouse: --verified and --unverified exclude each other (see 'caddy gatehouse user set --help')"},
			{[]string{"--email", "carol@example.com", "--role", "x", "--no-roles"}, "gatehouse: --role and --no-roles exclude each other (see 'caddy gatehouse user set --help')"},
			{[]string{"--email", "carol@example.com", "--role", ""}, "gatehouse: invalid --role: a role is 1 to 64 letters, digits or . _ : - (see 'caddy gatehouse user set --help')"},
		} {
			f.run(t, "", append([]string{"user", "set"}, tc.args...)...).fails(t, tc.want)
		}
		runCLI(t, "", "user", "set", "--config", f.caddyfile, "--email", "carol@example.com", "--role").
			fails(t, "gatehouse: flag needs an argument: --role (see 'caddy gatehouse user set --help')")
		if u := userOf(t, st, "carol@example.com"); !u.IsActive || u.IsSuperuser || len(u.Roles) != 0 {
			t.Errorf("a failed set changed the user: %+v", u)
		}
	})
}

func TestCommandUserPasswd(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.add(t, "dave@example.com", "old-password-1")
	svc, st := f.service(t)
	token := login(t, svc, "dave@example.com", "old-password-1")
	login(t, svc, "dave@example.com", "old-password-1")
	f.wantAccepted(t, token)

	f.run(t, "short\n", "user", "passwd", "--email", "dave@example.com").
		fails(t, "gatehouse: password refused: Password should be at least 8 characters")
	f.run(t, "", "user", "passwd", "--email", "dave@example.com").
		fails(t, "gatehouse: no password on standard input (its first line is the password)")
	f.run(t, "new-password-1\n", "user", "passwd", "--email", "nobody@example.com").
		fails(t, "gatehouse: no user with email nobody@example.com")
	if n := sessionCount(t, st, id); n != 2 {
		t.Fatalf("failed passwd left %d sessions, want the 2 untouched", n)
	}
	login(t, svc, "dave@example.com", "old-password-1")

	if out := f.run(t, "new-password-1\r\n", "user", "passwd", "--email", "Dave@Example.com").ok(t); out != "" {
		t.Errorf("passwd printed %q", out)
	}
	if n := sessionCount(t, st, id); n != 0 {
		t.Errorf("%d sessions left after passwd, want 0", n)
	}
	f.wantRefused(t, token)
	if _, err := svc.Login(t.Context(), "dave@example.com", "old-password-1", store.TransportBearer, caddyauth.ClientInfo{}); !errors.Is(err, caddyauth.ErrBadCredentials) {
		t.Errorf("old password: err = %v, want ErrBadCredentials", err)
	}
	login(t, svc, "dave@example.com", "new-password-1")
}

func TestCommandUserDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.add(t, "erin@example.com", "erin-password-1")
	keep := f.add(t, "frank@example.com", "frank-password-1")
	svc, st := f.service(t)
	token := login(t, svc, "erin@example.com", "erin-password-1")

	if out := f.run(t, "", "user", "delete", "--email", "ERIN@example.com").ok(t); out != "" {
		t.Errorf("delete printed %q", out)
	}
	if _, err := st.UserByID(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted user still there: %v", err)
	}
	if n := sessionCount(t, st, id); n != 0 {
		t.Errorf("%d sessions of the deleted user left", n)
	}
	f.wantRefused(t, token)
	if u := userOf(t, st, "frank@example.com"); u.ID != keep {
		t.Errorf("the other user changed: %+v", u)
	}
	f.run(t, "", "user", "delete", "--email", "erin@example.com").fails(t, "gatehouse: no user with email erin@example.com")
	f.run(t, "", "user", "delete").fails(t, "gatehouse: --email is required (see 'caddy gatehouse user delete --help')")
}

func TestCommandSessionsRevoke(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.add(t, "gina@example.com", "gina-password-1")
	other := f.add(t, "hal@example.com", "hal-password-1")
	svc, st := f.service(t)
	t1 := login(t, svc, "gina@example.com", "gina-password-1")
	login(t, svc, "gina@example.com", "gina-password-1")
	otherToken := login(t, svc, "hal@example.com", "hal-password-1")
	f.wantAccepted(t, t1)

	if out := f.run(t, "", "sessions", "revoke", "--email", "gina@example.com").ok(t); out != "2 sessions ended\n" {
		t.Errorf("revoke printed %q, want %q", out, "2 sessions ended\n")
	}
	if n := sessionCount(t, st, id); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	f.wantRefused(t, t1)
	if n := sessionCount(t, st, other); n != 1 {
		t.Errorf("the other user has %d sessions, want 1", n)
	}
	f.wantAccepted(t, otherToken)
	// The account stays: the user logs in again.
	login(t, svc, "gina@example.com", "gina-password-1")
	if out := f.run(t, "", "sessions", "revoke", "--email", "gina@example.com").ok(t); out != "1 session ended\n" {
		t.Errorf("revoke printed %q", out)
	}
	if out := f.run(t, "", "sessions", "revoke", "--email", "gina@example.com").ok(t); out != "0 sessions ended\n" {
		t.Errorf("revoke printed %q", out)
	}
	f.run(t, "", "sessions", "revoke", "--email", "x@y").fails(t, "gatehouse: no user with email x@y")
}

// TestCommandUsage: the command groups and flag errors fail (never the
// help with status 0), each on one line.
func TestCommandUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "gatehouse: missing subcommand (see 'caddy gatehouse --help')"},
		{[]string{"frob"}, `gatehouse: unknown subcommand "frob" (see 'caddy gatehouse --help')`},
		{[]string{"user"}, "gatehouse: missing subcommand (see 'caddy gatehouse user --help')"},
		{[]string{"user", "frob"}, `gatehouse: unknown subcommand "frob" (see 'caddy gatehouse user --help')`},
		{[]string{"sessions"}, "gatehouse: missing subcommand (see 'caddy gatehouse sessions --help')"},
		{[]string{"sessions", "list"}, `gatehouse: unknown subcommand "list" (see 'caddy gatehouse sessions --help')`},
		{[]string{"user", "--email", "x"}, "gatehouse: unknown flag: --email (see 'caddy gatehouse user --help')"},
		{[]string{"user", "add", "-x"}, "gatehouse: unknown shorthand flag: 'x' in -x (see 'caddy gatehouse user add --help')"},
		{[]string{"user", "add", "--config"}, "gatehouse: flag needs an argument: --config (see 'caddy gatehouse user add --help')"},
		{[]string{"user", "passwd", "--config", "-", "--email", "a@b"}, "gatehouse: --config -: standard input carries the password; name a config file (see 'caddy gatehouse user passwd --help')"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			runCLI(t, "", tc.args...).fails(t, tc.want)
		})
	}
	t.Run("control characters in input", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.run(t, "", "user", "delete", "--email", "a@b\nforged line\x1b[2J").
			fails(t, "gatehouse: no user with email a@b forged line [2J")
	})
}

func TestCommandHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--help"},
		{"user", "add", "--help"},
		{"user", "passwd", "--help"},
	} {
		out := runCLI(t, "", args...).ok(t)
		if !strings.Contains(out, "standard input") {
			t.Errorf("%q help does not say the password is read from standard input:\n%s", args, out)
		}
	}
	out := runCLI(t, "", "user", "set", "--help").ok(t)
	for _, want := range []string{"--role", "replaces", "--no-roles", "--inactive", caddyauth.MaxStaleness.String()} {
		if !strings.Contains(out, want) {
			t.Errorf("user set help lacks %q:\n%s", want, out)
		}
	}
}

// TestCommandClosesStore: the command closes the database when it is
// done. SQLite removes the WAL file when its last connection closes, so a
// store left open would leave gh.db-wal behind.
func TestCommandClosesStore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.add(t, "ivy@example.com", "ivy-password-1")
	f.run(t, "", "sessions", "revoke", "--email", "ivy@example.com").ok(t)
	if _, err := os.Stat(f.db + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s-wal still exists (err %v): the store was not closed", f.db, err)
	}
}
