package caddyauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// JWTAudience is the audience of access tokens, fastapi-users' own, so
// that a front end or a backend that checks it works unchanged.
const JWTAudience = "fastapi-users:auth"

// maxTouchInterval is how stale a session's stored last-seen time may get
// before a use writes it again; it bounds writes on the guard's path to
// one per session per interval. Short idle timeouts touch more often (see
// Service.touchInterval).
const maxTouchInterval = time.Minute

// touchTimeout bounds the wait for recording a session's use.
const touchTimeout = 500 * time.Millisecond

// purgeInterval is how often logins sweep expired sessions out.
const purgeInterval = 10 * time.Minute

// Limits on what is recorded of the client.
const (
	maxUserAgent = 512
	maxIP        = 64
)

// MaxCredentialLength bounds a credential as presented, in bytes: an
// access token is a few hundred, a session cookie at most 4096
// (securecookie's own bound). A longer one is refused unread.
const MaxCredentialLength = 4096

// Principal is the verified identity behind a request: a snapshot of the
// user taken when the credential was last checked against the store.
// It is shared between requests and must not be modified.
type Principal struct {
	UserID      string
	Email       string
	FullName    string
	Roles       []string
	IsActive    bool
	IsVerified  bool
	IsSuperuser bool
	SessionID   string
	Transport   store.Transport
}

// HasRole reports whether the user has the role.
func (p *Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// ClientInfo is what is recorded of the client that logs in.
type ClientInfo struct {
	UserAgent string
	IP        string
}

// LoginResult is a new session and the credential that proves it: a JWT
// for the bearer transport, a cookie value for the cookie transport.
type LoginResult struct {
	Credential string
	User       *store.User
	Session    *store.Session
}

// Login checks a username (the email) and password and opens a new
// session. It fails with ErrBadCredentials for an unknown user, a wrong
// password, an inactive user and a locked account alike, after the same
// amount of hashing work, and with ErrNotVerified when require_verified is
// on and the password was right. A client address banned for too many
// failures gets a RetryError (429) before any hashing.
func (s *Service) Login(ctx context.Context, username, password string, t store.Transport, ci ClientInfo) (*LoginResult, error) {
	now := s.now()
	addrKey := s.addressKey(ci.IP)
	if err := s.checkAddress(ctx, addrKey, now); err != nil {
		s.audit(ctx, AuditLogin, OutcomeBanned, "", ci.IP)
		return nil, err
	}
	accountKey := s.accountKey(username)
	locked, err := s.accountLocked(ctx, accountKey, now)
	if err != nil {
		return nil, err
	}
	u, err := s.store.UserByEmail(ctx, strings.TrimSpace(username))
	if errors.Is(err, store.ErrNotFound) {
		// Hash anyway: an unknown account must cost what a known one
		// costs, or response times would tell which emails exist.
		if err := s.hasher.VerifyDummy(ctx, password); err != nil {
			s.audit(ctx, AuditLogin, OutcomeBusy, "", ci.IP)
			return nil, err
		}
		s.audit(ctx, AuditLogin, OutcomeBadCredentials, "", ci.IP)
		if err := s.loginFailed(ctx, nil, accountKey, addrKey, ci.IP, now); err != nil {
			return nil, err
		}
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("looking up user: %w", err)
	}
	// A locked account is checked like any other, for the time it takes
	// must not tell that it is locked (nor, by that, that it exists).
	ok, rehash, err := s.hasher.Verify(ctx, password, u.HashedPassword)
	if err != nil {
		s.audit(ctx, AuditLogin, OutcomeBusy, u.ID, ci.IP)
		return nil, err
	}
	if locked || !ok || !u.IsActive {
		// While the lock lasts even the right password fails: otherwise
		// the guessing would go on, and the answer to the right guess
		// would stand out. A wrong one still counts against the address
		// (not against the account: a lock is not extended, so its owner
		// gets in once it ends).
		outcome := OutcomeBadCredentials
		if locked {
			outcome = OutcomeLocked
		}
		s.audit(ctx, AuditLogin, outcome, u.ID, ci.IP)
		if !locked || !ok {
			if err := s.loginFailed(ctx, u, accountKey, addrKey, ci.IP, now); err != nil {
				return nil, err
			}
		}
		return nil, ErrBadCredentials
	}
	if rehash {
		s.upgradeHash(ctx, u, password)
	}
	if s.requireVerified && !u.IsVerified {
		s.audit(ctx, AuditLogin, OutcomeNotVerified, u.ID, ci.IP)
		return nil, ErrNotVerified
	}
	if !s.limit.Off {
		// The failures of the account's owner before this success no
		// longer count. The address's do: a client with one account of
		// its own must not be able to wipe its count by logging in.
		if err := s.store.ClearFailures(ctx, accountKey, now.UTC()); err != nil {
			return nil, fmt.Errorf("clearing failures: %w", err)
		}
	}
	s.maybePurge(ctx)
	res, err := s.openSession(ctx, u, t, ci)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, AuditLogin, OutcomeSuccess, u.ID, ci.IP, slog.String("transport", string(t)),
		slog.String("session", shortID(res.Session.ID)))
	return res, nil
}

