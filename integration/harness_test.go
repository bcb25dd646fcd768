package integration

// The harness: build the binary once, start upstreams and caddy processes,
// talk to them. Every test file of the package uses these helpers.
//
// Summary of the API:
//
//	caddyBin                        path of the caddy binary built by TestMain
//	repoRoot                        the repository root (where go.mod is)
//	freePort(t) int                 a free TCP port on 127.0.0.1
//	startUpstream(t) *upstream      a recording HTTP server on 127.0.0.1
//	startCaddy(t, cfg, opts...)     `caddy run --config Caddyfile` in a fresh dir
//	  options: withConfigName, withReadyURL, withDir
//	prepareCaddy(t, cfg, opts...)   the same, not started yet (then .Start())
//	  (*caddyProc).Dir / .LogPath / .Log() / .URL / .Path(name) / .Exited()
//	  (*caddyProc).Start() / .Stop() / .Restart() / .WriteConfig(cfg)
//	  (*caddyProc).Cmd(args...) *exec.Cmd   another subcommand, same dir/env
//	  (*caddyProc).Run(t, stdin, args...)   the same, run: stdout, stderr, exit code
//	newClient(base) *client         HTTP client, no redirects, optional jar
//	  (*client).do / get / postJSON / patchJSON / postForm / postMultipart
//	register / loginJWT / loginCookie / me            account helpers
//	wantStatus / wantDetail / want422Loc / decode     assertions
//	rawRequest(t, addr, raw)        send bytes exactly as written
//	dbExec(t, path, query, args...) change the SQLite database directly
//	makeSuperuser(t, dbPath, id)    built on dbExec

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // driver "sqlite", for dbExec

	"github.com/gatehouse-caddy/gatehouse/store/postgres/pgtest"
)

// caddyBin is the caddy binary with Gatehouse, built once by TestMain from
// ./cmd/caddy at the repository root.
var caddyBin string

// repoRoot is the repository root, the directory holding go.mod.
var repoRoot string

// TestMain builds the binary into a temporary directory, runs the tests
// and removes the directory.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := findRepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 2
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "gatehouse-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	caddyBin = filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", caddyBin, "./cmd/caddy")
	build.Dir = repoRoot
	out, err := build.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: go build ./cmd/caddy: %v\n%s", err, out)
		return 2
	}
	code := m.Run()
	// The PostgreSQL tests' shared cluster (postgres_test.go), if one
	// was started.
	pgtest.StopShared()
	return code
}

// findRepoRoot walks up from the package directory (the working directory
// of `go test`) to the directory with go.mod.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the package directory")
		}
		dir = parent
	}
}

// ---------------------------------------------------------------------------
// Ports

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that no other call in this test process has returned.
func freePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		portsMu.Lock()
		seen := portsUsed[port]
		portsUsed[port] = true
		portsMu.Unlock()
		if !seen {
			return port
		}
	}
	t.Fatal("no free port found")
	return 0
}

// ---------------------------------------------------------------------------
// Upstream

// probeHeader marks the harness's readiness probes. The upstream answers
// them but does not record them, so that "the upstream never saw X"
// assertions are not disturbed by startCaddy's polling.
const probeHeader = "X-Gatehouse-Test-Probe"

// headerLine is one header field exactly as it was on the wire.
type headerLine struct {
	Name, Value string
}

// upstreamRequest is one request the upstream received.
type upstreamRequest struct {
	Method     string
	Path       string      // URL path, decoded
	RequestURI string      // as on the request line
	Host       string      // Host header
	Header     http.Header // as net/http parsed it (canonical names, duplicates kept as values)
	Raw        []headerLine
	Body       []byte
}

// Values returns every value of every header whose name equals name when
// both are folded (case-insensitive, '_' = '.' = '-'), in wire order: what
// a CGI/PHP/WSGI application would merge into one variable.
func (r upstreamRequest) Values(name string) []string {
	var out []string
	for _, h := range r.Raw {
		if foldName(h.Name) == foldName(name) {
			out = append(out, h.Value)
		}
	}
	return out
}

// Cookies returns the cookies of the request's Cookie headers.
func (r upstreamRequest) Cookies() []*http.Cookie {
	req := http.Request{Header: r.Header}
	return req.Cookies()
}

func foldName(s string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(s))
}

