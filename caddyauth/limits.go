package caddyauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// LoginLimit is the brute-force regulation (login_limit). Failed logins
// are counted per account and per client address within Window. An
// account that reaches Account failures is locked for Ban: its logins
// fail as a wrong password does, even with the right password, and its
// owner is mailed. An address that reaches IP failures is banned for
// Ban: its logins, password resets and verifications are answered 429
// before any work is done. Bad reset and verify tokens count against the
// address too.
//
// The two limits work together: one client cycling through many
// accounts is stopped by the address limit long before it has locked
// many of them, and one account attacked from many addresses is
// protected by the account limit. Neither locks out anyone else.
type LoginLimit struct {
	Off     bool          // no limits at all
	Account int           // failed logins per account within Window; ≤ 0: DefaultLoginLimit.Account
	IP      int           // failures per client address within Window; ≤ 0: DefaultLoginLimit.IP
	Window  time.Duration // ≤ 0: DefaultLoginLimit.Window
	Ban     time.Duration // ≤ 0: DefaultLoginLimit.Ban
}

// DefaultLoginLimit: 10 failed logins lock an account, 50 failures ban an
// address, within 15 minutes, for 15 minutes. NIST SP 800-63B §5.2.2 asks
// for at most 100 consecutive failures per account; 10 leaves a user who
// mistypes plenty of room, and holds an online guesser to 960 guesses a
// day per account. The address limit is higher because many users may
// share one address (an office, a carrier's NAT).
var DefaultLoginLimit = LoginLimit{Account: 10, IP: 50, Window: 15 * time.Minute, Ban: 15 * time.Minute}

// withDefaults fills in the zero fields.
func (l LoginLimit) withDefaults() LoginLimit {
	d := DefaultLoginLimit
	if l.Account <= 0 {
		l.Account = d.Account
	}
	if l.IP <= 0 {
		l.IP = d.IP
	}
	if l.Window <= 0 {
		l.Window = d.Window
	}
	if l.Ban <= 0 {
		l.Ban = d.Ban
	}
	return l
}

func (l LoginLimit) account() store.Limit {
	return store.Limit{Max: l.Account, Window: l.Window, Ban: l.Ban}
}

func (l LoginLimit) ip() store.Limit {
	return store.Limit{Max: l.IP, Window: l.Window, Ban: l.Ban}
}

