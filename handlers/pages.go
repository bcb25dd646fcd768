package handlers

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// The browser pages of DESIGN §6: log in, sign up, forgot and reset the
// password, confirm the email address, the account page and log out. They
// live at the API's URLs (a JSON request to one of them gets the API, a
// form post or a GET gets the page) and use the cookie session.
//
// Every page is server-rendered with html/template, needs no JavaScript,
// loads nothing from other origins, and is sent with a strict Content
// Security Policy. Every form carries a CSRF token, and every form post is
// also checked for its Origin (or Referer).

//go:embed pages/*.html
var embeddedPages embed.FS

//go:embed static/gatehouse.css
var embeddedCSS string

// pageNames are the templates besides the layout.
var pageNames = []string{"login", "register", "check-email", "forgot", "request-verify", "sent",
	"reset", "verify", "message", "logout", "account"}

// Branding is what a site may change of the pages' look.
type Branding struct {
	Title   string // site title, default "Gatehouse"
	LogoURL string // shown in the header; a path on this site or an https URL
	Accent  string // colour of buttons and links, #rgb or #rrggbb; default #1f6feb
}

// csrfCookie holds the browser's CSRF secret.
const csrfCookie = "gatehouse_csrf"

var hexColour = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// Pages holds the parsed page templates and the stylesheet of one API.
type Pages struct {
	tpl map[string]*template.Template
	css []byte
	csp string
}

// LoadPages parses the page templates: the embedded ones, each replaceable
// by a file of the same name (login.html, layout.html, …) in dir. It is
// called once, when the config loads, so that a broken template stops the
// config rather than a login.
func LoadPages(dir string, b Branding, cookieDomain string) (*Pages, error) {
	read := func(name string) (string, error) {
		if dir != "" {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err == nil {
				return string(data), nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("reading page template: %w", err)
			}
		}
		data, err := embeddedPages.ReadFile("pages/" + name)
		if err != nil {
			return "", fmt.Errorf("reading page template %s: %w", name, err)
		}
		return string(data), nil
	}
	if dir != "" {
		// A wrong directory, or a misspelt file in it, would silently
		// leave the embedded pages in place: refuse both.
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("reading page templates: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			if !strings.HasSuffix(name, ".html") {
				continue
			}
			if base := strings.TrimSuffix(name, ".html"); base != "layout" && !slices.Contains(pageNames, base) {
				return nil, fmt.Errorf("page templates: %s is not one of layout.html, %s.html", name, strings.Join(pageNames, ".html, "))
			}
		}
	}
	layout, err := read("layout.html")
	if err != nil {
		return nil, err
	}
	p := &Pages{tpl: map[string]*template.Template{}}
	for _, name := range pageNames {
		src, err := read(name + ".html")
		if err != nil {
			return nil, err
		}
		t, err := template.New("layout.html").Option("missingkey=error").Parse(layout)
		if err != nil {
			return nil, fmt.Errorf("parsing page template layout.html: %w", err)
		}
		if _, err := t.New(name + ".html").Parse(src); err != nil {
			return nil, fmt.Errorf("parsing page template %s.html: %w", name, err)
		}
		p.tpl[name] = t
	}
	accent := b.Accent
	if accent == "" {
		accent = "#1f6feb"
	}
	if !hexColour.MatchString(accent) {
		return nil, fmt.Errorf("accent colour %q: want #rgb or #rrggbb", accent)
	}
	p.css = []byte(strings.ReplaceAll(embeddedCSS, "{{ACCENT}}", accent))
	p.csp = contentSecurityPolicy(b.LogoURL, cookieDomain)
	return p, nil
}