// upstreamEcho is the JSON body the upstream answers with.
type upstreamEcho struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
	Raw     [][2]string         `json:"raw"`
}

// upstream is a real HTTP/1.1 server on 127.0.0.1 that records every
// request it receives, with its header lines exactly as they came over the
// wire, and answers 200 with an upstreamEcho JSON body.
type upstream struct {
	Addr string // 127.0.0.1:port, for reverse_proxy
	URL  string // http://127.0.0.1:port
	Port int

	mu   sync.Mutex
	reqs []upstreamRequest
}

// startUpstream starts an upstream for the test; it is closed on cleanup.
func startUpstream(t testing.TB) *upstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("upstream: %v", err)
	}
	u := &upstream{Addr: l.Addr().String(), Port: l.Addr().(*net.TCPAddr).Port}
	u.URL = "http://" + u.Addr
	srv := &http.Server{
		Handler:           http.HandlerFunc(u.serve),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, teeConnKey{}, c)
		},
	}
	go func() { _ = srv.Serve(&teeListener{Listener: l}) }()
	t.Cleanup(func() { _ = srv.Close() })
	return u
}

type teeConnKey struct{}

// teeListener wraps each accepted connection so that the bytes the server
// reads are kept: the handler takes the request's raw header block from
// them. Caddy's proxy does not pipeline, so at handler time the buffer
// holds exactly the current request.
type teeListener struct{ net.Listener }

func (l *teeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &teeConn{Conn: c}, nil
}

type teeConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.buf.Write(p[:n])
		c.mu.Unlock()
	}
	return n, err
}

// take returns and forgets what has been read so far.
func (c *teeConn) take() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := bytes.Clone(c.buf.Bytes())
	c.buf.Reset()
	return b
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var raw []headerLine
	if tc, ok := r.Context().Value(teeConnKey{}).(*teeConn); ok {
		raw = parseRawHeader(tc.take())
	}
	if r.Header.Get(probeHeader) == "" {
		u.mu.Lock()
		u.reqs = append(u.reqs, upstreamRequest{
			Method: r.Method, Path: r.URL.Path, RequestURI: r.RequestURI, Host: r.Host,
			Header: r.Header.Clone(), Raw: raw, Body: body,
		})
		u.mu.Unlock()
	}
	echo := upstreamEcho{Method: r.Method, Path: r.URL.Path, Headers: r.Header}
	for _, h := range raw {
		echo.Raw = append(echo.Raw, [2]string{h.Name, h.Value})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(echo)
}

// parseRawHeader returns the header lines of the first request in b,
// names as sent.
func parseRawHeader(b []byte) []headerLine {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return nil
	}
	lines := strings.Split(string(b[:end]), "\r\n")
	var out []headerLine
	for _, line := range lines[1:] { // lines[0] is the request line
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		out = append(out, headerLine{Name: name, Value: strings.TrimSpace(value)})
	}
	return out
}

// Requests returns a copy of every request recorded so far (probes
// excluded), oldest first.
func (u *upstream) Requests() []upstreamRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upstreamRequest(nil), u.reqs...)
}

