package gatehouse

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	caddyauthn "github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/handlers"
	"github.com/gatehouse-caddy/gatehouse/store"
)

func init() {
	caddy.RegisterModule(App{})
	caddy.RegisterModule(Endpoints{})
	caddy.RegisterModule(Guard{})
	caddy.RegisterModule(Provider{})
}

// App is the `gatehouse` app: one per Caddy instance. It holds the
// options of the global `gatehouse` block and opens the store that the
// handlers of every site share. When no global block is given, handlers
// get an App with the defaults.
type App struct {
	// Where accounts and sessions are kept. Default: SQLite at
	// <caddy data dir>/gatehouse/gatehouse.db.
	Database *DatabaseConfig `json:"database,omitempty"`

	// The master key from which the signing and encryption keys are
	// derived (HKDF, one key per purpose); at least 32 bytes. Placeholders
	// such as {env.GATEHOUSE_SECRET} are expanded. When absent, a random
	// secret is generated once and kept in the database, so sessions
	// survive restarts and reloads.
	Secret string `json:"secret,omitempty"`

	// How mail (verification, password reset) is delivered. Default: none,
	// messages are logged.
	Mail *MailConfig `json:"mail,omitempty"`

	// Absolute base of links in mails, e.g. https://app.example.com.
	// Default: the origin of the request that caused the mail.
	BaseURL string `json:"base_url,omitempty"`

	// Shortest password accepted, in characters. Default: 8.
	PasswordMinLength int `json:"password_min_length,omitempty"`

	// Longest password accepted, in characters, at most 1024. Default: 1024.
	PasswordMaxLength int `json:"password_max_length,omitempty"`

	// The argon2id cost of password hashes, and how many may run and wait
	// at once (the bound on the memory hashing takes). Default: 64 MiB, 3
	// passes, 4 lanes; one hash per CPU, 32 waiting per CPU for up to 10s.
	PasswordHash *PasswordHashConfig `json:"password_hash,omitempty"`

	// Whether users must verify their email before they can log in.
	// Default: false.
	RequireVerified bool `json:"require_verified,omitempty"`

	// Whether PATCH /users/me needs `current_password` to change the
	// password or email. Default: true.
	RequireCurrentPassword *bool `json:"require_current_password,omitempty"`

	// Absolute lifetime of a session (and the exp of its JWT). Default: 24h.
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`

	// Sliding inactivity timeout of cookie sessions. Default: 2h.
	SessionIdle caddy.Duration `json:"session_idle,omitempty"`

	// Name of the session cookie. Default: gatehouse_session.
	CookieName string `json:"cookie_name,omitempty"`

	// Domain attribute of the session cookie, to share a login across
	// subdomains (e.g. example.com). Default: host-only.
	CookieDomain string `json:"cookie_domain,omitempty"`

	// "open" (default) or "closed": whether POST /auth/register creates
	// accounts. With "closed", accounts are made with `caddy gatehouse user add`.
	Registration string `json:"registration,omitempty"`

	// A directory whose files replace the embedded mail templates of the
	// same name: verify.subject.txt, verify.txt, verify.html,
	// reset.subject.txt, reset.txt, reset.html, locked.subject.txt,
	// locked.txt, locked.html. Default: the embedded ones.
	MailTemplates string `json:"mail_templates,omitempty"`

	// How long a password reset link works. Default: 1h.
	ResetTokenLifetime caddy.Duration `json:"reset_token_lifetime,omitempty"`

	// How long an email verification link works. Default: 24h.
	VerifyTokenLifetime caddy.Duration `json:"verify_token_lifetime,omitempty"`

	// At most this many mails to one address per window; further requests
	// still answer 202 but send nothing. Default: 3 per 1h.
	MailLimit *MailLimit `json:"mail_limit,omitempty"`

	// Whether registering mails a verification link. Default: true.
	VerifyOnRegister *bool `json:"verify_on_register,omitempty"`

	// The brute-force limits on logins, password resets and
	// verifications. Default: on, with the defaults of LoginLimit.
	LoginLimit *LoginLimit `json:"login_limit,omitempty"`

	service *caddyauth.Service
	poolKey string
	hashKey string
	logger  *zap.Logger
	mail    *mailDelivery
}

// LoginLimit is the brute-force regulation. Failed logins are counted
// per account and per client address (Caddy's resolved client IP: the
// peer, or what a proxy listed in the server's trusted_proxies reported;
// an IPv6 client by its /64) within Window. An account that reaches
// Account failures is locked for Ban: its logins fail as with a wrong
// password, even with the right one, and its owner gets a mail. An
// address that reaches IP failures is banned for Ban: its logins, resets
// and verifications get 429 with Retry-After. Bad reset and verify tokens
// count against the address. The counts are kept in the database, so
// they hold across restarts and across instances sharing it.
type LoginLimit struct {
	// Turns the limits off (not recommended).
	Off bool `json:"off,omitempty"`
	// Failed logins per account within the window. Default: 10.
	Account int `json:"account,omitempty"`
	// Failures per client address within the window. Default: 50.
	IP int `json:"ip,omitempty"`
	// The window failures are counted in. Default: 15m.
	Window caddy.Duration `json:"window,omitempty"`
	// How long a lock or a ban lasts. Default: 15m.
	Ban caddy.Duration `json:"ban,omitempty"`
}

func (l *LoginLimit) validate() error {
	if l == nil {
		return nil
	}
	if l.Account < 0 || l.IP < 0 || l.Window < 0 || l.Ban < 0 {
		return errors.New("login_limit: values must not be negative")
	}
	return nil
}

// core is the limit as the core takes it.
func (l *LoginLimit) core() caddyauth.LoginLimit {
	if l == nil {
		return caddyauth.LoginLimit{}
	}
	return caddyauth.LoginLimit{Off: l.Off, Account: l.Account, IP: l.IP,
		Window: time.Duration(l.Window), Ban: time.Duration(l.Ban)}
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "gatehouse",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision sets the defaults, opens (or shares) the store and builds the
// core service.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := a.resolve(); err != nil {
		return err
	}
	shared, key, err := openShared(a.Database)
	if err != nil {
		return err
	}
	a.poolKey = key
	fail := func(err error) error {
		_, _ = storePool.Delete(key)
		a.poolKey = ""
		if a.hashKey != "" {
			_, _ = hasherPool.Delete(a.hashKey)
			a.hashKey = ""
		}
		return err
	}
	hasher, err := a.openHasher()
	if err != nil {
		return fail(err)
	}
	if a.mail, err = newMailDelivery(a.Mail, shared.store, ctx.Slogger()); err != nil {
		return fail(err)
	}
	events, err := ctx.App("events")
	if err != nil {
		return fail(fmt.Errorf("loading events app: %w", err))
	}
	emitter := events.(*caddyevents.App)
	hooks := serviceHooks{
		onMailQueued: a.mail.sender.Wake,
		// Caddy's events, so that a config can react to accounts as
		// fastapi-users' on_after_* hooks would.
		onEvent: func(_ context.Context, name string, data map[string]any) {
			emitter.Emit(ctx, name, data)
		},
	}
	// The audit log has its own logger name, gatehouse.audit, so that a
	// `log` block can keep it apart (include gatehouse.audit).
	hooks.audit = slog.New(zapslog.NewHandler(a.logger.Named("audit").Core(), zapslog.WithName(a.logger.Name()+".audit")))
	svc, err := a.newService(ctx, shared.store, shared.cache, hasher, ctx.Slogger(), hooks)
	if err != nil {
		return fail(err)
	}
	a.mail.opener.open = svc.OpenMailBody
	a.service = svc
	return nil
}

// resolve expands placeholders and fills in defaults; it opens nothing,
// so that the CLI can use it too.
func (a *App) resolve() error {
	repl := caddy.NewReplacer()
	if a.Database == nil {
		a.Database = new(DatabaseConfig)
	}
	if err := a.Database.resolve(repl); err != nil {
		return err
	}
	var err error
	if a.Secret != "" {
		if a.Secret, err = repl.ReplaceOrErr(a.Secret, true, true); err != nil {
			return fmt.Errorf("secret: %w", err)
		}
		if len(a.Secret) < caddyauth.MinSecretLength {
			return fmt.Errorf("secret: must be at least %d bytes, got %d", caddyauth.MinSecretLength, len(a.Secret))
		}
	}
	if a.Registration == "" {
		a.Registration = "open"
	}
	// Placeholders ({env.SMTP_PASSWORD}, …) in the other strings.
	for _, field := range []*string{&a.BaseURL, &a.MailTemplates} {
		if *field, err = repl.ReplaceOrErr(*field, true, true); err != nil {
			return err
		}
	}
	if a.Mail != nil {
		for _, field := range []*string{&a.Mail.SMTP, &a.Mail.Dir, &a.Mail.From} {
			if *field, err = repl.ReplaceOrErr(*field, true, true); err != nil {
				return fmt.Errorf("mail: %w", err)
			}
		}
	}
	return nil
}

// Validate checks the configuration.
func (a *App) Validate() error {
	if a.Registration != "open" && a.Registration != "closed" {
		return fmt.Errorf("registration: %q is neither open nor closed", a.Registration)
	}
	if a.PasswordMinLength < 0 || a.PasswordMinLength > caddyauth.MaxPasswordLength {
		return fmt.Errorf("password_min_length: %d is out of range", a.PasswordMinLength)
	}
	if a.PasswordMaxLength < 0 || a.PasswordMaxLength > caddyauth.MaxPasswordLength ||
		a.PasswordMaxLength > 0 && a.PasswordMaxLength < max(a.PasswordMinLength, caddyauth.DefaultPasswordMinLength) {
		return fmt.Errorf("password_max_length: %d is out of range (from password_min_length to %d)", a.PasswordMaxLength, caddyauth.MaxPasswordLength)
	}
	if _, err := a.PasswordHash.hasherConfig(); err != nil {
		return err
	}
	if a.SessionLifetime < 0 || a.SessionIdle < 0 {
		return errors.New("session_lifetime and session_idle must not be negative")
	}
	if a.CookieName != "" && !validToken(a.CookieName) {
		return fmt.Errorf("cookie_name: %q is not a valid cookie name", a.CookieName)
	}
	if a.BaseURL != "" {
		u, err := url.Parse(a.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("base_url: %q is not an absolute http(s) URL", a.BaseURL)
		}
	}
	if a.ResetTokenLifetime < 0 || a.VerifyTokenLifetime < 0 {
		return errors.New("reset_token_lifetime and verify_token_lifetime must not be negative")
	}
	if err := a.MailLimit.validate(); err != nil {
		return err
	}
	if err := a.LoginLimit.validate(); err != nil {
		return err
	}
	return a.Mail.validate()
}

// newService builds the core on st with this config's options, and the
// secret from the config or, when absent, the one persisted in st. It is
// the one place where a config becomes a Service: Provision passes the
// pooled store, cache and hasher; the `caddy gatehouse` command passes the
// store it opened itself, so that both hash, check passwords and end
// sessions alike.
func (a *App) newService(ctx context.Context, st store.Store, cache *caddyauth.SessionCache, hasher *caddyauth.Hasher, log *slog.Logger, hooks serviceHooks) (*caddyauth.Service, error) {
	templates, err := caddyauth.LoadTemplates(a.MailTemplates)
	if err != nil {
		return nil, fmt.Errorf("mail_templates: %w", err)
	}
	secret := []byte(a.Secret)
	if len(secret) == 0 {
		// Generated once per database and kept there: a new key per start
		// would log everyone out on every restart, and instances sharing a
		// database must share the key.
		fresh := make([]byte, 32)
		if _, err := rand.Read(fresh); err != nil {
			return nil, fmt.Errorf("generating secret: %w", err)
		}
		var err error
		if secret, err = st.SettingOrInit(ctx, "secret", fresh); err != nil {
			return nil, fmt.Errorf("loading secret: %w", err)
		}
	}
	requireCurrent := a.RequireCurrentPassword == nil || *a.RequireCurrentPassword
	var limit store.MailLimit
	if a.MailLimit != nil {
		limit = store.MailLimit{Max: a.MailLimit.Max, Window: time.Duration(a.MailLimit.Window)}
	}
	return caddyauth.New(caddyauth.Options{
		Store:                  st,
		Secret:                 secret,
		Cache:                  cache,
		Hasher:                 hasher,
		PasswordMinLength:      a.PasswordMinLength,
		PasswordMaxLength:      a.PasswordMaxLength,
		RequireVerified:        a.RequireVerified,
		RequireCurrentPassword: requireCurrent,
		RegistrationClosed:     a.Registration == "closed",
		SessionLifetime:        time.Duration(a.SessionLifetime),
		SessionIdle:            time.Duration(a.SessionIdle),
		CookieName:             a.CookieName,
		Templates:              templates,
		ResetTokenLifetime:     time.Duration(a.ResetTokenLifetime),
		VerifyTokenLifetime:    time.Duration(a.VerifyTokenLifetime),
		MailLimit:              limit,
		LoginLimit:             a.LoginLimit.core(),
		VerifyOnRegister:       a.VerifyOnRegister == nil || *a.VerifyOnRegister,
		OnMailQueued:           hooks.onMailQueued,
		OnEvent:                hooks.onEvent,
		Logger:                 log,
		Audit:                  hooks.audit,
	})
}

// serviceHooks connect the core to the server around it; the CLI has
// none.
type serviceHooks struct {
	onMailQueued func()
	onEvent      func(ctx context.Context, name string, data map[string]any)
	audit        *slog.Logger
}

// Start starts delivering the outbox's mail.
func (a *App) Start() error {
	a.mail.start()
	return nil
}

// Stop stops delivering mail; what is not delivered stays in the outbox
// for the next start (or another instance). Cleanup releases the store.
func (a *App) Stop() error {
	a.mail.stop()
	return nil
}

// Cleanup releases this config's hold on the shared store and hasher;
// the last config to let go of the store closes it.
func (a *App) Cleanup() error {
	if a.hashKey != "" {
		_, _ = hasherPool.Delete(a.hashKey)
	}
	if a.poolKey == "" {
		return nil
	}
	_, err := storePool.Delete(a.poolKey)
	return err
}

// openTimeout bounds opening the store at a config load: connecting (each
// attempt is bounded by connect_timeout too) and bringing its schema up
// to date, which may wait for another instance doing the same.
const openTimeout = time.Minute

// storePool shares one open store per database between the configs that
// use it. During a reload the new config opens the store before the old
// one lets go of it, so the store (and the session cache) stays open and
// no request or session is dropped.
var storePool = caddy.NewUsagePool()

// sharedStore is what is pooled: the store and the session cache that
// sits in front of it. (The password hasher has its own pool, hasherPool,
// keyed by its settings.)
type sharedStore struct {
	store store.Store
	cache *caddyauth.SessionCache
}

// Destruct closes the store when no config uses it any longer.
func (s *sharedStore) Destruct() error { return s.store.Close() }

func openShared(db *DatabaseConfig) (*sharedStore, string, error) {
	key := db.key()
	v, _, err := storePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		// The store outlives the config that opens it (it is shared
		// across reloads), so the context bounds the opening only: the
		// connection, and the wait for another instance's migration.
		ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
		defer cancel()
		st, err := db.open(ctx)
		if err != nil {
			return nil, err
		}
		return &sharedStore{store: st, cache: caddyauth.NewSessionCache()}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(*sharedStore), key, nil
}

// validToken: an RFC 7230 token, as cookie and header names must be.
func validToken(name string) bool {
	for _, c := range name {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return name != ""
}

// appFrom returns the gatehouse app of ctx, with the defaults if the
// config has no global gatehouse block.
func appFrom(ctx caddy.Context) (*App, error) {
	v, err := ctx.App("gatehouse")
	if err != nil {
		return nil, fmt.Errorf("loading gatehouse app: %w", err)
	}
	return v.(*App), nil
}

// Endpoints is the `gatehouse_endpoints` handler: it serves the account
// API (register, login, logout, /users) under its two prefixes and passes
// every other request on. Every path under the prefixes is answered here
// (unknown ones with 404), so none reaches the upstream.
type Endpoints struct {
	// Prefix of the /auth routes. Default: /auth.
	APIPrefix string `json:"api_prefix,omitempty"`
	// Prefix of the /users routes. Default: /users.
	UsersPrefix string `json:"users_prefix,omitempty"`

	// The site's name on the login and account pages. Default: Gatehouse.
	Title string `json:"title,omitempty"`

	// A logo shown on the pages: a path on this site or an https URL.
	LogoURL string `json:"logo_url,omitempty"`

	// Colour of the pages' buttons and links, #rgb or #rrggbb.
	// Default: #1f6feb.
	AccentColor string `json:"accent_color,omitempty"`

	// A directory whose files replace the embedded page templates of the
	// same name (layout.html, login.html, account.html, …).
	PageTemplates string `json:"page_templates,omitempty"`

	api *handlers.API
}

// CaddyModule returns the Caddy module information.
func (Endpoints) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.gatehouse_endpoints",
		New: func() caddy.Module { return new(Endpoints) },
	}
}

// Provision sets the defaults and connects to the app.
func (e *Endpoints) Provision(ctx caddy.Context) error {
	if e.APIPrefix == "" {
		e.APIPrefix = handlers.DefaultAPIPrefix
	}
	if e.UsersPrefix == "" {
		e.UsersPrefix = handlers.DefaultUsersPrefix
	}
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	branding := handlers.Branding{Title: e.Title, LogoURL: e.LogoURL, Accent: e.AccentColor}
	pages, err := handlers.LoadPages(e.PageTemplates, branding, app.CookieDomain)
	if err != nil {
		return fmt.Errorf("pages: %w", err)
	}
	e.api = &handlers.API{
		Service:      app.service,
		APIPrefix:    e.APIPrefix,
		UsersPrefix:  e.UsersPrefix,
		CookieDomain: app.CookieDomain,
		BaseURL:      app.BaseURL,
		Branding:     branding,
		Pages:        pages,
		ClientIP:     clientIP,
		Logger:       ctx.Slogger(),
	}
	return nil
}

// Validate checks the prefixes.
func (e *Endpoints) Validate() error {
	for _, p := range []string{e.APIPrefix, e.UsersPrefix} {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("prefix %q must start with /", p)
		}
	}
	if strings.TrimSuffix(e.APIPrefix, "/") == strings.TrimSuffix(e.UsersPrefix, "/") {
		return errors.New("api_prefix and users_prefix must differ")
	}
	if e.LogoURL != "" {
		u, err := url.Parse(e.LogoURL)
		if err != nil || strings.ContainsAny(e.LogoURL, "\\ \t\r\n") || strings.HasPrefix(e.LogoURL, "//") ||
			!(u.Scheme == "https" && u.Host != "" || u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/")) {
			return fmt.Errorf("logo_url %q: want a path on this site or an https URL", e.LogoURL)
		}
	}
	return nil
}

// ServeHTTP serves the API or passes the request on, noting its API
// prefix for the guards after it (their default login URL).
func (e *Endpoints) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if e.api.ServeAPI(w, r) {
		return nil
	}
	caddyhttp.SetVar(r.Context(), apiPrefixVar, e.APIPrefix)
	return next.ServeHTTP(w, r)
}

// apiPrefixVar is the request variable where the endpoints leave their
// API prefix.
const apiPrefixVar = "gatehouse.api_prefix"

// apiPrefixOf is the API prefix of the endpoints that passed r on, or ""
// when none did (a site guarded without endpoints of its own).
func apiPrefixOf(r *http.Request) string {
	p, _ := caddyhttp.GetVar(r.Context(), apiPrefixVar).(string)
	return p
}

// clientIP is the client address as Caddy resolved it: the peer, or the
// address a trusted proxy reported (trusted_proxies), never a header an
// untrusted client sent.
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// Guard is the `gatehouse_guard` handler: a request passes only with a
// valid session (or on an `allow`ed path), and then carries the user's
// identity in headers that only Gatehouse sets.
//
// It sets the placeholders {http.auth.user.id}, {http.auth.user.email},
// {http.auth.user.name}, {http.auth.user.roles} and
// {http.auth.user.verified} when a user is known.
type Guard struct {
	// Path patterns (Caddy's path matcher) that need no session. Identity
	// is still injected when a valid session is present, and spoofed
	// identity headers are still stripped.
	Allow []string `json:"allow,omitempty"`

	// Access rules; all must hold (allowed paths skip them).
	Require *Requirements `json:"require,omitempty"`

	// Identity headers by field (id, email, name, roles, verified); a field
	// named here is sent under these names instead of its defaults.
	Headers map[string][]string `json:"headers,omitempty"`

	// Where browsers without a session are sent. Default: <api_prefix>/login
	// of the gatehouse_endpoints before this guard on the request, or
	// /auth/login when there are none.
	LoginURL string `json:"login_url,omitempty"`

	allow caddyhttp.MatchPath
	guard *handlers.Guard
}

// Requirements are a guard's access rules.
type Requirements struct {
	// Only verified users pass.
	Verified bool `json:"verified,omitempty"`
	// Only superusers pass.
	Superuser bool `json:"superuser,omitempty"`
	// Each list: the user needs at least one of its roles.
	Roles [][]string `json:"roles,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Guard) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.gatehouse_guard",
		New: func() caddy.Module { return new(Guard) },
	}
}

