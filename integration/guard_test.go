package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestGuard covers the guard's decisions: browser redirects, API 401s,
// allowed paths, require rules, header renames, login_url, and two guards
// on one request.
func TestGuard(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	port := freePort(t)
	site := fmt.Sprintf(`gatehouse_endpoints
handle /v/* {
	gatehouse_guard {
		allow /v/public/*
		require verified
	}
	reverse_proxy %[1]s
}
handle /su/* {
	gatehouse_guard {
		require superuser
	}
	reverse_proxy %[1]s
}
handle /role/* {
	gatehouse_guard {
		require role editor admin
		require role staff
	}
	reverse_proxy %[1]s
}
handle /renamed/* {
	gatehouse_guard {
		allow /renamed/public/*
		header email X-Email
		header id X-Uid
		header roles X-Roles
		header verified X-Verified
	}
	reverse_proxy %[1]s
}
handle /custom-login/* {
	gatehouse_guard {
		login_url https://login.example.com/signin?app=1
	}
	reverse_proxy %[1]s
}
handle {
	route {
		gatehouse_guard {
			allow /public/* /favicon.ico
		}
		gatehouse_guard /admin/* {
			require role admin
		}
		reverse_proxy %[1]s
	}
}`, up.Addr)
	c := startCaddy(t, gatehouseConfig(port, "", site))
	cl := newClient(c.URL)
	db := c.Path("gatehouse.db")

	// plain: unverified, no roles. vera: verified, editor+staff. ada: admin role.
	plain := register(t, cl, "plain@example.com", "plain-password")
	vera := register(t, cl, "vera@example.com", "vera-password")
	ada := register(t, cl, "ada@example.com", "ada-password")
	dbExec(t, db, `UPDATE users SET is_verified = 1, roles = '["editor","staff"]' WHERE id = ?`, vera.ID)
	dbExec(t, db, `UPDATE users SET is_superuser = 1, roles = '["admin"]' WHERE id = ?`, ada.ID)
	plainTok := loginJWT(t, cl, "plain@example.com", "plain-password")
	veraTok := loginJWT(t, cl, "vera@example.com", "vera-password")
	adaTok := loginJWT(t, cl, "ada@example.com", "ada-password")

	t.Run("browser redirect", func(t *testing.T) {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			path := uniquePath("/app")
			r := cl.do(t, method, path+"?x=1&y=a%20b", nil, browser())
			wantStatus(t, r, http.StatusFound)
			want := "/auth/login?rd=" + url.QueryEscape(c.URL+path+"?x=1&y=a%20b")
			if loc := r.Header.Get("Location"); loc != want {
				t.Errorf("%s: Location = %q, want %q", method, loc, want)
			}
			up.NeverSaw(t, path)
		}
		// login_url with a query of its own.
		path := uniquePath("/custom-login")
		r := cl.get(t, path, browser())
		wantStatus(t, r, http.StatusFound)
		want := "https://login.example.com/signin?app=1&rd=" + url.QueryEscape(c.URL+path)
		if loc := r.Header.Get("Location"); loc != want {
			t.Errorf("Location = %q, want %q", loc, want)
		}
		up.NeverSaw(t, path)
	})

	t.Run("API client 401", func(t *testing.T) {
		for _, opts := range [][]reqOpt{
			nil,
			{header("Accept", "application/json")},
			{bearer("garbage")},
		} {
			path := uniquePath("/app")
			wantDetail(t, cl.get(t, path, opts...), http.StatusUnauthorized, "Unauthorized")
			up.NeverSaw(t, path)
		}
		// A POST is never redirected, even from a browser.
		path := uniquePath("/app")
		wantDetail(t, cl.do(t, http.MethodPost, path, strings.NewReader("a=b"), browser()), http.StatusUnauthorized, "Unauthorized")
		up.NeverSaw(t, path)
	})

	t.Run("allow", func(t *testing.T) {
		for _, p := range []string{uniquePath("/public"), "/favicon.ico"} {
			wantStatus(t, cl.get(t, p), http.StatusOK)
			wantIdentity(t, up.Last(t, p), nil)
			wantStatus(t, cl.get(t, p, bearer(plainTok)), http.StatusOK)
			wantIdentity(t, up.Last(t, p), map[string]string{"Remote-User": "plain@example.com",
				"Remote-Email": "plain@example.com", "Remote-User-Id": plain.ID})
		}
		// A bad credential on an allowed path is no session: anonymous, not 401.
		p := uniquePath("/public")
		wantStatus(t, cl.get(t, p, bearer("garbage"), header("Cookie", "gatehouse_session=forged")), http.StatusOK)
		got := up.Last(t, p)
		wantIdentity(t, got, nil)
		if ck := got.Header.Get("Cookie"); ck != "" {
			t.Errorf("a forged session cookie reached the upstream: %q", ck)
		}
		// Caddy's path matcher: /public is not /public/*, and case-insensitive.
		p = "/public"
		wantDetail(t, cl.get(t, p), http.StatusUnauthorized, "Unauthorized")
		p = uniquePath("/PUBLIC")
		wantStatus(t, cl.get(t, p), http.StatusOK)
	})

	t.Run("require verified", func(t *testing.T) {
		p := uniquePath("/v/app")
		wantDetail(t, cl.get(t, p, bearer(plainTok)), http.StatusForbidden, "Forbidden")
		wantDetail(t, cl.get(t, p, bearer(plainTok), browser()), http.StatusForbidden, "Forbidden")
		up.NeverSaw(t, p)
		wantDetail(t, cl.get(t, p), http.StatusUnauthorized, "Unauthorized")
		wantStatus(t, cl.get(t, p, bearer(veraTok)), http.StatusOK)
		// Allowed paths skip require, and still carry identity.
		p = uniquePath("/v/public")
		wantStatus(t, cl.get(t, p, bearer(plainTok)), http.StatusOK)
		wantIdentity(t, up.Last(t, p), map[string]string{"Remote-User": "plain@example.com",
			"Remote-Email": "plain@example.com", "Remote-User-Id": plain.ID})
	})

	t.Run("require superuser", func(t *testing.T) {
		p := uniquePath("/su")
		wantDetail(t, cl.get(t, p, bearer(veraTok)), http.StatusForbidden, "Forbidden")
		up.NeverSaw(t, p)
		wantStatus(t, cl.get(t, p, bearer(adaTok)), http.StatusOK)
		wantIdentity(t, up.Last(t, p), map[string]string{"Remote-User": "ada@example.com",
			"Remote-Email": "ada@example.com", "Remote-User-Id": ada.ID, "Remote-Groups": "admin"})
	})

	t.Run("require role", func(t *testing.T) {
		// (editor or admin) and staff.
		p := uniquePath("/role")
		wantDetail(t, cl.get(t, p, bearer(adaTok)), http.StatusForbidden, "Forbidden")
		wantDetail(t, cl.get(t, p, bearer(plainTok)), http.StatusForbidden, "Forbidden")
		up.NeverSaw(t, p)
		wantStatus(t, cl.get(t, p, bearer(veraTok)), http.StatusOK)
		wantIdentity(t, up.Last(t, p), map[string]string{"Remote-User": "vera@example.com",
			"Remote-Email": "vera@example.com", "Remote-User-Id": vera.ID, "Remote-Groups": "editor,staff"})
	})

	t.Run("header renames", func(t *testing.T) {
		p := uniquePath("/renamed")
		r := cl.get(t, p, bearer(veraTok), header("Remote-User", "mallory"), header("X-Email", "mallory@evil.example"),
			header("Remote-Email", "mallory"), header("X-Uid", "1"), header("Remote-Groups", "admin"))
		wantStatus(t, r, http.StatusOK)
		got := up.Last(t, p)
		want := map[string]string{"X-Email": "vera@example.com", "X-Uid": vera.ID, "X-Roles": "editor,staff", "X-Verified": "true"}
		for name, v := range want {
			if vs := got.Values(name); len(vs) != 1 || vs[0] != v {
				t.Errorf("%s = %q, want [%q]", name, vs, v)
			}
		}
		// The defaults of the renamed fields are not sent, and the client's are gone.
		for _, name := range []string{"Remote-User", "Remote-Email", "Remote-User-Id", "Remote-Groups"} {
			if vs := got.Values(name); len(vs) != 0 {
				t.Errorf("%s = %q, want absent", name, vs)
			}
		}
		// An anonymous request on an allowed path: the client's values are stripped.
		p = uniquePath("/renamed/public")
		wantStatus(t, cl.get(t, p, header("Remote-User", "mallory"), header("X-Email", "mallory@evil.example"),
			header("X-Verified", "true"), header("X-Roles", "admin")), http.StatusOK)
		got = up.Last(t, p)
		for _, name := range []string{"Remote-User", "X-Email", "X-Verified", "X-Roles"} {
			if vs := got.Values(name); len(vs) != 0 {
				t.Errorf("anonymous: %s = %q, want absent", name, vs)
			}
		}
	})

	t.Run("two guards", func(t *testing.T) {
		p := uniquePath("/admin")
		wantDetail(t, cl.get(t, p), http.StatusUnauthorized, "Unauthorized")
		wantDetail(t, cl.get(t, p, bearer(veraTok)), http.StatusForbidden, "Forbidden")
		up.NeverSaw(t, p)
		// The second guard reuses the first one's verified user (the
		// credential is gone by then) and the identity is set once.
		wantStatus(t, cl.get(t, p, bearer(adaTok)), http.StatusOK)
		got := up.Last(t, p)
		wantIdentity(t, got, map[string]string{"Remote-User": "ada@example.com",
			"Remote-Email": "ada@example.com", "Remote-User-Id": ada.ID, "Remote-Groups": "admin"})
		if a := got.Values("Authorization"); len(a) != 0 {
			t.Errorf("Authorization reached the upstream: %q", a)
		}
		cookie := loginCookie(t, cl, "ada@example.com", "ada-password")
		p = uniquePath("/admin")
		wantStatus(t, cl.get(t, p, withCookie(cookie)), http.StatusOK)
		// Outside /admin the role is not needed.
		p = uniquePath("/app")
		wantStatus(t, cl.get(t, p, bearer(veraTok)), http.StatusOK)
	})

	t.Run("non-Gatehouse Authorization passes", func(t *testing.T) {
		// Basic credentials meant for the upstream are not Gatehouse's to strip.
		p := uniquePath("/public")
		wantStatus(t, cl.get(t, p, header("Authorization", "Basic dXNlcjpwYXNz")), http.StatusOK)
		if a := up.Last(t, p).Values("Authorization"); len(a) != 1 || a[0] != "Basic dXNlcjpwYXNz" {
			t.Errorf("Authorization = %q, want the client's Basic credentials", a)
		}
	})
}

