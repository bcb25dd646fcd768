package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

var testLimit = store.Limit{Max: 3, Window: 10 * time.Minute, Ban: 15 * time.Minute}

// recordFailure calls RecordFailure and fails the test on an error.
func recordFailure(t *testing.T, s store.Store, key string, l store.Limit, now time.Time) (time.Time, bool) {
	t.Helper()
	until, started, err := s.RecordFailure(context.Background(), key, l, now)
	if err != nil {
		t.Fatalf("RecordFailure(%q): %v", key, err)
	}
	return until, started
}

// bannedUntil calls BannedUntil and fails the test on an error.
func bannedUntil(t *testing.T, s store.Store, key string, now time.Time) time.Time {
	t.Helper()
	until, err := s.BannedUntil(context.Background(), key, now)
	if err != nil {
		t.Fatalf("BannedUntil(%q): %v", key, err)
	}
	return until
}

func testRecordFailure(t *testing.T, s store.Store) {
	now := t0
	for i := 1; i < testLimit.Max; i++ {
		if until, started := recordFailure(t, s, "k", testLimit, now); !until.IsZero() || started {
			t.Fatalf("failure %d: banned until %v, started %v; want no ban", i, until, started)
		}
		now = now.Add(time.Second)
	}
	if got := bannedUntil(t, s, "k", now); !got.IsZero() {
		t.Fatalf("BannedUntil before the limit = %v, want zero", got)
	}
	until, started := recordFailure(t, s, "k", testLimit, now)
	want := now.Add(testLimit.Ban).Truncate(time.Microsecond)
	if !started || !until.Equal(want) {
		t.Fatalf("failure %d: banned until %v, started %v; want %v, true", testLimit.Max, until, started, want)
	}
	if got := bannedUntil(t, s, "k", now); !got.Equal(want) {
		t.Fatalf("BannedUntil = %v, want %v", got, want)
	}
	if got := bannedUntil(t, s, "other", now); !got.IsZero() {
		t.Fatalf("BannedUntil of another key = %v, want zero", got)
	}
	// Failures during the ban neither count nor extend it.
	for range 2 * testLimit.Max {
		now = now.Add(time.Second)
		if until, started := recordFailure(t, s, "k", testLimit, now); started || !until.Equal(want) {
			t.Fatalf("failure while banned: until %v, started %v; want %v, false", until, started, want)
		}
	}
	// The ban ends at its time exactly; then the count starts afresh.
	if got := bannedUntil(t, s, "k", want.Add(-time.Microsecond)); !got.Equal(want) {
		t.Fatalf("BannedUntil just before the end = %v, want %v", got, want)
	}
	if got := bannedUntil(t, s, "k", want); !got.IsZero() {
		t.Fatalf("BannedUntil at the end = %v, want zero", got)
	}
	now = want
	for i := 1; i < testLimit.Max; i++ {
		if until, started := recordFailure(t, s, "k", testLimit, now); !until.IsZero() || started {
			t.Fatalf("failure %d after the ban: banned until %v, started %v; want no ban", i, until, started)
		}
	}
	if _, started := recordFailure(t, s, "k", testLimit, now); !started {
		t.Fatal("the limit reached again after a ban did not start a new one")
	}
}

func testRecordFailureWindow(t *testing.T, s store.Store) {
	now := t0
	for range testLimit.Max - 1 {
		recordFailure(t, s, "k", testLimit, now)
	}
	// The window is over: the next failures start a new one.
	now = now.Add(testLimit.Window)
	for i := 1; i < testLimit.Max; i++ {
		if until, started := recordFailure(t, s, "k", testLimit, now); !until.IsZero() || started {
			t.Fatalf("failure %d of a new window: banned until %v, started %v", i, until, started)
		}
	}
	if _, started := recordFailure(t, s, "k", testLimit, now.Add(testLimit.Window-time.Microsecond)); !started {
		t.Fatal("the limit reached within the window did not ban")
	}
	// Max 1: the first failure bans.
	if _, started := recordFailure(t, s, "one", store.Limit{Max: 1, Window: time.Minute, Ban: time.Minute}, now); !started {
		t.Fatal("Max 1: the first failure did not ban")
	}
}