// RequestsTo returns the recorded requests whose path is path.
func (u *upstream) RequestsTo(path string) []upstreamRequest {
	var out []upstreamRequest
	for _, r := range u.Requests() {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// Last returns the latest recorded request to path, failing the test if
// there is none.
func (u *upstream) Last(t testing.TB, path string) upstreamRequest {
	t.Helper()
	rs := u.RequestsTo(path)
	if len(rs) == 0 {
		t.Fatalf("upstream never received a request for %s", path)
	}
	return rs[len(rs)-1]
}

// NeverSaw fails the test if the upstream received any request whose path
// is path. Use a unique path (uniquePath) per request under test.
func (u *upstream) NeverSaw(t testing.TB, path string) {
	t.Helper()
	if rs := u.RequestsTo(path); len(rs) > 0 {
		t.Errorf("upstream received %d request(s) for %s; it must never have (first: %s %s %v)",
			len(rs), path, rs[0].Method, rs[0].RequestURI, rs[0].Raw)
	}
}

// Count returns how many requests were recorded.
func (u *upstream) Count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// uniquePath returns prefix + "/" + a random tag, so that a test can ask
// the upstream about exactly its own request.
func uniquePath(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return strings.TrimSuffix(prefix, "/") + "/" + hex.EncodeToString(b[:])
}

// ---------------------------------------------------------------------------
// Caddy processes

// caddyProc is one running `caddy run`.
type caddyProc struct {
	// Dir is the process's working directory, HOME, XDG_DATA_HOME and
	// XDG_CONFIG_HOME; the config file is written there. Relative paths in
	// configs (./gatehouse.db) resolve against it.
	Dir string
	// ConfigName is the config file's name inside Dir ("Caddyfile" unless
	// withConfigName says otherwise).
	ConfigName string
	// LogPath is the file with the process's stdout and stderr (all runs:
	// Restart appends).
	LogPath string
	// URL is the first http://127.0.0.1:<port> or http://localhost:<port>
	// site address in the config ("" if none), without a trailing slash.
	URL string

	t        testing.TB
	readyURL string
	env      []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// caddyOption configures startCaddy.
type caddyOption func(*caddyProc)

// withConfigName writes the config under another name, e.g. "caddy.json"
// for a JSON config (caddy picks the adapter from the name: a name
// starting with "Caddyfile" is a Caddyfile, a .json file is JSON).
func withConfigName(name string) caddyOption { return func(c *caddyProc) { c.ConfigName = name } }

// withReadyURL sets the URL polled until the server answers (any HTTP
// status counts). Default: URL + "/".
func withReadyURL(u string) caddyOption { return func(c *caddyProc) { c.readyURL = u } }

// withDir runs in dir instead of a fresh t.TempDir() (e.g. a second
// server on the same database directory).
func withDir(dir string) caddyOption { return func(c *caddyProc) { c.Dir = dir } }

var siteURLRe = regexp.MustCompile(`https?://(?:127\.0\.0\.1|localhost):\d+`)

// startCaddy writes cfg to Dir/Caddyfile (a fresh t.TempDir() unless
// withDir), starts `caddyBin run --config Caddyfile` there with HOME and
// the XDG directories pointing at Dir, waits until the ready URL answers,
// and stops the process on cleanup. If the test failed, the tail of the
// log is printed.
func startCaddy(t testing.TB, cfg string, opts ...caddyOption) *caddyProc {
	t.Helper()
	c := prepareCaddy(t, cfg, opts...)
	c.Start()
	return c
}

// prepareCaddy is startCaddy without the start: the directory, config
// file, environment and cleanup are set up, so that Cmd and Run work
// (e.g. `caddy gatehouse user add` before the first start); Start runs
// the server.
func prepareCaddy(t testing.TB, cfg string, opts ...caddyOption) *caddyProc {
	t.Helper()
	c := &caddyProc{t: t, ConfigName: "Caddyfile"}
	for _, o := range opts {
		o(c)
	}
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	c.LogPath = filepath.Join(t.TempDir(), "caddy.log")
	if m := siteURLRe.FindString(cfg); m != "" {
		c.URL = m
	}
	if c.readyURL == "" && c.URL != "" {
		c.readyURL = c.URL + "/"
	}
	c.env = caddyEnv(c.Dir)
	c.WriteConfig(cfg)
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("caddy log (%s), last lines:\n%s", c.LogPath, tail(c.Log(), 60))
		}
	})
	return c
}

// caddyEnv is the parent's environment with HOME and XDG_* replaced by
// dir, so nothing touches the real home.
func caddyEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || strings.HasPrefix(k, "XDG_") || strings.HasPrefix(k, "CADDY") || strings.HasPrefix(k, "GATEHOUSE") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_CACHE_HOME="+dir)
}

// WriteConfig replaces the config file (for Restart or a reload).
func (c *caddyProc) WriteConfig(cfg string) {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(c.Dir, c.ConfigName), []byte(cfg), 0o600); err != nil {
		c.t.Fatalf("writing config: %v", err)
	}
}

// Path returns name joined to Dir (e.g. c.Path("gatehouse.db")).
func (c *caddyProc) Path(name string) string { return filepath.Join(c.Dir, name) }

// Cmd returns `caddyBin args...` with the same working directory and
// environment as the server, stdout and stderr not yet set; for example
// c.Cmd("gatehouse", "user", "add", "--config", "Caddyfile", "--email", e).
func (c *caddyProc) Cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(caddyBin, args...)
	cmd.Dir = c.Dir
	cmd.Env = append([]string(nil), c.env...)
	return cmd
}

