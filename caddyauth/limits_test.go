package caddyauth_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// testLimit: small numbers, so that the tests reach them quickly.
var testLimit = caddyauth.LoginLimit{Account: 3, IP: 5, Window: 10 * time.Minute, Ban: 15 * time.Minute}

func limitEnv(t *testing.T, tweak func(*caddyauth.Options)) *mailEnv {
	t.Helper()
	return newMailEnv(t, func(o *caddyauth.Options) {
		o.LoginLimit = testLimit
		if tweak != nil {
			tweak(o)
		}
	})
}

// loginFrom logs in from a client address, with the login's context as
// the handlers make it.
func (e *env) loginFrom(ip, user, password string) (*caddyauth.LoginResult, error) {
	ci := caddyauth.ClientInfo{IP: ip}
	ctx := caddyauth.WithLinks(caddyauth.WithClient(context.Background(), ci), testLinks)
	return e.svc.Login(ctx, user, password, store.TransportBearer, ci)
}

// wantRetry checks that err is a 429 RetryError asking to come back after
// want.
func wantRetry(t *testing.T, err error, want time.Duration) {
	t.Helper()
	var re *caddyauth.RetryError
	if !errors.As(err, &re) || re.Busy || re.RetryAfter != want {
		t.Fatalf("err = %v, want a RetryError (not busy) after %v", err, want)
	}
}

func TestAccountLockout(t *testing.T) {
	t.Parallel()
	e := limitEnv(t, nil)
	u := e.mustUser(t, "arthur@camelot.bt")
	e.outbox(t)
	// Failures from different addresses, in different spellings of the
	// address, all count against the one account.
	users := []string{"arthur@camelot.bt", "ARTHUR@camelot.bt", " Arthur@Camelot.bt "}
	for i := range testLimit.Account {
		if _, err := e.loginFrom("192.0.2."+string(rune('1'+i)), users[i], "wrong password"); err != caddyauth.ErrBadCredentials {
			t.Fatalf("failure %d: %v, want ErrBadCredentials", i+1, err)
		}
	}
	// Locked: the right password is answered exactly as a wrong one.
	for _, ip := range []string{"192.0.2.1", "198.51.100.7"} {
		if res, err := e.loginFrom(ip, "arthur@camelot.bt", testPassword); err != caddyauth.ErrBadCredentials || res != nil {
			t.Fatalf("right password during the lock from %s = %v, %v; want exactly ErrBadCredentials", ip, res, err)
		}
	}
	// The owner is told, once.
	msgs := e.outbox(t)
	if len(msgs) != 1 || msgs[0].To != u.Email {
		t.Fatalf("outbox after the lock = %+v, want one notice to %s", msgs, u.Email)
	}
	for _, part := range []string{msgs[0].Text, msgs[0].HTML} {
		if !strings.Contains(part, "15 minutes") || !strings.Contains(part, testLinks.Forgot) {
			t.Errorf("the notice does not give the lock's length and the forgot-password link:\n%s", part)
		}
	}
	// Failures during the lock neither extend it nor mail again.
	e.clock.Advance(testLimit.Ban - time.Second)
	for range 2 * testLimit.Account {
		e.loginFrom("203.0.113.1", "arthur@camelot.bt", "wrong password")
	}
	if msgs := e.outbox(t); len(msgs) != 0 {
		t.Fatalf("failures during the lock queued %d more mails", len(msgs))
	}
	if _, err := e.loginFrom("192.0.2.1", "arthur@camelot.bt", testPassword); err != caddyauth.ErrBadCredentials {
		t.Fatalf("a second before the lock ends: %v, want ErrBadCredentials", err)
	}
	e.clock.Advance(time.Second)
	if _, err := e.loginFrom("192.0.2.1", "arthur@camelot.bt", testPassword); err != nil {
		t.Fatalf("once the lock ended, the right password: %v", err)
	}
}

// TestResetLiftsTheLock: the lockout notice sends its owner to reset the
// password, and the new password must then work at once. The address's
// failures are not forgiven with it.
func TestResetLiftsTheLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := limitEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	for range testLimit.Account {
		e.loginFrom("192.0.2.1", "arthur@camelot.bt", "wrong password")
	}
	e.outbox(t) // the notice
	if err := e.svc.ForgotPassword(ctx, "arthur@camelot.bt", testLinks); err != nil {
		t.Fatal(err)
	}
	token := tokenOf(t, e.outbox(t), "arthur@camelot.bt", testLinks.Reset)
	// Before the reset the lock holds, whatever the password.
	if _, err := e.loginFrom("198.51.100.1", "arthur@camelot.bt", testPassword); err != caddyauth.ErrBadCredentials {
		t.Fatalf("during the lock: %v, want ErrBadCredentials", err)
	}
	const fresh = "a new and quite long passphrase"
	if err := e.svc.ResetPassword(ctx, token, fresh); err != nil {
		t.Fatalf("ResetPassword: %v", err)
	}
	if _, err := e.loginFrom("198.51.100.1", "arthur@camelot.bt", fresh); err != nil {
		t.Fatalf("the new password right after the reset: %v", err)
	}
	// 192.0.2.1 has failed testLimit.Account times; its count runs on to
	// the address ban.
	for range testLimit.IP - testLimit.Account {
		e.loginFrom("192.0.2.1", "nobody@camelot.bt", "wrong password")
	}
	_, err := e.loginFrom("192.0.2.1", "arthur@camelot.bt", fresh)
	wantRetry(t, err, testLimit.Ban)
}

