package caddyauth_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// auditCapture is a slog.Handler that keeps every record, for the tests
// of the audit log.
type auditCapture struct {
	mu      sync.Mutex
	entries []auditRecord
}

// auditRecord is one record: its level, message and attributes, values
// resolved (string, int64, bool, or what slog.Any was given).
type auditRecord struct {
	level slog.Level
	msg   string
	attrs map[string]any
}

func (c *auditCapture) Enabled(context.Context, slog.Level) bool { return true }

func (c *auditCapture) Handle(_ context.Context, r slog.Record) error {
	rec := auditRecord{level: r.Level, msg: r.Message, attrs: map[string]any{}}
	var err error
	r.Attrs(func(a slog.Attr) bool {
		if _, dup := rec.attrs[a.Key]; dup {
			err = fmt.Errorf("attribute %q twice", a.Key)
		}
		rec.attrs[a.Key] = a.Value.Resolve().Any()
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = append(c.entries, rec)
	return err
}

// The service logs with LogAttrs only; a handler derived with attributes
// or groups would drop them, so the tests would notice.
func (c *auditCapture) WithAttrs([]slog.Attr) slog.Handler { return &auditCapture{} }
func (c *auditCapture) WithGroup(string) slog.Handler      { return &auditCapture{} }

// take returns the records since the last take and forgets them.
func (c *auditCapture) take() []auditRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.entries
	c.entries = nil
	return out
}

// all returns every record kept so far, without forgetting them.
func (c *auditCapture) all() []auditRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.entries)
}

// newAuditEnv is newEnv with the audit log captured and the current
// password required for password and email changes (the default of the
// server).
func newAuditEnv(t *testing.T, tweak func(*caddyauth.Options)) (*env, *auditCapture) {
	t.Helper()
	capture := &auditCapture{}
	e := newEnv(t, func(o *caddyauth.Options) {
		o.Audit = slog.New(capture)
		o.RequireCurrentPassword = true
		if tweak != nil {
			tweak(o)
		}
	})
	return e, capture
}

// clientIP is the address of the client in every request of these tests.
const clientIP = "198.51.100.23"

// requestCtx is the context of a request from clientIP, as the handlers
// make it; actor, if not "", is the authenticated caller.
func requestCtx(actor string) context.Context {
	ctx := caddyauth.WithClient(context.Background(), caddyauth.ClientInfo{UserAgent: "test agent", IP: clientIP})
	if actor != "" {
		ctx = caddyauth.WithActor(ctx, actor)
	}
	return ctx
}

// wantAudit fails unless got is exactly the entries of want, in order:
// each at INFO with the message "audit" and exactly the attributes given.
func wantAudit(t *testing.T, got []auditRecord, want ...map[string]any) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d audit entries, want %d:\n got %v\nwant %v", len(got), len(want), attrsOf(got), want)
	}
	for i := range want {
		if got[i].level != slog.LevelInfo || got[i].msg != "audit" {
			t.Errorf("entry %d: level %v, message %q; want INFO, \"audit\"", i, got[i].level, got[i].msg)
		}
		if !reflect.DeepEqual(got[i].attrs, want[i]) {
			t.Errorf("entry %d:\n got %#v\nwant %#v", i, got[i].attrs, want[i])
		}
	}
}

func attrsOf(recs []auditRecord) []map[string]any {
	out := make([]map[string]any, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.attrs)
	}
	return out
}