// upgradeHash replaces a bcrypt hash, or an argon2id hash with other
// parameters, by one with the current parameters. It is best effort: the
// login succeeds whether or not the new hash is stored.
func (s *Service) upgradeHash(ctx context.Context, u *store.User, password string) {
	h, err := s.hasher.Hash(ctx, password)
	if err != nil {
		s.log.WarnContext(ctx, "re-hashing password", "user_id", u.ID, "error", err)
		return
	}
	// Compare and swap: if the password changed since it was read (a
	// reset, an admin), the new hash of the old password must not undo it.
	old := u.HashedPassword
	updated, err := s.store.UpdateUser(ctx, u.ID, func(cur *store.User) error {
		if cur.HashedPassword != old {
			return errPasswordChanged
		}
		cur.HashedPassword = h
		cur.UpdatedAt = s.now().UTC().Truncate(time.Microsecond)
		return nil
	})
	if err != nil {
		if !errors.Is(err, errPasswordChanged) {
			s.log.WarnContext(ctx, "storing re-hashed password", "user_id", u.ID, "error", err)
		}
		return
	}
	*u = *updated
}

var errPasswordChanged = errors.New("password changed meanwhile")

// accessClaims are the claims of a bearer token: fastapi-users' sub, aud
// and exp, the session id as jti, and a random nonce that makes the token
// impossible to rebuild from the store (see openSession). Verification
// does not require the nonce: the token must match its stored digest
// anyway, and tokens issued before it existed stay valid until they
// expire.
type accessClaims struct {
	jwt.RegisteredClaims
	Nonce string `json:"nonce"`
}

// openSession stores a new session for u and returns its credential.
// Every login gets a fresh random id and token: a session id chosen
// before login (fixation) never becomes a logged-in one.
//
// The store keeps the SHA-256 digest of the token, never the token. For
// the bearer transport the token is the JWT itself (whose jti is the
// session id); for the cookie transport it is 32 random bytes, which the
// cookie carries encrypted and authenticated.
func (s *Service) openSession(ctx context.Context, u *store.User, t store.Transport, ci ClientInfo) (*LoginResult, error) {
	var id [16]byte
	if _, err := io.ReadFull(s.rand, id[:]); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	now := s.now().UTC().Truncate(time.Second)
	sess := &store.Session{
		ID:         hex.EncodeToString(id[:]),
		UserID:     u.ID,
		Transport:  t,
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  now.Add(s.lifetime),
		UserAgent:  clean(ci.UserAgent, maxUserAgent),
		IP:         clean(ci.IP, maxIP),
	}
	var credential, token string
	switch t {
	case store.TransportBearer:
		// Every other claim can be read off the session row, so without
		// the nonce whoever holds a copy of the database and the secret
		// (kept in the same file by default) could sign the very token
		// whose digest is stored, and use it. The nonce is never stored:
		// the digest alone does not give it back.
		var nonce [16]byte
		if _, err := io.ReadFull(s.rand, nonce[:]); err != nil {
			return nil, fmt.Errorf("reading randomness: %w", err)
		}
		claims := accessClaims{
			RegisteredClaims: jwt.RegisteredClaims{
				Subject:   u.ID,
				Audience:  jwt.ClaimStrings{JWTAudience},
				ExpiresAt: jwt.NewNumericDate(sess.ExpiresAt),
				IssuedAt:  jwt.NewNumericDate(now),
				ID:        sess.ID,
			},
			Nonce: base64.RawURLEncoding.EncodeToString(nonce[:]),
		}
		signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.keys.jwt)
		if err != nil {
			return nil, fmt.Errorf("signing access token: %w", err)
		}
		credential, token = signed, signed
	case store.TransportCookie:
		var raw [32]byte
		if _, err := io.ReadFull(s.rand, raw[:]); err != nil {
			return nil, fmt.Errorf("reading randomness: %w", err)
		}
		token = base64.RawURLEncoding.EncodeToString(raw[:])
		encoded, err := s.cookies.Encode(s.cookieName, []byte(token))
		if err != nil {
			return nil, fmt.Errorf("encoding cookie: %w", err)
		}
		credential = encoded
	default:
		return nil, fmt.Errorf("unknown transport %q", t)
	}
	digest := sha256.Sum256([]byte(token))
	sess.TokenDigest = digest[:]
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return nil, storeErr("storing session", err)
	}
	return &LoginResult{Credential: credential, User: u, Session: sess}, nil
}

