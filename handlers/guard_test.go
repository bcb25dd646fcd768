package handlers

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// guardEnv is a guard over an apiEnv's service, with a user of each kind
// and their credentials.
type guardEnv struct {
	*apiEnv
	plainToken, adminToken, verifiedToken string
	plainCookie                           *http.Cookie
}

func newGuardEnv(tb testing.TB) *guardEnv {
	tb.Helper()
	e := newAPIEnv(tb, func(o *caddyauth.Options) { o.SessionLifetime = time.Hour })
	e.mustUser(tb, "plain@camelot.bt")
	e.mustUser(tb, "admin@camelot.bt", superuser, func(nu *caddyauth.NewUser) { nu.Roles = []string{"admin"}; nu.FullName = "Admin" })
	e.mustUser(tb, "verified@camelot.bt", verified, func(nu *caddyauth.NewUser) { nu.Roles = []string{"ops"} })
	return &guardEnv{
		apiEnv:        e,
		plainToken:    e.bearerLogin(tb, "plain@camelot.bt"),
		adminToken:    e.bearerLogin(tb, "admin@camelot.bt"),
		verifiedToken: e.bearerLogin(tb, "verified@camelot.bt"),
		plainCookie:   e.cookieLogin(tb, "plain@camelot.bt"),
	}
}

func (e *guardEnv) guard(mods ...func(*Guard)) *Guard {
	g := &Guard{Service: e.svc, Headers: NewHeaderSet(nil)}
	for _, m := range mods {
		m(g)
	}
	return g
}

func newGuardRequest(method, target string, opts ...reqOpt) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for _, o := range opts {
		o(r)
	}
	return r
}

// spoof adds client-made identity headers in several spellings.
func spoof() reqOpt {
	return func(r *http.Request) {
		r.Header["Remote-User"] = []string{"admin@evil"}
		r.Header["remote-user"] = []string{"admin@evil"}
		r.Header["Remote_User"] = []string{"admin@evil"}
		r.Header["REMOTE_USER"] = []string{"admin@evil"}
		r.Header["Remote-Groups"] = []string{"evil-group"}
		r.Header["Remote-Name"] = []string{"Evil"}
		r.Header["Remote-User-Id"] = []string{"00000000-0000-0000-0000-000000000000"}
	}
}

// assertNoSpoof checks that no client-made identity header survived.
func assertNoSpoof(t *testing.T, h http.Header) {
	t.Helper()
	for k, vs := range h {
		if foldHeaderName(k) == "remote-user" && (k != "Remote-User" || len(vs) != 1) {
			t.Errorf("spoofed %s: %q survived", k, vs)
		}
		for _, v := range vs {
			if v == "admin@evil" || v == "Evil" || v == "00000000-0000-0000-0000-000000000000" || v == "evil-group" {
				t.Errorf("spoofed value %s: %q survived", k, v)
			}
		}
	}
}

