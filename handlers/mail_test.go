package handlers

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// mailAPIEnv is an apiEnv that records the service's mail wake-ups and
// events, and reads the mails it queues back from the store's outbox.
type mailAPIEnv struct {
	*apiEnv
	mu     sync.Mutex
	wakes  int
	events []mailEvent
}

type mailEvent struct {
	name string
	data map[string]any
}

func newMailAPIEnv(tb testing.TB, tweak func(*caddyauth.Options)) *mailAPIEnv {
	tb.Helper()
	me := &mailAPIEnv{}
	me.apiEnv = newAPIEnv(tb, func(o *caddyauth.Options) {
		o.OnMailQueued = func() {
			me.mu.Lock()
			defer me.mu.Unlock()
			me.wakes++
		}
		o.OnEvent = func(_ context.Context, name string, data map[string]any) {
			me.mu.Lock()
			defer me.mu.Unlock()
			me.events = append(me.events, mailEvent{name, data})
		}
		if tweak != nil {
			tweak(o)
		}
	})
	return me
}

// takeWakes returns the OnMailQueued calls since the last take.
func (e *mailAPIEnv) takeWakes() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.wakes
	e.wakes = 0
	return n
}

// takeEvents returns the events since the last take as "name email",
// checking that each carries the user's id and email and nothing else
// (never a token).
func (e *mailAPIEnv) takeEvents(tb testing.TB) []string {
	tb.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.events {
		if len(ev.data) != 2 || ev.data["user_id"] == nil || ev.data["email"] == nil {
			tb.Errorf("event %s carries %v, want user_id and email only", ev.name, ev.data)
		}
		email, _ := ev.data["email"].(string)
		out = append(out, ev.name+" "+email)
	}
	e.events = nil
	return out
}

// outboxNow and outboxLease are far beyond the fake clock: every queued
// message is due, and a claimed one is not seen again.
var (
	outboxNow   = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	outboxLease = outboxNow.Add(time.Hour)
)

// takeMails claims and deletes every message queued since the last take.
func (e *mailAPIEnv) takeMails(tb testing.TB) []store.Message {
	tb.Helper()
	ctx := context.Background()
	msgs, err := e.db.ClaimMessages(ctx, outboxNow, outboxLease, 1000)
	if err != nil {
		tb.Fatalf("ClaimMessages: %v", err)
	}
	for i, m := range msgs {
		if err := e.db.DeleteMessage(ctx, m.ID); err != nil {
			tb.Fatalf("DeleteMessage: %v", err)
		}
		msgs[i] = openMail(tb, e.svc, m)
	}
	return msgs
}

// openMail opens a queued message's sealed bodies, as the sender does,
// after checking that the token is not readable in the outbox.
func openMail(tb testing.TB, svc *caddyauth.Service, m store.Message) store.Message {
	tb.Helper()
	if strings.Contains(m.Text, "token=") || strings.Contains(m.HTML, "token=") {
		tb.Fatalf("a queued message carries its link in the clear:\n%s", m.Text)
	}
	var err error
	if m.Text, err = svc.OpenMailBody(m.Text); err != nil {
		tb.Fatalf("opening the text part: %v", err)
	}
	if m.HTML, err = svc.OpenMailBody(m.HTML); err != nil {
		tb.Fatalf("opening the HTML part: %v", err)
	}
	return m
}

// linkInMail finds a link carrying a token in a plain-text part.
var linkInMail = regexp.MustCompile(`(\S+)\?token=([A-Za-z0-9_-]+)`)

// mailLink takes the outbox and checks that it holds exactly one message,
// to `to`, whose text and HTML parts carry the same link; it returns the
// page the link points to and the token.
func (e *mailAPIEnv) mailLink(tb testing.TB, to string) (page, token string) {
	tb.Helper()
	msgs := e.takeMails(tb)
	if len(msgs) != 1 {
		tb.Fatalf("%d mails queued, want 1 to %s: %+v", len(msgs), to, msgs)
	}
	m := msgs[0]
	if m.To != to || m.Subject == "" {
		tb.Fatalf("mail to %q subject %q, want one to %q", m.To, m.Subject, to)
	}
	sm := linkInMail.FindStringSubmatch(m.Text)
	if sm == nil {
		tb.Fatalf("no link with a token in the mail:\n%s", m.Text)
	}
	if !strings.Contains(m.HTML, `href="`+sm[0]+`"`) {
		tb.Fatalf("the HTML part does not link to %s:\n%s", sm[0], m.HTML)
	}
	if len(sm[2]) != 43 { // 32 random bytes, unpadded base64url
		tb.Fatalf("token %q is %d characters, want 43", sm[2], len(sm[2]))
	}
	return sm[1], sm[2]
}

// wantNoMail asserts that nothing was queued and nobody was woken.
func (e *mailAPIEnv) wantNoMail(tb testing.TB) {
	tb.Helper()
	if msgs := e.takeMails(tb); len(msgs) != 0 {
		tb.Fatalf("%d mails queued, want none: first to %s", len(msgs), msgs[0].To)
	}
	if n := e.takeWakes(); n != 0 {
		tb.Fatalf("OnMailQueued called %d times, want 0", n)
	}
}

// resetToken asks for a reset mail for email and returns its token.
func (e *mailAPIEnv) resetToken(tb testing.TB, email string) string {
	tb.Helper()
	want202Null(tb, e.postJSON("POST", "/auth/forgot-password", `{"email":"`+email+`"}`))
	page, token := e.mailLink(tb, email)
	if page != "http://example.com/auth/reset-password" {
		tb.Fatalf("reset link to %s", page)
	}
	e.takeWakes()
	e.takeEvents(tb)
	return token
}

