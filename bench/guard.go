package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// guardRun is one setup's measurement in one round.
type guardRun struct {
	Wrk  wrkResult
	Rate rateResult
	RSS  uint64 // Caddy's resident size after both phases
}

// guardResults are the runs of every setup, indexed by round.
type guardResults struct {
	Setups []setup
	Runs   map[string][]guardRun // by setup key; Runs[k][r] is round r
	Orders [][]string            // the setup order of each round
}

// runGuard measures every setup once per round, each in a fresh Caddy.
// A round starts a Caddy for every setup, then runs the phases in
// slices, interleaved: a slice of each setup in turn, as often as
// -slices says. The machine is shared and its speed drifts by tens of
// percent within a minute; interleaved, every setup sees the same drift,
// so that the ratios of one round compare like with like. The order of
// the setups is rotated from round to round, so that none is always
// measured first after another.
func (h *harness) runGuard(ctx context.Context) (*guardResults, error) {
	setups := h.opts.Setups
	res := &guardResults{Setups: setups, Runs: map[string][]guardRun{}}
	n := len(setups)
	for r := range h.opts.Rounds {
		var order []setup
		var keys []string
		for i := range n {
			order = append(order, setups[(i+r)%n])
			keys = append(keys, setups[(i+r)%n].Key)
		}
		h.logf("round %d/%d: %s", r+1, h.opts.Rounds, strings.Join(keys, ", "))
		runs, err := h.measureRound(ctx, order, r)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", r+1, err)
		}
		for _, s := range order {
			run := runs[s.Key]
			h.logf("  %-44s %6.0f req/s, %5.1f µs CPU/req at %d/s, p50 %.3f ms, RSS %.0f MiB",
				s.Label, run.Wrk.ReqPerSec, run.Rate.CPUPerRequest(), h.opts.Rate, ms(run.Rate.P50), mib(run.RSS))
			res.Runs[s.Key] = append(res.Runs[s.Key], run)
		}
		res.Orders = append(res.Orders, keys)
	}
	return res, nil
}

// live is one setup's Caddy during a round.
type live struct {
	setup setup
	c     *caddyProc
	req   request
	wrk   wrkSum
	rate  *rateLoad
}

// measureRound starts a Caddy for each setup of order, checks them, and
// runs the saturated slices, then the fixed-rate slices, interleaved.
func (h *harness) measureRound(ctx context.Context, order []setup, round int) (map[string]guardRun, error) {
	var ls []*live
	defer func() {
		for _, l := range ls {
			l.c.Stop()
			if l.rate != nil {
				l.rate.close()
			}
		}
	}()
	for _, s := range order {
		c, req, err := h.startSetup(ctx, s, fmt.Sprintf("r%d-%s", round+1, s.Key))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Label, err)
		}
		ls = append(ls, &live{setup: s, c: c, req: req, rate: newRateLoad(c.Pid, c.URL+req.Path, req.Header)})
	}

	satSlice, rateSlice := h.sliceDurations()
	for range h.opts.Slices {
		for _, l := range ls {
			w, err := runWrk(ctx, h.wrk, h.opts.Threads, h.opts.Conns, satSlice, l.c.URL+l.req.Path, l.req.headerLines())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", l.setup.Label, err)
			}
			// An answer other than 2xx means the setup refused the
			// credential under load: what was measured is not the setup.
			if w.Non2xx > 0 {
				return nil, fmt.Errorf("%s: wrk: %d of %d answers were not 2xx", l.setup.Label, w.Non2xx, w.Requests)
			}
			l.wrk.add(w)
		}
	}
	for range h.opts.Slices {
		for _, l := range ls {
			if err := l.rate.slice(h.opts.Rate, rateSlice); err != nil {
				return nil, fmt.Errorf("%s: %w", l.setup.Label, err)
			}
		}
	}

	runs := map[string]guardRun{}
	for _, l := range ls {
		run := guardRun{Wrk: l.wrk.result(), Rate: l.rate.result()}
		if run.Rate.Errors > 0 {
			return nil, fmt.Errorf("%s: fixed rate: %d of %d requests failed, the first with %s", l.setup.Label, run.Rate.Errors, run.Rate.Requests, run.Rate.FirstFail)
		}
		mem, err := processMemory(l.c.Pid)
		if err != nil {
			return nil, err
		}
		run.RSS = mem.RSS
		runs[l.setup.Key] = run
	}
	return runs, nil
}

// sliceDurations divides the phases' durations into -slices: wrk's in
// whole seconds, which is what wrk takes.
func (h *harness) sliceDurations() (saturated, rate time.Duration) {
	n := time.Duration(h.opts.Slices)
	saturated = max(time.Second, (h.opts.Saturated / n).Round(time.Second))
	rate = max(time.Second, h.opts.Fixed/n)
	return saturated, rate
}

// wrkSum adds up the slices of a setup's saturated phase.
type wrkSum struct {
	requests, non2xx, socket int64
	duration                 time.Duration
	p50, p99                 []float64 // each slice's, ms
}

func (s *wrkSum) add(w wrkResult) {
	s.requests += w.Requests
	s.duration += w.Duration
	s.non2xx += w.Non2xx
	s.socket += w.SocketErrors
	s.p50 = append(s.p50, ms(w.LatencyP50))
	s.p99 = append(s.p99, ms(w.LatencyP99))
}

