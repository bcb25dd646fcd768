package handlers

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// Outcome is the guard's decision on a request.
type Outcome int

// The outcomes of Guard.Decide.
const (
	Pass            Outcome = iota // let the request through
	Unauthenticated                // no valid session, and the path is not public
	Forbidden                      // a valid session, but a require rule fails
	Failed                         // the store failed: deny (fail closed)
	AmbiguousPath                  // the path may name another resource upstream: refuse (400)
	Unavailable                    // the database cannot be reached: deny (fail closed), 503
)

// Guard protects upstream routes (DESIGN §5).
type Guard struct {
	Service *caddyauth.Service
	// Public reports whether a request's path is one of the `allow`
	// patterns: no session needed there (nil: none is public).
	Public   func(*http.Request) bool
	Require  caddyauth.Requirements
	Headers  *HeaderSet
	LoginURL string // default: <API prefix>/login
	// APIPrefix is the prefix of the account endpoints serving this
	// request's site, for the default login URL (nil: DefaultAPIPrefix).
	APIPrefix func(*http.Request) string
	// OriginalURL is the URL the client asked for, before any rewrite
	// (nil: rebuilt from the request).
	OriginalURL func(*http.Request) string
	Logger      *slog.Logger
}

// Decide runs steps 1, 2 and the decision of step 3 on r, changing r's
// headers in place: the client's identity headers and Gatehouse's own
// credentials are removed, and on Pass with a user the identity headers
// are set. The principal is nil on a public path without a session.
func (g *Guard) Decide(r *http.Request) (Outcome, *caddyauth.Principal) {
	// 1. Identity headers are deleted before anything else, whatever the
	// outcome: an upstream must never see a Remote-User the client wrote.
	g.Headers.Strip(r.Header)

	// Caddy's path matchers chose this guard, and Public reads the path
	// the same way; a path the upstream may read differently is refused
	// before it can pass as public or as outside a stricter guard.
	if ambiguousPath(r.URL.Path) {
		return AmbiguousPath, nil
	}

	// 2. Authenticate, or reuse what an earlier guard on this request
	// verified (it removed the credentials, so they cannot be re-read).
	p, ok := PrincipalFrom(r.Context())
	var err error
	if !ok {
		p, err = g.authenticate(r)
	}
	if err != nil && !errors.Is(err, caddyauth.ErrUnauthenticated) {
		g.log().ErrorContext(r.Context(), "guard: authenticating", "error", err)
		if errors.Is(err, store.ErrUnavailable) {
			return Unavailable, nil
		}
		return Failed, nil
	}

	// 3. Decide. Public paths pass with or without a user, and skip the
	// require rules. Whether the path is public (Caddy's path matcher, the
	// costliest step of a cached request) is asked only when the answer
	// matters: with no user, or with a rule the user fails.
	if p == nil {
		if g.public(r) {
			return Pass, nil
		}
		return Unauthenticated, nil
	}
	if err := g.Service.Authorize(p, g.Require); err != nil && !g.public(r) {
		return Forbidden, p
	}
	// 4. Identity upstream.
	g.Headers.Set(r.Header, p)
	return Pass, p
}

// public reports whether r's path is one of the `allow` patterns.
func (g *Guard) public(r *http.Request) bool { return g.Public != nil && g.Public(r) }

