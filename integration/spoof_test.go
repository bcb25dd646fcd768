package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// spoofedHeaders are identity headers as a client might forge them: every
// default name, in several cases, with '_' instead of '-', and repeated.
// Go's client would canonicalise these names, so they are written raw.
const spoofedHeaders = `Remote-User: evil-1
remote-user: evil-2
REMOTE-USER: evil-3
Remote_User: evil-4
remote_user: evil-5
Remote-User: evil-6
rEmOtE-uSeR: evil-7
Remote-Email: evil@evil.example
remote_email: evil@evil.example
REMOTE-EMAIL: evil@evil.example
Remote-User-Id: 00000000-0000-4000-8000-000000000000
REMOTE_USER_ID: 00000000-0000-4000-8000-000000000000
remote-user-id: 00000000-0000-4000-8000-000000000000
Remote-Name: Mallory
remote_name: Mallory
Remote-Groups: admin
REMOTE_GROUPS: admin
remote-groups: admin,superuser
`

// TestHeaderSpoofing sends forged identity headers on authenticated,
// public and rejected requests: the upstream sees only Gatehouse's values,
// or none, or no request at all. Modelled on Caddy's
// caddytest/integration/forwardauth_test.go.
func TestHeaderSpoofing(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	port := freePort(t)
	site := fmt.Sprintf(`gatehouse_endpoints
route {
	gatehouse_guard {
		allow /public/*
	}
	gatehouse_guard /admin/* {
		require role admin
	}
	reverse_proxy %s
}`, up.Addr)
	c := startCaddy(t, gatehouseConfig(port, "", site))
	cl := newClient(c.URL)
	addr := hostPort(t, c.URL)
	u := register(t, cl, "victim@example.com", "victim-password")
	token := loginJWT(t, cl, "victim@example.com", "victim-password")
	cookie := loginCookie(t, cl, "victim@example.com", "victim-password")
	mine := map[string]string{"Remote-User": "victim@example.com", "Remote-Email": "victim@example.com", "Remote-User-Id": u.ID}

	send := func(t *testing.T, path, credential string) *response {
		t.Helper()
		raw := "GET " + path + " HTTP/1.1\nHost: " + addr + "\n" + credential + spoofedHeaders + "Connection: close\n\n"
		return rawRequest(t, addr, raw)
	}

	cases := []struct {
		name       string
		path       string
		credential string // a header line, or ""
		status     int
		want       map[string]string // identity upstream; nil: none
		foreign    bool              // the Authorization header is not Gatehouse's and must pass as sent
	}{
		{"authenticated bearer", "/app", "Authorization: Bearer " + token + "\n", http.StatusOK, mine, false},
		{"authenticated cookie", "/app", "Cookie: " + cookie.Name + "=" + cookie.Value + "\n", http.StatusOK, mine, false},
		{"public anonymous", "/public", "", http.StatusOK, nil, false},
		{"public with session", "/public", "Authorization: Bearer " + token + "\n", http.StatusOK, mine, false},
		{"public with a damaged token of ours", "/public", "Authorization: Bearer " + token + "x\n", http.StatusOK, nil, false},
		{"public with a foreign token", "/public", "Authorization: Bearer app-api-key-123\n", http.StatusOK, nil, true},
		{"rejected anonymous", "/app", "", http.StatusUnauthorized, nil, false},
		{"rejected bad token", "/app", "Authorization: Bearer not-a-token\n", http.StatusUnauthorized, nil, false},
		{"rejected forged cookie", "/app", "Cookie: gatehouse_session=forged\n", http.StatusUnauthorized, nil, false},
		{"rejected by require", "/admin", "Authorization: Bearer " + token + "\n", http.StatusForbidden, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := uniquePath(tc.path)
			r := send(t, path, tc.credential)
			wantStatus(t, r, tc.status)
			if tc.status != http.StatusOK {
				up.NeverSaw(t, path)
				return
			}
			got := up.Last(t, path)
			wantIdentity(t, got, tc.want)
			// No header of any spelling carries a forged value.
			for _, h := range got.Raw {
				if strings.Contains(h.Value, "evil") || strings.Contains(h.Value, "Mallory") ||
					strings.Contains(h.Value, "00000000-0000-4000-8000-000000000000") {
					t.Errorf("forged header reached the upstream: %s: %s", h.Name, h.Value)
				}
			}
			// Gatehouse's tokens, even damaged ones, never go upstream; a
			// token that is not Gatehouse's passes untouched.
			a := got.Values("Authorization")
			switch {
			case tc.foreign && (len(a) != 1 || a[0] != "Bearer app-api-key-123"):
				t.Errorf("foreign Authorization upstream: %q, want it as sent", a)
			case !tc.foreign && len(a) != 0:
				t.Errorf("Authorization reached the upstream: %q", a)
			}
			if ck := got.Values("Cookie"); len(ck) != 0 {
				t.Errorf("Cookie reached the upstream: %q", ck)
			}
		})
	}

	t.Run("duplicate session cookies", func(t *testing.T) {
		// A forged cookie of the same name before the real one, in two
		// Cookie lines: the real one authenticates, both are stripped,
		// the unrelated cookies pass.
		path := uniquePath("/app")
		credential := "Cookie: gatehouse_session=forged; theme=dark\nCookie: lang=en; gatehouse_session=" + cookie.Value + "\n"
		wantStatus(t, send(t, path, credential), http.StatusOK)
		got := up.Last(t, path)
		wantIdentity(t, got, mine)
		var names []string
		for _, ck := range got.Cookies() {
			names = append(names, ck.Name+"="+ck.Value)
		}
		if strings.Join(names, "; ") != "theme=dark; lang=en" {
			t.Errorf("upstream cookies = %q, want theme=dark; lang=en", names)
		}
	})

	t.Run("our token in a second Authorization header", func(t *testing.T) {
		// Several Authorization headers, the token behind a tab: every
		// value carrying a Gatehouse token is removed, whichever header
		// it is in; the application's own value passes as sent.
		for _, tc := range []struct {
			name, path, credential string
			want                   map[string]string
		}{
			{"public", "/public", "Authorization: Basic dXNlcjpwYXNz\nAuthorization: Bearer\t" + token + "\n", mine},
			{"cookie session", "/app", "Authorization: Basic dXNlcjpwYXNz\nAuthorization: Bearer " + token + "\nCookie: " + cookie.Name + "=" + cookie.Value + "\n", mine},
			{"damaged token", "/public", "Authorization: Basic dXNlcjpwYXNz\nAuthorization: Bearer " + token + "x\n", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				path := uniquePath(tc.path)
				wantStatus(t, send(t, path, tc.credential), http.StatusOK)
				got := up.Last(t, path)
				wantIdentity(t, got, tc.want)
				if a := got.Values("Authorization"); len(a) != 1 || a[0] != "Basic dXNlcjpwYXNz" {
					t.Errorf("upstream Authorization = %q, want only the application's Basic value", a)
				}
			})
		}
	})

	t.Run("bearer and forged identity via Go client", func(t *testing.T) {
		// The same through net/http, with repeated values of one header.
		path := uniquePath("/app")
		r := cl.get(t, path, bearer(token), addHeader("Remote-User", "evil-a"), addHeader("Remote-User", "evil-b"),
			addHeader("Remote-Groups", "admin"))
		wantStatus(t, r, http.StatusOK)
		wantIdentity(t, up.Last(t, path), mine)
	})
}

