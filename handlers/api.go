package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// Default mount points of the API.
const (
	DefaultAPIPrefix   = "/auth"
	DefaultUsersPrefix = "/users"
)

// API serves the account endpoints of DESIGN §3, wire-compatible with
// fastapi-users v15: register, login and logout for both transports, and
// the /users routes.
type API struct {
	Service     *caddyauth.Service
	APIPrefix   string // default /auth
	UsersPrefix string // default /users
	// CookieDomain is the Domain attribute of the session cookie ("" for
	// host-only).
	CookieDomain string
	// BaseURL is the absolute base of links in mails (base_url); "" for
	// the request's own origin.
	BaseURL string
	// Branding of the pages, and their templates (nil: the embedded ones
	// with Branding).
	Branding Branding
	Pages    *Pages
	// ClientIP returns the client's address as the server resolved it
	// (honouring trusted proxies only); default: the peer address.
	ClientIP func(*http.Request) string
	Logger   *slog.Logger

	pages       *Pages
	noBaseURL   sync.Once // warns once of links that cannot be made
	once        sync.Once
	routes      map[string]*route // by exact path
	userByID    *route            // /users/{id}
	usersPrefix string
}

type route struct {
	methods handlerMap
}

// ServeAPI answers r if its path is one of the API's, and reports whether
// it did. Every path under the two prefixes belongs to the API: an unknown
// one is answered 404 rather than passed on, so that nothing downstream
// (the guard, the upstream) ever sees a request meant for Gatehouse.
func (a *API) ServeAPI(w http.ResponseWriter, r *http.Request) bool {
	path := r.URL.Path
	apiPrefix, usersPrefix := a.prefixes()
	if !underPrefix(path, apiPrefix) && !underPrefix(path, usersPrefix) {
		return false
	}
	rt, id := a.match(path)
	if rt == nil && len(path) > 1 && strings.HasSuffix(path, "/") {
		// As Starlette does: the same route without the trailing slash.
		if trimmed, _ := a.match(strings.TrimSuffix(path, "/")); trimmed != nil {
			u := *r.URL
			u.Path = strings.TrimSuffix(path, "/")
			u.RawPath = ""
			// Location set as is: http.Redirect would clean dot segments.
			w.Header().Set("Location", u.RequestURI())
			w.WriteHeader(http.StatusTemporaryRedirect)
			return true
		}
	}
	if rt == nil {
		writeJSON(w, http.StatusNotFound, detail{"Not Found"})
		return true
	}
	h, ok := rt.methods[r.Method]
	if !ok {
		allow := make([]string, 0, len(rt.methods))
		for m := range rt.methods {
			allow = append(allow, m)
		}
		w.Header().Set("Allow", strings.Join(sortedMethods(allow), ", "))
		writeJSON(w, http.StatusMethodNotAllowed, detail{"Method Not Allowed"})
		return true
	}
	ctx := caddyauth.WithClient(r.Context(), a.clientInfo(r))
	if id != "" {
		ctx = withPathID(ctx, id)
	}
	h(w, r.WithContext(ctx))
	return true
}

func (a *API) prefixes() (string, string) {
	api, users := strings.TrimSuffix(a.APIPrefix, "/"), strings.TrimSuffix(a.UsersPrefix, "/")
	if api == "" {
		api = DefaultAPIPrefix
	}
	if users == "" {
		users = DefaultUsersPrefix
	}
	return api, users
}

func underPrefix(path, prefix string) bool {
	// Without building prefix+"/": this runs on every request that
	// passes through the endpoints handler.
	return strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/')
}

// match finds the route for a path; id is the {id} of /users/{id}.
func (a *API) match(path string) (rt *route, id string) {
	a.once.Do(a.buildRoutes)
	if rt, ok := a.routes[path]; ok {
		// DELETE /users/me is DELETE /users/{id} with the id "me", as in
		// fastapi-users: 404 for a superuser (not a UUID), 401/403 for others.
		if path == a.usersPrefix+"/me" {
			return rt, "me"
		}
		return rt, ""
	}
	if id, ok := strings.CutPrefix(path, a.usersPrefix+"/"); ok && id != "" && !strings.Contains(id, "/") {
		return a.userByID, id
	}
	return nil, ""
}

type handlerMap = map[string]func(http.ResponseWriter, *http.Request)