// Provision builds the path matcher and the guard.
func (g *Guard) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	var public func(*http.Request) bool
	if len(g.Allow) > 0 {
		// Caddy's own path matcher, so that //admin, %61dmin, case and dot
		// segments are normalised exactly as Caddy's routing does.
		g.allow = caddyhttp.MatchPath(g.Allow)
		if err := g.allow.Provision(ctx); err != nil {
			return fmt.Errorf("allow: %w", err)
		}
		public = func(r *http.Request) bool {
			ok, err := g.allow.MatchWithError(r)
			return err == nil && ok
		}
	}
	g.guard = &handlers.Guard{
		Service:     app.service,
		Public:      public,
		Require:     g.Require.core(),
		Headers:     handlers.NewHeaderSet(g.Headers),
		LoginURL:    g.LoginURL,
		APIPrefix:   apiPrefixOf,
		OriginalURL: originalURL,
		Logger:      ctx.Slogger(),
	}
	return nil
}

// Validate checks the rules and header names.
func (g *Guard) Validate() error {
	if err := g.Require.validate(); err != nil {
		return err
	}
	return validateHeaders(g.Headers)
}

func (r *Requirements) core() caddyauth.Requirements {
	if r == nil {
		return caddyauth.Requirements{}
	}
	return caddyauth.Requirements{Verified: r.Verified, Superuser: r.Superuser, AnyRoles: r.Roles}
}

