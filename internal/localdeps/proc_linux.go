//go:build linux

package localdeps

import "syscall"

// ChildAttr makes a child process (a redis-server, a FerretDB child, a test's chatd) get
// SIGKILL when this process ends, however it ends: a test binary killed by -timeout or by a
// signal runs no cleanup, and its children would otherwise live on.
func ChildAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