// buildRoutes makes the route table once: paths are fixed by the config.
func (a *API) buildRoutes() {
	api, users := a.prefixes()
	a.usersPrefix = users
	a.pages = a.Pages
	if a.pages == nil {
		var err error
		if a.pages, err = LoadPages("", a.Branding, a.CookieDomain); err != nil {
			// The embedded templates always parse; tests hold them to it.
			panic(fmt.Sprintf("embedded page templates: %v", err))
		}
	}
	post := func(h http.HandlerFunc) *route { return &route{methods: handlerMap{http.MethodPost: h}} }
	// page is a browser page at an API URL: GET (and HEAD) show it, a form
	// post goes to form, any other POST (JSON) to the API handler.
	page := func(get, form, json http.HandlerFunc) *route {
		m := handlerMap{http.MethodGet: get, http.MethodHead: get}
		switch {
		case json == nil && form != nil:
			m[http.MethodPost] = form
		case json != nil:
			m[http.MethodPost] = func(w http.ResponseWriter, r *http.Request) {
				if form != nil && isFormPost(r) {
					form(w, r)
					return
				}
				json(w, r)
			}
		}
		return &route{methods: m}
	}
	forgot := a.emailRequestPage("forgot", func(r *http.Request, email string) error {
		return a.Service.ForgotPassword(r.Context(), email, a.links(r))
	})
	requestVerify := a.emailRequestPage("request-verify", func(r *http.Request, email string) error {
		return a.Service.RequestVerify(r.Context(), email, a.links(r))
	})
	a.routes = map[string]*route{
		api + "/register":                    page(a.registerPage, a.registerForm, a.register),
		api + "/jwt/login":                   post(a.login(store.TransportBearer)),
		api + "/jwt/logout":                  post(a.logout(store.TransportBearer)),
		api + "/cookie/login":                post(a.login(store.TransportCookie)),
		api + "/cookie/logout":               post(a.logout(store.TransportCookie)),
		api + "/forgot-password":             page(forgot, forgot, a.mailRequest(a.Service.ForgotPassword)),
		api + "/request-verify-token":        page(requestVerify, requestVerify, a.mailRequest(a.Service.RequestVerify)),
		api + "/reset-password":              page(a.resetPage, a.resetForm, a.resetPassword),
		api + "/verify":                      page(a.verifyPage, a.verifyForm, a.verify),
		api + "/login":                       page(a.loginPage, a.loginForm, nil),
		api + "/logout":                      page(a.logoutPage, a.logoutForm, nil),
		api + "/account":                     page(a.accountPage, nil, nil),
		api + "/account/profile":             post(a.accountForm("profile")),
		api + "/account/email":               post(a.accountForm("email")),
		api + "/account/password":            post(a.accountForm("password")),
		api + "/account/sessions/revoke":     post(a.accountForm("revoke")),
		api + "/account/sessions/revoke-all": post(a.accountForm("revoke-all")),
		api + "/static/gatehouse.css":        page(a.staticCSS, nil, nil),
		users + "/me": {methods: handlerMap{
			http.MethodGet: a.getMe, http.MethodPatch: a.patchMe, http.MethodDelete: a.deleteUser}},
	}
	a.userByID = &route{methods: handlerMap{
		http.MethodGet: a.getUser, http.MethodPatch: a.patchUser, http.MethodDelete: a.deleteUser}}
}

func sortedMethods(ms []string) []string {
	order := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPatch, http.MethodDelete}
	out := make([]string, 0, len(ms))
	for _, m := range order {
		for _, x := range ms {
			if x == m {
				out = append(out, m)
			}
		}
	}
	return out
}

func (a *API) log() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

func (a *API) clientInfo(r *http.Request) caddyauth.ClientInfo {
	ip := ""
	if a.ClientIP != nil {
		ip = a.ClientIP(r)
	} else if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ip = host
	}
	return caddyauth.ClientInfo{UserAgent: r.UserAgent(), IP: ip}
}

// UserJSON is the user schema of the API (and of `caddy gatehouse user
// list --json`). It never carries the hash.
type UserJSON struct {
	ID          string   `json:"id"`
	Email       string   `json:"email"`
	IsActive    bool     `json:"is_active"`
	IsSuperuser bool     `json:"is_superuser"`
	IsVerified  bool     `json:"is_verified"`
	FullName    *string  `json:"full_name"`
	Roles       []string `json:"roles"`
}

