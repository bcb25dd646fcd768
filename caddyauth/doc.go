// Package caddyauth is Gatehouse's core: accounts, password hashing and
// policy, sessions and their tokens, and the access rules the guard applies.
//
// It knows nothing of HTTP or Caddy: it must not import net/http, Caddy or
// zap, nor the handlers package. It imports store (the role interfaces) and
// takes its clock, randomness and logger from the caller, so tests drive it
// with a fake clock and a seeded reader.
package caddyauth
