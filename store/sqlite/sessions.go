package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

const (
	sessionColumns = `id, user_id, token_digest, transport, created_at, last_seen_at, expires_at, user_agent, ip`

	sqlCreateSession = `INSERT INTO sessions (` + sessionColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// One indexed read for the guard's cache-miss path: the session and its
	// user together.
	sqlSessionByDigest = `SELECT s.id, s.user_id, s.token_digest, s.transport, s.created_at, s.last_seen_at,
	s.expires_at, s.user_agent, s.ip,
	u.id, u.email, u.hashed_password, u.is_active, u.is_superuser, u.is_verified, u.full_name, u.roles,
	u.created_at, u.updated_at
FROM sessions AS s JOIN users AS u ON u.id = s.user_id
WHERE s.token_digest = ?`
	sqlTouchSession          = `UPDATE sessions SET last_seen_at = ? WHERE id = ?`
	sqlDeleteSession         = `DELETE FROM sessions WHERE id = ? AND user_id = ?`
	sqlDeleteUserSessions    = `DELETE FROM sessions WHERE user_id = ? AND id <> ?`
	sqlUserSessions          = `SELECT ` + sessionColumns + ` FROM sessions WHERE user_id = ? ORDER BY created_at DESC, id DESC`
	sqlDeleteExpiredSessions = `DELETE FROM sessions WHERE expires_at <= ?`
)

// CreateSession inserts ss; store.ErrConflict when its id or digest
// exists, store.ErrNotFound when its user does not.
func (s *Store) CreateSession(ctx context.Context, ss *store.Session) error {
	_, err := s.writer.ExecContext(ctx, sqlCreateSession,
		ss.ID, ss.UserID, nonNil(ss.TokenDigest), string(ss.Transport), micros(ss.CreatedAt),
		micros(ss.LastSeenAt), micros(ss.ExpiresAt), ss.UserAgent, ss.IP)
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
// or store.ErrNotFound. Expired sessions are returned until removed.
func (s *Store) SessionByDigest(ctx context.Context, digest []byte) (*store.Session, *store.User, error) {
	var (
		ss                                            store.Session
		u                                             store.User
		transport, roles                              string
		sCreated, sSeen, sExpires, uCreated, uUpdated int64
	)
	err := s.readers.QueryRowContext(ctx, sqlSessionByDigest, nonNil(digest)).Scan(
		&ss.ID, &ss.UserID, &ss.TokenDigest, &transport, &sCreated, &sSeen, &sExpires, &ss.UserAgent, &ss.IP,
		&u.ID, &u.Email, &u.HashedPassword, &u.IsActive, &u.IsSuperuser, &u.IsVerified, &u.FullName, &roles,
		&uCreated, &uUpdated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("looking up session: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("looking up session: %w", err)
	}
	if u.Roles, err = decodeRoles(roles); err != nil {
		return nil, nil, fmt.Errorf("looking up session: %w", err)
	}
	ss.Transport = store.Transport(transport)
	ss.CreatedAt, ss.LastSeenAt, ss.ExpiresAt = fromMicros(sCreated), fromMicros(sSeen), fromMicros(sExpires)
	u.CreatedAt, u.UpdatedAt = fromMicros(uCreated), fromMicros(uUpdated)
	return &ss, &u, nil
}

// TouchSession sets the session's LastSeenAt; store.ErrNotFound if none.
func (s *Store) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	return s.writeOne(ctx, "touching session", sqlTouchSession, micros(lastSeen), id)
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
func (s *Store) UserSessions(ctx context.Context, userID string) (_ []store.Session, err error) {
	rows, err := s.readers.QueryContext(ctx, sqlUserSessions, userID)
	if err != nil {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	defer func() { err = errors.Join(err, rows.Close()) }()
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
	return s.write(ctx, "deleting expired sessions", sqlDeleteExpiredSessions, micros(now))
}

// nonNil turns a nil byte slice into an empty one, so that it binds as a
// zero-length BLOB rather than NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// scanSession reads a row of sessionColumns.
func scanSession(row scanner) (*store.Session, error) {
	var (
		ss                     store.Session
		transport              string
		created, seen, expires int64
	)
	if err := row.Scan(&ss.ID, &ss.UserID, &ss.TokenDigest, &transport, &created, &seen, &expires,
		&ss.UserAgent, &ss.IP); err != nil {
		return nil, err
	}
	ss.Transport = store.Transport(transport)
	ss.CreatedAt, ss.LastSeenAt, ss.ExpiresAt = fromMicros(created), fromMicros(seen), fromMicros(expires)
	return &ss, nil
}
