// Package testutil holds helpers shared by the tests of several packages:
// the cross-process lock on vpcd slot 0, the pcscd presence check that
// fails under CI and skips loudly elsewhere, and an OpenSSL CMS verifier
// independent of the agent's own code.
//
// Tests that talk to pcscd through vpcd slot 0 (127.0.0.1:35963, reader
// "Virtual PCD 00 00") must hold LockPCSCD (shared; exclusive to restart
// pcscd) and then LockVPCDSlot0 for their whole duration: `go test ./...`
// runs packages in parallel processes, and two virtual cards on one vpcd
// slot disconnect each other.
package testutil

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// VPCD slot 0 as configured by Debian's vsmartcard-vpcd package.
const (
	VPCDSlot0Addr   = "127.0.0.1:35963"
	VPCDSlot0Reader = "Virtual PCD 00 00"
	// VPCDSlot0Lock is the lock file shared by every package's tests.
	VPCDSlot0Lock = "/tmp/cpsagent-vpcd-slot0.lock"
	// PCSCDLock is held shared by tests using pcscd and exclusively by a
	// test that restarts it (same file as internal/card/pcsc/pcsctest).
	PCSCDLock = "/tmp/cpsagent-pcscd.lock"
)

// PCSCDSocket is pcsc-lite's client socket on Linux.
const PCSCDSocket = "/run/pcscd/pcscd.comm"

// InCI reports whether the tests run under CI (CI=true), where missing
// infrastructure is a failure, not a reason to skip.
func InCI() bool { return strings.EqualFold(os.Getenv("CI"), "true") }

// RequirePCSCD makes the test depend on a running pcscd: under CI=true a
// missing pcscd fails the test, elsewhere it skips with the reason.
func RequirePCSCD(t testing.TB) {
	t.Helper()
	if err := PCSCDRunning(); err != nil {
		if InCI() {
			t.Fatalf("pcscd is required under CI=true: %v (start it with: pcscd --foreground &)", err)
		}
		t.Skipf("SKIPPED: pcscd not running (%v); install pcscd and vsmartcard-vpcd and start `pcscd --foreground` to run this test", err)
	}
}

// PCSCDRunning reports why pcscd cannot be reached (nil when it can).
func PCSCDRunning() error {
	c, err := net.DialTimeout("unix", PCSCDSocket, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}
