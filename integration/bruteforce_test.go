package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The brute-force limits of issue 5, against the real binary. The sites
// trust 127.0.0.1 as a proxy, so that X-Forwarded-For can stand for many
// clients; one test checks that a site without trusted_proxies ignores it.

// limitBan is short, so that the tests can wait for a ban to end, and
// long enough for a restart and a second instance to start within it on
// a slow machine.
const limitBan = 10 * time.Second

// limitConfig is a config with small limits: 3 failures lock an account,
// 6 ban an address, within a minute, for limitBan. Site port trusts
// 127.0.0.1 as a proxy; extraPort, if not 0, is a second site that does
// not.
func limitConfig(port, extraPort int) string {
	cfg := fmt.Sprintf(`{
	admin off
	servers :%d {
		trusted_proxies static 127.0.0.1/32
	}
	gatehouse {
		database sqlite ./gatehouse.db
		mail dir ./mail
		verify_on_register off
		login_limit {
			account 3
			ip 6
			window 1m
			ban %v
		}
	}
}

http://127.0.0.1:%d {
	gatehouse_endpoints
	respond 204
}
`, port, limitBan, port)
	if extraPort != 0 {
		cfg += fmt.Sprintf("\nhttp://127.0.0.1:%d {\n\tgatehouse_endpoints\n\trespond 204\n}\n", extraPort)
	}
	return cfg
}

// from makes a request come from a client address, through the trusted
// proxy.
func from(ip string) reqOpt { return header("X-Forwarded-For", ip) }

// tryLogin posts a JWT login and returns the response.
func tryLogin(t *testing.T, cl *client, email, password string, opts ...reqOpt) *response {
	t.Helper()
	return cl.postForm(t, "/auth/jwt/login", url.Values{"username": {email}, "password": {password}}, opts...)
}

// wantTooMany checks a 429 with a Retry-After of 1 to limitBan seconds.
func wantTooMany(t *testing.T, r *response) {
	t.Helper()
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("status = %d, want 429; body: %s", r.Status, r.Body)
	}
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > int(limitBan/time.Second) {
		t.Fatalf("Retry-After %q, want 1 to %d seconds", r.Header.Get("Retry-After"), int(limitBan/time.Second))
	}
}

// pageLogin logs in through the HTML form, as a browser does, from ip.
func pageLogin(t *testing.T, base, email, password, ip string) *response {
	t.Helper()
	cl := newClient(base).withJar()
	page := cl.get(t, "/auth/login", browser())
	wantStatus(t, page, http.StatusOK)
	form := url.Values{"csrf": {hiddenField(t, string(page.Body), "csrf")}, "username": {email}, "password": {password}}
	return cl.do(t, http.MethodPost, "/auth/login", strings.NewReader(form.Encode()),
		header("Content-Type", "application/x-www-form-urlencoded"), header("Origin", base), from(ip))
}

