//go:build !linux

package integration

import "os/exec"

// setProcAttrs: only Linux can tie the child's life to the test process.
func setProcAttrs(*exec.Cmd) {}
