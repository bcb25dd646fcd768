// Command bench measures what Gatehouse costs a request on top of Caddy's
// plain reverse_proxy, how fast it logs people in, and whether either
// changes with a million accounts (issue 6), or with the accounts in
// PostgreSQL instead of SQLite (issue 7). Run it from anywhere in the
// repository:
//
//	go run ./bench -chart docs/bench-guard.svg
//
// It builds ./cmd/caddy into a temporary directory, installs wrk with
// apt-get if it is missing (as root; otherwise it says how), and starts a
// small upstream and a small forward-auth service in this process. Unless
// -skip-pg, it also starts a PostgreSQL server of its own on 127.0.0.1
// (store/postgres/pgtest's, but durable: fsync and synchronous_commit on,
// as SQLite's synchronous=FULL), installing Debian's postgresql with
// apt-get if it is missing, likewise. Then:
//
//   - Guard. In each of -rounds rounds it starts a fresh Caddy per setup:
//     plain reverse_proxy (the baseline), gatehouse_guard with a JWT, with
//     a cookie, on an allowed path anonymously, basic_auth with bcrypt,
//     forward_auth to the auth service, a control, the cookie setup's
//     request through gatehouse_endpoints without the guard, and the JWT
//     and cookie setups again with `database postgres <dsn>` (jwt-pg,
//     cookie-pg; -setups chooses, and a PostgreSQL setup brings its
//     SQLite twin). Each Gatehouse setup has a fresh database: an SQLite
//     file, or a new database on the PostgreSQL server. Every proxy keeps
//     256 idle upstream connections.
//     After checking that the upstream receives the right Remote-User
//     (and that the protected setups answer 401 without a credential), it
//     measures every setup saturated with wrk (requests per second, and
//     the ratio to the same round's baseline), then at a fixed rate well
//     below saturation with vegeta (Caddy's CPU time per request, read
//     from /proc/<pid>/stat, and the latency percentiles), each phase in
//     -slices slices interleaved between the setups, the order rotated
//     per round; then it reads Caddy's resident size. CPU profiles of the
//     baseline and of the guard, saturated and at the fixed rate, are
//     taken afterwards from Caddy's admin endpoint. The PostgreSQL setups
//     are compared with their SQLite twins of the same round as every
//     setup is with the baseline (issue 7: at least 0.95 of the
//     throughput).
//   - Logins. It times argon2id in this process with the server's own
//     defaults, alone and with as many hashes at once as Caddy has
//     hashing slots, which gives the bound on logins per second; drives
//     logins at saturation (profiled); registers from 64 clients at once,
//     with the default hashing queue and with one that lets every client
//     wait; and sends 500 simultaneous logins to a fresh server, reading
//     its peak resident size against the README's bound.
//   - Stores. Two Caddys serving the account endpoints, one on SQLite and
//     one on PostgreSQL, both letting every client wait for a hashing
//     slot: -store-ops registrations and then logins one after another
//     per store, alternating between the stores, and batches of 64
//     clients registering at once (-register-clients), in the order
//     SQLite, PostgreSQL, PostgreSQL, SQLite; latencies side by side.
//     The PostgreSQL server is stopped after this phase.
//   - Scale. It builds and runs bench/seed for a database of a million
//     users and sessions, and compares a guarded Caddy on it with one on
//     an empty database: sequential login latency and guard throughput.
//
// The report, with issue 6's targets marked PASS or MISS, goes to
// standard output and to bench/results/<timestamp>.md, the profiles next
// to it; -chart writes an SVG chart of the guard figures. -quick runs
// every phase briefly, to check the harness, not to report; -skip-guard,
// -skip-login, -skip-stores and -skip-scale leave phases out, -skip-pg
// everything on PostgreSQL; see -help for the rest.
//
// Everything listens on and talks to 127.0.0.1 only. The program is
// Linux-only at run time (it reads /proc); its tests run anywhere and
// never start a server or load.
//
// It imports caddyauth only to time the password hash with the server's
// own parameters; it must not import the Caddy module or handlers: the
// server is measured as the separate process users run.
package main
