package main

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// testGuard is two rounds of every setup; the guarded setups cost what
// their arguments say, relative to a baseline of 10,000 req/s and 100 µs
// per request (1,000 requests of 100 ms CPU in all). The PostgreSQL
// setups are their SQLite twins'.
func testGuard(ratio, addedCPU float64) *guardResults {
	return testGuardPG(ratio, addedCPU, 1, 0)
}

// testGuardPG is testGuard with the PostgreSQL setups at pgRatio of their
// SQLite twins' throughput, pgCPU µs per request above them.
func testGuardPG(ratio, addedCPU, pgRatio, pgCPU float64) *guardResults {
	g := &guardResults{Setups: defaultSetups, Runs: map[string][]guardRun{}}
	for r := range 2 {
		var order []string
		for _, s := range defaultSetups {
			f, cpu := 1.0, 100.0
			switch s {
			case setupJWT, setupCookie:
				f, cpu = ratio, 100+addedCPU
			case setupJWTPG, setupCookiePG:
				f, cpu = ratio*pgRatio, 100+addedCPU+pgCPU
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

// Issue 7's target: each PostgreSQL setup against its SQLite twin of the
// same round, not against the baseline, and apart from issue 6's.
func TestPGTargets(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		ratio, pgRatio float64
		pass           bool
	}{
		{0.95, 0.97, true},
		{0.80, 0.96, true}, // a slow guard, but no slower on PostgreSQL
		{1.00, 0.95, true},
		{0.95, 0.93, false},
	} {
		r := &report{Opts: options{Rate: 1000}, Guard: testGuardPG(tt.ratio, 4, tt.pgRatio, 2)}
		ts := r.pgTargets()
		if len(ts) != 2 {
			t.Fatalf("%d PostgreSQL targets, want 2 (JWT, cookie): %+v", len(ts), ts)
		}
		for i, tg := range ts {
			if !strings.Contains(tg.Name, pgTwins[i].PG.Label) || !strings.Contains(tg.Name, "≥ 0.95×") {
				t.Errorf("target %q", tg.Name)
			}
			if tg.Pass != tt.pass {
				t.Errorf("ratio %.2f, PG %.2f: %q pass %v, want %v (%s)", tt.ratio, tt.pgRatio, tg.Name, tg.Pass, tt.pass, tg.Got)
			}
			// Both rounds give the same ratio, though the second is slower.
			if want := fmt.Sprintf("%.2f× (%.2f–%.2f)", tt.pgRatio, tt.pgRatio, tt.pgRatio); tg.Got != want {
				t.Errorf("got %q, want %q", tg.Got, want)
			}
		}
		if n := len(r.targets()); n != 10 {
			t.Errorf("%d issue-6 targets with PostgreSQL setups measured, want 10", n)
		}
	}
	// Without the twins (-skip-pg, or -setups without them): none.
	g := testGuard(0.95, 4)
	delete(g.Runs, setupJWTPG.Key)
	delete(g.Runs, setupCookie.Key)
	if ts := (&report{Guard: g}).pgTargets(); len(ts) != 0 {
		t.Errorf("targets without a pair: %+v", ts)
	}
	if ts := (&report{}).pgTargets(); ts != nil {
		t.Errorf("targets without a guard phase: %+v", ts)
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
		Guard:   testGuardPG(0.95, 4, 0.97, 2),
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
		"## Targets of issue 7 (PostgreSQL store)",
		"| gatehouse_guard, cookie, PostgreSQL: throughput on a cache hit ≥ 0.95× the SQLite store's (gatehouse_guard, cookie), same round | 0.97× (0.97–0.97) | PASS |",
		"| gatehouse_guard, JWT, PostgreSQL | 8796 (8377–9215) | 0.92× (0.92–0.92) |",
		"| gatehouse_guard, JWT, PostgreSQL | 0.97× (0.97–0.97) | +2.1 (+2.0 to +2.2) | +0.000 (+0.000 to +0.000) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in\n%s", want, md)
		}
	}
	// One row per setup in the guard table, and one per setup and round.
	for _, s := range defaultSetups {
		// The PostgreSQL setups have a row in the comparison with SQLite too.
		want := 1
		if s.Postgres {
			want = 2
		}
		if n := strings.Count(md, "\n| "+s.Label+" |"); n != want {
			t.Errorf("%s: %d rows in the guard tables, want %d", s.Label, n, want)
		}
		if n := strings.Count(md, " | "+s.Label+" | "); n != 2 {
			t.Errorf("%s: %d rows in the rounds table, want 2", s.Label, n)
		}
	}
	if strings.Contains(md, "## Stores") || strings.Contains(md, "- PostgreSQL ") {
		t.Error("a stores section or a PostgreSQL line without a stores phase or a server")
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

func TestLatencyOf(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted: latencyOf sorts a copy
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := latencyOf(ds)
	if want := (latency{N: 100, P50: 50, P99: 99, Max: 100}); got != want {
		t.Errorf("latencyOf(1..100 ms) = %+v, want %+v", got, want)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("latencyOf sorted its argument")
	}
	if got := latencyOf([]time.Duration{7 * time.Millisecond}); got != (latency{N: 1, P50: 7, P99: 7, Max: 7}) {
		t.Errorf("one value: %+v", got)
	}
	if got := latencyOf(nil); got.N != 0 || !math.IsNaN(got.P50) || latencyCell(got) != "—" {
		t.Errorf("no values: %+v, %q", got, latencyCell(got))
	}
}

func TestCompareCell(t *testing.T) {
	t.Parallel()
	tests := []struct{ got, want string }{
		{compareCell(64, 65.3, "p50"), "1.02× (+1.3 ms p50)"},
		{compareCell(80, 60, ""), "0.75× (−20.0 ms)"},
		{compareCell(math.NaN(), 60, ""), "—"},
		{compareCell(0, 60, ""), "—"},
		{latencyCell(latency{N: 3, P50: 64.25, P99: 80}), "64.2 / 80.0"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// testStores is a stores phase: SQLite's logins at 60–69 ms, PostgreSQL's
// 2 ms slower; two batches each, one of PostgreSQL's with a 503.
func testStores() *storeResults {
	res := &storeResults{Ops: 10, Clients: 4, Each: 1, Order: []string{"SQLite", "PostgreSQL", "PostgreSQL", "SQLite"},
		SQLite: storeFigures{Name: "SQLite"}, PG: storeFigures{Name: "PostgreSQL"}}
	for i := range 10 {
		d := time.Duration(60+i) * time.Millisecond
		res.SQLite.Login = append(res.SQLite.Login, d)
		res.PG.Login = append(res.PG.Login, d+2*time.Millisecond)
		res.SQLite.Register = append(res.SQLite.Register, d+10*time.Millisecond)
		res.PG.Register = append(res.PG.Register, d+15*time.Millisecond)
	}
	batch := func(elapsed time.Duration, lat []time.Duration, statuses map[int]int) registerResults {
		return registerResults{Clients: 4, Attempts: 4, Statuses: statuses, Elapsed: elapsed, Latencies: lat}
	}
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	res.SQLite.Batches = []registerResults{
		batch(400*time.Millisecond, ms(100, 200, 300, 400), map[int]int{201: 4}),
		batch(500*time.Millisecond, ms(120, 220, 320, 500), map[int]int{201: 4}),
	}
	res.PG.Batches = []registerResults{
		batch(440*time.Millisecond, ms(110, 210, 310, 440), map[int]int{201: 4}),
		batch(600*time.Millisecond, ms(130, 230, 330), map[int]int{201: 3, 503: 1}),
	}
	res.PG.Batches[1].FirstProblem = "register x: status 503: busy"
	res.PG.Locked, res.PG.LogErrors = 0, 1
	return res
}

func TestUsers(t *testing.T) {
	t.Parallel()
	if got := users(1); got != "1 user each" {
		t.Errorf("users(1) = %q", got)
	}
	if got := users(3); got != "3 users each" {
		t.Errorf("users(3) = %q", got)
	}
}

func TestStoreFigures(t *testing.T) {
	t.Parallel()
	st := testStores()
	if got := latencyOf(st.SQLite.ConcurrentLatencies()); got != (latency{N: 8, P50: 220, P99: 500, Max: 500}) {
		t.Errorf("SQLite's concurrent latencies: %+v", got)
	}
	if got := st.PG.BatchTimes(); got != (summary{Median: 520, Min: 440, Max: 600, N: 2}) {
		t.Errorf("PostgreSQL's batch times: %+v", got)
	}
	if c, a, e := st.SQLite.Concurrent(); c != 8 || a != 8 || e != 0 {
		t.Errorf("SQLite: %d of %d, %d errors; want 8 of 8, 0", c, a, e)
	}
	st.PG.Locked = 2 // lock messages count as errors, as in the login phase
	if c, a, e := st.PG.Concurrent(); c != 7 || a != 8 || e != 3 {
		t.Errorf("PostgreSQL: %d of %d, %d errors; want 7 of 8, 3", c, a, e)
	}
}

func TestStoresMarkdown(t *testing.T) {
	t.Parallel()
	r := &report{Opts: options{Rate: 1000}, Stores: testStores(), Postgres: "15.14 (Debian 15.14-0+deb12u1)"}
	md := r.markdown()
	for _, want := range []string{
		"- PostgreSQL 15.14 (Debian 15.14-0+deb12u1), a server of the harness's own",
		"## Stores: SQLite and PostgreSQL side by side",
		"batches of 4 clients registering 1 user each at once, in the order SQLite, PostgreSQL, PostgreSQL, SQLite.",
		"| login (JWT), sequential, p50 / p99 of 10 | 64.0 / 69.0 | 66.0 / 71.0 | 1.03× (+2.0 ms p50) |",
		"| registration, sequential, p50 / p99 of 10 | 74.0 / 79.0 | 79.0 / 84.0 | 1.07× (+5.0 ms p50) |",
		"| registration, 4 clients at once, each: p50 / p99 | 220.0 / 500.0 | 230.0 / 440.0 | 1.05× (+10.0 ms p50) |",
		"| registration, 4 clients at once: a batch done in (median of 2) | 450 (400–500) | 520 (440–600) | 1.16× (+70.0 ms) |",
		"| registration, 4 clients at once: 201s; errors | 8 of 8; 0 | 7 of 8; 1 | |",
		"| lock messages; error lines in Caddy's log | 0; 0 | 0; 1 | |",
		"PostgreSQL, first problem: `register x: status 503: busy`.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in\n%s", want, md)
		}
	}
	if strings.Contains(md, "Targets of issue 7") {
		t.Error("issue 7's targets without a guard phase")
	}
}
