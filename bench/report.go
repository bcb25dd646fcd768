package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// report is everything one run measured.
type report struct {
	Command       string
	Began         time.Time
	Took          time.Duration
	Opts          options
	Machine       machine
	Load          loadStats
	Guard         *guardResults
	GuardProfiles []*profile
	Login         *loginResults
	Scale         *scaleResults
	Stores        *storeResults
	Postgres      string // the version of the run's PostgreSQL, if it ran one
}

// target is one of issue 6's targets, as this run met it or not.
type target struct {
	Name string // what is asked
	Got  string // what was measured
	Pass bool
}

// The thresholds of issue 6.
const (
	minGuardRatio    = 0.90 // guarded ÷ baseline throughput
	maxAddedCPU      = 6.0  // µs per request
	maxAddedP50      = 0.05 // ms
	minForwardMargin = 0.20 // the guard's ratio ahead of forward_auth's
	loginTolerance   = 0.10 // logins/s within 10% of the bound
	scaleTolerance   = 0.10 // seeded within 10% of empty
)

// The threshold of issue 7: the guard on a PostgreSQL store keeps this
// share of the same transport's throughput on SQLite.
const minPGRatio = 0.95

// pgTargets evaluates issue 7's targets, on medians: each PostgreSQL
// setup's throughput against its SQLite twin's, round by round.
func (r *report) pgTargets() []target {
	if r.Guard == nil {
		return nil
	}
	var ts []target
	for _, tw := range pgTwins {
		pr, ok := r.Guard.pair(tw.PG, tw.SQLite)
		if !ok {
			continue
		}
		ts = append(ts, target{
			Name: fmt.Sprintf("%s: throughput on a cache hit ≥ %.2f× the SQLite store's (%s), same round", tw.PG.Label, minPGRatio, tw.SQLite.Label),
			Got:  ratioCell(pr.Ratio),
			Pass: pr.Ratio.Median >= minPGRatio,
		})
	}
	return ts
}

