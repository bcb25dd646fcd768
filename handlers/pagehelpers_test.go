package handlers

import (
	"context"
	"html"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// The browser pages are tested the way a browser uses them: a pageBrowser
// keeps its cookies between requests, fills in the forms of the pages it
// was served (hidden fields, CSRF token included) and sends them with the
// Origin a browser sends. HTML is read with regular expressions: the
// templates are ours and regular, and golang.org/x/net/html is only an
// indirect dependency (using it here would make it a direct one).

// pageOrigin is the site as the browsers of these tests see it: HTTPS, so
// cookies are Secure and Origin is https://example.com.
const pageOrigin = "https://example.com"

// pageEnv is the API with mail recorded and no mail limit.
type pageEnv struct {
	*mailAPIEnv
}

func newPageEnv(tb testing.TB, tweak func(*caddyauth.Options)) *pageEnv {
	tb.Helper()
	e := &pageEnv{newMailAPIEnv(tb, func(o *caddyauth.Options) {
		o.MailLimit = store.MailLimit{Max: -1}
		if tweak != nil {
			tweak(o)
		}
	})}
	e.api.BaseURL = pageOrigin
	return e
}

// userByEmail reads a user from the core; nil when there is none.
func (e *pageEnv) userByEmail(tb testing.TB, email string) *store.User {
	tb.Helper()
	u, err := e.svc.UserByEmail(context.Background(), email)
	if err != nil {
		return nil
	}
	return u
}

// sessionIDs lists the ids of a user's live sessions, sorted.
func (e *pageEnv) sessionIDs(tb testing.TB, userID string) []string {
	tb.Helper()
	ss, err := e.svc.UserSessions(context.Background(), userID)
	if err != nil {
		tb.Fatal(err)
	}
	ids := make([]string, 0, len(ss))
	for _, s := range ss {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return ids
}

// pageBrowser is one browser: a cookie jar and a user agent.
type pageBrowser struct {
	tb     testing.TB
	e      *pageEnv
	origin string
	ua     string
	jar    map[string]string // cookie values by name
}

func (e *pageEnv) browser(tb testing.TB) *pageBrowser {
	return &pageBrowser{tb: tb, e: e, origin: pageOrigin,
		ua: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", jar: map[string]string{}}
}

// do sends a request with the browser's cookies and user agent, and
// keeps the cookies the answer sets (a Max-Age of 0 deletes one).
func (b *pageBrowser) do(method, path, body string, opts ...reqOpt) *httptest.ResponseRecorder {
	b.tb.Helper()
	r := httptest.NewRequest(method, b.origin+path, strings.NewReader(body))
	r.Header.Set("User-Agent", b.ua)
	for _, name := range slices.Sorted(maps.Keys(b.jar)) {
		r.AddCookie(&http.Cookie{Name: name, Value: b.jar[name]})
	}
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	b.e.handler().ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.jar, c.Name)
		} else {
			b.jar[c.Name] = c.Value
		}
	}
	return w
}

func (b *pageBrowser) get(path string, opts ...reqOpt) *httptest.ResponseRecorder {
	b.tb.Helper()
	return b.do(http.MethodGet, path, "", opts...)
}

// post sends a form as a browser on this site does: the form content
// type and this site's Origin.
func (b *pageBrowser) post(path string, fields url.Values, opts ...reqOpt) *httptest.ResponseRecorder {
	b.tb.Helper()
	opts = append([]reqOpt{formCT(), withHeader("Origin", b.origin)}, opts...)
	return b.do(http.MethodPost, path, fields.Encode(), opts...)
}

// page loads a page that must answer 200 and returns its body.
func (b *pageBrowser) page(path string) string {
	b.tb.Helper()
	w := b.get(path)
	if w.Code != http.StatusOK {
		b.tb.Fatalf("GET %s: %d, want 200; Location %q; body %s", path, w.Code, w.Header().Get("Location"), w.Body)
	}
	return w.Body.String()
}

// submit loads page, fills in the form with id formID (its own fields,
// hidden ones included, overridden by set) and posts it to its action.
func (b *pageBrowser) submit(page, formID string, set ...string) *httptest.ResponseRecorder {
	b.tb.Helper()
	f := findForm(b.tb, b.page(page), func(f htmlForm) bool { return f.attrs["id"] == formID })
	return b.post(f.attrs["action"], f.fill(set...))
}

// sessionCookie is the browser's session cookie value ("" for none).
func (b *pageBrowser) sessionCookie() string { return b.jar[b.e.svc.CookieName()] }

// sessionID is the id of the browser's session, "" when it has none that
// works.
func (b *pageBrowser) sessionID() string {
	p, err := b.e.svc.AuthenticateCookie(context.Background(), b.sessionCookie())
	if err != nil {
		return ""
	}
	return p.SessionID
}

