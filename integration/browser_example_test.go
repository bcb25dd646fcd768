package integration

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBrowserCaddyfileExample is the person's journey of the issue, in a
// real browser, against Caddyfile.example exactly as the README runs it:
// the guarded app sends the browser to log in; the person signs up, lands
// on the page they asked for, confirms the address with the link (which
// the example, with no mail configured, writes to the log), changes the
// password on the account page, logs out everywhere, and is sent to log
// in again. It uses the example's fixed ports, so like
// TestCaddyfileExample it does not run in parallel.
func TestBrowserCaddyfileExample(t *testing.T) {
	ctx := startBrowser(t)
	c := startExample(t)
	const site = "http://localhost:8080"
	email, password := "bea@example.com", "first-password-1"

	// The guarded app sends the browser to log in, remembering the page.
	browse(ctx, t, site+"/hello?x=1")
	u, err := url.Parse(location(ctx, t))
	if err != nil || u.Path != "/auth/login" || u.Query().Get("rd") != site+"/hello?x=1" {
		t.Fatalf("not on the login page with rd: %s", location(ctx, t))
	}

	// Sign up: the example does not require verification, so the person
	// is logged in and lands on the page they asked for.
	follow(ctx, t, "a#register-link")
	fill(ctx, t, "#full_name", "Bea Example")
	fill(ctx, t, "#email", email)
	fill(ctx, t, "#password", password)
	submit(ctx, t, "form#register")
	if got := location(ctx, t); got != site+"/hello?x=1" {
		t.Fatalf("after sign-up the browser is at %s, want %s/hello?x=1", got, site)
	}
	if body := bodyText(ctx, t); !strings.Contains(body, "Remote-User:    "+email) || !strings.Contains(body, "Remote-Name:    Bea Example") {
		t.Fatalf("the legacy app does not see the person:\n%s", body)
	}

	// The verification link, from the log; confirming takes a click.
	link := waitForLink(t, c, email)
	browse(ctx, t, link)
	if n := count(ctx, t, "form#verify"); n != 1 {
		t.Fatalf("the verification page has %d verify forms", n)
	}
	submit(ctx, t, "form#verify")
	if body := bodyText(ctx, t); !strings.Contains(body, "verified") {
		t.Fatalf("after confirming:\n%s", body)
	}

	// The account page: change the password.
	browse(ctx, t, site+"/auth/account")
	if body := bodyText(ctx, t); !strings.Contains(body, email) || !strings.Contains(body, "verified") {
		t.Fatalf("account page:\n%s", body)
	}
	fill(ctx, t, "#current-password", password)
	fill(ctx, t, "#new-password", "second-password-2")
	submit(ctx, t, "form#password")
	if n := count(ctx, t, "[role=status]"); n != 1 {
		t.Fatalf("no confirmation after the password change:\n%s", bodyText(ctx, t))
	}

	// Log out everywhere: the app sends the browser to log in again.
	submit(ctx, t, "form#logout-everywhere")
	browse(ctx, t, site+"/hello")
	if u, err := url.Parse(location(ctx, t)); err != nil || u.Path != "/auth/login" {
		t.Fatalf("after logging out everywhere the app answered at %s", location(ctx, t))
	}
	// The new password works, in a fresh API session.
	cl := newClient(site)
	if r := cl.postForm(t, "/auth/jwt/login", formLogin(email, "second-password-2")); r.Status != http.StatusOK {
		t.Fatalf("login with the new password: %s", r)
	}
}

var verifyLinkInLog = regexp.MustCompile(`http://localhost:8080/auth/verify\?token=[A-Za-z0-9_-]+`)

// waitForLink finds the verification link mailed to email in the log,
// where the example (no mail configured) writes mail.
func waitForLink(t *testing.T, c *caddyProc, email string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(c.Log(), "\n") {
			if strings.Contains(line, email) {
				if m := verifyLinkInLog.FindString(line); m != "" {
					return m
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no verification link for %s in the log:\n%s", email, tail(c.Log(), 30))
	return ""
}
