package integration

// The browser pages (issue 4) in a real headless Chromium: the whole
// journey of a person in front of a legacy app, from the guard's redirect
// to the page they asked for and back out, and cross-site form posts that
// must change nothing. The screenshots in docs/screenshots come from
// TestBrowserJourney (UPDATE_SCREENSHOTS=1).

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// legacyApp is the stand-in for the legacy app of Caddyfile.example: a
// Caddy site on loopback that prints the identity headers it receives.
// It answers any Host, as reverse_proxy passes the portal's on.
func legacyApp(port int) string {
	return fmt.Sprintf(`:%d {
	bind 127.0.0.1
	respond <<TEXT
		Hello from the legacy app.
		Path:           {http.request.uri}
		Remote-User:    {http.request.header.Remote-User}
		Remote-User-Id: {http.request.header.Remote-User-Id}
		Remote-Email:   {http.request.header.Remote-Email}
		Remote-Name:    {http.request.header.Remote-Name}
		Remote-Groups:  {http.request.header.Remote-Groups}

		TEXT 200
}
`, port)
}

// portalConfig is Caddyfile.example's shape: the site people use on
// http://localhost:<port> (cookies are Secure except on plain-HTTP
// localhost, so the browser must use that name), Gatehouse's endpoints,
// the guard with a public path, and the app behind it; globalExtra goes
// into the gatehouse options.
func portalConfig(port int, globalExtra, upstream string) string {
	return fmt.Sprintf(`{
	admin off
	gatehouse {
		database sqlite ./gatehouse.db
		password_min_length 8
%s
	}
}

http://localhost:%d {
	gatehouse_endpoints
	gatehouse_guard {
		allow /public/*
	}
	reverse_proxy %s
}
`, indent(globalExtra, "\t\t"), port, upstream)
}

// shotPath is where a screenshot goes: docs/screenshots when
// UPDATE_SCREENSHOTS=1, else a temporary directory (the screenshot is
// still taken, so that the code path runs on every CI run).
func shotPath(dir, name string) string {
	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		return filepath.Join(repoRoot, "docs", "screenshots", name)
	}
	return filepath.Join(dir, name)
}

// wantPath fails unless the tab is on the site's page path; it returns
// the parsed location.
func wantPath(ctx context.Context, t *testing.T, site, path string) *url.URL {
	t.Helper()
	loc := location(ctx, t)
	u, err := url.Parse(loc)
	if err != nil || u.Scheme+"://"+u.Host != site || u.Path != path {
		t.Fatalf("the browser is at %s, want %s%s; page:\n%s", loc, site, path, truncate(bodyText(ctx, t), 800))
	}
	return u
}

// wantRD fails unless the link or location u carries an rd that leads to
// want.
func wantRD(t *testing.T, what string, u *url.URL, site, want string) {
	t.Helper()
	if rd := u.Query().Get("rd"); !leadsTo(rd, site, want) {
		t.Fatalf("%s %s: rd = %q, want one that leads to %s", what, u, rd, want)
	}
}

// leadsTo reports whether rd, absolute or a path on the site, is want.
func leadsTo(rd, site, want string) bool {
	base, _ := url.Parse(site + "/")
	target, err := base.Parse(rd)
	return rd != "" && err == nil && target.String() == want
}

