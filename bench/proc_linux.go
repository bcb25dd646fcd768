//go:build linux

package main

import (
	"os/exec"
	"syscall"
)

// setProcAttrs makes the kernel kill a child (Caddy, wrk) if this program
// dies without stopping it, so no server outlives an interrupted run.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
