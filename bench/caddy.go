package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// findRepoRoot walks up from the working directory to the directory whose
// go.mod declares the Gatehouse module.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/gatehouse-caddy/gatehouse\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the gatehouse repository (no go.mod of github.com/gatehouse-caddy/gatehouse above the working directory)")
		}
		dir = parent
	}
}

// buildCaddy builds ./cmd/caddy of the repository at root into dir and
// returns the binary's path.
func buildCaddy(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "caddy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %w\n%s", err, out)
	}
	return bin, nil
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// caddyfile is one Caddy configuration: a global block and one plain-HTTP
// site on 127.0.0.1.
type caddyfile struct {
	AdminPort int    // the admin API (and /debug/pprof) on 127.0.0.1
	Port      int    // the site
	Global    string // more global options, e.g. a gatehouse block
	Site      string // the site block's body
}

// String renders the Caddyfile. The admin API gets a port of its own, so
// that no two Caddys (ours, or another test run's on :2019) collide, and
// the config is not persisted into the home directory. Every setup logs
// at the same level, INFO, Caddy's default, written down so that no setup
// differs; no site has a `log` directive, so there are no access logs.
func (c caddyfile) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin 127.0.0.1:%d\n\tpersist_config off\n\tlog {\n\t\tlevel INFO\n\t}\n", c.AdminPort)
	if c.Global != "" {
		b.WriteString(indent(c.Global, "\t"))
	}
	fmt.Fprintf(&b, "}\n\nhttp://127.0.0.1:%d {\n", c.Port)
	b.WriteString(indent(c.Site, "\t"))
	b.WriteString("}\n")
	return b.String()
}

// indent prefixes every non-empty line of s with prefix and ends it with
// a newline.
func indent(s, prefix string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
		if line != "" {
			b.WriteString(prefix)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// caddyProc is a running `caddy run`.
type caddyProc struct {
	Pid     int
	URL     string // http://127.0.0.1:<port>
	Admin   string // http://127.0.0.1:<admin port>
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	logf    *os.File
}

// startCaddy writes cfg to dir/name.Caddyfile and runs `bin run` on it
// with HOME and XDG_* pointed into dir, logging to dir/name.log, and waits
// until the site answers readyPath (any status will do).
func startCaddy(ctx context.Context, bin, dir, name string, cfg caddyfile, readyPath string) (*caddyProc, error) {
	cfgPath := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = caddyEnv(home)
	cmd.Stdout, cmd.Stderr = logf, logf
	setProcAttrs(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting caddy: %w", err)
	}
	c := &caddyProc{
		Pid:     cmd.Process.Pid,
		URL:     fmt.Sprintf("http://127.0.0.1:%d", cfg.Port),
		Admin:   fmt.Sprintf("http://127.0.0.1:%d", cfg.AdminPort),
		LogPath: logPath,
		cmd:     cmd,
		done:    make(chan struct{}),
		logf:    logf,
	}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	if err := c.waitReady(ctx, readyPath); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// caddyEnv is this process's environment with HOME and XDG_* replaced by
// home and Caddy's and Gatehouse's own variables removed, so that Caddy
// touches nothing outside the run's directory.
func caddyEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || strings.HasPrefix(k, "XDG_") || strings.HasPrefix(k, "CADDY") || strings.HasPrefix(k, "GATEHOUSE") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "XDG_DATA_HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home)
}

// waitReady polls until Caddy has loaded its config and the site answers,
// Caddy exits, or 30 s pass.
func (c *caddyProc) waitReady(ctx context.Context, path string) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-c.done:
			return fmt.Errorf("caddy exited before answering:\n%s", c.logTail(30))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		// Caddy logs this once its config is loaded, listeners bound. Until
		// then an answer on the port may come from another process of
		// this shared machine that took it between freePort and Caddy's
		// bind (Caddy then exits: see c.done above).
		err := errors.New("no \"serving initial configuration\" in caddy's log yet")
		if strings.Contains(c.Log(), "serving initial configuration") {
			var resp *http.Response
			if resp, err = hc.Get(c.URL + path); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("caddy did not answer %s within 30s (%v):\n%s", c.URL+path, err, c.logTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop sends SIGTERM, waits up to 5 s, then kills. It is safe to call
// more than once.
func (c *caddyProc) Stop() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.logf.Close()
	c.cmd = nil
}

// Log returns what Caddy has written to its log so far.
func (c *caddyProc) Log() string {
	b, _ := os.ReadFile(c.LogPath)
	return string(b)
}

// logTail returns the last n lines of the log.
func (c *caddyProc) logTail(n int) string { return lastLines(c.Log(), n) }