func TestAuditRegister(t *testing.T) {
	t.Parallel()
	e, capture := newAuditEnv(t, nil)
	ctx := requestCtx("")
	u, err := e.svc.Register(ctx, "alice@example.com", testPassword, "Alice", testLinks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Register(ctx, "ALICE@example.com", "another password", "", testLinks); !errors.Is(err, caddyauth.ErrUserExists) {
		t.Fatalf("second register: %v, want ErrUserExists", err)
	}
	// A password the policy refuses is a refusal of input: no entry.
	var pe *caddyauth.PasswordError
	if _, err := e.svc.Register(ctx, "bob@example.com", "short", "", testLinks); !errors.As(err, &pe) {
		t.Fatalf("weak password: %v", err)
	}
	wantAudit(t, capture.take(),
		map[string]any{"event": "register", "outcome": "success", "user_id": u.ID, "ip": clientIP},
		map[string]any{"event": "register", "outcome": "user_exists", "ip": clientIP},
	)
}

func TestAuditUserCreateByCLI(t *testing.T) {
	t.Parallel()
	e, capture := newAuditEnv(t, nil)
	// The command line has no client address and acts as "cli".
	ctx := caddyauth.WithActor(context.Background(), caddyauth.ActorCLI)
	u, err := e.svc.CreateUser(ctx, caddyauth.NewUser{Email: "root@example.com", Password: testPassword,
		IsActive: true, IsSuperuser: true, Roles: []string{"ops", "admin", "ops"}})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := e.svc.CreateUser(ctx, caddyauth.NewUser{Email: "plain@example.com", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	wantAudit(t, capture.take(),
		map[string]any{"event": "user_create", "outcome": "success", "user_id": u.ID, "actor_id": "cli",
			"is_active": true, "is_superuser": true, "is_verified": false, "roles": []string{"ops", "admin"}},
		map[string]any{"event": "user_create", "outcome": "success", "user_id": plain.ID, "actor_id": "cli",
			"is_active": false, "is_superuser": false, "is_verified": false, "roles": []string{}},
	)
}

func TestAuditLogout(t *testing.T) {
	t.Parallel()
	e, capture := newAuditEnv(t, nil)
	u := e.mustUser(t, "alice@example.com")
	for _, tr := range transports {
		res := e.login(t, u.Email, tr)
		p := e.mustAuth(t, tr, res.Credential)
		capture.take()
		// As the handlers call it.
		if err := e.svc.Logout(requestCtx(u.ID), p); err != nil {
			t.Fatal(err)
		}
		// A session ended meanwhile still logs out, once per request.
		if err := e.svc.Logout(requestCtx(""), p); err != nil {
			t.Fatal(err)
		}
		entry := map[string]any{"event": "logout", "outcome": "success", "user_id": u.ID, "actor_id": u.ID,
			"ip": clientIP, "session": res.Session.ID[:8], "transport": string(tr)}
		// The second call had no actor in its context: the principal is it.
		wantAudit(t, capture.take(), entry, entry)
	}
}

func TestAuditSessionRevocation(t *testing.T) {
	t.Parallel()
	e, capture := newAuditEnv(t, nil)
	u := e.mustUser(t, "alice@example.com")
	a := e.login(t, u.Email, store.TransportCookie)
	b := e.login(t, u.Email, store.TransportBearer)
	e.login(t, u.Email, store.TransportBearer)
	capture.take()
	ctx := requestCtx(u.ID)

	if err := e.svc.RevokeSession(ctx, u.ID, b.Session.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RevokeSession(ctx, u.ID, b.Session.ID); !errors.Is(err, caddyauth.ErrNotFound) {
		t.Fatalf("second revoke: %v, want ErrNotFound", err)
	}
	// A session id from the client is cut and cleaned.
	if err := e.svc.RevokeSession(ctx, u.ID, "ab\ncd\x1b[31mef-and-much-more"); !errors.Is(err, caddyauth.ErrNotFound) {
		t.Fatalf("bogus revoke: %v, want ErrNotFound", err)
	}
	n, err := e.svc.RevokeUserSessions(ctx, u.ID, a.Session.ID)
	if err != nil || n != 1 {
		t.Fatalf("RevokeUserSessions = %d, %v; want 1", n, err)
	}
	if n, err = e.svc.RevokeUserSessions(ctx, u.ID, ""); err != nil || n != 1 {
		t.Fatalf("RevokeUserSessions = %d, %v; want 1", n, err)
	}
	base := func(kv ...any) map[string]any {
		m := map[string]any{"user_id": u.ID, "actor_id": u.ID, "ip": clientIP}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	wantAudit(t, capture.take(),
		base("event", "session_revoke", "outcome", "success", "session", b.Session.ID[:8]),
		base("event", "session_revoke", "outcome", "not_found", "session", b.Session.ID[:8]),
		base("event", "session_revoke", "outcome", "not_found", "session", "abcd[31m"),
		base("event", "sessions_revoke_all", "outcome", "success", "sessions_ended", int64(1), "kept_session", a.Session.ID[:8]),
		base("event", "sessions_revoke_all", "outcome", "success", "sessions_ended", int64(1)),
	)
}

func TestAuditSelfService(t *testing.T) {
	t.Parallel()
	e, capture := newAuditEnv(t, nil)
	u := e.mustUser(t, "alice@example.com", func(nu *caddyauth.NewUser) { nu.IsVerified = true })
	res := e.login(t, u.Email, store.TransportBearer)
	e.login(t, u.Email, store.TransportCookie)
	e.login(t, u.Email, store.TransportCookie)
	p := e.mustAuth(t, store.TransportBearer, res.Credential)
	capture.take()
	ctx := requestCtx(u.ID)
	entry := func(event, outcome string, kv ...any) map[string]any {
		m := map[string]any{"event": event, "outcome": outcome, "user_id": u.ID, "actor_id": u.ID, "ip": clientIP}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}

	t.Run("password", func(t *testing.T) {
		wrong, next := "not my password", "a new password for alice"
		if _, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{Password: &next, CurrentPassword: &wrong}); err == nil {
			t.Fatal("wrong current password accepted")
		}
		// The policy's refusal is not a security event.
		short, current := "short", testPassword
		if _, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{Password: &short, CurrentPassword: &current}); err == nil {
			t.Fatal("short password accepted")
		}
		if _, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{Password: &next, CurrentPassword: &current}); err != nil {
			t.Fatal(err)
		}
		// The two cookie sessions end with the change, in the same entry:
		// no sessions_revoke_all of their own.
		wantAudit(t, capture.take(),
			entry("password_change", "wrong_current_password"),
			entry("password_change", "success", "sessions_ended", int64(2)),
		)
	})

	current := "a new password for alice"
	t.Run("email", func(t *testing.T) {
		wrong := "not my password"
		email := "alice@example.org"
		if _, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{Email: &email, CurrentPassword: &wrong}); err == nil {
			t.Fatal("wrong current password accepted")
		}
		if _, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{Email: &email, CurrentPassword: &current}); err != nil {
			t.Fatal(err)
		}
		// The same address again changes nothing and needs no proof.
		if _, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{Email: &email}); err != nil {
			t.Fatal(err)
		}
		// No address, old or new, in either entry.
		wantAudit(t, capture.take(),
			entry("email_change", "wrong_current_password"),
			entry("email_change", "success"),
		)
	})

	t.Run("both and name", func(t *testing.T) {
		email, next, name := "alice@example.net", "yet another password", "Alice L."
		if _, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{Email: &email, Password: &next, CurrentPassword: &current}); err != nil {
			t.Fatal(err)
		}
		// A name is no security event.
		if _, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{FullName: &name}); err != nil {
			t.Fatal(err)
		}
		wantAudit(t, capture.take(),
			entry("password_change", "success", "sessions_ended", int64(0)),
			entry("email_change", "success"),
		)
		// One failed attempt at both is one entry, under the password.
		wrong, again := "wrong again", "and another password"
		if _, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{Email: &email, Password: &again, CurrentPassword: &wrong}); err == nil {
			t.Fatal("wrong current password accepted")
		}
		wantAudit(t, capture.take(), entry("password_change", "wrong_current_password"))
	})

	t.Run("actor from the principal", func(t *testing.T) {
		// Without WithActor (a caller that forgot), the principal acts.
		name := "Alice"
		email := "alice@example.com"
		cur := "yet another password"
		if _, err := e.svc.UpdateSelf(requestCtx(""), p, caddyauth.UserPatch{FullName: &name, Email: &email, CurrentPassword: &cur}); err != nil {
			t.Fatal(err)
		}
		wantAudit(t, capture.take(), entry("email_change", "success"))
	})
}

