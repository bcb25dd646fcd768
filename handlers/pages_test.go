package handlers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

const (
	badCredentials  = "The email address or the password is not right."
	confirmFirst    = "Please confirm your email address first: open the link we sent you, or ask for a new one."
	formExpired     = "This form has expired, or it was sent from another site. Go back, reload the page and try again."
	weakReason      = "Password should be at least 8 characters."
	newPassword     = "a brand new password"
	firefoxOnLinux  = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	safariOnIPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
	xssScript       = `<script>alert(1)</script>`
	xssAttribute    = `"><script>alert(1)</script>`
	invalidEmailMsg = "Please enter a valid email address."
)

// TestPagesServeSafeHTML: every page answers 200 HTML with the security
// headers, sets the CSRF cookie once, carries the token in every form,
// holds no inline code, and answers HEAD alike.
func TestPagesServeSafeHTML(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt", verified)
	cases := []struct {
		path, heading string
		tokenPage     bool
		login         bool
		forms         []string // ids of the page's forms, in order
	}{
		{"/auth/login", "Log in", false, false, []string{"login"}},
		{"/auth/login?rd=%2Fapp", "Log in", false, false, []string{"login"}},
		{"/auth/register", "Create an account", false, false, []string{"register"}},
		{"/auth/forgot-password", "Reset your password", false, false, []string{"forgot"}},
		{"/auth/request-verify-token", "Confirm your email address", false, false, []string{"request-verify"}},
		{"/auth/reset-password?token=abc", "Choose a new password", true, false, []string{"reset"}},
		{"/auth/verify?token=abc", "Confirm your email address", true, false, []string{"verify"}},
		{"/auth/account", "Your account", false, true, []string{"profile", "email", "password", "", "logout-everywhere"}},
		{"/auth/logout", "Log out", false, false, []string{"logout"}},
		{"/auth/logout", "Log out", false, true, []string{"logout"}},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			b := e.browser(t)
			if c.login {
				b.login("arthur@camelot.bt", testPassword)
			}
			hadCookie := b.jar[csrfCookie] != ""
			w := b.get(c.path)
			set := setCookie(w, csrfCookie)
			switch {
			case hadCookie && set != nil:
				t.Errorf("CSRF cookie set again: %q", set)
			case !hadCookie && set == nil:
				t.Fatalf("no CSRF cookie: %q", w.Header().Values("Set-Cookie"))
			case set != nil:
				if !set.HttpOnly || set.SameSite != http.SameSiteLaxMode || set.Path != "/auth" || !set.Secure ||
					set.Domain != "" || set.MaxAge != 0 || len(set.Value) != 43 {
					t.Errorf("CSRF cookie %q: want a 43-character session cookie, HttpOnly, SameSite=Lax, Path=/auth, Secure", set)
				}
			}
			body := b.wantPage(w, http.StatusOK, c.tokenPage)
			if h := pageHeading(body); h != c.heading {
				t.Errorf("heading %q, want %q", h, c.heading)
			}
			if !strings.Contains(body, "<title>"+c.heading+" · Gatehouse</title>") {
				t.Errorf("no title %q in\n%s", c.heading, body)
			}
			if !strings.Contains(body, `<link rel="stylesheet" href="/auth/static/gatehouse.css">`) {
				t.Errorf("no stylesheet link in\n%s", body)
			}
			var ids []string
			for _, f := range pageForms(body) {
				ids = append(ids, f.attrs["id"])
				if !strings.HasPrefix(f.attrs["action"], "/auth/") {
					t.Errorf("form %v posts to %q", f.attrs, f.attrs["action"])
				}
			}
			if !slices.Equal(ids, c.forms) {
				t.Errorf("forms %q, want %q", ids, c.forms)
			}
			if c.tokenPage {
				f := pageForms(body)[0]
				if tok, _ := f.input("token"); tok != "abc" {
					t.Errorf("token input %q, want abc", tok)
				}
			}

			// Again: the same token, no new cookie.
			w = b.get(c.path)
			if set := setCookie(w, csrfCookie); set != nil {
				t.Errorf("CSRF cookie set on the second visit: %q", set)
			}
			b.wantPage(w, http.StatusOK, c.tokenPage)

			// HEAD: the same status and headers.
			w = b.do(http.MethodHead, c.path, "")
			if w.Code != http.StatusOK {
				t.Fatalf("HEAD: %d; body %s", w.Code, w.Body)
			}
			wantPageHeaders(t, w.Header(), c.tokenPage)
		})
	}
}

// TestPagesCookiesSecureExceptLoopback: the CSRF and session cookies are
// Secure except on plain-HTTP loopback hosts.
func TestPagesCookiesSecureExceptLoopback(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt", verified)
	for _, c := range []struct {
		origin string
		secure bool
	}{
		{"http://localhost:8080", false},
		{"http://localhost", false},
		{"http://app.localhost:2015", false},
		{"http://127.0.0.1:8080", false},
		{"http://[::1]:8080", false},
		{"http://example.com", true},
		{"http://192.0.2.10:8080", true},
		{"https://localhost:8443", true},
		{"https://example.com", true},
	} {
		t.Run(c.origin, func(t *testing.T) {
			b := e.browser(t)
			b.origin = c.origin
			w := b.get("/auth/login")
			csrf := setCookie(w, csrfCookie)
			if csrf == nil || csrf.Secure != c.secure || !csrf.HttpOnly || csrf.SameSite != http.SameSiteLaxMode || csrf.Path != "/auth" {
				t.Fatalf("CSRF cookie %q, want Secure=%v", csrf, c.secure)
			}
			w = b.submit("/auth/login", "login", "username", "arthur@camelot.bt", "password", testPassword)
			wantSeeOther(t, w, "/")
			e.wantSessionCookie(t, w, c.secure)
		})
	}
}

// TestPagesUnderAnotherPrefix: links, forms and the CSRF cookie follow
// api_prefix.
func TestPagesUnderAnotherPrefix(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	e.api.APIPrefix = "/id/"
	e.mustUser(t, "arthur@camelot.bt", verified)
	b := e.browser(t)
	w := b.get("/id/login?rd=%2Fapp")
	if c := setCookie(w, csrfCookie); c == nil || c.Path != "/id" {
		t.Fatalf("CSRF cookie %q, want Path=/id", c)
	}
	body := b.wantPage(w, http.StatusOK, false)
	f := findForm(t, body, func(f htmlForm) bool { return f.attrs["id"] == "login" })
	if f.attrs["action"] != "/id/login" || !strings.Contains(body, `href="/id/static/gatehouse.css"`) ||
		!strings.Contains(body, `href="/id/register?rd=%2fapp"`) {
		t.Fatalf("page does not use the prefix:\n%s", body)
	}
	wantSeeOther(t, b.post("/id/login", f.fill("username", "arthur@camelot.bt", "password", testPassword)), "/app")
	if w := b.get("/auth/login"); w.Code != notOurs {
		t.Errorf("/auth/login under prefix /id: %d", w.Code)
	}
	w = b.get("/id/account")
	if w.Code != http.StatusOK {
		t.Fatalf("account: %d", w.Code)
	}
	if w := e.browser(t).get("/id/account"); w.Code != http.StatusFound || w.Header().Get("Location") != "/id/login?rd=%2Fid%2Faccount" {
		t.Errorf("account without a session: %d %q", w.Code, w.Header().Get("Location"))
	}
}

// TestPageStylesheet: the stylesheet is served with the accent colour.
func TestPageStylesheet(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ accent, want string }{{"", "#1f6feb"}, {"#ABC", "#ABC"}, {"#0a3d2e", "#0a3d2e"}} {
		e := newPageEnv(t, nil)
		e.api.Branding.Accent = c.accent
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			w := e.serve(method, "/auth/static/gatehouse.css", "")
			if w.Code != http.StatusOK {
				t.Fatalf("%s accent %q: %d", method, c.accent, w.Code)
			}
			h := w.Header()
			if h.Get("Content-Type") != "text/css; charset=utf-8" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: headers %v", method, h)
			}
			if len(h.Values("Set-Cookie")) != 0 {
				t.Errorf("%s: the stylesheet sets cookies: %q", method, h.Values("Set-Cookie"))
			}
			css := w.Body.String()
			if method == http.MethodGet && (!strings.Contains(css, "--accent: "+c.want+";") || strings.Contains(css, "{{")) {
				t.Errorf("accent %q: stylesheet does not define --accent: %s", c.accent, c.want)
			}
		}
	}
	e := newPageEnv(t, nil)
	w := e.serve(http.MethodPost, "/auth/static/gatehouse.css", "")
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST stylesheet: %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

