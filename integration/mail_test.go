package integration

// Account lifecycle by mail (issue 3), black-box: the real binary sends
// real mail, to mailpit over SMTP or into a `mail dir`, or only logs it;
// the tests read the mail as a user would, follow its link's token, and
// check every status and body of DESIGN §3 and the contract (§4.4–4.7).

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// mailFrom is the sender configured for mailpit.
const mailFrom = "Gatehouse Test <no-reply@gatehouse.test>"

// smtpMail is the `mail` option that sends through mp.
func smtpMail(mp *mailpit) string {
	return fmt.Sprintf("mail smtp %s {\n\tfrom %q\n}", mp.SMTPURL(), mailFrom)
}

// Subjects of the embedded templates, for a site whose links point to host.
func verifySubject(host string) string { return "Confirm your email address for " + host }
func resetSubject(host string) string  { return "Reset your password for " + host }

// tokenFormat is what README promises: 256 random bits, URL-safe
// (base64url without padding: 43 characters).
var tokenFormat = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// linkToken finds the links to page (an absolute URL without query) in
// one part of a mail, checks that every token= in the part belongs to
// such a link, that they all carry the same token, and that the token has
// the promised form; it returns the token.
func linkToken(t testing.TB, part, body, page string) string {
	t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(page) + `\?token=([^\s"'<>&]*)`)
	ms := re.FindAllStringSubmatch(body, -1)
	if len(ms) == 0 {
		t.Fatalf("%s part has no link %s?token=…:\n%s", part, page, body)
	}
	if n := strings.Count(body, "token="); n != len(ms) {
		t.Errorf("%s part has %d token= but %d links to %s:\n%s", part, n, len(ms), page, body)
	}
	tok := ms[0][1]
	for _, m := range ms[1:] {
		if m[1] != tok {
			t.Errorf("%s part carries two tokens, %q and %q", part, tok, m[1])
		}
	}
	if !tokenFormat.MatchString(tok) {
		t.Errorf("%s part: token %q is not 43 URL-safe base64 characters (256 bits)", part, tok)
	}
	return tok
}

// mailTokens checks the two parts of a mail, text and HTML, and returns
// the token they both carry: the text part has the link on a line of its
// own, the HTML part has it as an href (and as text).
func mailTokens(t testing.TB, text, html, page string) string {
	t.Helper()
	tok := linkToken(t, "text", text, page)
	if htmlTok := linkToken(t, "HTML", html, page); htmlTok != tok {
		t.Errorf("text part token %q, HTML part token %q: want one token", tok, htmlTok)
	}
	link := page + "?token=" + tok
	lineFound := false
	for l := range strings.SplitSeq(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(l) == link {
			lineFound = true
		}
	}
	if !lineFound {
		t.Errorf("text part has no line that is exactly the link %s:\n%s", link, text)
	}
	if !strings.Contains(html, `href="`+link+`"`) {
		t.Errorf("HTML part has no href=%q:\n%s", link, html)
	}
	return tok
}

