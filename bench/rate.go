package main

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// rateResult is a setup's fixed-rate phase: Caddy's CPU time per request
// and the latency the clients saw.
type rateResult struct {
	Requests  int           // sent (answered or not)
	Errors    int           // no answer, or not 200
	CPU       time.Duration // Caddy's CPU time over the phase
	P50, P99  time.Duration
	FirstFail string // what the first error was, for the report
}

// CPUPerRequest is Caddy's CPU time per request in microseconds.
func (r rateResult) CPUPerRequest() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.CPU) / float64(time.Microsecond) / float64(r.Requests)
}

// rateLoad sends a fixed rate of requests to one Caddy, in slices that
// the harness interleaves with other setups' slices; it adds up the
// slices.
type rateLoad struct {
	pid    int
	target vegeta.Target
	// client is kept across slices, and with it its connections: every
	// slice then measures requests, not connection setup.
	client    *http.Client
	res       rateResult
	latencies []time.Duration
}

func newRateLoad(pid int, url string, header http.Header) *rateLoad {
	return &rateLoad{
		pid:    pid,
		target: vegeta.Target{Method: http.MethodGet, URL: url, Header: header},
		client: &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				Proxy:               nil,
				MaxIdleConnsPerHost: 1000,
				IdleConnTimeout:     time.Minute,
			},
		},
	}
}

// slice sends rate requests per second for d, open loop: vegeta sends
// each request at its scheduled time whether or not the earlier ones have
// been answered, so a slow answer shows as latency instead of lowering
// the rate (a closed loop like wrk's would hide it). Caddy's CPU time is
// read before the first request and after the last answer, so that
// CPU/requests is the work per request at that rate, idle time included,
// which is the same for every setup.
func (l *rateLoad) slice(rate int, d time.Duration) error {
	// No MaxBody: a body left unread closes its connection, and a new
	// connection per request would be measured instead of the proxy. The
	// answer is a few bytes.
	attacker := vegeta.NewAttacker(vegeta.Client(l.client))
	before, err := processCPU(l.pid)
	if err != nil {
		return fmt.Errorf("reading caddy's CPU time: %w", err)
	}
	for r := range attacker.Attack(vegeta.NewStaticTargeter(l.target), vegeta.Rate{Freq: rate, Per: time.Second}, d, "") {
		l.res.Requests++
		if r.Error != "" || r.Code != http.StatusOK {
			l.res.Errors++
			if l.res.FirstFail == "" {
				l.res.FirstFail = fmt.Sprintf("status %d %s", r.Code, r.Error)
			}
			continue
		}
		l.latencies = append(l.latencies, r.Latency)
	}
	after, err := processCPU(l.pid)
	if err != nil {
		return fmt.Errorf("reading caddy's CPU time: %w", err)
	}
	l.res.CPU += after - before
	return nil
}

// result is the sum of the slices so far.
func (l *rateLoad) result() rateResult {
	r := l.res
	lat := slices.Clone(l.latencies)
	slices.Sort(lat)
	r.P50, r.P99 = quantile(lat, 0.50), quantile(lat, 0.99)
	return r
}

// close drops the load's idle connections.
func (l *rateLoad) close() { l.client.CloseIdleConnections() }