// login logs the browser in through the login form.
func (b *pageBrowser) login(email, password string) {
	b.tb.Helper()
	w := b.submit("/auth/login", "login", "username", email, "password", password)
	if w.Code != http.StatusSeeOther || b.sessionID() == "" {
		b.tb.Fatalf("login %s: %d, session %q; body %s", email, w.Code, b.sessionCookie(), w.Body)
	}
}

// csrfToken is the token that goes with the browser's CSRF cookie.
func (b *pageBrowser) csrfToken() string {
	b.tb.Helper()
	secret := b.jar[csrfCookie]
	if secret == "" {
		b.tb.Fatal("the browser has no CSRF cookie")
	}
	return b.e.svc.CSRFToken(secret)
}

// htmlForm is a <form> of a page: its attributes and its <input>s.
type htmlForm struct {
	attrs  map[string]string
	inputs []map[string]string
}

var (
	formRe  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRe = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	attrRe  = regexp.MustCompile(`([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*"([^"]*)")?`)
)

// htmlAttrs reads the attributes of a tag, values unescaped.
func htmlAttrs(s string) map[string]string {
	out := map[string]string{}
	for _, m := range attrRe.FindAllStringSubmatch(s, -1) {
		out[strings.ToLower(m[1])] = html.UnescapeString(m[2])
	}
	return out
}

// pageForms lists the forms of a page.
func pageForms(body string) []htmlForm {
	var out []htmlForm
	for _, m := range formRe.FindAllStringSubmatch(body, -1) {
		f := htmlForm{attrs: htmlAttrs(m[1])}
		for _, in := range inputRe.FindAllStringSubmatch(m[2], -1) {
			f.inputs = append(f.inputs, htmlAttrs(in[1]))
		}
		out = append(out, f)
	}
	return out
}

func findForm(tb testing.TB, body string, match func(htmlForm) bool) htmlForm {
	tb.Helper()
	for _, f := range pageForms(body) {
		if match(f) {
			return f
		}
	}
	tb.Fatalf("no such form in the page:\n%s", body)
	return htmlForm{}
}

// input returns the value of the form's input named name.
func (f htmlForm) input(name string) (string, bool) {
	for _, in := range f.inputs {
		if in["name"] == name {
			return in["value"], true
		}
	}
	return "", false
}

// fill is what the browser posts: every named input with its value,
// overridden by set (name, value pairs).
func (f htmlForm) fill(set ...string) url.Values {
	v := url.Values{}
	for _, in := range f.inputs {
		if in["name"] != "" {
			v.Set(in["name"], in["value"])
		}
	}
	for i := 0; i+1 < len(set); i += 2 {
		v.Set(set[i], set[i+1])
	}
	return v
}

var (
	h1Re     = regexp.MustCompile(`(?s)<h1>(.*?)</h1>`)
	errorRe  = regexp.MustCompile(`(?s)<p class="error" role="alert">(.*?)</p>`)
	noticeRe = regexp.MustCompile(`(?s)<p class="notice" role="status">(.*?)</p>`)
	tagRe    = regexp.MustCompile(`<[^>]*>`)
)

// pageText is the text of the first match's group: tags dropped,
// entities decoded; "" when nothing matches.
func pageText(re *regexp.Regexp, body string) string {
	m := re.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(html.UnescapeString(tagRe.ReplaceAllString(m[1], "")))
}

func pageHeading(body string) string { return pageText(h1Re, body) }
func pageError(body string) string   { return pageText(errorRe, body) }
func pageNotice(body string) string  { return pageText(noticeRe, body) }

// bodyText is the text of a whole page, for "says X" checks.
func bodyText(body string) string {
	return strings.Join(strings.Fields(html.UnescapeString(tagRe.ReplaceAllString(body, " "))), " ")
}

// wantPage asserts a page's status, its content type and security
// headers, that it holds no inline script or style, and that every form
// carries the CSRF token of the browser's cookie. It returns the body.
func (b *pageBrowser) wantPage(w *httptest.ResponseRecorder, status int, tokenPage bool) string {
	b.tb.Helper()
	if w.Code != status {
		b.tb.Fatalf("status %d, want %d; Location %q; body %s", w.Code, status, w.Header().Get("Location"), w.Body)
	}
	wantPageHeaders(b.tb, w.Header(), tokenPage)
	body := w.Body.String()
	wantNoInlineCode(b.tb, body)
	token := b.csrfToken()
	for _, f := range pageForms(body) {
		if f.attrs["method"] != "post" {
			b.tb.Errorf("form %v has method %q, want post", f.attrs, f.attrs["method"])
		}
		var hidden bool
		for _, in := range f.inputs {
			if in["name"] == "csrf" {
				hidden = in["type"] == "hidden"
				if in["value"] != token {
					b.tb.Errorf("form %v: csrf %q, want the token of the browser's cookie %q", f.attrs, in["value"], token)
				}
			}
		}
		if !hidden {
			b.tb.Errorf("form %v has no hidden csrf input", f.attrs)
		}
	}
	return body
}

