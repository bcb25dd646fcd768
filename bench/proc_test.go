package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	// A real line of /proc/<pid>/stat with utime 250 and stime 31, and
	// a command name that holds spaces and parentheses: the fields must
	// be counted from the last ')'.
	const rest = " R 11678 11678 1633 0 -1 4194304 102 0 0 0 250 31 0 0 20 0 1 0 195467 3133440 390 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
	for _, name := range []string{"(caddy)", "(my (odd) name)", "(a) 1 2 3)"} {
		got, err := parseStatCPU("11684 " + name + rest)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := 281 * 10 * time.Millisecond; got != want {
			t.Errorf("%s: parseStatCPU = %v, want %v", name, got, want)
		}
	}
	for _, bad := range []string{"", "1 caddy R 1 2", "1 (caddy) R 1 2 3", "1 (caddy)" + strings.Replace(rest, " 250 ", " x ", 1)} {
		if d, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) = %v, want an error", bad, d)
		}
	}
}

func TestParseStatusMemory(t *testing.T) {
	t.Parallel()
	status := "Name:\tcaddy\nVmPeak:\t 1000 kB\nVmHWM:\t   460800 kB\nVmRSS:\t    65536 kB\nThreads:\t9\n"
	got, err := parseStatusMemory(status)
	if err != nil {
		t.Fatal(err)
	}
	if want := (memory{RSS: 64 << 20, Peak: 450 << 20}); got != want {
		t.Errorf("parseStatusMemory = %+v, want %+v", got, want)
	}
	for _, bad := range []string{
		"VmRSS:\t 10 kB\n",                  // no VmHWM
		"VmHWM:\t 10 kB\n",                  // no VmRSS
		"VmRSS:\t 10 MB\nVmHWM:\t 10 kB\n",  // unknown unit
		"VmRSS:\t ten kB\nVmHWM:\t 10 kB\n", // not a number
	} {
		if m, err := parseStatusMemory(bad); err == nil {
			t.Errorf("parseStatusMemory(%q) = %+v, want an error", bad, m)
		}
	}
}

func TestParseLoadAverage(t *testing.T) {
	t.Parallel()
	if got := parseLoadAverage("1.18 0.27 0.09 4/107 5060\n"); got != "1.18 0.27 0.09" {
		t.Errorf("parseLoadAverage = %q", got)
	}
	if got := parseLoadAverage("1.18"); got != "?" {
		t.Errorf("parseLoadAverage(short) = %q, want ?", got)
	}
}
