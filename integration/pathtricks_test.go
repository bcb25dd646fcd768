package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"
)

// pathShapes are the documented ways to put a stricter guard on /admin/*
// behind a general one, each as a site body; %[1]s is the upstream.
var pathShapes = []struct{ name, site string }{
	{"DESIGN: gatehouse_guard /admin/* in a route", `gatehouse_endpoints
route {
	gatehouse_guard {
		allow /public/*
	}
	gatehouse_guard /admin/* {
		require role admin
	}
	reverse_proxy %[1]s
}`},
	{"README: route /admin/* with a guard", `gatehouse_endpoints
route {
	gatehouse_guard {
		allow /public/*
	}
	route /admin/* {
		gatehouse_guard {
			require role admin
		}
	}
	reverse_proxy %[1]s
}`},
	{"handle /admin/* and handle", `gatehouse_endpoints
handle /admin/* {
	gatehouse_guard {
		require role admin
	}
	reverse_proxy %[1]s
}
handle {
	gatehouse_guard {
		allow /public/*
	}
	reverse_proxy %[1]s
}`},
	// Outside a route Caddy sorts the two guards itself (the one with a
	// path matcher first).
	{"two guards at the top level", `gatehouse_endpoints
gatehouse_guard {
	allow /public/*
}
gatehouse_guard /admin/* {
	require role admin
}
reverse_proxy %[1]s`},
}

// pathTricks are request targets that published path-based auth bypasses
// used, sent byte for byte, with the exact status a user without the
// admin role and an anonymous client get. {origin} is the site's
// http://host:port. The sources: Caddy #4407 (doubled slashes, escapes),
// GHSA-g7pc-pc7g-h8jh (case with escapes), GHSA-qrp7-cvwr-j2c6
// (backslashes), go-authcrunch #110 (caddy-security: ..%2f out of an
// allowed prefix), Istio #27409 and Tomcat's ..; (path parameters),
// keycloak #52836 (%3B), CVE-2007-1860 (double encoding), IIS's %u and
// overlong UTF-8.
var pathTricks = []struct {
	target     string
	user, anon int
}{
	// Caddy's matcher unescapes, cleans and lowercases before matching:
	// all of these are /admin/x to the stricter guard.
	{"/admin/x", 403, 401},
	{"//admin/x", 403, 401},
	{"/%2fadmin/x", 403, 401},
	{"/./admin/x", 403, 401},
	{"/.%2fadmin/x", 403, 401},
	{"/%61dmin/x", 403, 401},
	{"/adm%69n/x", 403, 401},
	{"/ADMIN/x", 403, 401},
	{"/Admin/x", 403, 401},
	{"/%41DMIN%2FX", 403, 401},
	{"/public/../admin/x", 403, 401},
	{"/public/%2e%2e/admin/x", 403, 401},
	{"/public/.%2e/admin/x", 403, 401},
	{"/public/..%2fadmin/x", 403, 401},
	{"/public/%2e%2e%2fadmin/x", 403, 401},
	{"/public%2f..%2fadmin/x", 403, 401},
	{"/%2e%2e/admin/x", 403, 401},
	{"/admin%2fx", 403, 401},
	{"/admin/./x", 403, 401},
	{"/admin//x", 403, 401},
	{"{origin}/admin/x", 403, 401},
	// Characters another server reads differently from Caddy's matcher
	// (see handlers.ambiguousPath): every guard refuses them.
	{"/admin;/x", 400, 400},
	{"/admin;x=1/x", 400, 400},
	{"/admin%3b/x", 400, 400},
	{"/admin%3B/x", 400, 400},
	{"/admin..;/x", 400, 400},
	{"/public/..;/admin/x", 400, 400},
	{"/public/x/..;/..;/admin/x", 400, 400},
	{"/admin%00/x", 400, 400},
	{"/admin/x%00", 400, 400},
	{"/admin%09/x", 400, 400},
	{"/admin%0a/x", 400, 400},
	{"/admin%0d%0a/x", 400, 400},
	{`/admin\x`, 400, 400},
	{"/admin%5cx", 400, 400},
	{"/public/..%5cadmin/x", 400, 400},
	{`/public\..\admin/x`, 400, 400},
	// Refused by Go's HTTP server before Caddy routes anything.
	{"/admin\x00/x", 400, 400},
	{"/%u0061dmin/x", 400, 400},
	// Not admin paths to an upstream that decodes once and checks UTF-8:
	// they pass the general guard and reach the upstream, where the check
	// below confirms no reading of them is an admin path. An upstream
	// that decodes twice, decodes overlong UTF-8, or trims trailing dots
	// and spaces from segments (Windows file names) is not modelled,
	// exactly as Caddy's matcher on a non-Windows host does not.
	{"/%2561dmin/x", 200, 401},
	{"/admin%c0%af/x", 200, 401},
	{"/admin./x", 200, 401},
	{"/admin%20/x", 200, 401},
}

