//go:build !linux

package localdeps

import "syscall"

// ChildAttr returns nil: only Linux can tie a child's life to its parent's.
func ChildAttr() *syscall.SysProcAttr { return nil }
