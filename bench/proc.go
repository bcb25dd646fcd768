package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every architecture Go supports on Linux (`getconf
// CLK_TCK`); Go cannot ask sysconf without cgo. One tick is 10 ms, so a
// phase must run long enough for its CPU time to be many ticks: at 1000
// requests/s for 8 s and 150 µs per request, one tick is 1.25 µs/request.
const clockTicks = 100

// processCPU returns the CPU time, user plus system, of all threads of
// process pid so far.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15, in clock ticks)
// from the contents of /proc/<pid>/stat (proc(5)). The second field, the
// command name, is in parentheses and may itself hold spaces and
// parentheses, so the fields are counted from the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("parsing /proc stat: no ')' after the command name")
	}
	// After ") " come field 3 (state), 4, ...: utime is field 14, the
	// 12th here.
	fields := strings.Fields(stat[end+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("parsing /proc stat: %d fields after the command name, want at least 13", len(fields))
	}
	var ticks uint64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing /proc stat: utime or stime %q: %w", f, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// memory is a process's resident set size now and at its peak, in bytes.
type memory struct {
	RSS  uint64 // VmRSS
	Peak uint64 // VmHWM
}

// processMemory reads VmRSS and VmHWM of process pid from
// /proc/<pid>/status.
func processMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	return parseStatusMemory(string(b))
}

// parseStatusMemory reads VmRSS and VmHWM (in kB, which proc(5) means as
// KiB) from the contents of /proc/<pid>/status.
func parseStatusMemory(status string) (memory, error) {
	var m memory
	var seenRSS, seenPeak bool
	for line := range strings.SplitSeq(status, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(value), " ")
		kib, err := strconv.ParseUint(num, 10, 64)
		if err != nil || unit != "kB" {
			return memory{}, fmt.Errorf("parsing /proc status: %s %q", name, strings.TrimSpace(value))
		}
		if name == "VmRSS" {
			m.RSS, seenRSS = kib*1024, true
		} else {
			m.Peak, seenPeak = kib*1024, true
		}
	}
	if !seenRSS || !seenPeak {
		return memory{}, errors.New("parsing /proc status: no VmRSS or VmHWM")
	}
	return m, nil
}

// loadAverage returns the 1, 5 and 15 minute load averages of
// /proc/loadavg as written there, or "?" if it cannot be read.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return parseLoadAverage(string(b))
}

// parseLoadAverage returns the first three fields of /proc/loadavg.
func parseLoadAverage(s string) string {
	f := strings.Fields(s)
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// kernelRelease returns the running kernel's release, or "".
func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
