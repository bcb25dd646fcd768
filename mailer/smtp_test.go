package mailer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	gomail "github.com/wneessen/go-mail"
)

func newTestSMTP(t *testing.T, rawURL string, opts ...SMTPOption) *SMTP {
	t.Helper()
	s, err := NewSMTP(rawURL, testFrom, opts...)
	if err != nil {
		t.Fatalf("NewSMTP(%q): %v", rawURL, err)
	}
	return s
}

// onlyMail returns the one message the server received.
func onlyMail(t *testing.T, srv *fakeSMTP) receivedMail {
	t.Helper()
	mails := srv.Mails()
	if len(mails) != 1 {
		t.Fatalf("server received %d messages, want 1: %v", len(mails), mails)
	}
	return mails[0]
}

func TestNewSMTPURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url                   string
		host                  string
		port                  int
		implicitTLS, loopback bool
		user, pass            string
		auth                  bool
		str                   string
	}{
		{"smtp://smtp.example.com", "smtp.example.com", 587, false, false, "", "", false, "smtp://smtp.example.com:587"},
		{"smtp://smtp.example.com:2525/", "smtp.example.com", 2525, false, false, "", "", false, "smtp://smtp.example.com:2525"},
		{"SMTPS://smtp.example.com", "smtp.example.com", 465, true, false, "", "", false, "smtps://smtp.example.com:465"},
		{"smtps://u:p@smtp.example.com:10465", "smtp.example.com", 10465, true, false, "u", "p", true, "smtps://u@smtp.example.com:10465"},
		{"smtp://us%40er:p%3Ass%2Fw@mail.example.com", "mail.example.com", 587, false, false, "us@er", "p:ss/w", true, "smtp://us%40er@mail.example.com:587"},
		{"smtp://apikey:@mail.example.com", "mail.example.com", 587, false, false, "apikey", "", true, "smtp://apikey@mail.example.com:587"},
		{"smtp://localhost:1025", "localhost", 1025, false, true, "", "", false, "smtp://localhost:1025"},
		{"smtp://LocalHost.", "LocalHost.", 587, false, true, "", "", false, "smtp://LocalHost.:587"},
		{"smtp://127.0.0.1", "127.0.0.1", 587, false, true, "", "", false, "smtp://127.0.0.1:587"},
		{"smtp://127.8.9.10:25", "127.8.9.10", 25, false, true, "", "", false, "smtp://127.8.9.10:25"},
		{"smtp://[::1]:25", "::1", 25, false, true, "", "", false, "smtp://[::1]:25"},
		{"smtp://[2001:db8::1]", "2001:db8::1", 587, false, false, "", "", false, "smtp://[2001:db8::1]:587"},
		{"smtp://localhost.example.com", "localhost.example.com", 587, false, false, "", "", false, "smtp://localhost.example.com:587"},
		{"smtp://10.0.0.1", "10.0.0.1", 587, false, false, "", "", false, "smtp://10.0.0.1:587"},
	} {
		s, err := NewSMTP(tc.url, testFrom)
		if err != nil {
			t.Errorf("NewSMTP(%q): %v", tc.url, err)
			continue
		}
		got := [...]any{s.host, s.port, s.implicitTLS, s.loopback, s.username, s.password, s.auth, s.String()}
		want := [...]any{tc.host, tc.port, tc.implicitTLS, tc.loopback, tc.user, tc.pass, tc.auth, tc.str}
		if got != want {
			t.Errorf("NewSMTP(%q): host, port, implicitTLS, loopback, user, pass, auth, String =\n%v, want\n%v", tc.url, got, want)
		}
	}

	for _, bad := range []string{
		"", "smtp://", "smtp:///", "http://smtp.example.com", "smtp.example.com:587", "smtp:smtp.example.com",
		"smtp://smtp.example.com:0", "smtp://smtp.example.com:70000", "smtp://smtp.example.com:abc",
		"smtp://smtp.example.com/path", "smtp://smtp.example.com?tls=off", "smtp://smtp.example.com#x",
		"smtp://:secret@smtp.example.com", "smtp://user:sec ret@smtp.example.com", "smtp://user:secret@smtp.example.com:bad",
		"smtp://user:secret@smtp.example.com/\x7f", "smtp://user:secret%zz@smtp.example.com",
	} {
		_, err := NewSMTP(bad, testFrom)
		if err == nil {
			t.Errorf("NewSMTP(%q) accepted a bad URL", bad)
			continue
		}
		if !strings.HasPrefix(err.Error(), "mail smtp: ") {
			t.Errorf("NewSMTP(%q): error %q, want a \"mail smtp: \" prefix", bad, err)
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "sec ret") {
			t.Errorf("NewSMTP(%q): the error reveals the password: %q", bad, err)
		}
	}
}

