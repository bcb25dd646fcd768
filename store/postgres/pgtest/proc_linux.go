//go:build linux

package pgtest

import (
	"os/exec"
	"syscall"
)

// credential is a user and group to run the server as.
type credential = syscall.Credential

// setProcAttrs runs cmd as cred (when not nil) and makes the kernel kill
// it if the test process dies without cleaning up, so that no server
// outlives a crashed test run. Go sets the parent-death signal after
// switching user, since the switch would clear it.
func setProcAttrs(cmd *exec.Cmd, cred *credential) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}
