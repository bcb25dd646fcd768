package mailer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// Transport delivers one message. Send may be called concurrently. It
// returns nil once the message has been handed over for good (accepted by
// the SMTP server, written to disk); an error for which IsPermanent
// reports true means trying again cannot succeed.
type Transport interface {
	Send(ctx context.Context, m *store.Message) error
}

// ErrInvalidMessage is wrapped by the (permanent) errors for messages that
// cannot be composed: a bad recipient address, a control character in a
// header, no body.
var ErrInvalidMessage = errors.New("invalid message")

// permanentError marks an error that retrying cannot cure.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent, so that IsPermanent reports true for
// it and for any error wrapping it. A Transport written outside this
// package uses it for failures that retrying cannot cure. Permanent(nil)
// is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether a Transport's error means the message can
// never be delivered, so that the Sender gives it up instead of retrying:
//
//   - a message that cannot be composed (ErrInvalidMessage: a recipient
//     address that does not parse, CR or LF in a header, no body);
//   - an SMTP server's 5xx reply to MAIL FROM, RCPT TO or DATA (go-mail's
//     SendError with IsTemp() false and a 5xx code);
//   - go-mail refusing the sender or recipient address;
//   - anything marked with Permanent.
//
// Everything else is temporary: connection refused, timeouts, TLS
// handshake failures, 4xx replies, a missing STARTTLS or a failed AUTH
// (both are configuration problems an operator fixes; the message is fine
// and the Sender's maximum age bounds the retries), a cancelled context.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var pe *permanentError
	if errors.As(err, &pe) {
		return true
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		switch se.Reason {
		case gomail.ErrGetSender, gomail.ErrGetRcpts:
			// go-mail could not make an envelope address of the header.
			return true
		case gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose:
			// A server rejection: only a 5xx reply is permanent. Local
			// write errors on these steps carry no SMTP code.
			code := se.ErrorCode()
			return !se.IsTemp() && code >= 500 && code <= 599
		}
	}
	return false
}

// parseFrom parses the configured sender address.
func parseFrom(from string) (*mail.Address, error) {
	if err := checkHeader(from); err != nil {
		return nil, fmt.Errorf("from address: %w", err)
	}
	addr, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("from address %q: %w", from, err)
	}
	return addr, nil
}

// checkHeader refuses a header value with a control character. CR and LF
// would let a value end its header line and start another one (header
// injection: a Bcc to anyone, a second body); go-mail encodes such values
// rather than writing them raw, but a value that contains them is wrong in
// the first place, so it is refused here, for every transport alike.
func checkHeader(v string) error {
	for _, r := range v {
		if r == '\t' {
			continue
		}
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control character %U in a header", ErrInvalidMessage, r)
		}
	}
	return nil
}

// compose builds the MIME message for m: From, To, Subject, Date (the
// time it was queued, or date when unknown), a Message-ID under the
// sender's domain, and text/plain then text/html as multipart/alternative
// in UTF-8. Errors are permanent.
//
// Bodies go as they are, not quoted-printable, so that a link reads
// token=<token> in the raw message as users, filters and scripts expect
// (quoted-printable would write token=3D<tok=\r\nen>): ASCII bodies
// always (in parts labelled 8bit: see below); others when eightBit (a
// file, which has no server to refuse 8bit), else quoted-printable, since
// not every SMTP server takes 8BITMIME.
func compose(from *mail.Address, m *store.Message, date time.Time, eightBit bool) (*gomail.Msg, error) {
	if err := checkHeader(m.To); err != nil {
		return nil, Permanent(fmt.Errorf("recipient: %w", err))
	}
	if err := checkHeader(m.Subject); err != nil {
		return nil, Permanent(fmt.Errorf("subject: %w", err))
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return nil, Permanent(fmt.Errorf("%w: recipient address: %v", ErrInvalidMessage, err))
	}
	if m.Text == "" && m.HTML == "" {
		return nil, Permanent(fmt.Errorf("%w: no body", ErrInvalidMessage))
	}
	if !m.CreatedAt.IsZero() {
		date = m.CreatedAt
	}

	encoding := gomail.EncodingUSASCII
	if !isASCII(m.Text) || !isASCII(m.HTML) {
		encoding = gomail.EncodingQP
		if eightBit {
			encoding = gomail.NoEncoding
		}
	}
	text, html := m.Text, m.HTML
	if encoding != gomail.EncodingQP {
		// Unencoded bodies are written as they are: their line ends must
		// already be the message's CRLF (RFC 5322 §2.3).
		text, html = toCRLF(text), toCRLF(html)
	}
	// go-mail (v0.8.1) writes only NoEncoding bodies as they are: a part
	// labelled 7bit is quoted-printable encoded all the same (token=3D…,
	// soft line breaks), which no reader decodes under that label. So
	// ASCII bodies go in parts labelled 8bit, which 7-bit text validly is
	// (RFC 2045 §2.8), while the message keeps EncodingUSASCII, for which
	// go-mail does not demand 8BITMIME of the server: no octet needs it.
	partEncoding := encoding
	if encoding == gomail.EncodingUSASCII {
		partEncoding = gomail.NoEncoding
	}
	part := gomail.WithPartEncoding(partEncoding)
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent(), gomail.WithEncoding(encoding))
	msg.FromMailAddress(from)
	msg.ToMailAddress(to)
	msg.Subject(m.Subject)
	msg.SetDateWithValue(date)
	msg.SetMessageIDWithValue(messageID(m.ID, from))
	switch {
	case text != "" && html != "":
		msg.SetBodyString(gomail.TypeTextPlain, text, part)
		msg.AddAlternativeString(gomail.TypeTextHTML, html, part)
	case text != "":
		msg.SetBodyString(gomail.TypeTextPlain, text, part)
	default:
		msg.SetBodyString(gomail.TypeTextHTML, html, part)
	}
	return msg, nil
}

// messageID returns a globally unique Message-ID (without the angle
// brackets) under the sender's domain: the outbox id, for whoever reads the
// logs, and 128 bits of randomness, so that two deliveries of the same
// message (a retry after a lost reply) and two installations never share
// one.
func messageID(id int64, from *mail.Address) string {
	domain := "localhost"
	if at := strings.LastIndexByte(from.Address, '@'); at >= 0 && at < len(from.Address)-1 {
		domain = from.Address[at+1:]
	}
	return fmt.Sprintf("gatehouse.%d.%s@%s", id, strings.ToLower(rand.Text()), domain)
}

// recipientDomain is the part of a recipient's address the Sender logs.
func recipientDomain(to string) string {
	if addr, err := mail.ParseAddress(to); err == nil {
		to = addr.Address
	}
	if at := strings.LastIndexByte(to, '@'); at >= 0 {
		return to[at+1:]
	}
	return ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// toCRLF makes every line end CRLF.
func toCRLF(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}
