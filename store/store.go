package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Sentinel errors. Implementations wrap them (or return them as they are)
// so that callers can test with errors.Is.
var (
	// ErrNotFound: no row matches.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique key (a user's email) is already taken.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the database cannot be reached now (its server is
	// down, restarting or unreachable, or the connection broke), and a
	// later try may succeed. The call failed; a write whose connection
	// broke during its commit may nonetheless have been done, as with any
	// database client, so a retry can meet its effect (an email now
	// taken, a token already used). Implementations wrap it together with
	// the cause; callers answer 503 rather than 500.
	ErrUnavailable = errors.New("database unavailable")
)

// User is an account. Email is stored as the user typed it (after the
// core's normalisation); uniqueness and lookups ignore its case.
type User struct {
	ID             string // lowercase hyphenated UUID
	Email          string
	HashedPassword string // PHC string (argon2id) or bcrypt hash; never leaves the core
	IsActive       bool
	IsSuperuser    bool
	IsVerified     bool
	FullName       string
	Roles          []string // never nil when read from a store
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Transport says how a session's token travels.
type Transport string

// The two transports of DESIGN §4.
const (
	TransportBearer Transport = "bearer"
	TransportCookie Transport = "cookie"
)

// Session is one login. The token that proves it is never stored: only its
// SHA-256 digest, so that a copy of the database does not let anyone in.
type Session struct {
	ID          string // public identifier (shown on the account page, used to revoke one)
	UserID      string
	TokenDigest []byte // SHA-256 of the token, unique
	Transport   Transport
	CreatedAt   time.Time
	LastSeenAt  time.Time
	ExpiresAt   time.Time // absolute end of life
	UserAgent   string
	IP          string
}

// Users stores accounts.
type Users interface {
	// CreateUser inserts u. ErrConflict when the email is taken, ignoring case.
	CreateUser(ctx context.Context, u *User) error
	// UserByID returns the user or ErrNotFound.
	UserByID(ctx context.Context, id string) (*User, error)
	// UserByEmail looks the email up ignoring case; ErrNotFound if none.
	UserByEmail(ctx context.Context, email string) (*User, error)
	// UpdateUser changes the user with that id in one transaction: it
	// reads the current row, calls change on it, and writes back what
	// change left (all fields but ID and CreatedAt). Changes made
	// concurrently, by this process or another, are never lost: each
	// change sees the previous one. An error from change aborts the update
	// and is returned as it is. ErrNotFound when there is no such user,
	// ErrConflict when the new email is taken by another user. change must
	// be quick (no password hashing): it runs holding the write lock.
	UpdateUser(ctx context.Context, id string, change func(*User) error) (*User, error)
	// DeleteUser removes the user and all their sessions; ErrNotFound if none.
	DeleteUser(ctx context.Context, id string) error
	// ListUsers returns every user, ordered by email ignoring case.
	ListUsers(ctx context.Context) ([]User, error)
}

// Sessions stores logins.
type Sessions interface {
	// CreateSession inserts s. ErrConflict if the id or digest exists;
	// ErrNotFound if the user does not exist.
	CreateSession(ctx context.Context, s *Session) error
	// SessionByDigest returns the session with that token digest together
	// with its user, in one read; ErrNotFound if none. Expiry is the
	// caller's business: expired rows are returned until removed.
	SessionByDigest(ctx context.Context, digest []byte) (*Session, *User, error)
	// TouchSession sets a session's LastSeenAt; ErrNotFound if none.
	TouchSession(ctx context.Context, id string, lastSeen time.Time) error
	// DeleteSession removes one session of a user; ErrNotFound if that user
	// has no session with that id.
	DeleteSession(ctx context.Context, userID, id string) error
	// DeleteUserSessions removes all sessions of a user except the one
	// with id keep (none kept when keep is ""), and returns how many went.
	DeleteUserSessions(ctx context.Context, userID, keep string) (int, error)
	// UserSessions lists a user's sessions, newest first.
	UserSessions(ctx context.Context, userID string) ([]Session, error)
	// DeleteExpiredSessions removes sessions whose ExpiresAt is not after
	// now, and returns how many went.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)
}

// Settings stores small named values that belong to the installation,
// such as the generated secret.
type Settings interface {
	// SettingOrInit returns the value stored under key; when there is none
	// it stores value and returns it. Concurrent callers, in this process
	// or another one sharing the database, all get the same value.
	SettingOrInit(ctx context.Context, key string, value []byte) ([]byte, error)
}

// Purpose says what an action token, sent by mail, may be used for.
type Purpose string

// The purposes of action tokens.
const (
	PurposeResetPassword Purpose = "reset_password"
	PurposeVerifyEmail   Purpose = "verify_email"
)

// ActionToken is a single-use token mailed to a user: a password reset or
// an email verification. As for sessions, only the SHA-256 digest of the
// token is stored.
type ActionToken struct {
	Digest    []byte // SHA-256 of the token, unique
	UserID    string
	Purpose   Purpose
	Email     string // the address it was sent to; a verify token is bound to it
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero while unused
}

// Message is a mail waiting in the outbox.
type Message struct {
	ID            int64 // assigned by the store
	To            string
	Subject       string
	Text          string // text/plain part
	HTML          string // text/html part
	CreatedAt     time.Time
	Attempts      int       // delivery attempts so far
	NextAttemptAt time.Time // not sent before this time
	ExpiresAt     time.Time // not sent from this time on (zero: no deadline); IssueToken sets the token's expiry
	LastError     string
}

// MailLogRetention is how long records of mail sent to an address are
// kept for MailLimit: the longest window a limit may have.
const MailLogRetention = 7 * 24 * time.Hour

// MailLimit bounds how many mails one address receives in a window.
type MailLimit struct {
	Max    int
	Window time.Duration
}

// Tokens stores action tokens and the mail that carries them.
type Tokens interface {
	// IssueToken stores tok and queues msg in the outbox, in one
	// transaction, unless the address msg.To (ignoring case) has already
	// been sent limit.Max mails by IssueToken within limit.Window before
	// now (a mail sent at now − Window or earlier no longer counts); then
	// it stores nothing and reports false. Concurrent callers never exceed
	// the limit together. msg.ID is set, and a zero msg.CreatedAt or
	// msg.NextAttemptAt is set to now. limit.Max ≤ 0 means no limit.
	// ErrConflict if the digest exists; ErrNotFound if tok.UserID names
	// no user.
	IssueToken(ctx context.Context, tok *ActionToken, msg *Message, limit MailLimit, now time.Time) (bool, error)
	// NoteMailRequest records a request for mail to an address that gets
	// none (no account, or an inactive one) exactly as IssueToken records a
	// mail against the limit, in a write transaction of the same shape, so
	// that the two cases cost the same time and cannot be told apart by a
	// client. It reports whether the address was under its limit.
	NoteMailRequest(ctx context.Context, address string, limit MailLimit, now time.Time) (bool, error)
	// TokenByDigest returns the token with that digest and purpose, used
	// or not, expired or not; ErrNotFound if none.
	TokenByDigest(ctx context.Context, purpose Purpose, digest []byte) (*ActionToken, error)
	// UseToken marks an unused token used at the given time; ErrNotFound
	// if there is no such unused token (it was used meanwhile). Exactly
	// one of concurrent callers succeeds.
	UseToken(ctx context.Context, purpose Purpose, digest []byte, at time.Time) error
	// DeleteUserTokens removes a user's tokens of one purpose and returns
	// how many went.
	DeleteUserTokens(ctx context.Context, userID string, purpose Purpose) (int, error)
	// DeleteExpiredTokens removes tokens whose ExpiresAt is not after now,
	// and mail-limit records older than MailLogRetention, and returns how
	// many tokens went.
	DeleteExpiredTokens(ctx context.Context, now time.Time) (int, error)
}

// Outbox is the queue of mail to deliver. Several senders, in this process
// or others sharing the database, may work on it at once: a message is
// leased to one sender at a time.
type Outbox interface {
	// QueueMessage adds a message (one that carries no token, such as a
	// notice); msg.ID is set. A zero NextAttemptAt makes it due at once.
	QueueMessage(ctx context.Context, msg *Message) error
	// ClaimMessages leases up to n messages whose NextAttemptAt is not
	// after now, oldest first (by CreatedAt, then ID), and returns them in
	// that order; none when n ≤ 0. Each has its Attempts incremented and its
	// NextAttemptAt moved to leaseUntil, so no other sender takes it
	// before then.
	ClaimMessages(ctx context.Context, now, leaseUntil time.Time, n int) ([]Message, error)
	// DeleteMessage removes a message (it was delivered, or given up);
	// ErrNotFound if it is gone.
	DeleteMessage(ctx context.Context, id int64) error
	// RetryMessage records a failed attempt: the message is due again at
	// next. ErrNotFound if it is gone.
	RetryMessage(ctx context.Context, id int64, next time.Time, lastError string) error
}

// Limit is one brute-force limit: Max failures within Window ban the key
// for Ban.
type Limit struct {
	Max    int
	Window time.Duration
	Ban    time.Duration
}

// Limits counts failed attempts (logins, bad tokens) against keys, for the
// brute-force limits. A key is opaque to the store: the core's digest of an
// account or of a client address. Counts live in the database so that they
// hold across restarts and across instances sharing it.
type Limits interface {
	// RecordFailure counts one failure against key at now, atomically with
	// respect to every other caller, in this process or another. A window
	// of l.Window opens at the first failure after the previous window or
	// ban ended; the l.Max-th failure within it bans key until now+l.Ban.
	// A failure while key is banned is not counted and does not extend the
	// ban. It returns the end of the ban key is under at now (zero if
	// none) and whether this failure started it.
	RecordFailure(ctx context.Context, key string, l Limit, now time.Time) (bannedUntil time.Time, started bool, err error)
	// BannedUntil returns the end of the ban on key if one is in force at
	// now, or the zero time.
	BannedUntil(ctx context.Context, key string, now time.Time) (time.Time, error)
	// ClearFailures forgets the failures counted against key, but not a
	// ban in force. It is not an error if there are none.
	ClearFailures(ctx context.Context, key string, now time.Time) error
	// LiftLimit forgets key's failures and ends a ban in force. It is not
	// an error if there is none.
	LiftLimit(ctx context.Context, key string) error
	// DeleteExpiredLimits removes the records whose window and ban are both
	// over at now, and returns how many went.
	DeleteExpiredLimits(ctx context.Context, now time.Time) (int, error)
}

// Store is everything a Gatehouse installation keeps.
type Store interface {
	Users
	Sessions
	Settings
	Tokens
	Outbox
	Limits
	// Close releases the database.
	Close() error
}

// EmailKey is how every store folds an email for its uniqueness and its
// lookups, "ignoring case" above: Unicode lower case, done in Go rather
// than by the database (SQLite's lower() folds ASCII only; PostgreSQL's
// depends on the locale), so that an account is found by the same
// spellings whichever store holds it.
func EmailKey(email string) string { return strings.ToLower(email) }

// IssuedMessageTimes are the times IssueToken queues msg with: a zero
// CreatedAt or NextAttemptAt is now, and the mail expires with its token
// (or before, if msg says so), as it is worth delivering only while the
// token works.
func IssuedMessageTimes(tok *ActionToken, msg *Message, now time.Time) (created, next, expires time.Time) {
	created, next, expires = msg.CreatedAt, msg.NextAttemptAt, msg.ExpiresAt
	if expires.IsZero() || tok.ExpiresAt.Before(expires) {
		expires = tok.ExpiresAt
	}
	if created.IsZero() {
		created = now
	}
	if next.IsZero() {
		next = now
	}
	return created, next, expires
}