// verifyToken asks for a verification mail for email and returns its token.
func (e *mailAPIEnv) verifyToken(tb testing.TB, email string) string {
	tb.Helper()
	want202Null(tb, e.postJSON("POST", "/auth/request-verify-token", `{"email":"`+email+`"}`))
	page, token := e.mailLink(tb, email)
	if page != "http://example.com/auth/verify" {
		tb.Fatalf("verify link to %s", page)
	}
	e.takeWakes()
	e.takeEvents(tb)
	return token
}

// want202Null asserts the one answer of the mail-request routes: 202, the
// JSON content type, and the body literally null.
func want202Null(tb testing.TB, w *httptest.ResponseRecorder) {
	tb.Helper()
	wantNull(tb, w, http.StatusAccepted)
}

func wantNull(tb testing.TB, w *httptest.ResponseRecorder, status int) {
	tb.Helper()
	if w.Code != status || w.Body.String() != "null" {
		tb.Fatalf("got %d %q, want %d null", w.Code, w.Body, status)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		tb.Fatalf("Content-Type %q, want application/json", ct)
	}
}

// mailRoutes are the two routes that take an email and always answer 202.
var mailRoutes = []string{"/auth/forgot-password", "/auth/request-verify-token"}

// TestMailRequestAlways202: known, unknown, inactive and verified
// addresses get the same answer; a mail goes out only where the contract
// says (§4.4, §4.6).
func TestMailRequestAlways202(t *testing.T) {
	t.Parallel()
	// No mail limit: arthur is asked for four times.
	e := newMailAPIEnv(t, func(o *caddyauth.Options) { o.MailLimit = store.MailLimit{Max: -1} })
	e.mustUser(t, "arthur@camelot.bt")
	e.mustUser(t, "gawain@camelot.bt", verified)
	e.mustUser(t, "mordred@camelot.bt", func(nu *caddyauth.NewUser) { nu.IsActive = false })
	e.mustUser(t, "morgan@camelot.bt", func(nu *caddyauth.NewUser) { nu.IsActive, nu.IsVerified = false, true })

	cases := []struct {
		name, route, email string
		mailTo             string // "" for no mail
		event              string // "" for none
	}{
		{"forgot, active unverified", "/auth/forgot-password", "arthur@camelot.bt", "arthur@camelot.bt", caddyauth.EventForgotPassword},
		{"forgot, address in other case and spaces", "/auth/forgot-password", " ARTHUR@Camelot.BT ", "arthur@camelot.bt", caddyauth.EventForgotPassword},
		{"forgot, active verified", "/auth/forgot-password", "gawain@camelot.bt", "gawain@camelot.bt", caddyauth.EventForgotPassword},
		{"forgot, inactive", "/auth/forgot-password", "mordred@camelot.bt", "", ""},
		{"forgot, inactive verified", "/auth/forgot-password", "morgan@camelot.bt", "", ""},
		{"forgot, unknown", "/auth/forgot-password", "lancelot@camelot.bt", "", ""},
		{"verify, active unverified", "/auth/request-verify-token", "arthur@camelot.bt", "arthur@camelot.bt", ""},
		{"verify, address in other case", "/auth/request-verify-token", "Arthur@CAMELOT.bt", "arthur@camelot.bt", ""},
		{"verify, active verified", "/auth/request-verify-token", "gawain@camelot.bt", "", ""},
		{"verify, inactive", "/auth/request-verify-token", "mordred@camelot.bt", "", ""},
		{"verify, inactive verified", "/auth/request-verify-token", "morgan@camelot.bt", "", ""},
		{"verify, unknown", "/auth/request-verify-token", "lancelot@camelot.bt", "", ""},
	}
	var first *httptest.ResponseRecorder
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := e.postJSON("POST", c.route, `{"email":"`+c.email+`","unknown":[1,2]}`)
			want202Null(t, w)
			// Identical answers: whether an account exists is nobody's
			// business.
			if first == nil {
				first = w
			} else if !sameHeader(w.Header(), first.Header()) || w.Body.String() != first.Body.String() {
				t.Errorf("answer differs: %v %q, first was %v %q", w.Header(), w.Body, first.Header(), first.Body)
			}
			if c.mailTo == "" {
				e.wantNoMail(t)
			} else {
				page, _ := e.mailLink(t, c.mailTo)
				want := "http://example.com/auth/reset-password"
				if c.route == "/auth/request-verify-token" {
					want = "http://example.com/auth/verify"
				}
				if page != want {
					t.Errorf("link to %s, want %s", page, want)
				}
				if n := e.takeWakes(); n != 1 {
					t.Errorf("OnMailQueued called %d times, want 1", n)
				}
			}
			var wantEvents []string
			if c.event != "" {
				wantEvents = []string{c.event + " " + c.mailTo}
			}
			if got := e.takeEvents(t); !slices.Equal(got, wantEvents) {
				t.Errorf("events %q, want %q", got, wantEvents)
			}
		})
	}
}

func sameHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestMailRequestLimit: past the per-address limit the answer is still
// 202 null, and no more mail goes out.
func TestMailRequestLimit(t *testing.T) {
	t.Parallel()
	e := newMailAPIEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	for i := range caddyauth.DefaultMailLimit.Max {
		want202Null(t, e.postJSON("POST", mailRoutes[i%2], `{"email":"arthur@camelot.bt"}`))
	}
	if msgs := e.takeMails(t); len(msgs) != caddyauth.DefaultMailLimit.Max {
		t.Fatalf("%d mails, want %d", len(msgs), caddyauth.DefaultMailLimit.Max)
	}
	e.takeWakes()
	for _, route := range mailRoutes {
		want202Null(t, e.postJSON("POST", route, `{"email":"arthur@camelot.bt"}`))
	}
	e.wantNoMail(t)
	// The window passes.
	e.clock.Advance(caddyauth.DefaultMailLimit.Window)
	want202Null(t, e.postJSON("POST", "/auth/forgot-password", `{"email":"arthur@camelot.bt"}`))
	e.mailLink(t, "arthur@camelot.bt")
}