func TestSMTPTLSPolicy(t *testing.T) {
	t.Parallel()
	// The go-mail client each delivery builds, inspected before dialling.
	policy := func(rawURL string, opts ...SMTPOption) (string, *tls.Config) {
		s := newTestSMTP(t, rawURL, opts...)
		c, err := gomail.NewClient(s.clientHost(), s.clientOptions(s.netDial)...)
		if err != nil {
			t.Fatal(err)
		}
		return c.TLSPolicy(), s.clientTLSConfig()
	}
	if p, cfg := policy("smtp://smtp.example.com"); p != "TLSMandatory" || cfg.InsecureSkipVerify || cfg.ServerName != "smtp.example.com" || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("smtp:// to a remote host: policy %s, skip verify %v, server name %q, min version %x; want mandatory, verified, TLS 1.2",
			p, cfg.InsecureSkipVerify, cfg.ServerName, cfg.MinVersion)
	}
	if p, cfg := policy("smtp://localhost:25"); p != "TLSOpportunistic" || !cfg.InsecureSkipVerify {
		t.Errorf("smtp:// to loopback: policy %s, skip verify %v; want opportunistic, unverified", p, cfg.InsecureSkipVerify)
	}
	if _, cfg := policy("smtp://localhost:25", WithTLSConfig(&tls.Config{})); cfg.InsecureSkipVerify {
		t.Error("WithTLSConfig on loopback: verification still off")
	}
	if _, cfg := policy("smtps://localhost"); cfg.InsecureSkipVerify {
		t.Error("smtps:// to loopback: the certificate is not verified; implicit TLS is always verified")
	}
}

func TestSMTPPlainLoopback(t *testing.T) {
	t.Parallel()
	srv := (&fakeSMTP{}).start(t, "127.0.0.1:0")
	s := newTestSMTP(t, fmt.Sprintf("smtp://127.0.0.1:%d", srv.Port))
	m := testMessage()
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send to a loopback server without STARTTLS: %v", err)
	}
	got := onlyMail(t, srv)
	if got.From != "<no-reply@example.com>" || !slices.Equal(got.Rcpt, []string{"<jorg@example.org>"}) || got.TLS || got.AuthUser != "" {
		t.Errorf("received %v; want from <no-reply@example.com> to <jorg@example.org>, plain, no auth", got)
	}
	checkComposed(t, got.Data, m, testFrom)
}