// contentSecurityPolicy allows this origin's stylesheet and images (and
// the logo's origin), no script at all, no framing, and form posts to this
// origin and, for redirects after login, the cookie domain's hosts.
func contentSecurityPolicy(logoURL, cookieDomain string) string {
	img := "'self'"
	if u, err := url.Parse(logoURL); err == nil && u.Scheme == "https" && u.Host != "" {
		img += " https://" + u.Host
	}
	forms := "'self'"
	if d := strings.TrimPrefix(strings.ToLower(cookieDomain), "."); d != "" {
		forms += " " + d + " *." + d
	}
	return "default-src 'none'; style-src 'self'; img-src " + img + "; form-action " + forms +
		"; frame-ancestors 'none'; base-uri 'none'"
}

// pageData is what every page template sees.
type pageData struct {
	Site              Branding
	Prefix            string
	CSRF              string
	RD                string
	Error, Notice     string
	Email, FullName   string
	Token             string
	MinPasswordLength int
	RegistrationOpen  bool
	User              *store.User
	Sessions          []sessionView
	Heading, Body     string
	LinkURL, LinkText string
}

// sessionView is one row of the account page's session table.
type sessionView struct {
	ID, Device, UserAgent, IP, LastSeen, LastSeenISO string
	Current                                          bool
}

// isFormPost reports whether r posts an HTML form (a browser), as opposed
// to JSON (an API client): the pages and the API share their URLs.
func isFormPost(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data"
}

