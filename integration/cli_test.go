package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The `caddy gatehouse` command line (DESIGN §2a), run as a user runs it:
// the real binary, in the server's directory and environment, against the
// database of the server's Caddyfile while the server runs.

// cliOutcome is what one run of the command gave.
type cliOutcome struct {
	args           []string
	stdout, stderr string
	code           int
}

// runCaddyCmd runs cmd with stdin as its standard input, killing it if it
// takes more than 30 s.
func runCaddyCmd(t testing.TB, cmd *exec.Cmd, stdin string) cliOutcome {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", cmd.Args, err)
	}
	timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	out := cliOutcome{args: cmd.Args[1:], stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		out.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %v: %v", cmd.Args, err)
	}
	return out
}

// gatehouseCLI runs `caddy gatehouse args... --config <c's config file>`
// next to the running server c.
func gatehouseCLI(t testing.TB, c *caddyProc, stdin string, args ...string) cliOutcome {
	t.Helper()
	full := append(append([]string{"gatehouse"}, args...), "--config", c.ConfigName)
	return runCaddyCmd(t, c.Cmd(full...), stdin)
}

// ok fails the test unless the command exited 0 with nothing on standard
// error (no Caddy log lines either); it returns standard output.
func (o cliOutcome) ok(t testing.TB) string {
	t.Helper()
	if o.code != 0 || o.stderr != "" {
		t.Fatalf("caddy %q: exit %d, stderr %q, stdout %q; want success and an empty stderr", o.args, o.code, o.stderr, o.stdout)
	}
	return o.stdout
}

