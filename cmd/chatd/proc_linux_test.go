//go:build linux

package main

import "syscall"

// childAttr makes a chatd child process get SIGKILL when the test binary ends, however it
// ends: a binary killed by -timeout runs no cleanup.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