// TestPagesDispatchByContentType: JSON to a page's URL gets the API, a
// form the page.
func TestPagesDispatchByContentType(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt", verified)
	b := e.browser(t)
	b.page("/auth/login")
	csrf := b.csrfToken()

	// The API.
	w := b.do("POST", "/auth/register", `{"email":"gawain@camelot.bt","password":"`+testPassword+`"}`, jsonCT())
	if w.Code != http.StatusCreated || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("JSON register: %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	e.wantNoSessionCookie(t, w)
	want202Null(t, b.do("POST", "/auth/forgot-password", `{"email":"arthur@camelot.bt"}`, jsonCT()))
	e.mailLink(t, "arthur@camelot.bt")
	want202Null(t, b.do("POST", "/auth/request-verify-token", `{"email":"gawain@camelot.bt"}`, jsonCT()))
	e.mailLink(t, "gawain@camelot.bt")
	e.takeWakes()
	wantJSON(t, b.do("POST", "/auth/reset-password", `{"token":"nope","password":"`+newPassword+`"}`, jsonCT()),
		400, `{"detail":"RESET_PASSWORD_BAD_TOKEN"}`)
	wantJSON(t, b.do("POST", "/auth/verify", `{"token":"nope"}`, jsonCT()), 400, `{"detail":"VERIFY_USER_BAD_TOKEN"}`)
	// No content type is not a form either.
	if w := b.do("POST", "/auth/verify", `{"token":"nope"}`); w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("POST without a content type: %d %q", w.Code, w.Header().Get("Content-Type"))
	}

	// The pages.
	w = b.post("/auth/register", url.Values{"csrf": {csrf}, "email": {"percival@camelot.bt"}, "password": {testPassword}})
	wantSeeOther(t, w, "/")
	e.wantSessionCookie(t, w, true)
	for _, path := range []string{"/auth/forgot-password", "/auth/request-verify-token"} {
		body := b.wantPage(b.post(path, url.Values{"csrf": {csrf}, "email": {"nobody@camelot.bt"}}), http.StatusOK, false)
		if pageHeading(body) != "Check your email" {
			t.Errorf("form to %s: heading %q", path, pageHeading(body))
		}
	}
	for _, path := range []string{"/auth/reset-password", "/auth/verify"} {
		body := b.wantPage(b.post(path, url.Values{"csrf": {csrf}, "token": {"nope"}, "password": {newPassword}}), http.StatusBadRequest, true)
		if pageHeading(body) != "This link does not work" {
			t.Errorf("form to %s: heading %q", path, pageHeading(body))
		}
	}
	// multipart/form-data is a form too.
	mp, ct := multipartBody(t, "csrf", csrf, "email", "nobody@camelot.bt")
	body := b.wantPage(b.do("POST", "/auth/forgot-password", mp, withHeader("Content-Type", ct), withHeader("Origin", pageOrigin)), http.StatusOK, false)
	if pageHeading(body) != "Check your email" {
		t.Errorf("multipart form: heading %q", pageHeading(body))
	}
	e.wantNoMail(t)

	// The account page takes no POST of its own.
	if w := b.post("/auth/account", url.Values{"csrf": {csrf}}); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /auth/account: %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

// csrfAttack changes a legitimate form post.
type csrfAttack struct {
	name    string
	refused bool
	apply   func(b *pageBrowser, v url.Values) []reqOpt
}

func dropHeader(k string) reqOpt { return func(r *http.Request) { r.Header.Del(k) } }

var csrfAttacks = []csrfAttack{
	{"no csrf field", true, func(b *pageBrowser, v url.Values) []reqOpt { v.Del("csrf"); return nil }},
	{"empty csrf field", true, func(b *pageBrowser, v url.Values) []reqOpt { v.Set("csrf", ""); return nil }},
	{"wrong token", true, func(b *pageBrowser, v url.Values) []reqOpt {
		v.Set("csrf", strings.Repeat("A", 43))
		return nil
	}},
	{"token of another cookie", true, func(b *pageBrowser, v url.Values) []reqOpt {
		other := b.e.browser(b.tb)
		other.page("/auth/login")
		v.Set("csrf", other.csrfToken())
		return nil
	}},
	{"the cookie as the token", true, func(b *pageBrowser, v url.Values) []reqOpt {
		v.Set("csrf", b.jar[csrfCookie])
		return nil
	}},
	{"no CSRF cookie", true, func(b *pageBrowser, v url.Values) []reqOpt { delete(b.jar, csrfCookie); return nil }},
	{"cross-site Origin", true, func(*pageBrowser, url.Values) []reqOpt {
		return []reqOpt{withHeader("Origin", "https://evil.example")}
	}},
	{"Origin of a non-web scheme", true, func(*pageBrowser, url.Values) []reqOpt {
		return []reqOpt{withHeader("Origin", "ftp://example.com")}
	}},
	{"Origin with userinfo", true, func(*pageBrowser, url.Values) []reqOpt {
		return []reqOpt{withHeader("Origin", "https://example.com@evil.example")}
	}},
	{"Origin of a longer host", true, func(*pageBrowser, url.Values) []reqOpt {
		return []reqOpt{withHeader("Origin", "https://example.com.evil.example")}
	}},
	{"Origin of another port", true, func(*pageBrowser, url.Values) []reqOpt {
		return []reqOpt{withHeader("Origin", "https://example.com:8443")}
	}},
	{"Origin of a subdomain", true, func(*pageBrowser, url.Values) []reqOpt {
		return []reqOpt{withHeader("Origin", "https://evil.example.com")}
	}},
	{"cross-site Origin, same-origin Referer", true, func(*pageBrowser, url.Values) []reqOpt {
		return []reqOpt{withHeader("Origin", "https://evil.example"), withHeader("Referer", "https://example.com/auth/login")}
	}},
	{"no Origin, cross-site Referer", true, func(*pageBrowser, url.Values) []reqOpt {
		return []reqOpt{dropHeader("Origin"), withHeader("Referer", "https://evil.example/auth/login")}
	}},
	{"Origin null, cross-site Referer", true, func(*pageBrowser, url.Values) []reqOpt {
		return []reqOpt{withHeader("Origin", "null"), withHeader("Referer", "https://evil.example/")}
	}},
	{"no Origin, unparsable Referer", true, func(*pageBrowser, url.Values) []reqOpt {
		return []reqOpt{dropHeader("Origin"), withHeader("Referer", "https://example.com:port/")}
	}},

	{"Origin null", false, func(*pageBrowser, url.Values) []reqOpt { return []reqOpt{withHeader("Origin", "null")} }},
	{"no Origin, same-origin Referer", false, func(*pageBrowser, url.Values) []reqOpt {
		return []reqOpt{dropHeader("Origin"), withHeader("Referer", "https://example.com/auth/login?rd=%2F")}
	}},
	{"no Origin, no Referer", false, func(*pageBrowser, url.Values) []reqOpt { return []reqOpt{dropHeader("Origin")} }},
	// Only hosts are compared: behind a proxy that ends TLS the server
	// sees plain HTTP.
	{"Origin of the other scheme", false, func(*pageBrowser, url.Values) []reqOpt {
		return []reqOpt{withHeader("Origin", "http://example.com")}
	}},
	{"Origin in upper case", false, func(*pageBrowser, url.Values) []reqOpt {
		return []reqOpt{withHeader("Origin", "HTTPS://EXAMPLE.COM")}
	}},
}

// TestPageFormsRefuseCSRF: a form post without the right token, or from
// another origin, is answered 403 and changes nothing; Origin null and a
// missing Origin leave the decision to the Referer and the token.
func TestPageFormsRefuseCSRF(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	arthur := e.mustUser(t, "arthur@camelot.bt", verified)
	ctx := context.Background()
	targets := []struct {
		name, page, formID string
		login              bool
		fields             func(i int) []string
		state              func(tb testing.TB, i int) string // what the post would change
		accepted           int                               // status of an accepted post
	}{
		{"login", "/auth/login?rd=%2Fapp", "login", false,
			func(int) []string { return []string{"username", "arthur@camelot.bt", "password", testPassword} },
			func(tb testing.TB, _ int) string { return strings.Join(e.sessionIDs(tb, arthur.ID), ",") },
			http.StatusSeeOther},
		{"register", "/auth/register", "register", false,
			func(i int) []string {
				return []string{"email", "knight" + strconv.Itoa(i) + "@camelot.bt", "password", testPassword}
			},
			func(tb testing.TB, i int) string {
				if e.userByEmail(tb, "knight"+strconv.Itoa(i)+"@camelot.bt") != nil {
					return "created"
				}
				return ""
			},
			http.StatusSeeOther},
		{"profile", "/auth/account", "profile", true,
			func(i int) []string { return []string{"full_name", "Mordred " + strconv.Itoa(i)} },
			func(tb testing.TB, _ int) string {
				u, err := e.svc.User(ctx, arthur.ID)
				if err != nil {
					tb.Fatal(err)
				}
				return u.FullName
			},
			http.StatusSeeOther},
		{"logout", "/auth/logout", "logout", true,
			func(int) []string { return nil },
			func(tb testing.TB, _ int) string { return strings.Join(e.sessionIDs(tb, arthur.ID), ",") },
			http.StatusSeeOther},
	}
	for _, target := range targets {
		for i, attack := range csrfAttacks {
			t.Run(target.name+"/"+attack.name, func(t *testing.T) {
				b := e.browser(t)
				if target.login {
					b.login("arthur@camelot.bt", testPassword)
				}
				session := b.sessionCookie()
				f := findForm(t, b.page(target.page), func(f htmlForm) bool { return f.attrs["id"] == target.formID })
				v := f.fill(target.fields(i)...)
				opts := append([]reqOpt{formCT(), withHeader("Origin", b.origin)}, attack.apply(b, v)...)
				before := target.state(t, i)
				w := b.do(http.MethodPost, f.attrs["action"], v.Encode(), opts...)
				after := target.state(t, i)
				if !attack.refused {
					if w.Code != target.accepted || before == after {
						t.Fatalf("refused: %d, state %q → %q; body %s", w.Code, before, after, w.Body)
					}
					return
				}
				body := b.wantPage(w, http.StatusForbidden, false)
				if pageHeading(body) != "Please try again" || !strings.Contains(bodyText(body), formExpired) {
					t.Errorf("403 page says %q", bodyText(body))
				}
				if before != after {
					t.Errorf("state changed: %q → %q", before, after)
				}
				if c := setCookie(w, e.svc.CookieName()); c != nil {
					t.Errorf("session cookie set: %q", c)
				}
				if target.login && b.sessionCookie() != session {
					t.Errorf("session cookie changed")
				}
			})
		}
	}
}

// TestPageLoginFailsAlike: a wrong password, an unknown user and an
// inactive user get the same page, and no session.
func TestPageLoginFailsAlike(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt", verified)
	e.mustUser(t, "mordred@camelot.bt", verified, func(nu *caddyauth.NewUser) { nu.IsActive = false })
	b := e.browser(t)
	var first string
	for _, c := range []struct{ username, password string }{
		{"arthur@camelot.bt", "not the password"},
		{"nobody@camelot.bt", testPassword},
		{"mordred@camelot.bt", testPassword},
		{"arthur@camelot.bt", ""},
	} {
		w := b.submit("/auth/login?rd=%2Fapp", "login", "username", c.username, "password", c.password)
		body := b.wantPage(w, http.StatusBadRequest, false)
		e.wantNoSessionCookie(t, w)
		if got := pageError(body); got != badCredentials {
			t.Errorf("%s: error %q, want %q", c.username, got, badCredentials)
		}
		f := findForm(t, body, func(f htmlForm) bool { return f.attrs["id"] == "login" })
		if u, _ := f.input("username"); u != c.username {
			t.Errorf("username kept as %q, want %q", u, c.username)
		}
		if rd, _ := f.input("rd"); rd != "/app" {
			t.Errorf("rd kept as %q, want /app", rd)
		}
		if p, _ := f.input("password"); p != "" {
			t.Errorf("password echoed: %q", p)
		}
		// Apart from the address typed in, the pages are identical.
		same := strings.ReplaceAll(body, c.username, "EMAIL")
		if first == "" {
			first = same
		} else if same != first {
			t.Errorf("%s: page differs from the first failure:\n%s\n---\n%s", c.username, same, first)
		}
	}
	for _, email := range []string{"arthur@camelot.bt", "mordred@camelot.bt"} {
		if ids := e.sessionIDs(t, e.userByEmail(t, email).ID); len(ids) != 0 {
			t.Errorf("%s has sessions %v", email, ids)
		}
	}
}

// TestPageLoginRequireVerified: the unverified are asked to confirm their
// address, once their password is right.
func TestPageLoginRequireVerified(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, func(o *caddyauth.Options) { o.RequireVerified = true })
	e.mustUser(t, "gawain@camelot.bt")
	e.mustUser(t, "arthur@camelot.bt", verified)
	b := e.browser(t)
	w := b.submit("/auth/login", "login", "username", "gawain@camelot.bt", "password", testPassword)
	body := b.wantPage(w, http.StatusBadRequest, false)
	e.wantNoSessionCookie(t, w)
	if got := pageError(body); got != confirmFirst {
		t.Errorf("error %q, want %q", got, confirmFirst)
	}
	if !strings.Contains(body, `href="/auth/request-verify-token"`) {
		t.Errorf("no link to ask for a new mail:\n%s", body)
	}
	// A wrong password says nothing about verification.
	w = b.submit("/auth/login", "login", "username", "gawain@camelot.bt", "password", "not the password")
	if got := pageError(b.wantPage(w, http.StatusBadRequest, false)); got != badCredentials {
		t.Errorf("wrong password: error %q", got)
	}
	wantSeeOther(t, b.submit("/auth/login", "login", "username", "arthur@camelot.bt", "password", testPassword), "/")
}

