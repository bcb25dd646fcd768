package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// profile is one CPU profile taken from Caddy under load.
type profile struct {
	Label string
	Path  string // the saved profile
	Top   string // go tool pprof -top
	// Focus is the same restricted to Gatehouse's own work: stacks
	// through its code but not through reverse_proxy. The guard calls
	// the rest of the handler chain, the proxy included, from its own
	// ServeHTTP, so without the exclusion every proxied request would
	// count as Gatehouse's. FocusShare is the share of all samples those
	// stacks hold: what Gatehouse costs of Caddy's CPU, the net/http
	// header calls it makes included, its garbage collection not.
	Focus      string
	FocusShare float64 // percent; NaN if not found
	ReqPerSec  float64 // while profiling (saturated: lower than unprofiled)
	// Diff is `pprof -top -diff_base` against the baseline's profile of
	// the same kind (DiffBase): where the setup spends more, or less.
	Diff, DiffBase string
}

// The pprof filters of Focus: Gatehouse's functions, and the proxy
// that runs below them.
const (
	gatehouseFocus = `github\.com/gatehouse-caddy/gatehouse`
	proxyIgnore    = `caddyhttp/reverseproxy`
)

// fetchProfile asks Caddy's admin endpoint for a CPU profile of seconds
// and writes it to path.
func fetchProfile(ctx context.Context, admin string, seconds int, path string) error {
	hc := newHTTPClient(1)
	hc.Timeout = time.Duration(seconds+30) * time.Second
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", admin, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fetching a profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("fetching a profile: status %d: %s", resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pprofTop returns `go tool pprof -top` of the profile at path, with
// more arguments (e.g. a focus) before the file.
func pprofTop(ctx context.Context, path string, args ...string) (string, error) {
	args = append(append([]string{"tool", "pprof", "-top", "-nodecount", "25"}, args...), path)
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %v: %w\n%s", args, err, out)
	}
	return string(out), nil
}

// pprofRowRe is a row of `pprof -top`: flat flat% sum% cum cum% name.
var pprofRowRe = regexp.MustCompile(`(?m)^\s*\S+\s+[0-9.]+%\s+[0-9.]+%\s+\S+\s+([0-9.]+)%\s+\S`)

// focusShare reads the share from a focused `pprof -top -cum`: the first
// row of a cumulative listing is the root that every focused stack goes
// through, so its cum% is the focused stacks' share of all samples.
func focusShare(top string) (float64, bool) {
	m := pprofRowRe.FindStringSubmatch(top)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// profileUnder profiles Caddy c while load runs: the profile starts a
// second after the load and ends a second before it, so that it holds
// only the steady state.
// With focus, it also lists Gatehouse's own work (see profile.Focus).
func (h *harness) profileUnder(ctx context.Context, c *caddyProc, label, key string, load time.Duration, focus bool, run func() error) (*profile, error) {
	seconds := max(1, int(load/time.Second)-2)
	path := filepath.Join(h.results, fmt.Sprintf("%s-%s.pprof", h.stamp, key))
	errc := make(chan error, 1)
	go func() {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			errc <- ctx.Err()
			return
		}
		errc <- fetchProfile(ctx, c.Admin, seconds, path)
	}()
	runErr := run()
	if err := <-errc; err != nil {
		return nil, err
	}
	if runErr != nil {
		return nil, runErr
	}
	p := &profile{Label: label, Path: path}
	var err error
	if p.Top, err = pprofTop(ctx, path); err != nil {
		return nil, err
	}
	p.FocusShare = math.NaN()
	if !focus {
		return p, nil
	}
	if p.Focus, err = pprofTop(ctx, path, "-cum", "-focus", gatehouseFocus, "-ignore", proxyIgnore); err != nil {
		return nil, err
	}
	if v, ok := focusShare(p.Focus); ok {
		p.FocusShare = v
	}
	return p, nil
}

// profileGuard profiles the baseline and the guard with a cookie and a
// JWT after the measured rounds (the profiler's own cost, about 1–2%,
// stays out of the figures): saturated by wrk, and at the fixed rate.
// The guard's profiles are then compared with the baseline's of the same
// kind (pprof -diff_base): at the fixed rate, with as many requests in
// both, a difference in seconds is a difference per request.
func (h *harness) profileGuard(ctx context.Context) ([]*profile, error) {
	// Longer than a measured phase: a profile at 100 Hz of a few seconds
	// holds too few samples of the guard's microseconds.
	satTime, rateTime := max(h.opts.Saturated, 12*time.Second), max(h.opts.Fixed, 17*time.Second)
	if h.opts.Quick {
		satTime, rateTime = max(h.opts.Saturated, 4*time.Second), max(h.opts.Fixed, 4*time.Second)
	}
	var out []*profile
	base := map[string]*profile{}
	for _, s := range []setup{setupBaseline, setupCookie, setupJWT} {
		h.logf("profiling %s", s.Label)
		c, req, err := h.startSetup(ctx, s, "profile-"+s.Key)
		if err != nil {
			return nil, err
		}
		var w wrkResult
		sat, err := h.profileUnder(ctx, c, s.Label+", saturated", s.Key, satTime, s != setupBaseline, func() error {
			var err error
			w, err = runWrk(ctx, h.wrk, h.opts.Threads, h.opts.Conns, satTime, c.URL+req.Path, req.headerLines())
			return err
		})
		if err != nil {
			c.Stop()
			return nil, err
		}
		sat.ReqPerSec = w.ReqPerSec
		load := newRateLoad(c.Pid, c.URL+req.Path, req.Header)
		fixed, err := h.profileUnder(ctx, c, fmt.Sprintf("%s, %d req/s", s.Label, h.opts.Rate), s.Key+"-rate", rateTime, s != setupBaseline, func() error {
			return load.slice(h.opts.Rate, rateTime)
		})
		load.close()
		c.Stop()
		if err != nil {
			return nil, err
		}
		fixed.ReqPerSec = float64(load.result().Requests) / rateTime.Seconds()
		for _, p := range []*profile{sat, fixed} {
			if s == setupBaseline {
				base[strings.TrimPrefix(p.Label, s.Label)] = p
				continue
			}
			b := base[strings.TrimPrefix(p.Label, s.Label)]
			if p.Diff, err = pprofTop(ctx, p.Path, "-diff_base", b.Path); err != nil {
				return nil, err
			}
			p.DiffBase = b.Label
		}
		out = append(out, sat, fixed)
	}
	return out, nil
}

// durationRe reads pprof's "Duration: 10s, Total samples = 11.63s".
var durationRe = regexp.MustCompile(`Duration: ([0-9.]+)(ms|s|mins), Total samples = ([0-9.]+)(ms|s|mins)`)

// cpuPerRequest is the profile's CPU time per request in µs: its samples
// over its duration, divided by the request rate; NaN if unknown.
func (p *profile) cpuPerRequest() float64 {
	m := durationRe.FindStringSubmatch(p.Top)
	if m == nil || p.ReqPerSec <= 0 {
		return math.NaN()
	}
	seconds := func(num, unit string) float64 {
		v, _ := strconv.ParseFloat(num, 64)
		switch unit {
		case "ms":
			return v / 1000
		case "mins":
			return v * 60
		}
		return v
	}
	d, total := seconds(m[1], m[2]), seconds(m[3], m[4])
	if d <= 0 {
		return math.NaN()
	}
	return total / d / p.ReqPerSec * 1e6
}