func testRecordFailureConcurrent(t *testing.T, s store.Store) {
	// 4 × Max concurrent failures: exactly one of them starts the ban,
	// whichever it is; none is lost.
	l := store.Limit{Max: 8, Window: time.Hour, Ban: time.Hour}
	var wg sync.WaitGroup
	var mu sync.Mutex
	starts := 0
	for range 4 * l.Max {
		wg.Go(func() {
			_, started, err := s.RecordFailure(context.Background(), "k", l, t0)
			if err != nil {
				t.Errorf("RecordFailure: %v", err)
				return
			}
			if started {
				mu.Lock()
				starts++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if starts != 1 {
		t.Fatalf("%d failures started %d bans, want 1", 4*l.Max, starts)
	}
}

func testClearFailures(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0
	for range testLimit.Max - 1 {
		recordFailure(t, s, "k", testLimit, now)
	}
	if err := s.ClearFailures(ctx, "k", now); err != nil {
		t.Fatalf("ClearFailures: %v", err)
	}
	// Counting starts again: Max − 1 more failures do not ban.
	for range testLimit.Max - 1 {
		if _, started := recordFailure(t, s, "k", testLimit, now); started {
			t.Fatal("failures cleared still counted")
		}
	}
	if err := s.ClearFailures(ctx, "none", now); err != nil {
		t.Fatalf("ClearFailures of an unknown key: %v", err)
	}
	// A ban in force is not cleared.
	until, _ := recordFailure(t, s, "k", testLimit, now)
	if err := s.ClearFailures(ctx, "k", now); err != nil {
		t.Fatalf("ClearFailures: %v", err)
	}
	if got := bannedUntil(t, s, "k", now); !got.Equal(until) || got.IsZero() {
		t.Fatalf("BannedUntil after ClearFailures = %v, want %v", got, until)
	}
}

func testLiftLimit(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0
	var until time.Time
	for range testLimit.Max {
		until, _ = recordFailure(t, s, "k", testLimit, now)
	}
	recordFailure(t, s, "other", testLimit, now)
	if got := bannedUntil(t, s, "k", now); got.IsZero() || !got.Equal(until) {
		t.Fatalf("BannedUntil = %v, want %v", got, until)
	}
	if err := s.LiftLimit(ctx, "k"); err != nil {
		t.Fatalf("LiftLimit: %v", err)
	}
	if got := bannedUntil(t, s, "k", now); !got.IsZero() {
		t.Fatalf("BannedUntil after LiftLimit = %v, want none", got)
	}
	// The count starts again from nothing.
	for range testLimit.Max - 1 {
		if _, started := recordFailure(t, s, "k", testLimit, now); started {
			t.Fatal("failures before LiftLimit still counted")
		}
	}
	// Other keys keep theirs: one more failure of "other" is its second.
	for range testLimit.Max - 2 {
		recordFailure(t, s, "other", testLimit, now)
	}
	if _, started := recordFailure(t, s, "other", testLimit, now); !started {
		t.Fatal("LiftLimit of one key cleared another's failures")
	}
	if err := s.LiftLimit(ctx, "none"); err != nil {
		t.Fatalf("LiftLimit of an unknown key: %v", err)
	}
}

func testDeleteExpiredLimits(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0
	recordFailure(t, s, "window", testLimit, now) // window ends at now+Window
	for range testLimit.Max {
		recordFailure(t, s, "ban", testLimit, now) // ban ends at now+Ban (> Window)
	}
	n, err := s.DeleteExpiredLimits(ctx, now.Add(testLimit.Window-time.Second))
	if err != nil || n != 0 {
		t.Fatalf("DeleteExpiredLimits before any end = %d, %v; want 0", n, err)
	}
	n, err = s.DeleteExpiredLimits(ctx, now.Add(testLimit.Window))
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredLimits at the window's end = %d, %v; want 1", n, err)
	}
	if got := bannedUntil(t, s, "ban", now.Add(testLimit.Window)); got.IsZero() {
		t.Fatal("DeleteExpiredLimits removed a ban in force")
	}
	n, err = s.DeleteExpiredLimits(ctx, now.Add(testLimit.Ban))
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredLimits at the ban's end = %d, %v; want 1", n, err)
	}
}
