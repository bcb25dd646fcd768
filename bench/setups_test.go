package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
)

var testFixture = fixture{
	Upstream:    "127.0.0.1:9001",
	AuthService: "127.0.0.1:9002",
	AuthToken:   "tok",
	BasicHash:   "$2a$14$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01",
}

func TestCaddyfileBaseline(t *testing.T) {
	t.Parallel()
	got := testFixture.config(setupBaseline, "/d", 2999, 8080).String()
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
		cfg := testFixture.config(s, "/d", 2999, 8080).String()
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
		database bool
	}{
		{setupBaseline, nil, []string{"gatehouse", "basic_auth", "forward_auth"}, false},
		{setupJWT, []string{"gatehouse_endpoints\n", "gatehouse_guard {\n\t\tallow /public/*\n\t}"}, nil, true},
		{setupCookie, []string{"gatehouse_guard {"}, nil, true},
		{setupAllow, []string{"allow /public/*"}, nil, true},
		{setupBasic, []string{"basic_auth bcrypt {\n\t\t" + basicUser + " " + testFixture.BasicHash + "\n\t}", "header_up Remote-User {http.auth.user.id}"}, []string{"gatehouse"}, false},
		{setupForward, []string{"forward_auth 127.0.0.1:9002 {\n\t\turi /verify\n\t\tcopy_headers Remote-User\n"}, []string{"gatehouse"}, false},
		{setupUnguarded, []string{"\tgatehouse_endpoints\n\treverse_proxy 127.0.0.1:9001 {"}, []string{"gatehouse_guard"}, true},
		{setupStrip, []string{"\trequest_header -Remote-User\n\treverse_proxy 127.0.0.1:9001 {"}, []string{"gatehouse", "basic_auth"}, false},
	}
	for _, tt := range tests {
		cfg := testFixture.config(tt.s, "/d", 2999, 8080).String()
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
		if got := strings.Contains(cfg, "\tgatehouse {\n\t\tdatabase sqlite /d/gatehouse.db\n\t}\n"); got != tt.database {
			t.Errorf("%s: gatehouse block with the setup's database: %v, want %v\n%s", tt.s.Key, got, tt.database, cfg)
		}
	}
}

func TestGatehouseGlobalOptions(t *testing.T) {
	t.Parallel()
	got := gatehouseGlobal("/x/g.db", "password_hash {\n\twait 60s\n}\n")
	want := "gatehouse {\n\tdatabase sqlite /x/g.db\n\tpassword_hash {\n\t\twait 60s\n\t}\n}\n"
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
		want string
		ok   bool
	}{
		{"", "baseline,jwt,cookie,allow,basic,forward,unguarded", true},
		{"all", "baseline,jwt,cookie,allow,basic,forward,unguarded,strip", true},
		{"cookie, strip", "baseline,cookie,strip", true},
		{"baseline,jwt,jwt", "baseline,jwt", true},
		{"jwt,nope", "", false},
	}
	for _, tt := range tests {
		got, err := parseSetups(tt.in)
		if (err == nil) != tt.ok || (err == nil && setupKeys(got) != tt.want) {
			t.Errorf("parseSetups(%q) = %s, %v; want %s, ok %v", tt.in, setupKeys(got), err, tt.want, tt.ok)
		}
	}
}