// TestMailRequestValidation: the 422s of the embedded {email} body
// (contract §2.3, §2.5): input null, a body that is not an object has no
// email, and malformed JSON is reported first.
func TestMailRequestValidation(t *testing.T) {
	t.Parallel()
	e := newMailAPIEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	cases := []struct {
		name, ct, body string
		want           string
	}{
		{"missing body", "", "", "missing@body.email"},
		{"missing body, JSON content type", "application/json", "", "missing@body.email"},
		{"JSON null", "application/json", "null", "missing@body.email"},
		{"empty object", "application/json", `{}`, "missing@body.email"},
		{"other fields only", "application/json", `{"mail":"arthur@camelot.bt"}`, "missing@body.email"},
		{"string", "application/json", `"foo"`, "missing@body.email"},
		{"array", "application/json", `[]`, "missing@body.email"},
		{"array of the object", "application/json", `[{"email":"arthur@camelot.bt"}]`, "missing@body.email"},
		{"number", "application/json", `42`, "missing@body.email"},
		{"not JSON content type", "text/plain", `{"email":"arthur@camelot.bt"}`, "missing@body.email"},
		{"no content type", "", `{"email":"arthur@camelot.bt"}`, "missing@body.email"},
		{"invalid email", "application/json", `{"email":"king.arthur"}`, "value_error@body.email"},
		{"empty email", "application/json", `{"email":""}`, "value_error@body.email"},
		{"email with CRLF", "application/json", `{"email":"arthur@camelot.bt\r\nBcc: x@evil.example"}`, "value_error@body.email"},
		{"email a number", "application/json", `{"email":42}`, "string_type@body.email"},
		{"email a list", "application/json", `{"email":["arthur@camelot.bt"]}`, "string_type@body.email"},
		{"email null", "application/json", `{"email":null}`, "string_type@body.email"},
		{"truncated JSON", "application/json", `{"email":`, "json_invalid@body.#9"},
		{"malformed JSON with a good email", "application/json", `{"email":"arthur@camelot.bt",}`, "json_invalid@body.#29"},
		{"blank", "application/json", "  ", "json_invalid@body.#2"},
	}
	for _, route := range mailRoutes {
		for _, c := range cases {
			t.Run(route+" "+c.name, func(t *testing.T) {
				var opts []reqOpt
				if c.ct != "" {
					opts = append(opts, withHeader("Content-Type", c.ct))
				}
				w := e.serve("POST", route, c.body, opts...)
				if ct := w.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				items := want422(t, w, c.want)
				switch items[0].Type {
				case "missing":
					// Embedded fields: the input is null, not the object.
					if items[0].Input != nil || items[0].Msg != "Field required" {
						t.Errorf("missing item %+v, want input null", items[0])
					}
				case "string_type":
					if items[0].Msg != "Input should be a valid string" {
						t.Errorf("string_type item %+v", items[0])
					}
				case "json_invalid":
					if items[0].Msg != "JSON decode error" || items[0].Ctx["error"] == nil {
						t.Errorf("json_invalid item %+v", items[0])
					}
				}
			})
		}
	}
	// The byte offsets of Python's json module, which FastAPI reports.
	t.Run("json_invalid offsets", func(t *testing.T) {
		offsets := []struct {
			body string
			want int
		}{
			{`{"email":`, 9}, // ends too soon: the length
			{"  ", 2},
			{`{"a":1,}`, 7}, // the bad byte is the last one
			{`{"a":1}}`, 7},
			{`{"a":}`, 5},
			{`[1,]`, 3},
			{`{bad}`, 1},
			{`{"a" 1}`, 5},
			{`{"a":1 "b":2}`, 7},
			{"{\"a\":\"\x01\"}", 6},
		}
		for _, c := range offsets {
			for _, route := range mailRoutes {
				w := e.postJSON("POST", route, c.body)
				if w.Code != http.StatusUnprocessableEntity {
					t.Fatalf("%q: status %d", c.body, w.Code)
				}
				want422(t, w, "json_invalid@body.#"+itoa(c.want))
			}
		}
	})
	t.Run("invalid email item", func(t *testing.T) {
		for _, route := range mailRoutes {
			items := want422(t, e.postJSON("POST", route, `{"email":"king.arthur"}`), "value_error@body.email")
			if items[0].Input != "king.arthur" || items[0].Ctx["reason"] != "An email address must have an @-sign." ||
				items[0].Msg != "value is not a valid email address: An email address must have an @-sign." {
				t.Errorf("%s: invalid email item %+v", route, items[0])
			}
		}
	})
	e.wantNoMail(t)
}

