package handlers

import (
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxRedirectLen bounds rd: longer than any URL a legitimate guard redirect
// produces in practice, short enough that nothing downstream (a Location
// header, a hidden form field) has to care.
const maxRedirectLen = 2048

// SafeRedirect returns where a browser may be sent after login: rd if it is a path on this site or an
// http(s) URL on a host within cookieDomain, else "/".
//
// host is the request's Host (possibly with a port); cookieDomain is the
// configured cookie_domain ("" when unset, any case, a leading dot
// ignored). The rules, strict by design, since anything refused merely
// lands the person on "/":
//
//   - rd is at most 2048 bytes of valid UTF-8 with no control character
//     (C0, DEL, C1), no whitespace of any Unicode kind and no backslash,
//     anywhere.
//   - A path must start with exactly one "/" and parse as a URL with no
//     scheme, host or userinfo. Its percent-decoded path must hold no
//     control character, no backslash and no "//". It is returned as is,
//     query and fragment included.
//   - An absolute URL must start with http:// or https:// (any case), have
//     an authority of ASCII host name characters or a bracketed IP
//     address and an optional numeric port (no userinfo, no '@', no
//     percent-encoding), the same path rules, and a host that is either
//     the request's (same port, a missing one being the scheme's default)
//     or, with cookieDomain set, cookieDomain itself or a subdomain of it
//     (any port). It is returned normalised: scheme and host lower-cased.
//   - Nothing else (other schemes, scheme-relative "//host", path-relative
//     "page", "https:host") is accepted.
//
// Hosts are compared as exact lower-case strings: a trailing-dot
// "example.com." is not "example.com" (for a browser it is a separate
// origin with its own cookies), and internationalised names are refused
// rather than run through IDNA, so that no mapping (fullwidth dots, soft
// hyphens) can make two spellings meet.
func SafeRedirect(rd, host, cookieDomain string) string {
	if !redirectCharsOK(rd) {
		return "/"
	}
	if rd[0] == '/' {
		if redirectPathOK(rd) {
			return rd
		}
		return "/"
	}
	if abs, ok := redirectAbsolute(rd, host, cookieDomain); ok {
		return abs
	}
	return "/"
}

// redirectCharsOK applies the checks on the raw string that hold for every
// kind of target.
func redirectCharsOK(rd string) bool {
	// Empty is "no target"; the length cap also bounds the work below.
	if rd == "" || len(rd) > maxRedirectLen {
		return false
	}
	// Invalid UTF-8 is decoded differently by different consumers
	// (U+FFFD, Latin-1, dropped): one of them would see something else
	// than what was checked.
	if !utf8.ValidString(rd) {
		return false
	}
	for _, c := range rd {
		switch {
		// Browsers remove tab, LF and CR anywhere in a URL before
		// parsing it ("java\tscript:" is "javascript:", "/\t/evil" is
		// "//evil") and strip leading and trailing C0 controls and
		// spaces; CR and LF would also split the Location header. No
		// control character has any business in a redirect target.
		case unicode.IsControl(c):
			return false
		// Browsers treat "\" as "/" in http(s) URLs: "/\evil.com" is
		// "//evil.com", a scheme-relative URL to another host, and
		// "https://evil.com\@example.com" has the host evil.com for a
		// browser but example.com for a parser that knows RFC 3986 only.
		case c == '\\':
			return false
		// A raw space is never part of a well-formed URL. Whitespace of
		// any Unicode kind is refused everywhere, not only at the ends:
		// leading and trailing whitespace is trimmed by some consumers
		// and not others (" javascript:" is "javascript:" once trimmed),
		// and no legitimate target, which is percent-encoded, carries
		// any.
		case unicode.IsSpace(c):
			return false
		}
	}
	return true
}

// redirectPathOK reports whether rd, which starts with "/", is a path on
// this site.
func redirectPathOK(rd string) bool {
	// "//host" and "/\host" are scheme-relative: a browser goes to host.
	// (The backslash is refused already; it is spelled out here because
	// this is the check a reader looks for.)
	if len(rd) > 1 && (rd[1] == '/' || rd[1] == '\\') {
		return false
	}
	u, err := url.Parse(rd)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	return redirectDecodedPathOK(u.Path)
}

// redirectDecodedPathOK checks a URL's percent-decoded path (url.URL.Path).
func redirectDecodedPathOK(p string) bool {
	// "//" anywhere is refused, not only at the start:
	//   - "/%2F/evil.com" and "/%5Cevil.com" are harmless to a browser but
	//     become "//evil.com" and "/\evil.com" for any server or proxy
	//     that decodes the path before building a redirect of its own;
	//   - dot segments are resolved by the browser ("/..//evil.com" is the
	//     path "//evil.com"), and the next hop that puts that path alone
	//     into a Location header (a trailing-slash redirect, say) sends
	//     the browser to evil.com.
	// Without an empty segment in the middle, no resolution of "." and
	// ".." can produce a path starting with "//". Legitimate targets
	// with "//" inside are rare enough to give up.
	if strings.Contains(p, "//") {
		return false
	}
	for i := 0; i < len(p); i++ {
		// Encoded controls ("/%0d%0aSet-Cookie:x") and backslashes
		// ("/%5C…") are refused for the same decoding hops. An encoded
		// space ("%20") is left alone: it is how every path with a space
		// in it is spelled, and no parser turns it into a delimiter.
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// redirectAbsolute checks an absolute target and returns its normalised
// form.
func redirectAbsolute(rd, host, cookieDomain string) (string, bool) {
	// The scheme is matched literally with its "//": "https:evil.com" and
	// "http:/evil.com" are URLs to evil.com for a browser (special
	// schemes need no slashes), and every scheme other than http(s)
	// ("javascript:", "data:", "vbscript:", "ftp:"…) is refused.
	var scheme, rest string
	switch {
	case len(rd) >= 7 && strings.EqualFold(rd[:7], "http://"):
		scheme, rest = "http", rd[7:]
	case len(rd) >= 8 && strings.EqualFold(rd[:8], "https://"):
		scheme, rest = "https", rd[8:]
	default:
		return "", false
	}
	// The authority ends where a browser ends it: at "/", "?" or "#" ("\"
	// is refused already).
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	hostname, port, ok := redirectSplitAuthority(authority)
	if !ok {
		return "", false
	}
	u, err := url.Parse(rd)
	// net/url must agree with the split above, so that what was checked
	// is what gets serialised.
	if err != nil || u.Scheme != scheme || u.Host != authority || u.User != nil || u.Opaque != "" {
		return "", false
	}
	if !redirectDecodedPathOK(u.Path) {
		return "", false
	}
	if !redirectHostAllowed(scheme, hostname, port, host, cookieDomain) {
		return "", false
	}
	u.Host = strings.ToLower(u.Host)
	// Serialising percent-encodes non-ASCII in the path and fragment,
	// which can take the result past the length cap.
	out := u.String()
	if len(out) > maxRedirectLen {
		return "", false
	}
	return out, true
}

// redirectSplitAuthority splits host[:port] of an absolute target into a
// lower-case host name (brackets removed from an IPv6 address) and a port
// ("" when absent). Anything beyond the plainest form is refused:
//   - userinfo: "https://example.com@evil.com" goes to evil.com, and
//     "https://evil.com%2F@example.com" to one host or the other
//     depending on the parser; any '@' in the authority is refused;
//   - percent-encoding and non-ASCII: browsers decode and IDNA-map host
//     names ("ex%61mple.com", "example。com" are example.com), which an
//     exact comparison would not see;
//   - an empty or out-of-range port ("example.com:", ":0", ":99999"), an
//     IPv6 zone, stray brackets.
func redirectSplitAuthority(authority string) (hostname, port string, ok bool) {
	h := authority
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", "", false
		}
		ip := h[1:end]
		// ParseIP takes no zone ("fe80::1%eth0"), and only an address
		// with a colon may be bracketed.
		if !strings.Contains(ip, ":") || net.ParseIP(ip) == nil {
			return "", "", false
		}
		hostname, h = strings.ToLower(ip), h[end+1:]
		if h != "" && h[0] != ':' {
			return "", "", false
		}
	} else {
		i := strings.IndexByte(h, ':')
		if i < 0 {
			i = len(h)
		}
		hostname, h = h[:i], h[i:]
		if hostname == "" {
			return "", "", false
		}
		for j := 0; j < len(hostname); j++ {
			c := hostname[j]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
				return "", "", false
			}
		}
		hostname = strings.ToLower(hostname)
	}
	if h != "" {
		port = h[1:] // h starts with ':'
		if port == "" || len(port) > 5 {
			return "", "", false
		}
		for j := 0; j < len(port); j++ {
			if port[j] < '0' || port[j] > '9' {
				return "", "", false
			}
		}
		// Checked here, not only for the request's host: a port a
		// browser refuses is no target within the cookie domain either.
		if redirectPort(port, "") == 0 {
			return "", "", false
		}
	}
	return hostname, port, true
}

