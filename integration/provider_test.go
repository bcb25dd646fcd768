package integration

import (
	"fmt"
	"net/http"
	"testing"
)

// TestAuthenticationProvider runs a JSON config in which Caddy's own
// `authentication` handler uses the gatehouse provider, and a `headers`
// handler after it uses the {http.auth.user.*} placeholders.
func TestAuthenticationProvider(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	port := freePort(t)
	cfg := fmt.Sprintf(`{
	"admin": {"disabled": true},
	"apps": {
		"gatehouse": {"database": {"driver": "sqlite", "path": "./gatehouse.db"}},
		"http": {"servers": {"srv": {
			"listen": ["127.0.0.1:%d"],
			"automatic_https": {"disable": true},
			"routes": [
				{"handle": [{"handler": "gatehouse_endpoints"}]},
				{"handle": [
					{"handler": "authentication", "providers": {"gatehouse": {}}},
					{"handler": "headers", "request": {"set": {
						"X-Auth-Id": ["{http.auth.user.id}"],
						"X-Auth-Email": ["{http.auth.user.email}"],
						"X-Auth-Roles": ["{http.auth.user.roles}"]
					}}},
					{"handler": "reverse_proxy", "upstreams": [{"dial": "%s"}]}
				]}
			]
		}}}
	}
}`, port, up.Addr)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	c := startCaddy(t, cfg, withConfigName("caddy.json"), withReadyURL(base+"/"))
	cl := newClient(base)
	u := register(t, cl, "prov@example.com", "provider-password")
	dbExec(t, c.Path("gatehouse.db"), `UPDATE users SET roles = '["ops"]' WHERE id = ?`, u.ID)
	token := loginJWT(t, cl, "prov@example.com", "provider-password")
	cookie := loginCookie(t, cl, "prov@example.com", "provider-password")

	for name, opt := range map[string]reqOpt{"bearer": bearer(token), "cookie": withCookie(cookie)} {
		t.Run(name, func(t *testing.T) {
			path := uniquePath("/app")
			wantStatus(t, cl.get(t, path, opt, header("Remote-User", "evil"), header("X-Auth-Id", "evil")), http.StatusOK)
			got := up.Last(t, path)
			wantIdentity(t, got, map[string]string{"Remote-User": "prov@example.com", "Remote-Email": "prov@example.com",
				"Remote-User-Id": u.ID, "Remote-Groups": "ops"})
			for h, want := range map[string]string{"X-Auth-Id": u.ID, "X-Auth-Email": "prov@example.com", "X-Auth-Roles": "ops"} {
				if v := got.Values(h); len(v) != 1 || v[0] != want {
					t.Errorf("%s = %q, want [%q]", h, v, want)
				}
			}
			if a := got.Values("Authorization"); len(a) != 0 {
				t.Errorf("Authorization reached the upstream: %q", a)
			}
			if ck := got.Values("Cookie"); len(ck) != 0 {
				t.Errorf("Cookie reached the upstream: %q", ck)
			}
		})
	}

	t.Run("no session 401", func(t *testing.T) {
		for _, opts := range [][]reqOpt{nil, {bearer("garbage")}, {header("Cookie", "gatehouse_session=forged")}, {browser()}} {
			path := uniquePath("/app")
			r := cl.get(t, path, opts...)
			wantStatus(t, r, http.StatusUnauthorized)
			up.NeverSaw(t, path)
		}
		wantStatus(t, cl.do(t, http.MethodPost, "/auth/jwt/logout", nil, bearer(token)), http.StatusNoContent)
		path := uniquePath("/app")
		wantStatus(t, cl.get(t, path, bearer(token)), http.StatusUnauthorized)
		up.NeverSaw(t, path)
	})
}
