// Package ctxsleep waits for a duration or a context, whichever ends first.
package ctxsleep

import (
	"context"
	"time"
)

// Sleep waits for d unless ctx ends first. It reports whether the whole
// duration passed with ctx still alive (d <= 0: whether ctx is alive).
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