// render writes a page. tokenPage marks pages whose URL carries a token:
// they are sent with Referrer-Policy: no-referrer, so that the token does
// not leak to anything they link to.
func (a *API) render(w http.ResponseWriter, r *http.Request, status int, name string, d *pageData, tokenPage bool) {
	if d.Site.Title == "" {
		d.Site = a.branding()
	}
	d.Prefix = a.apiPrefix()
	d.MinPasswordLength = a.Service.MinPasswordLength()
	d.RegistrationOpen = a.Service.RegistrationOpen()
	if d.CSRF == "" {
		d.CSRF = a.csrfFor(w, r)
	}
	var buf bytes.Buffer
	if err := a.pages.tpl[name].ExecuteTemplate(&buf, "layout.html", d); err != nil {
		a.log().ErrorContext(r.Context(), "rendering page", "page", name, "error", err)
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	a.pageHeaders(w, tokenPage)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// pageHeaders are the security headers of every page.
func (a *API) pageHeaders(w http.ResponseWriter, tokenPage bool) {
	h := w.Header()
	h.Set("Content-Security-Policy", a.pages.csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if tokenPage {
		h.Set("Referrer-Policy", "no-referrer")
	} else {
		h.Set("Referrer-Policy", "same-origin")
	}
}

func (a *API) branding() Branding {
	b := a.Branding
	if b.Title == "" {
		b.Title = "Gatehouse"
	}
	return b
}

func (a *API) apiPrefix() string {
	api, _ := a.prefixes()
	return api
}

// csrfFor returns the CSRF token for r's browser, setting its CSRF cookie
// first if it has none.
func (a *API) csrfFor(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && c.Value != "" && len(c.Value) <= 64 {
		return a.Service.CSRFToken(c.Value)
	}
	secret, err := a.Service.NewCSRFSecret()
	if err != nil {
		a.log().ErrorContext(r.Context(), "making CSRF secret", "error", err)
		return ""
	}
	http.SetCookie(w, &http.Cookie{
		Name: csrfCookie, Value: secret, Path: a.apiPrefix(), HttpOnly: true,
		Secure: !isPlainLoopback(r), SameSite: http.SameSiteLaxMode,
	})
	// Let the cookie count for this very response's form too.
	r.AddCookie(&http.Cookie{Name: csrfCookie, Value: secret})
	return a.Service.CSRFToken(secret)
}

// checkForm parses a posted form and defends it against cross-site
// request forgery twice: the request must come from this origin (Origin,
// or Referer when the browser sends no Origin), and carry the CSRF token
// that matches the browser's CSRF cookie, which another site can neither
// read nor compute. It answers the failure itself.
func (a *API) checkForm(w http.ResponseWriter, r *http.Request) bool {
	// The same bound and read deadline as the API's bodies: a slow client
	// holds neither a goroutine nor, later, a hashing slot for long.
	switch err := readForm(w, r); {
	case errors.Is(err, errBodyTooLarge):
		http.Error(w, "Request Entity Too Large", http.StatusRequestEntityTooLarge)
		return false
	case errors.Is(err, errReadTimeout):
		http.Error(w, "Request Timeout", http.StatusRequestTimeout)
		return false
	case err != nil:
		a.renderMessage(w, r, http.StatusBadRequest, "Something went wrong", "The form could not be read. Please try again.", "", "")
		return false
	}
	if !sameOrigin(r) {
		a.forbidden(w, r)
		return false
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || !a.Service.CheckCSRF(c.Value, r.PostForm.Get("csrf")) {
		a.forbidden(w, r)
		return false
	}
	return true
}

func (a *API) forbidden(w http.ResponseWriter, r *http.Request) {
	a.renderMessage(w, r, http.StatusForbidden, "Please try again",
		"This form has expired, or it was sent from another site. Go back, reload the page and try again.",
		a.apiPrefix()+"/login", "Go to the login page")
}

// sameOrigin reports whether a form post comes from this origin.
//
// Browsers say so in Sec-Fetch-Site, which a page cannot forge: when it
// is there, only "same-origin" passes, so a post from another site, or
// from a sibling subdomain that might have planted a CSRF cookie of its
// choosing, is refused whatever token it carries. Older browsers send no
// Sec-Fetch-Site; then the Origin header decides when it names an origin,
// else the Referer. (A page sent with Referrer-Policy: no-referrer, as the
// token pages are, posts with Origin "null" and no Referer; the CSRF
// token alone then decides.) Only hosts are compared: behind a proxy that
// ends TLS this server sees plain HTTP while the browser's origin is https.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	from := ""
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		from = o
	} else if ref := r.Header.Get("Referer"); ref != "" {
		from = ref
	} else {
		return true
	}
	u, err := url.Parse(from)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.EqualFold(u.Host, r.Host)
}

func (a *API) renderMessage(w http.ResponseWriter, r *http.Request, status int, heading, body, link, linkText string) {
	a.render(w, r, status, "message", &pageData{Heading: heading, Body: body, LinkURL: link, LinkText: linkText}, false)
}

// rd is the validated target of a page's rd parameter (query or form).
func (a *API) rd(r *http.Request) string {
	v := r.FormValue("rd")
	if v == "" {
		return ""
	}
	safe := SafeRedirect(v, r.Host, a.CookieDomain)
	if safe == "/" && v != "/" {
		return ""
	}
	return safe
}

// pageUser is the user of a page request's cookie session, or nil.
func (a *API) pageUser(r *http.Request) *caddyauth.Principal {
	for _, c := range r.CookiesNamed(a.Service.CookieName()) {
		if p, err := a.Service.AuthenticateCookie(r.Context(), c.Value); err == nil && p.IsActive {
			return p
		}
	}
	return nil
}

// seeOther redirects after a successful form post.
func seeOther(w http.ResponseWriter, target string) {
	w.Header().Set("Location", target)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusSeeOther)
}

// staticCSS: GET <prefix>/static/gatehouse.css.
func (a *API) staticCSS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/css; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(a.pages.css)
}

// loginPage: GET <prefix>/login?rd=… A browser that has a session already
// goes straight on.
func (a *API) loginPage(w http.ResponseWriter, r *http.Request) {
	rd := a.rd(r)
	if a.pageUser(r) != nil {
		seeOther(w, orRoot(rd))
		return
	}
	a.render(w, r, http.StatusOK, "login", &pageData{RD: rd}, false)
}

func orRoot(rd string) string {
	if rd == "" {
		return "/"
	}
	return rd
}

