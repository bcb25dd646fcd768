package caddyauth_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

var testLinks = caddyauth.Links{Verify: "https://app.example.com/auth/verify", Reset: "https://app.example.com/auth/reset-password",
	Forgot: "https://app.example.com/auth/forgot-password"}

// mailEnv is an env that records events and wake-ups.
type mailEnv struct {
	*env
	mu     sync.Mutex
	events []recordedEvent
	wakes  int
}

type recordedEvent struct {
	name string
	data map[string]any
}

func newMailEnv(t *testing.T, tweak func(*caddyauth.Options)) *mailEnv {
	t.Helper()
	me := &mailEnv{}
	me.env = newEnv(t, func(o *caddyauth.Options) {
		o.OnEvent = func(_ context.Context, name string, data map[string]any) {
			me.mu.Lock()
			defer me.mu.Unlock()
			me.events = append(me.events, recordedEvent{name, data})
		}
		o.OnMailQueued = func() {
			me.mu.Lock()
			defer me.mu.Unlock()
			me.wakes++
		}
		if tweak != nil {
			tweak(o)
		}
	})
	return me
}

// outbox takes every message due now from the outbox.
func (e *mailEnv) outbox(t *testing.T) []store.Message {
	t.Helper()
	now := e.clock.Now()
	msgs, err := e.db.ClaimMessages(context.Background(), now.Add(time.Hour), now.Add(2*time.Hour), 100)
	if err != nil {
		t.Fatalf("ClaimMessages: %v", err)
	}
	for i, m := range msgs {
		if err := e.db.DeleteMessage(context.Background(), m.ID); err != nil {
			t.Fatal(err)
		}
		// The outbox holds the bodies sealed: no live token in the clear.
		if strings.Contains(m.Text, "token=") || strings.Contains(m.HTML, "token=") {
			t.Fatalf("a queued message carries its link in the clear:\n%s", m.Text)
		}
		if msgs[i].Text, err = e.svc.OpenMailBody(m.Text); err != nil {
			t.Fatal(err)
		}
		if msgs[i].HTML, err = e.svc.OpenMailBody(m.HTML); err != nil {
			t.Fatal(err)
		}
	}
	return msgs
}

var tokenInLink = regexp.MustCompile(`token=([A-Za-z0-9_-]+)`)

// tokenOf finds the one message to the address and returns its token,
// checking that both parts carry the same link to the page.
func tokenOf(t *testing.T, msgs []store.Message, to, page string) string {
	t.Helper()
	var found []store.Message
	for _, m := range msgs {
		if m.To == to {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d messages to %s, want 1 (outbox: %d)", len(found), to, len(msgs))
	}
	m := found[0]
	link := page + "?token="
	if !strings.Contains(m.Text, link) || !strings.Contains(m.HTML, link) {
		t.Fatalf("message does not link to %s:\n%s\n%s", page, m.Text, m.HTML)
	}
	tm, hm := tokenInLink.FindStringSubmatch(m.Text), tokenInLink.FindStringSubmatch(m.HTML)
	if tm == nil || hm == nil || tm[1] != hm[1] || len(tm[1]) < 40 {
		t.Fatalf("token in text %v and HTML %v", tm, hm)
	}
	return tm[1]
}

func (e *mailEnv) eventNames() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []string
	for _, ev := range e.events {
		names = append(names, ev.name)
	}
	return names
}

func TestForgotAndResetPassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newMailEnv(t, nil)
	u := e.mustUser(t, "arthur@camelot.bt")
	session := e.login(t, "arthur@camelot.bt", store.TransportBearer)
	e.mustUser(t, "inactive@camelot.bt", func(nu *caddyauth.NewUser) { nu.IsActive = false })

	for _, email := range []string{"nobody@camelot.bt", "inactive@camelot.bt"} {
		if err := e.svc.ForgotPassword(ctx, email, testLinks); err != nil {
			t.Fatalf("ForgotPassword(%s): %v", email, err)
		}
	}
	if msgs := e.outbox(t); len(msgs) != 0 {
		t.Fatalf("unknown and inactive accounts were mailed: %d messages", len(msgs))
	}
	if err := e.svc.ForgotPassword(ctx, "ARTHUR@camelot.bt", testLinks); err != nil {
		t.Fatal(err)
	}
	token := tokenOf(t, e.outbox(t), "arthur@camelot.bt", testLinks.Reset)
	if e.wakes == 0 {
		t.Error("the sender was not woken after a mail was queued")
	}

	// A refused password does not spend the link.
	var pe *caddyauth.PasswordError
	if err := e.svc.ResetPassword(ctx, token, "short"); !errors.As(err, &pe) {
		t.Fatalf("weak password: %v, want a PasswordError", err)
	}
	// A bad token wins over a bad password.
	if err := e.svc.ResetPassword(ctx, "no-such-token", "short"); !errors.Is(err, caddyauth.ErrResetBadToken) {
		t.Fatalf("bad token and weak password: %v, want ErrResetBadToken", err)
	}
	if err := e.svc.ResetPassword(ctx, token, "a brand new password"); err != nil {
		t.Fatalf("ResetPassword: %v", err)
	}
	// Single use.
	if err := e.svc.ResetPassword(ctx, token, "yet another password"); !errors.Is(err, caddyauth.ErrResetBadToken) {
		t.Fatalf("second use: %v, want ErrResetBadToken", err)
	}
	// The old password is refused, the new one works, old sessions are gone.
	if _, err := e.svc.Login(ctx, u.Email, testPassword, store.TransportBearer, caddyauth.ClientInfo{}); !errors.Is(err, caddyauth.ErrBadCredentials) {
		t.Fatalf("old password: %v", err)
	}
	if _, err := e.svc.Login(ctx, u.Email, "a brand new password", store.TransportBearer, caddyauth.ClientInfo{}); err != nil {
		t.Fatalf("new password: %v", err)
	}
	e.mustRefuse(t, store.TransportBearer, session.Credential)

	names := e.eventNames()
	if strings.Join(names, ",") != caddyauth.EventForgotPassword+","+caddyauth.EventPasswordReset {
		t.Fatalf("events %v", names)
	}
	for _, ev := range e.events {
		if ev.data["user_id"] != u.ID || ev.data["email"] != u.Email || len(ev.data) != 2 {
			t.Errorf("event %s data %v: want exactly user_id and email", ev.name, ev.data)
		}
	}
}

func TestResetTokenRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name  string
		after func(e *mailEnv, u *store.User)
	}{
		{"expired", func(e *mailEnv, u *store.User) { e.clock.Advance(caddyauth.DefaultResetTokenLifetime) }},
		{"user deactivated", func(e *mailEnv, u *store.User) {
			if _, err := e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{IsActive: ptr(false)}, ""); err != nil {
				t.Fatal(err)
			}
		}},
		{"password changed since", func(e *mailEnv, u *store.User) {
			if _, err := e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{Password: ptr("changed by an admin")}, ""); err != nil {
				t.Fatal(err)
			}
		}},
		{"email changed since", func(e *mailEnv, u *store.User) {
			if _, err := e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{Email: ptr("pendragon@camelot.bt")}, ""); err != nil {
				t.Fatal(err)
			}
		}},
		{"user deleted", func(e *mailEnv, u *store.User) {
			if err := e.svc.DeleteUser(ctx, u.ID); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newMailEnv(t, nil)
			u := e.mustUser(t, "arthur@camelot.bt")
			if err := e.svc.ForgotPassword(ctx, u.Email, testLinks); err != nil {
				t.Fatal(err)
			}
			token := tokenOf(t, e.outbox(t), u.Email, testLinks.Reset)
			tc.after(e, u)
			if err := e.svc.ResetPassword(ctx, token, "a brand new password"); !errors.Is(err, caddyauth.ErrResetBadToken) {
				t.Fatalf("ResetPassword: %v, want ErrResetBadToken", err)
			}
		})
	}
	t.Run("just before expiry", func(t *testing.T) {
		t.Parallel()
		e := newMailEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt")
		if err := e.svc.ForgotPassword(ctx, u.Email, testLinks); err != nil {
			t.Fatal(err)
		}
		token := tokenOf(t, e.outbox(t), u.Email, testLinks.Reset)
		e.clock.Advance(caddyauth.DefaultResetTokenLifetime - time.Second)
		if err := e.svc.ResetPassword(ctx, token, "a brand new password"); err != nil {
			t.Fatalf("ResetPassword: %v", err)
		}
	})
	t.Run("concurrent uses", func(t *testing.T) {
		t.Parallel()
		e := newMailEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt")
		if err := e.svc.ForgotPassword(ctx, u.Email, testLinks); err != nil {
			t.Fatal(err)
		}
		token := tokenOf(t, e.outbox(t), u.Email, testLinks.Reset)
		var wg sync.WaitGroup
		results := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- e.svc.ResetPassword(ctx, token, "a brand new password")
			}()
		}
		wg.Wait()
		close(results)
		ok := 0
		for err := range results {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, caddyauth.ErrResetBadToken):
				t.Errorf("unexpected error: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d concurrent resets with one token succeeded, want exactly 1", ok)
		}
	})
}

func TestVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newMailEnv(t, func(o *caddyauth.Options) { o.VerifyOnRegister = true })
	u, err := e.svc.Register(ctx, "gawain@camelot.bt", testPassword, "Gawain", testLinks)
	if err != nil {
		t.Fatal(err)
	}
	token := tokenOf(t, e.outbox(t), u.Email, testLinks.Verify)

	// Asking again mails a second link; unknown, inactive and verified
	// accounts get none.
	e.mustUser(t, "inactive@camelot.bt", func(nu *caddyauth.NewUser) { nu.IsActive = false })
	e.mustUser(t, "verified@camelot.bt", func(nu *caddyauth.NewUser) { nu.IsVerified = true })
	for _, email := range []string{"nobody@camelot.bt", "inactive@camelot.bt", "verified@camelot.bt", "GAWAIN@camelot.bt"} {
		if err := e.svc.RequestVerify(ctx, email, testLinks); err != nil {
			t.Fatal(err)
		}
	}
	second := tokenOf(t, e.outbox(t), u.Email, testLinks.Verify)

	if _, err := e.svc.Verify(ctx, "no-such-token"); !errors.Is(err, caddyauth.ErrVerifyBadToken) {
		t.Fatalf("unknown token: %v", err)
	}
	got, err := e.svc.Verify(ctx, token)
	if err != nil || !got.IsVerified {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	for _, tok := range []string{token, second} {
		if _, err := e.svc.Verify(ctx, tok); !errors.Is(err, caddyauth.ErrVerifyAlreadyVerified) {
			t.Fatalf("token after verification: %v, want ErrVerifyAlreadyVerified", err)
		}
	}
	names := e.eventNames()
	if strings.Join(names, ",") != caddyauth.EventUserRegistered+","+caddyauth.EventUserVerified {
		t.Fatalf("events %v", names)
	}
}

func TestVerifyTokenRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		e := newMailEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt")
		if err := e.svc.RequestVerify(ctx, u.Email, testLinks); err != nil {
			t.Fatal(err)
		}
		token := tokenOf(t, e.outbox(t), u.Email, testLinks.Verify)
		e.clock.Advance(caddyauth.DefaultVerifyTokenLifetime)
		if _, err := e.svc.Verify(ctx, token); !errors.Is(err, caddyauth.ErrVerifyBadToken) {
			t.Fatalf("expired: %v", err)
		}
	})
	t.Run("email changed since", func(t *testing.T) {
		t.Parallel()
		e := newMailEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt")
		if err := e.svc.RequestVerify(ctx, u.Email, testLinks); err != nil {
			t.Fatal(err)
		}
		token := tokenOf(t, e.outbox(t), u.Email, testLinks.Verify)
		if _, err := e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{Email: ptr("pendragon@camelot.bt")}, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Verify(ctx, token); !errors.Is(err, caddyauth.ErrVerifyBadToken) {
			t.Fatalf("after an email change: %v", err)
		}
	})
	t.Run("inactive users can verify", func(t *testing.T) {
		t.Parallel()
		e := newMailEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt")
		if err := e.svc.RequestVerify(ctx, u.Email, testLinks); err != nil {
			t.Fatal(err)
		}
		token := tokenOf(t, e.outbox(t), u.Email, testLinks.Verify)
		if _, err := e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{IsActive: ptr(false)}, ""); err != nil {
			t.Fatal(err)
		}
		if got, err := e.svc.Verify(ctx, token); err != nil || !got.IsVerified {
			t.Fatalf("Verify = %+v, %v", got, err)
		}
	})
}

func TestMailLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newMailEnv(t, func(o *caddyauth.Options) { o.MailLimit = store.MailLimit{Max: 2, Window: time.Hour} })
	u := e.mustUser(t, "arthur@camelot.bt")
	for range 5 {
		if err := e.svc.ForgotPassword(ctx, u.Email, testLinks); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.RequestVerify(ctx, "ARTHUR@camelot.bt", testLinks); err != nil {
			t.Fatal(err)
		}
	}
	if msgs := e.outbox(t); len(msgs) != 2 {
		t.Fatalf("%d mails to one address within the window, want the limit of 2", len(msgs))
	}
	e.clock.Advance(time.Hour + time.Second)
	if err := e.svc.ForgotPassword(ctx, u.Email, testLinks); err != nil {
		t.Fatal(err)
	}
	if msgs := e.outbox(t); len(msgs) != 1 {
		t.Fatalf("after the window: %d mails, want 1", len(msgs))
	}
}

func TestMailTemplatesOverride(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "reset.subject.txt"), []byte("Custom: {{.Site}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tpl, err := caddyauth.LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := newMailEnv(t, func(o *caddyauth.Options) { o.Templates = tpl })
	// Verified: only then does a mail carry the account's name.
	u := e.mustUser(t, "arthur@camelot.bt", func(nu *caddyauth.NewUser) { nu.FullName = "<b>Arthur</b>"; nu.IsVerified = true })
	if err := e.svc.ForgotPassword(context.Background(), u.Email, testLinks); err != nil {
		t.Fatal(err)
	}
	msgs := e.outbox(t)
	if len(msgs) != 1 || msgs[0].Subject != "Custom: app.example.com" {
		t.Fatalf("subject %q, want the override", msgs[0].Subject)
	}
	// The other templates are the embedded ones; the HTML part escapes.
	if !strings.Contains(msgs[0].HTML, "&lt;b&gt;Arthur&lt;/b&gt;") || strings.Contains(msgs[0].HTML, "<b>Arthur</b>") {
		t.Fatalf("HTML part does not escape the name:\n%s", msgs[0].HTML)
	}
	if !strings.Contains(msgs[0].Text, "expires in 1 hour") {
		t.Fatalf("text part:\n%s", msgs[0].Text)
	}

	// A broken template is refused when loaded.
	if err := os.WriteFile(filepath.Join(dir, "verify.html"), []byte("{{.Nope}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := caddyauth.LoadTemplates(dir); err == nil {
		t.Fatal("a template naming an unknown field was accepted")
	}
}

// A mail_templates directory that does not exist, or holds a misspelt
// template, is refused rather than silently ignored.
func TestMailTemplatesDirectoryChecked(t *testing.T) {
	t.Parallel()
	if _, err := caddyauth.LoadTemplates(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing directory was accepted")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Reset.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := caddyauth.LoadTemplates(dir); err == nil || !strings.Contains(err.Error(), "Reset.txt") {
		t.Errorf("a misspelt template: %v", err)
	}
}

// Queued bodies open with this installation's secret only; bodies that
// were never sealed pass as they are.
func TestOpenMailBody(t *testing.T) {
	t.Parallel()
	e := newMailEnv(t, nil)
	u := e.mustUser(t, "arthur@camelot.bt")
	if err := e.svc.ForgotPassword(context.Background(), u.Email, testLinks); err != nil {
		t.Fatal(err)
	}
	msgs, err := e.db.ClaimMessages(context.Background(), e.clock.Now().Add(time.Hour), e.clock.Now().Add(2*time.Hour), 10)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("ClaimMessages = %v, %v", msgs, err)
	}
	opts := e.opts
	opts.Secret = bytes.Repeat([]byte{9}, 32)
	other, err := caddyauth.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.OpenMailBody(msgs[0].Text); err == nil {
		t.Fatal("another secret opened a sealed body")
	}
	if got, err := e.svc.OpenMailBody("plain text"); err != nil || got != "plain text" {
		t.Fatalf("unsealed body: %q, %v", got, err)
	}
	if got, err := e.svc.OpenMailBody(msgs[0].Text); err != nil || !strings.Contains(got, testLinks.Reset+"?token=") {
		t.Fatalf("opened body %q, %v", got, err)
	}
}