// TestGuardLoginURLFollowsAPIPrefix: without login_url, a browser goes to
// <api_prefix>/login of the site's own endpoints (DESIGN §2), wherever the
// directives stand in the file; a site without endpoints uses /auth/login.
func TestGuardLoginURLFollowsAPIPrefix(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	port, bare := freePort(t), freePort(t)
	cfg := gatehouseConfig(port, "", fmt.Sprintf(`gatehouse_guard
reverse_proxy %s
gatehouse_endpoints {
	api_prefix /acct
	users_prefix /acct-users
}`, up.Addr)) + fmt.Sprintf(`
http://127.0.0.1:%d {
	gatehouse_guard
	reverse_proxy %s
}
`, bare, up.Addr)
	c := startCaddy(t, cfg)
	for _, tc := range []struct{ base, wantLogin string }{
		{c.URL, "/acct/login"},
		{fmt.Sprintf("http://127.0.0.1:%d", bare), "/auth/login"},
	} {
		cl := newClient(tc.base)
		path := uniquePath("/app")
		r := cl.get(t, path, browser())
		wantStatus(t, r, http.StatusFound)
		want := tc.wantLogin + "?rd=" + url.QueryEscape(tc.base+path)
		if loc := r.Header.Get("Location"); loc != want {
			t.Errorf("Location = %q, want %q", loc, want)
		}
		up.NeverSaw(t, path)
	}
}

