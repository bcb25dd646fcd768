package mailer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// Default SMTP ports and timeout.
const (
	DefaultSubmissionPort = 587 // smtp://: message submission with STARTTLS (RFC 6409)
	DefaultSMTPSPort      = 465 // smtps://: submission over implicit TLS (RFC 8314)
	DefaultSMTPTimeout    = 30 * time.Second
)

// SMTP delivers messages to an SMTP server (a submission service or a
// relay), one connection per message.
//
// TLS policy, from the URL given to NewSMTP:
//
//   - smtps://host[:465]: implicit TLS; the certificate is verified.
//   - smtp://host[:587]: STARTTLS is mandatory and the certificate is
//     verified. A server that does not offer STARTTLS gets nothing: no
//     AUTH, no message.
//   - smtp://localhost, smtp://127.0.0.1, smtp://[::1] (any loopback host):
//     STARTTLS is opportunistic, so that a local relay or a development
//     server without TLS works. Traffic to a loopback address never leaves
//     the machine, so neither encryption nor certificate checks protect it
//     from anyone who could not read it anyway; the certificate of a
//     loopback server that offers STARTTLS is therefore not verified
//     (local relays typically present a self-signed one), unless
//     WithTLSConfig provides a configuration.
//
// Credentials (user:pass@ in the URL) are sent with AUTH, preferring
// SCRAM, then PLAIN, then LOGIN; never over an unencrypted connection to a
// non-loopback host, which the mandatory STARTTLS above already rules out
// and which go-mail's PLAIN and LOGIN refuse on their own as well.
type SMTP struct {
	host        string // as in the URL, without brackets
	port        int
	implicitTLS bool
	loopback    bool
	username    string
	password    string
	auth        bool
	from        *mail.Address
	timeout     time.Duration
	tlsConfig   *tls.Config // nil: the defaults described on SMTP

	// netDial opens the TCP connection; tests point it elsewhere to speak
	// to a non-loopback host name.
	netDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// SMTPOption configures an SMTP transport.
type SMTPOption func(*SMTP)

// WithSMTPTimeout bounds the connection and each SMTP command (default
// DefaultSMTPTimeout). Non-positive values are ignored.
func WithSMTPTimeout(d time.Duration) SMTPOption {
	return func(s *SMTP) {
		if d > 0 {
			s.timeout = d
		}
	}
}

// WithTLSConfig sets the TLS configuration for STARTTLS and implicit TLS,
// typically to trust a private CA (RootCAs) in tests. It is cloned;
// ServerName defaults to the URL's host and MinVersion to TLS 1.2. It also
// turns certificate verification back on for a loopback host.
func WithTLSConfig(cfg *tls.Config) SMTPOption {
	return func(s *SMTP) {
		if cfg != nil {
			s.tlsConfig = cfg.Clone()
		}
	}
}

// NewSMTP returns a transport for rawURL, smtp://[user:pass@]host[:port]
// or smtps://[user:pass@]host[:port], sending as from (an RFC 5322
// address, "Example <no-reply@example.com>"). User and password are
// percent-decoded. The URL must have no path, query or fragment. Nothing
// is dialled until Send. Error messages never contain the password.
func NewSMTP(rawURL, from string, opts ...SMTPOption) (*SMTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error's message repeats the whole URL, password included:
		// report only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("mail smtp: invalid URL: %v", err)
	}
	s := &SMTP{timeout: DefaultSMTPTimeout}
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		s.port = DefaultSubmissionPort
	case "smtps":
		s.port = DefaultSMTPSPort
		s.implicitTLS = true
	default:
		return nil, fmt.Errorf("mail smtp: URL scheme %q: want smtp:// or smtps://", u.Scheme)
	}
	if u.Opaque != "" {
		return nil, errors.New("mail smtp: invalid URL: want smtp://host[:port]")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("mail smtp: invalid URL: no path, query or fragment allowed after the host")
	}
	s.host = u.Hostname()
	if s.host == "" {
		return nil, errors.New("mail smtp: invalid URL: missing host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("mail smtp: invalid URL: port %q out of range", p)
		}
		s.port = n
	}
	if u.User != nil {
		s.username = u.User.Username()
		s.password, _ = u.User.Password()
		if s.username == "" {
			return nil, errors.New("mail smtp: invalid URL: empty user name before @")
		}
		s.auth = true
	}
	if s.from, err = parseFrom(from); err != nil {
		return nil, fmt.Errorf("mail smtp: %w", err)
	}
	s.loopback = isLoopback(s.host)
	var d net.Dialer
	s.netDial = d.DialContext
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// isLoopback reports whether host is localhost or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String describes the transport for logs, without the password.
func (s *SMTP) String() string {
	scheme := "smtp"
	if s.implicitTLS {
		scheme = "smtps"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(s.host, strconv.Itoa(s.port))}
	if s.auth {
		u.User = url.User(s.username)
	}
	return u.String()
}

