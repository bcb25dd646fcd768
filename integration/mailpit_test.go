package integration

// A real SMTP server for the mail tests: mailpit (github.com/axllent/mailpit),
// installed by scripts/test.sh into .tools/bin, run as a process on
// 127.0.0.1 and read back through its HTTP API.
//
//	startMailpit(t) *mailpit        start one (skips, or fails with CI=true, if not installed)
//	  .SMTPURL()                    smtp://127.0.0.1:<port>, for `mail smtp <url>`
//	  .Messages(t)                  every message, newest first (GET /api/v1/messages)
//	  .Message(t, id)               one message with its text and HTML bodies (GET /api/v1/message/{id})
//	  .WaitFor(t, to, timeout)      the newest message to an address, waiting for one to arrive
//	  .WaitForCount(t, to, n, timeout)  wait for n messages to an address; oldest first
//	  .DeleteAll(t)                 empty the mailbox
//	  .Stop() / .Start()            SMTP down and back, same ports, mailbox kept
//	  .Log()                        what mailpit printed
//
// TestMailpitHarness checks the harness itself, sending with Gatehouse's
// own SMTP transport; the black-box tests send through caddy instead.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/mailer"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// mailpitVersion is the version scripts/test.sh installs.
const mailpitVersion = "v1.33.1"

// mailpitAddress is an address as mailpit's API gives it (net/mail.Address).
type mailpitAddress struct {
	Name    string
	Address string
}

// mailpitMessage is a message summary from GET /api/v1/messages
// (mailpit's storage.MessageSummary).
type mailpitMessage struct {
	ID        string // mailpit's database id, for Message
	MessageID string // the Message-ID header, without brackets
	From      mailpitAddress
	To        []mailpitAddress
	Subject   string // decoded
	Created   time.Time
	Username  string // the SMTP AUTH user, if any
	Snippet   string
}

// mailpitMessageDetail is one message from GET /api/v1/message/{id}
// (mailpit's storage.Message): the decoded parts.
type mailpitMessageDetail struct {
	ID        string
	MessageID string
	From      mailpitAddress
	To        []mailpitAddress
	Subject   string
	Date      time.Time
	Username  string
	Text      string // the text/plain part, decoded
	HTML      string // the text/html part, decoded
}

// mailpit is a running (or stopped) mailpit process.
type mailpit struct {
	t        testing.TB
	bin      string
	SMTPPort int
	HTTPPort int
	APIURL   string // http://127.0.0.1:<port>
	dir      string // database
	LogPath  string
	hc       *http.Client

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// findMailpit returns the mailpit binary: the repository's .tools/bin
// (where scripts/test.sh installs it), else one on PATH.
func findMailpit() (string, error) {
	local := filepath.Join(repoRoot, ".tools", "bin", "mailpit")
	if st, err := os.Stat(local); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return local, nil
	}
	return exec.LookPath("mailpit")
}

// startMailpit starts mailpit on free 127.0.0.1 ports, accepting any mail
// without TLS, and with any credentials or none, and stops it on cleanup.
// Without a mailpit binary the test is skipped, or fails when CI=true.
func startMailpit(t testing.TB) *mailpit {
	t.Helper()
	bin, err := findMailpit()
	if err != nil {
		msg := fmt.Sprintf("mailpit not installed (%v): run scripts/test.sh, or "+
			"GOBIN=\"$PWD/.tools/bin\" go install github.com/axllent/mailpit@%s", err, mailpitVersion)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	m := &mailpit{
		t:        t,
		bin:      bin,
		SMTPPort: freePort(t),
		HTTPPort: freePort(t),
		dir:      dir,
		LogPath:  filepath.Join(dir, "mailpit.log"),
		hc:       &http.Client{Timeout: 10 * time.Second},
	}
	m.APIURL = fmt.Sprintf("http://127.0.0.1:%d", m.HTTPPort)
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("mailpit log (%s), last lines:\n%s", m.LogPath, tail(m.Log(), 40))
		}
	})
	m.Start()
	return m
}

// SMTPURL is the URL for Gatehouse's `mail smtp` option.
func (m *mailpit) SMTPURL() string {
	return fmt.Sprintf("smtp://127.0.0.1:%d", m.SMTPPort)
}