// loginForm: POST <prefix>/login. A new session every time (the cookie
// of any earlier one is replaced); failures say nothing about whether the
// account exists.
func (a *API) loginForm(w http.ResponseWriter, r *http.Request) {
	if !a.checkForm(w, r) {
		return
	}
	rd, username := a.rd(r), strings.TrimSpace(r.PostForm.Get("username"))
	res, err := a.Service.Login(a.withLoginLinks(r), username, r.PostForm.Get("password"), store.TransportCookie, a.clientInfo(r))
	switch {
	case errors.Is(err, caddyauth.ErrNotVerified):
		a.render(w, r, http.StatusBadRequest, "login", &pageData{RD: rd, Email: username,
			Error: "Please confirm your email address first: open the link we sent you, or ask for a new one."}, false)
		return
	case err != nil && isClientError(err):
		a.render(w, r, http.StatusBadRequest, "login", &pageData{RD: rd, Email: username,
			Error: "The email address or the password is not right."}, false)
		return
	case err != nil:
		a.pageFailure(w, r, err)
		return
	}
	http.SetCookie(w, a.sessionCookie(r, res.Credential, a.Service.SessionLifetime()))
	seeOther(w, orRoot(rd))
}

// isClientError: an error of the core that is the user's, not ours.
func isClientError(err error) bool {
	for _, row := range coreErrors {
		if errors.Is(err, row.err) {
			return true
		}
	}
	var pe *caddyauth.PasswordError
	var fe *caddyauth.FieldError
	return errors.As(err, &pe) || errors.As(err, &fe)
}

func (a *API) pageFailure(w http.ResponseWriter, r *http.Request, err error) {
	if clientGone(w, r, a.log(), err) {
		return
	}
	var re *caddyauth.RetryError
	if errors.As(err, &re) {
		status := retryStatus(w, re)
		if re.Busy {
			a.renderMessage(w, r, status, "Too busy", "The server is busy. Please try again in a moment.", "", "")
		} else {
			a.renderMessage(w, r, status, "Too many attempts", "Too many failed attempts from your network. Please try again later.", "", "")
		}
		return
	}
	a.log().ErrorContext(r.Context(), "page request failed", "path", r.URL.Path, "error", err)
	status := http.StatusInternalServerError
	if errors.Is(err, store.ErrUnavailable) {
		status = unavailable(w)
	}
	a.renderMessage(w, r, status, "Something went wrong", "Please try again in a moment.", "", "")
}

// registerPage: GET <prefix>/register.
func (a *API) registerPage(w http.ResponseWriter, r *http.Request) {
	if !a.Service.RegistrationOpen() {
		a.renderMessage(w, r, http.StatusForbidden, "Sign-up is closed", "Ask an administrator for an account.", a.apiPrefix()+"/login", "Log in")
		return
	}
	a.render(w, r, http.StatusOK, "register", &pageData{RD: a.rd(r)}, false)
}

