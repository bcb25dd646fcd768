package gatehouse

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// TestAppValidate: options that parse but cannot work are refused when
// the config loads, with the option named.
func TestAppValidate(t *testing.T) {
	valid := func() *App {
		a := &App{}
		if err := a.resolve(); err != nil {
			t.Fatal(err)
		}
		return a
	}
	cases := []struct {
		name    string
		change  func(a *App)
		wantErr string
	}{
		{"defaults", func(a *App) {}, ""},
		{"base_url absolute", func(a *App) { a.BaseURL = "https://app.example.com" }, ""},
		{"base_url relative", func(a *App) { a.BaseURL = "/app" }, "base_url"},
		{"base_url other scheme", func(a *App) { a.BaseURL = "ftp://example.com" }, "base_url"},
		{"registration", func(a *App) { a.Registration = "sometimes" }, "registration"},
		{"cookie name", func(a *App) { a.CookieName = "a b" }, "cookie_name"},
		{"mail dir", func(a *App) { a.Mail = &MailConfig{Dir: "/var/mail"} }, ""},
		{"mail smtp", func(a *App) { a.Mail = &MailConfig{SMTP: "smtp://h:587", From: "Ex <no-reply@example.com>"} }, ""},
		{"mail both", func(a *App) { a.Mail = &MailConfig{Dir: "/x", SMTP: "smtp://h:587", From: "a@b.c"} }, "not both"},
		{"mail neither", func(a *App) { a.Mail = &MailConfig{} }, "name a directory"},
		{"mail bad url", func(a *App) { a.Mail = &MailConfig{SMTP: "http://h", From: "a@b.c"} }, "smtp://"},
		{"mail bad from", func(a *App) { a.Mail = &MailConfig{SMTP: "smtp://h:25", From: "nobody"} }, "from"},
		{"password_hash empty", func(a *App) { a.PasswordHash = &PasswordHashConfig{} }, ""},
		{"password_hash all set", func(a *App) {
			a.PasswordHash = &PasswordHashConfig{Memory: 1 << 30, Time: 64, Threads: 255, Concurrency: 1, Queue: 1, Wait: caddy.Duration(time.Second)}
		}, ""},
		{"password_hash memory 8 MiB", func(a *App) { a.PasswordHash = &PasswordHashConfig{Memory: 8 << 20} }, ""},
		{"password_hash memory under 8 MiB", func(a *App) { a.PasswordHash = &PasswordHashConfig{Memory: 8<<20 - 1} }, "password_hash: memory"},
		{"password_hash memory negative", func(a *App) { a.PasswordHash = &PasswordHashConfig{Memory: -1} }, "password_hash: memory"},
		{"password_hash memory over 1 GiB", func(a *App) { a.PasswordHash = &PasswordHashConfig{Memory: 1<<30 + 1024} }, "password_hash: memory"},
		{"password_hash time", func(a *App) { a.PasswordHash = &PasswordHashConfig{Time: 65} }, "password_hash: time"},
		{"password_hash time negative", func(a *App) { a.PasswordHash = &PasswordHashConfig{Time: -1} }, "password_hash: time"},
		{"password_hash threads", func(a *App) { a.PasswordHash = &PasswordHashConfig{Threads: 256} }, "password_hash: threads"},
		{"password_hash concurrency", func(a *App) { a.PasswordHash = &PasswordHashConfig{Concurrency: -1} }, "password_hash: concurrency"},
		{"password_hash queue", func(a *App) { a.PasswordHash = &PasswordHashConfig{Queue: -1} }, "password_hash: queue"},
		{"password_hash wait", func(a *App) { a.PasswordHash = &PasswordHashConfig{Wait: -1} }, "password_hash: wait"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := valid()
			tc.change(a)
			err := a.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

// TestResolveSecret: a configured secret shorter than 32 bytes is refused
// rather than silently weakening every key derived from it.
func TestResolveSecret(t *testing.T) {
	t.Setenv("GATEHOUSE_TEST_SECRET", strings.Repeat("k", 32))
	a := &App{Secret: "{env.GATEHOUSE_TEST_SECRET}"}
	if err := a.resolve(); err != nil {
		t.Fatalf("resolving a 32-byte secret from the environment: %v", err)
	}
	if a.Secret != strings.Repeat("k", 32) {
		t.Fatalf("secret not expanded: %q", a.Secret)
	}
	short := &App{Secret: "too-short"}
	if err := short.resolve(); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("short secret: %v", err)
	}
	unset := &App{Secret: "{env.GATEHOUSE_TEST_UNSET_VARIABLE}"}
	if err := unset.resolve(); err == nil {
		t.Fatal("a secret from an unset variable was accepted")
	}
}

// TestGuardValidateHeaders: an identity header may not take the name of a
// header that carries credentials or framing.
func TestGuardValidateHeaders(t *testing.T) {
	for _, name := range []string{"Authorization", "cookie", "Host", "Content-Length", "Transfer-Encoding", "Connection"} {
		g := &Guard{Headers: map[string][]string{"email": {name}}}
		if err := g.Validate(); err == nil || !strings.Contains(err.Error(), "cannot be an identity header") {
			t.Errorf("header email %s: %v, want refused", name, err)
		}
	}
	for _, name := range []string{"X-Email", "Remote-User", "X-Forwarded-User"} {
		g := &Guard{Headers: map[string][]string{"email": {name}}}
		if err := g.Validate(); err != nil {
			t.Errorf("header email %s: %v", name, err)
		}
	}
	if err := (&Guard{Headers: map[string][]string{"password": {"X-Pw"}}}).Validate(); err == nil {
		t.Error("unknown field accepted")
	}
}