// targets evaluates every target this run has figures for, on medians.
func (r *report) targets() []target {
	var ts []target
	if r.Guard != nil {
		rows := map[string]guardRow{}
		for _, row := range r.Guard.rows() {
			rows[row.Setup.Key] = row
		}
		fwd, haveFwd := rows[setupForward.Key]
		for _, s := range []setup{setupJWT, setupCookie} {
			row, ok := rows[s.Key]
			if !ok {
				continue
			}
			ts = append(ts,
				target{
					Name: fmt.Sprintf("%s: throughput ≥ %.2f× baseline", s.Label, minGuardRatio),
					Got:  ratioCell(row.Ratio),
					Pass: row.Ratio.Median >= minGuardRatio,
				},
				target{
					Name: fmt.Sprintf("%s: added CPU ≤ %.0f µs/request", s.Label, maxAddedCPU),
					Got:  signedCell(row.AddedCPU, 1) + " µs",
					Pass: row.AddedCPU.Median <= maxAddedCPU,
				},
				target{
					Name: fmt.Sprintf("%s: added p50 at %d req/s ≤ %.2f ms", s.Label, r.Opts.Rate, maxAddedP50),
					Got:  signedCell(row.AddedP50, 3) + " ms",
					Pass: row.AddedP50.Median <= maxAddedP50,
				},
			)
			if haveFwd {
				ts = append(ts, target{
					Name: fmt.Sprintf("%s far ahead of forward_auth (ratio ≥ forward_auth's + %.2f)", s.Label, minForwardMargin),
					Got:  fmt.Sprintf("%.2f× vs %.2f×", row.Ratio.Median, fwd.Ratio.Median),
					Pass: row.Ratio.Median >= fwd.Ratio.Median+minForwardMargin,
				})
			}
		}
	}
	if r.Guard != nil {
		if pr, ok := r.Guard.pair(setupCookie, setupUnguarded); ok {
			ts = append(ts,
				target{
					Name: fmt.Sprintf("the guard alone (cookie setup vs %s): throughput ≥ %.2f×", setupUnguarded.Label, minGuardRatio),
					Got:  ratioCell(pr.Ratio),
					Pass: pr.Ratio.Median >= minGuardRatio,
				},
				target{
					Name: fmt.Sprintf("the guard alone: added CPU ≤ %.0f µs/request", maxAddedCPU),
					Got:  signedCell(pr.AddedCPU, 1) + " µs",
					Pass: pr.AddedCPU.Median <= maxAddedCPU,
				},
			)
		}
	}
	if l := r.Login; l != nil {
		ratio := l.LoginsPerSec() / l.Bound
		ts = append(ts,
			target{
				Name: fmt.Sprintf("logins/s within %.0f%% of the bound", loginTolerance*100),
				Got:  fmt.Sprintf("%.1f/s ÷ %.1f/s = %.2f", l.LoginsPerSec(), l.Bound, ratio),
				Pass: math.Abs(ratio-1) <= loginTolerance,
			},
		)
		for _, rg := range l.Register {
			ts = append(ts, target{
				Name: fmt.Sprintf("registration, %d concurrent clients (%s): 0 errors", rg.Clients, rg.Label),
				Got:  fmt.Sprintf("%d errors in %d (%s)", rg.Errors(), rg.Attempts, statusList(rg.Statuses)),
				Pass: rg.Errors() == 0,
			})
		}
		ts = append(ts,
			target{
				Name: fmt.Sprintf("%d simultaneous logins: RSS growth within the README's bound", l.Flood.N),
				Got:  fmt.Sprintf("%.0f MiB of %.0f MiB", mib(l.Flood.Growth()), mib(l.Flood.Bound())),
				Pass: l.Flood.Growth() <= l.Flood.Bound(),
			},
		)
	}
	if s := r.Scale; s != nil {
		ts = append(ts, target{
			Name: fmt.Sprintf("login latency at %s users within %.0f%% of an empty database", count(s.Seed.Users), scaleTolerance*100),
			Got:  fmt.Sprintf("p50 %.1f ms vs %.1f ms = %.2f×", s.SeededLogin.Median, s.EmptyLogin.Median, s.LoginRatio()),
			Pass: s.LoginRatio() <= 1+scaleTolerance,
		})
		for _, k := range []string{"cookie", "jwt"} {
			ts = append(ts, target{
				Name: fmt.Sprintf("guard throughput (%s) at %s users within %.0f%% of an empty database", k, count(s.Seed.Users), scaleTolerance*100),
				Got:  ratioCell(s.Ratio[k]),
				Pass: s.Ratio[k].Median >= 1-scaleTolerance,
			})
		}
	}
	return ts
}

