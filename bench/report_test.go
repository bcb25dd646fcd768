package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

// testGuard is two rounds of every setup; the guarded setups cost what
// their arguments say, relative to a baseline of 10,000 req/s and 100 µs
// per request (1,000 requests of 100 ms CPU in all).
func testGuard(ratio, addedCPU float64) *guardResults {
	g := &guardResults{Setups: defaultSetups, Runs: map[string][]guardRun{}}
	for r := range 2 {
		var order []string
		for _, s := range defaultSetups {
			f, cpu := 1.0, 100.0
			switch s {
			case setupJWT, setupCookie:
				f, cpu = ratio, 100+addedCPU
			case setupForward:
				f, cpu = 0.5, 200
			}
			// The second round is 10% slower for every setup alike.
			slow := 1 + 0.1*float64(r)
			g.Runs[s.Key] = append(g.Runs[s.Key], guardRun{
				Wrk: wrkResult{ReqPerSec: 10000 * f / slow, Requests: 80000, LatencyP99: 3 * time.Millisecond},
				Rate: rateResult{
					Requests: 1000, CPU: time.Duration(cpu*1000*slow) * time.Microsecond,
					P50: time.Duration(300*slow) * time.Microsecond, P99: time.Millisecond,
				},
				RSS: 70 << 20,
			})
			order = append(order, s.Key)
		}
		g.Orders = append(g.Orders, order)
	}
	return g
}

func TestGuardRowsAgainstSameRound(t *testing.T) {
	t.Parallel()
	rows := testGuard(0.95, 4).rows()
	if len(rows) != len(defaultSetups) || rows[0].Setup != setupBaseline {
		t.Fatalf("rows: %d, first %v", len(rows), rows[0].Setup)
	}
	jwt := rows[1]
	// Both rounds give 0.95 against their own baseline, though the
	// second is slower: the ratio does not move.
	if math.Abs(jwt.Ratio.Min-0.95) > 1e-9 || math.Abs(jwt.Ratio.Max-0.95) > 1e-9 {
		t.Errorf("JWT ratio %+v, want 0.95 in both rounds", jwt.Ratio)
	}
	if math.Abs(jwt.AddedCPU.Min-4) > 1e-6 || math.Abs(jwt.AddedCPU.Max-4.4) > 1e-6 {
		t.Errorf("JWT added CPU %+v, want 4 and 4.4", jwt.AddedCPU)
	}
	if jwt.ReqPerSec.N != 2 || jwt.Requests != 160000 {
		t.Errorf("JWT rows %+v", jwt)
	}
}

func TestTargets(t *testing.T) {
	t.Parallel()
	pass := map[bool]string{true: "PASS", false: "MISS"}
	tests := []struct {
		ratio, cpu float64
		want       map[string]bool // name fragment → pass
	}{
		{0.95, 4, map[string]bool{"JWT: throughput": true, "JWT: added CPU": true, "cookie far ahead": true}},
		{0.85, 8, map[string]bool{"JWT: throughput": false, "cookie: added CPU": false, "JWT far ahead": true}},
		{0.6, 4, map[string]bool{"JWT far ahead": false}},
	}
	for _, tt := range tests {
		r := &report{Opts: options{Rate: 1000}, Guard: testGuard(tt.ratio, tt.cpu)}
		ts := r.targets()
		if len(ts) != 10 {
			t.Fatalf("%d guard targets, want 10", len(ts))
		}
		for frag, want := range tt.want {
			found := false
			for _, tg := range ts {
				if strings.Contains(tg.Name, frag) {
					found = true
					if tg.Pass != want {
						t.Errorf("ratio %.2f, cpu +%.0f: %q is %s, want %s (%s)", tt.ratio, tt.cpu, tg.Name, pass[tg.Pass], pass[want], tg.Got)
					}
				}
			}
			if !found {
				t.Errorf("no target %q", frag)
			}
		}
	}
}

