// Package postgres is the store.Store for several Gatehouse instances that
// share one PostgreSQL database (DESIGN §8), through a jackc/pgx connection
// pool. It keeps the same contract as the embedded SQLite store and must
// pass store/storetest unchanged.
//
// Open parses the DSN, connects (a clear error when the server cannot be
// reached, never showing the password), and applies the embedded, numbered
// migrations in migrations/ under an advisory lock, so that instances
// starting together migrate once. Gatehouse wants a database, or a schema
// named by search_path, of its own: its tables are called users, sessions,
// settings.
//
// What SQLite got from its single writer, this package gets from the
// server, because the other writers are other processes: unique indexes
// for emails, ids and digests; row locks (SELECT … FOR UPDATE, ON CONFLICT
// DO UPDATE) for read-modify-write; a transaction-level advisory lock per
// address for the mail limit; FOR UPDATE SKIP LOCKED for the outbox. Each
// method's comment says which, and why it holds across instances.
//
// Times are timestamptz, which keeps microseconds exactly as the SQLite
// store's INTEGER microseconds do; "none" (an unused token, a message
// without a deadline, no ban) is NULL. Emails are folded in Go, and the key
// columns use the "C" collation, so that uniqueness and order are those of
// the SQLite store whatever the database's locale.
//
// It imports the standard library, store and pgx only: no Caddy, no
// caddyauth, no handlers. Its tests start a throwaway server with pgtest.
package postgres