// touchInterval is how often a session in use has its last-seen time
// written: once a minute, or four times per idle period when that is
// shorter.
func (s *Service) touchInterval() time.Duration {
	if s.idle > 0 && s.idle/4 < maxTouchInterval {
		return s.idle / 4
	}
	return maxTouchInterval
}

// AuthenticateBearer resolves an access token (the JWT of the bearer
// transport) to its principal, or fails with ErrUnauthenticated. Any other
// error is a failure of the store, on which the caller must deny.
func (s *Service) AuthenticateBearer(ctx context.Context, token string) (*Principal, error) {
	return s.authenticate(ctx, store.TransportBearer, token)
}

// AuthenticateCookie resolves a session cookie's value to its principal,
// or fails as AuthenticateBearer does.
func (s *Service) AuthenticateCookie(ctx context.Context, value string) (*Principal, error) {
	return s.authenticate(ctx, store.TransportCookie, value)
}

func (s *Service) authenticate(ctx context.Context, t store.Transport, credential string) (*Principal, error) {
	if credential == "" || len(credential) > MaxCredentialLength {
		return nil, ErrUnauthenticated
	}
	now := s.now()
	e := s.cache.get(credential)
	// The cache is shared by every configuration on the store; an entry
	// verified with other keys (the secret changed at a reload) does not
	// count.
	if e != nil && e.principal.Transport == t && e.keyID == s.keyID && now.Sub(e.fetched) < cacheTTL {
		if !now.Before(e.validUntil) || e.idle > 0 && now.Sub(time.UnixMicro(e.lastSeen.Load())) > e.idle {
			s.cache.remove(credential)
			return nil, ErrUnauthenticated
		}
		e.lastSeen.Store(now.UnixMicro())
		return e.principal, nil
	}
	// A miss, or an entry older than cacheTTL: verify from scratch.
	began := s.cache.begin()
	var (
		token      string
		validUntil time.Time
		subject    string
		sessionID  string
	)
	switch t {
	case store.TransportBearer:
		claims, err := s.parseJWT(credential)
		if err != nil {
			return nil, ErrUnauthenticated
		}
		token, subject, sessionID, validUntil = credential, claims.Subject, claims.ID, claims.ExpiresAt.Time
	case store.TransportCookie:
		// The value exactly as issued: securecookie's base64 (padded,
		// URL-safe) leaves the low bits of a last character free, and
		// decodes a value that differs there to the same session. Only
		// the canonical encoding is one.
		if _, err := base64.URLEncoding.Strict().DecodeString(credential); err != nil {
			return nil, ErrUnauthenticated
		}
		var raw []byte
		if err := s.cookies.Decode(s.cookieName, credential, &raw); err != nil {
			return nil, ErrUnauthenticated
		}
		token = string(raw)
	}
	if token == "" {
		return nil, ErrUnauthenticated
	}
	digest := sha256.Sum256([]byte(token))
	sess, u, err := s.store.SessionByDigest(ctx, digest[:])
	if errors.Is(err, store.ErrNotFound) {
		s.cache.remove(credential)
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("looking up session: %w", err)
	}
	if sess.Transport != t || subject != "" && subject != u.ID || sessionID != "" && sessionID != sess.ID || !u.IsActive {
		return nil, ErrUnauthenticated
	}
	if validUntil.IsZero() || sess.ExpiresAt.Before(validUntil) {
		validUntil = sess.ExpiresAt
	}
	if !now.Before(validUntil) {
		return nil, ErrUnauthenticated
	}
	var idle time.Duration
	lastSeen := sess.LastSeenAt
	if t == store.TransportCookie {
		idle = s.idle
		if e != nil {
			if mem := time.UnixMicro(e.lastSeen.Load()); mem.After(lastSeen) {
				lastSeen = mem
			}
		}
	}
	// Without a cache entry, the last use known is the stored one, which
	// lags the real last use by up to one touch interval plus one cache
	// period (uses served from the cache are written on a later miss
	// only). The check then allows that much, so that a session is never
	// ended before its idle time, and at most that lag after it. With an
	// entry, this process saw the latest uses itself: the check is exact.
	slack := s.touchInterval() + cacheTTL
	if e != nil {
		slack = 0
	}
	if idle > 0 && now.Sub(lastSeen) > idle+slack {
		s.cache.remove(credential)
		if err := s.store.DeleteSession(ctx, sess.UserID, sess.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.WarnContext(ctx, "removing idle session", "session", shortID(sess.ID), "error", err)
		}
		return nil, ErrUnauthenticated
	}
	if now.Sub(sess.LastSeenAt) >= s.touchInterval() {
		// Recording the use is not part of the decision: if it fails the
		// request still passes, and the next miss tries again. It may not
		// hold the request long either, should another process be holding
		// the database's write lock.
		tctx, cancel := context.WithTimeout(ctx, touchTimeout)
		err := s.store.TouchSession(tctx, sess.ID, now.UTC())
		cancel()
		if err != nil {
			s.log.WarnContext(ctx, "recording session use", "session", shortID(sess.ID), "error", err)
		}
	}
	p := principalOf(u, sess)
	ne := &cacheEntry{keyID: s.keyID, principal: p, fetched: now, validUntil: validUntil, idle: idle}
	ne.lastSeen.Store(now.UnixMicro())
	s.cache.put(credential, ne, began, now)
	return p, nil
}

