package integration

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCaddyfileExample runs Caddyfile.example from the repository root
// unchanged and follows the README walkthrough against it. The example
// uses the fixed ports 8080 and 9090 and the admin endpoint
// localhost:2019, so this test does not run in parallel; every other test
// of the package uses free ephemeral ports and `admin off` or a free
// admin port.
func TestCaddyfileExample(t *testing.T) {
	c := startExample(t)
	cl := newClient("http://localhost:8080")

	// 1. Register.
	u := register(t, cl, "alice@example.com", "correct horse battery")
	// 2. Log in.
	token := loginJWT(t, cl, "alice@example.com", "correct horse battery")
	// 3. Call the guarded app: the legacy app prints Remote-User.
	r := cl.get(t, "/", bearer(token))
	wantStatus(t, r, http.StatusOK)
	body := string(r.Body)
	for _, want := range []string{
		"Hello from the legacy app.",
		"Remote-User:    alice@example.com",
		"Remote-User-Id: " + u.ID,
		"Remote-Email:   alice@example.com",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("legacy app answer lacks %q:\n%s", want, body)
		}
	}
	// With the cookie transport too, through a jar as a browser would.
	jc := newClient("http://localhost:8080").withJar()
	wantStatus(t, jc.postForm(t, "/auth/cookie/login", formLogin("alice@example.com", "correct horse battery")), http.StatusNoContent)
	if r := jc.get(t, "/some/page"); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Remote-User:    alice@example.com") {
		t.Errorf("cookie session: %s", r)
	}

	// Without a session: 401 for an API client, the login page for a browser.
	wantDetail(t, cl.get(t, "/"), http.StatusUnauthorized, "Unauthorized")
	r = cl.get(t, "/", browser())
	wantStatus(t, r, http.StatusFound)
	if loc := r.Header.Get("Location"); loc != "/auth/login?rd=http%3A%2F%2Flocalhost%3A8080%2F" {
		t.Errorf("Location = %q", loc)
	}
	// A forged Remote-User is not printed.
	r = cl.get(t, "/", header("Remote-User", "mallory"))
	wantStatus(t, r, http.StatusUnauthorized)

	// /public/ passes anonymously, without identity.
	r = cl.get(t, "/public/", header("Remote-User", "mallory"))
	wantStatus(t, r, http.StatusOK)
	if body := string(r.Body); !strings.Contains(body, "Hello from the legacy app.") || strings.Contains(body, "mallory") ||
		!strings.Contains(body, "Remote-User:    \n") {
		t.Errorf("public answer:\n%s", body)
	}

	// 4. Log out: the token is refused.
	wantStatus(t, cl.do(t, http.MethodPost, "/auth/jwt/logout", nil, bearer(token)), http.StatusNoContent)
	wantDetail(t, cl.get(t, "/", bearer(token)), http.StatusUnauthorized, "Unauthorized")

	// The database is where the example says, next to the Caddyfile.
	if _, err := os.Stat(c.Path("gatehouse.db")); err != nil {
		t.Errorf("gatehouse.db not in the working directory: %v", err)
	}
}

// startExample runs Caddyfile.example from the repository root unchanged,
// after checking that its fixed ports are free.
func startExample(t *testing.T) *caddyProc {
	t.Helper()
	for _, addr := range []string{"127.0.0.1:8080", "127.0.0.1:9090", "127.0.0.1:2019"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("Caddyfile.example needs %s, which is in use: %v", addr, err)
		}
		l.Close()
	}
	example, err := os.ReadFile(filepath.Join(repoRoot, "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	return startCaddy(t, string(example), withReadyURL("http://localhost:8080/public/"))
}
