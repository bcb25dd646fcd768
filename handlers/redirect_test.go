package handlers

import (
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// redirectCase is one open-redirect payload. host is the request's Host,
// cd the configured cookie_domain.
type redirectCase struct {
	name, rd, host, cd, want string
}

const redirectSite = "example.com"

var redirectLongPath = "/" + strings.Repeat("a", 2999)

var redirectCases = []redirectCase{
	// On-site paths: kept exactly, query and fragment included.
	{"root", "/", redirectSite, "", "/"},
	{"path", "/app", redirectSite, "", "/app"},
	{"query and fragment", "/app?x=1#y", redirectSite, "", "/app?x=1#y"},
	{"dot segments", "/a/b/../c", redirectSite, "", "/a/b/../c"},
	{"encoded dot segments", "/%2e%2e/evil.com", redirectSite, "", "/%2e%2e/evil.com"},
	{"encoded space", "/My%20Files/a.pdf", redirectSite, "", "/My%20Files/a.pdf"},
	{"at sign in path", "/@evil.com", redirectSite, "", "/@evil.com"},
	{"colon in path", "/x:y", redirectSite, "", "/x:y"},
	{"ideographic full stop", "/\u3002evil.com", redirectSite, "", "/\u3002evil.com"},
	{"fullwidth solidus", "/\uff0fevil.com", redirectSite, "", "/\uff0fevil.com"},
	{"URL in the query", "/app?next=https://evil.com", redirectSite, "", "/app?next=https://evil.com"},
	{"exactly 2048 bytes", "/" + strings.Repeat("a", 2047), redirectSite, "", "/" + strings.Repeat("a", 2047)},

	// Scheme-relative, raw or by a browser's or a proxy's reading.
	{"scheme-relative", "//evil.com", redirectSite, "", "/"},
	{"three slashes", "///evil.com", redirectSite, "", "/"},
	{"slash backslash", "/\\evil.com", redirectSite, "", "/"},
	{"backslash slash", "\\/evil.com", redirectSite, "", "/"},
	{"backslashes", "\\\\evil.com", redirectSite, "", "/"},
	{"encoded second slash", "/%2F/evil.com", redirectSite, "", "/"},
	{"encoded slashes", "/%2f%2fevil.com", redirectSite, "", "/"},
	{"encoded backslash", "/%5Cevil.com", redirectSite, "", "/"},
	{"encoded backslash lower", "/%5cevil.com", redirectSite, "", "/"},
	{"dot dot then double slash", "/..//evil.com", redirectSite, "", "/"},
	{"dot then double slash", "/.//evil.com", redirectSite, "", "/"},
	{"double slash inside", "/app//evil.com", redirectSite, "", "/"},
	{"encoded double slash, not a path", "%2F%2Fevil.com", redirectSite, "", "/"},
	{"tab between slashes", "/\t/evil.com", redirectSite, "", "/"},
	{"newline between slashes", "/\n/evil.com", redirectSite, "", "/"},
	{"CRLF between slashes", "/\r\n/evil.com", redirectSite, "", "/"},
	{"encoded tab between slashes", "/%09/evil.com", redirectSite, "", "/"},
	{"scheme-relative encoded tab", "//%09/evil.com", redirectSite, "", "/"},
	{"scheme-relative dot dot", "//evil.com/%2f..", redirectSite, "", "/"},

	// Header injection and other controls.
	{"NUL", "\x00", redirectSite, "", "/"},
	{"NUL in path", "/\x00", redirectSite, "", "/"},
	{"DEL in path", "/\x7f", redirectSite, "", "/"},
	{"C1 control", "/app\u0085", redirectSite, "", "/"},
	{"encoded CRLF", "/%0d%0aSet-Cookie:x", redirectSite, "", "/"},
	{"raw CRLF", "/\r\nSet-Cookie:x", redirectSite, "", "/"},

	// Whitespace, encoding, size.
	{"empty", "", redirectSite, "", "/"},
	{"3000 bytes", redirectLongPath, redirectSite, "", "/"},
	{"2049 bytes", "/" + strings.Repeat("a", 2048), redirectSite, "", "/"},
	{"leading space", " /app", redirectSite, "", "/"},
	{"trailing space", "/app ", redirectSite, "", "/"},
	{"inner space", "/a b", redirectSite, "", "/"},
	{"trailing no-break space", "/app\u00a0", redirectSite, "", "/"},
	{"leading line separator", "\u2028/app", redirectSite, "", "/"},
	{"ideographic space", "/\u3000evil.com", redirectSite, "", "/"},
	{"invalid UTF-8", "/app\xff", redirectSite, "", "/"},
	{"invalid escape", "/%zz", redirectSite, "", "/"},

	// Not a path, not http(s).
	{"path-relative", "app", redirectSite, "", "/"},
	{"dot path-relative", "./app", redirectSite, "", "/"},
	{"query only", "?x=1", redirectSite, "", "/"},
	{"fragment only", "#frag", redirectSite, "", "/"},
	{"javascript", "javascript:alert(1)", redirectSite, "", "/"},
	{"javascript mixed case", "JaVaScRiPt:alert(1)", redirectSite, "", "/"},
	{"javascript leading space", " javascript:alert(1)", redirectSite, "", "/"},
	{"javascript with tab", "java\tscript:alert(1)", redirectSite, "", "/"},
	{"javascript with slashes", "javascript://example.com/%0aalert(1)", redirectSite, "", "/"},
	{"data", "data:text/html,x", redirectSite, "", "/"},
	{"vbscript", "vbscript:msgbox(1)", redirectSite, "", "/"},
	{"ftp on the site", "ftp://example.com", redirectSite, "", "/"},
	{"https without slashes", "https:evil.com", redirectSite, "", "/"},
	{"http with one slash", "http:/evil.com", redirectSite, "", "/"},
	{"https slash backslash", "https:/\\evil.com", redirectSite, "", "/"},
	{"https without slashes to the site", "https:example.com", redirectSite, "", "/"},

	// Absolute URLs to other hosts.
	{"other host", "https://evil.com", redirectSite, "", "/"},
	{"other host upper-case scheme", "HTTPS://evil.com", redirectSite, "", "/"},
	{"userinfo site at evil", "https://example.com@evil.com", redirectSite, "", "/"},
	{"userinfo evil at site", "https://evil.com@example.com", redirectSite, "", "/"},
	{"userinfo with backslash", "https://evil.com\\@example.com", redirectSite, "", "/"},
	{"userinfo with encoded slash", "https://evil.com%2F@example.com", redirectSite, "", "/"},
	{"at after fragment mark", "https://evil.com#@example.com", redirectSite, "", "/"},
	{"at after query mark", "https://evil.com?@example.com", redirectSite, "", "/"},
	{"site as subdomain of evil", "https://example.com.evil.com", redirectSite, "", "/"},
	{"suffix without dot", "https://evilexample.com", redirectSite, "example.com", "/"},
	{"punycode lookalike", "https://xn--exmple-cua.com", redirectSite, "", "/"},
	{"percent-encoded host", "https://ex%61mple.com/", redirectSite, "", "/"},
	{"ideographic full stop in host", "https://example\u3002com/", redirectSite, "", "/"},
	{"soft hyphen in host", "https://ex\u00adample.com/", redirectSite, "", "/"},
	{"underscore host", "https://example.com_evil.com/", redirectSite, "", "/"},
	{"tab in host", "http://example.com\t.evil.com/", redirectSite, "", "/"},
	{"IPv6 literal", "http://[::1]/", redirectSite, "", "/"},
	{"IPv6 with zone", "http://[::1%25eth0]/", "[::1]", "", "/"},
	{"IP within no domain", "https://127.0.0.1/", redirectSite, "example.com", "/"},
	{"no host", "https://", redirectSite, "", "/"},
	{"empty host then path", "https:///evil.com", redirectSite, "", "/"},
	{"port only", "https://:443/", redirectSite, "", "/"},
	{"empty port", "https://example.com:/x", redirectSite, "", "/"},
	{"port out of range", "https://example.com:99999/", redirectSite, "", "/"},
	{"port out of range within cookie domain", "https://sub.example.com:99999/", redirectSite, "example.com", "/"},
	{"port zero within cookie domain", "https://sub.example.com:0/", redirectSite, "example.com", "/"},
	{"port too long", "https://example.com:000443/", redirectSite, "", "/"},
	{"signed port", "https://example.com:+443/", redirectSite, "", "/"},
	{"absolute double slash path", "https://example.com//evil.com", redirectSite, "", "/"},
	{"absolute encoded double slash", "https://example.com/%2F%2Fevil.com", redirectSite, "", "/"},
	{"cookie domain dot alone", "https://evil.com./", redirectSite, ".", "/"},

	// The site itself, absolute (the guard's rd is the original URL).
	{"site", "https://example.com/x", redirectSite, "", "https://example.com/x"},
	{"site no path", "https://example.com", redirectSite, "", "https://example.com"},
	{"site query only", "https://example.com?x=1", redirectSite, "", "https://example.com?x=1"},
	{"site upper-case host", "https://EXAMPLE.com/x", redirectSite, "", "https://example.com/x"},
	{"site upper-case all", "HTTPS://Example.COM/x?A=B#C", redirectSite, "", "https://example.com/x?A=B#C"},
	{"site plain http", "http://example.com/x", redirectSite, "", "http://example.com/x"},
	{"site explicit default port", "https://example.com:443/x", redirectSite, "", "https://example.com:443/x"},
	{"site http explicit default port", "http://example.com:80/x", redirectSite, "", "http://example.com:80/x"},
	{"site http on the https port", "http://example.com:443/x", redirectSite, "", "/"},
	{"site encoded space", "https://example.com/a%20b", redirectSite, "", "https://example.com/a%20b"},
	{"site non-ASCII path", "https://example.com/\u00e9", redirectSite, "", "https://example.com/%C3%A9"},
	{"site at in path", "https://example.com/@evil.com", redirectSite, "", "https://example.com/@evil.com"},
	{"site at in fragment", "https://example.com#@evil.com", redirectSite, "", "https://example.com#@evil.com"},
	{"site port matching", "https://example.com:8443/x", "example.com:8443", "", "https://example.com:8443/x"},
	{"site port not matching", "https://example.com:8443/x", redirectSite, "", "/"},
	{"site port default request", "https://example.com/x", "example.com:8443", "", "/"},
	{"site port any within cookie domain", "https://example.com:8443/x", redirectSite, "example.com", "https://example.com:8443/x"},
	{"localhost same port", "http://localhost:8080/x", "localhost:8080", "", "http://localhost:8080/x"},
	{"localhost other port", "http://localhost:9090/x", "localhost:8080", "", "/"},
	{"localhost no port", "http://localhost/x", "localhost:8080", "", "/"},
	{"request host upper-case", "http://localhost:8080/x", "LocalHost:8080", "", "http://localhost:8080/x"},
	{"IPv6 request host", "http://[::1]:8080/x", "[::1]:8080", "", "http://[::1]:8080/x"},
	{"IPv6 other port", "http://[::1]:9090/x", "[::1]:8080", "", "/"},
	{"empty request host", "https://example.com/x", "", "", "/"},
	// A trailing dot is another origin for a browser (its own cookies):
	// accepted only when the request itself came in under that name.
	{"trailing dot", "https://example.com./x", redirectSite, "", "/"},
	{"trailing dot request", "https://example.com./x", "example.com.", "", "https://example.com./x"},
	{"trailing dot within cookie domain", "https://sub.example.com./x", redirectSite, "example.com", "/"},

	// Cookie domain.
	{"subdomain without cookie domain", "https://sub.example.com/x", redirectSite, "", "/"},
	{"subdomain within cookie domain", "https://sub.example.com/x", redirectSite, "example.com", "https://sub.example.com/x"},
	{"subdomain, cookie domain with dot and case", "https://sub.example.com/x", redirectSite, ".EXAMPLE.com", "https://sub.example.com/x"},
	{"deep subdomain", "https://a.b.example.com/x", "app.example.com:8443", "example.com", "https://a.b.example.com/x"},
	{"cookie domain itself", "https://example.com/x", "app.example.com", "example.com", "https://example.com/x"},
	{"sibling without cookie domain", "https://other.example.com/x", "app.example.com", "", "/"},
	{"other host within no cookie domain", "https://evil.com/x", redirectSite, "example.com", "/"},
}

func TestSafeRedirect(t *testing.T) {
	t.Parallel()
	if len(redirectCases) < 40 {
		t.Fatalf("only %d payloads", len(redirectCases))
	}
	seen := map[string]bool{}
	for _, tc := range redirectCases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := SafeRedirect(tc.rd, tc.host, tc.cd)
			if got != tc.want {
				t.Fatalf("SafeRedirect(%q, %q, %q) = %q, want %q", tc.rd, tc.host, tc.cd, got, tc.want)
			}
			checkRedirectInvariant(t, tc.rd, got, tc.host, tc.cd)
		})
	}
}