// Start starts mailpit (if it is not running) on its ports, with the
// mailbox it had, and waits until both its API and its SMTP port answer.
func (m *mailpit) Start() {
	m.t.Helper()
	m.mu.Lock()
	running := m.cmd != nil
	m.mu.Unlock()
	if running {
		return
	}
	logf, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.t.Fatalf("mailpit log: %v", err)
	}
	fmt.Fprintf(logf, "=== %s (%s)\n", m.bin, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(m.bin,
		"--smtp", fmt.Sprintf("127.0.0.1:%d", m.SMTPPort),
		"--listen", fmt.Sprintf("127.0.0.1:%d", m.HTTPPort),
		"--database", filepath.Join(m.dir, "mailpit.db"), // kept across Stop/Start, removed with the test
		// No TLS and no credentials needed. AUTH is still offered (and
		// anything accepted, PLAIN/LOGIN over plain text too), so that
		// a smtp://user:pass@ URL works as well.
		"--smtp-auth-accept-any",
		"--smtp-auth-allow-insecure",
		"--smtp-disable-rdns",     // no DNS lookups from the sandbox
		"--disable-version-check", // no calls to GitHub
	)
	cmd.Dir = m.dir
	cmd.Env = mailpitEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	setProcAttrs(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		m.t.Fatalf("starting mailpit: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	m.mu.Lock()
	m.cmd, m.done, m.log = cmd, done, logf
	m.mu.Unlock()
	m.waitReady()
}

// mailpitEnv is the test's environment without mailpit's own MP_*
// settings, which would override the flags (an MP_SMTP_AUTH, say).
func mailpitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MP_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady polls /readyz and the SMTP port until both answer, the
// process exits, or 30 s pass.
func (m *mailpit) waitReady() {
	m.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-m.done:
			m.t.Fatalf("mailpit exited before it was ready (%s):\n%s", m.cmd.ProcessState, tail(m.Log(), 40))
		default:
		}
		lastErr = m.ready()
		if lastErr == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.t.Fatalf("mailpit not ready within 30s (last error: %v):\n%s", lastErr, tail(m.Log(), 40))
}

func (m *mailpit) ready() error {
	resp, err := m.hc.Get(m.APIURL + "/readyz")
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", m.SMTPPort), time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// Stop stops mailpit (SIGTERM, then SIGKILL after 5 s): its SMTP port
// refuses connections until Start. Safe to call more than once.
func (m *mailpit) Stop() {
	m.mu.Lock()
	cmd, done, logf := m.cmd, m.done, m.log
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	stopProcess(cmd, done, logf)
}

// Log returns everything mailpit printed so far.
func (m *mailpit) Log() string {
	b, _ := os.ReadFile(m.LogPath)
	return string(b)
}

// getJSON decodes the answer to GET path into v.
func (m *mailpit) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := m.hc.Get(m.APIURL + path)
	if err != nil {
		t.Fatalf("mailpit GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("mailpit GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit GET %s: %s: %s", path, resp.Status, truncate(string(body), 500))
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("mailpit GET %s: decoding: %v: %s", path, err, truncate(string(body), 500))
	}
}

// Messages returns every message in the mailbox, newest first.
func (m *mailpit) Messages(t testing.TB) []mailpitMessage {
	t.Helper()
	var res struct {
		Total    int
		Messages []mailpitMessage
	}
	m.getJSON(t, "/api/v1/messages?limit=10000", &res)
	return res.Messages
}

// Message returns one message, with its decoded text and HTML parts.
func (m *mailpit) Message(t testing.TB, id string) mailpitMessageDetail {
	t.Helper()
	var d mailpitMessageDetail
	m.getJSON(t, "/api/v1/message/"+id, &d)
	return d
}

// DeleteAll empties the mailbox.
func (m *mailpit) DeleteAll(t testing.TB) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, m.APIURL+"/api/v1/messages", nil)
	resp, err := m.hc.Do(req)
	if err != nil {
		t.Fatalf("mailpit DELETE /api/v1/messages: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit DELETE /api/v1/messages: %s", resp.Status)
	}
}

// to returns the messages addressed to addr (ignoring case), oldest first.
func (m *mailpit) to(t testing.TB, addr string) []mailpitMessage {
	t.Helper()
	var out []mailpitMessage
	msgs := m.Messages(t)
	for i := len(msgs) - 1; i >= 0; i-- {
		for _, a := range msgs[i].To {
			if strings.EqualFold(a.Address, addr) {
				out = append(out, msgs[i])
				break
			}
		}
	}
	return out
}