// registerForm: POST <prefix>/register from the sign-up form. With
// require_verified on, the answer is "check your email" whether the
// address was free or taken, so that the form does not tell who has an
// account. Otherwise a new user is logged in and sent on at once, which
// does tell (as the JSON API's REGISTER_USER_ALREADY_EXISTS does anyway,
// by fastapi-users' contract).
func (a *API) registerForm(w http.ResponseWriter, r *http.Request) {
	if !a.checkForm(w, r) {
		return
	}
	rd := a.rd(r)
	email, name := strings.TrimSpace(r.PostForm.Get("email")), r.PostForm.Get("full_name")
	again := func(msg string) {
		a.render(w, r, http.StatusBadRequest, "register", &pageData{RD: rd, Email: email, FullName: name, Error: msg}, false)
	}
	if !a.Service.RegistrationOpen() {
		a.registerPage(w, r)
		return
	}
	if _, err := caddyauth.NormalizeEmail(email); err != nil {
		again("Please enter a valid email address.")
		return
	}
	if err := caddyauth.ValidateFullName("full_name", name); err != nil {
		again("Please enter a shorter name, without control characters.")
		return
	}
	password := r.PostForm.Get("password")
	_, err := a.Service.Register(r.Context(), email, password, name, a.links(r))
	var pe *caddyauth.PasswordError
	switch {
	case errors.As(err, &pe):
		again(pe.Reason + ".")
		return
	case errors.Is(err, caddyauth.ErrUserExists) && a.Service.VerifyOnRegister():
		// As for a new account: the mailbox's owner knows which it is.
	case errors.Is(err, caddyauth.ErrUserExists):
		again("This email address cannot be used to sign up. If it is yours, log in or reset your password.")
		return
	case err != nil && isClientError(err):
		again("Please check the form and try again.")
		return
	case err != nil:
		a.pageFailure(w, r, err)
		return
	}
	if err == nil && !a.Service.RequireVerified() {
		res, lerr := a.Service.Login(r.Context(), email, password, store.TransportCookie, a.clientInfo(r))
		if lerr == nil {
			http.SetCookie(w, a.sessionCookie(r, res.Credential, a.Service.SessionLifetime()))
			seeOther(w, orRoot(rd))
			return
		}
	}
	a.render(w, r, http.StatusOK, "check-email", &pageData{RD: rd, Email: email}, false)
}

// emailRequestPage serves the forgot-password and request-verify-token
// pages (GET) and their forms (POST): always "check your email".
func (a *API) emailRequestPage(page string, send func(r *http.Request, email string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// GET and HEAD show the form (HEAD is routed here too).
		if r.Method != http.MethodPost {
			a.render(w, r, http.StatusOK, page, &pageData{}, false)
			return
		}
		if !a.checkForm(w, r) {
			return
		}
		email := strings.TrimSpace(r.PostForm.Get("email"))
		normalized, err := caddyauth.NormalizeEmail(email)
		if err != nil {
			a.render(w, r, http.StatusBadRequest, page, &pageData{Email: email, Error: "Please enter a valid email address."}, false)
			return
		}
		if err := send(r, normalized); err != nil {
			a.pageFailure(w, r, err)
			return
		}
		a.render(w, r, http.StatusOK, "sent", &pageData{Email: normalized}, false)
	}
}

// resetPage: GET <prefix>/reset-password?token=… shows the form; nothing
// is spent until it is posted.
func (a *API) resetPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "reset", &pageData{Token: r.URL.Query().Get("token")}, true)
}

// resetForm: POST <prefix>/reset-password from the form.
func (a *API) resetForm(w http.ResponseWriter, r *http.Request) {
	if !a.checkForm(w, r) {
		return
	}
	token := r.PostForm.Get("token")
	err := a.Service.ResetPassword(r.Context(), token, r.PostForm.Get("password"))
	var pe *caddyauth.PasswordError
	switch {
	case err == nil:
		// The reset ended every session: the cookie's too.
		http.SetCookie(w, a.sessionCookie(r, "", -1))
		a.render(w, r, http.StatusOK, "message", &pageData{Heading: "Password changed",
			Body: "Your new password is set, and you are logged out everywhere.", LinkURL: a.apiPrefix() + "/login", LinkText: "Log in"}, true)
	case errors.As(err, &pe):
		a.render(w, r, http.StatusBadRequest, "reset", &pageData{Token: token, Error: pe.Reason + "."}, true)
	case errors.Is(err, caddyauth.ErrResetBadToken):
		a.render(w, r, http.StatusBadRequest, "message", &pageData{Heading: "This link does not work",
			Body: "It has been used already, has expired, or was replaced by a newer one.", LinkURL: a.apiPrefix() + "/forgot-password", LinkText: "Ask for a new link"}, true)
	default:
		a.pageFailure(w, r, err)
	}
}

// verifyPage: GET <prefix>/verify?token=… asks for a click: a GET never
// spends the token (mail scanners open links).
func (a *API) verifyPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "verify", &pageData{Token: r.URL.Query().Get("token")}, true)
}