func TestSMTPLoopbackOpportunisticSTARTTLS(t *testing.T) {
	t.Parallel()
	// A local relay with a certificate nobody trusts (for another name,
	// from an unknown CA): STARTTLS is used, the certificate is not checked.
	ca := newTestCA(t, "relay.internal")
	srv := (&fakeSMTP{startTLS: true, tls: ca.serverConfig()}).start(t, "127.0.0.1:0")
	s := newTestSMTP(t, fmt.Sprintf("smtp://localhost:%d", srv.Port))
	if err := s.Send(context.Background(), testMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := onlyMail(t, srv); !got.TLS {
		t.Errorf("received %v over plain text; the server offered STARTTLS", got)
	}
}

func TestSMTPAuth(t *testing.T) {
	t.Parallel()
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			srv := (&fakeSMTP{authMechs: []string{mech}, user: "us@er", pass: "p:ss/w%rd"}).start(t, "127.0.0.1:0")
			s := newTestSMTP(t, fmt.Sprintf("smtp://us%%40er:p%%3Ass%%2Fw%%25rd@127.0.0.1:%d", srv.Port))
			if err := s.Send(context.Background(), testMessage()); err != nil {
				t.Fatalf("Send: %v (events %v)", err, srv.Events())
			}
			if got := onlyMail(t, srv); got.AuthUser != "us@er" {
				t.Errorf("received %v; want it authenticated as us@er", got)
			}
			if ev := srv.Events(); !slices.Contains(ev, "AUTH "+mech) {
				t.Errorf("events %v: no AUTH %s", ev, mech)
			}

			// Wrong password: refused, and not a reason to drop the message.
			bad := newTestSMTP(t, fmt.Sprintf("smtp://us%%40er:wrong@127.0.0.1:%d", srv.Port))
			err := bad.Send(context.Background(), testMessage())
			if err == nil {
				t.Fatal("Send with a wrong password succeeded")
			}
			if IsPermanent(err) {
				t.Errorf("IsPermanent(%v) = true; bad credentials are the operator's to fix", err)
			}
			if len(srv.Mails()) != 1 {
				t.Errorf("server has %d messages, want still 1", len(srv.Mails()))
			}
		})
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "localhost", "127.0.0.1")
	srv := (&fakeSMTP{implicitTLS: true, tls: ca.serverConfig(), authMechs: []string{"PLAIN", "LOGIN"}, user: "u", pass: "pw"}).start(t, "127.0.0.1:0")

	s := newTestSMTP(t, fmt.Sprintf("smtps://u:pw@localhost:%d", srv.Port), WithTLSConfig(&tls.Config{RootCAs: ca.Pool}))
	if err := s.Send(context.Background(), testMessage()); err != nil {
		t.Fatalf("Send over smtps: %v", err)
	}
	if got := onlyMail(t, srv); !got.TLS || got.AuthUser != "u" {
		t.Errorf("received %v; want TLS and user u", got)
	}
	if ev := srv.Events(); !slices.Contains(ev, "AUTH PLAIN") || slices.Contains(ev, "STARTTLS") {
		t.Errorf("events %v; want AUTH PLAIN (PLAIN preferred over LOGIN) and no STARTTLS", ev)
	}

	// The same server without trusting its CA: smtps verifies even on
	// loopback, so this fails, temporarily, before any credential is sent.
	untrusted := newTestSMTP(t, fmt.Sprintf("smtps://u:pw@127.0.0.1:%d", srv.Port))
	err := untrusted.Send(context.Background(), testMessage())
	if err == nil || IsPermanent(err) {
		t.Fatalf("Send to an untrusted certificate: err %v, want a temporary error", err)
	}
	if n := strings.Count(strings.Join(srv.Events(), " "), "AUTH"); n != 1 {
		t.Errorf("events %v: credentials were sent to an untrusted server", srv.Events())
	}
}

// redirect makes a transport for a remote host name connect to the fake
// server instead, checking that it dialled the expected address.
func redirect(t *testing.T, s *SMTP, wantAddr, to string) {
	s.netDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr != wantAddr {
			t.Errorf("dialled %s, want %s", addr, wantAddr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, to)
	}
}

