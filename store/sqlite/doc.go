// Package sqlite is the embedded store.Store: one SQLite file, opened with
// the pure-Go modernc.org/sqlite driver (no cgo), so that a Caddy built with
// xcaddy needs no C toolchain and no database server.
//
// Open creates the file (0600) and its directory (0700) when missing and
// applies the embedded, numbered migrations in migrations/, each in its own
// transaction. The store keeps two database/sql handles: a single writer
// connection, so that writers queue in Go rather than fight over SQLite's
// lock, and a pool of read-only connections, which WAL lets run beside it.
// Every pragma is in the DSN, so each new connection gets it.
//
// It imports the standard library, store and the SQLite driver only: no
// Caddy, no caddyauth, no handlers. It must pass store/storetest.
package sqlite
