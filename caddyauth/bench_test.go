package caddyauth_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// benchEnv is a service whose sessions outlive any benchmark's fake time.
func benchEnv(b *testing.B, hasher *caddyauth.Hasher) *env {
	b.Helper()
	e := newEnv(b, func(o *caddyauth.Options) {
		o.SessionLifetime = 100 * 365 * 24 * time.Hour
		if hasher != nil {
			o.Hasher = hasher
		}
	})
	e.mustUser(b, "arthur@camelot.bt", func(nu *caddyauth.NewUser) { nu.Roles = []string{"knights"} })
	return e
}

// benchmarkCached measures the guard's hot path: a credential verified a
// moment ago, answered from memory.
func benchmarkCached(b *testing.B, tr store.Transport) {
	e := benchEnv(b, nil)
	cred := e.login(b, "arthur@camelot.bt", tr).Credential
	e.mustAuth(b, tr, cred)
	e.counter.reset()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.auth(tr, cred); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n, names := e.counter.reset(); n != 0 {
		b.Fatalf("cache hits made %d store calls: %v", n, names[:min(len(names), 5)])
	}
}

func BenchmarkAuthenticateBearerCached(b *testing.B) { benchmarkCached(b, store.TransportBearer) }

func BenchmarkAuthenticateCookieCached(b *testing.B) { benchmarkCached(b, store.TransportCookie) }

// BenchmarkAuthenticateBearerMiss measures a credential not in the cache:
// JWT parse and signature check plus one SQLite read. The fake clock
// moves by MaxStaleness per iteration so that every call misses. The
// stored last use is set far ahead, so that the once-a-minute last-use
// write (an fsync) stays out of the figure: it is a read path benchmark.
func BenchmarkAuthenticateBearerMiss(b *testing.B) {
	e := benchEnv(b, nil)
	res := e.login(b, "arthur@camelot.bt", store.TransportBearer)
	cred := res.Credential
	if err := e.db.TouchSession(context.Background(), res.Session.ID, e.clock.Now().Add(50*365*24*time.Hour)); err != nil {
		b.Fatal(err)
	}
	e.counter.reset()
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		e.clock.Advance(caddyauth.MaxStaleness)
		if _, err := e.auth(store.TransportBearer, cred); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.StopTimer()
	if calls, names := e.counter.reset(); calls != int64(n) {
		b.Fatalf("%d authentications made %d store calls, want one read each: %v", n, calls, names[:min(len(names), 5)])
	}
}

// BenchmarkLogin measures a login with the production argon2id
// parameters (64 MiB, 3 passes, 4 lanes): the hash dominates.
func BenchmarkLogin(b *testing.B) {
	e := benchEnv(b, paramsHasher(b, caddyauth.DefaultArgon2Params))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.svc.Login(ctx, "arthur@camelot.bt", testPassword, store.TransportBearer, caddyauth.ClientInfo{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHash is one argon2id hash with the production parameters: the
// floor under BenchmarkLogin, measured in the same run.
func BenchmarkHash(b *testing.B) {
	h := paramsHasher(b, caddyauth.DefaultArgon2Params)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(ctx, testPassword); err != nil {
			b.Fatal(err)
		}
	}
}
