//go:build !unix

package testutil

import (
	"testing"
	"time"
)

// LockVPCDSlot0 is a no-op where vpcd does not run (Windows): the tests
// that need it skip on RequirePCSCD first.
func LockVPCDSlot0(t testing.TB, timeout time.Duration) {}

// LockPCSCD is a no-op on this platform.
func LockPCSCD(t testing.TB, exclusive bool, timeout time.Duration) {}

// LockFile is a no-op on this platform.
func LockFile(path string, exclusive bool, timeout time.Duration) (func(), error) {
	return func() {}, nil
}