// WaitFor returns the newest message to addr, waiting up to timeout for
// one to arrive.
func (m *mailpit) WaitFor(t testing.TB, addr string, timeout time.Duration) mailpitMessage {
	t.Helper()
	msgs := m.WaitForCount(t, addr, 1, timeout)
	return msgs[len(msgs)-1]
}

// WaitForCount waits up to timeout until at least n messages to addr are
// in the mailbox, and returns them, oldest first.
func (m *mailpit) WaitForCount(t testing.TB, addr string, n int, timeout time.Duration) []mailpitMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := m.to(t, addr)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			var all []string
			for _, x := range m.Messages(t) {
				all = append(all, fmt.Sprintf("%v %q", x.To, x.Subject))
			}
			t.Fatalf("mailpit: %d message(s) to %s after %v, want %d; mailbox: %v", len(msgs), addr, timeout, n, all)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMailpitHarness checks the harness against Gatehouse's SMTP
// transport: a message arrives with its subject, text and HTML intact;
// with mailpit stopped, sending fails temporarily; once it is back, it
// works again.
func TestMailpitHarness(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	ctx := context.Background()
	const from = "Gatehouse Test <no-reply@gatehouse.test>"
	to := "harness-" + strings.ToLower(rand.Text()[:10]) + "@example.org"
	link := "http://127.0.0.1:8080/auth/verify?token=Zm9v_YmFy-baz"

	// With credentials: mailpit records the AUTH user.
	url := strings.Replace(mp.SMTPURL(), "smtp://", "smtp://harness:s3cret@", 1)
	tr, err := mailer.NewSMTP(url, from)
	if err != nil {
		t.Fatal(err)
	}
	first := &store.Message{
		ID:      1,
		To:      to,
		Subject: "Bitte bestätigen – harness",
		Text:    "Hallo,\n\nfolgen Sie diesem Link: " + link + "\n",
		HTML:    "<p>Hallo,</p><p><a href=\"" + link + "\">Adresse bestätigen</a></p>",
	}
	if err := tr.Send(ctx, first); err != nil {
		t.Fatalf("Send to mailpit: %v", err)
	}
	got := mp.WaitFor(t, to, 10*time.Second)
	if got.Subject != first.Subject || got.From.Address != "no-reply@gatehouse.test" || got.From.Name != "Gatehouse Test" || got.Username != "harness" {
		t.Errorf("summary %+v; want subject %q from Gatehouse Test <no-reply@gatehouse.test>, AUTH user harness", got, first.Subject)
	}
	d := mp.Message(t, got.ID)
	if text := strings.ReplaceAll(d.Text, "\r\n", "\n"); text != first.Text {
		t.Errorf("text part %q, want %q", d.Text, first.Text)
	}
	if html := strings.TrimRight(strings.ReplaceAll(d.HTML, "\r\n", "\n"), "\n"); html != first.HTML {
		t.Errorf("HTML part %q, want %q", d.HTML, first.HTML)
	}
	if !strings.Contains(d.MessageID, "@gatehouse.test") {
		t.Errorf("Message-ID %q, want one under the sender's domain", d.MessageID)
	}

	// SMTP down: a temporary failure, nothing lost on mailpit's side.
	mp.Stop()
	second := *first
	second.ID, second.Subject = 2, "second"
	err = tr.Send(ctx, &second)
	if err == nil {
		t.Fatal("Send with mailpit stopped succeeded")
	}
	if mailer.IsPermanent(err) {
		t.Errorf("IsPermanent(%v) = true with the server down; want a temporary failure", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Logf("note: error is not ECONNREFUSED: %v", err)
	}

	// Back, same port, same mailbox: delivered.
	mp.Start()
	if err := tr.Send(ctx, &second); err != nil {
		t.Fatalf("Send after mailpit came back: %v", err)
	}
	msgs := mp.WaitForCount(t, to, 2, 10*time.Second)
	if len(msgs) != 2 || msgs[0].Subject != first.Subject || msgs[1].Subject != "second" {
		t.Errorf("mailbox for %s: %+v; want the first message, then the second", to, msgs)
	}
}
