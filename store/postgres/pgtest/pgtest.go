package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Role is the login role NewDatabase's databases belong to: not a
// superuser, as a production Gatehouse would connect.
const Role = "gatehouse"

// startTimeout bounds initdb, and a start of the server until it answers.
const startTimeout = 60 * time.Second

// stopTimeout bounds a fast shutdown before the server is killed.
const stopTimeout = 30 * time.Second

// ErrNotInstalled: no PostgreSQL server binaries were found.
var ErrNotInstalled = errors.New("postgresql not installed")

// Options change how New runs its server. The zero value is what the
// tests get (Start, Shared).
type Options struct {
	// Durable keeps PostgreSQL's default durability: fsync,
	// synchronous_commit and full_page_writes on, so that a commit waits
	// for the disk as in production. Off, commits return without
	// waiting, which suits throwaway test data but would make writes look
	// cheaper than they are to a benchmark.
	Durable bool
}

// Cluster is one throwaway PostgreSQL server.
type Cluster struct {
	opts     Options
	bin      string       // directory of initdb and postgres
	dir      string       // owned by the server's user: data/, the socket, the log
	port     int          // on 127.0.0.1, kept across Stop and Start
	password string       // Role's
	cred     *credential  // the postgres user's, when running as root
	dbs      atomic.Int64 // databases made, for their names

	mu   sync.Mutex
	proc *process // the running server, or nil
}

// process is one run of the server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	err  error         // cmd's exit status, set before done is closed
}

// Start returns a new running cluster, stopped and removed when the test
// ends. Without PostgreSQL the test is skipped, or fails when CI=true.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := New(Options{})
	if err != nil {
		notInstalled(tb, err)
		tb.Fatalf("starting a PostgreSQL cluster: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("postgres log (%s), last lines:\n%s", c.logPath(), c.logTail(40))
		}
		if err := c.remove(); err != nil {
			tb.Errorf("removing the PostgreSQL cluster: %v", err)
		}
	})
	return c
}

// shared is the cluster of Shared.
var shared struct {
	mu  sync.Mutex
	c   *Cluster
	err error
}

// Shared returns the test binary's shared cluster, starting it on first
// use. Tests that stop the server must use their own (Start). Call
// StopShared from TestMain after m.Run.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c == nil && shared.err == nil {
		shared.c, shared.err = New(Options{})
	}
	if shared.err != nil {
		notInstalled(tb, shared.err)
		tb.Fatalf("starting the shared PostgreSQL cluster: %v", shared.err)
	}
	return shared.c
}

// StopShared stops and removes the shared cluster, if it was started.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c != nil {
		if err := shared.c.remove(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: removing the shared cluster: %v\n", err)
		}
		shared.c = nil
	}
}

// notInstalled skips the test when err is ErrNotInstalled, or fails it
// when CI=true: CI must run these tests, never skip them.
func notInstalled(tb testing.TB, err error) {
	tb.Helper()
	if !errors.Is(err, ErrNotInstalled) {
		return
	}
	msg := fmt.Sprintf("%v: run scripts/test.sh, or apt-get install postgresql, or set PG_BIN", err)
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

// findBin returns the directory of initdb and postgres: $PG_BIN if set,
// else the newest /usr/lib/postgresql/<version>/bin (Debian's layout).
func findBin() (string, error) {
	var candidates []string
	if dir := os.Getenv("PG_BIN"); dir != "" {
		candidates = []string{dir}
	} else {
		found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		version := func(dir string) int {
			v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
			return v
		}
		slices.SortFunc(found, func(a, b string) int { return version(b) - version(a) })
		candidates = found
	}
	for _, dir := range candidates {
		if executable(filepath.Join(dir, "initdb")) && executable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	if len(candidates) == 0 {
		return "", fmt.Errorf("%w (no /usr/lib/postgresql/*/bin)", ErrNotInstalled)
	}
	return "", fmt.Errorf("%w (no initdb and postgres in %s)", ErrNotInstalled, strings.Join(candidates, ", "))
}

func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// New makes and starts a cluster outside of a test, for a program such as
// the benchmark harness; the caller must Close it. Without PostgreSQL the
// error is ErrNotInstalled. Should this process die without closing it,
// the kernel kills the server (see setProcAttrs), but its directory under
// the temporary directory stays.
func New(opts Options) (_ *Cluster, err error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, bin: bin}
	if os.Geteuid() == 0 {
		if c.cred, err = postgresUser(); err != nil {
			return nil, err
		}
	}
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		return nil, err
	}
	c.password = hex.EncodeToString(pw)
	if c.port, err = freePort(); err != nil {
		return nil, err
	}

	// Not t.TempDir(): its parents are private to the test's user, and the
	// server's user must reach this directory.
	c.dir, err = os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.remove())
		}
	}()
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return nil, fmt.Errorf("handing %s to the postgres user: %w", c.dir, err)
		}
	}
	if err := c.initdb(); err != nil {
		return nil, err
	}
	if err := c.start(); err != nil {
		return nil, err
	}
	if err := c.createRole(); err != nil {
		return nil, err
	}
	return c, nil
}