// TestHeaderSpoofingAllowlisted: Caddy itself drops every header with an
// '_' or '.' in its name unless the server allowlists it
// (expected_underscore_headers, expected_dot_headers). With the allowlists
// on, those spellings reach Gatehouse, and Gatehouse alone must strip
// them: CGI, PHP and WSGI backends fold Remote_User (and PHP Remote.User)
// into the same REMOTE_USER as Remote-User.
func TestHeaderSpoofingAllowlisted(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	port := freePort(t)
	cfg := fmt.Sprintf(`{
	admin off
	servers {
		expected_underscore_headers remote_* x_email
		expected_dot_headers remote.* x.email
	}
	gatehouse {
		database sqlite ./gatehouse.db
	}
}

http://127.0.0.1:%d {
	gatehouse_endpoints
	gatehouse_guard {
		allow /public/*
	}
	handle /renamed/* {
		gatehouse_guard {
			header email X-Email
		}
		reverse_proxy %[2]s
	}
	reverse_proxy %[2]s
}
`, port, up.Addr)
	c := startCaddy(t, cfg)
	cl := newClient(c.URL)
	addr := hostPort(t, c.URL)
	u := register(t, cl, "victim@example.com", "victim-password")
	token := loginJWT(t, cl, "victim@example.com", "victim-password")
	mine := map[string]string{"Remote-User": "victim@example.com", "Remote-Email": "victim@example.com", "Remote-User-Id": u.ID}

	// One value per name: Caddy drops allowlisted headers that repeat.
	const forged = "Remote_User: evil-1\nremote_email: evil@evil.example\nREMOTE_USER_ID: evil-id\nRemote_Name: Mallory\n" +
		"remote_groups: admin\nX_Email: evil@evil.example\n"
	const forgedDots = "Remote.User: evil-1\nremote.email: evil@evil.example\nREMOTE.USER.ID: evil-id\nRemote.Name: Mallory\n" +
		"remote.groups: admin\nX.Email: evil@evil.example\n"
	renamed := map[string]string{"Remote-User-Id": u.ID, "X-Email": "victim@example.com"}
	for _, tc := range []struct {
		name, path, credential, forged string
		want                           map[string]string
	}{
		{"authenticated", "/app", "Authorization: Bearer " + token + "\n", forged, mine},
		{"public anonymous", "/public", "", forged, nil},
		{"public with session", "/public", "Authorization: Bearer " + token + "\n", forged, mine},
		{"renamed header", "/renamed", "Authorization: Bearer " + token + "\n", forged, renamed},
		{"dots authenticated", "/app", "Authorization: Bearer " + token + "\n", forgedDots, mine},
		{"dots public anonymous", "/public", "", forgedDots, nil},
		{"dots renamed header", "/renamed", "Authorization: Bearer " + token + "\n", forgedDots, renamed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := uniquePath(tc.path)
			r := rawRequest(t, addr, "GET "+path+" HTTP/1.1\nHost: "+addr+"\n"+tc.credential+tc.forged+"Connection: close\n\n")
			wantStatus(t, r, http.StatusOK)
			got := up.Last(t, path)
			wantIdentity(t, got, tc.want)
			// Every name a backend may fold onto an identity header of this
			// guard carries Gatehouse's value or nothing. (X_Email is an
			// identity header only where the guard renames email to it.)
			names := append([]string(nil), identityHeaders...)
			if tc.path == "/renamed" {
				names = append(names, "X-Email")
			}
			for _, h := range got.Raw {
				folded := strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(h.Name))
				for _, n := range names {
					if folded == strings.ToLower(n) && h.Value != tc.want[n] {
						t.Errorf("forged header reached the upstream: %s: %s", h.Name, h.Value)
					}
				}
			}
			for n, v := range tc.want {
				if vs := got.Values(n); len(vs) != 1 || vs[0] != v {
					t.Errorf("%s = %q, want [%q]", n, vs, v)
				}
			}
		})
	}

	// Without Gatehouse in the way, the allowlist really lets these through:
	// otherwise the cases above would prove nothing.
	t.Run("control: the allowlist is effective", func(t *testing.T) {
		r := rawRequest(t, addr, "GET /public/control HTTP/1.1\nHost: "+addr+"\nX_Other_Is_Dropped: 1\nConnection: close\n\n")
		wantStatus(t, r, http.StatusOK)
		if v := up.Last(t, "/public/control").Values("X-Other-Is-Dropped"); len(v) != 0 {
			t.Errorf("a non-allowlisted underscore header passed: %q", v)
		}
	})
}
