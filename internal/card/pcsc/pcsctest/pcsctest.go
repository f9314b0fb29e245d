// Package pcsctest holds what tests need to run through pcscd and the
// vsmartcard vpcd driver: whether the leg must run, which vpcd slot to use,
// a faster TCP dialer for the virtual card, and a pcscd restart (CI only).
// It imports no PC/SC binding itself.
package pcsctest

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/card/pcsc"
)

// Environment variables.
const (
	// EnvVPCDAddr overrides the vpcd slot the tests insert their card in
	// (default 127.0.0.1:35963, reader "Virtual PCD 00 00").
	EnvVPCDAddr = "CPSAGENT_VPCD_ADDR"
	// EnvVPCDReader overrides the reader name derived from the address.
	EnvVPCDReader = "CPSAGENT_VPCD_READER"
	// EnvRestartOK allows tests to stop and restart pcscd (set by .ci/run).
	EnvRestartOK = "CPSAGENT_PCSCD_RESTART_OK"
)

// DefaultVPCDAddr is vpcd's slot 0.
const DefaultVPCDAddr = "127.0.0.1:35963"

// PIDFile and Socket are pcsc-lite's run-time files on Linux.
const (
	PIDFile = "/run/pcscd/pcscd.pid"
	Socket  = "/run/pcscd/pcscd.comm"
)

// VPCDAddr returns the vpcd slot address for tests.
func VPCDAddr() string {
	if a := os.Getenv(EnvVPCDAddr); a != "" {
		return a
	}
	return DefaultVPCDAddr
}

// ReaderName returns the reader pcscd shows for addr: "Virtual PCD 00 NN"
// for vpcd port 35963+NN.
func ReaderName(addr string) string {
	if r := os.Getenv(EnvVPCDReader); r != "" {
		return r
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 35963 || port > 35963+15 {
		return ""
	}
	return fmt.Sprintf("Virtual PCD 00 %02d", port-35963)
}

var warnOnce sync.Once

// Lock files (flock), shared by every package's tests on the machine:
// `go test ./...` runs packages in parallel processes, and two virtual
// cards on one vpcd slot disconnect each other.
//   - SlotLock(n) is the convention of internal/testutil
//     (/tmp/cpsagent-vpcd-slot0.lock for slot 0) and internal/pinmgmt (slot 1);
//   - PCSCDLock is held shared by every Require and exclusively by a test
//     that restarts pcscd (RequireExclusive).
const PCSCDLock = "/tmp/cpsagent-pcscd.lock"

// SlotLock is the lock file of the vpcd slot at addr.
func SlotLock(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	return fmt.Sprintf("/tmp/cpsagent-vpcd-slot%d.lock", port-35963)
}

// LockSlot waits for the vpcd slot at addr (exclusive) and releases it
// when t ends. Call it after Require (lock order: pcscd, then slot).
func LockSlot(t testing.TB, addr string) {
	t.Helper()
	lockFile(t, SlotLock(addr), true)
}

// Require checks that pcscd answers and shows the vpcd reader. Under
// CI=true a missing pcscd fails the test; elsewhere the test is skipped,
// with a warning on stderr so the skip is not silent. It holds PCSCDLock
// (shared) until t ends; the caller still locks its slot (LockSlot).
func Require(t testing.TB) (addr, reader string) {
	t.Helper()
	return require(t, false)
}

// RequireExclusive is Require for a test that stops pcscd: it waits until
// no other test process uses pcscd through this package.
func RequireExclusive(t testing.TB) (addr, reader string) {
	t.Helper()
	return require(t, true)
}

func require(t testing.TB, exclusive bool) (addr, reader string) {
	t.Helper()
	addr = VPCDAddr()
	reader = ReaderName(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr := pcsc.New(pcsc.Options{})
	rs, err := tr.Readers(ctx)
	why := ""
	switch {
	case err != nil:
		why = fmt.Sprintf("pcscd not reachable (%v)", err)
	case reader == "":
		why = fmt.Sprintf("%s=%q is not a vpcd slot address; set %s", EnvVPCDAddr, addr, EnvVPCDReader)
	default:
		found := false
		for _, r := range rs {
			found = found || r.Name == reader
		}
		if !found {
			why = fmt.Sprintf("pcscd has no reader %q (is vsmartcard-vpcd installed, and pcscd started after it?)", reader)
		}
	}
	if why == "" {
		lockFile(t, PCSCDLock, exclusive)
		return addr, reader
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("pcscd leg required under CI=true: %s", why)
	}
	warnOnce.Do(func() {
		hint := ""
		if err != nil {
			hint = "*** Start it with: pcscd --foreground --debug > /tmp/pcscd.log 2>&1 &\n"
		}
		fmt.Fprintf(os.Stderr, "\n*** SKIPPING the pcscd+vpcd tests: %s.\n%s\n", why, hint)
	})
	t.Skipf("SKIP pcscd leg: %s", why)
	return "", ""
}

// Dial connects the virtual card to vpcd with TCP_QUICKACK re-armed after
// every read. The Debian vpcd driver writes each frame's 2-byte header and
// its payload with two send() calls; with Nagle on the driver's socket and
// delayed ACKs on ours, every APDU otherwise waits about 40 ms for an ACK.
func Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	return &quickAckConn{TCPConn: tc}, nil
}

type quickAckConn struct{ *net.TCPConn }

func (c *quickAckConn) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	quickAck(c.TCPConn)
	return n, err
}

// RestartAllowed reports whether tests may stop and restart pcscd.
func RestartAllowed() bool { return os.Getenv(EnvRestartOK) == "1" }
