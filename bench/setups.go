package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// setup is one way of putting Caddy in front of the upstream.
type setup struct {
	Key   string // short name, for files and flags
	Label string // as in the report
	// Guard marks the setups that issue 6's guard targets are about.
	Guard bool
	// Postgres marks the setups whose accounts are in PostgreSQL rather
	// than SQLite; they are compared with their twin (pgTwins).
	Postgres bool
}

// The setups in their report order; the baseline comes first.
var (
	setupBaseline = setup{Key: "baseline", Label: "reverse_proxy (baseline)"}
	setupJWT      = setup{Key: "jwt", Label: "gatehouse_guard, JWT", Guard: true}
	setupCookie   = setup{Key: "cookie", Label: "gatehouse_guard, cookie", Guard: true}
	// The JWT and cookie setups with `database postgres` (issue 7): on a
	// cache hit the guard should not notice the store.
	setupJWTPG    = setup{Key: "jwt-pg", Label: "gatehouse_guard, JWT, PostgreSQL", Postgres: true}
	setupCookiePG = setup{Key: "cookie-pg", Label: "gatehouse_guard, cookie, PostgreSQL", Postgres: true}
	setupAllow    = setup{Key: "allow", Label: "gatehouse_guard, allow path, anonymous"}
	setupBasic    = setup{Key: "basic", Label: "basic_auth (bcrypt)"}
	setupForward  = setup{Key: "forward", Label: "forward_auth (external service)"}
	// setupStrip is a control: the baseline plus the least a proxy in
	// front of an app that trusts Remote-User must do, delete the
	// client's. It shows what one more handler in the route costs by
	// itself, whatever it does.
	setupStrip = setup{Key: "strip", Label: "reverse_proxy + request_header -Remote-User"}
	// setupUnguarded is the cookie setup without its guard: Gatehouse's
	// endpoints in the route and the very request of the cookie setup,
	// cookie included, proxied as it is. The cookie setup's cost above
	// it is the guard's own; above the baseline, the cost of a bigger
	// request and of the endpoints' handler comes with it.
	setupUnguarded = setup{Key: "unguarded", Label: "gatehouse_endpoints, cookie sent, no guard"}

	allSetups = []setup{setupBaseline, setupJWT, setupJWTPG, setupCookie, setupCookiePG, setupAllow, setupBasic, setupForward, setupUnguarded, setupStrip}
)

// defaultSetups are measured unless -setups says otherwise: issue 6's,
// the unguarded control and issue 7's PostgreSQL twins (unless -skip-pg).
var defaultSetups = allSetups[:9]

// pgTwins pairs each PostgreSQL setup with the SQLite setup it is
// measured against, in the same round.
var pgTwins = []struct{ PG, SQLite setup }{
	{setupJWTPG, setupJWT},
	{setupCookiePG, setupCookie},
}

// sqliteTwin returns the SQLite setup that PostgreSQL setup s is
// compared with.
func sqliteTwin(s setup) (setup, bool) {
	for _, tw := range pgTwins {
		if tw.PG == s {
			return tw.SQLite, true
		}
	}
	return setup{}, false
}

// parseSetups reads -setups: keys separated by commas, or "all". The
// baseline is always measured, first, since every ratio needs it, and a
// PostgreSQL setup brings its SQLite twin, measured just before it.
// Without pg (-skip-pg), the default and "all" leave the PostgreSQL setups
// out, and naming one is an error.
func parseSetups(list string, pg bool) ([]setup, error) {
	var out []setup
	switch list {
	case "":
		out = defaultSetups
	case "all":
		out = allSetups
	}
	if out != nil {
		if !pg {
			out = slices.DeleteFunc(slices.Clone(out), func(s setup) bool { return s.Postgres })
		}
		return out, nil
	}
	out = []setup{setupBaseline}
	add := func(s setup) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for key := range strings.SplitSeq(list, ",") {
		key = strings.TrimSpace(key)
		i := slices.IndexFunc(allSetups, func(s setup) bool { return s.Key == key })
		if i < 0 {
			return nil, fmt.Errorf("unknown setup %q (known: %s)", key, setupKeys(allSetups))
		}
		s := allSetups[i]
		if s.Postgres && !pg {
			return nil, fmt.Errorf("setup %q needs PostgreSQL, which -skip-pg leaves out", key)
		}
		if twin, ok := sqliteTwin(s); ok {
			add(twin)
		}
		add(s)
	}
	return out, nil
}

// setupKeys lists the keys of ss.
func setupKeys(ss []setup) string {
	var keys []string
	for _, s := range ss {
		keys = append(keys, s.Key)
	}
	return strings.Join(keys, ",")
}