func (r *Requirements) validate() error {
	if r == nil {
		return nil
	}
	for _, roles := range r.Roles {
		if len(roles) == 0 {
			return errors.New("require role: no role named")
		}
		for _, role := range roles {
			if !caddyauth.ValidRole(role) {
				return fmt.Errorf("require role: %q is not a valid role name", role)
			}
		}
	}
	return nil
}

func validateHeaders(headers map[string][]string) error {
	for field, names := range headers {
		if !slices.Contains(handlers.Fields, field) {
			return fmt.Errorf("header: unknown field %q (want one of %s)", field, strings.Join(handlers.Fields, ", "))
		}
		for _, n := range names {
			if !validToken(n) {
				return fmt.Errorf("header: %q is not a valid header name", n)
			}
			if reservedHeaders[http.CanonicalHeaderKey(n)] {
				return fmt.Errorf("header: %q carries credentials or framing and cannot be an identity header", n)
			}
		}
	}
	return nil
}

// reservedHeaders cannot be identity headers: the guard strips identity
// headers before it reads credentials, and sets them on the request it
// forwards, so these would lose the credential or break the request.
var reservedHeaders = map[string]bool{
	"Authorization": true, "Cookie": true, "Host": true, "Content-Length": true, "Content-Type": true,
	"Content-Encoding": true, "Transfer-Encoding": true, "Connection": true, "Keep-Alive": true, "Te": true,
	"Trailer": true, "Upgrade": true, "Proxy-Authorization": true, "Proxy-Connection": true, "Expect": true,
}

