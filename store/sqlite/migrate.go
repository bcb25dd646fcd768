package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
	sqlite3 "modernc.org/sqlite/lib"
)

// migrationFiles are the schema changes, named NNNN_what.sql and applied in
// the order of their number. A released file is never edited: a change is
// a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

const (
	sqlCreateMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER NOT NULL PRIMARY KEY,
	applied_at INTEGER NOT NULL -- unix microseconds
)`
	sqlMigrationApplied = `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)`
	sqlRecordMigration  = `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`
)

// migrations returns the embedded migrations ordered by version.
func migrations() ([]store.Migration, error) { return store.ReadMigrations(migrationFiles) }

// migrate applies the migrations db lacks, each in its own transaction.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := applyRetrying(ctx, db, m); err != nil {
			return fmt.Errorf("applying migration %s: %w", m.Name, err)
		}
	}
	return nil
}

// migrateBusyWait bounds how long opening waits for another process that
// is creating or migrating the same file.
const migrateBusyWait = 15 * time.Second

// applyRetrying applies m, trying again while the database is busy. When
// several processes open a new file at once, SQLite may answer BEGIN with
// SQLITE_BUSY at once, without waiting the busy_timeout (one of them is
// turning the file into WAL mode, which its busy handler does not cover):
// the others then wait their turn here.
func applyRetrying(ctx context.Context, db *sql.DB, m store.Migration) error {
	deadline := time.Now().Add(migrateBusyWait)
	delay := 5 * time.Millisecond
	for {
		err := apply(ctx, db, m)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// isBusy reports SQLITE_BUSY and its extended codes.
func isBusy(err error) bool {
	return errCode(err)&0xff == sqlite3.SQLITE_BUSY
}

// apply runs m unless it was applied already. The check runs inside the
// transaction, which is IMMEDIATE (the writer's _txlock) and so holds the
// write lock from its start: when two processes open a new file at once,
// the second waits for the first and then sees its version recorded.
func apply(ctx context.Context, db *sql.DB, m store.Migration) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	if _, err := tx.ExecContext(ctx, sqlCreateMigrations); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	var done bool
	if err := tx.QueryRowContext(ctx, sqlMigrationApplied, m.Version).Scan(&done); err != nil {
		return fmt.Errorf("reading schema_migrations: %w", err)
	}
	if done {
		return tx.Commit()
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("running: %w", err)
	}
	if _, err := tx.ExecContext(ctx, sqlRecordMigration, m.Version, micros(time.Now())); err != nil {
		return fmt.Errorf("recording: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// ignoreDone drops the error of a rollback after a failed commit, which
// has already ended the transaction.
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}
