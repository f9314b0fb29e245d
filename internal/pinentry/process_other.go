//go:build !unix

package pinentry

import "os/exec"

func setProcessGroup(*exec.Cmd) {}

// killProcessGroup kills the program only: Windows has no process groups in
// the POSIX sense (pinentry.exe does not spawn helpers).
func killProcessGroup(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
}