// fails fails the test unless the command exited non-zero with exactly
// want as its one line on standard error and nothing on standard output.
func (o cliOutcome) fails(t testing.TB, want string) {
	t.Helper()
	if o.code == 0 || o.stderr != want+"\n" || o.stdout != "" {
		t.Fatalf("caddy %q: exit %d, stderr %q, stdout %q; want a non-zero exit and exactly %q on stderr", o.args, o.code, o.stderr, o.stdout, want+"\n")
	}
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// cliAddUser runs `user add` with the password on standard input and
// returns the id it printed.
func cliAddUser(t testing.TB, run func(stdin string, args ...string) cliOutcome, email, password string, flags ...string) string {
	t.Helper()
	out := run(password+"\n", append([]string{"user", "add", "--email", email}, flags...)...).ok(t)
	id := strings.TrimSuffix(out, "\n")
	if !uuidRe.MatchString(id) {
		t.Fatalf("user add printed %q, want the new user's id", out)
	}
	return id
}

// cliConfig is a Caddyfile with the database in the working directory and
// one guarded site on 127.0.0.1:port in front of up.
func cliConfig(port int, up *upstream, globalExtra string) string {
	return fmt.Sprintf(`{
	admin off
	gatehouse {
		database sqlite ./gatehouse.db
		%s
	}
}

http://127.0.0.1:%d {
	gatehouse_endpoints
	gatehouse_guard
	reverse_proxy %s
}
`, globalExtra, port, up.Addr)
}

// waitRefused polls a guarded path with the credential, which works now,
// until the server answers 401, and fails if that takes longer than the
// staleness bound of DESIGN §4 (plus 2 s of slack).
func waitRefused(t testing.TB, cl *client, path string, cred reqOpt) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(maxStaleness + 2*time.Second)
	for {
		r := cl.get(t, path, cred)
		switch r.Status {
		case http.StatusUnauthorized:
			wantDetail(t, r, http.StatusUnauthorized, "Unauthorized")
			t.Logf("%s refused after %v", path, time.Since(start).Round(time.Millisecond))
			return
		case http.StatusOK:
		default:
			t.Fatalf("GET %s while waiting for 401: %s", path, r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s still 200 after %v; want 401 within %v", path, time.Since(start), maxStaleness)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// loginRefused fails unless a JWT login with the password is refused as
// bad credentials.
func loginRefused(t testing.TB, cl *client, email, password string) {
	t.Helper()
	r := cl.postForm(t, "/auth/jwt/login", url.Values{"username": {email}, "password": {password}})
	wantDetail(t, r, http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
}

// TestCLIWhileServing drives every subcommand against the database of a
// running server and checks, over HTTP, that the server sees each change:
// at once where it reads the store, within the staleness bound where it
// caches a session.
func TestCLIWhileServing(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	c := startCaddy(t, cliConfig(freePort(t), up, ""))
	cl := newClient(c.URL)
	run := func(stdin string, args ...string) cliOutcome { return gatehouseCLI(t, c, stdin, args...) }

	const (
		adminEmail, adminPassword = "admin@example.com", "admin-password-1"
		bobEmail, bobPassword     = "bob@example.com", "bob-password-1"
	)
	bob := register(t, cl, bobEmail, bobPassword)

	// user add: a superuser made from the command line can administer.
	adminID := cliAddUser(t, run, adminEmail, adminPassword, "--superuser", "--verified", "--role", "admin")
	admin := bearer(loginJWT(t, cl, adminEmail, adminPassword))
	if u := me(t, cl, admin); u.ID != adminID || !u.IsSuperuser || !u.IsVerified || !reflect.DeepEqual(u.Roles, []string{"admin"}) {
		t.Fatalf("GET /users/me of the added superuser = %+v", u)
	}
	r := cl.get(t, "/users/"+bob.ID, admin)
	wantStatus(t, r, http.StatusOK)
	var apiBob map[string]any
	decode(t, r, &apiBob)
	if apiBob["email"] != bobEmail {
		t.Fatalf("GET /users/{bob} = %s", r.Body)
	}

	// user list --json: the API's user objects.
	var listed []map[string]any
	if err := json.Unmarshal([]byte(run("", "user", "list", "--json").ok(t)), &listed); err != nil {
		t.Fatalf("user list --json: %v", err)
	}
	if len(listed) != 2 || listed[0]["id"] != adminID || listed[0]["is_superuser"] != true {
		t.Fatalf("user list --json = %v", listed)
	}
	if !reflect.DeepEqual(listed[1], apiBob) {
		t.Errorf("user list --json gives bob as %v, the API as %v", listed[1], apiBob)
	}
	if out := run("", "user", "list").ok(t); !strings.Contains(out, adminID) || !strings.Contains(out, bob.ID) {
		t.Errorf("user list = %q", out)
	}

	app := uniquePath("/app")

	// user set --inactive: bob's live token is refused within the bound,
	// and he cannot log in; --active lets him back.
	bobToken := bearer(loginJWT(t, cl, bobEmail, bobPassword))
	wantStatus(t, cl.get(t, app, bobToken), http.StatusOK) // now cached by the guard
	run("", "user", "set", "--email", bobEmail, "--inactive").ok(t)
	waitRefused(t, cl, app, bobToken)
	loginRefused(t, cl, bobEmail, bobPassword)
	run("", "user", "set", "--email", bobEmail, "--active").ok(t)

	// sessions revoke: logged out everywhere, the account stays.
	bobToken = bearer(loginJWT(t, cl, bobEmail, bobPassword))
	bobCookie := withCookie(loginCookie(t, cl, bobEmail, bobPassword))
	wantStatus(t, cl.get(t, app, bobToken), http.StatusOK)
	wantStatus(t, cl.get(t, app, bobCookie), http.StatusOK)
	if out := run("", "sessions", "revoke", "--email", bobEmail).ok(t); out != "2 sessions ended\n" {
		t.Errorf("sessions revoke printed %q, want %q", out, "2 sessions ended\n")
	}
	waitRefused(t, cl, app, bobToken)
	waitRefused(t, cl, app, bobCookie)
	wantStatus(t, cl.get(t, app, admin), http.StatusOK) // others untouched

	// user passwd: the old password is refused, the new one works, and
	// sessions opened with the old one end.
	bobToken = bearer(loginJWT(t, cl, bobEmail, bobPassword))
	wantStatus(t, cl.get(t, app, bobToken), http.StatusOK)
	run("bob-new-password-2\r\n", "user", "passwd", "--email", bobEmail).ok(t)
	loginRefused(t, cl, bobEmail, bobPassword)
	waitRefused(t, cl, app, bobToken)
	bobToken = bearer(loginJWT(t, cl, bobEmail, "bob-new-password-2"))
	wantStatus(t, cl.get(t, app, bobToken), http.StatusOK)

	// Failures: one line on stderr, non-zero exit, nothing changed.
	run("short\n", "user", "passwd", "--email", bobEmail).fails(t, "gatehouse: password refused: Password should be at least 8 characters")
	run("", "user", "passwd", "--email", bobEmail).fails(t, "gatehouse: no password on standard input (its first line is the password)")
	run("another-password-3\n", "user", "add", "--email", "BOB@example.com").fails(t, "gatehouse: a user with email BOB@example.com already exists")
	run("", "user", "set", "--email", "nobody@example.com", "--inactive").fails(t, "gatehouse: no user with email nobody@example.com")
	runCaddyCmd(t, c.Cmd("gatehouse", "user", "frob"), "").fails(t, `gatehouse: unknown subcommand "frob" (see 'caddy gatehouse user --help')`)
	run("", "user", "add", "--email", "x@example.com", "--password", "x").fails(t, "gatehouse: unknown flag: --password (see 'caddy gatehouse user add --help')")
	wantStatus(t, cl.get(t, app, bobToken), http.StatusOK)

	// user delete: gone for the API at once, its token refused within the
	// bound.
	run("", "user", "delete", "--email", bobEmail).ok(t)
	wantDetail(t, cl.get(t, "/users/"+bob.ID, admin), http.StatusNotFound, "Not Found")
	waitRefused(t, cl, app, bobToken)
	loginRefused(t, cl, bobEmail, "bob-new-password-2")
	run("", "user", "delete", "--email", bobEmail).fails(t, "gatehouse: no user with email bob@example.com")
	listed = nil
	if err := json.Unmarshal([]byte(run("", "user", "list", "--json").ok(t)), &listed); err != nil || len(listed) != 1 || listed[0]["id"] != adminID {
		t.Errorf("user list --json after delete = %v (%v)", listed, err)
	}

	if c.Exited() {
		t.Fatal("the server exited while the command line used its database")
	}
}

// TestCLIBeforeFirstStart: the first superuser is made before the server
// ever ran (the database does not exist yet), on a site whose registration
// is closed; the server then starts on that database and the superuser
// logs in.
func TestCLIBeforeFirstStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	up := startUpstream(t)
	cfg := cliConfig(freePort(t), up, "registration closed")
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(stdin string, args ...string) cliOutcome {
		cmd := exec.Command(caddyBin, append(append([]string{"gatehouse"}, args...), "--config", "Caddyfile")...)
		cmd.Dir, cmd.Env = dir, caddyEnv(dir)
		return runCaddyCmd(t, cmd, stdin)
	}
	id := cliAddUser(t, run, "root@example.com", "root-password-1", "--superuser")
	if _, err := os.Stat(filepath.Join(dir, "gatehouse.db")); err != nil {
		t.Fatalf("database not created by user add: %v", err)
	}

	c := startCaddy(t, cfg, withDir(dir))
	cl := newClient(c.URL)
	token := bearer(loginJWT(t, cl, "root@example.com", "root-password-1"))
	if u := me(t, cl, token); u.ID != id || !u.IsSuperuser || !u.IsActive {
		t.Fatalf("GET /users/me = %+v", u)
	}
	up2 := uniquePath("/app")
	wantStatus(t, cl.get(t, up2, token), http.StatusOK)
	if got := up.Last(t, up2).Values("Remote-User"); !reflect.DeepEqual(got, []string{"root@example.com"}) {
		t.Errorf("upstream Remote-User = %q", got)
	}
}