// hasPostgres reports whether any of ss keeps its accounts in PostgreSQL.
func hasPostgres(ss []setup) bool {
	return slices.ContainsFunc(ss, func(s setup) bool { return s.Postgres })
}

// keepAlive is the upstream transport of every reverse_proxy and of
// forward_auth's request to the auth service. Caddy's default keeps only
// 32 idle connections per host: with 64 clients, the proxy then opens and
// closes upstream connections all the time, which moves throughput by
// 10–15% by itself and would be measured instead of the setups. 256 is
// more than the clients can ever need.
const keepAlive = `transport http {
	keepalive 5m
	keepalive_idle_conns 256
	keepalive_idle_conns_per_host 256
}`

// The forward-auth service's cookie, and the identities the setups must
// deliver to the upstream.
const (
	forwardCookie = "bench_auth"
	forwardUser   = "forward@bench.example"
	basicUser     = "basic-bench"
	guardEmail    = "guard@bench.example"
)

// guardSite is the site of the Gatehouse setups: the account endpoints
// (to log in), a guard with one public path, and the upstream.
func guardSite(upstream string) string {
	return fmt.Sprintf(`gatehouse_endpoints
gatehouse_guard {
	allow /public/*
}
reverse_proxy %s {
%s}`, upstream, indent(keepAlive, "\t"))
}

// The store drivers of the `database` option.
const (
	driverSQLite   = "sqlite"
	driverPostgres = "postgres"
)

// database is where a Gatehouse keeps its accounts.
type database struct {
	Driver string // driverSQLite or driverPostgres
	Where  string // the SQLite file, or PostgreSQL's DSN
}

// sqliteAt is the SQLite database at path.
func sqliteAt(path string) database { return database{Driver: driverSQLite, Where: path} }

// postgresAt is the PostgreSQL database of dsn, with the pool's defaults
// (no block), as a deployment would start.
func postgresAt(dsn string) database { return database{Driver: driverPostgres, Where: dsn} }

// gatehouseGlobal is the global gatehouse block with database db and more
// options (one per line) after it.
func gatehouseGlobal(db database, more ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "gatehouse {\n\tdatabase %s %s\n", db.Driver, db.Where)
	for _, m := range more {
		b.WriteString(indent(m, "\t"))
	}
	b.WriteString("}\n")
	return b.String()
}

// fixture is what the setups need from the harness.
type fixture struct {
	Upstream    string // host:port of the upstream
	AuthService string // host:port of the forward-auth service
	AuthToken   string // the forward-auth service's valid cookie value
	BasicHash   string // bcrypt hash of benchPassword, for basic_auth
}

// config returns the Caddyfile of setup s; the Gatehouse setups keep
// their accounts in db, a fresh database of the setup's own.
func (f fixture) config(s setup, db database, adminPort, port int) caddyfile {
	c := caddyfile{AdminPort: adminPort, Port: port}
	switch s {
	case setupBaseline:
		c.Site = fmt.Sprintf("reverse_proxy %s {\n%s}", f.Upstream, indent(keepAlive, "\t"))
	case setupJWT, setupCookie, setupAllow, setupJWTPG, setupCookiePG:
		c.Global = gatehouseGlobal(db)
		c.Site = guardSite(f.Upstream)
	case setupUnguarded:
		c.Global = gatehouseGlobal(db)
		c.Site = fmt.Sprintf("gatehouse_endpoints\nreverse_proxy %s {\n%s}", f.Upstream, indent(keepAlive, "\t"))
	case setupBasic:
		// basic_auth sets {http.auth.user.id}; sending it as Remote-User
		// is how an app behind it learns who is there, the same work
		// the guard does with its identity headers.
		c.Site = fmt.Sprintf(`basic_auth bcrypt {
	%s %s
}
reverse_proxy %s {
	header_up Remote-User {http.auth.user.id}
%s}`, basicUser, f.BasicHash, f.Upstream, indent(keepAlive, "\t"))
	case setupStrip:
		c.Site = fmt.Sprintf("request_header -Remote-User\nreverse_proxy %s {\n%s}", f.Upstream, indent(keepAlive, "\t"))
	case setupForward:
		// As Authelia's and oauth2-proxy's guides have it: the auth
		// service answers 2xx with Remote-User, which forward_auth
		// copies onto the request to the upstream.
		c.Site = fmt.Sprintf(`forward_auth %s {
	uri /verify
	copy_headers Remote-User
%s}
reverse_proxy %s {
%s}`, f.AuthService, indent(keepAlive, "\t"), f.Upstream, indent(keepAlive, "\t"))
	default:
		panic("unknown setup " + s.Key)
	}
	return c
}

