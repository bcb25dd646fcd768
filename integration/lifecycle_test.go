package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRestartKeepsSessions: the generated secret is persisted, so JWT and
// cookie sessions survive a restart of the process.
func TestRestartKeepsSessions(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), "", guardedSite(up, "")))
	cl := newClient(c.URL)
	u := register(t, cl, "restart@example.com", "restart-password")
	token := loginJWT(t, cl, "restart@example.com", "restart-password")
	cookie := loginCookie(t, cl, "restart@example.com", "restart-password")
	revoked := loginJWT(t, cl, "restart@example.com", "restart-password")
	wantStatus(t, cl.do(t, http.MethodPost, "/auth/jwt/logout", nil, bearer(revoked)), http.StatusNoContent)

	c.Restart()

	if got := me(t, cl, bearer(token)); got.ID != u.ID {
		t.Errorf("after restart the token is %s's", got.Email)
	}
	me(t, cl, withCookie(cookie))
	path := uniquePath("/app")
	wantStatus(t, cl.get(t, path, bearer(token)), http.StatusOK)
	wantIdentity(t, up.Last(t, path), map[string]string{"Remote-User": "restart@example.com",
		"Remote-Email": "restart@example.com", "Remote-User-Id": u.ID})
	// A revocation survives too.
	wantDetail(t, cl.get(t, "/users/me", bearer(revoked)), http.StatusUnauthorized, "Unauthorized")
	// And the account itself.
	loginJWT(t, cl, "restart@example.com", "restart-password")
	wantDetail(t, cl.postJSON(t, "/auth/register", map[string]any{"email": "restart@example.com", "password": "restart-password"}),
		http.StatusBadRequest, "REGISTER_USER_ALREADY_EXISTS")
}

// TestReloadUnderTraffic reloads the config three times through the admin
// API while several clients keep making guarded requests: none may fail,
// and the session stays valid.
func TestReloadUnderTraffic(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	port, adminPort := freePort(t), freePort(t)
	config := func(version int) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	gatehouse {
		database sqlite ./gatehouse.db
	}
}

http://127.0.0.1:%d {
	gatehouse_endpoints
	gatehouse_guard {
		allow /version
	}
	handle /version {
		respond "v%d"
	}
	handle {
		reverse_proxy %s
	}
}
`, adminPort, port, version, up.Addr)
	}
	c := startCaddy(t, config(0))
	cl := newClient(c.URL)
	register(t, cl, "reload@example.com", "reload-password")
	token := loginJWT(t, cl, "reload@example.com", "reload-password")
	cookie := loginCookie(t, cl, "reload@example.com", "reload-password")

	var (
		stop     atomic.Bool
		total    atomic.Int64
		mu       sync.Mutex
		failures []string
		wg       sync.WaitGroup
	)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 10 * time.Second}
			for !stop.Load() {
				req, _ := http.NewRequest(http.MethodGet, c.URL+"/traffic", nil)
				if i%2 == 0 {
					req.Header.Set("Authorization", "Bearer "+token)
				} else {
					req.AddCookie(cookie)
				}
				resp, err := hc.Do(req)
				if err != nil {
					// A connection the old server accepted or kept just as
					// it shut down can end in EOF before any answer (Go
					// retries this by itself only on a reused connection).
					// That is Caddy's listener handoff, which browsers ride
					// out the same way; what this test holds is the answer
					// of every request that gets one.
					resp, err = hc.Do(req)
				}
				total.Add(1)
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, body))
					mu.Unlock()
				}
			}
		}()
	}

	time.Sleep(300 * time.Millisecond)
	for v := 1; v <= 3; v++ {
		c.WriteConfig(config(v))
		out, err := c.Cmd("reload", "--config", "Caddyfile", "--address", fmt.Sprintf("127.0.0.1:%d", adminPort)).CombinedOutput()
		if err != nil {
			t.Errorf("caddy reload %d: %v\n%s", v, err, out)
		}
		if r := cl.get(t, "/version"); string(r.Body) != fmt.Sprintf("v%d", v) {
			t.Errorf("after reload %d, /version = %s", v, r)
		}
		time.Sleep(300 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()

	if n := total.Load(); n < 20 {
		t.Errorf("only %d requests were made during the reloads", n)
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed during reloads; first: %s", len(failures), total.Load(),
			strings.Join(failures[:min(5, len(failures))], " | "))
	}
	t.Logf("%d guarded requests during 3 reloads", total.Load())
	me(t, cl, bearer(token))
	me(t, cl, withCookie(cookie))
	if c.Exited() {
		t.Error("caddy exited")
	}
}

// TestHarnessCommands checks the harness pieces the CLI tests rely on:
// subcommands run with the server's directory and environment.
func TestHarnessCommands(t *testing.T) {
	t.Parallel()
	c := prepareCaddy(t, gatehouseConfig(freePort(t), "", "gatehouse_endpoints\nrespond 204"))
	res := c.Run(t, "", "version")
	if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "v2.") {
		t.Fatalf("caddy version: %+v", res)
	}
	res = c.Run(t, "", "adapt", "--config", "Caddyfile")
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, `"gatehouse"`) {
		t.Fatalf("caddy adapt: %+v", res)
	}
	if res := c.Run(t, "", "no-such-subcommand"); res.ExitCode == 0 {
		t.Errorf("an unknown subcommand exited 0: %+v", res)
	}
	c.Start()
	wantStatus(t, newClient(c.URL).get(t, "/"), http.StatusNoContent)
	env := strings.Join(c.Cmd().Env, "\n")
	for _, want := range []string{"HOME=" + c.Dir, "XDG_DATA_HOME=" + c.Dir, "XDG_CONFIG_HOME=" + c.Dir} {
		if !strings.Contains(env, want+"\n") && !strings.HasSuffix(env, want) {
			t.Errorf("subcommand environment lacks %s", want)
		}
	}
	c.Stop()
	if !c.Exited() {
		t.Error("still running after Stop")
	}
}
