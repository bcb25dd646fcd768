package handlers

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

// auditSink collects the audit log as JSON lines.
type auditSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *auditSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// take returns who did what since the last take: event, outcome, user_id,
// actor_id and ip of each entry, logins left out.
func (s *auditSink) take(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(s.b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if m["event"] == caddyauth.AuditLogin {
			continue
		}
		who := map[string]any{}
		for _, k := range []string{"event", "outcome", "user_id", "actor_id", "ip"} {
			if v, ok := m[k]; ok {
				who[k] = v
			}
		}
		out = append(out, who)
	}
	s.b.Reset()
	return out
}

// TestAuditActors: every route that changes an account names, in the
// audit log, the authenticated caller as actor_id and the client's
// address as ip; the superuser on /users/{id}, the user on their own
// pages and API routes.
func TestAuditActors(t *testing.T) {
	t.Parallel()
	var sink auditSink
	e := newPageEnv(t, func(o *caddyauth.Options) { o.Audit = slog.New(slog.NewJSONHandler(&sink, nil)) })
	alice := e.mustUser(t, "alice@example.com", verified)
	admin := e.mustUser(t, "admin@example.com", superuser)
	a, b := e.browser(t), e.browser(t)
	a.login(alice.Email, testPassword)
	b.login(alice.Email, testPassword)
	sink.take(t)
	// httptest's requests come from 192.0.2.1.
	const ip = "192.0.2.1"
	entry := func(event, userID, actorID string) map[string]any {
		return map[string]any{"event": event, "outcome": "success", "user_id": userID, "actor_id": actorID, "ip": ip}
	}
	want := func(what string, w ...map[string]any) {
		t.Helper()
		if got := sink.take(t); !reflect.DeepEqual(got, w) {
			t.Errorf("%s:\n got %v\nwant %v", what, got, w)
		}
	}

	f := findForm(t, a.page("/auth/account"), func(f htmlForm) bool {
		return f.attrs["action"] == "/auth/account/sessions/revoke"
	})
	wantSeeOther(t, a.post(f.attrs["action"], f.fill("session", b.sessionID())), "/auth/account?done=revoked")
	want("account page, one session", entry("session_revoke", alice.ID, alice.ID))

	newPassword := "alice's new password"
	wantSeeOther(t, a.submit("/auth/account", "password", "current_password", testPassword, "new_password", newPassword),
		"/auth/account?done=password")
	want("account page, password", entry("password_change", alice.ID, alice.ID))

	wantSeeOther(t, a.submit("/auth/account", "logout-everywhere"), "/auth/login")
	want("account page, everywhere", entry("sessions_revoke_all", alice.ID, alice.ID))

	a.login(alice.Email, newPassword)
	sink.take(t)
	wantSeeOther(t, a.submit("/auth/logout", "logout"), "/auth/login")
	want("logout page", entry("logout", alice.ID, alice.ID))

	token := e.bearerLogin(t, admin.Email)
	if w := e.serve("PATCH", "/users/me", `{"password":"admin's new password","current_password":"`+testPassword+`"}`,
		jsonCT(), bearer(token)); w.Code != http.StatusOK {
		t.Fatalf("PATCH /users/me: %d %s", w.Code, w.Body)
	}
	want("PATCH /users/me", entry("password_change", admin.ID, admin.ID))
	if w := e.serve("PATCH", "/users/"+alice.ID, `{"is_superuser":true}`, jsonCT(), bearer(token)); w.Code != http.StatusOK {
		t.Fatalf("PATCH /users/{id}: %d %s", w.Code, w.Body)
	}
	want("PATCH /users/{id}", entry("user_update", alice.ID, admin.ID))
	if w := e.serve("DELETE", "/users/"+alice.ID, "", bearer(token)); w.Code != http.StatusNoContent {
		t.Fatalf("DELETE /users/{id}: %d %s", w.Code, w.Body)
	}
	want("DELETE /users/{id}", entry("user_delete", alice.ID, admin.ID))
	if w := e.serve("POST", "/auth/jwt/logout", "", bearer(token)); w.Code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}
	want("POST /auth/jwt/logout", entry("logout", admin.ID, admin.ID))
}