func TestAuditPrivilegedChanges(t *testing.T) {
	t.Parallel()
	e, capture := newAuditEnv(t, nil)
	admin := e.mustUser(t, "admin@example.com", func(nu *caddyauth.NewUser) { nu.IsSuperuser = true })
	u := e.mustUser(t, "alice@example.com", func(nu *caddyauth.NewUser) {
		nu.IsVerified = true
		nu.Roles = []string{"staff"}
	})
	adminSession := e.login(t, admin.Email, store.TransportBearer)
	e.login(t, u.Email, store.TransportBearer)
	e.login(t, u.Email, store.TransportCookie)
	capture.take()
	ctx := requestCtx(admin.ID)
	entry := func(event string, kv ...any) map[string]any {
		m := map[string]any{"event": event, "outcome": "success", "user_id": u.ID, "actor_id": admin.ID, "ip": clientIP}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	update := func(patch caddyauth.UserPatch) {
		t.Helper()
		if _, err := e.svc.UpdateUser(ctx, u.ID, patch, adminSession.Session.ID); err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
	}

	// Roles and a name: the new roles, the name's by name only.
	update(caddyauth.UserPatch{Roles: &[]string{"staff", "ops", "staff"}, FullName: ptr("Alice")})
	wantAudit(t, capture.take(), entry("user_update", "fields", []string{"full_name", "roles"}, "roles", []string{"staff", "ops"}))

	// The same values again: an entry, with no field changed.
	update(caddyauth.UserPatch{Roles: &[]string{"staff", "ops"}, IsActive: ptr(true)})
	wantAudit(t, capture.take(), entry("user_update", "fields", []string{}))

	// A new address unverifies the account: both fields appear, the
	// address by name only.
	update(caddyauth.UserPatch{Email: ptr("alice@example.org")})
	wantAudit(t, capture.take(), entry("user_update", "fields", []string{"email", "is_verified"}, "is_verified", false))

	// A new password ends the user's two sessions, in this entry alone.
	newPassword := "an administrator's password"
	update(caddyauth.UserPatch{Password: &newPassword})
	wantAudit(t, capture.take(), entry("user_update", "fields", []string{"password"}, "sessions_ended", int64(2)))

	if _, err := e.svc.Login(context.Background(), "alice@example.org", newPassword, store.TransportCookie, caddyauth.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	capture.take()
	// Deactivation and a promotion in one change: every new value, and the
	// session that deactivation ended.
	update(caddyauth.UserPatch{IsActive: ptr(false), IsSuperuser: ptr(true), IsVerified: ptr(true), Roles: &[]string{}})
	wantAudit(t, capture.take(), entry("user_update",
		"fields", []string{"is_active", "is_superuser", "is_verified", "roles"},
		"is_active", false, "is_superuser", true, "is_verified", true, "roles", []string{}, "sessions_ended", int64(1)))

	// No such user: nothing happened, nothing is written.
	if _, err := e.svc.UpdateUser(ctx, "00000000-0000-0000-0000-000000000000", caddyauth.UserPatch{IsActive: ptr(false)}, ""); !errors.Is(err, caddyauth.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	if err := e.svc.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	// Its sessions went with it: no revocation entry.
	wantAudit(t, capture.take(), entry("user_delete"))
}

// TestAuditNoSecrets runs a whole life of an account and checks that no
// attribute of any entry (key or value) contains a password, a token, a
// JWT, a cookie value, a full session id, a password hash or an email
// address, while the entries are there to be checked.
func TestAuditNoSecrets(t *testing.T) {
	t.Parallel()
	capture := &auditCapture{}
	e := newMailEnv(t, func(o *caddyauth.Options) {
		o.Audit = slog.New(capture)
		o.RequireCurrentPassword = true
		o.VerifyOnRegister = true
	})
	const email = "alice@example.com"
	passwords := []string{"first password of alice", "second password of alice", "third password of alice", "fourth password of alice"}
	var secrets []string
	keep := func(s ...string) { secrets = append(secrets, s...) }
	keep(passwords...)
	keepHash := func(id string) {
		u, err := e.db.UserByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		keep(u.HashedPassword)
	}
	keepSession := func(res *caddyauth.LoginResult) {
		keep(res.Credential, res.Session.ID)
	}
	anon := requestCtx("")
	login := func(user, password string, tr store.Transport) (*caddyauth.LoginResult, error) {
		return e.svc.Login(anon, user, password, tr, caddyauth.ClientInfo{UserAgent: "test agent", IP: clientIP})
	}

	admin := e.mustUser(t, "admin@example.com", func(nu *caddyauth.NewUser) { nu.IsSuperuser = true })
	keepHash(admin.ID)
	adminRes, err := login(admin.Email, testPassword, store.TransportBearer)
	if err != nil {
		t.Fatal(err)
	}
	keepSession(adminRes)

	u, err := e.svc.Register(anon, email, passwords[0], "Alice", testLinks)
	if err != nil {
		t.Fatal(err)
	}
	keepHash(u.ID)
	verifyToken := tokenOf(t, e.outbox(t), email, testLinks.Verify)
	keep(verifyToken)
	if _, err := e.svc.Verify(anon, verifyToken); err != nil {
		t.Fatal(err)
	}
	// Failed logins, one with the password typed as the username.
	keep("typed-by-mistake password")
	if _, err := login(email, "typed-by-mistake password", store.TransportBearer); !errors.Is(err, caddyauth.ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := login(passwords[0], passwords[0], store.TransportBearer); !errors.Is(err, caddyauth.ErrBadCredentials) {
		t.Fatalf("password as username: %v", err)
	}
	bearer, err := login(email, passwords[0], store.TransportBearer)
	if err != nil {
		t.Fatal(err)
	}
	keepSession(bearer)
	cookie, err := login(email, passwords[0], store.TransportCookie)
	if err != nil {
		t.Fatal(err)
	}
	keepSession(cookie)
	p := e.mustAuth(t, store.TransportBearer, bearer.Credential)
	self := requestCtx(u.ID)

	wrong := "not the current password"
	keep(wrong)
	if _, err := e.svc.UpdateSelf(self, p, caddyauth.UserPatch{Password: &passwords[1], CurrentPassword: &wrong}); err == nil {
		t.Fatal("wrong current password accepted")
	}
	if _, err := e.svc.UpdateSelf(self, p, caddyauth.UserPatch{Password: &passwords[1], CurrentPassword: &passwords[0]}); err != nil {
		t.Fatal(err)
	}
	keepHash(u.ID)
	newEmail := "alice@example.org"
	if _, err := e.svc.UpdateSelf(self, p, caddyauth.UserPatch{Email: &newEmail, CurrentPassword: &passwords[1]}); err != nil {
		t.Fatal(err)
	}
	cookie2, err := login(newEmail, passwords[1], store.TransportCookie)
	if err != nil {
		t.Fatal(err)
	}
	keepSession(cookie2)
	if err := e.svc.RevokeSession(self, u.ID, cookie2.Session.ID); err != nil {
		t.Fatal(err)
	}

	if err := e.svc.ForgotPassword(anon, newEmail, testLinks); err != nil {
		t.Fatal(err)
	}
	resetToken := tokenOf(t, e.outbox(t), newEmail, testLinks.Reset)
	keep(resetToken)
	if err := e.svc.ResetPassword(anon, resetToken, passwords[2]); err != nil {
		t.Fatal(err)
	}
	keepHash(u.ID)
	again, err := login(newEmail, passwords[2], store.TransportBearer)
	if err != nil {
		t.Fatal(err)
	}
	keepSession(again)
	if err := e.svc.Logout(requestCtx(u.ID), e.mustAuth(t, store.TransportBearer, again.Credential)); err != nil {
		t.Fatal(err)
	}

	adminCtx := requestCtx(admin.ID)
	if _, err := e.svc.UpdateUser(adminCtx, u.ID, caddyauth.UserPatch{Password: &passwords[3], Roles: &[]string{"staff"}}, adminRes.Session.ID); err != nil {
		t.Fatal(err)
	}
	keepHash(u.ID)
	last, err := login(newEmail, passwords[3], store.TransportCookie)
	if err != nil {
		t.Fatal(err)
	}
	keepSession(last)
	if _, err := e.svc.RevokeUserSessions(adminCtx, u.ID, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeleteUser(adminCtx, u.ID); err != nil {
		t.Fatal(err)
	}

	entries := capture.all()
	seen := map[string]bool{}
	for _, rec := range entries {
		ev, _ := rec.attrs["event"].(string)
		seen[ev] = true
	}
	for _, ev := range []string{"user_create", "register", "verify", "login", "password_change", "email_change",
		"session_revoke", "password_reset", "logout", "user_update", "sessions_revoke_all", "user_delete"} {
		if !seen[ev] {
			t.Errorf("no %s entry: the scan below would miss its attributes", ev)
		}
	}
	for _, s := range secrets {
		if len(s) < 16 {
			t.Fatalf("secret %q too short to search for meaningfully", s)
		}
	}
	for i, rec := range entries {
		for k, v := range rec.attrs {
			text := k + "=" + fmt.Sprint(v)
			for _, s := range secrets {
				if strings.Contains(text, s) {
					t.Errorf("entry %d (%v): attribute %s carries a secret", i, rec.attrs["event"], k)
				}
			}
			if strings.Contains(text, "@") {
				t.Errorf("entry %d (%v): attribute %s carries an email address: %s", i, rec.attrs["event"], k, text)
			}
		}
		if strings.Contains(rec.msg, "@") || rec.msg != "audit" {
			t.Errorf("entry %d: message %q", i, rec.msg)
		}
	}
}