// TestGuardPlaceholders: after the guard, the rest of the config sees the
// user as {http.auth.user.id}, .email, .name, .roles and .verified
// (DESIGN §5), here sent upstream by request_header.
func TestGuardPlaceholders(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	port := freePort(t)
	c := startCaddy(t, gatehouseConfig(port, "", fmt.Sprintf(`gatehouse_endpoints
gatehouse_guard
request_header X-Ph-Id {http.auth.user.id}
request_header X-Ph-Email {http.auth.user.email}
request_header X-Ph-Name {http.auth.user.name}
request_header X-Ph-Roles {http.auth.user.roles}
request_header X-Ph-Verified {http.auth.user.verified}
reverse_proxy %s`, up.Addr)))
	cl := newClient(c.URL)
	u := registerWith(t, cl, map[string]any{"email": "pia@example.com", "password": "pia-password-1", "full_name": "Pia Placeholder"})
	dbExec(t, c.Path("gatehouse.db"), `UPDATE users SET is_verified = 1, roles = '["ops","admin"]' WHERE id = ?`, u.ID)
	token := loginJWT(t, cl, "pia@example.com", "pia-password-1")

	path := uniquePath("/app")
	wantStatus(t, cl.get(t, path, bearer(token)), http.StatusOK)
	got := up.Last(t, path)
	for header, want := range map[string]string{
		"X-Ph-Id":       u.ID,
		"X-Ph-Email":    "pia@example.com",
		"X-Ph-Name":     "Pia Placeholder",
		"X-Ph-Roles":    "ops,admin",
		"X-Ph-Verified": "true",
	} {
		if v := got.Values(header); len(v) != 1 || v[0] != want {
			t.Errorf("%s = %q, want %q", header, v, want)
		}
	}
}