// TestPageLoginSucceeds: a 303 to rd, a session cookie, and a new session
// every time.
func TestPageLoginSucceeds(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	arthur := e.mustUser(t, "arthur@camelot.bt", verified)
	b := e.browser(t)
	w := b.submit("/auth/login?rd=%2Fapp%3Fq%3D1", "login", "username", " arthur@camelot.bt ", "password", testPassword)
	wantSeeOther(t, w, "/app?q=1")
	if w.Body.Len() != 0 {
		t.Errorf("body %q", w.Body)
	}
	first := e.wantSessionCookie(t, w, true)
	firstID := b.sessionID()
	ss, err := e.svc.UserSessions(context.Background(), arthur.ID)
	if err != nil || len(ss) != 1 || ss[0].ID != firstID || ss[0].UserAgent != firefoxOnLinux || ss[0].IP != "192.0.2.1" ||
		ss[0].Transport != "cookie" {
		t.Fatalf("sessions %+v (%v), want one cookie session %s", ss, err, firstID)
	}

	// Logging in again, with the session cookie still there, makes
	// another session: no session id survives a login.
	w = b.post("/auth/login", url.Values{"csrf": {b.csrfToken()}, "username": {"arthur@camelot.bt"}, "password": {testPassword}})
	wantSeeOther(t, w, "/")
	second := e.wantSessionCookie(t, w, true)
	if second.Value == first.Value || b.sessionID() == firstID || b.sessionID() == "" {
		t.Fatalf("second login kept the session %s", firstID)
	}
	if ids := e.sessionIDs(t, arthur.ID); len(ids) != 2 || !slices.Contains(ids, firstID) || !slices.Contains(ids, b.sessionID()) {
		t.Errorf("sessions %v, want %s and %s", ids, firstID, b.sessionID())
	}

	// A browser with a session goes straight on from the login page.
	for rd, want := range map[string]string{"": "/", "/x": "/x", "//evil.com": "/", "https://example.com/y": "https://example.com/y",
		"https://evil.com/": "/"} {
		w := b.get("/auth/login?rd=" + url.QueryEscape(rd))
		wantSeeOther(t, w, want)
		if len(w.Header().Values("Set-Cookie")) != 0 {
			t.Errorf("rd %q: cookies set: %q", rd, w.Header().Values("Set-Cookie"))
		}
	}
	// A session that ended does not.
	if err := e.svc.RevokeSession(context.Background(), arthur.ID, b.sessionID()); err != nil {
		t.Fatal(err)
	}
	b.wantPage(b.get("/auth/login?rd=%2Fx"), http.StatusOK, false)
}

