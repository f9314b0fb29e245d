//go:build unix

package pcsctest

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StopPCSCD stops the running pcscd (SIGTERM to the PID in PIDFile) and
// waits until it is gone. Only call it when RestartAllowed.
func StopPCSCD(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile(PIDFile)
	if err != nil {
		t.Fatalf("reading %s: %v", PIDFile, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.Trim(string(b), "\x00")))
	if err != nil || pid <= 1 {
		t.Fatalf("bad pid in %s: %q", PIDFile, b)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("stopping pcscd %d: %v", pid, err)
	}
	// pcscd is not our child: poll for its exit (it takes about 1 s).
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("pcscd %d did not stop", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("pcscd %d stopped", pid)
}

// StartPCSCD starts a new pcscd in its own session (it outlives the test
// binary, like the one it replaces; its PID is in PIDFile) and waits until
// its socket exists.
func StartPCSCD(t testing.TB, logPath string) {
	t.Helper()
	bin, err := exec.LookPath("pcscd")
	if err != nil {
		t.Fatalf("pcscd: %v", err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--foreground", "--debug")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pcscd: %v", err)
	}
	go func() { _ = cmd.Wait() }() // reap it if it exits while we run
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(Socket); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pcscd did not create %s", Socket)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("pcscd restarted as pid %d (log %s)", cmd.Process.Pid, logPath)
}

// lockFile takes a flock on a file in the temporary directory and releases
// it when the test ends. Test binaries run in parallel (go test ./...), and
// several people may run them on one machine: the vpcd slot and pcscd are
// shared, so their users take turns.
func lockFile(t testing.TB, path string, exclusive bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("lock %s: %v", path, err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		start := time.Now()
		t.Logf("waiting for %s (another test process uses pcscd/vpcd)", path)
		if err := syscall.Flock(int(f.Fd()), how); err != nil {
			f.Close()
			t.Fatalf("lock %s: %v", path, err)
		}
		t.Logf("got %s after %v", path, time.Since(start).Round(time.Millisecond))
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
