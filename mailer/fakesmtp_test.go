package mailer

// A small SMTP server for the SMTP transport's tests: enough of RFC 5321
// (EHLO, STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT)
// to talk to go-mail, with replies that a test can override, on
// 127.0.0.1 (or ::1).

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// receivedMail is one message the fake server accepted.
type receivedMail struct {
	From     string // MAIL FROM argument, with its brackets
	Rcpt     []string
	Data     []byte // the message as sent, dot-unstuffed, CRLF line ends
	TLS      bool   // the session was encrypted
	AuthUser string // the user that authenticated, if any
}

type fakeSMTP struct {
	// Configuration, set before start.
	tls         *tls.Config // certificate for STARTTLS and implicit TLS
	implicitTLS bool        // TLS from the first byte (smtps)
	startTLS    bool        // advertise STARTTLS
	authMechs   []string    // advertised AUTH mechanisms; non-empty: AUTH required
	user, pass  string      // accepted credentials
	noGreeting  bool        // accept connections but never say anything
	closeAfter  bool        // close the connection right after the 250 for DATA
	// reply overrides the reply to a command: keys "MAIL", "RCPT",
	// "DATA" (the 354), "DATAEND" (after the final dot), "NOOP".
	reply map[string]string

	ln   net.Listener
	Addr string // host:port
	Port int

	mu     sync.Mutex
	mails  []receivedMail
	events []string // commands in order ("AUTH PLAIN", "MAIL", "STARTTLS", …)
	conns  []net.Conn
}

// start listens on network address addr ("127.0.0.1:0") and serves until
// the test ends.
func (f *fakeSMTP) start(t *testing.T, addr string) *fakeSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("fake smtp: %v", err)
	}
	f.ln = ln
	f.Addr = ln.Addr().String()
	f.Port = ln.Addr().(*net.TCPAddr).Port
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			wg.Go(func() { f.serve(c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			_ = c.Close()
		}
		f.mu.Unlock()
		wg.Wait()
	})
	return f
}

func (f *fakeSMTP) Mails() []receivedMail {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]receivedMail(nil), f.mails...)
}

func (f *fakeSMTP) Events() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.events...)
}

func (f *fakeSMTP) event(e string) {
	f.mu.Lock()
	f.events = append(f.events, e)
	f.mu.Unlock()
}

func (f *fakeSMTP) replyFor(key, def string) string {
	if r, ok := f.reply[key]; ok {
		return r
	}
	return def
}