// ambiguousPath reports whether a request path (decoded) holds a
// character on which servers disagree about what the path names, so that
// Caddy's path matchers, which decide which guard and which `allow`
// pattern apply, and the upstream would read two different paths:
//
//   - ';' (or %3B): servlet containers (Tomcat, Jetty, Spring) drop a
//     segment's ";parameters", so to them /admin;x/y and /public/..;/admin/y
//     are both /admin/y, while Caddy's matcher puts the first outside
//     /admin/* and the second inside /public/*;
//   - '\' (or %5C): a separator on Windows servers and file APIs, so
//     /public/..\admin/y is /admin/y there;
//   - ASCII control characters, NUL (%00) above all: a C string ends at
//     it, and some decoders drop it, so /admin%00/y is /admin or /admin/y.
//
// Rather than guess which reading an upstream makes, such a request is
// refused, as Spring Security's StrictHttpFirewall refuses these
// characters by default. Dot segments, doubled slashes, case and %xx
// escapes need no such care: Caddy's matchers unescape and clean the path
// before matching.
func ambiguousPath(path string) bool {
	for i := 0; i < len(path); i++ {
		if c := path[i]; c == ';' || c == '\\' || c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// authenticate reads the credentials and then removes Gatehouse's own
// from the request, so the upstream never receives a session token it
// could replay or leak.
func (g *Guard) authenticate(r *http.Request) (*caddyauth.Principal, error) {
	p, err := Authenticate(r, g.Service)
	g.stripBearer(r.Header, p)
	stripCookie(r.Header, g.Service.CookieName())
	return p, err
}

// stripBearer removes every Authorization value that carries a Gatehouse
// token, whichever of several headers it is in, and keeps the others
// (an application's own API keys). The token that authenticated p is
// known to be ours without another parse.
func (g *Guard) stripBearer(h http.Header, p *caddyauth.Principal) {
	values := h.Values("Authorization")
	if len(values) == 0 {
		return
	}
	authenticated, _ := bearerToken(h)
	kept := values[:0:0]
	for _, v := range values {
		token, ok := parseBearer(v)
		ours := ok && p != nil && p.Transport == store.TransportBearer && token == authenticated || g.carriesOwnToken(v)
		if !ours {
			kept = append(kept, v)
		}
	}
	if len(kept) == len(values) {
		return
	}
	if len(kept) == 0 {
		h.Del("Authorization")
		return
	}
	h["Authorization"] = kept
}

// carriesOwnToken reports whether an Authorization value holds one of
// Gatehouse's tokens as a word anywhere in it, not only as the whole of
// "Bearer <token>": with words after it ("Bearer <token> x", or a
// continuation line, which Go's server joins onto the value with a
// space), in a list ("Basic …, Bearer <token>"), under another scheme or
// none. Such a value fails to authenticate, but the token in it is intact,
// and the upstream could pick it out and replay it. A value of more than
// maxAuthWords words counts as carrying one: no scheme needs that many,
// and checking each word of a huge header would cost more than it is worth.
func (g *Guard) carriesOwnToken(v string) bool {
	words := strings.FieldsFunc(v, isAuthSeparator)
	if len(words) > maxAuthWords {
		return true
	}
	for _, word := range words {
		if g.Service.IsOwnBearerToken(word) {
			return true
		}
		if trimmed := strings.Trim(word, "."); trimmed != word && g.Service.IsOwnBearerToken(trimmed) {
			return true
		}
	}
	return false
}

// maxAuthWords bounds the words of an Authorization value the guard
// checks for a token; Digest credentials, the wordiest scheme in use, have
// about 25.
const maxAuthWords = 64

// isAuthSeparator: the characters between the words of an Authorization
// value (RFC 9110 §11: schemes, tokens, lists, auth-params), none of which
// a JWT holds.
func isAuthSeparator(r rune) bool {
	switch r {
	case ' ', '\t', ',', ';', '=', '"', '\'':
		return true
	}
	return false
}

// ServeGuard applies the guard to r. It returns the request to hand to
// the next handler (carrying the principal in its context), or nil when
// it has answered the request itself.
func (g *Guard) ServeGuard(w http.ResponseWriter, r *http.Request) (*http.Request, *caddyauth.Principal) {
	outcome, p := g.Decide(r)
	switch outcome {
	case Pass:
		if p != nil {
			r = r.WithContext(WithPrincipal(r.Context(), p))
		}
		return r, p
	case Unauthenticated:
		if isBrowser(r) {
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, g.loginRedirect(r), http.StatusFound)
			return nil, nil
		}
		writeJSON(w, http.StatusUnauthorized, detail{"Unauthorized"})
	case Forbidden:
		writeJSON(w, http.StatusForbidden, detail{"Forbidden"})
	case AmbiguousPath:
		writeJSON(w, http.StatusBadRequest, detail{"Bad Request"})
	case Unavailable:
		writeJSON(w, unavailable(w), detail{"Service Unavailable"})
	default:
		writeJSON(w, http.StatusInternalServerError, detail{"Internal Server Error"})
	}
	return nil, nil
}

// isBrowser: a navigation a person can be sent to a login page from.
func isBrowser(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

func (g *Guard) loginRedirect(r *http.Request) string {
	login := g.LoginURL
	if login == "" {
		prefix := DefaultAPIPrefix
		if g.APIPrefix != nil {
			if p := g.APIPrefix(r); p != "" {
				prefix = strings.TrimSuffix(p, "/")
			}
		}
		login = prefix + "/login"
	}
	original := ""
	if g.OriginalURL != nil {
		original = g.OriginalURL(r)
	} else {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		original = scheme + "://" + r.Host + r.URL.RequestURI()
	}
	sep := "?"
	if strings.Contains(login, "?") {
		sep = "&"
	}
	return login + sep + "rd=" + url.QueryEscape(original)
}

func (g *Guard) log() *slog.Logger {
	if g.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.Logger
}