// markdown renders the report.
func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	o := r.Opts

	p("# Gatehouse benchmark, %s\n\n", r.Began.Format("2006-01-02 15:04 MST"))
	if o.Quick {
		p("**A -quick smoke run: these figures are too short to report.**\n\n")
	}
	p("- Command: `%s` (took %s)\n", strings.TrimSpace(r.Command), r.Took.Round(time.Second))
	p("- Machine: %s, %d CPUs (GOMAXPROCS %d), Linux %s, %s, %s\n", r.Machine.CPU, r.Machine.Cores, r.Machine.GOMAXPROCS, r.Machine.Kernel, r.Machine.Go, orDash(r.Machine.Wrk))
	p("- Load average (1 min) during the run: %.2f–%.2f (at start %s, at end %s)\n", r.Load.Min, r.Load.Max, r.Load.Start, r.Load.End)
	p("- Load generators, upstream and auth service run on the same machine as Caddy.\n")
	if r.Postgres != "" {
		p("- PostgreSQL %s, a server of the harness's own (pgtest) on 127.0.0.1 on the same machine, durable (fsync and synchronous_commit on, as SQLite's synchronous=FULL), a fresh database per Caddy; Caddy's pool defaults (`database postgres <dsn>` without a block).\n", r.Postgres)
	}
	if r.Guard != nil {
		p("- Guard: %d rounds; per setup and round a fresh Caddy, wrk `-t%d -c%d` for %s, then %d req/s for %s (vegeta, open loop), each phase in %d slices interleaved with the other setups' slices. Figures are medians over the rounds, (min–max) in brackets; ratios and added costs are taken against the same round's baseline.\n",
			o.Rounds, o.Threads, o.Conns, o.Saturated, o.Rate, o.Fixed, o.Slices)
	}
	p("\n")

	if ts := r.targets(); len(ts) > 0 {
		p("## Targets of issue 6\n\n| target | measured | |\n|---|---|---|\n")
		for _, t := range ts {
			p("| %s | %s | %s |\n", t.Name, t.Got, passMiss(t.Pass))
		}
		p("\n")
	}
	if ts := r.pgTargets(); len(ts) > 0 {
		p("## Targets of issue 7 (PostgreSQL store)\n\n| target | measured | |\n|---|---|---|\n")
		for _, t := range ts {
			p("| %s | %s | %s |\n", t.Name, t.Got, passMiss(t.Pass))
		}
		p("\n")
	}

	if r.Guard != nil {
		r.guardSection(p)
	}
	if r.Login != nil {
		r.loginSection(p)
	}
	if r.Stores != nil {
		r.storesSection(p)
	}
	if r.Scale != nil {
		r.scaleSection(p)
	}
	if len(r.GuardProfiles) > 0 || (r.Login != nil && r.Login.Profile != nil) {
		p("## CPU profiles\n\n")
		ps := r.GuardProfiles
		if r.Login != nil && r.Login.Profile != nil {
			ps = append(ps[:len(ps):len(ps)], r.Login.Profile)
		}
		for _, pr := range ps {
			p("### %s\n\n`%s`", pr.Label, pr.Path)
			if pr.ReqPerSec > 0 {
				p(", %.0f req/s while profiled, %.1f µs of CPU per request", pr.ReqPerSec, pr.cpuPerRequest())
			}
			if !math.IsNaN(pr.FocusShare) {
				p("; stacks through Gatehouse's code: %.1f%% of the samples", pr.FocusShare)
			}
			p(".\n\n```\n%s```\n\n", trimPprofHeader(pr.Top))
			if pr.Focus != "" {
				p("Gatehouse's own work (`-focus %s -ignore %s`: its stacks without the proxy below it):\n\n```\n%s```\n\n",
					gatehouseFocus, proxyIgnore, trimPprofHeader(pr.Focus))
			}
			if pr.Diff != "" {
				p("Against %s (`-diff_base`; positive: more here):\n\n```\n%s```\n\n", pr.DiffBase, trimPprofHeader(pr.Diff))
			}
		}
	}
	if r.Guard != nil {
		r.roundsSection(p)
	}
	return b.String()
}

func (r *report) guardSection(p func(string, ...any)) {
	p("## Guard: throughput and cost per request\n\n")
	p("| setup | req/s, saturated | ÷ baseline | CPU µs/req at %d/s | added CPU µs/req | p50 ms | added p50 ms | p99 ms | RSS MiB |\n", r.Opts.Rate)
	p("|---|---|---|---|---|---|---|---|---|\n")
	for _, row := range r.Guard.rows() {
		ratio, addCPU, addP50 := ratioCell(row.Ratio), signedCell(row.AddedCPU, 1), signedCell(row.AddedP50, 3)
		if row.Setup == setupBaseline {
			ratio, addCPU, addP50 = "1", "0", "0"
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", row.Setup.Label,
			cell(row.ReqPerSec, 0), ratio, cell(row.CPU, 1), addCPU,
			cell(row.P50, 3), addP50, cell(row.P99, 3), cell(row.RSS, 0))
	}
	if pr, ok := r.Guard.pair(setupCookie, setupUnguarded); ok {
		p("\nThe guard alone: the cookie setup against the same request through the same route without `gatehouse_guard` (%s), round by round: throughput %s, CPU %s µs/req, p50 %s ms.\n",
			setupUnguarded.Label, ratioCell(pr.Ratio), signedCell(pr.AddedCPU, 1), signedCell(pr.AddedP50, 3))
	}
	r.pgGuardTable(p)
	var sock int64
	for _, row := range r.Guard.rows() {
		sock += row.Socket
	}
	p("\nwrk socket errors (timeouts, resets) in all rounds: %d. Every setup was checked once before measuring: 200 from the upstream with the expected Remote-User, and 401 without the credential where one is needed.\n\n", sock)
}

