//go:build !unix

package harness

import "time"

// flock is a no-op where vpcd does not run.
func flock(string, bool, time.Time, func(string, ...any)) (func(), error) { return func() {}, nil }
