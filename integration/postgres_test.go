package integration

// Issue 7: several Caddy instances on one PostgreSQL database (DESIGN §8).
// Two real caddy processes, each with its own guarded site and upstream,
// share one database of a throwaway cluster (store/postgres/pgtest): a
// login on one is a login on the other, a revocation on one reaches the
// other within caddyauth.MaxStaleness, the brute-force counters are
// common, and the outbox delivers each mail once. Then the database goes
// away under traffic and comes back, and a server is started against a
// database that is not there at all.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store/postgres/pgtest"
)

// dsnEnv is the environment variable the configs read the DSN from, so
// that {env.*} expansion of the DSN is exercised by the server and by the
// `caddy gatehouse` commands alike.
const dsnEnv = "GATEHOUSE_TEST_DSN"

// pgInstance is one caddy process on a PostgreSQL database, with its own
// site and upstream.
type pgInstance struct {
	c  *caddyProc
	up *upstream
	cl *client
}

// pgConfig is the config of one instance: the gatehouse block (the same
// for every instance of a test; extra is added to it) reads the DSN from
// dsnEnv; the site on port guards everything but the account endpoints
// and proxies to upstream. 127.0.0.1 is a trusted proxy, so that
// X-Forwarded-For can stand for many clients. Hashing is cheap: these
// tests are about the database, not about argon2's cost.
func pgConfig(port int, upstream, extra string) string {
	return fmt.Sprintf(`{
	admin off
	servers :%[1]d {
		trusted_proxies static 127.0.0.1/32
	}
	gatehouse {
		database postgres {env.%[3]s} {
			max_conns 4
			connect_timeout 1s
			statement_timeout 5s
		}
		verify_on_register off
		password_hash {
			memory 8MiB
			time 1
			threads 1
		}
%[4]s
	}
}

http://127.0.0.1:%[1]d {
	gatehouse_endpoints
	gatehouse_guard
	reverse_proxy %[2]s
}
`, port, upstream, dsnEnv, indent(extra, "\t\t"))
}

// withEnv adds name=value to the environment of the process and of its
// subcommands (caddyEnv drops the caller's GATEHOUSE* variables).
func (c *caddyProc) withEnv(name, value string) *caddyProc {
	c.env = append(c.env, name+"="+value)
	return c
}

// startPGInstance starts an instance on the database dsn.
func startPGInstance(t *testing.T, dsn, extra string) *pgInstance {
	t.Helper()
	up := startUpstream(t)
	c := prepareCaddy(t, pgConfig(freePort(t), up.Addr, extra)).withEnv(dsnEnv, dsn)
	c.Start()
	return &pgInstance{c: c, up: up, cl: newClient(c.URL)}
}

// guardedOK sends a guarded request with the credential and wants it to
// reach the upstream as user email.
func (in *pgInstance) guardedOK(t *testing.T, email string, cred reqOpt) {
	t.Helper()
	path := uniquePath("/app")
	wantStatus(t, in.cl.get(t, path, cred), http.StatusOK)
	if got := in.up.Last(t, path).Values("Remote-User"); len(got) != 1 || got[0] != email {
		t.Fatalf("upstream got Remote-User %q, want [%q]", got, email)
	}
}

