package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// testDSN is a PostgreSQL setup's database in the tests.
const testDSN = "postgres://gatehouse:pw@127.0.0.1:5433/gatehouse_1?sslmode=disable"

// testDB is the database the harness would give s: an SQLite file in
// /d, or testDSN.
func testDB(s setup) database {
	if s.Postgres {
		return postgresAt(testDSN)
	}
	return sqliteAt("/d/gatehouse.db")
}

var testFixture = fixture{
	Upstream:    "127.0.0.1:9001",
	AuthService: "127.0.0.1:9002",
	AuthToken:   "tok",
	BasicHash:   "$2a$14$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01",
}

func TestCaddyfileBaseline(t *testing.T) {
	t.Parallel()
	got := testFixture.config(setupBaseline, testDB(setupBaseline), 2999, 8080).String()
	want := `{
	admin 127.0.0.1:2999
	persist_config off
	log {
		level INFO
	}
}

http://127.0.0.1:8080 {
	reverse_proxy 127.0.0.1:9001 {
		transport http {
			keepalive 5m
			keepalive_idle_conns 256
			keepalive_idle_conns_per_host 256
		}
	}
}
`
	if got != want {
		t.Errorf("baseline Caddyfile:\n%s\nwant:\n%s", got, want)
	}
}

// Every proxy in every setup, forward_auth's request to the auth
// service included, must have the same keep-alive transport: a setup
// left on Caddy's default of 32 idle connections would lose 10–15% by
// that alone.
func TestEverySetupKeepsConnectionsAlike(t *testing.T) {
	t.Parallel()
	for _, s := range allSetups {
		cfg := testFixture.config(s, testDB(s), 2999, 8080).String()
		proxies := strings.Count(cfg, "reverse_proxy ") + strings.Count(cfg, "forward_auth ")
		transports := strings.Count(cfg, "transport http {\n\t\t\tkeepalive 5m\n\t\t\tkeepalive_idle_conns 256\n\t\t\tkeepalive_idle_conns_per_host 256\n\t\t}")
		if proxies == 0 || transports != proxies {
			t.Errorf("%s: %d proxies, %d keep-alive transports:\n%s", s.Key, proxies, transports, cfg)
		}
		if strings.Count(cfg, "{") != strings.Count(cfg, "}") {
			t.Errorf("%s: unbalanced braces:\n%s", s.Key, cfg)
		}
		if strings.Contains(cfg, "\tlog\n") || strings.Contains(cfg, "\tlog {\n\t\toutput") {
			t.Errorf("%s: an access log:\n%s", s.Key, cfg)
		}
	}
}

func TestCaddyfileSetups(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s        setup
		has      []string
		hasNot   []string
		database bool // the setup's own database
	}{
		{setupBaseline, nil, []string{"gatehouse", "basic_auth", "forward_auth"}, false},
		{setupJWT, []string{"gatehouse_endpoints\n", "gatehouse_guard {\n\t\tallow /public/*\n\t}"}, nil, true},
		{setupCookie, []string{"gatehouse_guard {"}, nil, true},
		{setupJWTPG, []string{"gatehouse_endpoints\n", "gatehouse_guard {\n\t\tallow /public/*\n\t}"}, []string{"sqlite"}, true},
		{setupCookiePG, []string{"gatehouse_guard {"}, []string{"sqlite"}, true},
		{setupAllow, []string{"allow /public/*"}, nil, true},
		{setupBasic, []string{"basic_auth bcrypt {\n\t\t" + basicUser + " " + testFixture.BasicHash + "\n\t}", "header_up Remote-User {http.auth.user.id}"}, []string{"gatehouse"}, false},
		{setupForward, []string{"forward_auth 127.0.0.1:9002 {\n\t\turi /verify\n\t\tcopy_headers Remote-User\n"}, []string{"gatehouse"}, false},
		{setupUnguarded, []string{"\tgatehouse_endpoints\n\treverse_proxy 127.0.0.1:9001 {"}, []string{"gatehouse_guard"}, true},
		{setupStrip, []string{"\trequest_header -Remote-User\n\treverse_proxy 127.0.0.1:9001 {"}, []string{"gatehouse", "basic_auth"}, false},
	}
	for _, tt := range tests {
		cfg := testFixture.config(tt.s, testDB(tt.s), 2999, 8080).String()
		for _, want := range tt.has {
			if !strings.Contains(cfg, want) {
				t.Errorf("%s: no %q in\n%s", tt.s.Key, want, cfg)
			}
		}
		for _, bad := range tt.hasNot {
			if strings.Contains(cfg, bad) {
				t.Errorf("%s: %q in\n%s", tt.s.Key, bad, cfg)
			}
		}
		block := "\tgatehouse {\n\t\tdatabase sqlite /d/gatehouse.db\n\t}\n"
		if tt.s.Postgres {
			block = "\tgatehouse {\n\t\tdatabase postgres " + testDSN + "\n\t}\n"
		}
		if got := strings.Contains(cfg, block); got != tt.database {
			t.Errorf("%s: gatehouse block with the setup's database: %v, want %v\n%s", tt.s.Key, got, tt.database, cfg)
		}
	}
}

func TestGatehouseGlobalOptions(t *testing.T) {
	t.Parallel()
	got := gatehouseGlobal(sqliteAt("/x/g.db"), patientHashing)
	want := "gatehouse {\n\tdatabase sqlite /x/g.db\n\tpassword_hash {\n\t\twait 60s\n\t}\n}\n"
	if got != want {
		t.Errorf("gatehouseGlobal = %q, want %q", got, want)
	}
	got = gatehouseGlobal(postgresAt(testDSN))
	want = "gatehouse {\n\tdatabase postgres " + testDSN + "\n}\n"
	if got != want {
		t.Errorf("gatehouseGlobal = %q, want %q", got, want)
	}
}