// wantElements fails unless every CSS selector matches exactly one
// element on the page.
func wantElements(ctx context.Context, t *testing.T, sels ...string) {
	t.Helper()
	for _, sel := range sels {
		if n := count(ctx, t, sel); n != 1 {
			t.Errorf("%s: %d elements %s, want 1", location(ctx, t), n, sel)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// wantNoAlert fails if the page shows an error ([role=alert]).
func wantNoAlert(ctx context.Context, t *testing.T) {
	t.Helper()
	if count(ctx, t, "[role=alert]") != 0 {
		t.Fatalf("%s shows an error:\n%s", location(ctx, t), truncate(bodyText(ctx, t), 800))
	}
}

// elementText returns the innerText of the first element matching sel ("" if
// none).
func elementText(ctx context.Context, t *testing.T, sel string) string {
	t.Helper()
	s, err := runValue(ctx, chromedp.Evaluate[string](fmt.Sprintf(
		`(e => e ? e.innerText : "")(document.querySelector(%s))`, jsString(sel))))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

// headerLineRe finds "Name: value" lines of the legacy app's answer.
var headerLineRe = regexp.MustCompile(`(?m)^\s*([A-Za-z-]+):[ \t]*(.*?)\s*$`)

// legacyHeaders parses the legacy app's text into name → value.
func legacyHeaders(body string) map[string]string {
	m := map[string]string{}
	for _, sm := range headerLineRe.FindAllStringSubmatch(body, -1) {
		m[sm[1]] = sm[2]
	}
	return m
}

// loginInBrowser fills and submits the login form on the current page; it
// returns the status of the page it ends on.
func loginInBrowser(ctx context.Context, t *testing.T, email, password string) int {
	t.Helper()
	wantElements(ctx, t, "form#login")
	fill(ctx, t, "form#login input[name=username]", email)
	fill(ctx, t, "form#login input[name=password]", password)
	return submit(ctx, t, "form#login")
}

// TestBrowserJourney: a person in a real browser meets the guarded legacy
// app, signs up, confirms the address from the real mail, logs in, lands
// on the page first asked for with the identity headers set, changes the
// password on the account page, logs out everywhere, and is sent to the
// login page again.
func TestBrowserJourney(t *testing.T) {
	t.Parallel()
	ctx := startBrowser(t)
	mp := startMailpit(t)
	port, appPort := freePort(t), freePort(t)
	mail := fmt.Sprintf("mail smtp %s {\n\tfrom \"Gatehouse <no-reply@example.com>\"\n}\nrequire_verified on", mp.SMTPURL())
	cfg := portalConfig(port, mail, fmt.Sprintf("127.0.0.1:%d", appPort)) + "\n" + legacyApp(appPort)
	c := startCaddy(t, cfg)
	site := c.URL // http://localhost:<port>
	if site != fmt.Sprintf("http://localhost:%d", port) {
		t.Fatalf("site URL %q", site)
	}
	api := newClient(site)
	shots := t.TempDir()
	navs := recordNavigations(ctx, t)

	const (
		name        = "Ada Lovelace"
		email       = "ada.lovelace@example.com"
		password    = "analytical-engine-1843"
		newPassword = "difference-engine-1822"
	)
	original := site + "/hello?x=1"

	// 1. The legacy app, without a session: the login page, with rd.
	if got := browse(ctx, t, original); got != http.StatusOK {
		t.Fatalf("GET %s ended with %d, want the login page (200)", original, got)
	}
	if n := navs.Last(t, "GET", original); n.Status != http.StatusFound {
		t.Errorf("the guard answered %v, want 302", n)
	}
	loginURL := wantPath(ctx, t, site, "/auth/login")
	wantRD(t, "login page", loginURL, site, original)
	wantElements(ctx, t, "form#login",
		"form#login input[name=username]#username", "form#login input[name=password]#password[type=password]",
		"form#login input[type=hidden][name=csrf]", "form#login input[type=hidden][name=rd]",
		"a#register-link", "a#forgot-link")
	if attr(ctx, t, "form#login input[name=csrf]", "value") == "" {
		t.Error("login form: empty csrf field")
	}
	if rd := attr(ctx, t, "form#login input[name=rd]", "value"); rd != loginURL.Query().Get("rd") {
		t.Errorf("login form: hidden rd %q, want the page's rd %q", rd, loginURL.Query().Get("rd"))
	}
	if n := count(ctx, t, "script"); n != 0 {
		t.Errorf("login page has %d script elements, want none", n)
	}
	screenshot(ctx, t, shotPath(shots, "login.png"))

	// 2. Sign up, from the login page's link: rd is kept.
	reg, err := url.Parse(attr(ctx, t, "a#register-link", "href"))
	if err != nil || reg.Path != "/auth/register" {
		t.Fatalf("a#register-link: %v %v, want /auth/register?rd=…", reg, err)
	}
	wantRD(t, "a#register-link", reg, site, original)
	if got := follow(ctx, t, "a#register-link"); got != http.StatusOK {
		t.Fatalf("sign-up page: %d", got)
	}
	wantRD(t, "sign-up page", wantPath(ctx, t, site, "/auth/register"), site, original)
	wantElements(ctx, t, "form#register", "form#register input[name=full_name]", "form#register input[name=email]",
		"form#register input[name=password][type=password]",
		"form#register input[type=hidden][name=csrf]", "form#register input[type=hidden][name=rd]")
	screenshot(ctx, t, shotPath(shots, "signup.png"))
	fill(ctx, t, "form#register input[name=full_name]", name)
	fill(ctx, t, "form#register input[name=email]", email)
	fill(ctx, t, "form#register input[name=password]", password)
	if got := submit(ctx, t, "form#register"); got != http.StatusOK {
		t.Fatalf("sign-up answered %d:\n%s", got, bodyText(ctx, t))
	}
	wantNoAlert(ctx, t)
	if body := bodyText(ctx, t); !strings.Contains(body, "Check your email") {
		t.Fatalf("after sign-up the page says:\n%s\nwant \"Check your email\"", body)
	}
	checkEmailLogin, err := url.Parse(attr(ctx, t, "a#login-link", "href"))
	if err != nil || checkEmailLogin.Path != "/auth/login" {
		t.Fatalf("a#login-link on \"Check your email\": %v %v", checkEmailLogin, err)
	}
	wantRD(t, "a#login-link", checkEmailLogin, site, original)

	// Not verified: no login yet (the API says why).
	wantDetail(t, api.postForm(t, "/auth/jwt/login", formLogin(email, password)), http.StatusBadRequest, "LOGIN_USER_NOT_VERIFIED")

	// 3. The verification mail, opened in another tab as a mail client
	// would. The GET shows a form and spends nothing.
	msg := mp.WaitFor(t, email, 15*time.Second)
	if want := verifySubject(hostPort(t, site)); msg.Subject != want {
		t.Errorf("mail subject %q, want %q", msg.Subject, want)
	}
	d := mp.Message(t, msg.ID)
	if d.From.Address != "no-reply@example.com" || d.From.Name != "Gatehouse" {
		t.Errorf("mail from %+v", d.From)
	}
	tok := linkToken(t, "text", d.Text, site+"/auth/verify")
	link := site + "/auth/verify?token=" + tok
	mailTab := newTab(ctx, t)
	if got := browse(mailTab, t, link); got != http.StatusOK {
		t.Fatalf("GET %s: %d", link, got)
	}
	wantElements(mailTab, t, "form#verify")
	wantDetail(t, api.postForm(t, "/auth/jwt/login", formLogin(email, password)), http.StatusBadRequest, "LOGIN_USER_NOT_VERIFIED")
	if got := submit(mailTab, t, "form#verify"); got != http.StatusOK {
		t.Fatalf("verify form answered %d:\n%s", got, bodyText(mailTab, t))
	}
	wantNoAlert(mailTab, t)
	if body := bodyText(mailTab, t); !strings.Contains(strings.ToLower(body), "verified") {
		t.Fatalf("after verification the page says:\n%s\nwant \"verified\"", body)
	}

	// 4. Back in the first tab, still on "Check your email": its login
	// link, rd kept. A wrong password first.
	if got := location(ctx, t); !strings.HasPrefix(got, site+"/auth/register") {
		t.Fatalf("the first tab moved to %s", got)
	}
	if got := follow(ctx, t, "a#login-link"); got != http.StatusOK {
		t.Fatalf("login page: %d", got)
	}
	wantRD(t, "login page", wantPath(ctx, t, site, "/auth/login"), site, original)
	if got := loginInBrowser(ctx, t, email, "not-the-password"); got != http.StatusBadRequest {
		t.Errorf("a wrong password answered %d, want 400", got)
	}
	if count(ctx, t, "[role=alert]") != 1 {
		t.Fatalf("a wrong password shows no [role=alert]:\n%s", bodyText(ctx, t))
	}
	if c := browserCookie(ctx, t, site+"/", "gatehouse_session"); c != nil {
		t.Fatalf("a failed login set the session cookie (for %s)", c.Domain)
	}
	if rd := attr(ctx, t, "form#login input[name=rd]", "value"); !leadsTo(rd, site, original) {
		t.Fatalf("the re-rendered login form has rd %q, want one that leads to %s", rd, original)
	}

	// 5. The right password: a 303 to rd, the page first asked for,
	// with the identity headers.
	if got := loginInBrowser(ctx, t, email, password); got != http.StatusOK {
		t.Fatalf("login ended with %d:\n%s", got, bodyText(ctx, t))
	}
	if n := navs.Last(t, "POST", site+"/auth/login"); n.Status != http.StatusSeeOther {
		t.Errorf("login answered %v, want 303", n)
	}
	if got := location(ctx, t); got != original {
		t.Fatalf("after login the browser is at %s, want %s:\n%s", got, original, bodyText(ctx, t))
	}
	body := bodyText(ctx, t)
	h := legacyHeaders(body)
	if !strings.HasPrefix(body, "Hello from the legacy app.") || h["Path"] != "/hello?x=1" ||
		h["Remote-User"] != email || h["Remote-Email"] != email || h["Remote-Name"] != name || h["Remote-User-Id"] == "" {
		t.Fatalf("the legacy app shows:\n%s\nwant Remote-User: %s, Remote-Email: %s, Remote-Name: %s, a Remote-User-Id", body, email, email, name)
	}
	session := browserCookie(ctx, t, site+"/", "gatehouse_session")
	if session == nil {
		t.Fatal("no session cookie after login")
	}
	if !session.HTTPOnly || session.SameSite != network.CookieSameSiteLax || session.Secure {
		t.Errorf("session cookie: HttpOnly %v, SameSite %q, Secure %v; want HttpOnly, SameSite=Lax, not Secure on plain-HTTP localhost",
			session.HTTPOnly, session.SameSite, session.Secure)
	}

	// 6. The account page: profile, email, password, sessions.
	if got := browse(ctx, t, site+"/auth/account"); got != http.StatusOK {
		t.Fatalf("account page: %d", got)
	}
	wantPath(ctx, t, site, "/auth/account")
	wantElements(ctx, t, "form#profile", "form#profile input[name=full_name]",
		"form#email", "form#email input[name=email]", "form#email input[name=current_password]",
		"form#password", "form#password input[name=current_password]", "form#password input[name=new_password]",
		"table#sessions", "form#logout-everywhere")
	if got := attr(ctx, t, "form#profile input[name=full_name]", "value"); got != name {
		t.Errorf("profile name %q, want %q", got, name)
	}
	if n := count(ctx, t, "table#sessions tbody tr"); n != 1 {
		t.Errorf("table#sessions has %d rows, want 1 (this browser)", n)
	}
	if n := count(ctx, t, "table#sessions tbody tr form.revoke"); n != 1 {
		t.Errorf("table#sessions has %d form.revoke, want one per row", n)
	}
	row := elementText(ctx, t, "table#sessions tbody tr")
	if !strings.Contains(row, "Chrome") || !(strings.Contains(row, "127.0.0.1") || strings.Contains(row, "::1")) ||
		!regexp.MustCompile(`\d{1,2}:\d\d`).MatchString(row) {
		t.Errorf("session row %q: want the browser, its loopback IP and when it was last seen", row)
	}
	screenshot(ctx, t, shotPath(shots, "account.png"))

	// 7. Change the password.
	fill(ctx, t, "form#password input[name=current_password]", password)
	fill(ctx, t, "form#password input[name=new_password]", newPassword)
	if got := submit(ctx, t, "form#password"); got != http.StatusOK {
		t.Fatalf("password change ended with %d:\n%s", got, bodyText(ctx, t))
	}
	wantNoAlert(ctx, t)
	if s := elementText(ctx, t, "[role=status]"); strings.TrimSpace(s) == "" {
		t.Fatalf("no [role=status] message after the password change:\n%s", bodyText(ctx, t))
	}
	wantPath(ctx, t, site, "/auth/account") // still logged in
	wantDetail(t, api.postForm(t, "/auth/jwt/login", formLogin(email, password)), http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
	elsewhere := loginJWT(t, api, email, newPassword) // a session on another "device"
	me(t, api, bearer(elsewhere))

	// 8. Log out everywhere: this browser and the other session end, and
	// the legacy app sends the browser to the login page again.
	if got := browse(ctx, t, site+"/auth/account"); got != http.StatusOK {
		t.Fatalf("account page: %d", got)
	}
	if n := count(ctx, t, "table#sessions tbody tr"); n != 2 {
		t.Errorf("table#sessions has %d rows, want 2 (the browser and the API login)", n)
	}
	submit(ctx, t, "form#logout-everywhere")
	wantDetail(t, api.get(t, "/users/me", bearer(elsewhere)), http.StatusUnauthorized, "Unauthorized")
	if got := browse(ctx, t, site+"/hello"); got != http.StatusOK {
		t.Fatalf("GET /hello after logging out everywhere: %d", got)
	}
	again := wantPath(ctx, t, site, "/auth/login")
	wantRD(t, "login page", again, site, site+"/hello")

	// 9. Back in with the new password, then the logout page.
	if got := loginInBrowser(ctx, t, email, newPassword); got != http.StatusOK || location(ctx, t) != site+"/hello" {
		t.Fatalf("login with the new password: %d at %s", got, location(ctx, t))
	}
	if got := browse(ctx, t, site+"/auth/logout"); got != http.StatusOK {
		t.Fatalf("logout page: %d", got)
	}
	wantElements(ctx, t, "form#logout", "form#logout input[type=hidden][name=csrf]")
	submit(ctx, t, "form#logout")
	if n := navs.Last(t, "POST", site+"/auth/logout"); n.Status != http.StatusSeeOther {
		t.Errorf("logout answered %v, want 303", n)
	}
	browse(ctx, t, site+"/hello?after=logout")
	wantRD(t, "login page", wantPath(ctx, t, site, "/auth/login"), site, site+"/hello?after=logout")
}

// crossSiteForm is the other site's page: a form that posts itself to
// the target as soon as it has loaded, as a forging page would.
var crossSiteForm = template.Must(template.New("form").Parse(`<!DOCTYPE html>
<html><head><title>Win a prize</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{{.Action}}">
{{range $k, $v := .Fields}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}</form>
</body></html>`))

// startCrossSite serves crossSiteForm on 127.0.0.1, another site than
// http://localhost:<port> for the browser: GET /?case=<name> serves the
// form of that case.
func startCrossSite(t *testing.T, cases map[string]crossSitePost) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := cases[r.URL.Query().Get("case")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = crossSiteForm.Execute(w, p)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

type crossSitePost struct {
	Action string
	Fields map[string]string
}

// forge makes the browser visit the other site's page for the case and
// waits until its form post has been answered and the page the answer
// leads to has loaded; it returns the status of the post.
func forge(ctx context.Context, t *testing.T, navs *navRecorder, evil, name string, p crossSitePost) int {
	t.Helper()
	from := len(navs.All())
	if err := runStep(ctx, chromedp.Do, chromedp.Navigate(evil+"/?case="+url.QueryEscape(name))); err != nil {
		t.Fatalf("visiting the other site: %v", err)
	}
	n := navs.Since(t, from, "POST", p.Action)
	target, _ := url.Parse(p.Action)
	waitLocation(ctx, t, func(u *url.URL) bool { return u.Host == target.Host }) // wherever the answer led, loaded
	return n.Status
}

// TestBrowserCSRF: a page on another site makes the browser post the
// login form with valid credentials, and, once the person is logged in,
// the password form: without the CSRF token (and from another origin),
// neither logs in nor changes anything.
func TestBrowserCSRF(t *testing.T) {
	t.Parallel()
	ctx := startBrowser(t)
	up := startUpstream(t)
	port := freePort(t)
	c := startCaddy(t, portalConfig(port, "", up.Addr))
	site := c.URL
	api := newClient(site)
	navs := recordNavigations(ctx, t)

	const (
		email    = "grace@example.com"
		password = "cobol-compiler-1959"
		evilPass = "attacker-chosen-pw"
	)
	register(t, api, email, password)
	cases := map[string]crossSitePost{
		"login": {Action: site + "/auth/login", Fields: map[string]string{
			"username": email, "password": password, "rd": "/hello"}},
		"login, made-up token": {Action: site + "/auth/login", Fields: map[string]string{
			"username": email, "password": password, "rd": "/hello", "csrf": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
		"password": {Action: site + "/auth/account/password", Fields: map[string]string{
			"current_password": password, "new_password": evilPass}},
	}
	evil := startCrossSite(t, cases)

	// The person has seen the login page (so the browser holds the CSRF
	// cookie), then visits the other site.
	browse(ctx, t, site+"/auth/login")
	wantElements(ctx, t, "form#login input[name=csrf]")
	for _, name := range []string{"login", "login, made-up token"} {
		if got := forge(ctx, t, navs, evil, name, cases[name]); got != http.StatusForbidden {
			t.Errorf("%s: the cross-site post answered %d, want 403", name, got)
		}
		if c := browserCookie(ctx, t, site+"/", "gatehouse_session"); c != nil {
			t.Fatalf("%s: the cross-site post set the session cookie (for %s, expiring %v)", name, c.Domain, c.Expires)
		}
		browse(ctx, t, site+"/hello")
		wantPath(ctx, t, site, "/auth/login") // not logged in
	}
	up.NeverSaw(t, "/hello")

	// Logged in for real; then the other site posts a password change.
	if got := loginInBrowser(ctx, t, email, password); got != http.StatusOK || location(ctx, t) != site+"/hello" {
		t.Fatalf("login: %d at %s", got, location(ctx, t))
	}
	session := browserCookie(ctx, t, site+"/", "gatehouse_session")
	if session == nil {
		t.Fatal("no session cookie after login")
	}
	if got := forge(ctx, t, navs, evil, "password", cases["password"]); got != http.StatusForbidden {
		t.Errorf("password: the cross-site post answered %d, want 403", got)
	}
	// Nothing changed: the old password works, the other site's does
	// not, and the browser is still logged in with the same session.
	loginJWT(t, api, email, password)
	wantDetail(t, api.postForm(t, "/auth/jwt/login", formLogin(email, evilPass)), http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
	if got := browse(ctx, t, site+"/auth/account"); got != http.StatusOK {
		t.Fatalf("account page after the forged post: %d", got)
	}
	wantPath(ctx, t, site, "/auth/account")
	if c := browserCookie(ctx, t, site+"/", "gatehouse_session"); c == nil || c.Value != session.Value {
		t.Error("the session cookie changed or went away after the forged post")
	}
}
