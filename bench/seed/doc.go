// Command seed fills a new Gatehouse SQLite database with many users and
// sessions, for the scale benchmark of issue 6: login latency and guard
// throughput against a million accounts, and the database size per user.
//
//	go run ./bench/seed -db /tmp/seed.db -users 1000000 -sessions 1000000 -password 'correct horse'
//
// The schema is made by store/sqlite's own Open, so the migrations are
// exactly the server's; the rows then go in by direct SQL, many to a
// statement and many statements to a transaction: registering a million
// users over HTTP would spend more than a day hashing their passwords. User i has the email
// user%07d@seed.example (from 0) and a random UUID, as registration gives;
// every user is active and verified, not a superuser, and has the same
// argon2id hash of -password, made once with the server's default
// parameters, so that any of them can log in with it. Session i belongs to
// user i mod -users; sessions alternate between the bearer and the cookie
// transport, and each stores the SHA-256 digest of a fresh random token,
// valid for caddyauth.DefaultSessionLifetime from now. The tokens are not
// kept: nobody can present them.
//
// It refuses a database that exists and is not empty, unless -force, which
// deletes it (and its -wal and -shm files) first. On failure it deletes
// what it made: a half-seeded database is worse than none. It prints one
// JSON line to standard output,
//
//	{"users":1000000,"sessions":1000000,"seconds":23.652,"bytes":730460160}
//
// where bytes is the size of the database file (and of its -wal file, if
// one remains) after the final checkpoint, and seconds the wall time of
// the whole run. Progress goes to standard error. The exit status is 2 for
// bad flags, 1 for any other failure.
//
// It imports store/sqlite (the schema) and caddyauth (the password hash)
// only; it must not import the Caddy module, handlers or the bench harness,
// which runs it as a separate command.
package main
