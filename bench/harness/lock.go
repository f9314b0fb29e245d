package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cpsagent/cpsagent/internal/testutil"
)

// VPCD slot 0, the one the harness uses (Debian's vsmartcard-vpcd).
const (
	Slot0Addr   = testutil.VPCDSlot0Addr
	Slot0Reader = testutil.VPCDSlot0Reader
)

// ErrLockTimeout: another process held a lock for longer than allowed.
var ErrLockTimeout = errors.New("harness: lock held by another process")

// Lock files. Two helpers guard vpcd slot 0 in this tree:
// internal/testutil (test/e2e) locks VPCDSlot0Lock, and
// internal/card/pcsc/pcsctest (the card engine and PIN management tests)
// locks $TMPDIR/cpsagent-vpcd-35963.lock after a shared lock on
// $TMPDIR/cpsagent-pcscd.lock (exclusive for tests that restart pcscd).
// The harness takes all of them, in pcsctest's order, so that it never
// shares the slot with either family.
func lockPaths() (pcscd, port, slot0 string) {
	return filepath.Join(os.TempDir(), "cpsagent-pcscd.lock"),
		filepath.Join(os.TempDir(), "cpsagent-vpcd-35963.lock"),
		testutil.VPCDSlot0Lock
}

// LockSlot0 takes the locks of vpcd slot 0 (and a shared lock on pcscd, or
// an exclusive one with restartPCSCD, for runs that stop pcscd), waiting up
// to timeout in total. logf (optional) is told when it has to wait.
func LockSlot0(timeout time.Duration, restartPCSCD bool, logf func(string, ...any)) (unlock func(), err error) {
	deadline := time.Now().Add(timeout)
	pcscd, port, slot0 := lockPaths()
	var unlocks []func()
	release := func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	for _, l := range []struct {
		path      string
		exclusive bool
	}{{pcscd, restartPCSCD}, {port, true}, {slot0, true}} {
		u, err := flock(l.path, l.exclusive, deadline, logf)
		if err != nil {
			release()
			return nil, err
		}
		unlocks = append(unlocks, u)
	}
	return release, nil
}

func lockErr(path string, err error) error {
	return fmt.Errorf("harness: lock %s: %w", path, err)
}
