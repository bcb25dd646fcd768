package handlers

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

// benchmarkGuard measures the guard's hot path: Decide on a request with
// a valid credential already in the cache, plus a spoofed header and a
// cookie of the application's own. Each iteration restores the headers
// the previous one changed, from slices made once.
func benchmarkGuard(b *testing.B, useCookie bool) {
	e := newAPIEnv(b, nil)
	e.mustUser(b, "arthur@camelot.bt", verified, func(nu *caddyauth.NewUser) {
		nu.FullName = "Arthur Pendragon"
		nu.Roles = []string{"knights", "admin"}
	})
	g := &Guard{Service: e.svc, Headers: NewHeaderSet(nil),
		Require: caddyauth.Requirements{AnyRoles: [][]string{{"admin"}}}}

	r := httptest.NewRequest("GET", "/app/page?x=1", nil)
	r.Header.Set("Accept", "text/html")
	r.Header.Set("User-Agent", "bench")
	var credKey string
	var credVals []string
	if useCookie {
		c := e.cookieLogin(b, "arthur@camelot.bt")
		credKey, credVals = "Cookie", []string{"theme=dark; " + c.Name + "=" + c.Value + "; lang=en"}
	} else {
		credKey, credVals = "Authorization", []string{"Bearer " + e.bearerLogin(b, "arthur@camelot.bt")}
	}
	spoofed := []string{"admin@evil"}
	reset := func() {
		r.Header[credKey] = credVals
		r.Header["Remote-User"] = spoofed
	}
	reset()
	if outcome, p := g.Decide(r); outcome != Pass || p == nil { // warms the cache
		b.Fatalf("Decide = %v", outcome)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		reset()
		if outcome, _ := g.Decide(r); outcome != Pass {
			b.Fatalf("Decide = %v", outcome)
		}
	}
	b.StopTimer()
	if r.Header.Get("Remote-User") != "arthur@camelot.bt" {
		b.Fatalf("Remote-User %q", r.Header.Get("Remote-User"))
	}
	if useCookie && r.Header.Get("Cookie") != "theme=dark; lang=en" {
		b.Fatalf("Cookie %q", r.Header.Get("Cookie"))
	}
	if !useCookie && r.Header.Get("Authorization") != "" {
		b.Fatal("Authorization left")
	}
}

func BenchmarkGuardBearer(b *testing.B) { benchmarkGuard(b, false) }

func BenchmarkGuardCookie(b *testing.B) { benchmarkGuard(b, true) }

// BenchmarkGuardServe is the same bearer path through ServeGuard, which
// also records the principal in the request's context.
func BenchmarkGuardServe(b *testing.B) {
	e := newAPIEnv(b, nil)
	e.mustUser(b, "arthur@camelot.bt")
	g := &Guard{Service: e.svc, Headers: NewHeaderSet(nil)}
	auth := []string{"Bearer " + e.bearerLogin(b, "arthur@camelot.bt")}
	r := httptest.NewRequest("GET", "/app", nil)
	var w http.ResponseWriter = httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		r.Header["Authorization"] = auth
		if next, _ := g.ServeGuard(w, r); next == nil {
			b.Fatal("refused")
		}
	}
}