func TestGuardPassesWithIdentity(t *testing.T) {
	t.Parallel()
	e := newGuardEnv(t)
	g := e.guard()

	t.Run("bearer", func(t *testing.T) {
		r := newGuardRequest("GET", "/app", bearer(e.adminToken), spoof(), withHeader("X-Keep", "1"))
		outcome, p := g.Decide(r)
		if outcome != Pass || p == nil || p.Email != "admin@camelot.bt" {
			t.Fatalf("Decide = %v, %+v", outcome, p)
		}
		assertNoSpoof(t, r.Header)
		want := map[string]string{"Remote-User": "admin@camelot.bt", "Remote-Email": "admin@camelot.bt",
			"Remote-User-Id": p.UserID, "Remote-Name": "Admin", "Remote-Groups": "admin", "X-Keep": "1"}
		for k, v := range want {
			if got := r.Header.Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if a := r.Header.Get("Authorization"); a != "" {
			t.Errorf("our bearer token went upstream: %q", a)
		}
	})
	t.Run("cookie", func(t *testing.T) {
		r := newGuardRequest("GET", "/app", spoof(), withHeader("Cookie", "theme=dark; "+e.plainCookie.Name+"="+e.plainCookie.Value+"; lang=en"))
		outcome, p := g.Decide(r)
		if outcome != Pass || p == nil || p.Email != "plain@camelot.bt" {
			t.Fatalf("Decide = %v, %+v", outcome, p)
		}
		assertNoSpoof(t, r.Header)
		if got := r.Header.Values("Cookie"); len(got) != 1 || got[0] != "theme=dark; lang=en" {
			t.Errorf("Cookie upstream %q, want the other cookies exactly", got)
		}
		// A plain user has no name and no roles: those headers are absent.
		for _, k := range []string{"Remote-Name", "Remote-Groups"} {
			if _, ok := r.Header[k]; ok {
				t.Errorf("%s sent: %q", k, r.Header[k])
			}
		}
	})
	t.Run("foreign bearer token is kept for the upstream", func(t *testing.T) {
		foreign := []string{
			"Bearer upstream-api-key",
			"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", // someone else's JWT
			"Basic dXNlcjpwYXNz",
		}
		for _, a := range foreign {
			r := newGuardRequest("GET", "/app", withHeader("Authorization", a), withCookie(e.plainCookie.Name, e.plainCookie.Value))
			if outcome, _ := g.Decide(r); outcome != Pass {
				t.Fatalf("%s: Decide = %v", a, outcome)
			}
			if got := r.Header.Get("Authorization"); got != a {
				t.Errorf("Authorization %q, want %q kept", got, a)
			}
			if r.Header.Get("Cookie") != "" {
				t.Errorf("our cookie went upstream: %q", r.Header.Get("Cookie"))
			}
		}
	})
	t.Run("bearer scheme in lower case", func(t *testing.T) {
		r := newGuardRequest("GET", "/app", withHeader("Authorization", "bearer "+e.plainToken))
		if outcome, _ := g.Decide(r); outcome != Pass || r.Header.Get("Authorization") != "" {
			t.Fatalf("Decide = %v, Authorization %q", outcome, r.Header.Get("Authorization"))
		}
	})
}

func TestGuardRefusals(t *testing.T) {
	t.Parallel()
	e := newGuardEnv(t)
	g := e.guard()
	revoked := e.bearerLogin(t, "plain@camelot.bt")
	if w := e.serve("POST", "/auth/jwt/logout", "", bearer(revoked)); w.Code != 204 {
		t.Fatal(w.Code)
	}

	t.Run("API client gets 401 JSON", func(t *testing.T) {
		for name, opts := range map[string][]reqOpt{
			"no credential":         nil,
			"garbage bearer":        {bearer("garbage")},
			"forged cookie":         {withCookie("gatehouse_session", "forged")},
			"revoked bearer":        {bearer(revoked)},
			"POST from a browser":   {withHeader("Accept", "text/html")},
			"GET asking for JSON":   {withHeader("Accept", "application/json")},
			"cookie used as bearer": {bearer(e.plainCookie.Value)},
		} {
			t.Run(name, func(t *testing.T) {
				method := "GET"
				if name == "POST from a browser" {
					method = "POST"
				}
				r := newGuardRequest(method, "/app", append(opts, spoof())...)
				w := httptest.NewRecorder()
				next, p := g.ServeGuard(w, r)
				if next != nil || p != nil {
					t.Fatalf("ServeGuard passed the request on")
				}
				wantJSON(t, w, 401, `{"detail":"Unauthorized"}`)
				if h := w.Header().Get("WWW-Authenticate"); h != "" {
					t.Errorf("WWW-Authenticate %q", h)
				}
				assertNoSpoof(t, r.Header)
			})
		}
	})
	t.Run("our own dead tokens are stripped, not passed on", func(t *testing.T) {
		expired := e.bearerLogin(t, "verified@camelot.bt")
		e.clock.Advance(2 * time.Hour)
		defer e.clock.Advance(-2 * time.Hour)
		for name, tok := range map[string]string{"revoked": revoked, "expired": expired} {
			r := newGuardRequest("GET", "/app", bearer(tok))
			if outcome, _ := g.Decide(r); outcome != Unauthenticated {
				t.Fatalf("%s: Decide = %v", name, outcome)
			}
			if a := r.Header.Get("Authorization"); a != "" {
				t.Errorf("%s token went on: %q", name, a)
			}
		}
	})
	t.Run("browser is sent to the login page", func(t *testing.T) {
		const target = "http://app.example.com/a%20b/c?x=1&y=%C3%A9&rd=evil"
		for _, method := range []string{"GET", "HEAD"} {
			r := newGuardRequest(method, target, withHeader("Accept", "text/html,application/xhtml+xml;q=0.9"))
			w := httptest.NewRecorder()
			if next, _ := g.ServeGuard(w, r); next != nil {
				t.Fatal("passed on")
			}
			if w.Code != http.StatusFound {
				t.Fatalf("%s: status %d, want 302", method, w.Code)
			}
			loc := w.Header().Get("Location")
			const original = "http://app.example.com/a%20b/c?x=1&y=%C3%A9&rd=evil"
			if want := "/auth/login?rd=" + url.QueryEscape(original); loc != want {
				t.Errorf("Location %q\nwant     %q", loc, want)
			}
			u, err := url.Parse(loc)
			if err != nil || u.Path != "/auth/login" || u.Query().Get("rd") != original || len(u.Query()) != 1 {
				t.Errorf("Location %q does not carry rd=%q alone", loc, original)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
		}
	})
	t.Run("redirect variants", func(t *testing.T) {
		html := withHeader("Accept", "text/html")
		cases := []struct {
			name string
			g    *Guard
			r    *http.Request
			want string
		}{
			{"TLS", g, newGuardRequest("GET", "/x", html, func(r *http.Request) { r.TLS = &tls.ConnectionState{}; r.Host = "s.example" }),
				"/auth/login?rd=" + url.QueryEscape("https://s.example/x")},
			{"login URL with a query", e.guard(func(g *Guard) { g.LoginURL = "/sso/login?lang=en" }), newGuardRequest("GET", "/x", html),
				"/sso/login?lang=en&rd=" + url.QueryEscape("http://example.com/x")},
			{"absolute login URL", e.guard(func(g *Guard) { g.LoginURL = "https://auth.example.com/login" }), newGuardRequest("GET", "/x", html),
				"https://auth.example.com/login?rd=" + url.QueryEscape("http://example.com/x")},
			{"original URL from the server", e.guard(func(g *Guard) {
				g.OriginalURL = func(*http.Request) string { return "https://app.example.com/before/rewrite?q=1" }
			}), newGuardRequest("GET", "/after", html),
				"/auth/login?rd=" + url.QueryEscape("https://app.example.com/before/rewrite?q=1")},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				w := httptest.NewRecorder()
				c.g.ServeGuard(w, c.r)
				if w.Code != http.StatusFound || w.Header().Get("Location") != c.want {
					t.Fatalf("%d Location %q, want 302 %q", w.Code, w.Header().Get("Location"), c.want)
				}
			})
		}
	})
}

