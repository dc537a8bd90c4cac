//go:build linux

package main

import "syscall"

// childAttr puts a chatd child in a process group of its own, so a Ctrl-C in the terminal
// reaches only this tool, which then stops its children in order, and makes the child get
// SIGKILL when this process ends, however it ends.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
