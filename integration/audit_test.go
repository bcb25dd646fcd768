package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// auditConfig sends the audit log (logger gatehouse.audit) to its own
// JSON file and keeps it out of the default log: the snippet of the
// README's "Audit log".
func auditConfig(port int, auditPath string) string {
	return fmt.Sprintf(`{
	admin off
	log audit {
		include gatehouse.audit
		output file %s
		format json
	}
	log default {
		exclude gatehouse.audit
	}
	gatehouse {
		database sqlite ./gatehouse.db
		mail dir ./mail
	}
}

http://127.0.0.1:%d {
	gatehouse_endpoints
	respond "hello"
}
`, auditPath, port)
}

// readAudit parses the audit file, one JSON object a line, waiting up to
// 5 s for at least min entries.
func readAudit(t *testing.T, path string, min int) ([]map[string]any, []byte) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		raw, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			t.Fatalf("reading the audit log: %v", err)
		}
		var entries []map[string]any
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("audit log line %q is not JSON: %v", sc.Text(), err)
			}
			entries = append(entries, m)
		}
		if len(entries) >= min || time.Now().After(deadline) {
			return entries, raw
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAuditLog drives an account's life through the API of the real
// binary and checks the audit file: the logger's name, one entry per
// event with its outcome, user, actor and address, and none of the
// secrets used anywhere in it.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "gatehouse-audit.log")
	c := prepareCaddy(t, auditConfig(freePort(t), auditPath))

	const (
		adminEmail = "root@example.com"
		aliceEmail = "alice@example.com"
		adminPW    = "root-password-of-the-audit-test"
		alicePW1   = "alice-first-password-audit"
		alicePW2   = "alice-second-password-audit"
		wrongPW    = "alice-wrong-password-audit"
	)
	// The first superuser, from the command line: no entry (see README).
	res := c.Run(t, adminPW+"\n", "gatehouse", "user", "add", "--config", "Caddyfile", "--email", adminEmail, "--superuser")
	if res.ExitCode != 0 || res.Stderr != "" {
		t.Fatalf("user add: exit %d, stderr %q", res.ExitCode, res.Stderr)
	}
	adminID := strings.TrimSpace(res.Stdout)
	c.Start()
	cl := newClient(c.URL)

	alice := register(t, cl, aliceEmail, alicePW1)
	wantDetail(t, cl.postJSON(t, "/auth/register", map[string]any{"email": aliceEmail, "password": "another-password-audit"}),
		http.StatusBadRequest, "REGISTER_USER_ALREADY_EXISTS")
	wantDetail(t, cl.postForm(t, "/auth/jwt/login", url.Values{"username": {aliceEmail}, "password": {wrongPW}}),
		http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
	token := loginJWT(t, cl, aliceEmail, alicePW1)
	cookie := loginCookie(t, cl, aliceEmail, alicePW1)

	// A password change, first with a wrong current password.
	wantStatus(t, cl.patchJSON(t, "/users/me", map[string]any{"password": alicePW2, "current_password": wrongPW}, bearer(token)),
		http.StatusBadRequest)
	wantStatus(t, cl.patchJSON(t, "/users/me", map[string]any{"password": alicePW2, "current_password": alicePW1}, bearer(token)),
		http.StatusOK)
	wantStatus(t, cl.get(t, "/users/me", withCookie(cookie)), http.StatusUnauthorized) // ended with the change
	wantStatus(t, cl.do(t, http.MethodPost, "/auth/jwt/logout", nil, bearer(token)), http.StatusNoContent)

	// The administrator deactivates alice, gives her roles, deletes her.
	adminToken := loginJWT(t, cl, adminEmail, adminPW)
	token2 := loginJWT(t, cl, aliceEmail, alicePW2)
	wantStatus(t, cl.patchJSON(t, "/users/"+alice.ID, map[string]any{"is_active": false, "roles": []string{"staff", "ops"}},
		bearer(adminToken)), http.StatusOK)
	wantStatus(t, cl.do(t, http.MethodDelete, "/users/"+alice.ID, nil, bearer(adminToken)), http.StatusNoContent)

	// 7 entries of this change's events, and 5 logins.
	entries, raw := readAudit(t, auditPath, 12)
	for _, e := range entries {
		if e["logger"] != "gatehouse.audit" || e["msg"] != "audit" || e["level"] != "info" {
			t.Errorf("entry %v: want logger gatehouse.audit, msg audit, level info", e)
		}
	}
	byEvent := func(event string) []map[string]any {
		var out []map[string]any
		for _, e := range entries {
			if e["event"] == event {
				// What is asserted below is the entry without its time
				// and the fields every entry has (checked above).
				m := map[string]any{}
				for k, v := range e {
					if k != "ts" && k != "logger" && k != "msg" && k != "level" {
						m[k] = v
					}
				}
				out = append(out, m)
			}
		}
		return out
	}
	want := func(event string, w ...map[string]any) {
		t.Helper()
		if got := byEvent(event); !reflect.DeepEqual(got, w) {
			t.Errorf("%s entries:\n got %v\nwant %v", event, got, w)
		}
	}
	const ip = "127.0.0.1"
	want("register",
		map[string]any{"event": "register", "outcome": "success", "user_id": alice.ID, "ip": ip},
		map[string]any{"event": "register", "outcome": "user_exists", "ip": ip})
	want("password_change",
		map[string]any{"event": "password_change", "outcome": "wrong_current_password", "user_id": alice.ID, "actor_id": alice.ID, "ip": ip},
		map[string]any{"event": "password_change", "outcome": "success", "user_id": alice.ID, "actor_id": alice.ID, "ip": ip,
			"sessions_ended": float64(1)})
	jti := func(token string) string { return jwtClaims(t, token)["jti"].(string) }
	want("logout",
		map[string]any{"event": "logout", "outcome": "success", "user_id": alice.ID, "actor_id": alice.ID, "ip": ip,
			"session": jti(token)[:8], "transport": "bearer"})
	want("user_update",
		map[string]any{"event": "user_update", "outcome": "success", "user_id": alice.ID, "actor_id": adminID, "ip": ip,
			"fields": []any{"is_active", "roles"}, "is_active": false, "roles": []any{"staff", "ops"}, "sessions_ended": float64(1)})
	want("user_delete",
		map[string]any{"event": "user_delete", "outcome": "success", "user_id": alice.ID, "actor_id": adminID, "ip": ip})
	// Implied revocations have no entry of their own; the command line
	// writes none.
	want("sessions_revoke_all")
	want("session_revoke")
	want("user_create")

	// Login entries: written by caddyauth's Login.
	t.Run("login entries", func(t *testing.T) {
		logins := byEvent("login")
		type key struct{ outcome, user string }
		count := map[key]int{}
		for _, e := range logins {
			if e["ip"] != ip || e["actor_id"] != nil {
				t.Errorf("login entry %v: want ip %s and no actor_id", e, ip)
			}
			user, _ := e["user_id"].(string)
			count[key{e["outcome"].(string), user}]++
		}
		wantCount := map[key]int{
			{"bad_credentials", alice.ID}: 1,
			{"success", alice.ID}:         3,
			{"success", adminID}:          1,
		}
		if !reflect.DeepEqual(count, wantCount) {
			t.Errorf("login entries by (outcome, user_id) = %v, want %v\n%v", count, wantCount, logins)
		}
	})

	secrets := map[string]string{
		"admin password": adminPW, "first password": alicePW1, "second password": alicePW2, "wrong password": wrongPW,
		"JWT": token, "second JWT": token2, "admin JWT": adminToken, "cookie value": cookie.Value,
		"session id": jti(token), "second session id": jti(token2), "admin session id": jti(adminToken),
		"email": aliceEmail, "admin email": adminEmail,
	}
	for what, s := range secrets {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("the audit log contains the %s", what)
		}
	}
	// The default log keeps none of it.
	if strings.Contains(c.Log(), "gatehouse.audit") {
		t.Error("audit entries reached the default log despite exclude")
	}
}