// pgGuardTable compares each PostgreSQL setup with its SQLite twin, round
// by round, when both were measured.
func (r *report) pgGuardTable(p func(string, ...any)) {
	var prs []pairRow
	for _, tw := range pgTwins {
		if pr, ok := r.Guard.pair(tw.PG, tw.SQLite); ok {
			prs = append(prs, pr)
		}
	}
	if len(prs) == 0 {
		return
	}
	p("\nPostgreSQL against SQLite: each PostgreSQL setup against the same transport on SQLite in the same round (above, each against the baseline). Almost every request is a hit of the guard's cache, which asks the store again after 4 s; the CPU figures are Caddy's, PostgreSQL's processes not included.\n\n")
	p("| setup | throughput ÷ SQLite's, saturated | CPU µs/req − SQLite's, at %d/s | p50 ms − SQLite's |\n|---|---|---|---|\n", r.Opts.Rate)
	for _, pr := range prs {
		p("| %s | %s | %s | %s |\n", pr.A.Label, ratioCell(pr.Ratio), signedCell(pr.AddedCPU, 1), signedCell(pr.AddedP50, 3))
	}
}

func (r *report) loginSection(p func(string, ...any)) {
	l := r.Login
	p("## Logins\n\n")
	p("- argon2id m = %d MiB, t = %d, p = %d (the server's defaults); Caddy hashes %d at a time (GOMAXPROCS here: %d).\n",
		l.Params.Memory/1024, l.Params.Time, l.Params.Threads, l.Concurrency, l.GOMAXPROCS)
	p("- One hash in this process, alone: %s ms; with %d hashing at once: %s ms each (%d hashes, half before and half after the logins).\n",
		cell(l.HashAlone, 1), l.Concurrency, cell(l.HashLoaded, 1), l.HashLoaded.N)
	p("- Bound: %d ÷ %.1f ms = **%.1f logins/s** (%d ÷ the lone hash's %.1f ms would say %.1f/s: a lone hash spreads its %d lanes over idle cores, which a saturated server does not have).\n",
		l.Concurrency, l.HashLoaded.Median, l.Bound, l.Concurrency, l.HashAlone.Median, l.BoundAlone, l.Params.Threads)
	lc := l.Logins
	p("- Measured: %d clients logging in (JWT) back to back for %s: %d logins answered between %s and %s = **%.1f logins/s**, %.2f of the bound (%d in all, the last answered at %s). Other answers: %s.\n",
		l.Clients, r.Opts.LoginTime, lc.Steady, lc.Warm, lc.Warm+lc.Window, lc.PerSec(), lc.PerSec()/l.Bound, lc.Total, lc.Elapsed.Round(time.Millisecond), otherList(l.LoginOther))
	for _, rg := range l.Register {
		p("- Registration (%s): %d clients × %d users at once, %d in %s: %s; %d without an answer; %d \"database is locked\"/SQLITE_BUSY lines and %d error-level lines in Caddy's log.",
			rg.Label, rg.Clients, rg.Attempts/max(rg.Clients, 1), rg.Attempts, rg.Elapsed.Round(time.Millisecond), statusList(rg.Statuses), rg.Failed, rg.Locked, rg.LogErrors)
		if rg.FirstProblem != "" {
			p(" First problem: `%s`.", oneLine(rg.FirstProblem))
		}
		p("\n")
	}
	f := l.Flood
	p("- %d simultaneous logins, one connection each, on a fresh server: %s, %d without an answer, in %s. RSS idle %.0f MiB, peak (VmHWM) %.0f MiB: growth **%.0f MiB**; README bound (3 × %d + 1) × %.0f MiB + %d × 64 KiB = **%.0f MiB**.\n\n",
		f.N, statusList(f.Statuses), f.Failed, f.Elapsed.Round(time.Millisecond), mib(f.Idle), mib(f.Peak), mib(f.Growth()),
		f.Concurrency, mib(f.Memory), f.N, mib(f.Bound()))
}