// ServeHTTP applies the guard.
func (g *Guard) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	r, p := g.guard.ServeGuard(w, r)
	if r == nil {
		return nil
	}
	if p != nil {
		setPlaceholders(r, p)
	}
	return next.ServeHTTP(w, r)
}

// setPlaceholders exposes the user to the rest of the config, and to
// Caddy's access log (which records {http.auth.user.id}).
//
// Every field is set as a static value, overwriting whatever was there:
// static values are consulted before any provider, and Caddy's own
// authentication handler writes http.auth.user.<key> statically at request
// time, so a lazy provider for some fields (cheaper, tried once) would let
// another authenticator's values stand next to the guard's user id.
func setPlaceholders(r *http.Request, p *caddyauth.Principal) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	repl.Set("http.auth.user.id", p.UserID)
	repl.Set("http.auth.user.email", p.Email)
	repl.Set("http.auth.user.name", p.FullName)
	repl.Set("http.auth.user.roles", handlers.FieldValue(p, handlers.FieldRoles))
	repl.Set("http.auth.user.verified", handlers.FieldValue(p, handlers.FieldVerified))
}

// originalURL is the absolute URL the client asked for, before any
// rewrite in the config.
func originalURL(r *http.Request) string {
	or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	if !ok {
		or = *r
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + or.URL.RequestURI()
}

// Provider is the `gatehouse` provider of Caddy's authentication handler
// (http.authentication.providers.gatehouse), for configs that use that
// handler rather than gatehouse_guard. It makes the same decision as the
// guard, except that every failure is Caddy's 401.
type Provider struct {
	// Access rules; all must hold.
	Require *Requirements `json:"require,omitempty"`
	// Identity headers by field, as for the guard.
	Headers map[string][]string `json:"headers,omitempty"`

	guard *handlers.Guard
}

// CaddyModule returns the Caddy module information.
func (Provider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.authentication.providers.gatehouse",
		New: func() caddy.Module { return new(Provider) },
	}
}