// prepare needs no server for the setups without a login.
func TestPrepareWithoutLogin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s         setup
		path      string
		header    []string
		user      string
		protected bool
	}{
		{setupBaseline, "/app", nil, "", false},
		{setupAllow, "/public/app", nil, "", false},
		{setupBasic, "/app", []string{"Authorization: Basic YmFzaWMtYmVuY2g6YmVuY2gtVHIwdWI0ZG9yLWNvcnJlY3QtaG9yc2U="}, basicUser, true},
		{setupForward, "/app", []string{"Cookie: bench_auth=tok"}, forwardUser, true},
	}
	for _, tt := range tests {
		req, err := testFixture.prepare(context.Background(), http.DefaultClient, tt.s, "http://127.0.0.1:1")
		if err != nil {
			t.Fatalf("%s: %v", tt.s.Key, err)
		}
		if req.Path != tt.path || !slices.Equal(req.headerLines(), tt.header) || req.User != tt.user || req.Protected != tt.protected {
			t.Errorf("%s: prepare = %+v (headers %q), want path %s, headers %q, user %q, protected %v",
				tt.s.Key, req, req.headerLines(), tt.path, tt.header, tt.user, tt.protected)
		}
	}
}

func TestIndent(t *testing.T) {
	t.Parallel()
	if got, want := indent("a {\n\tb\n\n}\n", "\t"), "\ta {\n\t\tb\n\n\t}\n"; got != want {
		t.Errorf("indent = %q, want %q", got, want)
	}
}

func TestParseSetups(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		pg   bool
		want string
		ok   bool
	}{
		{"", true, "baseline,jwt,jwt-pg,cookie,cookie-pg,allow,basic,forward,unguarded", true},
		{"all", true, "baseline,jwt,jwt-pg,cookie,cookie-pg,allow,basic,forward,unguarded,strip", true},
		{"cookie, strip", true, "baseline,cookie,strip", true},
		{"baseline,jwt,jwt", true, "baseline,jwt", true},
		{"jwt,nope", true, "", false},
		// A PostgreSQL setup brings its SQLite twin, once, before it.
		{"jwt-pg,cookie-pg", true, "baseline,jwt,jwt-pg,cookie,cookie-pg", true},
		{"cookie-pg,cookie,forward", true, "baseline,cookie,cookie-pg,forward", true},
		{"jwt,basic,jwt-pg", true, "baseline,jwt,basic,jwt-pg", true},
		// -skip-pg: left out of the default and of all, refused by name.
		{"", false, "baseline,jwt,cookie,allow,basic,forward,unguarded", true},
		{"all", false, "baseline,jwt,cookie,allow,basic,forward,unguarded,strip", true},
		{"jwt,cookie", false, "baseline,jwt,cookie", true},
		{"jwt,cookie-pg", false, "", false},
	}
	for _, tt := range tests {
		got, err := parseSetups(tt.in, tt.pg)
		if (err == nil) != tt.ok || (err == nil && setupKeys(got) != tt.want) {
			t.Errorf("parseSetups(%q, pg %v) = %s, %v; want %s, ok %v", tt.in, tt.pg, setupKeys(got), err, tt.want, tt.ok)
		}
	}
	// -skip-pg must not change the shared default list.
	if setupKeys(defaultSetups) != tests[0].want {
		t.Errorf("defaultSetups changed to %s", setupKeys(defaultSetups))
	}
}

// Every PostgreSQL setup has an SQLite twin that is not itself on
// PostgreSQL, and is measured like it: the same site, the same request.
func TestPGTwins(t *testing.T) {
	t.Parallel()
	for _, s := range allSetups {
		twin, ok := sqliteTwin(s)
		if ok != s.Postgres {
			t.Errorf("%s: twin %v, Postgres %v", s.Key, ok, s.Postgres)
			continue
		}
		if !ok {
			continue
		}
		if twin.Postgres || !slices.Contains(allSetups, twin) {
			t.Errorf("%s: twin %+v", s.Key, twin)
		}
		pgSite := testFixture.config(s, testDB(s), 2999, 8080).Site
		sqSite := testFixture.config(twin, testDB(twin), 2999, 8080).Site
		if pgSite != sqSite {
			t.Errorf("%s: site differs from %s's:\n%s\nvs\n%s", s.Key, twin.Key, pgSite, sqSite)
		}
	}
	if !hasPostgres([]setup{setupBaseline, setupCookiePG}) || hasPostgres([]setup{setupBaseline, setupCookie}) {
		t.Error("hasPostgres is wrong")
	}
}

// The run starts PostgreSQL only when something is measured on it.
func TestNeedsPostgres(t *testing.T) {
	t.Parallel()
	withPG, _ := parseSetups("jwt-pg", true)
	withoutPG, _ := parseSetups("jwt", true)
	tests := []struct {
		o    options
		want bool
	}{
		{options{Setups: withPG}, true},
		{options{Setups: withoutPG}, true}, // the stores phase
		{options{Setups: withoutPG, SkipStores: true}, false},
		{options{Setups: withPG, SkipStores: true}, true},
		{options{Setups: withPG, SkipStores: true, SkipGuard: true}, false},
		{options{Setups: withPG, SkipPG: true}, false},
	}
	for _, tt := range tests {
		if got := tt.o.needsPostgres(); got != tt.want {
			t.Errorf("setups %s, skip guard %v, stores %v, pg %v: needsPostgres = %v, want %v",
				setupKeys(tt.o.Setups), tt.o.SkipGuard, tt.o.SkipStores, tt.o.SkipPG, got, tt.want)
		}
	}
}