// cmdResult is the outcome of Run.
type cmdResult struct {
	Stdout, Stderr string
	ExitCode       int // -1 if the command could not be run or was killed
}

// Run runs `caddyBin args...` as Cmd does, with stdin as its standard
// input, waits at most 60 s, and returns what it wrote and its exit
// status. It fails the test only if the command cannot be started.
func (c *caddyProc) Run(t testing.TB, stdin string, args ...string) cmdResult {
	t.Helper()
	cmd := c.Cmd(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("caddy %s: %v", strings.Join(args, " "), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("caddy %s: still running after 60s, killed", strings.Join(args, " "))
	}
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	return cmdResult{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: code}
}

// Start starts `caddy run` (if it is not running) and waits until the
// ready URL answers.
func (c *caddyProc) Start() {
	c.t.Helper()
	c.mu.Lock()
	running := c.cmd != nil
	c.mu.Unlock()
	if running {
		return
	}
	logf, err := os.OpenFile(c.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatalf("opening log: %v", err)
	}
	fmt.Fprintf(logf, "=== caddy run --config %s (%s)\n", c.ConfigName, time.Now().Format(time.RFC3339Nano))
	cmd := c.Cmd("run", "--config", c.ConfigName)
	cmd.Stdout, cmd.Stderr = logf, logf
	setProcAttrs(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("starting caddy: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	c.mu.Lock()
	c.cmd, c.done, c.log = cmd, done, logf
	c.mu.Unlock()
	c.waitReady()
}

// waitReady polls the ready URL until it answers, the process exits, or
// 30 s pass.
func (c *caddyProc) waitReady() {
	c.t.Helper()
	if c.readyURL == "" {
		c.t.Fatal("startCaddy: no http://127.0.0.1:<port> site in the config; pass withReadyURL")
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-c.done:
			c.t.Fatalf("caddy exited before answering (%s):\n%s", c.cmd.ProcessState, tail(c.Log(), 60))
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, c.readyURL, nil)
		req.Header.Set(probeHeader, "1")
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("caddy did not answer %s within 30s (last error: %v):\n%s", c.readyURL, err, tail(c.Log(), 60))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop sends SIGTERM, waits up to 5 s, then kills. It is safe to call
// more than once, and is called on cleanup.
func (c *caddyProc) Stop() {
	c.mu.Lock()
	cmd, done, logf := c.cmd, c.done, c.log
	c.cmd = nil
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	stopProcess(cmd, done, logf)
}

// stopProcess ends a process the harness started: SIGTERM, then SIGKILL
// after 5 s; done is closed when it has exited. Its log file is closed.
func stopProcess(cmd *exec.Cmd, done <-chan struct{}, logf io.Closer) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	logf.Close()
}

// Restart stops the process and starts it again with the config file as
// it now is, in the same directory (same database), and waits until it
// answers.
func (c *caddyProc) Restart() {
	c.t.Helper()
	c.Stop()
	c.Start()
}

// Exited reports whether the process has ended (crashed, or stopped).
func (c *caddyProc) Exited() bool {
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Log returns everything the process wrote so far.
func (c *caddyProc) Log() string {
	b, _ := os.ReadFile(c.LogPath)
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------------------
// HTTP client

// client talks to one site. It never follows redirects, and keeps cookies
// only if made with withJar.
type client struct {
	base string
	hc   *http.Client
}

// newClient returns a client for base (e.g. caddyProc.URL).
func newClient(base string) *client {
	return &client{base: strings.TrimSuffix(base, "/"), hc: &http.Client{
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// withJar gives the client a cookie jar; it returns the client.
func (cl *client) withJar() *client {
	jar, _ := cookiejar.New(nil)
	cl.hc.Jar = jar
	return cl
}

// response is a fully read response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	resp   *http.Response
}

// Cookies returns the response's Set-Cookie cookies.
func (r *response) Cookies() []*http.Cookie { return r.resp.Cookies() }

func (r *response) String() string {
	return fmt.Sprintf("%d %s", r.Status, truncate(string(r.Body), 500))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// reqOpt changes an outgoing request.
type reqOpt func(*http.Request)

// bearer sets Authorization: Bearer token.
func bearer(token string) reqOpt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// withCookie adds a cookie.
func withCookie(c *http.Cookie) reqOpt {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value}) }
}

// header sets a header (canonical name; use rawRequest for exact spellings).
func header(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

// addHeader adds a header value.
func addHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Add(k, v) } }

// browser makes the request look like a browser navigation.
func browser() reqOpt {
	return header("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
}

// do sends a request to base+path (or to path if it is absolute) and
// reads the whole response.
func (cl *client) do(t testing.TB, method, path string, body io.Reader, opts ...reqOpt) *response {
	t.Helper()
	target := path
	if !strings.HasPrefix(path, "http://") {
		target = cl.base + path
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := cl.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b, resp: resp}
}

func (cl *client) get(t testing.TB, path string, opts ...reqOpt) *response {
	t.Helper()
	return cl.do(t, http.MethodGet, path, nil, opts...)
}

// postJSON posts body (a string sent verbatim, or any other value
// marshalled) as application/json.
func (cl *client) postJSON(t testing.TB, path string, body any, opts ...reqOpt) *response {
	t.Helper()
	return cl.sendJSON(t, http.MethodPost, path, body, opts...)
}

// patchJSON is postJSON with PATCH.
func (cl *client) patchJSON(t testing.TB, path string, body any, opts ...reqOpt) *response {
	t.Helper()
	return cl.sendJSON(t, http.MethodPatch, path, body, opts...)
}

func (cl *client) sendJSON(t testing.TB, method, path string, body any, opts ...reqOpt) *response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		r = bytes.NewReader(mustJSON(t, b))
	}
	opts = append([]reqOpt{header("Content-Type", "application/json")}, opts...)
	return cl.do(t, method, path, r, opts...)
}

// postForm posts an urlencoded form.
func (cl *client) postForm(t testing.TB, path string, form url.Values, opts ...reqOpt) *response {
	t.Helper()
	opts = append([]reqOpt{header("Content-Type", "application/x-www-form-urlencoded")}, opts...)
	return cl.do(t, http.MethodPost, path, strings.NewReader(form.Encode()), opts...)
}

// postMultipart posts a multipart/form-data form.
func (cl *client) postMultipart(t testing.TB, path string, form url.Values, opts ...reqOpt) *response {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, vs := range form {
		for _, v := range vs {
			_ = mw.WriteField(k, v)
		}
	}
	_ = mw.Close()
	opts = append([]reqOpt{header("Content-Type", mw.FormDataContentType())}, opts...)
	return cl.do(t, http.MethodPost, path, &buf, opts...)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

// rawRequest writes raw (a complete HTTP/1.1 request; "\n" is turned into
// "\r\n" if the request has no "\r\n") to addr (host:port on loopback) and
// reads the response. Use it for header spellings Go's client would
// canonicalise (remote_user, Remote_User) and for duplicates.
func rawRequest(t testing.TB, addr, raw string) *response {
	t.Helper()
	if !strings.Contains(raw, "\r\n") {
		raw = strings.ReplaceAll(raw, "\n", "\r\n")
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("writing raw request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading raw response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b, resp: resp}
}

// hostPort returns the host:port of an http://host:port URL.
func hostPort(t testing.TB, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %q: %v", base, err)
	}
	return u.Host
}

// ---------------------------------------------------------------------------
// Assertions

// decode unmarshals the body into v, failing the test if it is not JSON.
func decode(t testing.TB, r *response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("response %s is not the JSON expected: %v", r, err)
	}
}

// wantStatus fails the test unless the response has the status.
func wantStatus(t testing.TB, r *response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.Status, status, truncate(string(r.Body), 800))
	}
}

// wantDetail fails the test unless the response has the status and a
// JSON body {"detail": detail} exactly (detail is compared as JSON).
func wantDetail(t testing.TB, r *response, status int, detail any) {
	t.Helper()
	wantStatus(t, r, status)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var got, want any
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.Body, err)
	}
	_ = json.Unmarshal(mustJSON(t, map[string]any{"detail": detail}), &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("body = %s, want %s", r.Body, mustJSON(t, want))
	}
}