func TestMailRoutesMethodAndSize(t *testing.T) {
	t.Parallel()
	e := newMailAPIEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	routes := append(slices.Clone(mailRoutes), "/auth/reset-password", "/auth/verify")
	for _, route := range routes {
		t.Run(route, func(t *testing.T) {
			// GET shows the route's browser page (pages_test.go).
			for _, method := range []string{"PUT", "PATCH", "DELETE"} {
				w := e.postJSON(method, route, `{"email":"arthur@camelot.bt"}`)
				wantJSON(t, w, http.StatusMethodNotAllowed, `{"detail":"Method Not Allowed"}`)
				if allow := w.Header().Get("Allow"); allow != "GET, HEAD, POST" {
					t.Errorf("%s: Allow %q, want GET, HEAD, POST", method, allow)
				}
			}
			tooLarge := `{"email":"arthur@camelot.bt","token":"x","password":"` + testPassword + `","pad":"` +
				strings.Repeat("x", MaxBodyBytes) + `"}`
			wantJSON(t, e.postJSON("POST", route, tooLarge), http.StatusRequestEntityTooLarge, `{"detail":"Request Entity Too Large"}`)
			// Over the limit even without a content type, and even when
			// the excess is not JSON.
			wantJSON(t, e.serve("POST", route, tooLarge+"}}"), http.StatusRequestEntityTooLarge, `{"detail":"Request Entity Too Large"}`)
		})
	}
	// A body of exactly MaxBodyBytes is read.
	prefix := `{"email":"arthur@camelot.bt","pad":"`
	fits := prefix + strings.Repeat("x", MaxBodyBytes-len(prefix)-2) + `"}`
	if len(fits) != MaxBodyBytes {
		t.Fatalf("test setup: %d bytes", len(fits))
	}
	want202Null(t, e.postJSON("POST", "/auth/forgot-password", fits))
	e.mailLink(t, "arthur@camelot.bt")
	e.takeWakes()
	e.wantNoMail(t)
}

