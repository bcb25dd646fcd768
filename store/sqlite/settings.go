package sqlite

import (
	"context"
	"errors"
	"fmt"
)

const (
	sqlInsertSetting = `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`
	sqlSetting       = `SELECT value FROM settings WHERE key = ?`
)

// SettingOrInit returns the value stored under key, storing value first
// when there is none. The insert and the read share one IMMEDIATE
// transaction, which holds the write lock throughout: concurrent callers,
// in this process or another, all read the value of whichever came first.
func (s *Store) SettingOrInit(ctx context.Context, key string, value []byte) (_ []byte, err error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("initialising setting: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	if _, err := tx.ExecContext(ctx, sqlInsertSetting, key, nonNil(value)); err != nil {
		return nil, fmt.Errorf("initialising setting: %w", err)
	}
	var stored []byte
	if err := tx.QueryRowContext(ctx, sqlSetting, key).Scan(&stored); err != nil {
		return nil, fmt.Errorf("reading setting: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("committing setting: %w", err)
	}
	return stored, nil
}
