// Command caddy is Caddy with its standard modules plus Gatehouse: what
// `go run ./cmd/caddy` runs and what the integration tests build. For a
// production build with other plugins, see xcaddy.md.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// Gatehouse.
	_ "github.com/gatehouse-caddy/gatehouse"
)

func main() {
	caddycmd.Main()
}