func (r *report) storesSection(p func(string, ...any)) {
	st := r.Stores
	p("## Stores: SQLite and PostgreSQL side by side\n\n")
	p("Two Caddys serving the account endpoints, one on a fresh SQLite file, one on a fresh PostgreSQL database, both with `%s` so that no request is turned away. %d registrations, then %d logins (JWT), one after another per store, alternating between the stores; then, after a few registrations at once to warm each server up, batches of %d clients registering %s at once, in the order %s. Times in ms as the client saw them; argon2id's hash is most of each.\n\n",
		patientLabel, st.Ops, st.Ops, st.Clients, users(st.Each), strings.Join(st.Order, ", "))
	sq, pg := st.SQLite, st.PG
	p("| | SQLite | PostgreSQL | PostgreSQL ÷ SQLite |\n|---|---|---|---|\n")
	for _, row := range []struct {
		name   string
		sq, pg []time.Duration
	}{
		{fmt.Sprintf("login (JWT), sequential, p50 / p99 of %d", st.Ops), sq.Login, pg.Login},
		{fmt.Sprintf("registration, sequential, p50 / p99 of %d", st.Ops), sq.Register, pg.Register},
		{fmt.Sprintf("registration, %d clients at once, each: p50 / p99", st.Clients), sq.ConcurrentLatencies(), pg.ConcurrentLatencies()},
	} {
		a, b := latencyOf(row.sq), latencyOf(row.pg)
		p("| %s | %s | %s | %s |\n", row.name, latencyCell(a), latencyCell(b), compareCell(a.P50, b.P50, "p50"))
	}
	sb, pb := sq.BatchTimes(), pg.BatchTimes()
	p("| registration, %d clients at once: a batch done in (median of %d) | %s | %s | %s |\n",
		st.Clients, max(sb.N, pb.N), cell(sb, 0), cell(pb, 0), compareCell(sb.Median, pb.Median, ""))
	sc, sa, se := sq.Concurrent()
	pc, pa, pe := pg.Concurrent()
	p("| registration, %d clients at once: 201s; errors | %d of %d; %d | %d of %d; %d | |\n", st.Clients, sc, sa, se, pc, pa, pe)
	p("| lock messages; error lines in Caddy's log | %d; %d | %d; %d | |\n\n", sq.Locked, sq.LogErrors, pg.Locked, pg.LogErrors)
	for _, f := range []storeFigures{sq, pg} {
		for _, b := range f.Batches {
			if b.FirstProblem != "" {
				p("%s, first problem: `%s`.\n\n", f.Name, oneLine(b.FirstProblem))
				break
			}
		}
	}
}

func (r *report) scaleSection(p func(string, ...any)) {
	s := r.Scale
	p("## Scale: %s users and %s sessions against an empty database\n\n", count(s.Seed.Users), count(s.Seed.Sessions))
	p("- Seeded by `bench/seed` in %.1f s: %s bytes, **%.0f bytes per user** (with one session each); the empty database: %s bytes.\n",
		s.Seed.Seconds, count(int(s.Seed.Bytes)), float64(s.Seed.Bytes)/float64(s.Seed.Users), count(int(s.EmptySize)))
	p("- Login (JWT), %d sequential logins per database, alternating: p50 **%.1f ms** seeded vs **%.1f ms** empty (%.2f×); range %s vs %s ms.\n\n",
		s.SeededLogin.N, s.SeededLogin.Median, s.EmptyLogin.Median, s.LoginRatio(), rangeCell(s.SeededLogin), rangeCell(s.EmptyLogin))
	p("Guard throughput, wrk saturated, %d rounds of %d slices per database and transport, interleaved:\n\n", r.Opts.Rounds, r.Opts.Slices)
	p("| guard, saturated | empty req/s | seeded req/s | seeded ÷ empty |\n|---|---|---|---|\n")
	for _, k := range []string{"cookie", "jwt"} {
		p("| %s | %s | %s | %s |\n", k, cell(s.Empty[k], 0), cell(s.Seeded[k], 0), ratioCell(s.Ratio[k]))
	}
	p("\n")
}

