//go:build linux

package testenv

import "syscall"

// childAttr makes a child process (a redis-server) get SIGKILL when the test binary ends,
// however it ends: a binary killed by -timeout or by a signal runs no cleanup, and its
// redis-server children would otherwise live on.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
