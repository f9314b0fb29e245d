//go:build unix

package install

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// checkOwner refuses to run as root on another user's home: files created
// there (NSS databases, units) would belong to root and break the user's
// browser. Per-user installation runs as the user; only the system store
// is written as root (through sudo).
func (e *env) checkOwner() error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(e.home)
	if err != nil {
		return nil // a home that does not exist yet: nothing to protect
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
		return fmt.Errorf("install: running as root on %s, which belongs to uid %d: run \"cpsagent install\" as that user (add --system to also update the system store through sudo)", e.home, st.Uid)
	}
	return nil
}

// privileged runs a command as root: directly when we are root, through
// sudo (asking on the terminal) otherwise.
func (e *env) privileged(ctx context.Context, args ...string) error {
	if os.Geteuid() == 0 {
		_, err := run(ctx, args[0], args[1:]...)
		return err
	}
	sudo, err := exec.LookPath("sudo")
	if err != nil {
		return errors.New("this needs root and sudo is not installed: run it as root")
	}
	cmd := exec.CommandContext(ctx, sudo, append([]string{"--prompt=cpsagent needs your password to update the system certificate store: "}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.out, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("sudo %v: %w", args, err)
	}
	return nil
}
