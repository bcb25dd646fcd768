// Package integration holds Gatehouse's black-box tests: they build the
// real caddy binary (./cmd/caddy) once, start it with real Caddyfiles and
// JSON configs in throw-away directories, and drive it over plain HTTP on
// loopback against a real upstream server that records what it receives.
//
// The harness (harness_test.go) is meant to be shared by every test file of
// this package: TestMain builds the binary into caddyBin; startUpstream,
// startCaddy, freePort, newClient and the register/login helpers are
// documented there.
//
// The tests of Gatehouse's behaviour import none of its packages: they see
// the server only as a user does, through its configuration, its command
// line, its database file, the mail it sends and the wire. The only
// non-standard import there is modernc.org/sqlite, to change rows that no
// API can (making a superuser). TestMailpitHarness, a check of the SMTP
// test server itself, drives it with the mailer package's transport.
//
// Every server these tests start listens on 127.0.0.1 or localhost and
// every request they send goes there.
package integration
