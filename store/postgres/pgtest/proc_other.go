//go:build !linux

package pgtest

import "os/exec"

// credential is a user and group to run the server as.
type credential struct{ Uid, Gid uint32 }

// setProcAttrs does nothing: switching user is done on Linux only, where
// the tests run as root.
func setProcAttrs(cmd *exec.Cmd, cred *credential) {}
