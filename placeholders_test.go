package gatehouse

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

// TestSetPlaceholdersOverwrite: the guard's user replaces every
// {http.auth.user.*} value an earlier handler left, as Caddy's own
// authentication handler writes them at request time: no field may stay
// another authenticator's next to the guard's user id.
func TestSetPlaceholdersOverwrite(t *testing.T) {
	repl := caddy.NewReplacer()
	for _, k := range []string{"id", "email", "name", "roles", "verified"} {
		repl.Set("http.auth.user."+k, "stale-"+k)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	setPlaceholders(r, &caddyauth.Principal{UserID: "u-1", Email: "a@example.com", FullName: "A", Roles: []string{"ops", "dev"}, IsVerified: true})
	for k, want := range map[string]string{
		"id": "u-1", "email": "a@example.com", "name": "A", "roles": "ops,dev", "verified": "true",
	} {
		if got, _ := repl.GetString("http.auth.user." + k); got != want {
			t.Errorf("{http.auth.user.%s} = %q, want %q", k, got, want)
		}
	}
}
