package api

import (
	"math"
	"sync"
	"time"
)

// rateLimiter is a token bucket per origin for card operations (each one
// a PIN prompt): it keeps a page that loops on a cancelled prompt from
// re-opening it without pause (prompt bombing, security.md §3.7).
type rateLimiter struct {
	burst   float64
	perSec  float64
	mu      sync.Mutex
	buckets map[string]*bucket
	now     func() time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the map; allowed origins are few, so this is only a
// safety net.
const maxBuckets = 1024

func newRateLimiter(burst, perMinute int) *rateLimiter {
	if burst <= 0 || perMinute <= 0 {
		return nil
	}
	return &rateLimiter{burst: float64(burst), perSec: float64(perMinute) / 60, buckets: map[string]*bucket{}, now: time.Now}
}

// allow takes a token for origin. When none is left it returns false and
// the number of seconds until the next token.
func (l *rateLimiter) allow(origin string) (bool, int) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[origin]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			clear(l.buckets)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[origin] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.perSec)
	b.last = now
	if b.tokens < 1 {
		return false, int(math.Ceil((1 - b.tokens) / l.perSec))
	}
	b.tokens--
	return true, 0
}

// tryAcquireOp takes the agent's single card-operation slot without
// waiting: a second operation gets agent_busy at once.
func (s *Server) tryAcquireOp() bool {
	select {
	case s.opSlot <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *Server) releaseOp() { <-s.opSlot }