func principalOf(u *store.User, sess *store.Session) *Principal {
	return &Principal{
		UserID:      u.ID,
		Email:       u.Email,
		FullName:    u.FullName,
		Roles:       slices.Clone(u.Roles),
		IsActive:    u.IsActive,
		IsVerified:  u.IsVerified,
		IsSuperuser: u.IsSuperuser,
		SessionID:   sess.ID,
		Transport:   sess.Transport,
	}
}

// parseJWT checks an access token's signature, algorithm, audience and
// expiry. Only HS256 is accepted: a token that names another algorithm,
// "none" included, is refused before any key is used.
func (s *Service) parseJWT(token string) (*jwt.RegisteredClaims, error) {
	claims := new(jwt.RegisteredClaims)
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return s.keys.jwt, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(JWTAudience),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now),
	)
	if err != nil {
		return nil, err
	}
	if claims.ID == "" || claims.Subject == "" {
		return nil, errors.New("access token without jti or sub")
	}
	return claims, nil
}

// IsOwnBearerToken reports whether token is, or claims to be, one of
// Gatehouse's access tokens: signed with this installation's key (valid or
// not otherwise: expired, revoked), or naming Gatehouse's audience
// whatever its signature (a damaged or forged copy). The guard strips such
// an Authorization header before the request goes upstream, so that no
// version of a user's token ever reaches the application.
func (s *Service) IsOwnBearerToken(token string) bool {
	_, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return s.keys.jwt, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithoutClaimsValidation(),
	)
	if err == nil {
		return true
	}
	// Otherwise the claims decide, from whichever segment holds them: a
	// parse of the whole token would want the header and the signature to
	// decode too, and a copy damaged there (a byte of the signature
	// changed, a dot added) is still the user's token to anyone who tries
	// the few values that byte can take.
	for seg := range strings.SplitSeq(token, ".") {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
		var claims jwt.RegisteredClaims
		if err == nil && json.Unmarshal(raw, &claims) == nil && slices.Contains(claims.Audience, JWTAudience) {
			return true
		}
	}
	return false
}

// Logout ends the session behind p. The cache forgets it at once, so the
// credential is refused from the next request on. A session gone already
// (a concurrent logout) counts as logged out.
func (s *Service) Logout(ctx context.Context, p *Principal) error {
	err := s.revokeSession(ctx, p.UserID, p.SessionID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("deleting session: %w", err)
	}
	s.audit(actingAs(ctx, p), AuditLogout, OutcomeSuccess, p.UserID, clientFrom(ctx).IP,
		slog.String("session", shortID(p.SessionID)), slog.String("transport", string(p.Transport)))
	return nil
}