func TestGuardRequireRules(t *testing.T) {
	t.Parallel()
	e := newGuardEnv(t)
	cases := []struct {
		name    string
		require caddyauth.Requirements
		token   string
		pass    bool
	}{
		{"superuser: admin", caddyauth.Requirements{Superuser: true}, e.adminToken, true},
		{"superuser: plain", caddyauth.Requirements{Superuser: true}, e.plainToken, false},
		{"verified: verified", caddyauth.Requirements{Verified: true}, e.verifiedToken, true},
		{"verified: plain", caddyauth.Requirements{Verified: true}, e.plainToken, false},
		{"role: has one of them", caddyauth.Requirements{AnyRoles: [][]string{{"admin", "ops"}}}, e.verifiedToken, true},
		{"role: has none", caddyauth.Requirements{AnyRoles: [][]string{{"admin", "ops"}}}, e.plainToken, false},
		{"two role rules", caddyauth.Requirements{AnyRoles: [][]string{{"admin"}, {"ops"}}}, e.adminToken, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := e.guard(func(g *Guard) { g.Require = c.require })
			r := newGuardRequest("GET", "/admin", bearer(c.token), spoof(), withHeader("Accept", "text/html"))
			w := httptest.NewRecorder()
			next, _ := g.ServeGuard(w, r)
			assertNoSpoof(t, r.Header)
			if r.Header.Get("Authorization") != "" {
				t.Error("credential not stripped")
			}
			if c.pass {
				if next == nil || w.Code != 200 || w.Body.Len() != 0 {
					t.Fatalf("refused: %d %s", w.Code, w.Body)
				}
				if p, ok := PrincipalFrom(next.Context()); !ok || next.Header.Get("Remote-User") != p.Email {
					t.Fatalf("no principal or identity on the passed request")
				}
				return
			}
			if next != nil {
				t.Fatal("passed")
			}
			// A browser too gets 403: logging in again would not help.
			wantJSON(t, w, 403, `{"detail":"Forbidden"}`)
			if r.Header.Get("Remote-User") != "" {
				t.Error("identity set on a forbidden request")
			}
		})
	}
	t.Run("global require_verified", func(t *testing.T) {
		e2 := newAPIEnv(t, func(o *caddyauth.Options) { o.RequireVerified = true })
		u := e2.mustUser(t, "a@camelot.bt", verified)
		tok := e2.bearerLogin(t, "a@camelot.bt")
		if _, err := e2.svc.UpdateUser(context.Background(), u.ID, caddyauth.UserPatch{IsVerified: new(bool)}, ""); err != nil {
			t.Fatal(err)
		}
		g := &Guard{Service: e2.svc, Headers: NewHeaderSet(nil)}
		if outcome, _ := g.Decide(newGuardRequest("GET", "/", bearer(tok))); outcome != Forbidden {
			t.Fatalf("Decide = %v, want Forbidden", outcome)
		}
	})
}