func TestSMTPMandatorySTARTTLS(t *testing.T) {
	t.Parallel()
	// A remote host (its name resolved to the fake server by the test's
	// dialer): STARTTLS is required and the certificate verified before
	// any credential or message goes out.
	ca := newTestCA(t, "smtp.example.com")
	url := "smtp://user:secret@smtp.example.com"

	t.Run("server without STARTTLS", func(t *testing.T) {
		t.Parallel()
		srv := (&fakeSMTP{authMechs: []string{"PLAIN", "LOGIN"}, user: "user", pass: "secret"}).start(t, "127.0.0.1:0")
		s := newTestSMTP(t, url, WithTLSConfig(&tls.Config{RootCAs: ca.Pool}))
		redirect(t, s, "smtp.example.com:587", srv.Addr)
		err := s.Send(context.Background(), testMessage())
		if err == nil || !strings.Contains(err.Error(), "STARTTLS") || IsPermanent(err) {
			t.Fatalf("Send: err %v, want a temporary STARTTLS error", err)
		}
		if ev := srv.Events(); len(ev) != 0 {
			t.Errorf("the transport went on without TLS: %v", ev)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		other := newTestCA(t, "smtp.example.com")
		srv := (&fakeSMTP{startTLS: true, tls: other.serverConfig(), authMechs: []string{"PLAIN"}, user: "user", pass: "secret"}).start(t, "127.0.0.1:0")
		s := newTestSMTP(t, url, WithTLSConfig(&tls.Config{RootCAs: ca.Pool}))
		redirect(t, s, "smtp.example.com:587", srv.Addr)
		err := s.Send(context.Background(), testMessage())
		if err == nil || IsPermanent(err) {
			t.Fatalf("Send: err %v, want a temporary certificate error", err)
		}
		// The server may not have noted its side of the failed handshake
		// yet; what matters is that nothing follows STARTTLS.
		if ev := srv.Events(); len(ev) == 0 || slices.ContainsFunc(ev, func(e string) bool { return !strings.HasPrefix(e, "STARTTLS") }) {
			t.Errorf("events %v, want STARTTLS and nothing after", ev)
		}
	})
	t.Run("trusted certificate", func(t *testing.T) {
		t.Parallel()
		srv := (&fakeSMTP{startTLS: true, tls: ca.serverConfig(), authMechs: []string{"LOGIN", "PLAIN"}, user: "user", pass: "secret"}).start(t, "127.0.0.1:0")
		s := newTestSMTP(t, url, WithTLSConfig(&tls.Config{RootCAs: ca.Pool}))
		redirect(t, s, "smtp.example.com:587", srv.Addr)
		if err := s.Send(context.Background(), testMessage()); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if got := onlyMail(t, srv); !got.TLS || got.AuthUser != "user" {
			t.Errorf("received %v; want it over STARTTLS, authenticated", got)
		}
		if ev := srv.Events(); ev[0] != "STARTTLS" {
			t.Errorf("events %v: STARTTLS was not first", ev)
		}
	})
}

func TestSMTPPermanentAndTemporary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		reply     map[string]string
		permanent bool
	}{
		{"RCPT 550 no such user", map[string]string{"RCPT": "550 5.1.1 no such user"}, true},
		{"RCPT 553 bad address", map[string]string{"RCPT": "553 5.1.3 bad address syntax"}, true},
		{"MAIL 550 sender refused", map[string]string{"MAIL": "550 5.7.1 sender refused"}, true},
		{"DATA 554", map[string]string{"DATA": "554 5.5.0 no"}, true},
		{"end of DATA 552 too big", map[string]string{"DATAEND": "552 5.3.4 message too big"}, true},
		{"end of DATA 554 spam", map[string]string{"DATAEND": "554 5.7.1 rejected as spam"}, true},
		{"RCPT 450 mailbox busy", map[string]string{"RCPT": "450 4.2.1 mailbox busy"}, false},
		{"RCPT 452 too many", map[string]string{"RCPT": "452 4.5.3 too many recipients"}, false},
		{"MAIL 421 closing", map[string]string{"MAIL": "421 4.3.2 service shutting down"}, false},
		{"end of DATA 451 greylisted", map[string]string{"DATAEND": "451 4.7.1 greylisted, try later"}, false},
		{"NOOP fails before MAIL", map[string]string{"NOOP": "421 4.4.2 timeout"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := (&fakeSMTP{reply: tc.reply}).start(t, "127.0.0.1:0")
			s := newTestSMTP(t, fmt.Sprintf("smtp://127.0.0.1:%d", srv.Port))
			err := s.Send(context.Background(), testMessage())
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if got := IsPermanent(err); got != tc.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tc.permanent)
			}
			if !strings.HasPrefix(err.Error(), "mail smtp: 127.0.0.1:") {
				t.Errorf("error %q lacks the mail smtp: <address> prefix", err)
			}
		})
	}
}