// untilRefused sends a guarded request with the credential to in every
// 50 ms until it is refused with 401 Unauthorized, and returns how long
// after since the refusal came. Until then the requests must pass; the
// refused one must not reach the upstream. It fails the test if nothing
// is refused within limit.
func untilRefused(t *testing.T, in *pgInstance, since time.Time, limit time.Duration, cred reqOpt) time.Duration {
	t.Helper()
	for {
		path := uniquePath("/app")
		r := in.cl.get(t, path, cred)
		delay := time.Since(since)
		switch r.Status {
		case http.StatusOK:
		case http.StatusUnauthorized:
			wantDetail(t, r, http.StatusUnauthorized, "Unauthorized")
			in.up.NeverSaw(t, path)
			return delay
		default:
			t.Fatalf("guarded request answered %s; want 200 until the change is seen, then 401", r)
		}
		if delay > limit {
			t.Fatalf("still let through %v after the change; the bound is %v", delay, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// revocationBound is how long a change made through one instance may go
// unnoticed by another: caddyauth.MaxStaleness, and a second for the
// polling and the request itself.
const revocationBound = maxStaleness + time.Second

// TestPostgresTwoInstances runs two instances on one database: a login on
// A works on B; a logout or deactivation through A is refused by B within
// the bound; failed logins through either lock the account on both.
func TestPostgresTwoInstances(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Shared(t).NewDatabase(t)
	// No secret in the config: each instance reads the one the first
	// generated and stored in the database.
	const limits = `login_limit {
	account 3
	ip 100
	window 1m
	ban 1m
}`
	a := startPGInstance(t, dsn, limits)
	b := startPGInstance(t, dsn, limits)

	t.Run("login on A works on B", func(t *testing.T) {
		t.Parallel()
		alice := uniqueEmail("alice")
		u := register(t, a.cl, alice, "alice-password")
		tok := loginJWT(t, a.cl, alice, "alice-password")
		cookie := loginCookie(t, a.cl, alice, "alice-password")
		for name, cred := range map[string]reqOpt{"bearer": bearer(tok), "cookie": withCookie(cookie)} {
			path := uniquePath("/app")
			wantStatus(t, b.cl.get(t, path, cred), http.StatusOK)
			wantIdentity(t, b.up.Last(t, path), map[string]string{
				"Remote-User": u.Email, "Remote-Email": u.Email, "Remote-User-Id": u.ID,
			})
			if got := me(t, b.cl, cred); got.ID != u.ID || got.Email != u.Email {
				t.Errorf("%s: B's /users/me = %+v, want %+v", name, got, u)
			}
		}
		// And the other way round: B's sessions on A.
		tokB := loginJWT(t, b.cl, alice, "alice-password")
		a.guardedOK(t, u.Email, bearer(tokB))
	})

	t.Run("revocation through A reaches B", func(t *testing.T) {
		t.Parallel()
		t.Run("jwt logout", func(t *testing.T) {
			t.Parallel()
			email := uniqueEmail("jwt")
			register(t, a.cl, email, "jwt-password")
			tok := loginJWT(t, a.cl, email, "jwt-password")
			b.guardedOK(t, email, bearer(tok)) // cached on B now
			wantStatus(t, a.cl.postJSON(t, "/auth/jwt/logout", nil, bearer(tok)), http.StatusNoContent)
			out := time.Now()
			// At once on A, which served the logout.
			wantDetail(t, a.cl.get(t, uniquePath("/app"), bearer(tok)), http.StatusUnauthorized, "Unauthorized")
			d := untilRefused(t, b, out, revocationBound, bearer(tok))
			t.Logf("JWT logout on A: B refused the token after %v (bound %v)", d.Round(time.Millisecond), revocationBound)
			wantDetail(t, b.cl.get(t, "/users/me", bearer(tok)), http.StatusUnauthorized, "Unauthorized")
		})
		t.Run("cookie logout", func(t *testing.T) {
			t.Parallel()
			email := uniqueEmail("cookie")
			register(t, a.cl, email, "cookie-password")
			cookie := loginCookie(t, a.cl, email, "cookie-password")
			b.guardedOK(t, email, withCookie(cookie))
			wantStatus(t, a.cl.postJSON(t, "/auth/cookie/logout", nil, withCookie(cookie)), http.StatusNoContent)
			out := time.Now()
			wantDetail(t, a.cl.get(t, uniquePath("/app"), withCookie(cookie)), http.StatusUnauthorized, "Unauthorized")
			d := untilRefused(t, b, out, revocationBound, withCookie(cookie))
			t.Logf("cookie logout on A: B refused the cookie after %v (bound %v)", d.Round(time.Millisecond), revocationBound)
			wantDetail(t, b.cl.get(t, "/users/me", withCookie(cookie)), http.StatusUnauthorized, "Unauthorized")
		})
		t.Run("deactivation", func(t *testing.T) {
			t.Parallel()
			// The CLI works on the same database, through the config and
			// its {env.*} DSN.
			root := uniqueEmail("root")
			res := a.c.Run(t, "root-password\n", "gatehouse", "user", "add", "--config", a.c.ConfigName, "--email", root, "--superuser")
			if res.ExitCode != 0 {
				t.Fatalf("caddy gatehouse user add --superuser: exit %d\nstdout: %s\nstderr: %s", res.ExitCode, res.Stdout, res.Stderr)
			}
			rootTok := loginJWT(t, b.cl, root, "root-password") // made by the CLI, seen by B
			if u := me(t, b.cl, bearer(rootTok)); !u.IsSuperuser {
				t.Fatalf("the CLI's superuser, on B: %+v", u)
			}
			rootTok = loginJWT(t, a.cl, root, "root-password")

			bob := uniqueEmail("bob")
			u := register(t, a.cl, bob, "bob-password")
			tok := loginJWT(t, a.cl, bob, "bob-password")
			cookie := loginCookie(t, b.cl, bob, "bob-password")
			b.guardedOK(t, bob, bearer(tok))
			b.guardedOK(t, bob, withCookie(cookie))
			r := a.cl.patchJSON(t, "/users/"+u.ID, map[string]any{"is_active": false}, bearer(rootTok))
			wantStatus(t, r, http.StatusOK)
			off := time.Now()
			var got apiUser
			decode(t, r, &got)
			if got.IsActive {
				t.Fatalf("PATCH is_active false answered %s", r.Body)
			}
			wantDetail(t, a.cl.get(t, uniquePath("/app"), bearer(tok)), http.StatusUnauthorized, "Unauthorized")
			d := untilRefused(t, b, off, revocationBound, bearer(tok))
			t.Logf("deactivation on A: B refused the token after %v (bound %v)", d.Round(time.Millisecond), revocationBound)
			// And the cookie of B's own session.
			d = untilRefused(t, b, off, revocationBound, withCookie(cookie))
			t.Logf("deactivation on A: B refused the cookie after %v", d.Round(time.Millisecond))
			wantDetail(t, tryLogin(t, b.cl, bob, "bob-password"), http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
		})
	})

	t.Run("lockout across instances", func(t *testing.T) {
		t.Parallel()
		t.Run("failures on A", func(t *testing.T) {
			t.Parallel()
			carol := uniqueEmail("carol")
			register(t, a.cl, carol, "carol-password")
			// The password is right: B lets carol in before the failures.
			wantStatus(t, tryLogin(t, b.cl, carol, "carol-password", from("192.0.2.100")), http.StatusOK)
			for i := range 3 {
				wantDetail(t, tryLogin(t, a.cl, carol, fmt.Sprintf("guess-%d", i), from(fmt.Sprintf("192.0.2.%d", 101+i))),
					http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
			}
			wantLocked(t, b, carol, "carol-password", "192.0.2.110")
			wantLocked(t, a, carol, "carol-password", "192.0.2.111")
		})
		t.Run("failures split between A and B", func(t *testing.T) {
			t.Parallel()
			dave := uniqueEmail("dave")
			register(t, b.cl, dave, "dave-password")
			for i, in := range []*pgInstance{a, b, a} {
				wantDetail(t, tryLogin(t, in.cl, dave, fmt.Sprintf("guess-%d", i), from(fmt.Sprintf("198.51.100.%d", 101+i))),
					http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
			}
			wantLocked(t, b, dave, "dave-password", "198.51.100.110")
			wantLocked(t, a, dave, "dave-password", "198.51.100.111")
		})
	})
}

// wantLocked fails unless the right password for email is refused by in,
// by both login routes, exactly as a wrong one is, from a client address
// that has no failures of its own; while another account logs in from
// that address.
func wantLocked(t *testing.T, in *pgInstance, email, password, ip string) {
	t.Helper()
	right := tryLogin(t, in.cl, email, password, from(ip))
	wrong := tryLogin(t, in.cl, email, "not-"+password, from(ip))
	wantDetail(t, right, http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
	if right.Status != wrong.Status || string(right.Body) != string(wrong.Body) {
		t.Errorf("locked, the right password answers %s; a wrong one %s", right, wrong)
	}
	wantDetail(t, in.cl.postForm(t, "/auth/cookie/login", url.Values{"username": {email}, "password": {password}}, from(ip)),
		http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
	other := uniqueEmail("other")
	register(t, in.cl, other, "other-password")
	wantStatus(t, tryLogin(t, in.cl, other, "other-password", from(ip)), http.StatusOK)
}

// TestPostgresTwoInstancesMail: both instances send through one SMTP
// server from one outbox. Mails queued through either arrive exactly once
// each, whichever instance's sender delivers them.
func TestPostgresTwoInstancesMail(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	dsn := pgtest.Shared(t).NewDatabase(t)
	extra := smtpMail(mp) + "\nmail_limit off"
	a := startPGInstance(t, dsn, extra)
	b := startPGInstance(t, dsn, extra)

	const n = 20
	want := map[string]string{} // recipient -> subject (the site it was asked on)
	var emails []string
	for i := range n {
		in := []*pgInstance{a, b}[i%2]
		e := uniqueEmail(fmt.Sprintf("mail%02d", i))
		register(t, in.cl, e, "mail-password")
		emails = append(emails, e)
		want[e] = resetSubject(hostPort(t, in.c.URL))
	}
	// Queued in a burst, alternately through A and B, so that both
	// senders find due mail at once.
	queued := time.Now()
	for i, e := range emails {
		forgot(t, []*pgInstance{a, b}[i%2].cl, e)
	}

	// Arrival of all n, then a few poll intervals (mailer's
	// DefaultPollInterval is 1 s; the lease is 2 min, so a second delivery
	// would have to come from a claim that ignored it) for any duplicate.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := map[string]bool{}
		for _, m := range mp.Messages(t) {
			for _, to := range m.To {
				got[strings.ToLower(to.Address)] = true
			}
		}
		if len(got) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s mailpit has mail for %d of the %d recipients", len(got), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d mails queued through two instances arrived within %v", n, time.Since(queued).Round(time.Millisecond))
	time.Sleep(4 * time.Second)

	msgs := mp.Messages(t)
	per := map[string][]string{}
	for _, m := range msgs {
		if len(m.To) != 1 {
			t.Errorf("message %q has recipients %v, want one", m.Subject, m.To)
			continue
		}
		addr := strings.ToLower(m.To[0].Address)
		per[addr] = append(per[addr], m.Subject)
	}
	for _, e := range emails {
		if got := per[e]; len(got) != 1 || got[0] != want[e] {
			t.Errorf("%s received %q; want exactly one %q", e, got, want[e])
		}
	}
	if len(msgs) != n {
		t.Errorf("mailpit holds %d messages, want exactly %d", len(msgs), n)
	}
	// Each sender logs its deliveries: together, n.
	const delivered = `"msg":"mail: delivered"`
	byA, byB := strings.Count(a.c.Log(), delivered), strings.Count(b.c.Log(), delivered)
	if byA+byB != n {
		t.Errorf("the senders logged %d + %d deliveries, want %d in all", byA, byB, n)
	}
	t.Logf("delivered by A: %d, by B: %d", byA, byB)
}

// streamed is the outcome of one request of TestPostgresDatabaseRestart's
// streams.
type streamed struct {
	sent, done time.Duration // since the stream began
	path       string
	kind       string // "jwt", "cookie" or "login"
	status     int    // 0: transport error
	err        error
	ctype      string
	body       string
}

// stream sends requests made by next, one after another, every gap, until
// stop is closed, and records each.
type stream struct {
	mu      sync.Mutex
	results []streamed
	begin   time.Time
	done    chan struct{}
}

func startStream(begin time.Time, stop <-chan struct{}, gap time.Duration, next func() *http.Request) *stream {
	s := &stream{begin: begin, done: make(chan struct{})}
	hc := &http.Client{
		// Far longer than any answer may take: a hang is seen as one.
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			req := next()
			res := streamed{sent: time.Since(begin), path: req.URL.Path, kind: "login"}
			switch {
			case req.Header.Get("Authorization") != "":
				res.kind = "jwt"
			case req.Header.Get("Cookie") != "":
				res.kind = "cookie"
			}
			resp, err := hc.Do(req)
			if err == nil {
				var b []byte
				b, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				res.status, res.ctype, res.body = resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
			}
			res.err = err
			res.done = time.Since(begin)
			s.mu.Lock()
			s.results = append(s.results, res)
			s.mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(gap):
			}
		}
	}()
	return s
}

// snapshot returns the results so far.
func (s *stream) snapshot() []streamed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.results)
}

// histogram counts statuses ("error" for transport errors).
func histogram(rs []streamed) string {
	counts := map[string]int{}
	for _, r := range rs {
		k := fmt.Sprint(r.status)
		if r.err != nil {
			k = "error"
		}
		counts[k]++
	}
	var keys []string
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, counts[k]))
	}
	return strings.Join(parts, " ")
}

// TestPostgresDatabaseRestart stops PostgreSQL under a steady stream of
// guarded requests and logins, and starts it again. While it is down,
// within MaxStaleness every guarded request is refused with 503 Service
// Unavailable and none reaches the upstream; nothing hangs; logins get
// 503 too; caddy keeps running. Once it is back, the same credentials work again and a new
// login works, without a restart of caddy.
func TestPostgresDatabaseRestart(t *testing.T) {
	t.Parallel()
	cluster := pgtest.Start(t) // its own: it is stopped
	dsn := cluster.NewDatabase(t)
	a := startPGInstance(t, dsn, "")

	const email, password = "restart@example.com", "restart-password"
	register(t, a.cl, email, password)
	tok := loginJWT(t, a.cl, email, password)
	cookie := loginCookie(t, a.cl, email, password)
	a.guardedOK(t, email, bearer(tok))
	a.guardedOK(t, email, withCookie(cookie))

	// hangBound: the longest any answer may take. connect_timeout is 1s;
	// a refused connection fails at once.
	const hangBound = 5 * time.Second
	begin := time.Now()
	stop := make(chan struct{})
	n := 0
	guarded := startStream(begin, stop, 20*time.Millisecond, func() *http.Request {
		req, _ := http.NewRequest(http.MethodGet, a.c.URL+uniquePath("/app"), nil)
		if n++; n%2 == 0 {
			req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
		} else {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		return req
	})
	logins := startStream(begin, stop, 200*time.Millisecond, func() *http.Request {
		form := url.Values{"username": {email}, "password": {password}}
		req, _ := http.NewRequest(http.MethodPost, a.c.URL+"/auth/jwt/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	})
	stopped := false
	stopStreams := func() {
		if !stopped {
			stopped = true
			close(stop)
			<-guarded.done
			<-logins.done
		}
	}
	defer stopStreams()

	time.Sleep(time.Second)
	stopAt := time.Since(begin)
	cluster.Stop(t)
	downAt := time.Since(begin) // from here on, no connection succeeds
	boundAt := downAt + maxStaleness + time.Second
	time.Sleep(time.Until(begin.Add(boundAt)))
	upstreamAtBound := a.up.Count()
	time.Sleep(3 * time.Second) // the steady state with the database down
	if a.c.Exited() {
		t.Fatalf("caddy exited while the database was down:\n%s", tail(a.c.Log(), 40))
	}
	upstreamBeforeStart := a.up.Count()
	startAt := time.Since(begin)
	cluster.Start(t)
	upAt := time.Since(begin)

	// Recovery: the same token and cookie pass again, and logins work,
	// without a restart.
	// recovered returns when the first request of each kind sent after
	// from was answered 200, and whether every kind has been.
	recovered := func(rs []streamed, from time.Duration, kinds ...string) (time.Duration, bool) {
		var last time.Duration
		for _, kind := range kinds {
			i := slices.IndexFunc(rs, func(r streamed) bool { return r.sent >= from && r.kind == kind && r.status == http.StatusOK })
			if i < 0 {
				return 0, false
			}
			last = max(last, rs[i].done)
		}
		return last, true
	}
	var guardBack, loginBack time.Duration
	for deadline := time.Now().Add(20 * time.Second); ; {
		var gOK, lOK bool
		guardBack, gOK = recovered(guarded.snapshot(), upAt, "jwt", "cookie")
		loginBack, lOK = recovered(logins.snapshot(), upAt, "login")
		if gOK && lOK {
			break
		}
		if time.Now().After(deadline) {
			stopStreams()
			t.Errorf("20s after PostgreSQL came back: guarded %s; logins %s (statuses since the start)",
				histogram(since(guarded.snapshot(), upAt)), histogram(since(logins.snapshot(), upAt)))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	stopStreams()
	g, l := guarded.snapshot(), logins.snapshot()

	// Before the stop, everything passed.
	for _, r := range g {
		if r.done < stopAt && r.status != http.StatusOK {
			t.Errorf("guarded request at %v, before the stop: %d %v %q", r.sent, r.status, r.err, r.body)
		}
	}
	// Nothing hung, nothing failed at the transport level.
	var slowest [2]time.Duration // guarded, login; with the database down
	for i, rs := range [][]streamed{g, l} {
		for _, r := range rs {
			if r.err != nil || r.done-r.sent > hangBound {
				t.Errorf("%s sent at %v: answered after %v (bound %v), error %v", r.path, r.sent, r.done-r.sent, hangBound, r.err)
			}
			if r.sent >= stopAt && r.done <= upAt {
				slowest[i] = max(slowest[i], r.done-r.sent)
			}
		}
	}
	t.Logf("slowest answer while the database was down: guarded %v, login %v (bound %v)",
		slowest[0].Round(time.Millisecond), slowest[1].Round(time.Millisecond), hangBound)

	// Down: within the bound every guarded request is refused and the
	// upstream sees none of them.
	var down, grace []streamed
	var lastOK time.Duration
	for _, r := range g {
		if r.sent >= downAt && r.done <= startAt && r.status == http.StatusOK {
			lastOK = max(lastOK, r.done)
		}
		switch {
		case r.sent >= boundAt && r.done <= startAt:
			down = append(down, r)
		case r.sent >= stopAt && r.done <= startAt:
			grace = append(grace, r)
		}
	}
	if len(down) < 10 {
		t.Errorf("only %d guarded requests while the database was down past the bound", len(down))
	}
	for _, r := range down {
		if r.status != http.StatusServiceUnavailable || r.body != `{"detail":"Service Unavailable"}` {
			t.Errorf("guarded request at %v, %v after PostgreSQL stopped: %d %q (bound %v); want 503 Service Unavailable", r.sent, r.sent-downAt, r.status, truncate(r.body, 200), maxStaleness+time.Second)
		}
		a.up.NeverSaw(t, r.path)
	}
	if upstreamBeforeStart != upstreamAtBound {
		t.Errorf("the upstream received %d requests after the bound, with the database down", upstreamBeforeStart-upstreamAtBound)
	}
	var samples []string
	for _, r := range down {
		s := fmt.Sprintf("%d %s %s", r.status, r.ctype, truncate(r.body, 120))
		if !slices.Contains(samples, s) {
			samples = append(samples, s)
		}
	}
	t.Logf("PostgreSQL stopped at %v (stop took %v); guarded requests from then to the bound: %s; last 200 answered %v after the stop",
		downAt.Round(time.Millisecond), (downAt - stopAt).Round(time.Millisecond), histogram(grace), max(0, lastOK-downAt).Round(time.Millisecond))
	t.Logf("guarded requests past the bound with the database down: %s; answers: %q", histogram(down), samples)

	// Logins while down: 503 Service Unavailable, never a success.
	var loginsDown []streamed
	samples = nil
	for _, r := range l {
		if r.sent >= downAt && r.done <= startAt {
			loginsDown = append(loginsDown, r)
			if r.status != http.StatusServiceUnavailable || !strings.HasPrefix(r.ctype, "application/json") || !json.Valid([]byte(r.body)) {
				t.Errorf("login at %v with the database down: %d %q %q; want a 503 JSON answer", r.sent, r.status, r.ctype, truncate(r.body, 200))
			}
			s := fmt.Sprintf("%d %s", r.status, truncate(r.body, 120))
			if !slices.Contains(samples, s) {
				samples = append(samples, s)
			}
		}
	}
	if len(loginsDown) < 5 {
		t.Errorf("only %d logins while the database was down", len(loginsDown))
	}
	t.Logf("logins with the database down: %s; answers: %q", histogram(loginsDown), samples)
	t.Logf("PostgreSQL back at %v (start took %v): the same JWT and cookie passed again after %v, a login after %v",
		upAt.Round(time.Millisecond), (upAt - startAt).Round(time.Millisecond),
		max(0, guardBack-upAt).Round(time.Millisecond), max(0, loginBack-upAt).Round(time.Millisecond))

	// After: the old credentials and a new login work.
	a.guardedOK(t, email, bearer(tok))
	a.guardedOK(t, email, withCookie(cookie))
	a.guardedOK(t, email, bearer(loginJWT(t, a.cl, email, password)))
	if a.c.Exited() {
		t.Fatal("caddy exited")
	}
	if log := a.c.Log(); strings.Contains(log, "panic") {
		t.Errorf("caddy's log mentions a panic:\n%s", tail(log, 40))
	}
}

// since returns the results sent at or after from.
func since(rs []streamed, from time.Duration) []streamed {
	var out []streamed
	for _, r := range rs {
		if r.sent >= from {
			out = append(out, r)
		}
	}
	return out
}

// TestPostgresUnreachable: with the database's port closed, `caddy run`
// and `caddy gatehouse user add` fail with a message naming the address,
// and the password in the DSN shows nowhere.
func TestPostgresUnreachable(t *testing.T) {
	t.Parallel()
	port := freePort(t) // nothing listens there
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	const password = "Unreachable-pw-3f9c2e"
	dsn := fmt.Sprintf("postgres://gatehouse:%s@%s/gatehouse?sslmode=disable", password, addr)

	for _, tc := range []struct{ name, dsn, env string }{
		{"dsn in the config", dsn, ""},
		{"dsn from the environment", "{env." + dsnEnv + "}", dsn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := strings.Replace(pgConfig(freePort(t), "127.0.0.1:9", ""), "{env."+dsnEnv+"}", tc.dsn, 1)
			c := prepareCaddy(t, cfg)
			if tc.env != "" {
				c.withEnv(dsnEnv, tc.env)
			}

			start := time.Now()
			res := c.Run(t, "", "run", "--config", c.ConfigName)
			took := time.Since(start)
			out := res.Stdout + res.Stderr
			if res.ExitCode == 0 || res.ExitCode == -1 {
				t.Errorf("caddy run: exit %d after %v, want a non-zero exit", res.ExitCode, took)
			}
			if !strings.Contains(out, addr) {
				t.Errorf("caddy run's output does not name %s:\n%s", addr, out)
			}
			if strings.Contains(out, password) {
				t.Errorf("caddy run's output shows the password:\n%s", out)
			}
			t.Logf("caddy run: exit %d after %v; last line: %s", res.ExitCode, took.Round(time.Millisecond), lastLine(out))

			res = c.Run(t, "some-password\n", "gatehouse", "user", "add", "--config", c.ConfigName, "--email", "nobody@example.com")
			stderr := strings.TrimRight(res.Stderr, "\n")
			if res.ExitCode == 0 || res.ExitCode == -1 {
				t.Errorf("user add: exit %d, want a non-zero exit", res.ExitCode)
			}
			if stderr == "" || strings.Contains(stderr, "\n") || !strings.Contains(stderr, addr) {
				t.Errorf("user add's standard error is not one line naming %s:\n%s", addr, res.Stderr)
			}
			if strings.Contains(res.Stdout+res.Stderr, password) {
				t.Errorf("user add shows the password:\nstdout: %s\nstderr: %s", res.Stdout, res.Stderr)
			}
			t.Logf("user add: exit %d: %s", res.ExitCode, stderr)
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
