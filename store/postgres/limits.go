package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gatehouse-caddy/gatehouse/store"
)

const (
	// Reads key's record and locks it until the transaction ends, creating
	// it first when missing. SELECT … FOR UPDATE alone cannot lock a row
	// that does not exist yet: two first failures of one key would both
	// find none and both insert. ON CONFLICT DO UPDATE locks the existing
	// row, or the one it inserts, in one statement, and RETURNING reads it.
	// The new row is neutral: its window ends at now, so it counts as over.
	sqlLockLimit = `INSERT INTO login_limits AS l (key, failures, window_ends_at, banned_until) VALUES ($1, 0, $2, NULL)
ON CONFLICT (key) DO UPDATE SET failures = l.failures
RETURNING failures, window_ends_at, banned_until`
	sqlPutLimit           = `UPDATE login_limits SET failures = $2, window_ends_at = $3, banned_until = $4 WHERE key = $1`
	sqlBannedUntil        = `SELECT banned_until FROM login_limits WHERE key = $1 AND banned_until > $2`
	sqlClearFailures      = `DELETE FROM login_limits WHERE key = $1 AND (banned_until IS NULL OR banned_until <= $2)`
	sqlLiftLimit          = `DELETE FROM login_limits WHERE key = $1`
	sqlDeleteExpiredLimit = `DELETE FROM login_limits WHERE window_ends_at <= $1 AND (banned_until IS NULL OR banned_until <= $1)`
)

// RecordFailure locks key's record (see sqlLockLimit), works out the new
// count in Go as the SQLite store does, and writes it back before the
// commit releases the lock: two failures, from this instance or another,
// are never counted as one, and exactly one of them starts a ban.
func (s *Store) RecordFailure(ctx context.Context, key string, l store.Limit, now time.Time) (time.Time, bool, error) {
	var (
		until   time.Time
		started bool
	)
	err := s.inTx(ctx, "recording failure", func(tx pgx.Tx) error {
		var (
			failures   int
			windowEnds time.Time
			banned     pgtype.Timestamptz
		)
		if err := tx.QueryRow(ctx, sqlLockLimit, key, now).Scan(&failures, &windowEnds, &banned); err != nil {
			return fmt.Errorf("recording failure: %w", err)
		}
		if banned.Valid && banned.Time.After(now) {
			// Banned: the failure changes nothing.
			until = utc(banned.Time)
			return nil
		}
		if !windowEnds.After(now) || banned.Valid {
			// A fresh window: the last one is over (or there was none), or
			// a ban ended.
			failures, windowEnds, banned = 0, now.Add(l.Window), pgtype.Timestamptz{}
		}
		failures++
		if l.Max > 0 && failures >= l.Max {
			started = true
			failures, banned = 0, pgtype.Timestamptz{Time: now.Add(l.Ban), Valid: true}
			until = utc(banned.Time).Truncate(time.Microsecond)
		}
		if _, err := tx.Exec(ctx, sqlPutLimit, key, failures, windowEnds, banned); err != nil {
			return fmt.Errorf("recording failure: %w", err)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false, err
	}
	return until, started, nil
}

// BannedUntil returns the end of the ban on key in force at now, or zero.
func (s *Store) BannedUntil(ctx context.Context, key string, now time.Time) (time.Time, error) {
	var until time.Time
	err := s.pool.QueryRow(ctx, sqlBannedUntil, key, now).Scan(&until)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reading ban: %w", err)
	}
	return utc(until), nil
}

// ClearFailures deletes key's record unless a ban is in force.
func (s *Store) ClearFailures(ctx context.Context, key string, now time.Time) error {
	_, err := s.write(ctx, "clearing failures", sqlClearFailures, key, now)
	return err
}

// LiftLimit deletes key's record, ban included.
func (s *Store) LiftLimit(ctx context.Context, key string) error {
	_, err := s.write(ctx, "lifting limit", sqlLiftLimit, key)
	return err
}

// DeleteExpiredLimits deletes the records that no longer count.
func (s *Store) DeleteExpiredLimits(ctx context.Context, now time.Time) (int, error) {
	return s.write(ctx, "deleting expired limits", sqlDeleteExpiredLimit, now)
}