// TestPageLoginRedirectTargets: rd is followed only to this site or a host
// within cookie_domain, whether it came through the page or straight in
// the post.
func TestPageLoginRedirectTargets(t *testing.T) {
	t.Parallel()
	cases := []struct{ rd, withDomain, without string }{
		{"", "/", "/"},
		{"/", "/", "/"},
		{"/app", "/app", "/app"},
		{"/app/page?q=1&r=%2F#frag", "/app/page?q=1&r=%2F#frag", "/app/page?q=1&r=%2F#frag"},
		{"https://auth.camelot.bt/app", "https://auth.camelot.bt/app", "https://auth.camelot.bt/app"},
		{"HTTPS://AUTH.CAMELOT.BT/app", "https://auth.camelot.bt/app", "https://auth.camelot.bt/app"},
		{"https://app.camelot.bt/x?y=1", "https://app.camelot.bt/x?y=1", "/"},
		{"https://camelot.bt/", "https://camelot.bt/", "/"},
		{"http://intranet.camelot.bt:8080/", "http://intranet.camelot.bt:8080/", "/"},
		{"https://auth.camelot.bt:8443/app", "https://auth.camelot.bt:8443/app", "/"},
		{"//evil.com", "/", "/"},
		{"//evil.com/app", "/", "/"},
		{"///evil.com", "/", "/"},
		{`/\evil.com`, "/", "/"},
		{`\\evil.com`, "/", "/"},
		{"https://evil.com", "/", "/"},
		{"https://evil.com/https://auth.camelot.bt/", "/", "/"},
		{"http://evil.com", "/", "/"},
		{"https:evil.com", "/", "/"},
		{"https:/evil.com", "/", "/"},
		{"javascript:alert(1)", "/", "/"},
		{"JavaScript://auth.camelot.bt/%0aalert(1)", "/", "/"},
		{"data:text/html,<script>alert(1)</script>", "/", "/"},
		{"https://camelot.bt@evil.com/", "/", "/"},
		{"https://auth.camelot.bt@evil.com/", "/", "/"},
		{"https://evil.com#@auth.camelot.bt", "/", "/"},
		{"https://evilcamelot.bt/", "/", "/"},
		{"https://camelot.bt.evil.com/", "/", "/"},
		{"/%2F/evil.com", "/", "/"},
		{"/%5Cevil.com", "/", "/"},
		{"/\t/evil.com", "/", "/"},
		{" /app", "/", "/"},
		{"/app\r\nSet-Cookie: x=1", "/", "/"},
		{"app", "/", "/"},
		{"%2F%2Fevil.com", "/", "/"},
	}
	for _, domain := range []string{"camelot.bt", ""} {
		e := newPageEnv(t, nil)
		e.api.CookieDomain = domain
		e.mustUser(t, "arthur@camelot.bt", verified)
		for _, c := range cases {
			want := c.withDomain
			if domain == "" {
				want = c.without
			}
			t.Run("domain="+domain+"/"+c.rd, func(t *testing.T) {
				// Through the page: the hidden field carries rd once it
				// is valid, nothing otherwise.
				b := e.browser(t)
				b.origin = "https://auth.camelot.bt"
				body := b.page("/auth/login?rd=" + url.QueryEscape(c.rd))
				f := findForm(t, body, func(f htmlForm) bool { return f.attrs["id"] == "login" })
				hidden, _ := f.input("rd")
				if (want == "/" && hidden != "" && c.rd != "/") || (want != "/" && hidden != want) {
					t.Errorf("hidden rd %q, want %q", hidden, want)
				}
				w := b.post(f.attrs["action"], f.fill("username", "arthur@camelot.bt", "password", testPassword))
				wantSeeOther(t, w, want)
				e.wantSessionCookie(t, w, true)

				// Straight in the post, as a forged form would send it.
				b = e.browser(t)
				b.origin = "https://auth.camelot.bt"
				f = findForm(t, b.page("/auth/login"), func(f htmlForm) bool { return f.attrs["id"] == "login" })
				wantSeeOther(t, b.post(f.attrs["action"], f.fill("username", "arthur@camelot.bt", "password", testPassword, "rd", c.rd)), want)
			})
		}
	}
}

// TestPageRegister: sign-up without required verification logs in and
// goes on to rd; failures keep what was typed, never the password.
func TestPageRegister(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt", verified)
	b := e.browser(t)

	w := b.submit("/auth/register?rd=%2Fapp", "register", "full_name", "Sir Gawain", "email", " gawain@camelot.bt ", "password", testPassword)
	wantSeeOther(t, w, "/app")
	e.wantSessionCookie(t, w, true)
	u := e.userByEmail(t, "gawain@camelot.bt")
	if u == nil || u.FullName != "Sir Gawain" || u.IsVerified || !u.IsActive || u.IsSuperuser {
		t.Fatalf("user %+v", u)
	}
	if p, err := e.svc.AuthenticateCookie(context.Background(), b.sessionCookie()); err != nil || p.UserID != u.ID {
		t.Fatalf("the new session is not gawain's: %v %v", p, err)
	}
	e.wantNoMail(t)

	cases := []struct {
		name, fullName, email, password, wantErr string
	}{
		{"weak password", "Sir Lancelot", "lancelot@camelot.bt", "short", weakReason},
		{"password containing the email", "", "lancelot@camelot.bt", "my lancelot@camelot.bt", "Password should not contain e-mail."},
		{"taken address", "Sir Arthur", "Arthur@CAMELOT.BT", testPassword,
			"This email address cannot be used to sign up. If it is yours, log in or reset your password."},
		{"invalid address", "Sir Lancelot", "lancelot-at-camelot.bt", testPassword, invalidEmailMsg},
		{"empty address", "", "", testPassword, invalidEmailMsg},
		{"name with a control character", "Sir\x07Lancelot", "lancelot@camelot.bt", testPassword,
			"Please enter a shorter name, without control characters."},
		{"name too long", strings.Repeat("x", 256), "lancelot@camelot.bt", testPassword,
			"Please enter a shorter name, without control characters."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := e.browser(t)
			w := b.submit("/auth/register?rd=%2Fapp", "register", "full_name", c.fullName, "email", c.email, "password", c.password)
			body := b.wantPage(w, http.StatusBadRequest, false)
			e.wantNoSessionCookie(t, w)
			if got := pageError(body); got != c.wantErr {
				t.Errorf("error %q, want %q", got, c.wantErr)
			}
			f := findForm(t, body, func(f htmlForm) bool { return f.attrs["id"] == "register" })
			name, _ := f.input("full_name")
			email, _ := f.input("email")
			rd, _ := f.input("rd")
			password, _ := f.input("password")
			if name != c.fullName || email != strings.TrimSpace(c.email) || rd != "/app" || password != "" {
				t.Errorf("form kept name %q email %q rd %q password %q", name, email, rd, password)
			}
			if c.email != "Arthur@CAMELOT.BT" && e.userByEmail(t, "lancelot@camelot.bt") != nil {
				t.Errorf("user created")
			}
		})
	}
	e.wantNoMail(t)
}

