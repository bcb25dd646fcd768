package mailer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

const testFrom = "Gatehouse Example <no-reply@example.com>"

// emlFiles lists the directory's entries, failing on anything but .eml
// files (a leftover temporary file, say).
func emlFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".eml") || e.IsDir() {
			t.Errorf("unexpected entry %q in the mail directory", e.Name())
			continue
		}
		names = append(names, e.Name())
	}
	return names
}

func TestDirWritesParseableEML(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "mail", "out") // created by Send
	d, err := NewDir(dir, testFrom)
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Date(2025, 3, 14, 16, 0, 0, 123456789, time.FixedZone("CET", 3600))
	d.now = func() time.Time { return sent }
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("NewDir created the directory (err %v); it must wait for the first Send", err)
	}

	m := testMessage()
	if err := d.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}

	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o700 {
		t.Errorf("directory mode %v, want 0700", perm)
	}
	names := emlFiles(t, dir)
	if len(names) != 1 {
		t.Fatalf("files %v, want exactly one .eml", names)
	}
	if want := "20250314T150000.123456789Z-42.eml"; names[0] != want {
		t.Errorf("file name %q, want %q (<UTC time>-<outbox id>.eml)", names[0], want)
	}
	path := filepath.Join(dir, names[0])
	st, err = os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %v, want 0600", perm)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := checkComposed(t, raw, m, testFrom)
	if !regexp.MustCompile(`^<gatehouse\.42\.[a-z2-7]{26}@example\.com>$`).MatchString(p.MessageID) {
		t.Errorf("Message-ID %q, want <gatehouse.42.<random>@example.com>", p.MessageID)
	}
	// The link reads as it is in the raw file (no quoted-printable
	// "token=3D…" and soft line breaks): a file has no server to refuse
	// 8bit.
	if !bytes.Contains(raw, []byte("?token=Zm9v_YmFy-baz.QUX~123")) {
		t.Error("the raw file does not carry the link as it is")
	}
	// Nothing but CRLF line ends, no bare LF that a strict server refuses.
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Error("the file has a bare LF line end")
	}

	// A second message, and the same one again (a retry), are separate
	// files; two Message-IDs are never the same.
	sent = sent.Add(time.Second)
	if err := d.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	names = emlFiles(t, dir)
	if len(names) != 2 {
		t.Fatalf("files %v, want two", names)
	}
	raw2, _ := os.ReadFile(filepath.Join(dir, names[1]))
	if p2 := parseMail(t, raw2); p2.MessageID == p.MessageID {
		t.Errorf("two deliveries share Message-ID %q", p.MessageID)
	}
}

func TestDirSingleParts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text, html, wantType string
	}{
		{"text only", "just text\n", "", "text/plain"},
		{"html only", "", "<p>just html</p>", "text/html"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			d, err := NewDir(dir, testFrom)
			if err != nil {
				t.Fatal(err)
			}
			m := &store.Message{ID: 1, To: "a@example.org", Subject: "s", Text: tc.text, HTML: tc.html}
			if err := d.Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			names := emlFiles(t, dir)
			raw, _ := os.ReadFile(filepath.Join(dir, names[0]))
			p := parseMail(t, raw)
			if p.Single == nil || p.Single.ContentType != tc.wantType || p.Single.Body != crlf(tc.text+tc.html) {
				t.Errorf("body %+v, want a single %s part %q", p.Single, tc.wantType, tc.text+tc.html)
			}
		})
	}
}

func TestDirUnwritable(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	blocker := filepath.Join(parent, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := NewDir(filepath.Join(blocker, "mail"), testFrom) // a directory under a file
	if err != nil {
		t.Fatal(err)
	}
	err = d.Send(context.Background(), testMessage())
	if err == nil {
		t.Fatal("Send into a path under a regular file succeeded")
	}
	if IsPermanent(err) {
		t.Errorf("IsPermanent(%v) = true; a directory problem is for the operator to fix, the message is fine", err)
	}
}

// injections are header values that would end their line and start a
// header (or the body) of their own if written as they are.
var injections = []struct {
	name    string
	to      string
	subject string
}{
	{"to CRLF Bcc", "victim@example.org\r\nBcc: attacker@evil.example", "Reset"},
	{"to LF Bcc", "victim@example.org\nBcc: attacker@evil.example", "Reset"},
	{"to CR", "victim@example.org\rBcc: attacker@evil.example", "Reset"},
	{"subject CRLF header", "victim@example.org", "Reset\r\nBcc: attacker@evil.example"},
	{"subject LF body", "victim@example.org", "Reset\n\nforged body"},
	{"subject CR", "victim@example.org", "Reset\rX-Evil: 1"},
	{"subject NUL", "victim@example.org", "Reset\x00"},
	{"to encoded-looking CRLF", "=?utf-8?q?a=0D=0A?= <victim@example.org>\r\nX: y", "Reset"},
}

func checkRefused(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("a header with a control character was accepted")
	}
	if !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("error %v does not wrap ErrInvalidMessage", err)
	}
	if !IsPermanent(err) {
		t.Errorf("IsPermanent(%v) = false, want true: retrying cannot help", err)
	}
}

func TestHeaderInjectionRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range injections {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := &store.Message{ID: 7, To: tc.to, Subject: tc.subject, Text: "t", HTML: "<p>h</p>"}

			dir := t.TempDir()
			d, _ := NewDir(dir, testFrom)
			checkRefused(t, d.Send(context.Background(), m))
			if names := emlFiles(t, dir); len(names) != 0 {
				t.Errorf("Dir wrote %v for a refused message", names)
			}

			var buf bytes.Buffer
			l, _ := NewLog(slog.New(slog.NewTextHandler(&buf, nil)), testFrom)
			checkRefused(t, l.Send(context.Background(), m))
			if buf.Len() != 0 {
				t.Errorf("Log logged a refused message: %s", buf.String())
			}

			srv := (&fakeSMTP{}).start(t, "127.0.0.1:0")
			s, err := NewSMTP(fmt.Sprintf("smtp://127.0.0.1:%d", srv.Port), testFrom)
			if err != nil {
				t.Fatal(err)
			}
			checkRefused(t, s.Send(context.Background(), m))
			if ev := srv.Events(); len(ev) != 0 {
				t.Errorf("SMTP talked to the server for a refused message: %v", ev)
			}
		})
	}
}

func TestInvalidMessagesArePermanent(t *testing.T) {
	t.Parallel()
	d, _ := NewDir(t.TempDir(), testFrom)
	for name, m := range map[string]*store.Message{
		"recipient not an address": {To: "not an address", Subject: "s", Text: "t"},
		"empty recipient":          {To: "", Subject: "s", Text: "t"},
		"two recipients":           {To: "a@example.org, b@example.org", Subject: "s", Text: "t"},
		"no body":                  {To: "a@example.org", Subject: "s"},
	} {
		err := d.Send(context.Background(), m)
		if !errors.Is(err, ErrInvalidMessage) || !IsPermanent(err) {
			t.Errorf("%s: err %v, want a permanent ErrInvalidMessage", name, err)
		}
	}
}

func TestFromAddressValidated(t *testing.T) {
	t.Parallel()
	for _, from := range []string{"", "no address", "a@example.com\r\nBcc: x@evil.example", "<>"} {
		if _, err := NewDir(t.TempDir(), from); err == nil {
			t.Errorf("NewDir accepted from %q", from)
		}
		if _, err := NewSMTP("smtp://127.0.0.1", from); err == nil || !strings.HasPrefix(err.Error(), "mail smtp: ") {
			t.Errorf("NewSMTP with from %q: err %v, want a mail smtp: error", from, err)
		}
		if from == "" {
			continue // allowed for Log: no mail configured at all
		}
		if _, err := NewLog(nil, from); err == nil {
			t.Errorf("NewLog accepted from %q", from)
		}
	}
	if _, err := NewDir("", testFrom); err == nil {
		t.Error("NewDir accepted an empty directory")
	}
}

func TestLogTransport(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l, err := NewLog(slog.New(slog.NewJSONHandler(&buf, nil)), "")
	if err != nil {
		t.Fatal(err)
	}
	m := testMessage()
	if err := l.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("want one JSON log record: %v\n%s", err, buf.String())
	}
	for k, want := range map[string]any{
		"level": "INFO", "id": float64(42), "to": m.To, "subject": m.Subject, "text": m.Text,
	} {
		if rec[k] != want {
			t.Errorf("log %s = %#v, want %#v", k, rec[k], want)
		}
	}
	// The text, with its link, is the point of this transport.
	if !strings.Contains(rec["text"].(string), "/auth/verify?token=Zm9v_YmFy-baz.QUX~123") {
		t.Errorf("the logged text lacks the link: %q", rec["text"])
	}
}