// validationItem is one item of a 422 detail list.
type validationItem struct {
	Type string `json:"type"`
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
}

// want422Loc fails the test unless the response is 422 with a detail list
// that has an item whose loc is loc (e.g. "body", "email"). It returns
// that item. With no loc, it only checks the shape.
func want422Loc(t testing.TB, r *response, loc ...any) validationItem {
	t.Helper()
	wantStatus(t, r, http.StatusUnprocessableEntity)
	var body struct {
		Detail []validationItem `json:"detail"`
	}
	decode(t, r, &body)
	if len(body.Detail) == 0 {
		t.Fatalf("422 detail is not a non-empty list: %s", r.Body)
	}
	for _, it := range body.Detail {
		if it.Type == "" || it.Msg == "" || len(it.Loc) == 0 || it.Loc[0] != "body" {
			t.Errorf("422 item %+v lacks type/msg or a loc starting with \"body\"", it)
		}
	}
	if len(loc) == 0 {
		return body.Detail[0]
	}
	var want []any
	_ = json.Unmarshal(mustJSON(t, loc), &want)
	for _, it := range body.Detail {
		if reflect.DeepEqual(it.Loc, want) {
			return it
		}
	}
	t.Fatalf("422 detail has no item with loc %v: %s", loc, r.Body)
	return validationItem{}
}