// verifyForm: POST <prefix>/verify from the form.
func (a *API) verifyForm(w http.ResponseWriter, r *http.Request) {
	if !a.checkForm(w, r) {
		return
	}
	_, err := a.Service.Verify(r.Context(), r.PostForm.Get("token"))
	switch {
	case err == nil:
		a.render(w, r, http.StatusOK, "message", &pageData{Heading: "Email address verified",
			Body: "Your email address is verified. Thank you.", LinkURL: a.apiPrefix() + "/login", LinkText: "Log in"}, true)
	case errors.Is(err, caddyauth.ErrVerifyAlreadyVerified):
		a.render(w, r, http.StatusOK, "message", &pageData{Heading: "Email address verified",
			Body: "Your email address was verified already.", LinkURL: a.apiPrefix() + "/login", LinkText: "Log in"}, true)
	case errors.Is(err, caddyauth.ErrVerifyBadToken):
		a.render(w, r, http.StatusBadRequest, "message", &pageData{Heading: "This link does not work",
			Body: "It has expired, or the address changed since it was sent.", LinkURL: a.apiPrefix() + "/request-verify-token", LinkText: "Ask for a new link"}, true)
	default:
		a.pageFailure(w, r, err)
	}
}

// accountNotices are the fixed messages after an account change; the
// query names one, so nothing from the URL is ever shown.
var accountNotices = map[string]string{
	"profile":  "Your name is saved.",
	"email":    "Your email address is changed. Confirm it with the link we sent you.",
	"password": "Your password is changed. Your other sessions have ended.",
	"revoked":  "That session has ended.",
}

// accountPage: GET <prefix>/account.
func (a *API) accountPage(w http.ResponseWriter, r *http.Request) {
	p := a.pageUser(r)
	if p == nil {
		a.toLogin(w, r)
		return
	}
	a.renderAccount(w, r, p, http.StatusOK, "", accountNotices[r.URL.Query().Get("done")])
}

// toLogin sends a browser without a session to the login page, to come
// back to the account page.
func (a *API) toLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, a.apiPrefix()+"/login?rd="+url.QueryEscape(a.apiPrefix()+"/account"), http.StatusFound)
}

func (a *API) renderAccount(w http.ResponseWriter, r *http.Request, p *caddyauth.Principal, status int, errMsg, notice string) {
	u, err := a.Service.User(r.Context(), p.UserID)
	if err != nil {
		a.pageFailure(w, r, err)
		return
	}
	sessions, err := a.Service.UserSessions(r.Context(), p.UserID)
	if err != nil {
		a.pageFailure(w, r, err)
		return
	}
	views := make([]sessionView, 0, len(sessions))
	for _, s := range sessions {
		views = append(views, sessionView{
			ID: s.ID, Device: deviceName(s.UserAgent, s.Transport), UserAgent: s.UserAgent, IP: s.IP,
			LastSeen: s.LastSeenAt.UTC().Format("2 Jan 2006 15:04 UTC"), LastSeenISO: s.LastSeenAt.UTC().Format(time.RFC3339),
			Current: s.ID == p.SessionID,
		})
	}
	a.render(w, r, status, "account", &pageData{User: u, Sessions: views, Error: errMsg, Notice: notice}, false)
}