// upstreamReadings returns the paths that kinds of upstream server make
// of a request path as it reached them (still escaped): cleaned,
// lowercased, by kind.
func upstreamReadings(escaped string) map[string]string {
	unescape := func(s string) string {
		if u, err := url.PathUnescape(s); err == nil {
			return u
		}
		return s
	}
	dropParams := func(s string) string {
		segs := strings.Split(s, "/")
		for i, seg := range segs {
			segs[i], _, _ = strings.Cut(seg, ";")
		}
		return strings.Join(segs, "/")
	}
	clean := func(s string) string { return strings.ToLower(path.Clean("/" + s)) }
	decoded := unescape(escaped)
	return map[string]string{
		"RFC 3986 (Go, most servers)":                     clean(decoded),
		"path parameters dropped (Tomcat, Jetty, Spring)": clean(dropParams(unescape(dropParams(escaped)))),
		"backslash as separator (Windows, IIS)":           clean(strings.ReplaceAll(decoded, `\`, "/")),
		"NUL dropped (C strings, sanitising decoders)":    clean(strings.ReplaceAll(decoded, "\x00", "")),
	}
}

// adminReading returns a reading of the path under which it is in
// /admin/*, and whether there is one.
func adminReading(escaped string) (string, bool) {
	for kind, p := range upstreamReadings(escaped) {
		if strings.HasPrefix(p, "/admin/") {
			return kind + ": " + p, true
		}
	}
	return "", false
}

// taggedRequests returns the upstream's requests whose query carries
// pt=tag.
func taggedRequests(up *upstream, tag string) []upstreamRequest {
	var out []upstreamRequest
	for _, r := range up.Requests() {
		if _, q, _ := strings.Cut(r.RequestURI, "?"); q == "pt="+tag {
			out = append(out, r)
		}
	}
	return out
}

// TestPathTricks: behind a general guard and a stricter one on /admin/*
// (in each documented shape), no spelling of an admin path gets a user
// without the admin role, or an anonymous client, to the upstream on a
// path that any common kind of server reads as an admin path. A user with
// the role gets through, so the check can fail. (/admin itself is not in
// /admin/* for Caddy's matcher, so not an admin path here either: a config
// that means it writes /admin*.)
func TestPathTricks(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	var cfg strings.Builder
	cfg.WriteString("{\n\tadmin off\n\tgatehouse {\n\t\tdatabase sqlite ./gatehouse.db\n\t}\n}\n")
	addrs := make([]string, len(pathShapes))
	for i, s := range pathShapes {
		port := freePort(t)
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", port)
		fmt.Fprintf(&cfg, "\nhttp://%s {\n%s\n}\n", addrs[i], indent(fmt.Sprintf(s.site, up.Addr), "\t"))
	}
	c := startCaddy(t, cfg.String())
	cl := newClient(c.URL)
	register(t, cl, "plain@example.com", "plain-password")
	ada := register(t, cl, "ada@example.com", "ada-password")
	dbExec(t, c.Path("gatehouse.db"), `UPDATE users SET roles = '["admin"]' WHERE id = ?`, ada.ID)
	plainTok := loginJWT(t, cl, "plain@example.com", "plain-password")
	adaTok := loginJWT(t, cl, "ada@example.com", "ada-password")

	t.Run("the readings see the bypasses", func(t *testing.T) {
		// Without this, a reading that never said "admin" would make
		// every check below pass.
		for _, p := range []string{"/admin/x", "//admin/x", "/ADMIN/x", "/%61dmin/x", "/public/../admin/x", "/admin;/x",
			"/admin%3b/x", "/public/..;/admin/x", "/admin%5cx", "/public/..%5cadmin/x", "/admin%00/x"} {
			if _, ok := adminReading(p); !ok {
				t.Errorf("no reading of %q is an admin path", p)
			}
		}
		for _, p := range []string{"/app", "/public/x", "/%2561dmin/x", "/administrator/x", "/x/admin/y"} {
			if r, ok := adminReading(p); ok {
				t.Errorf("%q is read as an admin path (%s)", p, r)
			}
		}
	})

	// send requests target from addr with the credential (a header line
	// or ""), tagged so that the upstream's record can be found.
	send := func(t *testing.T, addr, target, credential string) (*response, []upstreamRequest) {
		t.Helper()
		tag := strings.TrimPrefix(uniquePath(""), "/")
		target = strings.ReplaceAll(target, "{origin}", "http://"+addr)
		r := rawRequest(t, addr, "GET "+target+"?pt="+tag+" HTTP/1.1\r\nHost: "+addr+"\r\n"+credential+"Connection: close\r\n\r\n")
		return r, taggedRequests(up, tag)
	}

	for i, shape := range pathShapes {
		addr := addrs[i]
		t.Run(shape.name, func(t *testing.T) {
			t.Run("the admin role passes", func(t *testing.T) {
				for _, target := range []string{"/admin/x", "/ADMIN/x", "/%61dmin/x", "//admin/x"} {
					r, got := send(t, addr, target, "Authorization: Bearer "+adaTok+"\r\n")
					wantStatus(t, r, http.StatusOK)
					if len(got) != 1 {
						t.Fatalf("%s: the upstream recorded %d requests, want 1", target, len(got))
					}
					escaped, _, _ := strings.Cut(got[0].RequestURI, "?")
					if _, ok := adminReading(escaped); !ok {
						t.Errorf("%s reached the upstream as %q, not an admin path", target, escaped)
					}
					wantIdentity(t, got[0], map[string]string{"Remote-User": "ada@example.com",
						"Remote-Email": "ada@example.com", "Remote-User-Id": ada.ID, "Remote-Groups": "admin"})
				}
			})
			for _, tc := range pathTricks {
				t.Run(fmt.Sprintf("%q", tc.target), func(t *testing.T) {
					for _, client := range []struct {
						name, credential string
						status           int
					}{
						{"without the role", "Authorization: Bearer " + plainTok + "\r\n", tc.user},
						{"anonymous", "", tc.anon},
					} {
						r, got := send(t, addr, tc.target, client.credential)
						if r.Status != client.status {
							t.Errorf("%s: status %d, want %d; body: %s", client.name, r.Status, client.status, truncate(string(r.Body), 200))
						}
						if r.Status != http.StatusOK && len(got) != 0 {
							t.Errorf("%s: refused with %d, yet the upstream received %q", client.name, r.Status, got[0].RequestURI)
						}
						for _, g := range got {
							escaped, _, _ := strings.Cut(g.RequestURI, "?")
							if reading, ok := adminReading(escaped); ok {
								t.Errorf("%s: the upstream received %q, an admin path (%s)", client.name, g.RequestURI, reading)
							}
						}
					}
				})
			}
		})
	}
}
