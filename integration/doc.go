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
// Nothing here may import Gatehouse's own packages: the tests see the
// server only as a user does, through its configuration, its command line,
// its database file and the wire. The only non-standard import is
// modernc.org/sqlite, to change rows that no API can (making a superuser).
//
// Every server these tests start listens on 127.0.0.1 or localhost and
// every request they send goes there.
package integration
