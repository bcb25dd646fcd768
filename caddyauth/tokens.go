package caddyauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// Defaults of the token-by-mail options.
const (
	DefaultResetTokenLifetime  = time.Hour
	DefaultVerifyTokenLifetime = 24 * time.Hour
)

// DefaultMailLimit: at most three mails per address per hour, so that the
// forgot-password and verify endpoints cannot flood anyone's inbox.
var DefaultMailLimit = store.MailLimit{Max: 3, Window: time.Hour}

// Event names, emitted through Options.OnEvent (Caddy's events in the
// root): the counterparts of fastapi-users' on_after_* hooks. Their data
// carry the user's id and email, never a token or password.
const (
	EventUserRegistered = "gatehouse.user_registered"
	EventUserVerified   = "gatehouse.user_verified"
	EventPasswordReset  = "gatehouse.password_reset"
	EventForgotPassword = "gatehouse.forgot_password"
)

// Links are the pages of this site that take a token from a mail:
// <base>/auth/verify and <base>/auth/reset-password. The token is added as
// the query parameter token=….
type Links struct {
	Verify string
	Reset  string
	Forgot string // <base>/auth/forgot-password, linked from the lockout notice
}

// withToken adds ?token=… to a page URL.
func withToken(page, token string) string {
	sep := "?"
	if strings.Contains(page, "?") {
		sep = "&"
	}
	return page + sep + "token=" + url.QueryEscape(token)
}

// siteOf is the host of a page's URL, as mails name the site.
func siteOf(page string) string {
	if pu, err := url.Parse(page); err == nil && pu.Host != "" {
		return pu.Host
	}
	return page
}

// maxActionTokenLength bounds what is taken for a mailed token: ours are
// 43 characters, so anything much longer is refused as a bad token
// without being hashed or looked up.
const maxActionTokenLength = 128