// result is the slices as one run: all requests over all the time, and
// the median of the slices' percentiles (wrk does not give its samples).
func (s *wrkSum) result() wrkResult {
	w := wrkResult{Requests: s.requests, Duration: s.duration, Non2xx: s.non2xx, SocketErrors: s.socket}
	if s.duration > 0 {
		w.ReqPerSec = float64(s.requests) / s.duration.Seconds()
	}
	w.LatencyP50 = time.Duration(summarize(s.p50).Median * float64(time.Millisecond))
	w.LatencyP99 = time.Duration(summarize(s.p99).Median * float64(time.Millisecond))
	return w
}

// startSetup starts a fresh Caddy for s in a directory of its own, on a
// fresh database (an SQLite file in that directory, or a new database in
// the run's PostgreSQL cluster), logs in where s needs it and checks that
// s does what it should.
func (h *harness) startSetup(ctx context.Context, s setup, name string) (*caddyProc, request, error) {
	dir := filepath.Join(h.tmp, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, request{}, err
	}
	port, err := freePort()
	if err != nil {
		return nil, request{}, err
	}
	admin, err := freePort()
	if err != nil {
		return nil, request{}, err
	}
	db, err := h.newDatabase(ctx, s.Postgres, dir)
	if err != nil {
		return nil, request{}, err
	}
	c, err := startCaddy(ctx, h.caddy, dir, "caddy", h.fix.config(s, db, admin, port), "/")
	if err != nil {
		return nil, request{}, err
	}
	req, err := h.fix.prepare(ctx, h.hc, s, c.URL)
	if err == nil {
		err = check(ctx, h.hc, c.URL, req)
	}
	if err != nil {
		c.Stop()
		return nil, request{}, fmt.Errorf("%w\ncaddy log:\n%s", err, c.logTail(20))
	}
	return c, req, nil
}

// guardRow is one setup's figures over the rounds. The ratios and added
// costs are taken round by round against that round's baseline, then
// summarised: a round on a busier machine slows the baseline as much as
// the setup.
type guardRow struct {
	Setup     setup
	ReqPerSec summary // wrk, requests per second
	Ratio     summary // ReqPerSec ÷ the round's baseline
	WrkP99    summary // ms
	CPU       summary // µs of Caddy CPU per request, fixed rate
	AddedCPU  summary // CPU − the round's baseline CPU
	P50, P99  summary // ms, fixed rate
	AddedP50  summary // ms
	RSS       summary // MiB
	Socket    int64   // wrk socket errors (timeouts, resets) over all rounds
	Requests  int64   // wrk requests over all rounds
}

// rows summarises the results, one row per setup, the baseline first.
func (g *guardResults) rows() []guardRow {
	base := g.Runs[setupBaseline.Key]
	var rows []guardRow
	for _, s := range g.Setups {
		runs := g.Runs[s.Key]
		var rps, ratio, wrk99, cpu, addCPU, p50, p99, addP50, rss []float64
		row := guardRow{Setup: s}
		for r, run := range runs {
			rps = append(rps, run.Wrk.ReqPerSec)
			wrk99 = append(wrk99, ms(run.Wrk.LatencyP99))
			cpu = append(cpu, run.Rate.CPUPerRequest())
			p50 = append(p50, ms(run.Rate.P50))
			p99 = append(p99, ms(run.Rate.P99))
			rss = append(rss, mib(run.RSS))
			bRPS, bCPU, bP50 := baselineOf(base, r)
			ratio = append(ratio, run.Wrk.ReqPerSec/bRPS)
			addCPU = append(addCPU, run.Rate.CPUPerRequest()-bCPU)
			addP50 = append(addP50, ms(run.Rate.P50)-bP50)
			row.Socket += run.Wrk.SocketErrors
			row.Requests += run.Wrk.Requests
		}
		row.ReqPerSec, row.Ratio, row.WrkP99 = summarize(rps), summarize(ratio), summarize(wrk99)
		row.CPU, row.AddedCPU = summarize(cpu), summarize(addCPU)
		row.P50, row.P99, row.AddedP50 = summarize(p50), summarize(p99), summarize(addP50)
		row.RSS = summarize(rss)
		rows = append(rows, row)
	}
	return rows
}

// baselineOf returns round r's baseline figures: requests per second,
// CPU µs per request and p50 in ms. Without a baseline for the round
// they are NaN, which summarize skips, rather than a panic.
func baselineOf(base []guardRun, r int) (rps, cpu, p50 float64) {
	if r >= len(base) {
		return math.NaN(), math.NaN(), math.NaN()
	}
	b := base[r]
	return b.Wrk.ReqPerSec, b.Rate.CPUPerRequest(), ms(b.Rate.P50)
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// mib is b bytes in MiB.
func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// pairRow compares setup a with setup b round by round, as rows does
// with the baseline: a's throughput ÷ b's, and a's CPU and p50 − b's.
type pairRow struct {
	A, B                      setup
	Ratio, AddedCPU, AddedP50 summary
}

// pair returns a against b, and false if either was not measured.
func (g *guardResults) pair(a, b setup) (pairRow, bool) {
	ra, rb := g.Runs[a.Key], g.Runs[b.Key]
	if len(ra) == 0 || len(rb) == 0 {
		return pairRow{}, false
	}
	var ratio, cpu, p50 []float64
	for r := range min(len(ra), len(rb)) {
		ratio = append(ratio, ra[r].Wrk.ReqPerSec/rb[r].Wrk.ReqPerSec)
		cpu = append(cpu, ra[r].Rate.CPUPerRequest()-rb[r].Rate.CPUPerRequest())
		p50 = append(p50, ms(ra[r].Rate.P50)-ms(rb[r].Rate.P50))
	}
	return pairRow{A: a, B: b, Ratio: summarize(ratio), AddedCPU: summarize(cpu), AddedP50: summarize(p50)}, true
}