// limitKey is the store's key for a counted thing: an HMAC, so that the
// store never holds what was typed as a username (sometimes a password,
// typed in the wrong box) and its keys cannot be guessed from outside.
// Instances sharing a database share the secret, hence the keys.
func (s *Service) limitKey(kind, value string) string {
	m := hmac.New(sha256.New, s.keys.limits)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// accountKey is the key of the account a login names, whether or not it
// exists: folded as the store folds emails for lookups, so that case
// variants of one address count as one.
func (s *Service) accountKey(username string) string {
	return s.limitKey("account", store.EmailKey(strings.TrimSpace(username)))
}

// addressKey is the key of a client address, "" when there is none (the
// command line). An IPv6 client is counted by its /64: one subscriber
// commonly holds a whole /64 and could otherwise use a fresh address for
// each guess.
func (s *Service) addressKey(ip string) string {
	if ip == "" {
		return ""
	}
	return s.limitKey("ip", addressGroup(ip))
}

// addressGroup is the part of an address that names one client: the
// IPv4 address, or the /64 of an IPv6 one.
func addressGroup(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}

// checkAddress refuses a banned client address with a RetryError (429),
// before any work is spent on its request.
func (s *Service) checkAddress(ctx context.Context, key string, now time.Time) error {
	if s.limit.Off || key == "" {
		return nil
	}
	until, err := s.store.BannedUntil(ctx, key, now.UTC())
	if err != nil {
		return fmt.Errorf("reading address ban: %w", err)
	}
	if until.IsZero() {
		return nil
	}
	return &RetryError{RetryAfter: until.Sub(now)}
}

// accountLocked reports whether the account key is locked.
func (s *Service) accountLocked(ctx context.Context, key string, now time.Time) (bool, error) {
	if s.limit.Off {
		return false, nil
	}
	until, err := s.store.BannedUntil(ctx, key, now.UTC())
	if err != nil {
		return false, fmt.Errorf("reading account lock: %w", err)
	}
	return !until.IsZero(), nil
}

// addressFailed counts a failure against a client address, and writes
// the audit entry when it starts a ban.
func (s *Service) addressFailed(ctx context.Context, key, ip string, now time.Time) error {
	if s.limit.Off || key == "" {
		return nil
	}
	until, started, err := s.store.RecordFailure(ctx, key, s.limit.ip(), now.UTC())
	if err != nil {
		return fmt.Errorf("counting failure: %w", err)
	}
	if started {
		s.audit(ctx, AuditIPBan, OutcomeBanned, "", ip, slog.Time("until", until))
	}
	return nil
}

// loginFailed counts a failed login against the address and the account.
// u is the account the username named (nil if none): when its lock
// starts, its owner is told by mail, so that a user locked out knows why,
// and one whose password is being guessed knows that too.
func (s *Service) loginFailed(ctx context.Context, u *store.User, accountKey, addrKey, ip string, now time.Time) error {
	if s.limit.Off {
		return nil
	}
	if err := s.addressFailed(ctx, addrKey, ip, now); err != nil {
		return err
	}
	until, started, err := s.store.RecordFailure(ctx, accountKey, s.limit.account(), now.UTC())
	if err != nil {
		return fmt.Errorf("counting failure: %w", err)
	}
	if !started || u == nil {
		return nil
	}
	s.audit(ctx, AuditLockout, OutcomeLocked, u.ID, ip, slog.Time("until", until))
	if u.IsActive {
		if err := s.mailLockout(ctx, u, now); err != nil {
			// The lock holds whether or not the notice goes out.
			s.log.ErrorContext(ctx, "queueing the lockout notice", "user_id", u.ID, "error", err)
		}
	}
	return nil
}

// mailLockout queues the notice of a lock to the account's owner. It is
// not counted against the per-address mail limit (a lock could otherwise
// use up the allowance of reset mails the owner needs now), and at most
// one goes out per lock, so at most one per Ban.
func (s *Service) mailLockout(ctx context.Context, u *store.User, now time.Time) error {
	links := fromContext[Links](ctx)
	msg, err := s.mailMessage(u, MailLocked, links.Forgot, siteOf(links.Forgot), s.limit.Ban, now.UTC().Truncate(time.Microsecond))
	if err != nil {
		return err
	}
	if err := s.store.QueueMessage(ctx, msg); err != nil {
		return storeErr("queueing mail", err)
	}
	if s.onMailQueued != nil {
		s.onMailQueued()
	}
	return nil
}

// WithLinks returns ctx carrying the pages of this site that mails sent as
// a side effect of the request may link to (the lockout notice of a
// login). Without them such a mail goes out without a link.
func WithLinks(ctx context.Context, l Links) context.Context {
	return context.WithValue(ctx, ctxKey[Links]{}, l)
}

// tokenAttempt wraps the use of a mailed token (reset, verify) in the
// address limit: a banned address is refused before the token is looked
// at, and a bad token counts as a failure against it. Tokens carry 256
// bits, far beyond guessing; the limit keeps a client that tries anyway
// from costing the store a lookup per guess, forever.
func (s *Service) tokenAttempt(ctx context.Context, badToken error, use func() error) error {
	now := s.now()
	ip := clientFrom(ctx).IP
	key := s.addressKey(ip)
	if err := s.checkAddress(ctx, key, now); err != nil {
		return err
	}
	err := use()
	if errors.Is(err, badToken) {
		if ferr := s.addressFailed(ctx, key, ip, now); ferr != nil {
			return ferr
		}
	}
	return err
}