// ToUserJSON is the API's view of a user.
func ToUserJSON(u *store.User) UserJSON {
	out := UserJSON{ID: u.ID, Email: u.Email, IsActive: u.IsActive, IsSuperuser: u.IsSuperuser,
		IsVerified: u.IsVerified, Roles: u.Roles}
	if u.FullName != "" {
		name := u.FullName
		out.FullName = &name
	}
	if out.Roles == nil {
		out.Roles = []string{}
	}
	return out
}

// register: POST /auth/register.
func (a *API) register(w http.ResponseWriter, r *http.Request) {
	b, ok := a.body(w, r, false, codeRegisterInvalidPassword)
	if !ok {
		return
	}
	var email, password, fullName *string
	if b.objectOK() {
		email = b.str("email", true, false)
		password = b.str("password", true, false)
		fullName = b.str("full_name", false, true)
		// Ignored, but type-checked, as fastapi-users does.
		b.boolean("is_active")
		b.boolean("is_superuser")
		b.boolean("is_verified")
		b.strings("roles")
		if email != nil {
			if normalized, err := caddyauth.NormalizeEmail(*email); err != nil {
				b.failField(err.(*caddyauth.FieldError))
			} else {
				email = &normalized
			}
		}
		if fullName != nil {
			if err := caddyauth.ValidateFullName("full_name", *fullName); err != nil {
				b.failField(err.(*caddyauth.FieldError))
			}
		}
	}
	if len(b.errs) > 0 {
		writeValidation(w, b.errs)
		return
	}
	name := ""
	if fullName != nil {
		name = *fullName
	}
	u, err := a.Service.Register(r.Context(), *email, *password, name, a.links(r))
	if err != nil {
		writeError(w, r, a.log(), err, codeRegisterInvalidPassword)
		return
	}
	writeJSON(w, http.StatusCreated, ToUserJSON(u))
}

// login: POST /auth/jwt/login and /auth/cookie/login.
func (a *API) login(t store.Transport) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// A cookie login takes a plain form, which any site can make a
		// browser post: without this check a foreign page could log its
		// visitor into the attacker's account (login CSRF). Browsers say
		// where a post comes from; clients that are not browsers send no
		// Origin and are not affected.
		if t == store.TransportCookie && !trustedOrigin(r, a.CookieDomain) {
			writeJSON(w, http.StatusForbidden, detail{"Forbidden"})
			return
		}
		f, items, err := parseLoginForm(w, r)
		if err != nil {
			writeError(w, r, a.log(), err, "")
			return
		}
		if len(items) > 0 {
			writeValidation(w, items)
			return
		}
		res, err := a.Service.Login(a.withLoginLinks(r), f.username, f.password, t, a.clientInfo(r))
		if err != nil {
			writeError(w, r, a.log(), err, "")
			return
		}
		if t == store.TransportBearer {
			writeJSON(w, http.StatusOK, struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
			}{res.Credential, "bearer"})
			return
		}
		http.SetCookie(w, a.sessionCookie(r, res.Credential, a.Service.SessionLifetime()))
		writeStatus(w, http.StatusNoContent)
	}
}

// logout: POST /auth/jwt/logout and /auth/cookie/logout. Either
// credential authenticates; the session behind it is revoked, so the
// token stops working at once (fastapi-users' JWT strategy cannot do
// that; Gatehouse's sessions can).
func (a *API) logout(t store.Transport) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		if err := a.Service.Logout(caddyauth.WithActor(r.Context(), p.UserID), p); err != nil {
			writeError(w, r, a.log(), err, "")
			return
		}
		if t == store.TransportCookie {
			http.SetCookie(w, a.sessionCookie(r, "", -1))
		}
		writeStatus(w, http.StatusNoContent)
	}
}

// sessionCookie builds the session cookie: HttpOnly so scripts cannot
// read it, SameSite=Lax so other sites cannot send it with their POSTs,
// and Secure unless this is plain-HTTP development on a loopback host.
// maxAge < 0 expires it.
func (a *API) sessionCookie(r *http.Request, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{
		Name:     a.Service.CookieName(),
		Value:    value,
		Path:     "/",
		Domain:   a.CookieDomain,
		HttpOnly: true,
		Secure:   !isPlainLoopback(r),
		SameSite: http.SameSiteLaxMode,
		MaxAge:   int(maxAge / time.Second),
	}
	if maxAge < 0 {
		c.MaxAge = -1
	}
	return c
}