func TestGuardPublicPaths(t *testing.T) {
	t.Parallel()
	e := newGuardEnv(t)
	g := e.guard(func(g *Guard) {
		g.Require = caddyauth.Requirements{Superuser: true, AnyRoles: [][]string{{"admin"}}}
		g.Public = func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/public/") }
	})

	t.Run("no session", func(t *testing.T) {
		r := newGuardRequest("GET", "/public/x", spoof())
		outcome, p := g.Decide(r)
		if outcome != Pass || p != nil {
			t.Fatalf("Decide = %v, %+v", outcome, p)
		}
		assertNoSpoof(t, r.Header)
		if r.Header.Get("Remote-User") != "" {
			t.Error("identity on an anonymous request")
		}
	})
	t.Run("invalid session", func(t *testing.T) {
		r := newGuardRequest("GET", "/public/x", spoof(), withCookie("gatehouse_session", "forged"), withCookie("a", "1"))
		if outcome, p := g.Decide(r); outcome != Pass || p != nil {
			t.Fatalf("Decide = %v, %+v", outcome, p)
		}
		assertNoSpoof(t, r.Header)
		if got := r.Header.Get("Cookie"); got != "a=1" {
			t.Errorf("Cookie %q: a forged session cookie must not reach the upstream either", got)
		}
	})
	t.Run("session skips the require rules, identity still set", func(t *testing.T) {
		r := newGuardRequest("GET", "/public/x", spoof(), bearer(e.plainToken))
		outcome, p := g.Decide(r)
		if outcome != Pass || p == nil {
			t.Fatalf("Decide = %v, %+v", outcome, p)
		}
		assertNoSpoof(t, r.Header)
		if r.Header.Get("Remote-User") != "plain@camelot.bt" || r.Header.Get("Authorization") != "" {
			t.Errorf("headers %v", r.Header)
		}
	})
	t.Run("outside the public paths the rules hold", func(t *testing.T) {
		if outcome, _ := g.Decide(newGuardRequest("GET", "/private", bearer(e.plainToken))); outcome != Forbidden {
			t.Fatalf("Decide = %v, want Forbidden", outcome)
		}
		if outcome, _ := g.Decide(newGuardRequest("GET", "/private")); outcome != Unauthenticated {
			t.Fatalf("Decide = %v, want Unauthenticated", outcome)
		}
	})
}

