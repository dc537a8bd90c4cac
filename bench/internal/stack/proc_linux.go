//go:build linux

package stack

import "syscall"

// childAttr makes a child process get SIGKILL when this process ends, however it ends (a test
// binary that panics on -timeout runs no cleanup).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
