package gatehouse

import (
	"runtime"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

// TestPasswordHashConfig: the JSON settings become the core's, memory
// from bytes to KiB, and every setting left out takes its default alone.
func TestPasswordHashConfig(t *testing.T) {
	t.Parallel()
	procs := runtime.GOMAXPROCS(0)
	cases := []struct {
		name string
		in   *PasswordHashConfig
		want caddyauth.HasherConfig
	}{
		{"absent", nil, caddyauth.HasherConfig{Params: caddyauth.DefaultArgon2Params, Concurrency: procs,
			Queue: caddyauth.DefaultHashQueuePerSlot * procs, Wait: caddyauth.DefaultHashWait}},
		{"memory only", &PasswordHashConfig{Memory: 128 << 20}, caddyauth.HasherConfig{
			Params:      caddyauth.Argon2Params{Memory: 128 << 10, Time: 3, Threads: 4},
			Concurrency: procs, Queue: caddyauth.DefaultHashQueuePerSlot * procs, Wait: caddyauth.DefaultHashWait}},
		{"memory rounded down to KiB", &PasswordHashConfig{Memory: 10_000_000, Time: 2, Threads: 1}, caddyauth.HasherConfig{
			Params:      caddyauth.Argon2Params{Memory: 9765, Time: 2, Threads: 1},
			Concurrency: procs, Queue: caddyauth.DefaultHashQueuePerSlot * procs, Wait: caddyauth.DefaultHashWait}},
		{"queue from concurrency", &PasswordHashConfig{Concurrency: 3}, caddyauth.HasherConfig{
			Params: caddyauth.DefaultArgon2Params, Concurrency: 3, Queue: 3 * caddyauth.DefaultHashQueuePerSlot, Wait: caddyauth.DefaultHashWait}},
		{"all set", &PasswordHashConfig{Memory: 32 << 20, Time: 1, Threads: 2, Concurrency: 2, Queue: 7, Wait: caddy.Duration(time.Second)},
			caddyauth.HasherConfig{Params: caddyauth.Argon2Params{Memory: 32 << 10, Time: 1, Threads: 2}, Concurrency: 2, Queue: 7, Wait: time.Second}},
	}
	for _, tc := range cases {
		got, err := tc.in.hasherConfig()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: hasherConfig() = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestHasherPool: configs with the same password_hash settings share one
// hasher, so that a reload which keeps them keeps one set of slots; other
// settings get their own hasher, so that a reload which changes them
// takes effect.
func TestHasherPool(t *testing.T) {
	t.Parallel()
	app := func(c *PasswordHashConfig) *App {
		// A concurrency no other test uses, so that the pool entries are
		// this test's alone.
		c.Concurrency = 97
		return &App{PasswordHash: c, logger: zap.NewNop()}
	}
	open := func(a *App) *caddyauth.Hasher {
		t.Helper()
		h, err := a.openHasher()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Cleanup() })
		return h
	}
	old := open(app(&PasswordHashConfig{}))
	same := open(app(&PasswordHashConfig{Memory: 64 << 20, Time: 3, Threads: 4})) // the defaults, spelled out
	if same != old {
		t.Error("the same settings got another hasher: a reload would double the hashing slots")
	}
	changed := open(app(&PasswordHashConfig{Memory: 32 << 20}))
	if changed == old {
		t.Fatal("other settings got the old hasher: a reload would not change them")
	}
	if got := changed.Config().Params.Memory; got != 32<<10 {
		t.Errorf("new hasher's memory = %d KiB, want %d", got, 32<<10)
	}
	if _, err := app(&PasswordHashConfig{Time: 100}).openHasher(); err == nil {
		t.Error("openHasher accepted time 100")
	}
}