// TestSafeRedirectInvariantCatches shows that the fuzz invariant is not
// vacuous: each of these results, if SafeRedirect ever returned it, fails.
func TestSafeRedirectInvariantCatches(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"//evil.com", "/\\evil.com", "/\t/evil.com", "https://evil.com/",
		"https:evil.com", "javascript:alert(1)", "https://sub.example.com/", "https://u@example.com/",
		"https://example.com:8443/", "/..//evil.com", "/%2e%2e//evil.com", "/a/%2E.//evil.com",
		"/.//evil.com", "/%2f/evil.com", "/%5cevil.com", " /app"} {
		t.Run(bad, func(t *testing.T) {
			t.Parallel()
			if msg := redirectInvariantViolation(bad, bad, redirectSite, ""); msg == "" {
				t.Fatalf("invariant accepts %q", bad)
			}
		})
	}
}

// FuzzSafeRedirect: whatever rd is, the result never sends a browser off
// the allowed hosts, and is stable.
func FuzzSafeRedirect(f *testing.F) {
	for _, tc := range redirectCases {
		f.Add(tc.rd)
	}
	f.Fuzz(func(t *testing.T, rd string) {
		for _, host := range []string{"example.com", "app.example.com:8443"} {
			for _, cd := range []string{"", "example.com"} {
				out := SafeRedirect(rd, host, cd)
				checkRedirectInvariant(t, rd, out, host, cd)
				if again := SafeRedirect(out, host, cd); again != out {
					t.Fatalf("not stable: SafeRedirect(%q) = %q, then %q", rd, out, again)
				}
			}
			if a, b := SafeRedirect(rd, host, ".EXAMPLE.com"), SafeRedirect(rd, host, "example.com"); a != b {
				t.Fatalf("cookie domain spelling matters for %q: %q vs %q", rd, a, b)
			}
		}
	})
}