// TestResetPassword covers contract §4.5.
func TestResetPassword(t *testing.T) {
	t.Parallel()
	const (
		badToken = `{"detail":"RESET_PASSWORD_BAD_TOKEN"}`
		weak     = `{"detail":{"code":"RESET_PASSWORD_INVALID_PASSWORD","reason":"Password should be at least 8 characters"}}`
		newPW    = "a brand new password"
	)
	reset := func(e *mailAPIEnv, token, password string) *httptest.ResponseRecorder {
		body, _ := json.Marshal(map[string]string{"token": token, "password": password})
		return e.postJSON("POST", "/auth/reset-password", string(body))
	}
	loginStatus := func(e *mailAPIEnv, email, password string) int {
		return e.serve("POST", "/auth/jwt/login", form("username", email, "password", password), formCT()).Code
	}

	t.Run("success", func(t *testing.T) {
		t.Parallel()
		e := newMailAPIEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt")
		session := e.bearerLogin(t, "arthur@camelot.bt")
		c := e.cookieLogin(t, "arthur@camelot.bt")
		token := e.resetToken(t, "arthur@camelot.bt")

		wantNull(t, reset(e, token, newPW), http.StatusOK)
		if got, want := e.takeEvents(t), []string{caddyauth.EventPasswordReset + " arthur@camelot.bt"}; !slices.Equal(got, want) {
			t.Errorf("events %q, want %q", got, want)
		}
		if code := loginStatus(e, "arthur@camelot.bt", newPW); code != http.StatusOK {
			t.Errorf("login with the new password: %d", code)
		}
		if code := loginStatus(e, "arthur@camelot.bt", testPassword); code != http.StatusBadRequest {
			t.Errorf("login with the old password: %d", code)
		}
		// Every session of the user ends (DESIGN §3).
		wantJSON(t, e.serve("GET", "/users/me", "", bearer(session)), 401, `{"detail":"Unauthorized"}`)
		wantJSON(t, e.serve("GET", "/users/me", "", withCookie(c.Name, c.Value)), 401, `{"detail":"Unauthorized"}`)
		// Verification is untouched.
		if got, err := e.svc.User(context.Background(), u.ID); err != nil || got.IsVerified {
			t.Errorf("after reset: %+v, %v", got, err)
		}
		// The token is spent.
		wantJSON(t, reset(e, token, "yet another password"), 400, badToken)
		e.wantNoMail(t)
	})

	t.Run("bad tokens", func(t *testing.T) {
		t.Parallel()
		e := newMailAPIEnv(t, nil)
		e.mustUser(t, "arthur@camelot.bt")
		e.mustUser(t, "bedivere@camelot.bt")
		for _, tok := range []string{"garbage", "", strings.Repeat("A", 43), "\x00", strings.Repeat("x", 5000)} {
			wantJSON(t, reset(e, tok, newPW), 400, badToken)
		}
		// A verify token is no reset token.
		wantJSON(t, reset(e, e.verifyToken(t, "arthur@camelot.bt"), newPW), 400, badToken)
		// Precedence: a bad token with a weak password is a bad token.
		wantJSON(t, reset(e, "garbage", "short"), 400, badToken)
		wantJSON(t, reset(e, "garbage", ""), 400, badToken)

		// Expired: one hour by default.
		token := e.resetToken(t, "bedivere@camelot.bt")
		e.clock.Advance(time.Hour + time.Second)
		wantJSON(t, reset(e, token, newPW), 400, badToken)
		wantJSON(t, reset(e, token, "short"), 400, badToken)
		if code := loginStatus(e, "bedivere@camelot.bt", testPassword); code != http.StatusOK {
			t.Errorf("the password changed: login %d", code)
		}
	})

	t.Run("expiry is exact", func(t *testing.T) {
		t.Parallel()
		e := newMailAPIEnv(t, nil)
		e.mustUser(t, "arthur@camelot.bt")
		e.mustUser(t, "bedivere@camelot.bt")
		early, late := e.resetToken(t, "arthur@camelot.bt"), e.resetToken(t, "bedivere@camelot.bt")
		e.clock.Advance(time.Hour - time.Second)
		wantNull(t, reset(e, early, newPW), http.StatusOK)
		e.clock.Advance(time.Second)
		wantJSON(t, reset(e, late, newPW), 400, badToken)
	})

	t.Run("weak password keeps the token", func(t *testing.T) {
		t.Parallel()
		e := newMailAPIEnv(t, nil)
		e.mustUser(t, "arthur@camelot.bt")
		token := e.resetToken(t, "arthur@camelot.bt")
		wantJSON(t, reset(e, token, "short"), 400, weak)
		wantJSON(t, reset(e, token, ""), 400, weak)
		wantJSON(t, reset(e, token, "my arthur@camelot.bt"), 400,
			`{"detail":{"code":"RESET_PASSWORD_INVALID_PASSWORD","reason":"Password should not contain e-mail"}}`)
		if got := e.takeEvents(t); len(got) != 0 {
			t.Errorf("events after refused resets: %q", got)
		}
		wantNull(t, reset(e, token, newPW), http.StatusOK)
	})

	t.Run("invalidated tokens", func(t *testing.T) {
		t.Parallel()
		e := newMailAPIEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt")
		ctx := context.Background()

		// Using one reset token voids the others.
		first, second := e.resetToken(t, "arthur@camelot.bt"), e.resetToken(t, "arthur@camelot.bt")
		wantNull(t, reset(e, second, newPW), http.StatusOK)
		wantJSON(t, reset(e, first, "yet another password"), 400, badToken)

		// A password change voids them (fastapi-users' fingerprint).
		e.clock.Advance(time.Hour) // past the mail limit's window
		token := e.resetToken(t, "arthur@camelot.bt")
		pw := "changed in between"
		if _, err := e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{Password: &pw}, ""); err != nil {
			t.Fatal(err)
		}
		wantJSON(t, reset(e, token, newPW), 400, badToken)

		// So does an email change, and a deactivation.
		token = e.resetToken(t, "arthur@camelot.bt")
		email := "arthur@avalon.bt"
		if _, err := e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{Email: &email}, ""); err != nil {
			t.Fatal(err)
		}
		wantJSON(t, reset(e, token, newPW), 400, badToken)
		token = e.resetToken(t, "arthur@avalon.bt")
		if _, err := e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{IsActive: new(bool)}, ""); err != nil {
			t.Fatal(err)
		}
		wantJSON(t, reset(e, token, newPW), 400, badToken)
	})

	t.Run("validation", func(t *testing.T) {
		t.Parallel()
		e := newMailAPIEnv(t, nil)
		e.mustUser(t, "arthur@camelot.bt")
		token := e.resetToken(t, "arthur@camelot.bt")
		cases := []struct {
			name, ct, body string
			want           []string
		}{
			{"missing body", "", "", []string{"missing@body.token", "missing@body.password"}},
			{"JSON null", "application/json", "null", []string{"missing@body.token", "missing@body.password"}},
			{"empty object", "application/json", `{}`, []string{"missing@body.token", "missing@body.password"}},
			{"string", "application/json", `"foo"`, []string{"missing@body.token", "missing@body.password"}},
			{"array", "application/json", `[]`, []string{"missing@body.token", "missing@body.password"}},
			{"no content type", "", `{"token":"` + token + `","password":"` + newPW + `"}`,
				[]string{"missing@body.token", "missing@body.password"}},
			{"token only", "application/json", `{"token":"` + token + `"}`, []string{"missing@body.password"}},
			{"password only", "application/json", `{"password":"` + newPW + `"}`, []string{"missing@body.token"}},
			{"password only, weak", "application/json", `{"password":"short"}`, []string{"missing@body.token"}},
			{"wrong types", "application/json", `{"token":1,"password":null}`,
				[]string{"string_type@body.token", "string_type@body.password"}},
			{"password a number", "application/json", `{"token":"` + token + `","password":12345678}`,
				[]string{"string_type@body.password"}},
			{"malformed JSON", "application/json", `{"token":"` + token + `","password":`,
				[]string{"json_invalid@body.#" + itoa(len(`{"token":"`+token+`","password":`))}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var opts []reqOpt
				if c.ct != "" {
					opts = append(opts, withHeader("Content-Type", c.ct))
				}
				items := want422(t, e.serve("POST", "/auth/reset-password", c.body, opts...), c.want...)
				for _, it := range items {
					if it.Type == "missing" && it.Input != nil {
						t.Errorf("missing item %+v, want input null", it)
					}
				}
			})
		}
		// None of that spent the token.
		wantNull(t, reset(e, token, newPW), http.StatusOK)
	})
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestVerify covers contract §4.7.
func TestVerify(t *testing.T) {
	t.Parallel()
	const (
		badToken        = `{"detail":"VERIFY_USER_BAD_TOKEN"}`
		alreadyVerified = `{"detail":"VERIFY_USER_ALREADY_VERIFIED"}`
	)
	verify := func(e *mailAPIEnv, token string) *httptest.ResponseRecorder {
		body, _ := json.Marshal(map[string]string{"token": token})
		return e.postJSON("POST", "/auth/verify", string(body))
	}
	userJSON := func(id, email string, active bool) string {
		b, _ := json.Marshal(map[string]any{"id": id, "email": email, "is_active": active, "is_superuser": false,
			"is_verified": true, "full_name": "Arthur Pendragon", "roles": []string{"knights"}})
		return string(b)
	}

	t.Run("success and reuse", func(t *testing.T) {
		t.Parallel()
		e := newMailAPIEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt", func(nu *caddyauth.NewUser) {
			nu.FullName, nu.Roles = "Arthur Pendragon", []string{"knights"}
		})
		session := e.bearerLogin(t, "arthur@camelot.bt")
		token := e.verifyToken(t, "arthur@camelot.bt")

		w := verify(e, token)
		wantJSON(t, w, http.StatusOK, userJSON(u.ID, "arthur@camelot.bt", true))
		decodeUser(t, w.Body.Bytes())
		if got, want := e.takeEvents(t), []string{caddyauth.EventUserVerified + " arthur@camelot.bt"}; !slices.Equal(got, want) {
			t.Errorf("events %q, want %q", got, want)
		}
		// The user's session sees it at once, and stays.
		wantJSON(t, e.serve("GET", "/users/me", "", bearer(session)), 200, userJSON(u.ID, "arthur@camelot.bt", true))

		wantJSON(t, verify(e, token), 400, alreadyVerified)
		// No more verification mails for a verified account.
		want202Null(t, e.postJSON("POST", "/auth/request-verify-token", `{"email":"arthur@camelot.bt"}`))
		e.wantNoMail(t)
	})

	t.Run("every outstanding token answers already verified", func(t *testing.T) {
		t.Parallel()
		e := newMailAPIEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt")
		first, second := e.verifyToken(t, "arthur@camelot.bt"), e.verifyToken(t, "arthur@camelot.bt")
		w := verify(e, first)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"id":"`+u.ID+`"`) {
			t.Fatalf("verify: %d %s", w.Code, w.Body)
		}
		wantJSON(t, verify(e, second), 400, alreadyVerified)
	})

	t.Run("bad tokens", func(t *testing.T) {
		t.Parallel()
		e := newMailAPIEnv(t, nil)
		e.mustUser(t, "arthur@camelot.bt")
		e.mustUser(t, "bedivere@camelot.bt")
		for _, tok := range []string{"garbage", "", strings.Repeat("A", 43), "\x00", strings.Repeat("x", 5000)} {
			wantJSON(t, verify(e, tok), 400, badToken)
		}
		// A reset token is no verify token.
		wantJSON(t, verify(e, e.resetToken(t, "arthur@camelot.bt")), 400, badToken)

		// Expired: 24 hours by default.
		early, late := e.verifyToken(t, "arthur@camelot.bt"), e.verifyToken(t, "bedivere@camelot.bt")
		e.clock.Advance(24*time.Hour - time.Second)
		if w := verify(e, early); w.Code != http.StatusOK {
			t.Fatalf("a token a second before expiry: %d %s", w.Code, w.Body)
		}
		e.clock.Advance(time.Second)
		wantJSON(t, verify(e, late), 400, badToken)
		// Once expired, even a used token is just bad.
		wantJSON(t, verify(e, early), 400, badToken)
	})

	t.Run("email changed since", func(t *testing.T) {
		t.Parallel()
		e := newMailAPIEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt")
		token := e.verifyToken(t, "arthur@camelot.bt")
		email := "arthur@avalon.bt"
		if _, err := e.svc.UpdateUser(context.Background(), u.ID, caddyauth.UserPatch{Email: &email}, ""); err != nil {
			t.Fatal(err)
		}
		wantJSON(t, verify(e, token), 400, badToken)
	})

	t.Run("inactive users can be verified", func(t *testing.T) {
		t.Parallel()
		e := newMailAPIEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt", func(nu *caddyauth.NewUser) {
			nu.FullName, nu.Roles = "Arthur Pendragon", []string{"knights"}
		})
		token := e.verifyToken(t, "arthur@camelot.bt")
		if _, err := e.svc.UpdateUser(context.Background(), u.ID, caddyauth.UserPatch{IsActive: new(bool)}, ""); err != nil {
			t.Fatal(err)
		}
		wantJSON(t, verify(e, token), http.StatusOK, userJSON(u.ID, "arthur@camelot.bt", false))
	})

	t.Run("validation", func(t *testing.T) {
		t.Parallel()
		e := newMailAPIEnv(t, nil)
		e.mustUser(t, "arthur@camelot.bt")
		token := e.verifyToken(t, "arthur@camelot.bt")
		cases := []struct {
			name, ct, body string
			want           string
		}{
			// Contract §4.7: a bare JSON string is no {token}.
			{"bare JSON string", "application/json", `"foo"`, "missing@body.token"},
			{"bare token", "application/json", `"` + token + `"`, "missing@body.token"},
			{"missing body", "", "", "missing@body.token"},
			{"JSON null", "application/json", "null", "missing@body.token"},
			{"empty object", "application/json", `{}`, "missing@body.token"},
			{"array", "application/json", `["` + token + `"]`, "missing@body.token"},
			{"no content type", "", `{"token":"` + token + `"}`, "missing@body.token"},
			{"token a number", "application/json", `{"token":5}`, "string_type@body.token"},
			{"token null", "application/json", `{"token":null}`, "string_type@body.token"},
			{"token an object", "application/json", `{"token":{"a":1}}`, "string_type@body.token"},
			{"malformed JSON", "application/json", `{"token":"` + token + `"`, "json_invalid@body.#" + itoa(len(token)+11)},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var opts []reqOpt
				if c.ct != "" {
					opts = append(opts, withHeader("Content-Type", c.ct))
				}
				items := want422(t, e.serve("POST", "/auth/verify", c.body, opts...), c.want)
				if items[0].Type == "missing" && items[0].Input != nil {
					t.Errorf("missing item %+v, want input null", items[0])
				}
			})
		}
		// None of that spent the token.
		if w := verify(e, token); w.Code != http.StatusOK {
			t.Errorf("verify after the 422s: %d %s", w.Code, w.Body)
		}
	})
}

// TestMailLinks: the pages mail links point to (DESIGN §3), from the
// request's origin or base_url, under the API prefix.
func TestMailLinks(t *testing.T) {
	t.Parallel()
	useTLS := func(r *http.Request) { r.TLS = &tls.ConnectionState{ServerName: "app.example.com"} }
	cases := []struct {
		name      string
		baseURL   string
		apiPrefix string
		opts      []reqOpt
		origin    string // of the links
		prefix    string // of the links and the routes
	}{
		{"request origin on loopback", "", "", []reqOpt{withHost("localhost")}, "http://localhost", "/auth"},
		{"request origin on loopback with port", "", "", []reqOpt{withHost("127.0.0.1:8080")}, "http://127.0.0.1:8080", "/auth"},
		{"request origin over TLS", "", "", []reqOpt{withHost("app.example.com"), useTLS}, "https://app.example.com", "/auth"},
		{"request origin over TLS with port", "", "", []reqOpt{withHost("app.example.com:8443"), useTLS}, "https://app.example.com:8443", "/auth"},
		{"base_url", "https://id.example.com", "", []reqOpt{withHost("evil.example")}, "https://id.example.com", "/auth"},
		{"base_url with a trailing slash", "https://id.example.com/", "", []reqOpt{withHost("evil.example"), useTLS}, "https://id.example.com", "/auth"},
		{"base_url with a path", "https://example.com/app/", "", nil, "https://example.com/app", "/auth"},
		{"api prefix", "", "/acct", []reqOpt{withHost("localhost:8080")}, "http://localhost:8080", "/acct"},
		{"api prefix with a trailing slash and base_url", "https://id.example.com/", "/acct/", nil, "https://id.example.com", "/acct"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newMailAPIEnv(t, nil)
			e.api.BaseURL, e.api.APIPrefix = c.baseURL, c.apiPrefix
			e.mustUser(t, "arthur@camelot.bt")
			body := `{"email":"arthur@camelot.bt"}`

			want202Null(t, e.postJSON("POST", c.prefix+"/request-verify-token", body, c.opts...))
			page, verifyTok := e.mailLink(t, "arthur@camelot.bt")
			if want := c.origin + c.prefix + "/verify"; page != want {
				t.Errorf("verify link to %s, want %s", page, want)
			}
			want202Null(t, e.postJSON("POST", c.prefix+"/forgot-password", body, c.opts...))
			page, resetTok := e.mailLink(t, "arthur@camelot.bt")
			if want := c.origin + c.prefix + "/reset-password"; page != want {
				t.Errorf("reset link to %s, want %s", page, want)
			}
			// The tokens of the links work at the routes under the prefix.
			if w := e.postJSON("POST", c.prefix+"/verify", `{"token":"`+verifyTok+`"}`); w.Code != http.StatusOK {
				t.Errorf("verify with the mailed token: %d %s", w.Code, w.Body)
			}
			wantNull(t, e.postJSON("POST", c.prefix+"/reset-password", `{"token":"`+resetTok+`","password":"a brand new password"}`), http.StatusOK)
		})
	}
}

// Without base_url, a Host that Caddy did not vouch for (plain HTTP to a
// public name, or TLS for another name) gives no links, and so no mail:
// a forged Host must not put a foreign link with a token in a mail.
func TestMailLinksNeedATrustedOrigin(t *testing.T) {
	t.Parallel()
	otherSNI := func(r *http.Request) { r.TLS = &tls.ConnectionState{ServerName: "app.example.com"} }
	for name, opts := range map[string][]reqOpt{
		"plain HTTP":           {withHost("app.example.com")},
		"TLS for another name": {withHost("evil.example"), otherSNI},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newMailAPIEnv(t, func(o *caddyauth.Options) { o.VerifyOnRegister = true })
			e.api.BaseURL = ""
			e.mustUser(t, "arthur@camelot.bt")
			for _, route := range []string{"/auth/forgot-password", "/auth/request-verify-token"} {
				want202Null(t, e.postJSON("POST", route, `{"email":"arthur@camelot.bt"}`, opts...))
			}
			w := e.postJSON("POST", "/auth/register", `{"email":"gawain@camelot.bt","password":"`+testPassword+`"}`, opts...)
			if w.Code != http.StatusCreated {
				t.Fatalf("register: %d %s", w.Code, w.Body)
			}
			e.wantNoMail(t)
		})
	}
}

// TestRegisterVerifyOnRegister: registration mails a verification link
// with verify_on_register, and only then.
func TestRegisterVerifyOnRegister(t *testing.T) {
	t.Parallel()
	register := func(e *mailAPIEnv, email string) string {
		w := e.postJSON("POST", "/auth/register", `{"email":"`+email+`","password":"`+testPassword+`"}`, withHost("app.example.com"))
		if w.Code != http.StatusCreated {
			t.Fatalf("register: %d %s", w.Code, w.Body)
		}
		return decodeUser(t, w.Body.Bytes())["id"].(string)
	}

	t.Run("on", func(t *testing.T) {
		t.Parallel()
		e := newMailAPIEnv(t, func(o *caddyauth.Options) { o.VerifyOnRegister = true })
		id := register(e, "Gawain@Camelot.BT")
		page, token := e.mailLink(t, "Gawain@camelot.bt")
		if page != "http://example.com/auth/verify" {
			t.Errorf("link to %s", page)
		}
		if n := e.takeWakes(); n != 1 {
			t.Errorf("OnMailQueued called %d times, want 1", n)
		}
		if got, want := e.takeEvents(t), []string{caddyauth.EventUserRegistered + " Gawain@camelot.bt"}; !slices.Equal(got, want) {
			t.Errorf("events %q, want %q", got, want)
		}
		w := e.postJSON("POST", "/auth/verify", `{"token":"`+token+`"}`)
		wantJSON(t, w, http.StatusOK, `{"id":"`+id+`","email":"Gawain@camelot.bt","is_active":true,"is_superuser":false,"is_verified":true,"full_name":null,"roles":[]}`)
		// A refused registration mails nobody.
		wantJSON(t, e.postJSON("POST", "/auth/register", `{"email":"gawain@camelot.bt","password":"`+testPassword+`"}`), 400, `{"detail":"REGISTER_USER_ALREADY_EXISTS"}`)
		wantJSON(t, e.postJSON("POST", "/auth/register", `{"email":"percival@camelot.bt","password":"short"}`), 400,
			`{"detail":{"code":"REGISTER_INVALID_PASSWORD","reason":"Password should be at least 8 characters"}}`)
		e.wantNoMail(t)
	})

	t.Run("off", func(t *testing.T) {
		t.Parallel()
		e := newMailAPIEnv(t, nil)
		register(e, "gawain@camelot.bt")
		e.wantNoMail(t)
		if got, want := e.takeEvents(t), []string{caddyauth.EventUserRegistered + " gawain@camelot.bt"}; !slices.Equal(got, want) {
			t.Errorf("events %q, want %q", got, want)
		}
		// The user can still ask for a link.
		e.verifyToken(t, "gawain@camelot.bt")
	})
}

// FuzzMailRoutes feeds arbitrary bodies, content types and hosts to the
// four token-by-mail routes. Whatever arrives, the answer is a 2xx or 4xx
// that the route can give, with a JSON body; never a 5xx, never a panic.
func FuzzMailRoutes(f *testing.F) {
	seeds := []struct{ body, ct, host string }{
		{`{"email":"arthur@camelot.bt"}`, "application/json", "example.com"},
		{`{"email":"ARTHUR@camelot.bt ","token":"x","password":"correct horse battery"}`, "application/json", "app.example.com:8443"},
		{`{"email":"gawain@camelot.bt"}`, "application/json", "[::1]:80"},
		{`{"email":"arthur@camelot.bt"}`, "application/json", "evil.example/\"><script>"},
		{`{"email":"arthur@camelot.bt"}`, "application/json", ""},
		{`{"token":"garbage","password":"short"}`, "application/json", "example.com"},
		{`{"token":null,"password":1,"email":[]}`, "application/json", "example.com"},
		{`{"email":"a@b.co\r\nBcc: x@evil.example"}`, "application/json", "example.com"},
		{"{\"email\":\"\xff@b.co\"}", "application/json", "example.com"},
		{`"foo"`, "application/json", "example.com"},
		{`[]`, "application/json", "example.com"},
		{`null`, "application/json", "example.com"},
		{`{"email":`, "application/json", "example.com"},
		{"", "", "example.com"},
		{`{"email":"arthur@camelot.bt"}`, "text/plain", "example.com"},
		{`{"email":"arthur@camelot.bt"}`, "application/json; =", "example.com"},
		{strings.Repeat("[", 10000), "application/json", "example.com"},
		{`{"token":"` + strings.Repeat("x", 4000) + `"}`, "application/json", "example.com"},
	}
	for _, s := range seeds {
		f.Add([]byte(s.body), s.ct, s.host)
	}
	// No mail limit, so that every request for a known address renders
	// and queues a mail; no brute-force limit, so that bad tokens do not
	// end in a ban (a 429 for everything after) that hides the routes'
	// other answers from the fuzzer.
	e := newMailAPIEnv(f, func(o *caddyauth.Options) {
		o.MailLimit = store.MailLimit{Max: -1}
		o.LoginLimit.Off = true
	})
	e.mustUser(f, "arthur@camelot.bt")
	e.mustUser(f, "gawain@camelot.bt", verified)
	allowed := map[string][]int{
		"/auth/forgot-password":      {202, 413, 422},
		"/auth/request-verify-token": {202, 413, 422},
		"/auth/reset-password":       {200, 400, 413, 422},
		"/auth/verify":               {200, 400, 413, 422},
	}

	f.Fuzz(func(t *testing.T, body []byte, ct, host string) {
		for route, statuses := range allowed {
			r := httptest.NewRequest("POST", route, bytes.NewReader(body))
			if ct != "" {
				r.Header["Content-Type"] = []string{ct}
			}
			r.Host = host
			w := httptest.NewRecorder()
			if !e.api.ServeAPI(w, r) {
				t.Fatalf("%s: not served", route)
			}
			if !slices.Contains(statuses, w.Code) {
				t.Fatalf("%s: status %d for %q (%q); body %s", route, w.Code, body, ct, w.Body)
			}
			if got := w.Header().Get("Content-Type"); got != "application/json" {
				t.Fatalf("%s: Content-Type %q", route, got)
			}
			if !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s: body %q is not JSON", route, w.Body)
			}
			switch {
			case w.Code == http.StatusAccepted:
				if w.Body.String() != "null" {
					t.Fatalf("%s: 202 with %q", route, w.Body)
				}
			case w.Code >= 400:
				var out struct {
					Detail json.RawMessage `json:"detail"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || len(out.Detail) == 0 {
					t.Fatalf("%s: %d without a detail: %s", route, w.Code, w.Body)
				}
				if w.Code == http.StatusUnprocessableEntity {
					var items []vItem
					if err := json.Unmarshal(out.Detail, &items); err != nil || len(items) == 0 {
						t.Fatalf("%s: 422 detail %s", route, out.Detail)
					}
					for _, it := range items {
						if len(it.Loc) < 2 || it.Loc[0] != "body" || it.Type == "" || it.Msg == "" {
							t.Fatalf("%s: 422 item %+v", route, it)
						}
					}
				}
			}
		}
		// Whatever was queued went to a known, active address.
		for _, m := range e.takeMails(t) {
			if m.To != "arthur@camelot.bt" && m.To != "gawain@camelot.bt" {
				t.Fatalf("a mail to %q", m.To)
			}
		}
	})
}
