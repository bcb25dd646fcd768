package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-caddy/gatehouse/store"
)

const (
	sessionColumns = `id, user_id, token_digest, transport, created_at, last_seen_at, expires_at, user_agent, ip`

	sqlCreateSession = `INSERT INTO sessions (` + sessionColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	// One indexed read for the guard's cache-miss path: the session and its
	// user together, from one snapshot.
	sqlSessionByDigest = `SELECT s.id, s.user_id, s.token_digest, s.transport, s.created_at, s.last_seen_at,
	s.expires_at, s.user_agent, s.ip,
	u.id, u.email, u.hashed_password, u.is_active, u.is_superuser, u.is_verified, u.full_name, u.roles,
	u.created_at, u.updated_at
FROM sessions AS s JOIN users AS u ON u.id = s.user_id
WHERE s.token_digest = $1`
	sqlTouchSession          = `UPDATE sessions SET last_seen_at = $1 WHERE id = $2`
	sqlDeleteSession         = `DELETE FROM sessions WHERE id = $1 AND user_id = $2`
	sqlDeleteUserSessions    = `DELETE FROM sessions WHERE user_id = $1 AND id <> $2`
	sqlUserSessions          = `SELECT ` + sessionColumns + ` FROM sessions WHERE user_id = $1 ORDER BY created_at DESC, id DESC`
	sqlDeleteExpiredSessions = `DELETE FROM sessions WHERE expires_at <= $1`
)

// CreateSession inserts ss; store.ErrConflict when its id or digest
// exists, store.ErrNotFound when its user does not. The foreign key check
// locks the user's row (FOR KEY SHARE) until the insert commits: a
// DeleteUser from another instance either ran first, and this fails, or
// waits and then removes this session with the user.
func (s *Store) CreateSession(ctx context.Context, ss *store.Session) error {
	_, err := s.pool.Exec(ctx, sqlCreateSession,
		ss.ID, ss.UserID, nonNil(ss.TokenDigest), string(ss.Transport), ss.CreatedAt,
		ss.LastSeenAt, ss.ExpiresAt, ss.UserAgent, ss.IP)
	switch {
	case err == nil:
		return nil
	case isUnique(err):
		return fmt.Errorf("creating session: %w", store.ErrConflict)
	case isForeignKey(err):
		return fmt.Errorf("creating session: user: %w", store.ErrNotFound)
	default:
		return fmt.Errorf("creating session: %w", err)
	}
}

// SessionByDigest returns the session with that token digest and its user,
// or store.ErrNotFound. Expired sessions are returned until removed. A
// failure (the server is down, ctx is done) is an error that is never
// ErrNotFound: callers fail closed on it, and must not take it for a
// session that was revoked.
func (s *Store) SessionByDigest(ctx context.Context, digest []byte) (*store.Session, *store.User, error) {
	var (
		ss        store.Session
		u         store.User
		transport string
	)
	err := s.pool.QueryRow(ctx, sqlSessionByDigest, nonNil(digest)).Scan(
		&ss.ID, &ss.UserID, &ss.TokenDigest, &transport, &ss.CreatedAt, &ss.LastSeenAt, &ss.ExpiresAt,
		&ss.UserAgent, &ss.IP,
		&u.ID, &u.Email, &u.HashedPassword, &u.IsActive, &u.IsSuperuser, &u.IsVerified, &u.FullName, &u.Roles,
		&u.CreatedAt, &u.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, fmt.Errorf("looking up session: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("looking up session: %w", err)
	}
	ss.Transport = store.Transport(transport)
	ss.CreatedAt, ss.LastSeenAt, ss.ExpiresAt = utc(ss.CreatedAt), utc(ss.LastSeenAt), utc(ss.ExpiresAt)
	u.Roles = roles(u.Roles)
	u.CreatedAt, u.UpdatedAt = utc(u.CreatedAt), utc(u.UpdatedAt)
	return &ss, &u, nil
}

// TouchSession sets the session's LastSeenAt; store.ErrNotFound if none.
func (s *Store) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	return s.writeOne(ctx, "touching session", sqlTouchSession, lastSeen, id)
}

// DeleteSession removes the session id of user userID; store.ErrNotFound
// when that user has no such session, even if another user has.
func (s *Store) DeleteSession(ctx context.Context, userID, id string) error {
	return s.writeOne(ctx, "deleting session", sqlDeleteSession, id, userID)
}

// DeleteUserSessions removes every session of userID but keep (none kept
// when keep is "") and returns how many went.
func (s *Store) DeleteUserSessions(ctx context.Context, userID, keep string) (int, error) {
	// Session ids are never empty, so id <> '' keeps none.
	return s.write(ctx, "deleting user sessions", sqlDeleteUserSessions, userID, keep)
}

// UserSessions lists the sessions of userID, newest first.
func (s *Store) UserSessions(ctx context.Context, userID string) ([]store.Session, error) {
	rows, err := s.pool.Query(ctx, sqlUserSessions, userID)
	if err != nil {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	defer rows.Close()
	sessions := []store.Session{}
	for rows.Next() {
		ss, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("listing sessions: %w", err)
		}
		sessions = append(sessions, *ss)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	return sessions, nil
}

// DeleteExpiredSessions removes the sessions whose ExpiresAt is not after
// now, and returns how many went.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	return s.write(ctx, "deleting expired sessions", sqlDeleteExpiredSessions, now)
}

// scanSession reads a row of sessionColumns.
func scanSession(row pgx.Row) (*store.Session, error) {
	var (
		ss        store.Session
		transport string
	)
	if err := row.Scan(&ss.ID, &ss.UserID, &ss.TokenDigest, &transport, &ss.CreatedAt, &ss.LastSeenAt,
		&ss.ExpiresAt, &ss.UserAgent, &ss.IP); err != nil {
		return nil, err
	}
	ss.Transport = store.Transport(transport)
	ss.CreatedAt, ss.LastSeenAt, ss.ExpiresAt = utc(ss.CreatedAt), utc(ss.LastSeenAt), utc(ss.ExpiresAt)
	return &ss, nil
}
