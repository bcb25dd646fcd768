package caddyauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// Defaults of the options of DESIGN §2.
const (
	DefaultPasswordMinLength = 8
	DefaultSessionLifetime   = 24 * time.Hour
	DefaultSessionIdle       = 2 * time.Hour
	DefaultCookieName        = "gatehouse_session"
)

// Options configure a Service. Zero values take the defaults above.
type Options struct {
	Store  store.Store
	Secret []byte // at least MinSecretLength bytes
	Cache  *SessionCache
	Hasher *Hasher

	PasswordMinLength      int
	PasswordMaxLength      int
	RequireVerified        bool
	RequireCurrentPassword bool
	RegistrationClosed     bool
	SessionLifetime        time.Duration // absolute; JWT exp too
	SessionIdle            time.Duration // sliding, cookie sessions; < 0 disables
	CookieName             string

	// Mail: the templates (nil: the embedded ones), token lifetimes, the
	// per-address limit (zero: DefaultMailLimit; Max < 0: none), and
	// whether registration mails a verification link.
	Templates           *Templates
	ResetTokenLifetime  time.Duration
	VerifyTokenLifetime time.Duration
	MailLimit           store.MailLimit
	VerifyOnRegister    bool
	// LoginLimit is the brute-force regulation; zero fields take
	// DefaultLoginLimit's.
	LoginLimit LoginLimit
	// OnMailQueued is called after a mail is queued (to wake the sender).
	OnMailQueued func()
	// OnEvent receives the events named Event* (nil: none are emitted).
	OnEvent func(ctx context.Context, name string, data map[string]any)

	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
	// Audit receives the audit log (see audit.go); nil: none is kept.
	Audit *slog.Logger
}

// Service is the account and session logic of one configuration.
type Service struct {
	store    store.Store
	cache    *SessionCache
	hasher   *Hasher
	keys     keys
	keyID    uint64 // identifies keys, without revealing them
	cookies  *securecookie.SecureCookie
	policy   Policy
	now      func() time.Time
	rand     io.Reader
	log      *slog.Logger
	auditLog *slog.Logger
	lifetime time.Duration
	idle     time.Duration

	templates        *Templates
	resetLifetime    time.Duration
	verifyLifetime   time.Duration
	mailLimit        store.MailLimit
	limit            LoginLimit
	verifyOnRegister bool
	onMailQueued     func()
	onEvent          func(ctx context.Context, name string, data map[string]any)

	requireVerified        bool
	requireCurrentPassword bool
	registrationClosed     bool
	cookieName             string

	purgeMu   sync.Mutex
	lastPurge time.Time
}

// New builds a Service.
func New(o Options) (*Service, error) {
	if o.Store == nil {
		return nil, errors.New("no store")
	}
	k, err := deriveKeys(o.Secret)
	if err != nil {
		return nil, err
	}
	s := &Service{
		store:                  o.Store,
		cache:                  o.Cache,
		hasher:                 o.Hasher,
		keys:                   k,
		policy:                 Policy{MinLength: o.PasswordMinLength, MaxLength: o.PasswordMaxLength},
		now:                    o.Now,
		rand:                   o.Rand,
		log:                    o.Logger,
		auditLog:               o.Audit,
		lifetime:               o.SessionLifetime,
		idle:                   o.SessionIdle,
		requireVerified:        o.RequireVerified,
		requireCurrentPassword: o.RequireCurrentPassword,
		registrationClosed:     o.RegistrationClosed,
		cookieName:             o.CookieName,
		templates:              o.Templates,
		resetLifetime:          o.ResetTokenLifetime,
		verifyLifetime:         o.VerifyTokenLifetime,
		mailLimit:              o.MailLimit,
		limit:                  o.LoginLimit.withDefaults(),
		verifyOnRegister:       o.VerifyOnRegister,
		onMailQueued:           o.OnMailQueued,
		onEvent:                o.OnEvent,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.auditLog == nil {
		s.auditLog = slog.New(slog.DiscardHandler)
	}
	if s.cache == nil {
		s.cache = NewSessionCache()
	}
	if s.hasher == nil {
		h, err := NewHasher(HasherConfig{}, s.rand)
		if err != nil {
			return nil, fmt.Errorf("password hasher: %w", err)
		}
		s.hasher = h
	}
	if s.policy.MinLength <= 0 {
		s.policy.MinLength = DefaultPasswordMinLength
	}
	if s.lifetime <= 0 {
		s.lifetime = DefaultSessionLifetime
	}
	if s.idle == 0 {
		s.idle = DefaultSessionIdle
	}
	if s.idle < 0 {
		s.idle = 0
	}
	if s.cookieName == "" {
		s.cookieName = DefaultCookieName
	}
	if s.templates == nil {
		if s.templates, err = LoadTemplates(""); err != nil {
			return nil, err
		}
	}
	if s.resetLifetime <= 0 {
		s.resetLifetime = DefaultResetTokenLifetime
	}
	if s.verifyLifetime <= 0 {
		s.verifyLifetime = DefaultVerifyTokenLifetime
	}
	if s.mailLimit == (store.MailLimit{}) {
		s.mailLimit = DefaultMailLimit
	}
	s.keyID = k.id()
	s.cookies = securecookie.New(k.cookieHash, k.cookieBlock)
	s.cookies.SetSerializer(securecookie.NopEncoder{})
	s.cookies.MaxAge(int(s.lifetime / time.Second))
	return s, nil
}

// CookieName is the name of the session cookie.
func (s *Service) CookieName() string { return s.cookieName }

// SessionLifetime is the absolute lifetime of a session.
func (s *Service) SessionLifetime() time.Duration { return s.lifetime }

// MinPasswordLength is the shortest password the policy accepts.
func (s *Service) MinPasswordLength() int { return s.policy.MinLength }

// RegistrationOpen reports whether anyone may sign up.
func (s *Service) RegistrationOpen() bool { return !s.registrationClosed }

// RequireVerified reports whether unverified users are refused.
func (s *Service) RequireVerified() bool { return s.requireVerified }

// storeErr turns a store's ErrNotFound into the core's and wraps anything
// else, so that callers see either a core error or a failure to fail
// closed on.
func storeErr(doing string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return fmt.Errorf("%s: %w", doing, err)
}