// TestPageRegisterWithVerification: when a verification mail goes out,
// a new and a taken address get the same "check your email" page, and no
// session when verification is required.
func TestPageRegisterWithVerification(t *testing.T) {
	t.Parallel()
	t.Run("required", func(t *testing.T) {
		e := newPageEnv(t, func(o *caddyauth.Options) { o.RequireVerified, o.VerifyOnRegister = true, true })
		e.mustUser(t, "arthur@camelot.bt", verified)
		b := e.browser(t)
		w := b.submit("/auth/register?rd=%2Fapp", "register", "email", "gawain@camelot.bt", "password", testPassword)
		fresh := b.wantPage(w, http.StatusOK, false)
		e.wantNoSessionCookie(t, w)
		if pageHeading(fresh) != "Check your email" || !strings.Contains(bodyText(fresh), "If gawain@camelot.bt can be used") {
			t.Fatalf("page %s", bodyText(fresh))
		}
		if !strings.Contains(fresh, `href="/auth/login?rd=%2fapp"`) {
			t.Errorf("the login link does not carry rd:\n%s", fresh)
		}
		if page, _ := e.mailLink(t, "gawain@camelot.bt"); page != "https://example.com/auth/verify" {
			t.Errorf("verification link to %s", page)
		}
		e.takeWakes()

		w = b.submit("/auth/register?rd=%2Fapp", "register", "email", "arthur@camelot.bt", "password", testPassword)
		taken := b.wantPage(w, http.StatusOK, false)
		e.wantNoSessionCookie(t, w)
		if strings.ReplaceAll(taken, "arthur@camelot.bt", "EMAIL") != strings.ReplaceAll(fresh, "gawain@camelot.bt", "EMAIL") {
			t.Errorf("a taken address gets another page:\n%s\n---\n%s", taken, fresh)
		}
		e.wantNoMail(t)
		// A weak password is still said, for a taken address too.
		w = b.submit("/auth/register", "register", "email", "arthur@camelot.bt", "password", "short")
		if got := pageError(b.wantPage(w, http.StatusBadRequest, false)); got != weakReason {
			t.Errorf("weak password: %q", got)
		}
	})
	t.Run("mailed, not required", func(t *testing.T) {
		e := newPageEnv(t, func(o *caddyauth.Options) { o.VerifyOnRegister = true })
		e.mustUser(t, "arthur@camelot.bt", verified)
		b := e.browser(t)
		w := b.submit("/auth/register?rd=%2Fapp", "register", "email", "gawain@camelot.bt", "password", testPassword)
		wantSeeOther(t, w, "/app")
		e.wantSessionCookie(t, w, true)
		e.mailLink(t, "gawain@camelot.bt")
		e.takeWakes()
		b = e.browser(t)
		w = b.submit("/auth/register?rd=%2Fapp", "register", "email", "arthur@camelot.bt", "password", testPassword)
		body := b.wantPage(w, http.StatusOK, false)
		e.wantNoSessionCookie(t, w)
		if pageHeading(body) != "Check your email" {
			t.Errorf("taken address: %s", bodyText(body))
		}
		e.wantNoMail(t)
	})
	t.Run("required, not mailed", func(t *testing.T) {
		e := newPageEnv(t, func(o *caddyauth.Options) { o.RequireVerified = true })
		b := e.browser(t)
		w := b.submit("/auth/register", "register", "email", "gawain@camelot.bt", "password", testPassword)
		if pageHeading(b.wantPage(w, http.StatusOK, false)) != "Check your email" {
			t.Errorf("page %s", w.Body)
		}
		e.wantNoSessionCookie(t, w)
		if e.userByEmail(t, "gawain@camelot.bt") == nil {
			t.Errorf("no user")
		}
	})
}

// TestPageRegistrationClosed: the page and the form answer 403.
func TestPageRegistrationClosed(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, func(o *caddyauth.Options) { o.RegistrationClosed = true })
	b := e.browser(t)
	body := b.wantPage(b.get("/auth/register"), http.StatusForbidden, false)
	if pageHeading(body) != "Sign-up is closed" || len(pageForms(body)) != 0 {
		t.Errorf("page %s", body)
	}
	w := b.post("/auth/register", url.Values{"csrf": {b.csrfToken()}, "email": {"gawain@camelot.bt"}, "password": {testPassword}})
	if pageHeading(b.wantPage(w, http.StatusForbidden, false)) != "Sign-up is closed" {
		t.Errorf("form: %s", w.Body)
	}
	e.wantNoSessionCookie(t, w)
	if e.userByEmail(t, "gawain@camelot.bt") != nil {
		t.Errorf("user created")
	}
	if login := b.page("/auth/login"); strings.Contains(login, "/auth/register") {
		t.Errorf("the login page links to sign-up:\n%s", login)
	}
	e.wantNoMail(t)
}

// TestPageEmailRequestForms: forgot-password and request-verify-token
// answer the same page whoever asks; a mail goes only where it should.
func TestPageEmailRequestForms(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt", verified)
	e.mustUser(t, "gawain@camelot.bt")
	e.mustUser(t, "mordred@camelot.bt", func(nu *caddyauth.NewUser) { nu.IsActive = false })
	for _, c := range []struct {
		page, formID, heading string
		mailed                []string // of arthur, gawain, mordred, nobody
		link                  string
	}{
		{"/auth/forgot-password", "forgot", "Reset your password", []string{"arthur@camelot.bt", "gawain@camelot.bt"}, "https://example.com/auth/reset-password"},
		{"/auth/request-verify-token", "request-verify", "Confirm your email address", []string{"gawain@camelot.bt"}, "https://example.com/auth/verify"},
	} {
		t.Run(c.page, func(t *testing.T) {
			b := e.browser(t)
			var first string
			for _, email := range []string{"arthur@camelot.bt", "gawain@camelot.bt", "mordred@camelot.bt", "nobody@camelot.bt"} {
				body := b.wantPage(b.submit(c.page, c.formID, "email", email), http.StatusOK, false)
				if pageHeading(body) != "Check your email" || !strings.Contains(bodyText(body), "If an account can use "+email) {
					t.Errorf("%s: page %s", email, bodyText(body))
				}
				same := strings.ReplaceAll(body, email, "EMAIL")
				if first == "" {
					first = same
				} else if same != first {
					t.Errorf("%s: page differs:\n%s\n---\n%s", email, same, first)
				}
				if slices.Contains(c.mailed, email) {
					if page, _ := e.mailLink(t, email); page != c.link {
						t.Errorf("link to %s, want %s", page, c.link)
					}
					e.takeWakes()
				} else {
					e.wantNoMail(t)
				}
				e.takeEvents(t)
			}
			for _, bad := range []string{"not-an-email", "", "a@", xssAttribute} {
				body := b.wantPage(b.submit(c.page, c.formID, "email", bad), http.StatusBadRequest, false)
				if pageHeading(body) != c.heading || pageError(body) != invalidEmailMsg {
					t.Errorf("%q: heading %q error %q", bad, pageHeading(body), pageError(body))
				}
				f := findForm(t, body, func(f htmlForm) bool { return f.attrs["id"] == c.formID })
				if v, _ := f.input("email"); v != bad {
					t.Errorf("email kept as %q, want %q", v, bad)
				}
			}
			e.wantNoMail(t)
		})
	}
}

// TestPageResetPassword: the journey from the forgot form to a new
// password, and every way it can fail.
func TestPageResetPassword(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	arthur := e.mustUser(t, "arthur@camelot.bt", verified)
	b, other := e.browser(t), e.browser(t)
	b.login("arthur@camelot.bt", testPassword)
	other.login("arthur@camelot.bt", testPassword)

	b.wantPage(b.submit("/auth/forgot-password", "forgot", "email", "arthur@camelot.bt"), http.StatusOK, false)
	link, token := e.mailLink(t, "arthur@camelot.bt")
	page := strings.TrimPrefix(link, pageOrigin) + "?token=" + token

	// Opening the page spends nothing.
	for range 2 {
		body := b.wantPage(b.get(page), http.StatusOK, true)
		if tok, _ := findForm(t, body, func(f htmlForm) bool { return f.attrs["id"] == "reset" }).input("token"); tok != token {
			t.Fatalf("token input %q, want %q", tok, token)
		}
	}

	// A weak password: the form again, with the token.
	w := b.submit(page, "reset", "password", "short")
	body := b.wantPage(w, http.StatusBadRequest, true)
	if pageHeading(body) != "Choose a new password" || pageError(body) != weakReason {
		t.Errorf("weak: heading %q error %q", pageHeading(body), pageError(body))
	}
	if tok, _ := findForm(t, body, func(f htmlForm) bool { return f.attrs["id"] == "reset" }).input("token"); tok != token {
		t.Errorf("weak: token input %q, want %q", tok, token)
	}
	if len(e.sessionIDs(t, arthur.ID)) != 2 {
		t.Fatalf("sessions ended by a failed reset")
	}

	w = b.submit(page, "reset", "password", newPassword)
	body = b.wantPage(w, http.StatusOK, true)
	if pageHeading(body) != "Password changed" || !strings.Contains(bodyText(body), "Your new password is set, and you are logged out everywhere.") ||
		!strings.Contains(body, `href="/auth/login"`) {
		t.Errorf("page %s", bodyText(body))
	}
	e.wantSessionCleared(t, w)
	if ids := e.sessionIDs(t, arthur.ID); len(ids) != 0 {
		t.Errorf("sessions %v survive the reset", ids)
	}
	if other.sessionID() != "" {
		t.Errorf("the other browser is still logged in")
	}
	if w := b.submit("/auth/login", "login", "username", "arthur@camelot.bt", "password", testPassword); w.Code != http.StatusBadRequest {
		t.Errorf("old password: %d", w.Code)
	}
	b.login("arthur@camelot.bt", newPassword)

	// The token works once; a made-up one never.
	for _, tok := range []string{token, "nope", ""} {
		w := b.submit("/auth/reset-password?token="+url.QueryEscape(tok), "reset", "password", "another new password")
		body := b.wantPage(w, http.StatusBadRequest, true)
		if pageHeading(body) != "This link does not work" || !strings.Contains(body, `href="/auth/forgot-password"`) {
			t.Errorf("token %q: page %s", tok, bodyText(body))
		}
		if setCookie(w, e.svc.CookieName()) != nil {
			t.Errorf("token %q: session cookie touched", tok)
		}
	}
	if b.sessionID() == "" {
		t.Errorf("a failed reset logged the browser out")
	}
}