// request is what the load generators send to a setup, and what the
// upstream must then see.
type request struct {
	Path   string
	Header http.Header
	// User is the Remote-User the upstream must receive ("" for none).
	User string
	// Protected: without the credential, Caddy must answer 401.
	Protected bool
}

// headerLines returns the request's header as wrk's -H arguments.
func (r request) headerLines() []string {
	var lines []string
	for name, values := range r.Header {
		for _, v := range values {
			lines = append(lines, name+": "+v)
		}
	}
	return lines
}

// prepare returns the request to measure setup s with, logging in
// through Caddy (at base) where the setup needs a session.
func (f fixture) prepare(ctx context.Context, hc *http.Client, s setup, base string) (request, error) {
	switch s {
	case setupBaseline, setupStrip:
		return request{Path: "/app"}, nil
	case setupAllow:
		return request{Path: "/public/app"}, nil
	case setupUnguarded:
		if err := register(ctx, hc, base, guardEmail, benchPassword); err != nil {
			return request{}, err
		}
		cookie, err := loginCookie(ctx, hc, base, guardEmail, benchPassword)
		if err != nil {
			return request{}, err
		}
		// No guard: the cookie goes to the upstream, and no identity.
		return request{Path: "/app", Header: http.Header{"Cookie": {sessionCookie + "=" + cookie}}}, nil
	case setupJWT, setupCookie, setupJWTPG, setupCookiePG:
		if err := register(ctx, hc, base, guardEmail, benchPassword); err != nil {
			return request{}, err
		}
		if s == setupJWT || s == setupJWTPG {
			token, err := loginJWT(ctx, hc, base, guardEmail, benchPassword)
			if err != nil {
				return request{}, err
			}
			return request{Path: "/app", Header: http.Header{"Authorization": {"Bearer " + token}}, User: guardEmail, Protected: true}, nil
		}
		cookie, err := loginCookie(ctx, hc, base, guardEmail, benchPassword)
		if err != nil {
			return request{}, err
		}
		return request{Path: "/app", Header: http.Header{"Cookie": {sessionCookie + "=" + cookie}}, User: guardEmail, Protected: true}, nil
	case setupBasic:
		cred := base64.StdEncoding.EncodeToString([]byte(basicUser + ":" + benchPassword))
		return request{Path: "/app", Header: http.Header{"Authorization": {"Basic " + cred}}, User: basicUser, Protected: true}, nil
	case setupForward:
		return request{Path: "/app", Header: http.Header{"Cookie": {forwardCookie + "=" + f.AuthToken}}, User: forwardUser, Protected: true}, nil
	}
	return request{}, fmt.Errorf("unknown setup %q", s.Key)
}

// check sends req once and wants what the setup promises: 200, the
// upstream's body, and exactly the expected Remote-User at the upstream;
// and, for a protected setup, 401 without the credential. A setup that
// fails this would be measuring something else (a 401 is much cheaper
// than a proxied request), so the run stops.
func check(ctx context.Context, hc *http.Client, base string, req request) error {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, base+req.Path, nil)
	if err != nil {
		return err
	}
	for name, values := range req.Header {
		r.Header[name] = values
	}
	r.Header.Set(checkHeader, "1")
	status, body, h, err := do(hc, r)
	if err != nil {
		return fmt.Errorf("checking %s: %w", req.Path, err)
	}
	if status != http.StatusOK || body != upstreamBody {
		return fmt.Errorf("checking %s: status %d, body %q; want 200 from the upstream", req.Path, status, body)
	}
	if _, ok := h[seenUserHeader]; !ok {
		return fmt.Errorf("checking %s: the upstream did not answer the check (no %s)", req.Path, seenUserHeader)
	}
	if got := h.Get(seenUserHeader); got != req.User {
		return fmt.Errorf("checking %s: the upstream saw Remote-User %q, want %q", req.Path, got, req.User)
	}
	if !req.Protected {
		return nil
	}
	r, err = http.NewRequestWithContext(ctx, http.MethodGet, base+req.Path, nil)
	if err != nil {
		return err
	}
	status, body, _, err = do(hc, r)
	if err != nil {
		return fmt.Errorf("checking %s without a credential: %w", req.Path, err)
	}
	if status != http.StatusUnauthorized {
		return fmt.Errorf("checking %s without a credential: status %d, body %q; want 401", req.Path, status, body)
	}
	return nil
}
