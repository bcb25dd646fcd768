package main

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The testdata files are wrk 4.1.0's real output: a plain run, a run
// whose every answer was a 404, and one whose every request timed out.
func TestParseWrk(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want wrkResult
	}{
		{"wrk-ok.txt", wrkResult{
			Requests: 1201, Duration: 2 * time.Second, ReqPerSec: 599.64,
			LatencyAvg: 31940 * time.Microsecond, LatencyP50: 10080 * time.Microsecond, LatencyP99: 649610 * time.Microsecond,
		}},
		{"wrk-non2xx.txt", wrkResult{
			Requests: 1702, Duration: time.Second, ReqPerSec: 1698.34,
			LatencyAvg: 3610 * time.Microsecond, LatencyP50: 2900 * time.Microsecond, LatencyP99: 13880 * time.Microsecond,
			Non2xx: 1702,
		}},
		{"wrk-timeouts.txt", wrkResult{
			Requests: 14, Duration: 3010 * time.Millisecond, ReqPerSec: 4.66,
			SocketErrors: 14,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseWrk(string(b))
			if err != nil {
				t.Fatal(err)
			}
			// Float formatting in wrk is to 2 decimals; compare durations
			// to the microsecond.
			round := func(r wrkResult) wrkResult {
				r.Duration = r.Duration.Round(time.Microsecond)
				r.LatencyAvg = r.LatencyAvg.Round(time.Microsecond)
				r.LatencyP50 = r.LatencyP50.Round(time.Microsecond)
				r.LatencyP99 = r.LatencyP99.Round(time.Microsecond)
				return r
			}
			if round(got) != tt.want {
				t.Errorf("parseWrk =\n%+v\nwant\n%+v", round(got), tt.want)
			}
		})
	}
}

func TestParseWrkRejects(t *testing.T) {
	t.Parallel()
	ok, err := os.ReadFile("testdata/wrk-ok.txt")
	if err != nil {
		t.Fatal(err)
	}
	without := func(prefix string) string {
		var keep []string
		for line := range strings.SplitSeq(string(ok), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), prefix) {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "\n")
	}
	tests := map[string]string{
		"empty":                  "",
		"no Requests/sec":        without("Requests/sec:"),
		"no latency percentiles": without("99%"),
		"no summary":             without("1201 requests"),
		"bad unit":               strings.Replace(string(ok), "10.08ms", "10.08parsecs", 1),
		"bad rate":               strings.Replace(string(ok), "599.64", "lots", 1),
		"bad socket errors":      string(ok) + "  Socket errors: connect x, read 0, write 0, timeout 0\n",
	}
	for name, out := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if r, err := parseWrk(out); err == nil {
				t.Errorf("parseWrk succeeded: %+v", r)
			}
		})
	}
}

func TestParseWrkDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"456.78us", 456780 * time.Nanosecond, true},
		{"1.23ms", 1230 * time.Microsecond, true},
		{"2.00s", 2 * time.Second, true},
		{"1.50m", 90 * time.Second, true},
		{"1.00h", time.Hour, true},
		{"0.00us", 0, true},
		{"12", 0, false},
		{"ms", 0, false},
		{"-1.0ms", 0, false},
	}
	for _, tt := range tests {
		got, err := parseWrkDuration(tt.in)
		if (err == nil) != tt.ok || got.Round(time.Nanosecond) != tt.want {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestWrkArgs(t *testing.T) {
	t.Parallel()
	got := wrkArgs(2, 64, 8*time.Second, "http://127.0.0.1:1/app", []string{"Cookie: a=b", "X: y"})
	want := []string{"-t", "2", "-c", "64", "-d", "8s", "--timeout", "10s", "--latency", "-H", "Cookie: a=b", "-H", "X: y", "http://127.0.0.1:1/app"}
	if !slices.Equal(got, want) {
		t.Errorf("wrkArgs = %q, want %q", got, want)
	}
}
