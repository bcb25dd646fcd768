package postgres

import (
	"context"
	"fmt"
)

const (
	sqlInsertSetting = `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`
	sqlSetting       = `SELECT value FROM settings WHERE key = $1`
)

// SettingOrInit returns the value stored under key, storing value first
// when there is none.
//
// Two statements, each in its own transaction, and deliberately not one:
// when another session, of this instance or another, is inserting the same
// key, the INSERT waits for it and then does nothing; the SELECT that
// follows takes a new snapshot and so sees the row that won. A single
// statement (a CTE, or one transaction under REPEATABLE READ) would read
// with the snapshot taken before the wait and find no row at all. There is
// no delete of settings, so the row found is the one that won.
func (s *Store) SettingOrInit(ctx context.Context, key string, value []byte) ([]byte, error) {
	if _, err := s.pool.Exec(ctx, sqlInsertSetting, key, nonNil(value)); err != nil {
		return nil, fmt.Errorf("initialising setting: %w", err)
	}
	var stored []byte
	if err := s.pool.QueryRow(ctx, sqlSetting, key).Scan(&stored); err != nil {
		return nil, fmt.Errorf("reading setting: %w", err)
	}
	return stored, nil
}
