package mailer

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// parsedMail is a message as a standard parser sees it.
type parsedMail struct {
	Header      mail.Header
	From        *mail.Address
	To          *mail.Address
	Subject     string // decoded
	Date        time.Time
	MessageID   string
	ContentType string            // media type, without parameters
	Parts       []parsedPart      // of a multipart body, in order
	Single      *parsedPart       // of a single-part body
	Params      map[string]string // of Content-Type
}

type parsedPart struct {
	ContentType string // media type
	Charset     string
	Encoding    string // Content-Transfer-Encoding
	Body        string // decoded
}

// parseMail parses raw with net/mail and mime/multipart, failing the test
// on anything a standard reader would reject.
func parseMail(t *testing.T, raw []byte) parsedMail {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("net/mail cannot read the message: %v\n%s", err, raw)
	}
	var p parsedMail
	p.Header = msg.Header
	if p.From, err = mail.ParseAddress(msg.Header.Get("From")); err != nil {
		t.Fatalf("From %q: %v", msg.Header.Get("From"), err)
	}
	if p.To, err = mail.ParseAddress(msg.Header.Get("To")); err != nil {
		t.Fatalf("To %q: %v", msg.Header.Get("To"), err)
	}
	dec := new(mime.WordDecoder)
	if p.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		t.Fatalf("Subject %q: %v", msg.Header.Get("Subject"), err)
	}
	if p.Date, err = msg.Header.Date(); err != nil {
		t.Fatalf("Date %q: %v", msg.Header.Get("Date"), err)
	}
	p.MessageID = msg.Header.Get("Message-ID")
	if got := msg.Header.Get("MIME-Version"); got != "1.0" {
		t.Errorf("MIME-Version = %q, want 1.0", got)
	}
	var params map[string]string
	p.ContentType, params, err = mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	p.Params = params
	if !strings.HasPrefix(p.ContentType, "multipart/") {
		part := decodePart(t, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
		p.Single = &part
		return p
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart() // raw: decode the transfer encoding ourselves
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		p.Parts = append(p.Parts, decodePart(t, part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"), part))
	}
	return p
}

func decodePart(t *testing.T, contentType, encoding string, body io.Reader) parsedPart {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatalf("part Content-Type %q: %v", contentType, err)
	}
	var r io.Reader
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body)
	case "", "7bit", "8bit":
		r = body
	default:
		t.Fatalf("unexpected Content-Transfer-Encoding %q", encoding)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding a %s part (%s): %v", mt, encoding, err)
	}
	return parsedPart{ContentType: mt, Charset: params["charset"], Encoding: encoding, Body: string(b)}
}

// crlf is s with its line ends as they travel in a message: a message's
// text has CRLF line ends (RFC 5322 §2.3), whatever the template used.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// testMessage is a message with what tends to go wrong: non-ASCII text in
// the subject and both bodies, a line longer than 76 characters (soft line
// breaks), '=' and a token in a link.
func testMessage() *store.Message {
	link := "https://app.example.com/auth/verify?token=Zm9v_YmFy-baz.QUX~123"
	return &store.Message{
		ID:      42,
		To:      "Jörg Müller <jorg@example.org>",
		Subject: "Bestätigen Sie Ihre Adresse – Gatehouse",
		Text: "Hallo Jörg,\n\nbitte bestätigen Sie Ihre Adresse: " + link + "\n\n" +
			"Dieser Link ist 24 Stunden gültig; eine sehr lange Zeile, die weit über sechsundsiebzig Zeichen hinausgeht, = Gleichheitszeichen inklusive.\n",
		HTML:      "<!doctype html>\n<p>Hallo J&ouml;rg,</p>\n<p><a href=\"" + link + "\">Adresse bestätigen</a></p>\n",
		CreatedAt: time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC),
	}
}

// checkComposed checks everything compose promises about m's rendering.
func checkComposed(t *testing.T, raw []byte, m *store.Message, from string) parsedMail {
	t.Helper()
	p := parseMail(t, raw)
	wantFrom, _ := mail.ParseAddress(from)
	if p.From.String() != wantFrom.String() {
		t.Errorf("From = %q, want %q", p.From, wantFrom)
	}
	wantTo, _ := mail.ParseAddress(m.To)
	if p.To.String() != wantTo.String() {
		t.Errorf("To = %q, want %q", p.To, wantTo)
	}
	if p.Subject != m.Subject {
		t.Errorf("Subject = %q, want %q", p.Subject, m.Subject)
	}
	if !m.CreatedAt.IsZero() && !p.Date.Equal(m.CreatedAt.Truncate(time.Second)) {
		t.Errorf("Date = %v, want %v (the time it was queued)", p.Date, m.CreatedAt.Truncate(time.Second))
	}
	if !strings.HasPrefix(p.MessageID, "<") || !strings.HasSuffix(p.MessageID, "@"+domainOf(wantFrom.Address)+">") || strings.Count(p.MessageID, "@") != 1 {
		t.Errorf("Message-ID = %q, want <…@%s>", p.MessageID, domainOf(wantFrom.Address))
	}
	if p.ContentType != "multipart/alternative" {
		t.Fatalf("Content-Type = %q, want multipart/alternative", p.ContentType)
	}
	if len(p.Parts) != 2 {
		t.Fatalf("%d parts, want 2 (text/plain, text/html)", len(p.Parts))
	}
	for i, want := range []struct{ ct, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		got := p.Parts[i]
		if got.ContentType != want.ct {
			t.Errorf("part %d: Content-Type %q, want %q", i, got.ContentType, want.ct)
		}
		if !strings.EqualFold(got.Charset, "utf-8") {
			t.Errorf("part %d: charset %q, want UTF-8", i, got.Charset)
		}
		switch got.Encoding {
		case "quoted-printable", "base64", "7bit", "8bit":
		default:
			t.Errorf("part %d: Content-Transfer-Encoding %q", i, got.Encoding)
		}
		if got.Body != crlf(want.body) {
			t.Errorf("part %d (%s): decoded body\n%q\nwant\n%q", i, want.ct, got.Body, crlf(want.body))
		}
	}
	return p
}

func domainOf(addr string) string {
	return addr[strings.LastIndexByte(addr, '@')+1:]
}