func TestLoginAndScaleTargets(t *testing.T) {
	t.Parallel()
	l := &loginResults{
		Bound:  20,
		Logins: loginCount{Steady: 270, Window: 15 * time.Second}, // 18/s: 0.90 of the bound
		Register: []registerResults{
			{Label: "defaults", Clients: 64, Attempts: 64, Statuses: map[int]int{201: 10, 503: 54}},
			{Label: "patient", Clients: 64, Attempts: 64, Statuses: map[int]int{201: 64}},
		},
		Flood: floodResults{N: 500, Concurrency: 2, Memory: 64 << 20, Idle: 60 << 20, Peak: 600 << 20},
	}
	s := &scaleResults{
		Seed:        seedResult{Users: 1000000},
		EmptyLogin:  summary{Median: 100, N: 20},
		SeededLogin: summary{Median: 111, N: 20},
		Ratio:       map[string]summary{"cookie": {Median: 0.95, N: 3}, "jwt": {Median: 0.89, N: 3}},
	}
	ts := (&report{Login: l, Scale: s}).targets()
	want := []bool{true, false, true, false, false, true, false}
	if len(ts) != len(want) {
		t.Fatalf("%d targets, want %d: %+v", len(ts), len(want), ts)
	}
	for i, tg := range ts {
		if tg.Pass != want[i] {
			t.Errorf("%q (%s): pass %v, want %v", tg.Name, tg.Got, tg.Pass, want[i])
		}
	}
}

func TestMarkdown(t *testing.T) {
	t.Parallel()
	r := &report{
		Command: "go run ./bench", Began: time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC), Took: 90 * time.Second,
		Opts:    options{Rounds: 2, Saturated: 8 * time.Second, Fixed: 10 * time.Second, Rate: 1000, Conns: 64, Threads: 2},
		Machine: machine{CPU: "AMD EPYC", Cores: 2, GOMAXPROCS: 2},
		Load:    loadStats{Min: 1.5, Max: 3.25, Start: "1.50 1.00 0.50", End: "3.25 2.00 1.00"},
		Guard:   testGuard(0.95, 4),
	}
	md := r.markdown()
	for _, want := range []string{
		"# Gatehouse benchmark, 2026-12-04 09:00 UTC",
		"- Command: `go run ./bench` (took 1m30s)",
		"1 min) during the run: 1.50–3.25",
		"| reverse_proxy (baseline) | 9545 (9091–10000) | 1 | 105.0 (100.0–110.0) | 0 |",
		"| gatehouse_guard, JWT | 9068 (8636–9500) | 0.95× (0.95–0.95) | 109.2 (104.0–114.4) | +4.2 (+4.0 to +4.4) |",
		"| gatehouse_guard, JWT: throughput ≥ 0.90× baseline | 0.95× (0.95–0.95) | PASS |",
		"| forward_auth (external service) | 4773 (4545–5000) | 0.50× (0.50–0.50) |",
		"| 2 | basic_auth (bcrypt) | 9091 | 3.00 | 110.0 | 0.330 | 1.000 | 70 |",
		"The guard alone: the cookie setup against the same request through the same route without `gatehouse_guard` (gatehouse_endpoints, cookie sent, no guard), round by round: throughput 0.95× (0.95–0.95), CPU +4.2 (+4.0 to +4.4) µs/req",
		"| the guard alone: added CPU ≤ 6 µs/request | +4.2 (+4.0 to +4.4) µs | PASS |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in\n%s", want, md)
		}
	}
	// One row per setup in the guard table, and one per setup and round.
	for _, s := range defaultSetups {
		if n := strings.Count(md, "\n| "+s.Label+" |"); n != 1 {
			t.Errorf("%s: %d rows in the guard table, want 1", s.Label, n)
		}
		if n := strings.Count(md, " | "+s.Label+" | "); n != 2 {
			t.Errorf("%s: %d rows in the rounds table, want 2", s.Label, n)
		}
	}
	if strings.Contains(md, "smoke run") {
		t.Error("a full run is marked as a smoke run")
	}
	r.Opts.Quick = true
	if !strings.Contains(r.markdown(), "smoke run") {
		t.Error("a -quick run is not marked as such")
	}
}

func TestCells(t *testing.T) {
	t.Parallel()
	s := summary{Median: 1.5, Min: -0.25, Max: 2, N: 3}
	tests := []struct{ got, want string }{
		{cell(s, 1), "1.5 (-0.2–2.0)"},
		{cell(summary{Median: 3, N: 1}, 0), "3"},
		{cell(summary{}, 1), "—"},
		{ratioCell(summary{Median: 0.934, Min: 0.9, Max: 1, N: 2}), "0.93× (0.90–1.00)"},
		{signedCell(s, 2), "+1.50 (−0.25 to +2.00)"},
		{signedCell(summary{Median: -1, N: 1}, 1), "−1.0"},
		{count(1000000), "1,000,000"},
		{count(999), "999"},
		{count(-1234), "-1,234"},
		{statusList(map[int]int{503: 2, 201: 5}), "201 × 5, 503 × 2"},
		{otherList(map[string]int{"no answer": 1, "503": 2}), "503 × 2, no answer × 1"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
