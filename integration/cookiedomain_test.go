package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestCookieDomainSharesLogin: with cookie_domain, one login on one
// subdomain is a session on the others, and the login page may send the
// browser on to another subdomain, but to no host outside the domain.
// The hosts are subdomains of localhost, where plain-HTTP development
// cookies are not Secure; every connection goes to 127.0.0.1.
func TestCookieDomainSharesLogin(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	port := freePort(t)
	cfg := fmt.Sprintf(`{
	admin off
	gatehouse {
		database sqlite ./gatehouse.db
		cookie_domain gh.localhost
	}
}

http://auth.gh.localhost:%[1]d {
	gatehouse_endpoints
	respond "portal"
}

http://app.gh.localhost:%[1]d {
	gatehouse_guard {
		login_url http://auth.gh.localhost:%[1]d/auth/login
	}
	reverse_proxy %[2]s
}
`, port, up.Addr)
	startCaddy(t, cfg, withReadyURL(fmt.Sprintf("http://127.0.0.1:%d/", port)))

	// A browser-like client: one cookie jar, every host dialled on loopback.
	browserClient := func() *client {
		cl := newClient(fmt.Sprintf("http://auth.gh.localhost:%d", port)).withJar()
		cl.hc.Transport = &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", port))
		}}
		return cl
	}
	cl := browserClient()
	app := fmt.Sprintf("http://app.gh.localhost:%d", port)

	// Not logged in: the app sends the browser to the portal's login.
	r := cl.get(t, app+"/dashboard", browser())
	wantStatus(t, r, http.StatusFound)
	loc := r.Header.Get("Location")
	wantLoc := fmt.Sprintf("http://auth.gh.localhost:%d/auth/login?rd=", port) + url.QueryEscape(app+"/dashboard")
	if loc != wantLoc {
		t.Fatalf("Location %q, want %q", loc, wantLoc)
	}

	register(t, cl, "sam@example.com", "correct-horse-battery")
	// Log in through the page, as a browser does, with rd on the app.
	login := cl.get(t, loc)
	wantStatus(t, login, http.StatusOK)
	csrf := hiddenField(t, string(login.Body), "csrf")
	form := url.Values{"csrf": {csrf}, "rd": {app + "/dashboard"}, "username": {"sam@example.com"}, "password": {"correct-horse-battery"}}
	r = cl.do(t, http.MethodPost, "/auth/login", strings.NewReader(form.Encode()),
		header("Content-Type", "application/x-www-form-urlencoded"), header("Origin", cl.base))
	wantStatus(t, r, http.StatusSeeOther)
	if got := r.Header.Get("Location"); got != app+"/dashboard" {
		t.Fatalf("after login Location %q, want %q", got, app+"/dashboard")
	}
	var domain string
	for _, c := range r.Cookies() {
		if c.Name == "gatehouse_session" {
			domain = c.Domain
		}
	}
	if domain != "gh.localhost" {
		t.Fatalf("session cookie Domain %q, want gh.localhost", domain)
	}

	// The same cookie is a session on the app.
	path := uniquePath("/dashboard")
	wantStatus(t, cl.get(t, app+path, browser()), http.StatusOK)
	if got := up.Last(t, path).Values("Remote-User"); len(got) != 1 || got[0] != "sam@example.com" {
		t.Fatalf("upstream Remote-User %q, want sam@example.com", got)
	}

	// rd outside the domain falls back to / (a new browser: the first
	// one is logged in, and its login page sends it straight on).
	for _, rd := range []string{"http://evil.localhost:1/x", "http://gh.localhost.evil.example/x", "//evil.example"} {
		cl := browserClient()
		form.Set("rd", rd)
		login := cl.get(t, "/auth/login")
		form.Set("csrf", hiddenField(t, string(login.Body), "csrf"))
		r := cl.do(t, http.MethodPost, "/auth/login", strings.NewReader(form.Encode()),
			header("Content-Type", "application/x-www-form-urlencoded"), header("Origin", cl.base))
		wantStatus(t, r, http.StatusSeeOther)
		if got := r.Header.Get("Location"); got != "/" {
			t.Errorf("rd %q: Location %q, want /", rd, got)
		}
	}
}

// hiddenField reads the value of a hidden input from a page.
func hiddenField(t *testing.T, page, name string) string {
	t.Helper()
	marker := `name="` + name + `" value="`
	i := strings.Index(page, marker)
	if i < 0 {
		t.Fatalf("no %s field in page:\n%s", name, page)
	}
	rest := page[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}