// redirectHostAllowed reports whether an absolute target's host (lower-case
// hostname, port "" when absent) is the request's host or within the
// cookie domain.
func redirectHostAllowed(scheme, hostname, port, requestHost, cookieDomain string) bool {
	req := url.URL{Host: requestHost}
	// The request's own host: same name and the same port, since another
	// port on the same name may be another application. A missing port
	// on either side is the target scheme's default (the request's scheme
	// is not known here; a Host header without a port names the default
	// one).
	if reqName := strings.ToLower(req.Hostname()); reqName != "" && hostname == reqName &&
		redirectPort(port, scheme) == redirectPort(req.Port(), scheme) && redirectPort(port, scheme) > 0 {
		return true
	}
	// The cookie domain: the session cookie is sent to every host within
	// it, on any port, so the person arrives logged in. An IP address is
	// never "within" a domain.
	cd := strings.ToLower(strings.TrimPrefix(cookieDomain, "."))
	// An empty domain (unset, or "." alone) must not turn the suffix test
	// below into "ends with '.'", which every trailing-dot host does.
	if cd == "" || net.ParseIP(hostname) != nil {
		return false
	}
	// "."+cd, not cd: "evilexample.com" does not end with ".example.com".
	return hostname == cd || strings.HasSuffix(hostname, "."+cd)
}

// redirectPort is a port number, or the scheme's default when p is empty;
// 0 when p is not a valid port.
func redirectPort(p, scheme string) int {
	if p == "" {
		if scheme == "https" {
			return 443
		}
		return 80
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0
	}
	return n
}