// TestPageVerify: GET shows a button and spends nothing; the post
// verifies; again says so; a bad token does not work.
func TestPageVerify(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	e.mustUser(t, "gawain@camelot.bt")
	b := e.browser(t)
	b.wantPage(b.submit("/auth/request-verify-token", "request-verify", "email", "gawain@camelot.bt"), http.StatusOK, false)
	link, token := e.mailLink(t, "gawain@camelot.bt")
	page := strings.TrimPrefix(link, pageOrigin) + "?token=" + token

	for range 2 {
		body := b.wantPage(b.get(page), http.StatusOK, true)
		if tok, _ := findForm(t, body, func(f htmlForm) bool { return f.attrs["id"] == "verify" }).input("token"); tok != token {
			t.Fatalf("token input %q", tok)
		}
		if e.userByEmail(t, "gawain@camelot.bt").IsVerified {
			t.Fatal("a GET verified the address")
		}
	}
	body := b.wantPage(b.submit(page, "verify"), http.StatusOK, true)
	if pageHeading(body) != "Email address verified" || !strings.Contains(bodyText(body), "Your email address is verified. Thank you.") {
		t.Errorf("page %s", bodyText(body))
	}
	if !e.userByEmail(t, "gawain@camelot.bt").IsVerified {
		t.Fatal("not verified")
	}
	body = b.wantPage(b.submit(page, "verify"), http.StatusOK, true)
	if pageHeading(body) != "Email address verified" || !strings.Contains(bodyText(body), "Your email address was verified already.") {
		t.Errorf("again: page %s", bodyText(body))
	}
	for _, tok := range []string{"nope", ""} {
		body := b.wantPage(b.submit("/auth/verify?token="+tok, "verify"), http.StatusBadRequest, true)
		if pageHeading(body) != "This link does not work" || !strings.Contains(body, `href="/auth/request-verify-token"`) {
			t.Errorf("token %q: page %s", tok, bodyText(body))
		}
	}
}

// TestPageAccountNeedsLogin: without a session the account page and its
// forms send the browser to log in, and back.
func TestPageAccountNeedsLogin(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt", verified)
	b := e.browser(t)
	const login = "/auth/login?rd=%2Fauth%2Faccount"
	for _, opts := range [][]reqOpt{nil, {withCookie(e.svc.CookieName(), "forged")}} {
		w := b.get("/auth/account", opts...)
		if w.Code != http.StatusFound || w.Header().Get("Location") != login || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("account: %d %q %q", w.Code, w.Header().Get("Location"), w.Header().Get("Cache-Control"))
		}
	}
	b.page("/auth/login")
	for _, path := range []string{"/auth/account/profile", "/auth/account/email", "/auth/account/password",
		"/auth/account/sessions/revoke", "/auth/account/sessions/revoke-all"} {
		w := b.post(path, url.Values{"csrf": {b.csrfToken()}, "full_name": {"Mordred"}})
		if w.Code != http.StatusFound || w.Header().Get("Location") != login {
			t.Errorf("%s: %d %q", path, w.Code, w.Header().Get("Location"))
		}
	}
	w := b.submit(login, "login", "username", "arthur@camelot.bt", "password", testPassword)
	wantSeeOther(t, w, "/auth/account")
	b.page("/auth/account")
}

// sessionRow is one row of the account page's session table.
type sessionRow struct {
	id, text string
	current  bool
}

var sessionRowRe = regexp.MustCompile(`(?s)<tr( class="current")?>\s*<td>(.*?)</tr>`)

func sessionRows(tb testing.TB, body string) []sessionRow {
	tb.Helper()
	var rows []sessionRow
	for _, m := range sessionRowRe.FindAllStringSubmatch(body, -1) {
		f := pageForms(m[2])
		if len(f) != 1 || f[0].attrs["action"] != "/auth/account/sessions/revoke" {
			tb.Fatalf("row without its revoke form: %s", m[0])
		}
		id, _ := f[0].input("session")
		rows = append(rows, sessionRow{id: id, text: bodyText("<td>" + m[2]), current: m[1] != ""})
	}
	return rows
}

// TestPageAccountSessions: the account page lists the user's sessions,
// this one marked, and nobody else's.
func TestPageAccountSessions(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	arthur := e.mustUser(t, "arthur@camelot.bt", verified, func(nu *caddyauth.NewUser) { nu.FullName = "King Arthur" })
	e.mustUser(t, "gawain@camelot.bt", verified)
	b, phone, knight := e.browser(t), e.browser(t), e.browser(t)
	phone.ua = safariOnIPhone
	b.login("arthur@camelot.bt", testPassword)
	phone.login("arthur@camelot.bt", testPassword)
	knight.login("gawain@camelot.bt", testPassword)
	e.bearerLogin(t, "arthur@camelot.bt")

	body := b.wantPage(b.get("/auth/account"), http.StatusOK, false)
	if !strings.Contains(bodyText(body), "Signed in as arthur@camelot.bt verified") {
		t.Errorf("profile: %s", bodyText(body))
	}
	if v, _ := findForm(t, body, func(f htmlForm) bool { return f.attrs["id"] == "profile" }).input("full_name"); v != "King Arthur" {
		t.Errorf("full_name input %q", v)
	}
	rows := sessionRows(t, body)
	var ids []string
	devices := map[string]string{}
	for _, r := range rows {
		ids = append(ids, r.id)
		devices[r.id] = r.text
		if r.current != (r.id == b.sessionID()) {
			t.Errorf("row %+v: current %v", r, r.current)
		}
		if r.current != strings.Contains(r.text, "this device") {
			t.Errorf("row %+v: marked %v", r, !r.current)
		}
		if !strings.Contains(r.text, "192.0.2.1") || !strings.Contains(r.text, "2 Jan 2030 03:04 UTC") {
			t.Errorf("row %q lacks the IP or the time", r.text)
		}
	}
	slices.Sort(ids)
	if want := e.sessionIDs(t, arthur.ID); !slices.Equal(ids, want) || len(ids) != 3 {
		t.Fatalf("rows %v, want arthur's sessions %v", ids, want)
	}
	for id, want := range map[string]string{b.sessionID(): "Firefox on Linux", phone.sessionID(): "Safari on iPhone"} {
		if !strings.HasPrefix(devices[id], want) {
			t.Errorf("session %s: %q, want %s", id, devices[id], want)
		}
	}
	if strings.Contains(body, knight.sessionID()) {
		t.Errorf("gawain's session is listed")
	}
	if !strings.Contains(body, `<time datetime="2030-01-02T03:04:05Z">`) {
		t.Errorf("no machine-readable time")
	}
}