// wantPageHeaders asserts the headers every page is sent with.
func wantPageHeaders(tb testing.TB, h http.Header, tokenPage bool) {
	tb.Helper()
	want := map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
		"Cache-Control":          "no-store",
		"Referrer-Policy":        "same-origin",
	}
	if tokenPage {
		want["Referrer-Policy"] = "no-referrer"
	}
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			tb.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	wantStrictCSP(tb, h.Get("Content-Security-Policy"), "'self'")
}

// cspDirectives splits a policy into its directives' source lists.
func cspDirectives(tb testing.TB, csp string) map[string][]string {
	tb.Helper()
	out := map[string][]string{}
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) == 0 {
			continue
		}
		name := strings.ToLower(f[0])
		if _, dup := out[name]; dup {
			tb.Errorf("CSP %q: directive %s twice", csp, name)
		}
		out[name] = f[1:]
	}
	return out
}

// wantStrictCSP asserts the pages' policy: nothing by default (so no
// script at all), styles and images from this origin, forms to formAction,
// no framing, no <base>; and no source anywhere that would open it up.
func wantStrictCSP(tb testing.TB, csp, formAction string) {
	tb.Helper()
	d := cspDirectives(tb, csp)
	want := map[string]string{
		"default-src":     "'none'",
		"style-src":       "'self'",
		"img-src":         "'self'",
		"form-action":     formAction,
		"frame-ancestors": "'none'",
		"base-uri":        "'none'",
	}
	for name, sources := range d {
		if w, ok := want[name]; !ok || strings.Join(sources, " ") != w {
			tb.Errorf("CSP %q: %s %q, want %q", csp, name, sources, w)
		}
		for _, s := range sources {
			if l := strings.ToLower(s); strings.HasPrefix(l, "'unsafe-") || l == "*" || l == "data:" || l == "blob:" ||
				l == "http:" || l == "https:" {
				tb.Errorf("CSP %q: %s allows %s", csp, name, s)
			}
		}
	}
	for name := range want {
		if _, ok := d[name]; !ok {
			tb.Errorf("CSP %q: no %s", csp, name)
		}
	}
}

// wantNoInlineCode asserts what the policy would block: inline scripts,
// style elements and attributes, event handler attributes, javascript:
// URLs.
func wantNoInlineCode(tb testing.TB, body string) {
	tb.Helper()
	lower := strings.ToLower(body)
	for _, bad := range []string{"<script", "<style", " style=", "javascript:"} {
		if strings.Contains(lower, bad) {
			tb.Errorf("page holds %q:\n%s", bad, body)
		}
	}
	if m := regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`).FindString(body); m != "" {
		tb.Errorf("page holds an event handler attribute %q", m)
	}
}

// setCookie returns the answer's Set-Cookie for name, or nil.
func setCookie(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// wantSessionCookie asserts a fresh session cookie with the right
// attributes; secure is whether it must be Secure.
func (e *pageEnv) wantSessionCookie(tb testing.TB, w *httptest.ResponseRecorder, secure bool) *http.Cookie {
	tb.Helper()
	c := setCookie(w, e.svc.CookieName())
	if c == nil {
		tb.Fatalf("no session cookie set: %q", w.Header().Values("Set-Cookie"))
	}
	if c.Value == "" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != secure ||
		c.MaxAge != int(e.svc.SessionLifetime().Seconds()) || c.Domain != e.api.CookieDomain {
		tb.Errorf("session cookie %q: want HttpOnly, SameSite=Lax, Path=/, Secure=%v, Max-Age=%d, Domain=%q",
			c.String(), secure, int(e.svc.SessionLifetime().Seconds()), e.api.CookieDomain)
	}
	return c
}

// wantSessionCleared asserts that the answer deletes the session cookie.
func (e *pageEnv) wantSessionCleared(tb testing.TB, w *httptest.ResponseRecorder) {
	tb.Helper()
	c := setCookie(w, e.svc.CookieName())
	if c == nil || c.MaxAge >= 0 || c.Value != "" || c.Path != "/" {
		tb.Fatalf("session cookie not cleared: %q", w.Header().Values("Set-Cookie"))
	}
}

// wantNoSessionCookie asserts that the answer sets no session cookie.
func (e *pageEnv) wantNoSessionCookie(tb testing.TB, w *httptest.ResponseRecorder) {
	tb.Helper()
	if c := setCookie(w, e.svc.CookieName()); c != nil {
		tb.Fatalf("session cookie set: %q", c.String())
	}
}

// wantSeeOther asserts a 303 to target, not cached.
func wantSeeOther(tb testing.TB, w *httptest.ResponseRecorder, target string) {
	tb.Helper()
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != target {
		tb.Fatalf("got %d Location %q, want 303 %q; body %s", w.Code, w.Header().Get("Location"), target, w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		tb.Errorf("Cache-Control %q, want no-store", cc)
	}
}
