//go:build unix

package harness

import (
	"os"
	"syscall"
	"time"
)

// flock takes a shared or exclusive flock on path (created 0666 like the
// other helpers do), polling until deadline. The lock dies with the
// process.
func flock(path string, exclusive bool, deadline time.Time, logf func(string, ...any)) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, lockErr(path, err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if err != syscall.EWOULDBLOCK {
			_ = f.Close()
			return nil, lockErr(path, err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, lockErr(path, ErrLockTimeout)
		}
		if !told && logf != nil {
			logf("waiting for %s (another process uses pcscd / vpcd slot 0)", path)
			told = true
		}
		time.Sleep(100 * time.Millisecond)
	}
}
