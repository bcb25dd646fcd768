// Package handlers is Gatehouse's HTTP layer: the fastapi-users compatible
// JSON API, and the guard's decision and header logic. It speaks net/http
// only.
//
// It imports caddyauth and store. It must not import Caddy or zap (the
// root package adapts these handlers into Caddy modules and hands over
// what they need from Caddy as plain functions), nor any store
// implementation.
package handlers
