// Package gatehouse is the Caddy module of Gatehouse: user accounts for any
// web application, served by Caddy itself.
//
// It registers the `gatehouse` app (which owns the store, shared across
// config reloads), the http.handlers.gatehouse_endpoints and
// http.handlers.gatehouse_guard handlers, the
// http.authentication.providers.gatehouse provider, their Caddyfile
// syntax, and the `caddy gatehouse` command. It is the only package that
// imports Caddy; the logic lives in caddyauth (the core) and handlers (the
// HTTP layer), and the data in store.
package gatehouse