func (r *report) roundsSection(p func(string, ...any)) {
	p("## Every round\n\n| round | setup | req/s | wrk p99 ms | CPU µs/req | p50 ms | p99 ms | RSS MiB |\n|---|---|---|---|---|---|---|---|\n")
	bySetup := map[string]setup{}
	for _, s := range r.Guard.Setups {
		bySetup[s.Key] = s
	}
	for i, order := range r.Guard.Orders {
		for _, key := range order {
			runs := r.Guard.Runs[key]
			if i >= len(runs) {
				continue
			}
			run := runs[i]
			p("| %d | %s | %.0f | %.2f | %.1f | %.3f | %.3f | %.0f |\n", i+1, bySetup[key].Label,
				run.Wrk.ReqPerSec, ms(run.Wrk.LatencyP99), run.Rate.CPUPerRequest(), ms(run.Rate.P50), ms(run.Rate.P99), mib(run.RSS))
		}
	}
	p("\n")
}

// cell renders a summary as "median (min–max)" with prec decimals, or
// the median alone for a single value.
func cell(s summary, prec int) string {
	if s.N == 0 {
		return "—"
	}
	if s.N == 1 {
		return fmt.Sprintf("%.*f", prec, s.Median)
	}
	return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, s.Median, prec, s.Min, prec, s.Max)
}

// latencyCell renders a latency as "p50 / p99" in ms.
func latencyCell(l latency) string {
	if l.N == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f / %.1f", l.P50, l.P99)
}

// compareCell renders b against a as "1.02× (+1.3 ms p50)": the ratio
// and the difference, of what (if not empty).
func compareCell(a, b float64, what string) string {
	if math.IsNaN(a) || math.IsNaN(b) || a <= 0 {
		return "—"
	}
	d := b - a
	sign := "+"
	if d < 0 {
		sign, d = "−", -d
	}
	if what != "" {
		what = " " + what
	}
	return fmt.Sprintf("%.2f× (%s%.1f ms%s)", b/a, sign, d, what)
}

// rangeCell renders "min–max".
func rangeCell(s summary) string {
	if s.N == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f–%.1f", s.Min, s.Max)
}

// ratioCell renders a ratio summary as "0.93× (0.88–0.97)".
func ratioCell(s summary) string {
	if s.N == 0 {
		return "—"
	}
	if s.N == 1 {
		return fmt.Sprintf("%.2f×", s.Median)
	}
	return fmt.Sprintf("%.2f× (%.2f–%.2f)", s.Median, s.Min, s.Max)
}

// signedCell renders a difference with its sign, "+3.1 (−0.4 to +5.2)":
// "to" because a dash between negative numbers reads as a minus.
func signedCell(s summary, prec int) string {
	if s.N == 0 {
		return "—"
	}
	sg := func(v float64) string {
		if v < 0 {
			return fmt.Sprintf("−%.*f", prec, -v)
		}
		return fmt.Sprintf("+%.*f", prec, v)
	}
	if s.N == 1 {
		return sg(s.Median)
	}
	return fmt.Sprintf("%s (%s to %s)", sg(s.Median), sg(s.Min), sg(s.Max))
}

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "**MISS**"
}

// count renders n with thin groups: 1,000,000.
func count(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func otherList(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s × %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "`", "'")
}

// trimPprofHeader drops pprof's "File:", "Type:", "Time:" lines, which
// name the temporary binary and say nothing here.
func trimPprofHeader(top string) string {
	var keep []string
	for line := range strings.SplitSeq(top, "\n") {
		if strings.HasPrefix(line, "File: ") || strings.HasPrefix(line, "Build ID: ") || strings.HasPrefix(line, "Time: ") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}
