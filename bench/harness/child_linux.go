//go:build linux

package harness

import "syscall"

// childAttr makes a child process die with the harness (SIGKILL when the
// parent goes), so a crashed benchmark or test never leaves an agent
// running.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