// Raw returns the message's source as mailpit received it
// (GET /api/v1/message/{id}/raw).
func (m *mailpit) Raw(t testing.TB, id string) string {
	t.Helper()
	resp, err := m.hc.Get(m.APIURL + "/api/v1/message/" + id + "/raw")
	if err != nil {
		t.Fatalf("mailpit raw %s: %v", id, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit raw %s: %s %v", id, resp.Status, err)
	}
	return string(b)
}

// checkMailpit checks one delivered message: from mailFrom, to exactly
// `to`, with the subject, a Message-ID, and links to page in both parts
// carrying the same token, which the raw source shows verbatim as
// token=<token>. It returns the token.
func checkMailpit(t testing.TB, mp *mailpit, msg mailpitMessage, to, subject, page string) string {
	t.Helper()
	d := mp.Message(t, msg.ID)
	if d.Subject != subject {
		t.Errorf("subject %q, want %q", d.Subject, subject)
	}
	if d.From.Address != "no-reply@gatehouse.test" || d.From.Name != "Gatehouse Test" {
		t.Errorf("From %+v, want %s", d.From, mailFrom)
	}
	if len(d.To) != 1 || d.To[0].Address != to {
		t.Errorf("To %+v, want exactly %s", d.To, to)
	}
	if !strings.HasSuffix(d.MessageID, "@gatehouse.test") {
		t.Errorf("Message-ID %q, want one under the sender's domain", d.MessageID)
	}
	tok := mailTokens(t, d.Text, d.HTML, page)
	raw := mp.Raw(t, msg.ID)
	if !strings.Contains(raw, "token="+tok) {
		t.Errorf("raw message does not contain token=%s verbatim:\n%s", tok, raw)
	}
	return tok
}

// waitMail waits for the n-th message to addr and checks it
// (checkMailpit). Exact counts are wantMailCount's business.
func waitMail(t testing.TB, mp *mailpit, addr string, n int, subject, page string) string {
	t.Helper()
	msgs := mp.WaitForCount(t, addr, n, 15*time.Second)
	return checkMailpit(t, mp, msgs[n-1], addr, subject, page)
}

// wantMailCount fails unless mailpit holds exactly n messages to addr, for
// settle (checked repeatedly, so that a late delivery is seen).
func wantMailCount(t testing.TB, mp *mailpit, addr string, n int, settle time.Duration) {
	t.Helper()
	deadline := time.Now().Add(settle)
	for {
		if got := len(mp.to(t, addr)); got != n {
			t.Fatalf("%d message(s) to %s, want %d", got, addr, n)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wantNull fails unless the response is status with Content-Type
// application/json and the body null, as fastapi-users answers 202.
func wantNull(t testing.TB, r *response, status int) {
	t.Helper()
	wantStatus(t, r, status)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if string(r.Body) != "null" {
		t.Errorf("body = %q, want null", r.Body)
	}
}

// wantVerified fails unless r is 200 with exactly the user want, verified.
func wantVerified(t testing.TB, r *response, want apiUser) {
	t.Helper()
	wantStatus(t, r, http.StatusOK)
	var got apiUser
	decode(t, r, &got)
	want.IsVerified = true
	if want.Roles == nil {
		want.Roles = []string{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("verify answered %s, want %+v", r.Body, want)
	}
}

// forgot and requestVerify post the two mail requests and want 202 null.
func forgot(t testing.TB, cl *client, email string) {
	t.Helper()
	wantNull(t, cl.postJSON(t, "/auth/forgot-password", map[string]string{"email": email}), http.StatusAccepted)
}

func requestVerify(t testing.TB, cl *client, email string) {
	t.Helper()
	wantNull(t, cl.postJSON(t, "/auth/request-verify-token", map[string]string{"email": email}), http.StatusAccepted)
}

// resetPassword posts {token, password} to /auth/reset-password.
func resetPassword(t testing.TB, cl *client, token, password string) *response {
	t.Helper()
	return cl.postJSON(t, "/auth/reset-password", map[string]string{"token": token, "password": password})
}

// uniqueEmail is an address no other test uses.
func uniqueEmail(prefix string) string {
	return prefix + "-" + strings.ToLower(uniquePath("")[1:]) + "@example.com"
}

// superuserToken registers an account, makes it a superuser in the
// database and logs it in.
func superuserToken(t testing.TB, c *caddyProc, cl *client) string {
	t.Helper()
	email := uniqueEmail("root")
	u := register(t, cl, email, "root-password")
	makeSuperuser(t, c.Path("gatehouse.db"), u.ID)
	return loginJWT(t, cl, email, "root-password")
}

// ---------------------------------------------------------------------------
// Logs

// logEntries returns the JSON lines of c's log, decoded, with the line.
func logEntries(c *caddyProc) []logEntry {
	var out []logEntry
	for line := range strings.SplitSeq(c.Log(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var f map[string]any
		if json.Unmarshal([]byte(line), &f) == nil {
			out = append(out, logEntry{Line: line, Fields: f})
		}
	}
	return out
}

type logEntry struct {
	Line   string
	Fields map[string]any
}

func (e logEntry) str(k string) string {
	s, _ := e.Fields[k].(string)
	return s
}

// waitLog waits until at least n log entries satisfy match, and returns
// them.
func waitLog(t testing.TB, c *caddyProc, what string, n int, timeout time.Duration, match func(logEntry) bool) []logEntry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got []logEntry
		for _, e := range logEntries(c) {
			if match(e) {
				got = append(got, e)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("log: %d entries %s after %v, want %d:\n%s", len(got), what, timeout, n, tail(c.Log(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func msgIs(msg string) func(logEntry) bool {
	return func(e logEntry) bool { return e.str("msg") == msg }
}

// ---------------------------------------------------------------------------
// .eml files

// emlMessage is one file of a `mail dir`, parsed with net/mail and
// mime/multipart.
type emlMessage struct {
	Path   string
	Raw    string
	Header mail.Header
	Parts  []emlPart
}

type emlPart struct {
	MediaType string
	Params    map[string]string
	Body      string // decoded
}

// waitEML waits until dir holds n .eml files and returns their paths,
// oldest first (the names start with the UTC time).
func waitEML(t testing.TB, dir string, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		if len(paths) >= n {
			slices.Sort(paths)
			return paths
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d .eml files after %v, want %d", dir, len(paths), timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readEML parses one file as RFC 5322 with a MIME multipart/alternative
// body, failing the test if it is not one.
func readEML(t testing.TB, path string) emlMessage {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: net/mail: %v", path, err)
	}
	out := emlMessage{Path: path, Raw: string(raw), Header: msg.Header}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" || params["boundary"] == "" {
		t.Fatalf("%s: Content-Type %q, want multipart/alternative with a boundary (%v)", path, msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: mime/multipart: %v", path, err)
		}
		pmt, pparams, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil {
			t.Fatalf("%s: part Content-Type %q: %v", path, p.Header.Get("Content-Type"), err)
		}
		var r io.Reader = p
		switch cte := strings.ToLower(p.Header.Get("Content-Transfer-Encoding")); cte {
		case "", "7bit", "8bit", "binary":
		case "quoted-printable":
			r = quotedprintable.NewReader(p)
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, p)
		default:
			t.Fatalf("%s: part Content-Transfer-Encoding %q", path, cte)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: reading part: %v", path, err)
		}
		out.Parts = append(out.Parts, emlPart{MediaType: pmt, Params: pparams, Body: string(body)})
	}
	return out
}

// check checks the headers and parts of a file written by `mail dir`:
// From, To, Subject, Date, Message-ID and MIME-Version; a text/plain then
// a text/html part in UTF-8; links to page carrying one token, which the
// raw file shows verbatim. It returns the token.
func (m emlMessage) check(t testing.TB, from, to, subject, page string) string {
	t.Helper()
	h := m.Header
	if got, err := mail.ParseAddress(h.Get("From")); err != nil || got.String() != mustAddress(t, from).String() {
		t.Errorf("From %q, want %q (%v)", h.Get("From"), from, err)
	}
	if got, err := h.AddressList("To"); err != nil || len(got) != 1 || got[0].Address != to {
		t.Errorf("To %q, want exactly %s (%v)", h.Get("To"), to, err)
	}
	if got, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject")); err != nil || got != subject {
		t.Errorf("Subject %q, want %q (%v)", h.Get("Subject"), subject, err)
	}
	if d, err := h.Date(); err != nil || time.Since(d) > time.Minute || time.Until(d) > time.Minute {
		t.Errorf("Date %q: %v, want the time the mail was queued", h.Get("Date"), err)
	}
	fromDomain := mustAddress(t, from).Address
	fromDomain = fromDomain[strings.LastIndexByte(fromDomain, '@')+1:]
	if id := h.Get("Message-ID"); !regexp.MustCompile(`^<[^<>@\s]+@` + regexp.QuoteMeta(fromDomain) + `>$`).MatchString(id) {
		t.Errorf("Message-ID %q, want <…@%s>", id, fromDomain)
	}
	if v := h.Get("MIME-Version"); v != "1.0" {
		t.Errorf("MIME-Version %q, want 1.0", v)
	}
	if len(m.Parts) != 2 || m.Parts[0].MediaType != "text/plain" || m.Parts[1].MediaType != "text/html" {
		var types []string
		for _, p := range m.Parts {
			types = append(types, p.MediaType)
		}
		t.Fatalf("parts %v, want [text/plain text/html]", types)
	}
	for _, p := range m.Parts {
		if cs := strings.ToLower(p.Params["charset"]); cs != "utf-8" {
			t.Errorf("%s part charset %q, want utf-8", p.MediaType, cs)
		}
	}
	tok := mailTokens(t, m.Parts[0].Body, m.Parts[1].Body, page)
	if !strings.Contains(m.Raw, "token="+tok) {
		t.Errorf("%s does not contain token=%s verbatim:\n%s", m.Path, tok, m.Raw)
	}
	return tok
}

func mustAddress(t testing.TB, s string) *mail.Address {
	t.Helper()
	a, err := mail.ParseAddress(s)
	if err != nil {
		t.Fatalf("address %q: %v", s, err)
	}
	return a
}

// ---------------------------------------------------------------------------
// The tests

// TestMailVerify: register, the verification mail arrives over SMTP,
// its token verifies the account once; with require_verified on, login
// waits for it. Bad tokens and bodies are refused as the contract says.
func TestMailVerify(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), smtpMail(mp)+"\nrequire_verified on", "gatehouse_endpoints\nrespond 204"))
	cl := newClient(c.URL)
	host := hostPort(t, c.URL)
	verifyPage := c.URL + "/auth/verify"

	const password = "alice-password"
	alice := uniqueEmail("alice")
	u := register(t, cl, alice, password)
	tok1 := waitMail(t, mp, alice, 1, verifySubject(host), verifyPage)

	// Not verified yet: no login.
	wantDetail(t, cl.postForm(t, "/auth/jwt/login", formLogin(alice, password)), http.StatusBadRequest, "LOGIN_USER_NOT_VERIFIED")

	// Another link on request, with a new token.
	requestVerify(t, cl, alice)
	tok2 := waitMail(t, mp, alice, 2, verifySubject(host), verifyPage)
	if tok2 == tok1 {
		t.Fatal("request-verify-token mailed the same token again")
	}

	wantVerified(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": tok1}), u)
	token := loginJWT(t, cl, alice, password)
	if got := me(t, cl, bearer(token)); !got.IsVerified {
		t.Errorf("/users/me after verification: %+v", got)
	}
	// Used again, or the other link, once verified: ALREADY_VERIFIED.
	wantDetail(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": tok1}), http.StatusBadRequest, "VERIFY_USER_ALREADY_VERIFIED")
	wantDetail(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": tok2}), http.StatusBadRequest, "VERIFY_USER_ALREADY_VERIFIED")

	// A verified account asks for a link: 202, and no mail. Then a mail to
	// bob: the outbox delivers in order, so once bob's has arrived any
	// mail to alice queued before it would have too.
	requestVerify(t, cl, alice)
	bob := uniqueEmail("bob")
	register(t, cl, bob, "bob-password")
	bobVerify := waitMail(t, mp, bob, 1, verifySubject(host), verifyPage)
	wantMailCount(t, mp, alice, 2, time.Second)

	t.Run("bad tokens", func(t *testing.T) {
		for _, tok := range []string{"garbage", "", tok1 + "x", tok1[:42], strings.ToUpper(tok1)} {
			wantDetail(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": tok}), http.StatusBadRequest, "VERIFY_USER_BAD_TOKEN")
		}
		// Tokens have one purpose: a reset token does not verify, a
		// verify token does not reset.
		forgot(t, cl, bob)
		bobReset := waitMail(t, mp, bob, 2, resetSubject(host), c.URL+"/auth/reset-password")
		wantDetail(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": bobReset}), http.StatusBadRequest, "VERIFY_USER_BAD_TOKEN")
		wantDetail(t, resetPassword(t, cl, bobVerify, "bob-new-password"), http.StatusBadRequest, "RESET_PASSWORD_BAD_TOKEN")
		// Neither was spent by the wrong use. (Bob is not verified yet:
		// the right password answers NOT_VERIFIED, a wrong one
		// BAD_CREDENTIALS.)
		wantNull(t, resetPassword(t, cl, bobReset, "bob-new-password"), http.StatusOK)
		wantDetail(t, cl.postForm(t, "/auth/jwt/login", formLogin(bob, "bob-password")), http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
		wantDetail(t, cl.postForm(t, "/auth/jwt/login", formLogin(bob, "bob-new-password")), http.StatusBadRequest, "LOGIN_USER_NOT_VERIFIED")
		r := cl.postJSON(t, "/auth/verify", map[string]string{"token": bobVerify})
		wantStatus(t, r, http.StatusOK)
		loginJWT(t, cl, bob, "bob-new-password")
	})

	t.Run("422", func(t *testing.T) {
		want422Loc(t, cl.postJSON(t, "/auth/verify", `{}`), "body", "token")
		want422Loc(t, cl.postJSON(t, "/auth/verify", `"foo"`), "body", "token")
		want422Loc(t, cl.postJSON(t, "/auth/verify", `{"token":null}`), "body", "token")
		if it := want422Loc(t, cl.postJSON(t, "/auth/verify", `{"token":123}`), "body", "token"); it.Type != "string_type" {
			t.Errorf("token 123: type %q, want string_type", it.Type)
		}
		if it := want422Loc(t, cl.postJSON(t, "/auth/verify", `{"token":`)); it.Type != "json_invalid" {
			t.Errorf("malformed JSON: type %q, want json_invalid", it.Type)
		}
		want422Loc(t, cl.do(t, http.MethodPost, "/auth/verify", strings.NewReader(`{"token":"x"}`), header("Content-Type", "text/plain")), "body", "token")
		want422Loc(t, cl.postJSON(t, "/auth/request-verify-token", `{}`), "body", "email")
		want422Loc(t, cl.postJSON(t, "/auth/request-verify-token", `{"email":"king.arthur"}`), "body", "email")
	})
}

// TestMailPasswordReset: forgot → mail → reset, and everything that
// voids a token: use, a password change, an email change (for verify
// tokens), deactivation by a superuser or by the CLI.
func TestMailPasswordReset(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	up := startUpstream(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), smtpMail(mp)+"\nmail_limit off\nverify_on_register off",
		guardedSite(up, "")))
	cl := newClient(c.URL)
	host := hostPort(t, c.URL)
	resetPage, verifyPage := c.URL+"/auth/reset-password", c.URL+"/auth/verify"

	// ctl's mails are barriers: the outbox delivers in order, so once a
	// mail to ctl queued after some request has arrived, any mail that
	// request queued has arrived too.
	ctl := uniqueEmail("ctl")
	register(t, cl, ctl, "ctl-password")
	barriers := 0
	barrier := func(t *testing.T) {
		t.Helper()
		barriers++
		forgot(t, cl, ctl)
		mp.WaitForCount(t, ctl, barriers, 15*time.Second)
	}

	t.Run("reset", func(t *testing.T) {
		ann := uniqueEmail("ann")
		const oldPW, newPW = "ann-old-password", "ann-new-password"
		u := register(t, cl, ann, oldPW)
		jwt := loginJWT(t, cl, ann, oldPW)
		cookie := loginCookie(t, cl, ann, oldPW)
		wantStatus(t, cl.get(t, uniquePath("/app"), bearer(jwt)), http.StatusOK)
		wantStatus(t, cl.get(t, uniquePath("/app"), withCookie(cookie)), http.StatusOK)

		forgot(t, cl, ann)
		tok := waitMail(t, mp, ann, 1, resetSubject(host), resetPage)

		// A refused password keeps the link working and changes nothing.
		wantDetail(t, resetPassword(t, cl, tok, "short"), http.StatusBadRequest,
			map[string]any{"code": "RESET_PASSWORD_INVALID_PASSWORD", "reason": "Password should be at least 8 characters"})
		wantDetail(t, resetPassword(t, cl, tok, "xx"+strings.ToUpper(ann)), http.StatusBadRequest,
			map[string]any{"code": "RESET_PASSWORD_INVALID_PASSWORD", "reason": "Password should not contain e-mail"})
		me(t, cl, bearer(jwt))
		me(t, cl, withCookie(cookie))

		wantNull(t, resetPassword(t, cl, tok, newPW), http.StatusOK)
		// Every session from before is over at once (the reset is in
		// the serving process: no staleness to wait for), at the API and
		// at the guard.
		wantDetail(t, cl.get(t, "/users/me", bearer(jwt)), http.StatusUnauthorized, "Unauthorized")
		wantDetail(t, cl.get(t, "/users/me", withCookie(cookie)), http.StatusUnauthorized, "Unauthorized")
		for _, cred := range []reqOpt{bearer(jwt), withCookie(cookie)} {
			path := uniquePath("/app")
			wantDetail(t, cl.get(t, path, cred), http.StatusUnauthorized, "Unauthorized")
			up.NeverSaw(t, path)
		}
		loginRefused(t, cl, ann, oldPW)
		wantDetail(t, cl.postForm(t, "/auth/cookie/login", formLogin(ann, oldPW)), http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
		fresh := loginJWT(t, cl, ann, newPW)
		if got := me(t, cl, bearer(fresh)); got.ID != u.ID || got.IsVerified {
			t.Errorf("after the reset: %+v (a reset does not verify)", got)
		}

		// Single use; a refused reuse changes nothing.
		wantDetail(t, resetPassword(t, cl, tok, "ann-third-password"), http.StatusBadRequest, "RESET_PASSWORD_BAD_TOKEN")
		loginRefused(t, cl, ann, "ann-third-password")
		me(t, cl, bearer(fresh))

		// Bad tokens; the token is checked before the password.
		for _, bad := range []string{"garbage", "", tok[:42], tok + "A"} {
			wantDetail(t, resetPassword(t, cl, bad, "good-password-1"), http.StatusBadRequest, "RESET_PASSWORD_BAD_TOKEN")
		}
		wantDetail(t, resetPassword(t, cl, "garbage", "short"), http.StatusBadRequest, "RESET_PASSWORD_BAD_TOKEN")
		wantDetail(t, resetPassword(t, cl, tok, "short"), http.StatusBadRequest, "RESET_PASSWORD_BAD_TOKEN")
	})

	t.Run("422", func(t *testing.T) {
		r := cl.postJSON(t, "/auth/reset-password", `{}`)
		want422Loc(t, r, "body", "token")
		want422Loc(t, r, "body", "password")
		want422Loc(t, cl.postJSON(t, "/auth/reset-password", `{"token":"x"}`), "body", "password")
		want422Loc(t, cl.postJSON(t, "/auth/reset-password", `{"password":"good-password-1"}`), "body", "token")
		want422Loc(t, cl.postJSON(t, "/auth/reset-password", `{"token":1,"password":"good-password-1"}`), "body", "token")
		want422Loc(t, cl.postJSON(t, "/auth/reset-password", `[]`), "body", "token")
		want422Loc(t, cl.postJSON(t, "/auth/forgot-password", `{}`), "body", "email")
		want422Loc(t, cl.postJSON(t, "/auth/forgot-password", `{"email":"king.arthur"}`), "body", "email")
		want422Loc(t, cl.postJSON(t, "/auth/forgot-password", `{"email":`))
	})

	t.Run("password change voids reset links", func(t *testing.T) {
		pat := uniqueEmail("pat")
		register(t, cl, pat, "pat-password-1")
		jwt := loginJWT(t, cl, pat, "pat-password-1")
		forgot(t, cl, pat)
		tok := waitMail(t, mp, pat, 1, resetSubject(host), resetPage)
		r := cl.patchJSON(t, "/users/me", map[string]string{"password": "pat-password-2", "current_password": "pat-password-1"}, bearer(jwt))
		wantStatus(t, r, http.StatusOK)
		wantDetail(t, resetPassword(t, cl, tok, "pat-password-3"), http.StatusBadRequest, "RESET_PASSWORD_BAD_TOKEN")
		loginRefused(t, cl, pat, "pat-password-3")
		loginJWT(t, cl, pat, "pat-password-2")
		// A link asked for after the change works.
		forgot(t, cl, pat)
		tok = waitMail(t, mp, pat, 2, resetSubject(host), resetPage)
		wantNull(t, resetPassword(t, cl, tok, "pat-password-3"), http.StatusOK)
		loginJWT(t, cl, pat, "pat-password-3")
	})

	t.Run("email change voids verify links", func(t *testing.T) {
		eve, eve2 := uniqueEmail("eve"), uniqueEmail("eve2")
		u := register(t, cl, eve, "eve-password")
		jwt := loginJWT(t, cl, eve, "eve-password")
		requestVerify(t, cl, eve)
		tok := waitMail(t, mp, eve, 1, verifySubject(host), verifyPage)
		r := cl.patchJSON(t, "/users/me", map[string]string{"email": eve2, "current_password": "eve-password"}, bearer(jwt))
		wantStatus(t, r, http.StatusOK)
		wantDetail(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": tok}), http.StatusBadRequest, "VERIFY_USER_BAD_TOKEN")
		// The new address gets its own link, which works.
		requestVerify(t, cl, eve2)
		tok2 := waitMail(t, mp, eve2, 1, verifySubject(host), verifyPage)
		u.Email = eve2
		wantVerified(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": tok2}), u)
		// Still refused, now that the account is verified: the link was
		// for an address it no longer has.
		wantDetail(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": tok}), http.StatusBadRequest, "VERIFY_USER_BAD_TOKEN")
		// Verified: asking for another link mails nothing.
		requestVerify(t, cl, eve2)
		barrier(t)
		wantMailCount(t, mp, eve2, 1, 500*time.Millisecond)
		wantMailCount(t, mp, eve, 1, 0)
	})

	t.Run("inactive", func(t *testing.T) {
		su := superuserToken(t, c, cl)
		ina, cli := uniqueEmail("ina"), uniqueEmail("cli")
		inaUser := register(t, cl, ina, "ina-password")
		register(t, cl, cli, "cli-password")
		forgot(t, cl, ina)
		forgot(t, cl, cli)
		inaTok := waitMail(t, mp, ina, 1, resetSubject(host), resetPage)
		cliTok := waitMail(t, mp, cli, 1, resetSubject(host), resetPage)

		// Deactivated by a superuser, and with the CLI next to the server.
		r := cl.patchJSON(t, "/users/"+inaUser.ID, map[string]any{"is_active": false}, bearer(su))
		wantStatus(t, r, http.StatusOK)
		if res := c.Run(t, "", "gatehouse", "user", "set", "--config", c.ConfigName, "--email", cli, "--inactive"); res.ExitCode != 0 {
			t.Fatalf("caddy gatehouse user set --inactive: %+v", res)
		}

		wantDetail(t, resetPassword(t, cl, inaTok, "ina-new-password"), http.StatusBadRequest, "RESET_PASSWORD_BAD_TOKEN")
		wantDetail(t, resetPassword(t, cl, cliTok, "cli-new-password"), http.StatusBadRequest, "RESET_PASSWORD_BAD_TOKEN")
		// No mail for them, whatever they ask.
		for _, e := range []string{ina, cli} {
			forgot(t, cl, e)
			requestVerify(t, cl, e)
		}
		barrier(t)
		wantMailCount(t, mp, ina, 1, 500*time.Millisecond)
		wantMailCount(t, mp, cli, 1, 0)

		// Active again: the old link stays dead (it was refused, and a
		// link for an inactive account is not revived), the password is
		// unchanged.
		wantStatus(t, cl.patchJSON(t, "/users/"+inaUser.ID, map[string]any{"is_active": true}, bearer(su)), http.StatusOK)
		loginRefused(t, cl, ina, "ina-new-password")
		loginJWT(t, cl, ina, "ina-password")
	})
}

// TestMailEnumeration: forgot-password and request-verify-token answer
// the same for an active account, an unknown address and an inactive
// account, and only the active account gets mail.
func TestMailEnumeration(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), smtpMail(mp)+"\nmail_limit off\nverify_on_register off", "gatehouse_endpoints\nrespond 204"))
	cl := newClient(c.URL)
	host := hostPort(t, c.URL)

	known, unknown, inactive := uniqueEmail("known"), uniqueEmail("unknown"), uniqueEmail("inactive")
	register(t, cl, known, "known-password")
	register(t, cl, inactive, "inactive-password")
	if res := c.Run(t, "", "gatehouse", "user", "set", "--config", c.ConfigName, "--email", inactive, "--inactive"); res.ExitCode != 0 {
		t.Fatalf("caddy gatehouse user set --inactive: %+v", res)
	}

	// The headers a client could tell apart (Date aside).
	shape := func(r *response) string {
		var names []string
		for k, v := range r.Header {
			if k != "Date" {
				names = append(names, k+": "+strings.Join(v, ", "))
			}
		}
		slices.Sort(names)
		return fmt.Sprintf("%d %s %q", r.Status, names, r.Body)
	}
	for _, route := range []string{"/auth/forgot-password", "/auth/request-verify-token"} {
		var first string
		// The known address last: its mail is then queued after anything
		// the others might have queued, and the outbox delivers in order.
		for _, email := range []string{unknown, inactive, known} {
			r := cl.postJSON(t, route, map[string]string{"email": email})
			wantNull(t, r, http.StatusAccepted)
			if first == "" {
				first = shape(r)
			} else if got := shape(r); got != first {
				t.Errorf("%s for %s answered\n%s\nbut for %s\n%s", route, email, got, unknown, first)
			}
		}
	}
	msgs := mp.WaitForCount(t, known, 2, 15*time.Second)
	if len(msgs) != 2 {
		t.Fatalf("%d messages to %s, want 2", len(msgs), known)
	}
	if msgs[0].Subject == verifySubject(host) { // delivered in order, but stamped by mailpit
		msgs[0], msgs[1] = msgs[1], msgs[0]
	}
	checkMailpit(t, mp, msgs[0], known, resetSubject(host), c.URL+"/auth/reset-password")
	checkMailpit(t, mp, msgs[1], known, verifySubject(host), c.URL+"/auth/verify")
	wantMailCount(t, mp, unknown, 0, time.Second)
	wantMailCount(t, mp, inactive, 0, 0)
	if all := mp.Messages(t); len(all) != 2 {
		t.Errorf("mailbox holds %d messages, want the 2 to %s", len(all), known)
	}

	// Lookups ignore case: the mail goes to the address as registered.
	forgot(t, cl, strings.ToUpper(known))
	waitMail(t, mp, known, 3, resetSubject(host), c.URL+"/auth/reset-password")
}

// TestMailLimit: with `mail_limit 2 1h`, an address gets two mails
// however often (and in whatever case) it is asked for; every request
// still answers 202 null.
func TestMailLimit(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), smtpMail(mp)+"\nmail_limit 2 1h\nverify_on_register off", "gatehouse_endpoints\nrespond 204"))
	cl := newClient(c.URL)
	host := hostPort(t, c.URL)

	lim, ctl := uniqueEmail("lim"), uniqueEmail("ctl")
	register(t, cl, lim, "lim-password")
	register(t, cl, ctl, "ctl-password")
	for _, e := range []string{lim, lim, strings.ToUpper(lim), lim, strings.ToUpper(lim[:1]) + lim[1:]} {
		forgot(t, cl, e)
	}
	// The limit is per address, whatever the kind of mail.
	requestVerify(t, cl, lim)
	toks := map[string]bool{}
	for i := 1; i <= 2; i++ {
		toks[waitMail(t, mp, lim, i, resetSubject(host), c.URL+"/auth/reset-password")] = true
	}
	if len(toks) != 2 {
		t.Errorf("the two mails carry one token")
	}
	// ctl's mail, queued after all of lim's requests, is a barrier; then
	// a few more polls of the sender.
	forgot(t, cl, ctl)
	mp.WaitFor(t, ctl, 15*time.Second)
	wantMailCount(t, mp, lim, 2, 3*time.Second)
}

// TestMailSMTPDown: a request never waits for SMTP; a mail queued while
// the server is down is delivered once it is back, also when Caddy was
// restarted in between.
func TestMailSMTPDown(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), smtpMail(mp)+"\nmail_limit off", "gatehouse_endpoints\nrespond 204"))
	cl := newClient(c.URL)
	host := hostPort(t, c.URL)
	failed := msgIs("mail: delivery failed; will retry")

	// quick runs a request that must not wait for the mail server.
	quick := func(what string, f func()) {
		t.Helper()
		start := time.Now()
		f()
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %v with the mail server down; a request must not wait for SMTP", what, d)
		}
	}

	dora := uniqueEmail("dora")
	mp.Stop()
	var u apiUser
	quick("register", func() { u = register(t, cl, dora, "dora-password") })
	// The sender tried, failed, and will retry (after 5 s).
	waitLog(t, c, "saying a delivery failed", 1, 10*time.Second, failed)
	mp.Start()
	wantMailCount(t, mp, dora, 0, 0)
	start := time.Now()
	msgs := mp.WaitForCount(t, dora, 1, 30*time.Second)
	t.Logf("verification mail delivered %v after the server came back", time.Since(start).Round(100*time.Millisecond))
	tok := checkMailpit(t, mp, msgs[0], dora, verifySubject(host), c.URL+"/auth/verify")
	wantVerified(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": tok}), u)

	// Down again; the mail is queued, tried, and Caddy stops before the
	// retry. Started again with the server up, it delivers.
	mp.Stop()
	quick("forgot-password", func() { forgot(t, cl, dora) })
	waitLog(t, c, "saying a delivery failed", 2, 10*time.Second, failed)
	c.Stop()
	mp.Start()
	c.Start()
	start = time.Now()
	msgs = mp.WaitForCount(t, dora, 2, 30*time.Second)
	t.Logf("reset mail delivered %v after the restart", time.Since(start).Round(100*time.Millisecond))
	tok = checkMailpit(t, mp, msgs[1], dora, resetSubject(host), c.URL+"/auth/reset-password")
	wantNull(t, resetPassword(t, cl, tok, "dora-new-password"), http.StatusOK)
	loginRefused(t, cl, dora, "dora-password")
	loginJWT(t, cl, dora, "dora-new-password")

	// Delivered once: a mail queued after it arrives, and dora has two.
	ed := uniqueEmail("ed")
	register(t, cl, ed, "ed-password")
	mp.WaitFor(t, ed, 15*time.Second)
	wantMailCount(t, mp, dora, 2, 500*time.Millisecond)
}

// TestMailDir: `mail dir` writes one RFC 5322 file per message, which
// net/mail and mime/multipart read; its link verifies and resets.
func TestMailDir(t *testing.T) {
	t.Parallel()
	const from = "Dev Mail <dev@gatehouse.test>"
	c := startCaddy(t, gatehouseConfig(freePort(t), fmt.Sprintf("mail dir ./mail {\n\tfrom %q\n}", from), "gatehouse_endpoints\nrespond 204"))
	cl := newClient(c.URL)
	host := hostPort(t, c.URL)
	dir := c.Path("mail")

	dora := uniqueEmail("dora")
	u := registerWith(t, cl, map[string]any{"email": dora, "password": "dora-password", "full_name": "Dörte Ünal"})
	paths := waitEML(t, dir, 1, 15*time.Second)
	m := readEML(t, paths[0])
	tok := m.check(t, from, dora, verifySubject(host), c.URL+"/auth/verify")
	// Until the address is verified, the name may be a stranger's words:
	// the verification mail does not carry it.
	if strings.Contains(m.Parts[0].Body, "Dörte") || strings.Contains(m.Parts[1].Body, "Dörte") {
		t.Errorf("the verification mail carries the unverified account's name:\n%s\n%s", m.Parts[0].Body, m.Parts[1].Body)
	}
	wantVerified(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": tok}), u)

	forgot(t, cl, dora)
	paths = waitEML(t, dir, 2, 15*time.Second)
	m2 := readEML(t, paths[1])
	tok = m2.check(t, from, dora, resetSubject(host), c.URL+"/auth/reset-password")
	// Verified now: the reset mail greets the user by name, in both parts
	// (non-ASCII, so the file is written 8bit).
	if !strings.Contains(m2.Parts[0].Body, "Hello Dörte Ünal,") || !strings.Contains(m2.Parts[1].Body, "Hello Dörte Ünal,") {
		t.Errorf("the parts do not greet the user by name:\n%s\n%s", m2.Parts[0].Body, m2.Parts[1].Body)
	}
	if m2.Header.Get("Message-ID") == m.Header.Get("Message-ID") {
		t.Errorf("two messages share Message-ID %s", m.Header.Get("Message-ID"))
	}
	wantNull(t, resetPassword(t, cl, tok, "dora-new-password"), http.StatusOK)
	loginJWT(t, cl, dora, "dora-new-password")

	// One file per message and nothing else (no temporary file left),
	// readable by the owner only: the files carry tokens.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("%s holds %d entries, want the 2 .eml files", dir, len(entries))
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(e.Name(), ".eml") || !info.Mode().IsRegular() || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v; want a 0600 .eml file", e.Name(), info.Mode())
		}
	}
}

// TestMailLogOnly: without a `mail` option, start-up warns that mails are
// only logged, and the log holds the link, which works.
func TestMailLogOnly(t *testing.T) {
	t.Parallel()
	c := startCaddy(t, gatehouseConfig(freePort(t), "", "gatehouse_endpoints\nrespond 204"))
	cl := newClient(c.URL)

	warned := false
	for _, e := range logEntries(c) {
		if e.str("level") == "warn" && strings.Contains(e.str("msg"), "no mail configured") && strings.Contains(e.str("msg"), "only logged") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no start-up warning that mails are only logged:\n%s", tail(c.Log(), 30))
	}

	lou := uniqueEmail("lou")
	u := register(t, cl, lou, "lou-password")
	logged := waitLog(t, c, "with the mail to "+lou, 1, 15*time.Second, func(e logEntry) bool {
		return e.str("to") == lou && strings.Contains(e.str("msg"), "mail not sent")
	})
	if len(logged) != 1 {
		t.Fatalf("%d log entries with the mail, want 1", len(logged))
	}
	e := logged[0]
	if e.str("subject") != verifySubject(hostPort(t, c.URL)) {
		t.Errorf("logged subject %q", e.str("subject"))
	}
	tok := linkToken(t, "logged text", e.str("text"), c.URL+"/auth/verify")
	wantVerified(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": tok}), u)
}

// TestMailEvents: with the global debug option, Caddy's events app logs
// gatehouse.user_registered, user_verified, forgot_password and
// password_reset, with the user's id and email and never a token or a
// password.
func TestMailEvents(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	c := startCaddy(t, fmt.Sprintf(`{
	debug
	admin off
	gatehouse {
		database sqlite ./gatehouse.db
		mail dir ./mail
	}
}

http://127.0.0.1:%d {
	gatehouse_endpoints
	respond 204
}
`, port))
	cl := newClient(c.URL)
	dir := c.Path("mail")
	const password, newPassword = "evan-password-1", "evan-password-2"

	evan := uniqueEmail("evan")
	u := register(t, cl, evan, password)
	verifyTok := readEML(t, waitEML(t, dir, 1, 15*time.Second)[0]).check(t, "Gatehouse <gatehouse@localhost>", evan,
		verifySubject(hostPort(t, c.URL)), c.URL+"/auth/verify")
	wantStatus(t, cl.postJSON(t, "/auth/verify", map[string]string{"token": verifyTok}), http.StatusOK)
	forgot(t, cl, evan)
	resetTok := readEML(t, waitEML(t, dir, 2, 15*time.Second)[1]).check(t, "Gatehouse <gatehouse@localhost>", evan,
		resetSubject(hostPort(t, c.URL)), c.URL+"/auth/reset-password")
	wantNull(t, resetPassword(t, cl, resetTok, newPassword), http.StatusOK)
	// Events that must not be: a request for an unknown address, a
	// refused token.
	forgot(t, cl, uniqueEmail("nobody"))
	wantStatus(t, resetPassword(t, cl, resetTok, "evan-password-3"), http.StatusBadRequest)

	names := []string{"gatehouse.user_registered", "gatehouse.user_verified", "gatehouse.forgot_password", "gatehouse.password_reset"}
	isEvent := func(e logEntry) bool { return e.str("logger") == "events" && e.str("msg") == "event" }
	waitLog(t, c, "from logger events", len(names), 10*time.Second, func(e logEntry) bool {
		return isEvent(e) && strings.HasPrefix(e.str("name"), "gatehouse.")
	})
	var got []string
	for _, e := range logEntries(c) {
		if !isEvent(e) {
			continue
		}
		for _, secret := range []string{verifyTok, resetTok, password, newPassword, "evan-password-3"} {
			if strings.Contains(e.Line, secret) {
				t.Errorf("event line contains a secret (%q): %s", secret, e.Line)
			}
		}
		name := e.str("name")
		if !strings.HasPrefix(name, "gatehouse.") {
			continue
		}
		got = append(got, name)
		if e.str("level") != "debug" {
			t.Errorf("%s logged at %q, want debug", name, e.str("level"))
		}
		want := map[string]any{"user_id": u.ID, "email": evan}
		if !reflect.DeepEqual(e.Fields["data"], want) {
			t.Errorf("%s data %v, want %v", name, e.Fields["data"], want)
		}
	}
	if !slices.Equal(got, names) {
		t.Errorf("gatehouse events %v, want %v in that order", got, names)
	}
}

// TestMailLinks: links are built from base_url when it is set, and follow
// the endpoints' api_prefix.
func TestMailLinks(t *testing.T) {
	t.Parallel()

	t.Run("base_url", func(t *testing.T) {
		t.Parallel()
		// A site that answers any Host: base_url, not the Host header,
		// decides where links point, so a forged Host cannot send a
		// user's reset link elsewhere.
		port := freePort(t)
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		c := startCaddy(t, fmt.Sprintf(`{
	admin off
	gatehouse {
		database sqlite ./gatehouse.db
		mail dir ./mail
		base_url https://app.example.com/
	}
}

http://:%d {
	gatehouse_endpoints
	respond 204
}
`, port), withReadyURL(base+"/"))
		cl := newClient(base)
		forged := func(r *http.Request) { r.Host = "evil.example" }
		dir := c.Path("mail")
		ada := uniqueEmail("ada")
		wantStatus(t, cl.postJSON(t, "/auth/register", map[string]string{"email": ada, "password": "ada-password"}, forged), http.StatusCreated)
		m := readEML(t, waitEML(t, dir, 1, 15*time.Second)[0])
		m.check(t, "Gatehouse <gatehouse@localhost>", ada, verifySubject("app.example.com"), "https://app.example.com/auth/verify")
		wantNull(t, cl.postJSON(t, "/auth/forgot-password", map[string]string{"email": ada}, forged), http.StatusAccepted)
		m2 := readEML(t, waitEML(t, dir, 2, 15*time.Second)[1])
		tok := m2.check(t, "Gatehouse <gatehouse@localhost>", ada, resetSubject("app.example.com"), "https://app.example.com/auth/reset-password")
		for _, mm := range []emlMessage{m, m2} {
			if strings.Contains(mm.Raw, "evil.example") || strings.Contains(mm.Raw, "127.0.0.1") {
				t.Errorf("%s names the request's Host although base_url is set", mm.Path)
			}
		}
		// The token is this server's.
		wantNull(t, resetPassword(t, cl, tok, "ada-new-password"), http.StatusOK)
		loginJWT(t, cl, ada, "ada-new-password")
	})

	t.Run("api_prefix", func(t *testing.T) {
		t.Parallel()
		c := startCaddy(t, gatehouseConfig(freePort(t), "mail dir ./mail", "gatehouse_endpoints {\n\tapi_prefix /acct\n}\nrespond 204"))
		cl := newClient(c.URL)
		dir := c.Path("mail")
		bea := uniqueEmail("bea")
		r := cl.postJSON(t, "/acct/register", map[string]string{"email": bea, "password": "bea-password"})
		wantStatus(t, r, http.StatusCreated)
		var u apiUser
		decode(t, r, &u)
		m := readEML(t, waitEML(t, dir, 1, 15*time.Second)[0])
		tok := m.check(t, "Gatehouse <gatehouse@localhost>", bea, verifySubject(hostPort(t, c.URL)), c.URL+"/acct/verify")
		wantVerified(t, cl.postJSON(t, "/acct/verify", map[string]string{"token": tok}), u)
		wantNull(t, cl.postJSON(t, "/acct/forgot-password", map[string]string{"email": bea}), http.StatusAccepted)
		m2 := readEML(t, waitEML(t, dir, 2, 15*time.Second)[1])
		tok = m2.check(t, "Gatehouse <gatehouse@localhost>", bea, resetSubject(hostPort(t, c.URL)), c.URL+"/acct/reset-password")
		for _, mm := range []emlMessage{m, m2} {
			if strings.Contains(mm.Raw, "/auth/") {
				t.Errorf("%s links to /auth/ although the API is at /acct", mm.Path)
			}
		}
		wantNull(t, cl.postJSON(t, "/acct/reset-password", map[string]string{"token": tok, "password": "bea-new-password"}), http.StatusOK)
		r = cl.postForm(t, "/acct/jwt/login", formLogin(bea, "bea-new-password"))
		wantStatus(t, r, http.StatusOK)
	})
}
