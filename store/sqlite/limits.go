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
	sqlLimitByKey = `SELECT failures, window_ends_at, banned_until FROM login_limits WHERE key = ?`
	sqlPutLimit   = `INSERT INTO login_limits (key, failures, window_ends_at, banned_until) VALUES (?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, window_ends_at = excluded.window_ends_at,
	banned_until = excluded.banned_until`
	sqlBannedUntil        = `SELECT banned_until FROM login_limits WHERE key = ? AND banned_until > ?`
	sqlClearFailures      = `DELETE FROM login_limits WHERE key = ? AND banned_until <= ?`
	sqlLiftLimit          = `DELETE FROM login_limits WHERE key = ?`
	sqlDeleteExpiredLimit = `DELETE FROM login_limits WHERE window_ends_at <= ? AND banned_until <= ?`
)

// RecordFailure reads and writes key's record in one IMMEDIATE transaction
// on the writer: the write lock is held from BEGIN, so two failures, from
// this process or another, are never counted as one.
func (s *Store) RecordFailure(ctx context.Context, key string, l store.Limit, now time.Time) (_ time.Time, _ bool, err error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("recording failure: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	var failures, windowEnds, bannedUntil int64
	err = tx.QueryRowContext(ctx, sqlLimitByKey, key).Scan(&failures, &windowEnds, &bannedUntil)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, fmt.Errorf("recording failure: %w", err)
	}
	t := micros(now)
	if bannedUntil > t {
		// Banned: the failure changes nothing.
		return fromMicros(bannedUntil), false, tx.Commit()
	}
	if errors.Is(err, sql.ErrNoRows) || windowEnds <= t || bannedUntil != 0 {
		// A fresh window: none yet, the last one is over, or a ban ended.
		failures, windowEnds, bannedUntil = 0, micros(now.Add(l.Window)), 0
	}
	failures++
	started := l.Max > 0 && failures >= int64(l.Max)
	if started {
		failures, bannedUntil = 0, micros(now.Add(l.Ban))
	}
	if _, err := tx.ExecContext(ctx, sqlPutLimit, key, failures, windowEnds, bannedUntil); err != nil {
		return time.Time{}, false, fmt.Errorf("recording failure: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return time.Time{}, false, fmt.Errorf("recording failure: committing: %w", err)
	}
	if !started {
		return time.Time{}, false, nil
	}
	return fromMicros(bannedUntil), true, nil
}

// BannedUntil reads key's ban from a reader.
func (s *Store) BannedUntil(ctx context.Context, key string, now time.Time) (time.Time, error) {
	var until int64
	err := s.readers.QueryRowContext(ctx, sqlBannedUntil, key, micros(now)).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reading ban: %w", err)
	}
	return fromMicros(until), nil
}

// ClearFailures deletes key's record unless a ban is in force.
func (s *Store) ClearFailures(ctx context.Context, key string, now time.Time) error {
	_, err := s.write(ctx, "clearing failures", sqlClearFailures, key, micros(now))
	return err
}

// LiftLimit deletes key's record, ban included.
func (s *Store) LiftLimit(ctx context.Context, key string) error {
	_, err := s.write(ctx, "lifting limit", sqlLiftLimit, key)
	return err
}

// DeleteExpiredLimits deletes the records that no longer count.
func (s *Store) DeleteExpiredLimits(ctx context.Context, now time.Time) (int, error) {
	t := micros(now)
	return s.write(ctx, "deleting expired limits", sqlDeleteExpiredLimit, t, t)
}