// TestGuardAsksPublicOnlyWhenItMatters: the allow matcher (Caddy's path
// matcher, the costliest step of a cached request) runs only when its
// answer can change the outcome: with no user, or a rule the user fails.
func TestGuardAsksPublicOnlyWhenItMatters(t *testing.T) {
	t.Parallel()
	e := newGuardEnv(t)
	calls := 0
	g := e.guard(func(g *Guard) {
		g.Require = caddyauth.Requirements{Superuser: true}
		g.Public = func(r *http.Request) bool { calls++; return strings.HasPrefix(r.URL.Path, "/public/") }
	})
	for _, tc := range []struct {
		name, path, token string
		want              Outcome
		wantCalls         int
	}{
		{"user passing the rules", "/private", e.adminToken, Pass, 0},
		{"user passing the rules on a public path", "/public/x", e.adminToken, Pass, 0},
		{"user failing a rule", "/private", e.plainToken, Forbidden, 1},
		{"user failing a rule on a public path", "/public/x", e.plainToken, Pass, 1},
		{"no user", "/private", "", Unauthenticated, 1},
		{"no user on a public path", "/public/x", "", Pass, 1},
	} {
		calls = 0
		var opts []reqOpt
		if tc.token != "" {
			opts = append(opts, bearer(tc.token))
		}
		if outcome, _ := g.Decide(newGuardRequest("GET", tc.path, opts...)); outcome != tc.want || calls != tc.wantCalls {
			t.Errorf("%s: Decide = %v with %d matcher calls, want %v with %d", tc.name, outcome, calls, tc.want, tc.wantCalls)
		}
	}
}

// TestSecondGuardReusesThePrincipal: a stricter guard after a general one
// on the same request decides on what the first verified; the credential
// is gone by then, so authenticating again would fail.
func TestSecondGuardReusesThePrincipal(t *testing.T) {
	t.Parallel()
	e := newGuardEnv(t)
	general := e.guard()
	strict := e.guard(func(g *Guard) { g.Require = caddyauth.Requirements{AnyRoles: [][]string{{"admin"}}} })

	for _, c := range []struct {
		name  string
		token string
		want  Outcome
	}{{"admin", e.adminToken, Pass}, {"plain", e.plainToken, Forbidden}} {
		t.Run(c.name, func(t *testing.T) {
			r := newGuardRequest("GET", "/admin/x", bearer(c.token))
			next, p := general.ServeGuard(httptest.NewRecorder(), r)
			if next == nil || p == nil {
				t.Fatal("the general guard refused")
			}
			if next.Header.Get("Authorization") != "" {
				t.Fatal("credential still present after the first guard")
			}
			// A client cannot add identity between the two: the second
			// guard strips again, then sets what the first verified.
			next.Header["remote_user"] = []string{"admin@evil"}
			outcome, p2 := strict.Decide(next)
			if outcome != c.want {
				t.Fatalf("second guard: %v, want %v", outcome, c.want)
			}
			if p2 != p {
				t.Errorf("second guard used another principal")
			}
			assertNoSpoof(t, next.Header)
		})
	}
	t.Run("without a first guard the stripped request is anonymous", func(t *testing.T) {
		r := newGuardRequest("GET", "/admin/x", bearer(e.adminToken))
		general.Decide(r) // strips, but the context is not passed on
		if outcome, _ := strict.Decide(r); outcome != Unauthenticated {
			t.Fatalf("Decide = %v, want Unauthenticated", outcome)
		}
	})
}