func checkRedirectInvariant(t *testing.T, rd, out, host, cd string) {
	t.Helper()
	if msg := redirectInvariantViolation(rd, out, host, cd); msg != "" {
		t.Fatalf("SafeRedirect(%q, %q, %q) = %q: %s", rd, host, cd, out, msg)
	}
}

// redirectInvariantViolation re-checks a result of SafeRedirect without
// sharing its code: "" when out is safe, else what is wrong.
func redirectInvariantViolation(rd, out, host, cd string) string {
	if out == "/" {
		return ""
	}
	// What a browser does to a URL string before parsing it must change
	// nothing, so that Go's parse below is the browser's.
	if browserPreprocess(out) != out {
		return "a browser would rewrite it"
	}
	for _, c := range out {
		if unicode.IsControl(c) || unicode.IsSpace(c) || c == '\\' {
			return "control, whitespace or backslash"
		}
	}
	u, err := url.Parse(out)
	if err != nil {
		return "does not parse: " + err.Error()
	}
	switch {
	case strings.HasPrefix(out, "/"):
		if strings.HasPrefix(out, "//") {
			return "scheme-relative"
		}
		if u.Scheme != "" || u.Host != "" || u.User != nil {
			return "a path with a scheme, host or userinfo"
		}
		if out != rd {
			return "a path not returned as given"
		}
	case strings.HasPrefix(out, "http://") || strings.HasPrefix(out, "https://"):
		if u.User != nil || u.Opaque != "" || u.Host == "" {
			return "absolute URL with userinfo, opaque part or no host"
		}
		if !hostInAllowedSet(u, host, cd) {
			return "absolute URL off the allowed hosts"
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return "absolute URL with an invalid port"
			}
		}
	default:
		return "neither a path nor an http(s) URL"
	}
	if len(out) > 2048 {
		return "longer than 2048 bytes"
	}
	// As a browser reads it: resolved against pages of the site.
	for _, base := range []string{"https://app.example.com/", "https://app.example.com/auth/login?rd=x",
		"http://" + host + "/auth/"} {
		b, err := url.Parse(base)
		if err != nil {
			panic(err)
		}
		r := b.ResolveReference(u)
		if r.User != nil || (r.Scheme != "http" && r.Scheme != "https") {
			return "resolves with userinfo or another scheme"
		}
		if u.Host == "" && r.Host != b.Host {
			return "a path resolving to another host: " + r.Host
		}
		if u.Host != "" && !hostInAllowedSet(r, host, cd) {
			return "resolves off the allowed hosts: " + r.Host
		}
	}
	// The path as a browser resolves it (net/url resolves dot segments
	// differently), then as a next hop may decode and resolve it again,
	// must not start with "//": a hop that redirects to the path alone
	// would make it scheme-relative.
	if p := u.EscapedPath(); p != "" {
		resolved := whatwgResolvePath(p)
		decoded, err := url.PathUnescape(resolved)
		if err != nil {
			return "resolved path does not decode"
		}
		for _, q := range []string{resolved, decoded, whatwgResolvePath(decoded)} {
			if strings.HasPrefix(q, "//") || strings.HasPrefix(q, "/\\") {
				return "a path that resolves to " + q
			}
		}
	}
	return ""
}

