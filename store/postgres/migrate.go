package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/gatehouse-caddy/gatehouse/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles are the schema changes, named NNNN_what.sql and applied in
// the order of their number. A released file is never edited: a change is
// a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Advisory locks are named by two int32 keys; the first says the lock is
// Gatehouse's, so that another application's advisory locks on the same
// database cannot collide with these (nor the one-key bigint locks, a
// separate space on the server).
const (
	lockSpaceMigrate int32 = 0x47480001 // "GH" 1: the schema, key 0
	lockSpaceMail    int32 = 0x47480002 // "GH" 2: one address's mail log, keyed by its hash
)

const (
	sqlLockMigrations   = `SELECT pg_advisory_lock($1, 0)`
	sqlUnlockMigrations = `SELECT pg_advisory_unlock($1, 0)`
	sqlCreateMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer     NOT NULL PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`
	sqlMigrationApplied = `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`
	sqlRecordMigration  = `INSERT INTO schema_migrations (version) VALUES ($1)`
)

// migrations returns the embedded migrations ordered by version.
func migrations() ([]store.Migration, error) { return store.ReadMigrations(migrationFiles) }

// migrate applies the migrations the database lacks, each in its own
// transaction, holding a session-level advisory lock throughout.
//
// The lock makes instances that start together take turns: the first
// creates schema_migrations and applies everything, and the others, once
// they get the lock, find every version recorded. Without it two of them
// could both find a version missing and both run it; and even CREATE TABLE
// IF NOT EXISTS is not safe between sessions (two can pass the check and
// one then fails on the catalog's unique index). PostgreSQL's DDL is
// transactional, so a migration that fails leaves nothing behind, and its
// version unrecorded.
//
// The lock belongs to the connection: it is taken and released on one
// connection held from the pool, and when anything goes wrong that
// connection is closed rather than returned, which releases the lock on
// the server whatever state the session was left in.
func migrate(ctx context.Context, pool *pgxpool.Pool) (err error) {
	ms, err := migrations()
	if err != nil {
		return err
	}
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	conn := c.Conn()
	defer func() {
		if err != nil {
			// Closing releases the lock and ends any transaction; the pool
			// drops a closed connection when it is released.
			conn.Close(context.WithoutCancel(ctx))
		}
		c.Release()
	}()
	// A migration may rightly take longer than the statement timeout
	// meant for requests (an index on a large table), and so may waiting
	// for another instance's: ctx bounds them instead. RESET restores the
	// start-up value before the connection goes back to the pool.
	if _, err := conn.Exec(ctx, `SET statement_timeout = 0`); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	if _, err := conn.Exec(ctx, sqlLockMigrations, lockSpaceMigrate); err != nil {
		return fmt.Errorf("migrating: waiting for the migration lock: %w", err)
	}
	if _, err := conn.Exec(ctx, sqlCreateMigrations); err != nil {
		return fmt.Errorf("migrating: creating schema_migrations: %w", err)
	}
	for _, m := range ms {
		if err := apply(ctx, conn, m); err != nil {
			return fmt.Errorf("applying migration %s: %w", m.Name, err)
		}
	}
	var unlocked bool
	if err := conn.QueryRow(ctx, sqlUnlockMigrations, lockSpaceMigrate).Scan(&unlocked); err != nil {
		return fmt.Errorf("migrating: releasing the migration lock: %w", err)
	}
	if !unlocked {
		return errors.New("migrating: the migration lock was not held")
	}
	if _, err := conn.Exec(ctx, `RESET statement_timeout`); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}

// apply runs m in a transaction unless it was applied already.
func apply(ctx context.Context, conn *pgx.Conn, m store.Migration) (err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(ctx) // the caller closes the connection anyway
		}
	}()
	var done bool
	if err := tx.QueryRow(ctx, sqlMigrationApplied, m.Version).Scan(&done); err != nil {
		return fmt.Errorf("reading schema_migrations: %w", err)
	}
	if done {
		return tx.Commit(ctx)
	}
	// Without arguments pgx sends the file with the simple query protocol,
	// which runs several statements, inside this transaction.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return fmt.Errorf("running: %w", err)
	}
	if _, err := tx.Exec(ctx, sqlRecordMigration, m.Version); err != nil {
		return fmt.Errorf("recording: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}