// newActionToken returns a random URL-safe token and its digest.
func (s *Service) newActionToken() (string, []byte, error) {
	var raw [32]byte
	if _, err := io.ReadFull(s.rand, raw[:]); err != nil {
		return "", nil, fmt.Errorf("reading randomness: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	digest := sha256.Sum256([]byte(token))
	return token, digest[:], nil
}

func tokenDigest(token string) []byte {
	d := sha256.Sum256([]byte(token))
	return d[:]
}

// sendToken makes a token for u, renders the mail of kind with a link to
// page, and stores both in one transaction (the outbox of the store),
// within the per-address mail limit. It reports whether the mail was
// queued; a request never waits for the mail to be delivered.
func (s *Service) sendToken(ctx context.Context, u *store.User, purpose store.Purpose, kind, page string, lifetime time.Duration) (bool, error) {
	if page == "" {
		// No trustworthy link to put in the mail (see handlers.API.links):
		// better no mail than one that points who knows where.
		s.log.WarnContext(ctx, "no link for the mail: not sent", "user_id", u.ID, "kind", kind)
		return false, nil
	}
	token, digest, err := s.newActionToken()
	if err != nil {
		return false, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	msg, err := s.mailMessage(u, kind, withToken(page, token), siteOf(page), lifetime, now)
	if err != nil {
		return false, err
	}
	tok := &store.ActionToken{Digest: digest, UserID: u.ID, Purpose: purpose, Email: u.Email,
		CreatedAt: now, ExpiresAt: now.Add(lifetime)}
	queued, err := s.store.IssueToken(ctx, tok, msg, s.mailLimit, now)
	if err != nil {
		return false, storeErr("queueing mail", err)
	}
	if !queued {
		s.log.InfoContext(ctx, "mail limit reached: no mail sent", "user_id", u.ID, "kind", kind)
		return false, nil
	}
	if s.onMailQueued != nil {
		s.onMailQueued()
	}
	return true, nil
}

// mailMessage renders the mail of kind to u, with link and site, and
// makes it a message for the outbox, due at now. ExpiresIn says lifetime
// (how long the link works, or how long a lock lasts).
func (s *Service) mailMessage(u *store.User, kind, link, site string, lifetime time.Duration, now time.Time) (*store.Message, error) {
	// The name is the account's own words; until the address is verified
	// they may be a stranger's, who registered someone else's address to
	// put a message in their mailbox.
	name := ""
	if u.IsVerified {
		name = u.FullName
	}
	subject, text, html, err := s.templates.render(kind, MailData{
		Link: link, Email: u.Email, Name: name, Site: site, ExpiresIn: inWords(lifetime),
	})
	if err != nil {
		return nil, err
	}
	// The bodies may carry a token: sealed in the outbox (see sealBody).
	if text, err = s.sealBody(text); err != nil {
		return nil, err
	}
	if html, err = s.sealBody(html); err != nil {
		return nil, err
	}
	return &store.Message{To: u.Email, Subject: subject, Text: text, HTML: html, CreatedAt: now, NextAttemptAt: now}, nil
}

// noMail answers a request for mail that sends none (no account, an
// inactive one, one verified already) with the same work as one that
// does: rendering the mail and one write to the store, counted against
// the address's limit. Whether an address has an account must not show
// in how long the answer takes.
func (s *Service) noMail(ctx context.Context, email, kind, page string, lifetime time.Duration) error {
	if _, _, _, err := s.templates.render(kind, MailData{Link: withToken(page, strings.Repeat("x", 43)),
		Email: email, Site: siteOf(page), ExpiresIn: inWords(lifetime)}); err != nil {
		return err
	}
	if _, err := s.store.NoteMailRequest(ctx, email, s.mailLimit, s.now().UTC().Truncate(time.Microsecond)); err != nil {
		return storeErr("noting mail request", err)
	}
	return nil
}

// ForgotPassword mails a reset link to the account with that email, if
// there is an active one. The caller answers 202 whatever happens here:
// whether the account exists is not the requester's business, and the
// time taken does not tell it either (see noMail).
func (s *Service) ForgotPassword(ctx context.Context, email string, links Links) error {
	u, err := s.store.UserByEmail(ctx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("looking up user: %w", err)
	}
	if u == nil || !u.IsActive {
		return s.noMail(ctx, email, MailReset, links.Reset, s.resetLifetime)
	}
	queued, err := s.sendToken(ctx, u, store.PurposeResetPassword, MailReset, links.Reset, s.resetLifetime)
	if err != nil {
		return err
	}
	if queued {
		s.emit(ctx, EventForgotPassword, u)
	}
	return nil
}

// RequestVerify mails a verification link to the account with that
// email, if there is an active, unverified one. As ForgotPassword, the
// caller answers 202 whatever happens here.
func (s *Service) RequestVerify(ctx context.Context, email string, links Links) error {
	u, err := s.store.UserByEmail(ctx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("looking up user: %w", err)
	}
	if u == nil || !u.IsActive || u.IsVerified {
		return s.noMail(ctx, email, MailVerify, links.Verify, s.verifyLifetime)
	}
	_, err = s.sendToken(ctx, u, store.PurposeVerifyEmail, MailVerify, links.Verify, s.verifyLifetime)
	return err
}

// ResetPassword sets a new password with a token from a reset mail. The
// token must be unused, unexpired, for an active user and for the address
// the account still has; the password must satisfy the policy (checked
// only once the token is known good, and before the token is spent, so
// that a refused password does not cost the user their link). On success
// the token is spent, the user's other reset tokens are void, and all
// their sessions end.
//
// A bad token counts as a failure against the client's address, and a
// banned address is refused with a RetryError (see tokenAttempt).
func (s *Service) ResetPassword(ctx context.Context, token, password string) error {
	var u *store.User
	err := s.tokenAttempt(ctx, ErrResetBadToken, func() (err error) {
		u, err = s.resetPassword(ctx, token, password)
		return err
	})
	s.auditToken(ctx, AuditPasswordReset, u, err, ErrResetBadToken)
	return err
}

func (s *Service) resetPassword(ctx context.Context, token, password string) (*store.User, error) {
	if len(token) > maxActionTokenLength {
		return nil, ErrResetBadToken
	}
	digest := tokenDigest(token)
	tok, err := s.store.TokenByDigest(ctx, store.PurposeResetPassword, digest)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrResetBadToken
	}
	if err != nil {
		return nil, fmt.Errorf("looking up reset token: %w", err)
	}
	now := s.now()
	if !tok.UsedAt.IsZero() || !now.Before(tok.ExpiresAt) {
		return nil, ErrResetBadToken
	}
	u, err := s.store.UserByID(ctx, tok.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrResetBadToken
	}
	if err != nil {
		return nil, fmt.Errorf("looking up user: %w", err)
	}
	if !u.IsActive || !strings.EqualFold(u.Email, tok.Email) {
		return nil, ErrResetBadToken
	}
	if err := s.policy.Check(password, u.Email); err != nil {
		return nil, err
	}
	// Spend the token first: of two concurrent resets with one token,
	// exactly one goes on.
	if err := s.store.UseToken(ctx, store.PurposeResetPassword, digest, now.UTC()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrResetBadToken
		}
		return nil, fmt.Errorf("spending reset token: %w", err)
	}
	// The account must still be the one the token was for when the new
	// password is written.
	stillValid := func(cur *store.User) error {
		if !cur.IsActive || !strings.EqualFold(cur.Email, tok.Email) {
			return ErrResetBadToken
		}
		return nil
	}
	// A reset ends every session ("" keeps none) and voids the other
	// reset tokens (update does both for any password change).
	if _, err := s.update(ctx, u, UserPatch{Password: &password}, "", stillValid); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, ErrResetBadToken
		}
		return nil, err
	}
	// Whoever completes a reset holds the mailbox, and so could take the
	// account anyway: its lock, which exists to stop guessing, would only
	// keep the owner from signing in with the password just chosen. The
	// address's count is left alone.
	if !s.limit.Off {
		if err := s.store.LiftLimit(ctx, s.accountKey(u.Email)); err != nil {
			s.log.ErrorContext(ctx, "lifting the account's lock after a reset", "user_id", u.ID, "error", err)
		}
	}
	s.emit(ctx, EventPasswordReset, u)
	return u, nil
}

