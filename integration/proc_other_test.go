//go:build !linux

package integration

import (
	"errors"
	"os/exec"
)

// setProcAttrs: only Linux can tie the child's life to the test process.
func setProcAttrs(*exec.Cmd) {}

// procMemory: only Linux reports another process's resident size here.
func procMemory(int) (rss, peak uint64, err error) { return 0, 0, errors.ErrUnsupported }

// resetPeakMemory: only Linux can reset it.
func resetPeakMemory(int) error { return errors.ErrUnsupported }