// TestGuardFailsClosed: when the store cannot answer, nothing passes, not
// even on a public path.
func TestGuardFailsClosed(t *testing.T) {
	t.Parallel()
	e := newGuardEnv(t)
	g := e.guard(func(g *Guard) { g.Public = func(r *http.Request) bool { return r.URL.Path == "/public" } })
	fresh := e.bearerLogin(t, "admin@camelot.bt") // never used: not cached
	e.db.Close()
	for _, path := range []string{"/app", "/public"} {
		r := newGuardRequest("GET", path, bearer(fresh), spoof(), withHeader("Accept", "text/html"))
		w := httptest.NewRecorder()
		if next, _ := g.ServeGuard(w, r); next != nil {
			t.Fatalf("%s: passed with the store down", path)
		}
		wantJSON(t, w, 500, `{"detail":"Internal Server Error"}`)
		assertNoSpoof(t, r.Header)
	}
}

// downStore is a store whose reads fail as a database server that cannot
// be reached fails them, while down is set.
type downStore struct {
	store.Store
	down *atomic.Bool
}

func (s downStore) SessionByDigest(ctx context.Context, digest []byte) (*store.Session, *store.User, error) {
	if s.down.Load() {
		return nil, nil, fmt.Errorf("reading session: %w: dial tcp 127.0.0.1:5432: connect: connection refused", store.ErrUnavailable)
	}
	return s.Store.SessionByDigest(ctx, digest)
}

func (s downStore) UserByEmail(ctx context.Context, email string) (*store.User, error) {
	if s.down.Load() {
		return nil, fmt.Errorf("reading user: %w: dial tcp 127.0.0.1:5432: connect: connection refused", store.ErrUnavailable)
	}
	return s.Store.UserByEmail(ctx, email)
}

// TestGuardUnavailable: while the database cannot be reached the guard
// still fails closed, with 503 and Retry-After (the failure is temporary),
// as do the endpoints; when it is back, the same credential passes.
func TestGuardUnavailable(t *testing.T) {
	t.Parallel()
	down := new(atomic.Bool)
	e := newAPIEnv(t, func(o *caddyauth.Options) { o.Store = downStore{o.Store, down} })
	e.mustUser(t, "plain@camelot.bt")
	tok := e.bearerLogin(t, "plain@camelot.bt") // never used: not cached
	g := &Guard{Service: e.svc, Headers: NewHeaderSet(nil), Public: func(r *http.Request) bool { return r.URL.Path == "/public" }}
	down.Store(true)
	for _, path := range []string{"/app", "/public"} {
		r := newGuardRequest("GET", path, bearer(tok), spoof())
		w := httptest.NewRecorder()
		if next, _ := g.ServeGuard(w, r); next != nil {
			t.Fatalf("%s: passed with the database unreachable", path)
		}
		wantJSON(t, w, 503, `{"detail":"Service Unavailable"}`)
		if got := w.Header().Get("Retry-After"); got != "5" {
			t.Errorf("%s: Retry-After %q, want 5", path, got)
		}
		assertNoSpoof(t, r.Header)
	}
	w := e.serve("POST", "/auth/jwt/login", form("username", "plain@camelot.bt", "password", testPassword), formCT())
	wantJSON(t, w, 503, `{"detail":"Service Unavailable"}`)
	down.Store(false)
	if next, p := g.ServeGuard(httptest.NewRecorder(), newGuardRequest("GET", "/app", bearer(tok))); next == nil || p == nil {
		t.Fatal("the credential does not pass once the database is back")
	}
}