// TestBruteForceAccountLockout: the third failure locks the account; the
// right password then fails exactly as a wrong one, by the API and by the
// page, on this instance, after a restart and on a second instance; the
// owner gets one notice; once the ban time is over, login works.
func TestBruteForceAccountLockout(t *testing.T) {
	t.Parallel()
	port, port2 := freePort(t), freePort(t)
	c := startCaddy(t, limitConfig(port, 0))
	cl := newClient(c.URL)
	alice := uniqueEmail("alice")
	register(t, cl, alice, "alice-password")

	// Each failure from another address: the account limit, not the
	// address limit, is what stops them.
	for i, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		wantDetail(t, tryLogin(t, cl, strings.ToUpper(alice[:1])+alice[1:], fmt.Sprintf("guess-%d", i), from(ip)),
			http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
	}
	locked := time.Now()
	wantDetail(t, tryLogin(t, cl, alice, "alice-password", from("198.51.100.1")), http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
	wantDetail(t, cl.postForm(t, "/auth/cookie/login", url.Values{"username": {alice}, "password": {"alice-password"}}, from("198.51.100.2")),
		http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
	// The page answers as it does to a wrong password: the form again.
	r := pageLogin(t, c.URL, alice, "alice-password", "198.51.100.3")
	wantStatus(t, r, http.StatusBadRequest)
	if !strings.Contains(string(r.Body), `name="username"`) {
		t.Fatalf("the login page during the lock is not the login form:\n%s", r.Body)
	}

	// The owner is told, once, with the way to a new password.
	paths := waitEML(t, c.Path("mail"), 1, 15*time.Second)
	m := readEML(t, paths[0])
	if got := m.Header.Get("To"); !strings.Contains(got, alice) {
		t.Fatalf("the notice went to %q, want %s", got, alice)
	}
	if !strings.Contains(m.Header.Get("Subject"), "paused") || !strings.Contains(m.Parts[0].Body, c.URL+"/auth/forgot-password") {
		t.Fatalf("the notice lacks its subject or link:\nSubject: %s\n%s", m.Header.Get("Subject"), m.Parts[0].Body)
	}

	// The lock is in the database: it holds after a restart, and on a
	// second instance sharing the database.
	c.Restart()
	wantDetail(t, tryLogin(t, cl, alice, "alice-password", from("198.51.100.4")), http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
	c2 := startCaddy(t, limitConfig(port2, 0), withDir(c.Dir))
	cl2 := newClient(c2.URL)
	wantDetail(t, tryLogin(t, cl2, alice, "alice-password", from("198.51.100.5")), http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")

	// Attempts during the lock did not extend it.
	time.Sleep(time.Until(locked.Add(limitBan + 500*time.Millisecond)))
	loginJWT(t, cl2, alice, "alice-password")
	loginJWT(t, cl, alice, "alice-password")
	if paths, _ := filepath.Glob(filepath.Join(c.Path("mail"), "*.eml")); len(paths) != 1 {
		t.Fatalf("%d notices, want 1", len(paths))
	}
}

// TestBruteForceAddressBan: one client cycling through usernames is
// banned after 6 failures, from every route the limits protect, while
// everyone else, the accounts it tried included, logs in.
func TestBruteForceAddressBan(t *testing.T) {
	t.Parallel()
	c := startCaddy(t, limitConfig(freePort(t), 0))
	cl := newClient(c.URL)
	var users []string
	for i := range 3 {
		u := uniqueEmail(fmt.Sprintf("user%d", i))
		register(t, cl, u, "the-password-"+strconv.Itoa(i))
		users = append(users, u)
	}
	const attacker = "203.0.113.66"
	names := append(append([]string{}, users...), uniqueEmail("nobody1"), uniqueEmail("nobody2"), uniqueEmail("nobody3"))
	for _, name := range names {
		wantDetail(t, tryLogin(t, cl, name, "guess", from(attacker)), http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
	}
	banned := time.Now()
	// Banned, even with a right password, on every protected route.
	r := tryLogin(t, cl, users[0], "the-password-0", from(attacker))
	wantTooMany(t, r)
	wantDetail(t, r, http.StatusTooManyRequests, "Too Many Requests")
	wantTooMany(t, cl.postForm(t, "/auth/cookie/login", url.Values{"username": {users[0]}, "password": {"the-password-0"}}, from(attacker)))
	wantTooMany(t, cl.postJSON(t, "/auth/reset-password", map[string]string{"token": "x", "password": "new-password-1"}, from(attacker)))
	wantTooMany(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": "x"}, from(attacker)))
	page := pageLogin(t, c.URL, users[0], "the-password-0", attacker)
	wantTooMany(t, page)
	if !strings.Contains(string(page.Body), "Too many attempts") {
		t.Fatalf("the page's 429 does not say why:\n%s", page.Body)
	}
	// No account it tried is locked; other clients are not affected.
	for i, u := range users {
		loginJWT(t, newClient(c.URL), u, "the-password-"+strconv.Itoa(i))
	}
	tryOther := tryLogin(t, cl, users[0], "the-password-0", from("198.51.100.9"))
	wantStatus(t, tryOther, http.StatusOK)

	time.Sleep(time.Until(banned.Add(limitBan + 500*time.Millisecond)))
	wantStatus(t, tryLogin(t, cl, users[0], "the-password-0", from(attacker)), http.StatusOK)
}

// TestBruteForceBadTokens: bad reset and verify tokens count against the
// address like failed logins.
func TestBruteForceBadTokens(t *testing.T) {
	t.Parallel()
	c := startCaddy(t, limitConfig(freePort(t), 0))
	cl := newClient(c.URL)
	alice := uniqueEmail("alice")
	register(t, cl, alice, "alice-password")
	const attacker = "203.0.113.77"
	for i := range 6 {
		if i%2 == 0 {
			wantDetail(t, cl.postJSON(t, "/auth/reset-password", map[string]string{"token": fmt.Sprint("guess", i), "password": "new-password-1"}, from(attacker)),
				http.StatusBadRequest, "RESET_PASSWORD_BAD_TOKEN")
		} else {
			wantDetail(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": fmt.Sprint("guess", i)}, from(attacker)),
				http.StatusBadRequest, "VERIFY_USER_BAD_TOKEN")
		}
	}
	wantTooMany(t, tryLogin(t, cl, alice, "alice-password", from(attacker)))
	wantTooMany(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": "guess"}, from(attacker)))
	loginJWT(t, cl, alice, "alice-password")
}

// TestBruteForceUntrustedForwardedFor: where no proxy is trusted, a client
// cannot escape its ban by claiming other addresses in X-Forwarded-For.
func TestBruteForceUntrustedForwardedFor(t *testing.T) {
	t.Parallel()
	trusted, untrusted := freePort(t), freePort(t)
	c := startCaddy(t, limitConfig(trusted, untrusted))
	cl := newClient(fmt.Sprintf("http://127.0.0.1:%d", untrusted))
	alice := uniqueEmail("alice")
	register(t, cl, alice, "alice-password")
	for i := range 6 {
		wantDetail(t, tryLogin(t, cl, uniqueEmail("nobody"), "guess", from(fmt.Sprintf("192.0.2.%d", 10+i))),
			http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
	}
	wantTooMany(t, tryLogin(t, cl, alice, "alice-password", from("192.0.2.99")))
	wantTooMany(t, tryLogin(t, cl, alice, "alice-password"))
	// The ban is on 127.0.0.1 itself: on the trusted site, the clients it
	// forwards for are not 127.0.0.1 and still get in.
	wantStatus(t, tryLogin(t, newClient(c.URL), alice, "alice-password", from("198.51.100.1")), http.StatusOK)
}
