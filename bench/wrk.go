package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	Requests     int64 // completed requests
	Duration     time.Duration
	ReqPerSec    float64 // the "Requests/sec:" line
	LatencyAvg   time.Duration
	LatencyP50   time.Duration // from --latency
	LatencyP99   time.Duration
	Non2xx       int64 // "Non-2xx or 3xx responses:"
	SocketErrors int64 // connect + read + write + timeout
}

// ensureWrk returns the path of wrk, installing Debian's package when it
// is missing and this process may (it runs as root).
func ensureWrk(ctx context.Context, logf func(string, ...any)) (string, error) {
	if p, err := exec.LookPath("wrk"); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("wrk is not installed: install it with `sudo apt-get install wrk` (Debian/Ubuntu) and run again")
	}
	logf("wrk is missing: apt-get install -y wrk")
	if err := aptInstall(ctx, logf, "wrk"); err != nil {
		return "", fmt.Errorf("installing wrk: %w", err)
	}
	p, err := exec.LookPath("wrk")
	if err != nil {
		return "", fmt.Errorf("wrk still not found after installing it: %w", err)
	}
	return p, nil
}

// aptInstall installs Debian's package pkg with apt-get (as root).
// apt-get update runs only if the first install fails: on a machine whose
// package lists are fresh enough, it is a needless download.
func aptInstall(ctx context.Context, logf func(string, ...any), pkg string) error {
	apt := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, lastLines(string(out), 10))
		}
		return nil
	}
	if err := apt("install", "-y", pkg); err != nil {
		logf("install failed; apt-get update, then again")
		if err := apt("update"); err != nil {
			return err
		}
		return apt("install", "-y", pkg)
	}
	return nil
}

// wrkArgs are the arguments of one saturated run against url with the
// given header lines ("Name: value").
func wrkArgs(threads, conns int, d time.Duration, url string, headers []string) []string {
	args := []string{
		"-t", strconv.Itoa(threads),
		"-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second)),
		// wrk's default 2 s timeout would count slow answers of a busy
		// machine as errors rather than as latency.
		"--timeout", "10s",
		"--latency",
	}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	return append(args, url)
}

// runWrk runs wrk and parses what it prints.
func runWrk(ctx context.Context, bin string, threads, conns int, d time.Duration, url string, headers []string) (wrkResult, error) {
	cmd := exec.CommandContext(ctx, bin, wrkArgs(threads, conns, d, url, headers)...)
	setProcAttrs(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	res, err := parseWrk(string(out))
	if err != nil {
		return wrkResult{}, fmt.Errorf("%w\nwrk printed:\n%s", err, out)
	}
	return res, nil
}

// parseWrk reads the output of `wrk --latency` (wrk 4.x). The lines it
// needs are "Requests/sec:", the "N requests in T" summary and the
// latency lines; the error lines appear only when there were errors.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var seenRate, seenSummary, seenP50, seenP99 bool
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var err error
		switch {
		case f[0] == "Requests/sec:" && len(f) == 2:
			r.ReqPerSec, err = strconv.ParseFloat(f[1], 64)
			seenRate = true
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			// "520000 requests in 10.00s, 75.00MB read"
			if r.Requests, err = strconv.ParseInt(f[0], 10, 64); err == nil {
				r.Duration, err = parseWrkDuration(strings.TrimSuffix(f[3], ","))
			}
			seenSummary = true
		case f[0] == "Latency" && len(f) >= 3 && f[1] != "Distribution":
			// "Latency   1.23ms  456.78us  12.34ms   78.90%"
			r.LatencyAvg, err = parseWrkDuration(f[1])
		case f[0] == "50%" && len(f) == 2:
			r.LatencyP50, err = parseWrkDuration(f[1])
			seenP50 = true
		case f[0] == "99%" && len(f) == 2:
			r.LatencyP99, err = parseWrkDuration(f[1])
			seenP99 = true
		case f[0] == "Non-2xx" && len(f) == 5:
			// "Non-2xx or 3xx responses: 12"
			r.Non2xx, err = strconv.ParseInt(f[4], 10, 64)
		case f[0] == "Socket" && len(f) >= 3 && f[1] == "errors:":
			// "Socket errors: connect 0, read 0, write 0, timeout 5"
			for i := 2; i+1 < len(f); i += 2 {
				var n int64
				n, err = strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil {
					break
				}
				r.SocketErrors += n
			}
		}
		if err != nil {
			return wrkResult{}, fmt.Errorf("parsing wrk output line %q: %w", strings.TrimSpace(line), err)
		}
	}
	if !seenRate || !seenSummary || !seenP50 || !seenP99 {
		return wrkResult{}, errors.New("parsing wrk output: no Requests/sec, request count or latency distribution (was --latency given?)")
	}
	return r, nil
}

// parseWrkDuration reads a time as wrk prints it: a number and one of
// the units us, ms, s, m or h.
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{
		// "ms" and "us" before "s", which they end with.
		{"us", time.Microsecond},
		{"ms", time.Millisecond},
		{"s", time.Second},
		{"m", time.Minute},
		{"h", time.Hour},
	}
	for _, u := range units {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("bad time %q", s)
		}
		return time.Duration(v * float64(u.unit)), nil
	}
	return 0, fmt.Errorf("time %q has no unit", s)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