// isPlainLoopback reports a plain-HTTP request to localhost or a loopback
// address, where browsers do not need (and curl would not send) Secure
// cookies.
func isPlainLoopback(r *http.Request) bool {
	if r.TLS != nil {
		return false
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// authenticate resolves the request's credential for an API route and
// applies fastapi-users' rules: 401 without an active user's session, 403
// for an unverified user when require_verified is on. It answers the
// failure itself.
func (a *API) authenticate(w http.ResponseWriter, r *http.Request) (*caddyauth.Principal, bool) {
	p, err := Authenticate(r, a.Service)
	if err == nil {
		err = a.Service.Authorize(p, caddyauth.Requirements{})
	}
	if err != nil {
		writeError(w, r, a.log(), err, "")
		return nil, false
	}
	return p, true
}

// Authenticate resolves the credential of a request: a bearer token
// first, then the session cookie, as fastapi-users tries its backends in
// order; a bad bearer token falls through to a good cookie.
func Authenticate(r *http.Request, svc *caddyauth.Service) (*caddyauth.Principal, error) {
	var firstErr error
	if token, ok := bearerToken(r.Header); ok {
		p, err := svc.AuthenticateBearer(r.Context(), token)
		if err == nil {
			return p, nil
		}
		firstErr = err
	}
	for _, c := range r.CookiesNamed(svc.CookieName()) {
		p, err := svc.AuthenticateCookie(r.Context(), c.Value)
		if err == nil {
			return p, nil
		}
		if firstErr == nil || firstErr == caddyauth.ErrUnauthenticated {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = caddyauth.ErrUnauthenticated
	}
	return nil, firstErr
}

// bearerToken returns the token of the first "Authorization: Bearer"
// value of h.
func bearerToken(h http.Header) (string, bool) {
	for _, v := range h.Values("Authorization") {
		if token, ok := parseBearer(v); ok {
			return token, len(token) <= maxCredentialBytes // longer: none of ours, not parsed
		}
	}
	return "", false
}

// parseBearer reads one Authorization value: "Bearer <token>", the scheme
// in any case, followed by spaces or tabs.
func parseBearer(v string) (string, bool) {
	v = strings.TrimSpace(v)
	i := strings.IndexAny(v, " \t")
	if i < 0 || !strings.EqualFold(v[:i], "bearer") {
		return "", false
	}
	token := strings.TrimSpace(v[i+1:])
	return token, token != ""
}

// getMe: GET /users/me.
func (a *API) getMe(w http.ResponseWriter, r *http.Request) {
	p, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	u, err := a.Service.User(r.Context(), p.UserID)
	if err != nil {
		if err == caddyauth.ErrNotFound {
			err = caddyauth.ErrUnauthenticated
		}
		writeError(w, r, a.log(), err, "")
		return
	}
	writeJSON(w, http.StatusOK, ToUserJSON(u))
}

// patchMe: PATCH /users/me, the safe update.
func (a *API) patchMe(w http.ResponseWriter, r *http.Request) {
	b, ok := a.body(w, r, false, codeUpdateInvalidPassword)
	if !ok {
		return
	}
	p, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	patch, ok := readPatch(w, b, false)
	if !ok {
		return
	}
	u, err := a.Service.UpdateSelf(caddyauth.WithActor(r.Context(), p.UserID), p, patch)
	if err != nil {
		writeError(w, r, a.log(), err, codeUpdateInvalidPassword)
		return
	}
	writeJSON(w, http.StatusOK, ToUserJSON(u))
}

// readPatch reads a partial user. Privileged fields are type-checked
// always, and applied only when privileged is set (PATCH /users/{id}).
func readPatch(w http.ResponseWriter, b *jsonBody, privileged bool) (caddyauth.UserPatch, bool) {
	var patch caddyauth.UserPatch
	if b.objectOK() {
		patch.Password = b.str("password", false, true)
		patch.Email = b.str("email", false, false)
		patch.FullName = b.str("full_name", false, true)
		patch.CurrentPassword = b.str("current_password", false, true)
		active, superuser, verified := b.boolean("is_active"), b.boolean("is_superuser"), b.boolean("is_verified")
		roles := b.strings("roles")
		if privileged {
			patch.IsActive, patch.IsSuperuser, patch.IsVerified, patch.Roles = active, superuser, verified, roles
			if roles != nil {
				if err := caddyauth.ValidateRoles("roles", *roles); err != nil {
					b.failField(err.(*caddyauth.FieldError))
				}
			}
		}
		if patch.Email != nil {
			if normalized, err := caddyauth.NormalizeEmail(*patch.Email); err != nil {
				b.failField(err.(*caddyauth.FieldError))
			} else {
				patch.Email = &normalized
			}
		}
		if patch.FullName != nil {
			if err := caddyauth.ValidateFullName("full_name", *patch.FullName); err != nil {
				b.failField(err.(*caddyauth.FieldError))
			}
		} else if raw, present := b.fields["full_name"]; present && isNull(raw) {
			// full_name: null clears the name.
			empty := ""
			patch.FullName = &empty
		}
	}
	if len(b.errs) > 0 {
		writeValidation(w, b.errs)
		return patch, false
	}
	return patch, true
}

// requireSuperuser authenticates the caller of /users/{id} and checks
// that they are a superuser.
func (a *API) requireSuperuser(w http.ResponseWriter, r *http.Request) (*caddyauth.Principal, bool) {
	p, ok := a.authenticate(w, r)
	if !ok {
		return nil, false
	}
	if err := a.Service.Authorize(p, caddyauth.Requirements{Superuser: true}); err != nil {
		writeError(w, r, a.log(), err, "")
		return nil, false
	}
	return p, true
}

// targetUser loads the user named by the path, answering 404 for an
// unknown or malformed id (Python's uuid.UUID forms are accepted:
// upper case, no hyphens, braces, urn:uuid:).
func (a *API) targetUser(w http.ResponseWriter, r *http.Request) (*store.User, bool) {
	id, err := uuid.Parse(pathID(r.Context()))
	if err != nil {
		writeJSON(w, http.StatusNotFound, detail{"Not Found"})
		return nil, false
	}
	u, err := a.Service.User(r.Context(), id.String())
	if err != nil {
		writeError(w, r, a.log(), err, "")
		return nil, false
	}
	return u, true
}

// getUser: GET /users/{id}, superusers only.
func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.requireSuperuser(w, r); !ok {
		return
	}
	u, ok := a.targetUser(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, ToUserJSON(u))
}

// patchUser: PATCH /users/{id}, the privileged update.
func (a *API) patchUser(w http.ResponseWriter, r *http.Request) {
	b, ok := a.body(w, r, false, codeUpdateInvalidPassword)
	if !ok {
		return
	}
	p, ok := a.requireSuperuser(w, r)
	if !ok {
		return
	}
	target, ok := a.targetUser(w, r)
	if !ok {
		return
	}
	patch, ok := readPatch(w, b, true)
	if !ok {
		return
	}
	patch.CurrentPassword = nil
	// The audit log names the superuser as the one who made the change.
	u, err := a.Service.UpdateUser(caddyauth.WithActor(r.Context(), p.UserID), target.ID, patch, p.SessionID)
	if err != nil {
		writeError(w, r, a.log(), err, codeUpdateInvalidPassword)
		return
	}
	writeJSON(w, http.StatusOK, ToUserJSON(u))
}

// deleteUser: DELETE /users/{id}.
func (a *API) deleteUser(w http.ResponseWriter, r *http.Request) {
	p, ok := a.requireSuperuser(w, r)
	if !ok {
		return
	}
	target, ok := a.targetUser(w, r)
	if !ok {
		return
	}
	if err := a.Service.DeleteUser(caddyauth.WithActor(r.Context(), p.UserID), target.ID); err != nil {
		writeError(w, r, a.log(), err, "")
		return
	}
	writeStatus(w, http.StatusNoContent)
}

// links are the pages that mail links point to: under base_url, or,
// without it, this request's own origin when that can be trusted.
//
// A Host header is the client's to write: on a site that answers any host
// name, a forged Host would put the attacker's domain, with a victim's
// reset token, into the victim's mail. So without base_url the origin is
// used only when Caddy vouched for the host, by completing a TLS
// handshake for it (the SNI name, for which it holds a certificate), or
// when it is a loopback host (development). Otherwise there are no links,
// no mail goes out, and the log says to set base_url.
func (a *API) links(r *http.Request) caddyauth.Links {
	l, ok := a.trustedLinks(r)
	if !ok {
		a.noBaseURL.Do(func() {
			a.log().ErrorContext(r.Context(), "no base_url: mails with links are not sent for requests whose host was not verified by TLS; set base_url in the gatehouse global options", "host", r.Host)
		})
	}
	return l
}

// trustedLinks returns the links, and false (with none) when the request's
// origin cannot be trusted to make them; it logs nothing.
func (a *API) trustedLinks(r *http.Request) (caddyauth.Links, bool) {
	base := strings.TrimSuffix(a.BaseURL, "/")
	if base == "" {
		host := r.Host
		hostname := host
		if h, _, err := net.SplitHostPort(host); err == nil {
			hostname = h
		}
		switch {
		case r.TLS != nil && r.TLS.ServerName != "" && strings.EqualFold(r.TLS.ServerName, hostname):
			base = "https://" + host
		case isPlainLoopback(r):
			base = "http://" + host
		default:
			return caddyauth.Links{}, false
		}
	}
	api, _ := a.prefixes()
	return caddyauth.Links{Verify: base + api + "/verify", Reset: base + api + "/reset-password",
		Forgot: base + api + "/forgot-password"}, true
}

// withLoginLinks adds to r's context the links a login may mail (the
// lockout notice links to the forgot-password page), when there are
// trustworthy ones; the notice goes out without a link otherwise.
func (a *API) withLoginLinks(r *http.Request) context.Context {
	l, _ := a.trustedLinks(r)
	return caddyauth.WithLinks(r.Context(), l)
}

// mailRequest serves forgot-password and request-verify-token: an
// embedded `email`, and always 202 with the body null, whether or not a
// mail goes out (unknown, inactive and, for verification, verified
// accounts get none). The mail itself is queued, never sent while the
// client waits.
func (a *API) mailRequest(send func(context.Context, string, caddyauth.Links) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, ok := a.body(w, r, true, "")
		if !ok {
			return
		}
		email := b.str("email", true, false)
		if email != nil {
			normalized, err := caddyauth.NormalizeEmail(*email)
			if err != nil {
				b.failField(err.(*caddyauth.FieldError))
			}
			email = &normalized
		}
		if len(b.errs) > 0 {
			writeValidation(w, b.errs)
			return
		}
		if err := send(r.Context(), *email, a.links(r)); err != nil {
			writeError(w, r, a.log(), err, "")
			return
		}
		writeJSON(w, http.StatusAccepted, nil)
	}
}

// resetPassword: POST /auth/reset-password, {token, password}.
func (a *API) resetPassword(w http.ResponseWriter, r *http.Request) {
	b, ok := a.body(w, r, true, codeResetInvalidPassword)
	if !ok {
		return
	}
	token, password := b.str("token", true, false), b.str("password", true, false)
	if len(b.errs) > 0 {
		writeValidation(w, b.errs)
		return
	}
	if err := a.Service.ResetPassword(r.Context(), *token, *password); err != nil {
		writeError(w, r, a.log(), err, codeResetInvalidPassword)
		return
	}
	writeJSON(w, http.StatusOK, nil)
}

// verify: POST /auth/verify, {token}.
func (a *API) verify(w http.ResponseWriter, r *http.Request) {
	b, ok := a.body(w, r, true, "")
	if !ok {
		return
	}
	token := b.str("token", true, false)
	if len(b.errs) > 0 {
		writeValidation(w, b.errs)
		return
	}
	u, err := a.Service.Verify(r.Context(), *token)
	if err != nil {
		writeError(w, r, a.log(), err, "")
		return
	}
	writeJSON(w, http.StatusOK, ToUserJSON(u))
}

// trustedOrigin reports whether a request's Origin, if it has one, is
// this host or a host within cookieDomain. "null" (a sandboxed frame, a
// data: URL) is not trusted.
func trustedOrigin(r *http.Request, cookieDomain string) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	d := strings.TrimPrefix(strings.ToLower(cookieDomain), ".")
	h := strings.ToLower(u.Hostname())
	return d != "" && (h == d || strings.HasSuffix(h, "."+d))
}

// body reads a JSON body for a route, answering the failures that come
// before authentication itself: 413 for a body too large, 422 for one
// that is not JSON at all. Schema faults are left in the result's errs,
// to be answered after authentication, in FastAPI's order. embedded is
// for the routes whose fields are Body(embed=True) parameters;
// passwordCode is the route's *_INVALID_PASSWORD code.
func (a *API) body(w http.ResponseWriter, r *http.Request, embedded bool, passwordCode string) (*jsonBody, bool) {
	parse := parseJSONBody
	if embedded {
		parse = parseEmbeddedJSONBody
	}
	b, syntax, err := parse(w, r)
	if err != nil {
		writeError(w, r, a.log(), err, passwordCode)
		return nil, false
	}
	if syntax != nil {
		writeValidation(w, syntax)
		return nil, false
	}
	return b, true
}