func TestSuccessClearsTheAccountsFailures(t *testing.T) {
	t.Parallel()
	e := limitEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	for range 3 {
		for range testLimit.Account - 1 {
			e.loginFrom("192.0.2.1", "arthur@camelot.bt", "wrong password")
		}
		if _, err := e.loginFrom("198.51.100.1", "arthur@camelot.bt", testPassword); err != nil {
			t.Fatalf("login after %d failures: %v", testLimit.Account-1, err)
		}
	}
}

func TestAddressBan(t *testing.T) {
	t.Parallel()
	e := limitEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	e.mustUser(t, "gawain@camelot.bt")
	// One client cycling through usernames: each account fails once,
	// the address IP times.
	for i := range testLimit.IP {
		user := []string{"arthur@camelot.bt", "gawain@camelot.bt", "nobody@camelot.bt", "x@camelot.bt", "y@camelot.bt"}[i]
		if _, err := e.loginFrom("192.0.2.66", user, "guess"); err != caddyauth.ErrBadCredentials {
			t.Fatalf("guess %d: %v", i+1, err)
		}
	}
	// Banned, whatever it tries: no hashing, 429 with the ban's length.
	e.clock.Advance(time.Minute)
	_, err := e.loginFrom("192.0.2.66", "arthur@camelot.bt", testPassword)
	wantRetry(t, err, testLimit.Ban-time.Minute)
	// Everyone else, the accounts it tried included, is not affected.
	for _, user := range []string{"arthur@camelot.bt", "gawain@camelot.bt"} {
		if _, err := e.loginFrom("198.51.100.1", user, testPassword); err != nil {
			t.Fatalf("login of %s from another address: %v", user, err)
		}
	}
	// After the ban the address may try again.
	e.clock.Advance(testLimit.Ban - time.Minute)
	if _, err := e.loginFrom("192.0.2.66", "arthur@camelot.bt", testPassword); err != nil {
		t.Fatalf("login once the ban ended: %v", err)
	}
}

func TestAddressBanCountsIPv6ByPrefix(t *testing.T) {
	t.Parallel()
	e := limitEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	// A fresh address of one /64 for each guess is still one client.
	for i := range testLimit.IP {
		ip := "2001:db8:1:2:" + string(rune('a'+i)) + "::1"
		e.loginFrom(ip, "nobody@camelot.bt", "guess")
	}
	_, err := e.loginFrom("2001:db8:1:2:ffff::9", "arthur@camelot.bt", testPassword)
	wantRetry(t, err, testLimit.Ban)
	// Another /64 is another client; an IPv4-mapped address is the IPv4 one.
	if _, err := e.loginFrom("2001:db8:1:3::1", "arthur@camelot.bt", testPassword); err != nil {
		t.Fatalf("login from another /64: %v", err)
	}
	for range testLimit.IP {
		e.loginFrom("::ffff:192.0.2.9", "nobody@camelot.bt", "guess")
	}
	_, err = e.loginFrom("192.0.2.9", "arthur@camelot.bt", testPassword)
	wantRetry(t, err, testLimit.Ban)
}

func TestBadTokensCountAgainstTheAddress(t *testing.T) {
	t.Parallel()
	e := limitEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	ctx := caddyauth.WithClient(context.Background(), caddyauth.ClientInfo{IP: "192.0.2.66"})
	for i := range testLimit.IP {
		var err error
		if i%2 == 0 {
			err = e.svc.ResetPassword(ctx, "guessed-token", "a new password 123")
		} else {
			_, err = e.svc.Verify(ctx, "guessed-token")
		}
		if err != caddyauth.ErrResetBadToken && err != caddyauth.ErrVerifyBadToken {
			t.Fatalf("guess %d: %v, want a bad-token error", i+1, err)
		}
	}
	wantRetry(t, e.svc.ResetPassword(ctx, "guessed-token", "a new password 123"), testLimit.Ban)
	_, err := e.svc.Verify(ctx, "guessed-token")
	wantRetry(t, err, testLimit.Ban)
	_, err = e.loginFrom("192.0.2.66", "arthur@camelot.bt", testPassword)
	wantRetry(t, err, testLimit.Ban)
	// Without an address (the command line) no limit applies.
	if err := e.svc.ResetPassword(context.Background(), "guessed-token", "a new password 123"); err != caddyauth.ErrResetBadToken {
		t.Fatalf("reset without an address: %v", err)
	}
}

func TestLoginLimitOff(t *testing.T) {
	t.Parallel()
	e := limitEnv(t, func(o *caddyauth.Options) { o.LoginLimit.Off = true })
	e.mustUser(t, "arthur@camelot.bt")
	for range 2 * testLimit.IP {
		e.loginFrom("192.0.2.66", "arthur@camelot.bt", "wrong password")
	}
	if _, err := e.loginFrom("192.0.2.66", "arthur@camelot.bt", testPassword); err != nil {
		t.Fatalf("login with the limits off: %v", err)
	}
}

func TestLimitsKeepNoUsername(t *testing.T) {
	t.Parallel()
	e := limitEnv(t, nil)
	// People type their password into the username box: it must not end
	// up in the database, in the main file or in its write-ahead log.
	const typed = "My-Secret-Password-In-The-Wrong-Box"
	for range testLimit.Account {
		if _, err := e.loginFrom("192.0.2.1", typed, "x"); err != caddyauth.ErrBadCredentials {
			t.Fatalf("login: %v", err)
		}
	}
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(e.db.Path() + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(bytes.ToLower(b), []byte(strings.ToLower(typed))) {
			t.Fatalf("the database file%s holds the typed username", suffix)
		}
	}
}
