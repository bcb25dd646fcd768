//go:build linux

package integration

import (
	"os/exec"
	"syscall"
)

// setProcAttrs makes the kernel kill caddy if the test process dies
// without cleaning up, so that no server outlives a crashed test run.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