func (f *fakeSMTP) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if f.noGreeting {
		_, _ = c.Read(make([]byte, 1)) // until the client gives up
		return
	}
	isTLS := false
	if f.implicitTLS {
		tc := tls.Server(c, f.tls)
		if err := tc.Handshake(); err != nil {
			return
		}
		c, isTLS = tc, true
	}
	r := bufio.NewReader(c)
	say := func(lines ...string) {
		_, _ = c.Write([]byte(strings.Join(lines, "\r\n") + "\r\n"))
	}
	readLine := func() (string, bool) {
		l, err := r.ReadString('\n')
		if err != nil {
			return "", false
		}
		return strings.TrimRight(l, "\r\n"), true
	}
	say("220 fake.test ESMTP")
	var (
		authUser string
		cur      *receivedMail
	)
	for {
		line, ok := readLine()
		if !ok {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		switch verb {
		case "EHLO":
			lines := []string{"250-fake.test", "250-ENHANCEDSTATUSCODES"}
			if f.startTLS && !isTLS {
				lines = append(lines, "250-STARTTLS")
			}
			if len(f.authMechs) > 0 {
				lines = append(lines, "250-AUTH "+strings.Join(f.authMechs, " "))
			}
			lines = append(lines, "250 OK")
			say(lines...)
		case "HELO":
			say("250 fake.test")
		case "STARTTLS":
			f.event("STARTTLS")
			if !f.startTLS || isTLS {
				say("502 5.5.1 not now")
				continue
			}
			say("220 2.0.0 go ahead")
			tc := tls.Server(c, f.tls)
			if err := tc.Handshake(); err != nil {
				f.event("STARTTLS failed")
				return
			}
			c, isTLS = tc, true
			r = bufio.NewReader(c)
		case "AUTH":
			mech, initial, _ := strings.Cut(arg, " ")
			mech = strings.ToUpper(mech)
			f.event("AUTH " + mech)
			var user, pass string
			switch mech {
			case "PLAIN":
				if initial == "" {
					say("334 ")
					initial, _ = readLine()
				}
				b, _ := base64.StdEncoding.DecodeString(initial)
				parts := strings.Split(string(b), "\x00")
				if len(parts) == 3 {
					user, pass = parts[1], parts[2]
				}
			case "LOGIN":
				say("334 " + base64.StdEncoding.EncodeToString([]byte("Username:")))
				l, _ := readLine()
				b, _ := base64.StdEncoding.DecodeString(l)
				user = string(b)
				say("334 " + base64.StdEncoding.EncodeToString([]byte("Password:")))
				l, _ = readLine()
				b, _ = base64.StdEncoding.DecodeString(l)
				pass = string(b)
			default:
				say("504 5.5.4 mechanism not supported")
				continue
			}
			if user == f.user && pass == f.pass {
				authUser = user
				say("235 2.7.0 authenticated")
			} else {
				say("535 5.7.8 authentication credentials invalid")
			}
		case "MAIL":
			f.event("MAIL")
			if len(f.authMechs) > 0 && authUser == "" {
				say("530 5.7.0 authentication required")
				continue
			}
			rep := f.replyFor("MAIL", "250 2.1.0 OK")
			if strings.HasPrefix(rep, "250") {
				from := strings.TrimPrefix(arg, "FROM:")
				from, _, _ = strings.Cut(from, " ")
				cur = &receivedMail{From: from, TLS: isTLS, AuthUser: authUser}
			}
			say(rep)
		case "RCPT":
			f.event("RCPT")
			if cur == nil {
				say("503 5.5.1 MAIL first")
				continue
			}
			rep := f.replyFor("RCPT", "250 2.1.5 OK")
			if strings.HasPrefix(rep, "250") {
				to := strings.TrimPrefix(arg, "TO:")
				to, _, _ = strings.Cut(to, " ")
				cur.Rcpt = append(cur.Rcpt, to)
			}
			say(rep)
		case "DATA":
			f.event("DATA")
			if cur == nil || len(cur.Rcpt) == 0 {
				say("503 5.5.1 RCPT first")
				continue
			}
			rep := f.replyFor("DATA", "354 end with <CRLF>.<CRLF>")
			say(rep)
			if !strings.HasPrefix(rep, "354") {
				continue
			}
			var data bytes.Buffer
			for {
				l, ok := readLine()
				if !ok {
					return
				}
				if l == "." {
					break
				}
				data.WriteString(strings.TrimPrefix(l, ".") + "\r\n")
			}
			rep = f.replyFor("DATAEND", "250 2.0.0 queued")
			if strings.HasPrefix(rep, "250") {
				cur.Data = data.Bytes()
				f.mu.Lock()
				f.mails = append(f.mails, *cur)
				f.mu.Unlock()
			}
			cur = nil
			say(rep)
			if f.closeAfter {
				return
			}
		case "RSET":
			cur = nil
			say("250 2.0.0 OK")
		case "NOOP":
			say(f.replyFor("NOOP", "250 2.0.0 OK"))
		case "QUIT":
			say("221 2.0.0 bye")
			return
		default:
			say("502 5.5.2 unknown command")
		}
	}
}

// testCA is a throw-away certificate authority and a server certificate
// it signed for names (DNS names or IP addresses).
type testCA struct {
	Pool *x509.CertPool
	Cert tls.Certificate
}

func newTestCA(t *testing.T, names ...string) *testCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gatehouse test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &testCA{
		Pool: pool,
		Cert: tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key},
	}
}

func (ca *testCA) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{ca.Cert}, MinVersion: tls.VersionTLS12}
}

// String makes failures readable.
func (m receivedMail) String() string {
	return fmt.Sprintf("from %s to %v tls=%v auth=%q (%d bytes)", m.From, m.Rcpt, m.TLS, m.AuthUser, len(m.Data))
}
