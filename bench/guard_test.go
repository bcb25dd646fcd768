package main

import (
	"testing"
	"time"
)

// The slices of a phase add up to one run: all requests over all the
// time, not the mean of the slices' rates.
func TestWrkSum(t *testing.T) {
	t.Parallel()
	var s wrkSum
	s.add(wrkResult{Requests: 30000, Duration: 2 * time.Second, LatencyP50: time.Millisecond, LatencyP99: 3 * time.Millisecond})
	s.add(wrkResult{Requests: 10000, Duration: 2 * time.Second, LatencyP50: 3 * time.Millisecond, LatencyP99: 9 * time.Millisecond, SocketErrors: 2})
	s.add(wrkResult{Requests: 20000, Duration: 4 * time.Second, LatencyP50: 2 * time.Millisecond, LatencyP99: 5 * time.Millisecond, Non2xx: 1})
	got := s.result()
	want := wrkResult{
		Requests: 60000, Duration: 8 * time.Second, ReqPerSec: 7500,
		LatencyP50: 2 * time.Millisecond, LatencyP99: 5 * time.Millisecond,
		Non2xx: 1, SocketErrors: 2,
	}
	if got != want {
		t.Errorf("wrkSum =\n%+v\nwant\n%+v", got, want)
	}
}

func TestSliceDurations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		saturated, fixed time.Duration
		slices           int
		wantSat, wantFix time.Duration
	}{
		{8 * time.Second, 10 * time.Second, 4, 2 * time.Second, 2500 * time.Millisecond},
		{9 * time.Second, 10 * time.Second, 2, 5 * time.Second, 5 * time.Second}, // wrk takes whole seconds
		{2 * time.Second, 2 * time.Second, 4, time.Second, time.Second},          // at least a second
	}
	for _, tt := range tests {
		h := &harness{opts: options{Saturated: tt.saturated, Fixed: tt.fixed, Slices: tt.slices}}
		sat, fix := h.sliceDurations()
		if sat != tt.wantSat || fix != tt.wantFix {
			t.Errorf("%v, %v in %d slices: %v, %v; want %v, %v", tt.saturated, tt.fixed, tt.slices, sat, fix, tt.wantSat, tt.wantFix)
		}
	}
}

func TestRateResultCPUPerRequest(t *testing.T) {
	t.Parallel()
	if got := (rateResult{Requests: 10000, CPU: 2 * time.Second}).CPUPerRequest(); got != 200 {
		t.Errorf("CPUPerRequest = %v, want 200 µs", got)
	}
	if got := (rateResult{}).CPUPerRequest(); got != 0 {
		t.Errorf("CPUPerRequest of nothing = %v, want 0", got)
	}
}