// ---------------------------------------------------------------------------
// Accounts

// apiUser is the user JSON of the API.
type apiUser struct {
	ID          string   `json:"id"`
	Email       string   `json:"email"`
	IsActive    bool     `json:"is_active"`
	IsSuperuser bool     `json:"is_superuser"`
	IsVerified  bool     `json:"is_verified"`
	FullName    *string  `json:"full_name"`
	Roles       []string `json:"roles"`
}

// register creates an account through POST /auth/register, failing the
// test unless it answers 201.
func register(t testing.TB, cl *client, email, password string) apiUser {
	t.Helper()
	return registerWith(t, cl, map[string]any{"email": email, "password": password})
}

// registerWith posts body to /auth/register and wants 201.
func registerWith(t testing.TB, cl *client, body map[string]any) apiUser {
	t.Helper()
	r := cl.postJSON(t, "/auth/register", body)
	wantStatus(t, r, http.StatusCreated)
	var u apiUser
	decode(t, r, &u)
	return u
}

// loginJWT logs in through POST /auth/jwt/login and returns the token.
func loginJWT(t testing.TB, cl *client, email, password string) string {
	t.Helper()
	r := cl.postForm(t, "/auth/jwt/login", url.Values{"username": {email}, "password": {password}})
	wantStatus(t, r, http.StatusOK)
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	decode(t, r, &tok)
	if tok.AccessToken == "" || tok.TokenType != "bearer" {
		t.Fatalf("login answered %s", r.Body)
	}
	return tok.AccessToken
}

// loginCookie logs in through POST /auth/cookie/login and returns the
// session cookie it sets.
func loginCookie(t testing.TB, cl *client, email, password string) *http.Cookie {
	t.Helper()
	r := cl.postForm(t, "/auth/cookie/login", url.Values{"username": {email}, "password": {password}})
	wantStatus(t, r, http.StatusNoContent)
	for _, c := range r.Cookies() {
		if c.Value != "" {
			return c
		}
	}
	t.Fatalf("cookie login set no cookie: %v", r.Header.Values("Set-Cookie"))
	return nil
}

// me fetches GET /users/me with the given credential options, wanting 200.
func me(t testing.TB, cl *client, opts ...reqOpt) apiUser {
	t.Helper()
	r := cl.get(t, "/users/me", opts...)
	wantStatus(t, r, http.StatusOK)
	var u apiUser
	decode(t, r, &u)
	return u
}

// ---------------------------------------------------------------------------
// Database

// dbExec runs one statement on the SQLite database at path (which a
// server may have open: WAL and a busy timeout make that safe) and
// returns the number of rows changed.
func dbExec(t testing.TB, path, query string, args ...any) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	defer db.Close()
	res, err := db.Exec(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	n, _ := res.RowsAffected()
	return n
}

// makeSuperuser marks the user with that id superuser (and verified when
// verified is set) directly in the database. A server keeps using cached
// attributes for sessions it verified within the last few seconds: log in
// afterwards (a new session reads the row) or wait maxStaleness.
func makeSuperuser(t testing.TB, dbPath, userID string) {
	t.Helper()
	if n := dbExec(t, dbPath, `UPDATE users SET is_superuser = 1 WHERE id = ?`, userID); n != 1 {
		t.Fatalf("makeSuperuser: %d rows changed", n)
	}
}

// maxStaleness mirrors caddyauth.MaxStaleness: how long a change made
// outside the serving process may go unnoticed.
const maxStaleness = 5 * time.Second