// postgresUser returns the credentials of the postgres system user.
func postgresUser() (*credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs the postgres user (made by Debian's package): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) logPath() string { return filepath.Join(c.dir, "postgres.log") }

// command returns a command running bin's program as the server's user,
// in c.dir, with a clean environment.
func (c *Cluster) command(program string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, program), args...)
	cmd.Dir = c.dir
	// No PG* variables of the caller's; messages in English.
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8", "TZ=UTC"}
	setProcAttrs(cmd, c.cred)
	return cmd
}

// initdb makes the data directory. Local (socket) connections are trusted:
// the socket is in c.dir, which only the server's user (and root) can
// enter. TCP connections need a password, as they would in production. The
// default collation is ICU's en-US, linguistic like most production
// databases, so that a query that relies on byte order without asking for
// it shows up in the tests.
func (c *Cluster) initdb() error {
	cmd := c.command("initdb",
		"--pgdata", c.dataDir(),
		"--username", "postgres",
		"--auth-local", "trust",
		"--auth-host", "scram-sha-256",
		"--encoding", "UTF8",
		"--locale", "C.UTF-8",
		"--locale-provider", "icu",
		"--icu-locale", "en-US",
		"--no-sync", // a throwaway cluster: no fsync
	)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	out, err := runContext(ctx, cmd)
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// runContext runs cmd, killing it when ctx is done, and returns its
// combined output.
func runContext(ctx context.Context, cmd *exec.Cmd) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return out.Bytes(), ctx.Err()
	}
}

// Close stops the server and removes its directory, databases included.
// Calling it again does nothing.
func (c *Cluster) Close() error { return c.remove() }

// Addr returns the server's TCP address, 127.0.0.1:port.
func (c *Cluster) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// Password returns the password of Role.
func (c *Cluster) Password() string { return c.password }

// Start starts the server again after Stop, on the same port with the same
// databases, and waits until it accepts connections.
func (c *Cluster) Start(tb testing.TB) {
	tb.Helper()
	if err := c.start(); err != nil {
		tb.Fatalf("starting postgres: %v\n%s", err, c.logTail(40))
	}
}

// Stop stops the server with a fast shutdown: open sessions are ended,
// their transactions rolled back, and no new connection is accepted until
// Start.
func (c *Cluster) Stop(tb testing.TB) {
	tb.Helper()
	if err := c.stop(); err != nil {
		tb.Fatalf("stopping postgres: %v", err)
	}
}