// Provision connects to the app.
func (p *Provider) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	p.guard = &handlers.Guard{
		Service: app.service,
		Require: p.Require.core(),
		Headers: handlers.NewHeaderSet(p.Headers),
		Logger:  ctx.Slogger(),
	}
	return nil
}

// Validate checks the rules and header names.
func (p *Provider) Validate() error {
	if err := p.Require.validate(); err != nil {
		return err
	}
	return validateHeaders(p.Headers)
}

// Authenticate implements caddyauth.Authenticator. The user's email, name,
// roles and verified state become {http.auth.user.*} placeholders.
func (p *Provider) Authenticate(_ http.ResponseWriter, r *http.Request) (caddyauthn.User, bool, error) {
	outcome, principal := p.guard.Decide(r)
	switch outcome {
	case handlers.Pass:
		if principal == nil {
			return caddyauthn.User{}, false, nil
		}
		return caddyauthn.User{ID: principal.UserID, Metadata: map[string]string{
			"email":    principal.Email,
			"name":     principal.FullName,
			"roles":    handlers.FieldValue(principal, handlers.FieldRoles),
			"verified": handlers.FieldValue(principal, handlers.FieldVerified),
		}}, true, nil
	case handlers.Failed, handlers.Unavailable:
		return caddyauthn.User{}, false, errors.New("gatehouse: store unavailable")
	default:
		return caddyauthn.User{}, false, nil
	}
}

// Interface guards
var (
	_ caddy.App                   = (*App)(nil)
	_ caddy.Provisioner           = (*App)(nil)
	_ caddy.Validator             = (*App)(nil)
	_ caddy.CleanerUpper          = (*App)(nil)
	_ caddy.Provisioner           = (*Endpoints)(nil)
	_ caddy.Validator             = (*Endpoints)(nil)
	_ caddyhttp.MiddlewareHandler = (*Endpoints)(nil)
	_ caddy.Provisioner           = (*Guard)(nil)
	_ caddy.Validator             = (*Guard)(nil)
	_ caddyhttp.MiddlewareHandler = (*Guard)(nil)
	_ caddy.Provisioner           = (*Provider)(nil)
	_ caddy.Validator             = (*Provider)(nil)
	_ caddyauthn.Authenticator    = (*Provider)(nil)
)
