package integration

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// spoofedHeaders are identity headers as a client might forge them: every
// default name, in several cases, with '_' or '.' instead of '-' (or a
// mix), and repeated. Go's client would canonicalise these names, so they
// are written raw. (Caddy drops the '_' and '.' names by default;
// TestHeaderSpoofingAllowlisted lets them through to Gatehouse.)
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
Remote.User: evil-8
remote.email: evil@evil.example
Remote_User-Id: 00000000-0000-4000-8000-000000000000
remote.user_id: 00000000-0000-4000-8000-000000000000
REMOTE-NAME: Mallory
remote-name: Mallory
Remote.Name: Mallory
Remote-Groups: evil-group
Remote.Groups: evil-group
`

// spoofedRenamed forges the names a guard renames identity fields to
// (header email X-Email, header verified X-Verified, header roles X-Roles).
const spoofedRenamed = `X-Email: evil@evil.example
x-email: evil@evil.example
X-EMAIL: evil@evil.example
X-Email: evil-again@evil.example
X-Verified: true
x-verified: true
X-Roles: evil-group
x-roles: evil-group,admin
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
handle /renamed/* {
	gatehouse_guard {
		allow /renamed/public/*
		header email X-Email
		header verified X-Verified
		header roles X-Roles
	}
	reverse_proxy %[1]s
}
handle {
	route {
		gatehouse_guard {
			allow /public/*
		}
		gatehouse_guard /admin/* {
			require role admin
		}
		reverse_proxy %[1]s
	}
}`, up.Addr)
	c := startCaddy(t, gatehouseConfig(port, "", site))
	cl := newClient(c.URL)
	addr := hostPort(t, c.URL)
	u := register(t, cl, "victim@example.com", "victim-password")
	token := loginJWT(t, cl, "victim@example.com", "victim-password")
	cookie := loginCookie(t, cl, "victim@example.com", "victim-password")
	mine := map[string]string{"Remote-User": "victim@example.com", "Remote-Email": "victim@example.com", "Remote-User-Id": u.ID}
	// vic has a name and a role, so that every identity header is set by
	// Gatehouse, and must arrive once, with Gatehouse's value.
	vic := registerWith(t, cl, map[string]any{"email": "vic@example.com", "password": "vic-password", "full_name": "Victoria Victim"})
	dbExec(t, c.Path("gatehouse.db"), `UPDATE users SET roles = '["staff"]' WHERE id = ?`, vic.ID)
	vicToken := loginJWT(t, cl, "vic@example.com", "vic-password")
	vics := map[string]string{"Remote-User": "vic@example.com", "Remote-Email": "vic@example.com", "Remote-User-Id": vic.ID,
		"Remote-Name": "Victoria Victim", "Remote-Groups": "staff"}

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
		{"all fields, bearer", "/app", "Authorization: Bearer " + vicToken + "\n", http.StatusOK, vics, false},
		{"all fields, public", "/public", "Authorization: Bearer " + vicToken + "\n", http.StatusOK, vics, false},
		{"public with a cookie session", "/public", "Cookie: " + cookie.Name + "=" + cookie.Value + "\n", http.StatusOK, mine, false},
		{"lower-case authorization and scheme", "/app", "authorization: bearer " + token + "\n", http.StatusOK, mine, false},
		{"upper-case authorization and scheme", "/public", "AUTHORIZATION: BEARER " + token + "\n", http.StatusOK, mine, false},
		// Our token with more words in the value does not authenticate,
		// and is not passed on either: the upstream could pick it out.
		{"public with words after our token", "/public", "Authorization: Bearer " + token + " extra\n", http.StatusOK, nil, false},
		{"public with our token in a list", "/public", "Authorization: Bearer " + token + ", Basic dXNlcjpwYXNz\n", http.StatusOK, nil, false},
		{"public with our token under another scheme", "/public", "Authorization: Token " + token + "\n", http.StatusOK, nil, false},
		{"rejected with words after our token", "/app", "Authorization: Bearer " + token + " extra\n", http.StatusUnauthorized, nil, false},
		{"rejected browser", "/app", "Accept: text/html\n", http.StatusFound, nil, false},
		{"rejected by require, cookie", "/admin", "Cookie: " + cookie.Name + "=" + cookie.Value + "\n", http.StatusForbidden, nil, false},
		{"rejected by require, another role", "/admin", "Authorization: Bearer " + vicToken + "\n", http.StatusForbidden, nil, false},
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
			noForgedValue(t, got)
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

	t.Run("renamed headers", func(t *testing.T) {
		// A guard that renames fields strips the new names as well as the
		// defaults, and sends each field once under its new name only.
		names := append([]string{"X-Email", "X-Verified", "X-Roles"}, identityHeaders...)
		for _, tc := range []struct {
			name, path, credential string
			status                 int
			want                   map[string]string // every identity name upstream; nil: none
		}{
			{"all fields", "/renamed/app", "Authorization: Bearer " + vicToken + "\n", http.StatusOK, map[string]string{
				"X-Email": "vic@example.com", "X-Verified": "false", "X-Roles": "staff", "Remote-User-Id": vic.ID, "Remote-Name": "Victoria Victim"}},
			{"cookie, no name or role", "/renamed/app", "Cookie: " + cookie.Name + "=" + cookie.Value + "\n", http.StatusOK, map[string]string{
				"X-Email": "victim@example.com", "X-Verified": "false", "Remote-User-Id": u.ID}},
			{"public anonymous", "/renamed/public", "", http.StatusOK, nil},
			{"public with session", "/renamed/public", "Authorization: Bearer " + vicToken + "\n", http.StatusOK, map[string]string{
				"X-Email": "vic@example.com", "X-Verified": "false", "X-Roles": "staff", "Remote-User-Id": vic.ID, "Remote-Name": "Victoria Victim"}},
			{"rejected anonymous", "/renamed/app", "", http.StatusUnauthorized, nil},
			{"rejected bad token", "/renamed/app", "Authorization: Bearer not-a-token\n", http.StatusUnauthorized, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				path := uniquePath(tc.path)
				wantStatus(t, send(t, path, tc.credential+spoofedRenamed), tc.status)
				if tc.status != http.StatusOK {
					up.NeverSaw(t, path)
					return
				}
				got := up.Last(t, path)
				wantOnly(t, got, names, tc.want)
				noForgedValue(t, got)
				if a := got.Values("Authorization"); len(a) != 0 {
					t.Errorf("Authorization reached the upstream: %q", a)
				}
			})
		}
	})

	t.Run("folded lines", func(t *testing.T) {
		// obs-fold: a line that starts with a space or tab continues the
		// previous field. Go's server (as of Go 1.26) joins it onto that
		// value with a space, as RFC 9112 §5.2 allows; a fold before the
		// first field, or onto Host, is a 400. Either way a forged value
		// must not come out of it as an identity header, and a fold must
		// not carry our token upstream inside another value.
		for _, tc := range []struct {
			name, path, lines string // lines: raw header lines, after Host
			status            int
			want              map[string]string
		}{
			{"folded identity header, authenticated", "/app", "Authorization: Bearer " + token + "\r\nRemote-User: evil-a\r\n evil-b\r\nRemote-Groups: evil-c\r\n\tadmin\r\n", http.StatusOK, mine},
			{"folded identity header, public", "/public", "Remote-User: evil-a\r\n evil-b\r\nRemote-Email: \r\n evil@evil.example\r\n", http.StatusOK, nil},
			{"folded identity header, rejected", "/app", "Remote-User: evil-a\r\n evil-b\r\n", http.StatusUnauthorized, nil},
			{"folded identity header, forbidden", "/admin", "Authorization: Bearer " + token + "\r\nRemote-Groups: evil-c\r\n admin\r\n", http.StatusForbidden, nil},
			// The continuation becomes part of X-Note's value, which is the
			// application's business; it is no identity header.
			{"identity header folded into another", "/app", "Authorization: Bearer " + token + "\r\nX-Note: a\r\n Remote-User: evil-d\r\n", http.StatusOK, mine},
			{"identity header folded into our token, public", "/public", "Authorization: Bearer " + token + "\r\n Remote-User: evil-e\r\n", http.StatusOK, nil},
			{"identity header folded into our token, rejected", "/app", "Authorization: Bearer " + token + "\r\n Remote-User: evil-e\r\n", http.StatusUnauthorized, nil},
			{"fold before the first field", "/public", " Remote-User: evil-f\r\n", http.StatusBadRequest, nil},
			{"fold onto Host", "/public", "\tRemote-User: evil-g\r\n", http.StatusBadRequest, nil},
			{"space before the colon", "/public", "Remote-User : evil-h\r\n", http.StatusBadRequest, nil},
			{"tab before the colon", "/public", "Remote-User\t: evil-i\r\n", http.StatusBadRequest, nil},
			{"look-alike dash", "/public", "Remote\u2010User: evil-j\r\n", http.StatusBadRequest, nil},
			{"NUL in the value", "/public", "Remote-User: evil\x00-k\r\n", http.StatusBadRequest, nil},
			{"CR in the value", "/public", "Remote-User: evil-l\rRemote-Email: evil@evil.example\r\n", http.StatusBadRequest, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				path := uniquePath(tc.path)
				var raw string
				if strings.HasPrefix(tc.name, "fold before") {
					raw = "GET " + path + " HTTP/1.1\r\n" + tc.lines + "Host: " + addr + "\r\nConnection: close\r\n\r\n"
				} else {
					raw = "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n" + tc.lines + "Connection: close\r\n\r\n"
				}
				wantStatus(t, rawRequest(t, addr, raw), tc.status)
				if tc.status != http.StatusOK {
					up.NeverSaw(t, path)
					return
				}
				got := up.Last(t, path)
				wantIdentity(t, got, tc.want)
				for _, h := range got.Raw {
					if strings.Contains(h.Value, token) {
						t.Errorf("our token reached the upstream in %s: %s", h.Name, h.Value)
					}
				}
			})
		}
	})
}

// noForgedValue fails if any header the upstream received, of any name,
// carries a value from spoofedHeaders or spoofedRenamed.
func noForgedValue(t testing.TB, got upstreamRequest) {
	t.Helper()
	for _, h := range got.Raw {
		if strings.Contains(h.Value, "evil") || strings.Contains(h.Value, "Mallory") ||
			strings.Contains(h.Value, "00000000-0000-4000-8000-000000000000") {
			t.Errorf("forged header reached the upstream: %s: %s", h.Name, h.Value)
		}
	}
}

// wantOnly is wantIdentity over the given names: each one in want arrives
// exactly once (in every spelling together) with that value, every other
// one not at all.
func wantOnly(t testing.TB, got upstreamRequest, names []string, want map[string]string) {
	t.Helper()
	for _, name := range names {
		vs := got.Values(name)
		w, ok := want[name]
		switch {
		case !ok && len(vs) != 0:
			t.Errorf("upstream got %s = %q, want it absent", name, vs)
		case ok && (len(vs) != 1 || vs[0] != w):
			t.Errorf("upstream got %s = %q, want exactly [%q]", name, vs, w)
		}
	}
	for name := range want {
		if !slices.Contains(names, name) {
			t.Fatalf("wantOnly: %s is not among the names checked", name)
		}
	}
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