// TestPageAccountProfile: the name is saved, and the notice shown.
func TestPageAccountProfile(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	arthur := e.mustUser(t, "arthur@camelot.bt", verified)
	b := e.browser(t)
	b.login("arthur@camelot.bt", testPassword)
	wantSeeOther(t, b.submit("/auth/account", "profile", "full_name", "King Arthur"), "/auth/account?done=profile")
	if u := e.userByEmail(t, "arthur@camelot.bt"); u.FullName != "King Arthur" {
		t.Errorf("name %q", u.FullName)
	}
	body := b.wantPage(b.get("/auth/account?done=profile"), http.StatusOK, false)
	if pageNotice(body) != "Your name is saved." {
		t.Errorf("notice %q", pageNotice(body))
	}
	if v, _ := findForm(t, body, func(f htmlForm) bool { return f.attrs["id"] == "profile" }).input("full_name"); v != "King Arthur" {
		t.Errorf("full_name input %q", v)
	}
	for _, done := range []string{"", "bogus", xssScript} {
		body := b.wantPage(b.get("/auth/account?done="+url.QueryEscape(done)), http.StatusOK, false)
		if strings.Contains(body, `class="notice"`) {
			t.Errorf("done=%q shows a notice", done)
		}
	}
	// Clearing the name.
	wantSeeOther(t, b.submit("/auth/account", "profile", "full_name", ""), "/auth/account?done=profile")
	if u := e.userByEmail(t, "arthur@camelot.bt"); u.FullName != "" {
		t.Errorf("name %q", u.FullName)
	}
	body = b.wantPage(b.submit("/auth/account", "profile", "full_name", "Arthur\x00"), http.StatusBadRequest, false)
	if pageError(body) != "Please check the form and try again." {
		t.Errorf("bad name: error %q", pageError(body))
	}
	if ids := e.sessionIDs(t, arthur.ID); len(ids) != 1 {
		t.Errorf("sessions %v", ids)
	}
}

// TestPageAccountEmail: a new address needs the current password, and is
// sent a verification link.
func TestPageAccountEmail(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	arthur := e.mustUser(t, "arthur@camelot.bt", verified)
	e.mustUser(t, "gawain@camelot.bt")
	b := e.browser(t)
	b.login("arthur@camelot.bt", testPassword)
	for _, c := range []struct{ email, current, wantErr string }{
		{"arthur@avalon.bt", "not the password", "Current password is incorrect."},
		{"arthur@avalon.bt", "", "Current password is incorrect."},
		{"not-an-email", testPassword, invalidEmailMsg},
		{"Gawain@Camelot.BT", testPassword, "This email address cannot be used."},
	} {
		body := b.wantPage(b.submit("/auth/account", "email", "email", c.email, "current_password", c.current), http.StatusBadRequest, false)
		if pageError(body) != c.wantErr || pageHeading(body) != "Your account" {
			t.Errorf("%s/%q: error %q, want %q", c.email, c.current, pageError(body), c.wantErr)
		}
		if u, _ := e.svc.User(context.Background(), arthur.ID); u.Email != "arthur@camelot.bt" || !u.IsVerified {
			t.Fatalf("user changed: %+v", u)
		}
	}
	e.wantNoMail(t)

	wantSeeOther(t, b.submit("/auth/account", "email", "email", "arthur@avalon.bt", "current_password", testPassword), "/auth/account?done=email")
	u, _ := e.svc.User(context.Background(), arthur.ID)
	if u.Email != "arthur@avalon.bt" || u.IsVerified {
		t.Fatalf("user %+v", u)
	}
	if page, _ := e.mailLink(t, "arthur@avalon.bt"); page != "https://example.com/auth/verify" {
		t.Errorf("link to %s", page)
	}
	body := b.wantPage(b.get("/auth/account?done=email"), http.StatusOK, false)
	if pageNotice(body) != "Your email address is changed. Confirm it with the link we sent you." ||
		!strings.Contains(bodyText(body), "Signed in as arthur@avalon.bt not verified") {
		t.Errorf("page: notice %q, %s", pageNotice(body), bodyText(body))
	}
}

// TestPageAccountPassword: the current password is required, the policy
// holds, and a change ends the other sessions only.
func TestPageAccountPassword(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	arthur := e.mustUser(t, "arthur@camelot.bt", verified)
	b, other := e.browser(t), e.browser(t)
	b.login("arthur@camelot.bt", testPassword)
	other.login("arthur@camelot.bt", testPassword)
	for _, c := range []struct{ current, next, wantErr string }{
		{"not the password", newPassword, "Current password is incorrect."},
		{testPassword, "short", weakReason},
		{testPassword, "arthur@camelot.bt!", "Password should not contain e-mail."},
	} {
		body := b.wantPage(b.submit("/auth/account", "password", "current_password", c.current, "new_password", c.next), http.StatusBadRequest, false)
		if pageError(body) != c.wantErr {
			t.Errorf("%q → %q: error %q, want %q", c.current, c.next, pageError(body), c.wantErr)
		}
		if len(e.sessionIDs(t, arthur.ID)) != 2 {
			t.Fatal("a failed change ended sessions")
		}
	}
	kept := b.sessionID()
	w := b.submit("/auth/account", "password", "current_password", testPassword, "new_password", newPassword)
	wantSeeOther(t, w, "/auth/account?done=password")
	if setCookie(w, e.svc.CookieName()) != nil {
		t.Errorf("session cookie touched")
	}
	if ids := e.sessionIDs(t, arthur.ID); !slices.Equal(ids, []string{kept}) {
		t.Errorf("sessions %v, want only %s", ids, kept)
	}
	if other.sessionID() != "" {
		t.Errorf("the other browser is still logged in")
	}
	if notice := pageNotice(b.page("/auth/account?done=password")); notice != "Your password is changed. Your other sessions have ended." {
		t.Errorf("notice %q", notice)
	}
	other.login("arthur@camelot.bt", newPassword)
}

// TestPageAccountRevoke: one session, someone else's, this one, all.
func TestPageAccountRevoke(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	arthur := e.mustUser(t, "arthur@camelot.bt", verified)
	gawain := e.mustUser(t, "gawain@camelot.bt", verified)
	a, b, c, knight := e.browser(t), e.browser(t), e.browser(t), e.browser(t)
	for _, x := range []*pageBrowser{a, b, c} {
		x.login("arthur@camelot.bt", testPassword)
	}
	knight.login("gawain@camelot.bt", testPassword)
	bearerToken := e.bearerLogin(t, "arthur@camelot.bt")
	revoke := func(x *pageBrowser, id string) *httptest.ResponseRecorder {
		f := findForm(t, x.page("/auth/account"), func(f htmlForm) bool {
			return f.attrs["action"] == "/auth/account/sessions/revoke"
		})
		return x.post(f.attrs["action"], f.fill("session", id))
	}

	// Another of one's own sessions.
	bID := b.sessionID()
	wantSeeOther(t, revoke(a, bID), "/auth/account?done=revoked")
	if b.sessionID() != "" || slices.Contains(e.sessionIDs(t, arthur.ID), bID) {
		t.Fatal("session not revoked")
	}
	if notice := pageNotice(a.page("/auth/account?done=revoked")); notice != "That session has ended." {
		t.Errorf("notice %q", notice)
	}
	// Again, someone else's, none.
	for _, id := range []string{bID, knight.sessionID(), "", "nonsense"} {
		before := e.sessionIDs(t, arthur.ID)
		body := a.wantPage(revoke(a, id), http.StatusBadRequest, false)
		if pageError(body) != "That session has ended already." {
			t.Errorf("%q: error %q", id, pageError(body))
		}
		if after := e.sessionIDs(t, arthur.ID); !slices.Equal(before, after) {
			t.Errorf("%q: sessions %v → %v", id, before, after)
		}
	}
	if knight.sessionID() == "" || len(e.sessionIDs(t, gawain.ID)) != 1 {
		t.Fatal("gawain's session was revoked")
	}

	// One's own: logged out.
	aID := a.sessionID()
	w := revoke(a, aID)
	wantSeeOther(t, w, "/auth/login")
	e.wantSessionCleared(t, w)
	if slices.Contains(e.sessionIDs(t, arthur.ID), aID) {
		t.Fatal("own session not revoked")
	}

	// Everywhere: the bearer session too, nobody else's.
	w = c.submit("/auth/account", "logout-everywhere")
	wantSeeOther(t, w, "/auth/login")
	e.wantSessionCleared(t, w)
	if ids := e.sessionIDs(t, arthur.ID); len(ids) != 0 {
		t.Errorf("sessions %v survive", ids)
	}
	if _, err := e.svc.AuthenticateBearer(context.Background(), bearerToken); err == nil {
		t.Errorf("the bearer token still works")
	}
	if knight.sessionID() == "" {
		t.Errorf("gawain was logged out")
	}
}

