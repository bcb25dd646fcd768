package main

import (
	"testing"
	"time"
)

// A real "password hashing" line of Caddy's JSON log.
const hashingLogLine = `{"level":"info","ts":1764838800.1,"logger":"gatehouse","msg":"password hashing","memory_bound":"128 MiB","memory":"64 MiB","time":3,"threads":4,"concurrency":2,"queue":64,"wait":3}`

func TestHashingSettings(t *testing.T) {
	t.Parallel()
	log := `{"level":"info","ts":1,"msg":"using config from file"}
not json at all
` + hashingLogLine + "\n"
	conc, memory, err := hashingSettings(log)
	if err != nil || conc != 2 || memory != "64 MiB" {
		t.Errorf("hashingSettings = %d, %q, %v; want 2, 64 MiB", conc, memory, err)
	}
	if _, _, err := hashingSettings(`{"msg":"password hashing"}`); err == nil {
		t.Error("a line without the concurrency was accepted")
	}
	if _, _, err := hashingSettings(""); err == nil {
		t.Error("an empty log was accepted")
	}
}

func TestScanLog(t *testing.T) {
	t.Parallel()
	log := hashingLogLine + `
{"level":"error","msg":"register","error":"database is locked (5) (SQLITE_BUSY)"}
{"level":"warn","msg":"retrying: SQLITE_BUSY"}
{"level":"error","msg":"something else"}
`
	locked, errs := scanLog(log)
	if locked != 2 || errs != 2 {
		t.Errorf("scanLog = %d locked, %d errors; want 2, 2", locked, errs)
	}
}

// The README's example: 2 × 64 MiB and 500 connections give 479 MiB.
func TestHashingGrowthBound(t *testing.T) {
	t.Parallel()
	got := hashingGrowthBound(2, 64<<20, 500)
	if want := uint64(7*64<<20 + 500*64<<10); got != want || mib(got) < 479 || mib(got) >= 480 {
		t.Errorf("bound = %.2f MiB, want %.2f (479 MiB)", mib(got), mib(want))
	}
	f := floodResults{N: 500, Concurrency: 2, Memory: 64 << 20, Idle: 100 << 20, Peak: 90 << 20}
	if f.Growth() != 0 {
		t.Errorf("growth with a peak below idle = %d, want 0", f.Growth())
	}
}

func TestCountLogins(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	// d = 10 s: the warm-up is 1 s; answers at or before it and after
	// the deadline are outside the window.
	ends := []time.Duration{500 * ms, 1000 * ms, 1001 * ms, 5 * time.Second, 10 * time.Second, 10001 * ms}
	c := countLogins(ends, 10*time.Second)
	want := loginCount{Total: 6, Elapsed: 10001 * ms, Warm: time.Second, Window: 9 * time.Second, Steady: 3}
	if c != want {
		t.Errorf("countLogins = %+v, want %+v", c, want)
	}
	if got := c.PerSec(); got != 3.0/9 {
		t.Errorf("PerSec = %v", got)
	}
	if got := countLogins(nil, 60*time.Second).Warm; got != 2*time.Second {
		t.Errorf("warm-up of a minute = %v, want the 2 s cap", got)
	}
}

func TestRegisterErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		r    registerResults
		want int
	}{
		{registerResults{Statuses: map[int]int{201: 64}}, 0},
		{registerResults{Statuses: map[int]int{201: 60, 503: 3, 500: 1}}, 4},
		{registerResults{Statuses: map[int]int{201: 64}, Locked: 2}, 2},
		{registerResults{Statuses: map[int]int{201: 63}, Failed: 1}, 1},
		{registerResults{Statuses: map[int]int{201: 63, 400: 1}}, 1},
	}
	for _, tt := range tests {
		if got := tt.r.Errors(); got != tt.want {
			t.Errorf("%+v: Errors = %d, want %d", tt.r, got, tt.want)
		}
	}
}
