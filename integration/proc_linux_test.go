//go:build linux

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// setProcAttrs makes the kernel kill caddy if the test process dies
// without cleaning up, so that no server outlives a crashed test run.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// procMemory reads the resident set size of process pid and its peak
// (VmRSS and VmHWM of /proc/<pid>/status), in bytes.
func procMemory(pid int) (rss, peak uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		var kB uint64
		if _, err := fmt.Sscanf(strings.TrimSpace(value), "%d kB", &kB); err != nil {
			return 0, 0, fmt.Errorf("reading %s %q: %w", name, value, err)
		}
		if name == "VmRSS" {
			rss = kB * 1024
		} else {
			peak = kB * 1024
		}
	}
	if rss == 0 || peak == 0 {
		return 0, 0, fmt.Errorf("no VmRSS or VmHWM in /proc/%d/status", pid)
	}
	return rss, peak, nil
}

// resetPeakMemory sets the peak resident size of process pid (VmHWM) back
// to its current size, so that a later procMemory reports the peak of
// what happened in between (proc(5), clear_refs "5").
func resetPeakMemory(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}