// TestPageLogout: GET asks, POST logs out.
func TestPageLogout(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	arthur := e.mustUser(t, "arthur@camelot.bt", verified)
	b, other := e.browser(t), e.browser(t)
	b.login("arthur@camelot.bt", testPassword)
	other.login("arthur@camelot.bt", testPassword)
	id := b.sessionID()
	for range 2 {
		w := b.get("/auth/logout")
		b.wantPage(w, http.StatusOK, false)
		if setCookie(w, e.svc.CookieName()) != nil || b.sessionID() != id {
			t.Fatal("GET logged out")
		}
	}
	if w := b.post("/auth/logout", url.Values{}); w.Code != http.StatusForbidden || b.sessionID() != id {
		t.Fatalf("POST without the token: %d", w.Code)
	}
	w := b.submit("/auth/logout", "logout")
	wantSeeOther(t, w, "/auth/login")
	e.wantSessionCleared(t, w)
	if slices.Contains(e.sessionIDs(t, arthur.ID), id) || other.sessionID() == "" {
		t.Errorf("sessions %v", e.sessionIDs(t, arthur.ID))
	}
	// Without a session: nothing to end, the same answer.
	w = b.submit("/auth/logout", "logout")
	wantSeeOther(t, w, "/auth/login")
	e.wantSessionCleared(t, w)
}

// TestLoadPages: templates overridden from a directory, branding, and the
// errors that stop a config.
func TestLoadPages(t *testing.T) {
	t.Parallel()
	t.Run("override", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "login.html"), `{{define "title"}}Enter Camelot{{end}}
{{define "content"}}<form id="login" method="post" action="{{.Prefix}}/login"><input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="rd" value="{{.RD}}"><input name="username"><input name="password" type="password">
<p id="custom">Speak, friend.</p></form>{{end}}`)
		p, err := LoadPages(dir, Branding{Title: "Camelot", LogoURL: "https://cdn.camelot.bt/crest.png", Accent: "#b8860b"}, "camelot.bt")
		if err != nil {
			t.Fatal(err)
		}
		e := newPageEnv(t, nil)
		e.api.Pages = p
		e.api.Branding = Branding{Title: "Camelot", LogoURL: "https://cdn.camelot.bt/crest.png", Accent: "#b8860b"}
		e.mustUser(t, "arthur@camelot.bt", verified)
		b := e.browser(t)
		w := b.get("/auth/login?rd=%2Fapp")
		body := w.Body.String()
		if w.Code != http.StatusOK || pageHeading(body) != "Enter Camelot" || !strings.Contains(body, `<p id="custom">Speak, friend.</p>`) ||
			!strings.Contains(body, "<title>Enter Camelot · Camelot</title>") ||
			!strings.Contains(body, `<img class="logo" src="https://cdn.camelot.bt/crest.png" alt="">`) {
			t.Fatalf("custom login page not used: %d\n%s", w.Code, body)
		}
		wantStrictCSPWithLogo(t, w.Header().Get("Content-Security-Policy"))
		wantSeeOther(t, b.submit("/auth/login?rd=%2Fapp", "login", "username", "arthur@camelot.bt", "password", testPassword), "/app")
		// The other pages are the embedded ones, branded.
		if body := b.page("/auth/register"); pageHeading(body) != "Create an account" || !strings.Contains(body, "<title>Create an account · Camelot</title>") {
			t.Errorf("register page:\n%s", body)
		}
		if css := e.serve("GET", "/auth/static/gatehouse.css", "").Body.String(); !strings.Contains(css, "--accent: #b8860b;") {
			t.Errorf("accent not in the stylesheet")
		}
	})
	t.Run("errors", func(t *testing.T) {
		broken := t.TempDir()
		writeFile(t, filepath.Join(broken, "register.html"), `{{define "content"}}{{if}}{{end}}`)
		brokenLayout := t.TempDir()
		writeFile(t, filepath.Join(brokenLayout, "layout.html"), `<html>{{template "title" .}`)
		unreadable := t.TempDir()
		if err := os.Mkdir(filepath.Join(unreadable, "login.html"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			dir    string
			accent string
			want   string
		}{
			{broken, "", "register.html"},
			{brokenLayout, "", "layout.html"},
			{unreadable, "", "reading page template"},
			{"", "red", `accent colour "red"`},
			{"", "#12345", "accent colour"},
			{"", "#1234567", "accent colour"},
			{"", "#12345g", "accent colour"},
			{"", "#fff;}body{display:none", "accent colour"},
			{"", "#fff\n", "accent colour"},
		} {
			if _, err := LoadPages(c.dir, Branding{Accent: c.accent}, ""); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("dir %q accent %q: error %v, want one about %s", c.dir, c.accent, err, c.want)
			}
		}
	})
	t.Run("defaults", func(t *testing.T) {
		for _, accent := range []string{"", "#abc", "#ABCDEF"} {
			if _, err := LoadPages("", Branding{Accent: accent}, ""); err != nil {
				t.Errorf("accent %q: %v", accent, err)
			}
		}
		// A directory without overrides is the embedded set.
		if _, err := LoadPages(t.TempDir(), Branding{}, ""); err != nil {
			t.Error(err)
		}
	})
}

func wantStrictCSPWithLogo(tb testing.TB, csp string) {
	tb.Helper()
	d := cspDirectives(tb, csp)
	if got := strings.Join(d["img-src"], " "); got != "'self' https://cdn.camelot.bt" {
		tb.Errorf("img-src %q", got)
	}
	if got := strings.Join(d["form-action"], " "); got != "'self' camelot.bt *.camelot.bt" {
		tb.Errorf("form-action %q", got)
	}
	if got := strings.Join(d["default-src"], " "); got != "'none'" || d["script-src"] != nil {
		tb.Errorf("CSP %q", csp)
	}
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// TestPagesEscape: what users and URLs bring is escaped everywhere it is
// shown.
func TestPagesEscape(t *testing.T) {
	t.Parallel()
	e := newPageEnv(t, nil)
	e.api.Branding.LogoURL = "javascript:alert(1)"
	e.mustUser(t, "arthur@camelot.bt", verified, func(nu *caddyauth.NewUser) { nu.FullName = xssScript })
	b := e.browser(t)
	b.ua = xssAttribute + " " + xssScript
	b.login("arthur@camelot.bt", testPassword)

	body := b.wantPage(b.get("/auth/account"), http.StatusOK, false)
	if v, _ := findForm(t, body, func(f htmlForm) bool { return f.attrs["id"] == "profile" }).input("full_name"); v != xssScript {
		t.Errorf("full_name input %q", v)
	}
	if !strings.Contains(body, `title="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt; &lt;script&gt;alert(1)&lt;/script&gt;"`) {
		t.Errorf("user agent not escaped in its attribute:\n%s", body)
	}

	// Typed-in values shown again.
	body = b.wantPage(b.submit("/auth/register", "register", "full_name", xssAttribute, "email", "gawain@camelot.bt", "password", "short"),
		http.StatusBadRequest, false)
	if v, _ := findForm(t, body, func(f htmlForm) bool { return f.attrs["id"] == "register" }).input("full_name"); v != xssAttribute {
		t.Errorf("full_name input %q", v)
	}
	b2 := e.browser(t)
	body = b2.wantPage(b2.submit("/auth/login", "login", "username", xssAttribute+"@camelot.bt", "password", "x"), http.StatusBadRequest, false)
	if v, _ := findForm(t, body, func(f htmlForm) bool { return f.attrs["id"] == "login" }).input("username"); v != xssAttribute+"@camelot.bt" {
		t.Errorf("username input %q", v)
	}

	// An rd with quotes and angle brackets is valid, and stays data.
	rd := `/app?q="><script>alert(1)</script>&x='y'`
	if SafeRedirect(rd, "example.com", "") != rd {
		t.Fatalf("SafeRedirect refuses %q", rd)
	}
	b3 := e.browser(t)
	body = b3.wantPage(b3.get("/auth/login?rd="+url.QueryEscape(rd)), http.StatusOK, false)
	f := findForm(t, body, func(f htmlForm) bool { return f.attrs["id"] == "login" })
	if v, _ := f.input("rd"); v != rd {
		t.Errorf("rd input %q, want %q", v, rd)
	}
	href := htmlAttrs(regexp.MustCompile(`<a id="register-link"([^>]*)>`).FindStringSubmatch(body)[1])["href"]
	if u, err := url.Parse(href); err != nil || u.Path != "/auth/register" || u.Query().Get("rd") != rd {
		t.Errorf("register link %q does not carry rd", href)
	}
	wantSeeOther(t, b3.post(f.attrs["action"], f.fill("username", "arthur@camelot.bt", "password", testPassword)), rd)
}
