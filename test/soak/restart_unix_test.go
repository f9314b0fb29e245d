//go:build unix

package soak

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// restartPCSCD stops the machine's pcscd (SIGTERM to the PID in its PID
// file) and starts a new one in its own session, as the one it replaces
// (it outlives the test). Only with CPSAGENT_PCSCD_RESTART_OK=1.
func restartPCSCD() error {
	b, err := os.ReadFile("/run/pcscd/pcscd.pid")
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.Trim(string(b), "\x00")))
	if err != nil || pid <= 1 {
		return fmt.Errorf("bad pcscd pid %q", b)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping pcscd %d: %w", pid, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("pcscd %d did not stop", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	bin, err := exec.LookPath("pcscd")
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(os.TempDir(), "cpsagent-soak-pcscd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--foreground")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	deadline = time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat("/run/pcscd/pcscd.comm"); err == nil {
			return nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("pcscd did not come back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