// Verify marks the account of a verify token verified and returns it. A
// token for an address the account no longer has is refused; a token
// used again once the account is verified answers ErrVerifyAlreadyVerified,
// as fastapi-users does. Inactive accounts can be verified, as there.
//
// A bad token counts as a failure against the client's address, and a
// banned address is refused with a RetryError (see tokenAttempt).
func (s *Service) Verify(ctx context.Context, token string) (*store.User, error) {
	var u *store.User
	err := s.tokenAttempt(ctx, ErrVerifyBadToken, func() (err error) {
		u, err = s.verify(ctx, token)
		return err
	})
	s.auditToken(ctx, AuditVerify, u, err, ErrVerifyBadToken)
	if err != nil {
		return nil, err
	}
	return u, nil
}

func (s *Service) verify(ctx context.Context, token string) (*store.User, error) {
	if len(token) > maxActionTokenLength {
		return nil, ErrVerifyBadToken
	}
	digest := tokenDigest(token)
	tok, err := s.store.TokenByDigest(ctx, store.PurposeVerifyEmail, digest)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrVerifyBadToken
	}
	if err != nil {
		return nil, fmt.Errorf("looking up verify token: %w", err)
	}
	now := s.now()
	if !now.Before(tok.ExpiresAt) {
		return nil, ErrVerifyBadToken
	}
	u, err := s.store.UserByID(ctx, tok.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrVerifyBadToken
	}
	if err != nil {
		return nil, fmt.Errorf("looking up user: %w", err)
	}
	if !strings.EqualFold(u.Email, tok.Email) {
		return nil, ErrVerifyBadToken
	}
	if u.IsVerified {
		return nil, ErrVerifyAlreadyVerified
	}
	if !tok.UsedAt.IsZero() {
		// Used, and yet the account is not verified: it was unverified
		// since (an administrator). The token has served its purpose.
		return nil, ErrVerifyBadToken
	}
	if err := s.store.UseToken(ctx, store.PurposeVerifyEmail, digest, now.UTC()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// A concurrent request with the same token won.
			return nil, ErrVerifyAlreadyVerified
		}
		return nil, fmt.Errorf("spending verify token: %w", err)
	}
	verified := true
	sameAddress := func(cur *store.User) error {
		if !strings.EqualFold(cur.Email, tok.Email) {
			return ErrVerifyBadToken
		}
		return nil
	}
	u, err = s.update(ctx, u, UserPatch{IsVerified: &verified}, "", sameAddress)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrVerifyBadToken
	}
	if err != nil {
		return nil, err
	}
	s.emit(ctx, EventUserVerified, u)
	return u, nil
}

// emit reports an event about u, with its id and email only.
func (s *Service) emit(ctx context.Context, name string, u *store.User) {
	if s.onEvent == nil {
		return
	}
	s.onEvent(ctx, name, map[string]any{"user_id": u.ID, "email": u.Email})
}