// whatwgResolvePath resolves the dot segments of an absolute path as the
// WHATWG URL parser does: empty segments are kept, "%2e" is a dot, and a
// final "." or ".." leaves a trailing slash.
func whatwgResolvePath(p string) string {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	var out []string
	for i, s := range segs {
		last := i == len(segs)-1
		switch strings.ToLower(s) {
		case "..", ".%2e", "%2e.", "%2e%2e":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		case ".", "%2e":
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

// browserPreprocess is the WHATWG URL parser's first steps for an http(s)
// URL or a reference against one: trim C0 controls and spaces at both
// ends, drop tabs and newlines, read backslashes as slashes.
func browserPreprocess(s string) string {
	s = strings.TrimFunc(s, func(c rune) bool { return c <= 0x20 })
	s = strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(s)
	return s
}

// hostInAllowedSet: u's host is the request's (same port, defaults by u's
// scheme) or within the cookie domain.
func hostInAllowedSet(u *url.URL, requestHost, cd string) bool {
	name := strings.ToLower(u.Hostname())
	if name == "" {
		return false
	}
	reqName, reqPort, err := net.SplitHostPort(requestHost)
	if err != nil {
		reqName, reqPort = strings.Trim(requestHost, "[]"), ""
	}
	defaultPort := map[string]string{"http": "80", "https": "443"}[u.Scheme]
	port := u.Port()
	if port == "" {
		port = defaultPort
	}
	if reqPort == "" {
		reqPort = defaultPort
	}
	p1, err1 := strconv.Atoi(port)
	p2, err2 := strconv.Atoi(reqPort)
	if strings.EqualFold(name, reqName) && err1 == nil && err2 == nil && p1 == p2 {
		return true
	}
	cd = strings.ToLower(strings.TrimPrefix(cd, "."))
	if cd == "" || net.ParseIP(name) != nil {
		return false
	}
	return name == cd || strings.HasSuffix(name, "."+cd)
}
