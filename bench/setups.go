package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
)

// setup is one way of putting Caddy in front of the upstream.
type setup struct {
	Key   string // short name, for files and flags
	Label string // as in the report
	// Guard marks the setups that issue 6's guard targets are about.
	Guard bool
}

// The setups in their report order; the baseline comes first.
var (
	setupBaseline = setup{Key: "baseline", Label: "reverse_proxy (baseline)"}
	setupJWT      = setup{Key: "jwt", Label: "gatehouse_guard, JWT", Guard: true}
	setupCookie   = setup{Key: "cookie", Label: "gatehouse_guard, cookie", Guard: true}
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

	allSetups = []setup{setupBaseline, setupJWT, setupCookie, setupAllow, setupBasic, setupForward, setupUnguarded, setupStrip}
)

// defaultSetups are measured unless -setups says otherwise: issue 6's
// and the unguarded control.
var defaultSetups = allSetups[:7]

// parseSetups reads -setups: keys separated by commas, or "all". The
// baseline is always measured, first, since every ratio needs it.
func parseSetups(list string) ([]setup, error) {
	switch list {
	case "":
		return defaultSetups, nil
	case "all":
		return allSetups, nil
	}
	out := []setup{setupBaseline}
	for key := range strings.SplitSeq(list, ",") {
		key = strings.TrimSpace(key)
		i := slices.IndexFunc(allSetups, func(s setup) bool { return s.Key == key })
		switch {
		case i < 0:
			return nil, fmt.Errorf("unknown setup %q (known: %s)", key, setupKeys(allSetups))
		case !slices.Contains(out, allSetups[i]):
			out = append(out, allSetups[i])
		}
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

// gatehouseGlobal is the global gatehouse block with the database at
// dbPath and more options (one per line) after it.
func gatehouseGlobal(dbPath string, more ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "gatehouse {\n\tdatabase sqlite %s\n", dbPath)
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

// config returns the Caddyfile of setup s. dir is the setup's own
// directory (its database goes there).
func (f fixture) config(s setup, dir string, adminPort, port int) caddyfile {
	c := caddyfile{AdminPort: adminPort, Port: port}
	switch s {
	case setupBaseline:
		c.Site = fmt.Sprintf("reverse_proxy %s {\n%s}", f.Upstream, indent(keepAlive, "\t"))
	case setupJWT, setupCookie, setupAllow:
		c.Global = gatehouseGlobal(filepath.Join(dir, "gatehouse.db"))
		c.Site = guardSite(f.Upstream)
	case setupUnguarded:
		c.Global = gatehouseGlobal(filepath.Join(dir, "gatehouse.db"))
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
	case setupJWT, setupCookie:
		if err := register(ctx, hc, base, guardEmail, benchPassword); err != nil {
			return request{}, err
		}
		if s == setupJWT {
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