// TestGuardRefusesAmbiguousPaths: a path that a servlet container, a
// Windows server or C code would read as another path than Caddy's
// matchers do is refused (400) by every guard, before the public paths
// and the credentials are looked at; a path Caddy's matchers normalise
// themselves (escapes, dot segments) is not.
func TestGuardRefusesAmbiguousPaths(t *testing.T) {
	t.Parallel()
	e := newGuardEnv(t)
	g := e.guard(func(g *Guard) {
		g.Public = func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/public/") }
	})
	for _, target := range []string{
		"/admin;/x", "/admin;x=1/x", "/admin%3b/x", "/admin%3B/x", "/public/..;/admin/x", "/public/x;jsessionid=1",
		`/admin\x`, "/admin%5cx", "/public/..%5Cadmin/x",
		"/admin%00/x", "/admin/x%00", "/admin%09/x", "/admin%0a/x", "/admin%0d/x", "/admin%1f/x", "/admin%7f/x",
	} {
		for name, token := range map[string]string{"anonymous": "", "admin": e.adminToken} {
			t.Run(target+" "+name, func(t *testing.T) {
				opts := []reqOpt{spoof(), withHeader("Accept", "text/html")}
				if token != "" {
					opts = append(opts, bearer(token))
				}
				r := newGuardRequest("GET", target, opts...)
				w := httptest.NewRecorder()
				if next, p := g.ServeGuard(w, r); next != nil || p != nil {
					t.Fatalf("ServeGuard passed %q on", target)
				}
				wantJSON(t, w, http.StatusBadRequest, `{"detail":"Bad Request"}`)
				assertNoSpoof(t, r.Header)
			})
		}
	}
	for _, target := range []string{"/app", "/public/x", "/%61dmin/x", "/admin%2fx", "/public/%2e%2e/x", "//admin/x",
		"/caf%C3%A9", "/%2561dmin/x", "/app?q=a;b&r=%00"} {
		t.Run(target, func(t *testing.T) {
			if outcome, p := g.Decide(newGuardRequest("GET", target, bearer(e.plainToken))); outcome != Pass || p == nil {
				t.Fatalf("Decide(%q) = %v, %+v; want Pass", target, outcome, p)
			}
		})
	}
}

// TestGuardStripsOwnTokenWhereverItIs: an Authorization value that holds
// one of Gatehouse's tokens with anything around it (the value a folded
// continuation line makes, a list, another scheme) does not authenticate,
// and does not reach the upstream either; the application's own values
// pass.
func TestGuardStripsOwnTokenWhereverItIs(t *testing.T) {
	t.Parallel()
	e := newGuardEnv(t)
	g := e.guard(func(g *Guard) { g.Public = func(r *http.Request) bool { return r.URL.Path == "/public" } })
	tok := e.plainToken
	for _, c := range []struct{ name, value string }{
		{"words after it", "Bearer " + tok + " extra"},
		{"a folded line after it", "Bearer " + tok + " Remote-User: admin@evil"}, // "Bearer <token>\r\n Remote-User: …"
		{"a comma after it", "Bearer " + tok + ","},
		{"a dot after it", "Bearer " + tok + "."},
		{"quoted", `Bearer "` + tok + `"`},
		{"first in a list", "Bearer " + tok + ", Basic dXNlcjpwYXNz"},
		{"last in a list", "Basic dXNlcjpwYXNz, Bearer " + tok},
		{"another scheme", "Token " + tok},
		{"an auth-param", "Bearer access_token=" + tok},
		{"no scheme", tok},
		{"too many words to check", "Bearer app-key " + strings.Repeat("x ", maxAuthWords)},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newGuardRequest("GET", "/public", withHeader("Authorization", c.value))
			if outcome, p := g.Decide(r); outcome != Pass || p != nil {
				t.Fatalf("Decide = %v, %+v; want an anonymous Pass", outcome, p)
			}
			if a := r.Header.Values("Authorization"); len(a) != 0 {
				t.Errorf("Authorization upstream: %q", a)
			}
		})
	}
	for _, v := range []string{"Bearer app-api-key-123", "Basic dXNlcjpwYXNz", "Bearer a.b.c", "Token abc, Bearer x.y",
		`Digest username="u", realm="r", nonce="n", uri="/", response="0123", qop=auth, nc=00000001, cnonce="c"`} {
		t.Run(v, func(t *testing.T) {
			r := newGuardRequest("GET", "/public", withHeader("Authorization", v))
			if outcome, _ := g.Decide(r); outcome != Pass {
				t.Fatalf("Decide = %v", outcome)
			}
			if a := r.Header.Values("Authorization"); len(a) != 1 || a[0] != v {
				t.Errorf("Authorization upstream: %q, want the application's %q", a, v)
			}
		})
	}
}