// clientTLSConfig is the configuration for STARTTLS and implicit TLS.
func (s *SMTP) clientTLSConfig() *tls.Config {
	cfg := s.tlsConfig
	if cfg == nil {
		cfg = &tls.Config{}
		if s.loopback && !s.implicitTLS {
			// Opportunistic STARTTLS to loopback: see the SMTP type's
			// comment. Without this, a local relay with a self-signed
			// certificate would fail every delivery.
			cfg.InsecureSkipVerify = true //nolint:gosec // loopback only
		}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = s.host
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

// clientOptions are the go-mail options of one delivery; dial is the
// connection function (see Send).
func (s *SMTP) clientOptions(dial gomail.DialContextFunc) []gomail.Option {
	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSConfig(s.clientTLSConfig()),
		gomail.WithDialContextFunc(dial),
	}
	switch {
	case s.implicitTLS:
		// WithSSL, not WithSSLPort: the latter may fall back to plain
		// port 25. The TLS handshake itself happens in dial.
		opts = append(opts, gomail.WithSSL())
	case s.loopback:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	default:
		// WithTLSPolicy, not WithTLSPortPolicy: the latter may fall back
		// to plain port 25.
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.auth {
		mechs := []gomail.SMTPAuthType{
			gomail.SMTPAuthSCRAMSHA256PLUS, gomail.SMTPAuthSCRAMSHA256,
			gomail.SMTPAuthSCRAMSHA1PLUS, gomail.SMTPAuthSCRAMSHA1,
			gomail.SMTPAuthPlain, gomail.SMTPAuthLogin,
		}
		if s.loopback && !s.implicitTLS {
			// The connection may be unencrypted, which is acceptable on
			// loopback only. The channel-bound -PLUS variants need TLS;
			// go-mail's PLAIN and LOGIN would refuse a loopback address
			// other than 127.0.0.1 and ::1 without the -NOENC spelling.
			mechs = []gomail.SMTPAuthType{
				gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1,
				gomail.SMTPAuthPlainNoEnc, gomail.SMTPAuthLoginNoEnc,
			}
		}
		opts = append(opts,
			gomail.WithOpportunisticSMTPAuth(mechs...),
			gomail.WithUsername(s.username),
			gomail.WithPassword(s.password),
		)
	}
	return opts
}

// clientHost is the host as go-mail wants it: it joins host and port
// with a colon, so an IPv6 literal keeps its brackets.
func (s *SMTP) clientHost() string {
	if strings.Contains(s.host, ":") {
		return "[" + s.host + "]"
	}
	return s.host
}

// Send delivers m in one SMTP session. Cancelling ctx aborts the session
// at once (the connection is closed), whatever step it is in.
func (s *SMTP) Send(ctx context.Context, m *store.Message) error {
	msg, err := compose(s.from, m, time.Now(), false)
	if err != nil {
		return fmt.Errorf("mail smtp: %w", err)
	}

	// go-mail watches ctx while dialling only; closing the connection
	// when ctx ends makes every later step fail at once too.
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	defer stop()
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := s.netDial(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		if s.implicitTLS {
			tc := tls.Client(conn, s.clientTLSConfig())
			if err := tc.HandshakeContext(dctx); err != nil {
				_ = conn.Close()
				return nil, err
			}
			conn = tc
		}
		mu.Lock()
		conns = append(conns, conn)
		mu.Unlock()
		if ctx.Err() != nil {
			_ = conn.Close()
			return nil, ctx.Err()
		}
		return conn, nil
	}

	client, err := gomail.NewClient(s.clientHost(), s.clientOptions(dial)...)
	if err != nil {
		return fmt.Errorf("mail smtp: %w", err)
	}
	err = client.DialAndSendWithContext(ctx, msg)
	if err != nil && msg.IsDelivered() {
		// The server accepted the message (250 after DATA); only the
		// RSET or QUIT that followed failed. Reporting an error would
		// make the Sender deliver it a second time.
		return nil
	}
	if err != nil {
		if ctx.Err() != nil {
			err = errors.Join(ctx.Err(), err)
		}
		return fmt.Errorf("mail smtp: %s: %w", net.JoinHostPort(s.host, strconv.Itoa(s.port)), err)
	}
	return nil
}

var _ Transport = (*SMTP)(nil)
