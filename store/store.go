package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Implementations wrap them (or return them as they are)
// so that callers can test with errors.Is.
var (
	// ErrNotFound: no row matches.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique key (a user's email) is already taken.
	ErrConflict = errors.New("conflict")
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

// Store is everything a Gatehouse installation keeps.
type Store interface {
	Users
	Sessions
	Settings
	// Close releases the database.
	Close() error
}