// start starts postgres if it is not running and waits until it answers.
func (c *Cluster) start() error {
	c.mu.Lock()
	if c.proc != nil {
		c.mu.Unlock()
		return nil
	}
	logf, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	defer logf.Close() // the child has its own copy
	fmt.Fprintf(logf, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	// Run in the foreground, not through pg_ctl, so that this process is
	// its parent: the kernel kills it if the test binary dies (Pdeathsig),
	// and the backends notice their postmaster is gone and exit.
	cmd := c.command("postgres", c.serverArgs()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("starting postgres: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	c.proc = p
	c.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.adminDSN("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-p.done:
			c.mu.Lock()
			if c.proc == p {
				c.proc = nil
			}
			c.mu.Unlock()
			return fmt.Errorf("postgres exited at start (%v): see %s", p.err, c.logPath())
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("postgres did not answer within %v: %w", startTimeout, err), c.stop())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// serverArgs are the arguments of postgres.
func (c *Cluster) serverArgs() []string {
	args := []string{
		"-D", c.dataDir(),
		"-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + c.dir,
		"-c", "max_connections=200",
	}
	if !c.opts.Durable {
		// Throwaway data: durability buys nothing here, and costs time.
		args = append(args,
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
		)
	}
	return args
}

// stop asks the server for a fast shutdown (SIGINT) and waits for it,
// killing it after stopTimeout.
func (c *Cluster) stop() error {
	c.mu.Lock()
	p := c.proc
	c.proc = nil
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("postgres did not stop within %v: killed", stopTimeout)
	}
}

// remove stops the server and deletes its directory.
func (c *Cluster) remove() error {
	err := c.stop()
	if c.dir != "" {
		err = errors.Join(err, os.RemoveAll(c.dir))
	}
	return err
}

// adminDSN is the superuser's DSN over the Unix socket, to database db.
func (c *Cluster) adminDSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable connect_timeout=5", c.dir, c.port, db)
}

// admin runs statements as the superuser.
func (c *Cluster) admin(ctx context.Context, stmts ...string) error {
	conn, err := pgx.Connect(ctx, c.adminDSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return nil
}

// createRole creates Role with its password.
func (c *Cluster) createRole() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	// The password is hex, safe to quote as a literal.
	return c.admin(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'`, Role, c.password))
}

// NewDatabase creates an empty database owned by Role and returns its DSN
// (a postgres:// URL over TCP, with Role's password). The database is
// dropped when the test ends, after the cleanups registered later (such as
// closing a store on it) have run.
func (c *Cluster) NewDatabase(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	name, err := c.createDatabase(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("postgres log (%s), last lines:\n%s", c.logPath(), c.logTail(40))
		}
		c.mu.Lock()
		running := c.proc != nil
		c.mu.Unlock()
		if !running {
			return // removed with the cluster
		}
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		// FORCE ends sessions a test left open, so the drop cannot fail on them.
		if err := c.admin(ctx, fmt.Sprintf(`DROP DATABASE %s WITH (FORCE)`, name)); err != nil {
			tb.Errorf("dropping database %s: %v", name, err)
		}
	})
	return c.DSN(name)
}

// CreateDatabase creates an empty database owned by Role and returns its
// DSN, as NewDatabase does; it stays until the cluster is closed.
func (c *Cluster) CreateDatabase(ctx context.Context) (string, error) {
	name, err := c.createDatabase(ctx)
	if err != nil {
		return "", err
	}
	return c.DSN(name), nil
}

// createDatabase creates an empty database owned by Role, with a name
// unused in the cluster, and returns the name.
func (c *Cluster) createDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("gatehouse_%d", c.dbs.Add(1))
	if err := c.admin(ctx, fmt.Sprintf(`CREATE DATABASE %s OWNER %s`, name, Role)); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	return name, nil
}

// ServerVersion returns the server's version, as SHOW server_version
// gives it ("15.14 (Debian 15.14-0+deb12u1)").
func (c *Cluster) ServerVersion(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, c.adminDSN("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "", err
	}
	return v, nil
}

// DSN returns the URL that connects Role to database db over TCP.
func (c *Cluster) DSN(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(Role, c.password),
		Host:     c.Addr(),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// logTail returns the last n lines of the server's log.
func (c *Cluster) logTail(n int) string {
	b, err := os.ReadFile(c.logPath())
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