// RevokeSession ends one session of a user on request (the account page's
// "log out" of one device); ErrNotFound if the user has no such session.
func (s *Service) RevokeSession(ctx context.Context, userID, sessionID string) error {
	err := s.revokeSession(ctx, userID, sessionID)
	switch {
	case err == nil:
		s.audit(ctx, AuditSessionRevoke, OutcomeSuccess, userID, clientFrom(ctx).IP, slog.String("session", shortID(sessionID)))
	case errors.Is(err, ErrNotFound):
		// The id came from the client: only as much as shortID keeps is
		// logged, without control characters, whatever it was.
		s.audit(ctx, AuditSessionRevoke, OutcomeNotFound, userID, clientFrom(ctx).IP, slog.String("session", clean(sessionID, 8)))
	}
	return err
}

// revokeSession is RevokeSession without an audit entry, for the callers
// that write their own.
func (s *Service) revokeSession(ctx context.Context, userID, sessionID string) error {
	// Forget the session before the delete, so this process stops
	// accepting it at once, and again after it, so that a lookup that
	// read the row just before the delete is not cached (see
	// SessionCache.drops).
	s.cache.dropSession(sessionID)
	defer s.cache.dropSession(sessionID)
	if err := s.store.DeleteSession(ctx, userID, sessionID); err != nil {
		return storeErr("deleting session", err)
	}
	return nil
}

// RevokeUserSessions ends every session of a user but keep ("" for none)
// on request (log out everywhere, `caddy gatehouse sessions revoke`) and
// returns how many ended.
func (s *Service) RevokeUserSessions(ctx context.Context, userID, keep string) (int, error) {
	n, err := s.revokeUserSessions(ctx, userID, keep)
	if err != nil {
		return 0, err
	}
	attrs := []slog.Attr{slog.Int("sessions_ended", n)}
	if keep != "" {
		attrs = append(attrs, slog.String("kept_session", shortID(keep)))
	}
	s.audit(ctx, AuditSessionsRevokeAll, OutcomeSuccess, userID, clientFrom(ctx).IP, attrs...)
	return n, nil
}

// revokeUserSessions is RevokeUserSessions without an audit entry, for
// changes that end sessions by implication and write their own entry.
func (s *Service) revokeUserSessions(ctx context.Context, userID, keep string) (int, error) {
	// As in revokeSession: forget before and after the delete.
	s.cache.dropUser(userID)
	n, err := s.store.DeleteUserSessions(ctx, userID, keep)
	s.cache.dropUser(userID)
	if err != nil {
		return 0, storeErr("deleting sessions", err)
	}
	return n, nil
}

// UserSessions lists a user's live sessions, newest first.
func (s *Service) UserSessions(ctx context.Context, userID string) ([]store.Session, error) {
	all, err := s.store.UserSessions(ctx, userID)
	if err != nil {
		return nil, storeErr("listing sessions", err)
	}
	now := s.now()
	live := all[:0]
	for _, sess := range all {
		if now.Before(sess.ExpiresAt) && (sess.Transport != store.TransportCookie || s.idle == 0 || now.Sub(sess.LastSeenAt) <= s.idle) {
			live = append(live, sess)
		}
	}
	return live, nil
}

// maybePurge removes expired sessions and mailed tokens from the store
// now and then.
func (s *Service) maybePurge(ctx context.Context) {
	now := s.now()
	s.purgeMu.Lock()
	due := now.Sub(s.lastPurge) >= purgeInterval
	if due {
		s.lastPurge = now
	}
	s.purgeMu.Unlock()
	if !due {
		return
	}
	if _, err := s.store.DeleteExpiredSessions(ctx, now.UTC()); err != nil {
		s.log.WarnContext(ctx, "removing expired sessions", "error", err)
	}
	if _, err := s.store.DeleteExpiredTokens(ctx, now.UTC()); err != nil {
		s.log.WarnContext(ctx, "removing expired tokens", "error", err)
	}
	if _, err := s.store.DeleteExpiredLimits(ctx, now.UTC()); err != nil {
		s.log.WarnContext(ctx, "removing expired failure counts", "error", err)
	}
}

// shortID is the part of a session id that may appear in logs: enough to
// correlate entries, too little to act on.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// clean keeps at most n runes of s, without control characters.
func clean(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if n == 0 {
			break
		}
		if unicode.IsControl(r) {
			continue
		}
		b.WriteRune(r)
		n--
	}
	return b.String()
}
