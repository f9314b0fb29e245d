//go:build unix

package pinentry

import (
	"os/exec"
	"syscall"
)

// setProcessGroup starts the program in a new process group, so that killing
// the group also ends helpers it spawned.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func killProcessGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
}