func TestSMTPConnectionFailuresAreTemporary(t *testing.T) {
	t.Parallel()
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		err = newTestSMTP(t, fmt.Sprintf("smtp://127.0.0.1:%d", port)).Send(context.Background(), testMessage())
		if err == nil || IsPermanent(err) {
			t.Fatalf("Send to a closed port: err %v, want a temporary error", err)
		}
	})
	t.Run("server never answers", func(t *testing.T) {
		t.Parallel()
		srv := (&fakeSMTP{noGreeting: true}).start(t, "127.0.0.1:0")
		s := newTestSMTP(t, fmt.Sprintf("smtp://127.0.0.1:%d", srv.Port), WithSMTPTimeout(300*time.Millisecond))
		start := time.Now()
		err := s.Send(context.Background(), testMessage())
		if err == nil || IsPermanent(err) {
			t.Fatalf("Send to a silent server: err %v, want a temporary error", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Send took %v with a 300ms timeout", d)
		}
	})
	t.Run("context cancelled mid-session", func(t *testing.T) {
		t.Parallel()
		srv := (&fakeSMTP{noGreeting: true}).start(t, "127.0.0.1:0")
		s := newTestSMTP(t, fmt.Sprintf("smtp://127.0.0.1:%d", srv.Port)) // default 30 s timeout
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		err := s.Send(ctx, testMessage())
		if !errors.Is(err, context.Canceled) || IsPermanent(err) {
			t.Fatalf("Send: err %v, want a temporary error wrapping context.Canceled", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Send took %v after its context was cancelled", d)
		}
	})
}

func TestSMTPDeliveredThenConnectionLost(t *testing.T) {
	t.Parallel()
	// The server accepts the message (250 after DATA) and hangs up
	// without answering RSET or QUIT: the message is delivered, and
	// reporting an error would deliver it twice.
	srv := (&fakeSMTP{closeAfter: true}).start(t, "127.0.0.1:0")
	s := newTestSMTP(t, fmt.Sprintf("smtp://127.0.0.1:%d", srv.Port))
	if err := s.Send(context.Background(), testMessage()); err != nil {
		t.Fatalf("Send: %v; the server had accepted the message", err)
	}
	onlyMail(t, srv)
}

func TestSMTPIPv6Loopback(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	l.Close()
	srv := (&fakeSMTP{authMechs: []string{"PLAIN"}, user: "u", pass: "p"}).start(t, "[::1]:0")
	s := newTestSMTP(t, fmt.Sprintf("smtp://u:p@[::1]:%d", srv.Port))
	if err := s.Send(context.Background(), testMessage()); err != nil {
		t.Fatalf("Send to [::1]: %v", err)
	}
	if got := onlyMail(t, srv); got.AuthUser != "u" {
		t.Errorf("received %v; want it authenticated", got)
	}
}

func TestIsPermanent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("dial tcp: connection refused"), false},
		{context.DeadlineExceeded, false},
		{Permanent(errors.New("x")), true},
		{fmt.Errorf("wrapped: %w", Permanent(errors.New("x"))), true},
		{fmt.Errorf("%w: y", ErrInvalidMessage), false}, // only compose's errors are marked
	} {
		if got := IsPermanent(tc.err); got != tc.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
}
