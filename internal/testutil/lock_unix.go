//go:build unix

package testutil

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// LockVPCDSlot0 takes the cross-process lock on vpcd slot 0 (flock on
// VPCDSlot0Lock), waiting up to timeout for other test processes, and
// releases it when the test ends.
func LockVPCDSlot0(t testing.TB, timeout time.Duration) {
	t.Helper()
	unlock, err := LockFile(VPCDSlot0Lock, true, timeout)
	if err != nil {
		t.Fatalf("vpcd slot 0: %v", err)
	}
	t.Cleanup(unlock)
}

// LockPCSCD holds PCSCDLock until the test ends: shared by every test that
// uses pcscd, exclusive for a test that stops or restarts it (the
// convention of internal/card/pcsc/pcsctest). Take it before the slot lock.
func LockPCSCD(t testing.TB, exclusive bool, timeout time.Duration) {
	t.Helper()
	unlock, err := LockFile(PCSCDLock, exclusive, timeout)
	if err != nil {
		t.Fatalf("pcscd: %v", err)
	}
	t.Cleanup(unlock)
}

// LockFile takes a flock on path (exclusive or shared) (created 0666 so that other
// users' test runs can share it), polling until timeout. The lock dies with
// the process, so a crashed test never leaves it behind.
func LockFile(path string, exclusive bool, timeout time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		how := syscall.LOCK_SH
		if exclusive {
			how = syscall.LOCK_EX
		}
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w (held by another test process for %v)", path, err, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