// accountForm handles the account page's forms.
func (a *API) accountForm(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.checkForm(w, r) {
			return
		}
		p := a.pageUser(r)
		if p == nil {
			a.toLogin(w, r)
			return
		}
		// The user acts on their own account: the audit log names them.
		ctx, f := caddyauth.WithActor(r.Context(), p.UserID), r.PostForm
		var err error
		switch action {
		case "profile":
			name := f.Get("full_name")
			_, err = a.Service.UpdateSelf(ctx, p, caddyauth.UserPatch{FullName: &name})
		case "email":
			email, current := strings.TrimSpace(f.Get("email")), f.Get("current_password")
			if _, nerr := caddyauth.NormalizeEmail(email); nerr != nil {
				a.renderAccount(w, r, p, http.StatusBadRequest, "Please enter a valid email address.", "")
				return
			}
			var u *store.User
			if u, err = a.Service.UpdateSelf(ctx, p, caddyauth.UserPatch{Email: &email, CurrentPassword: &current}); err == nil && !u.IsVerified {
				// The new address needs confirming.
				if rerr := a.Service.RequestVerify(ctx, u.Email, a.links(r)); rerr != nil {
					a.log().ErrorContext(ctx, "queueing verification mail after an email change", "error", rerr)
				}
			}
		case "password":
			next, current := f.Get("new_password"), f.Get("current_password")
			_, err = a.Service.UpdateSelf(ctx, p, caddyauth.UserPatch{Password: &next, CurrentPassword: &current})
		case "revoke":
			err = a.Service.RevokeSession(ctx, p.UserID, f.Get("session"))
			if err == nil && f.Get("session") == p.SessionID {
				http.SetCookie(w, a.sessionCookie(r, "", -1))
				seeOther(w, a.apiPrefix()+"/login")
				return
			}
		case "revoke-all":
			if _, err = a.Service.RevokeUserSessions(ctx, p.UserID, ""); err == nil {
				http.SetCookie(w, a.sessionCookie(r, "", -1))
				seeOther(w, a.apiPrefix()+"/login")
				return
			}
		}
		var pe *caddyauth.PasswordError
		switch {
		case err == nil:
			done := action
			if action == "revoke" {
				done = "revoked"
			}
			seeOther(w, a.apiPrefix()+"/account?done="+done)
		case errors.As(err, &pe):
			a.renderAccount(w, r, p, http.StatusBadRequest, pe.Reason+".", "")
		case errors.Is(err, caddyauth.ErrEmailTaken):
			a.renderAccount(w, r, p, http.StatusBadRequest, "This email address cannot be used.", "")
		case errors.Is(err, caddyauth.ErrNotFound) && action == "revoke":
			a.renderAccount(w, r, p, http.StatusBadRequest, "That session has ended already.", "")
		case errors.Is(err, caddyauth.ErrUnauthenticated):
			a.toLogin(w, r)
		case isClientError(err):
			a.renderAccount(w, r, p, http.StatusBadRequest, "Please check the form and try again.", "")
		default:
			a.pageFailure(w, r, err)
		}
	}
}

// logoutPage: GET <prefix>/logout asks for a click (a GET that logged
// out could be triggered by any site's <img>).
func (a *API) logoutPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "logout", &pageData{}, false)
}

// logoutForm: POST <prefix>/logout ends the cookie session.
func (a *API) logoutForm(w http.ResponseWriter, r *http.Request) {
	if !a.checkForm(w, r) {
		return
	}
	if p := a.pageUser(r); p != nil {
		if err := a.Service.Logout(caddyauth.WithActor(r.Context(), p.UserID), p); err != nil {
			a.pageFailure(w, r, err)
			return
		}
	}
	http.SetCookie(w, a.sessionCookie(r, "", -1))
	seeOther(w, a.apiPrefix()+"/login")
}

// deviceName says in a few words what a user agent is.
func deviceName(ua string, t store.Transport) string {
	if ua == "" {
		if t == store.TransportBearer {
			return "API client"
		}
		return "Unknown device"
	}
	browser := ""
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"Chromium/", "Chromium"},
		{"HeadlessChrome/", "Chrome (headless)"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"},
		{"curl/", "curl"}, {"python-requests/", "Python"}, {"Go-http-client/", "Go"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	system := ""
	for _, o := range []struct{ token, name string }{
		{"Android", "Android"}, {"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			system = o.name
			break
		}
	}
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case browser != "":
		return browser
	case system != "":
		return system
	}
	if r := []rune(ua); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return ua
}
