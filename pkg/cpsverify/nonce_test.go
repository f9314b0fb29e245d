package cpsverify

import (
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMemoryNonceStore(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := &MemoryNonceStore{Now: c.Now, TTL: time.Minute}

	n1, err := s.Issue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(n1)
	if err != nil || len(n1) != 44 || len(raw) != NonceSize {
		t.Fatalf("nonce %q: %d chars, %d bytes, %v", n1, len(n1), len(raw), err)
	}
	n2, _ := s.Issue(ctx)
	if n1 == n2 {
		t.Fatal("two identical nonces")
	}
	c.Advance(10 * time.Second)
	at, err := s.Consume(ctx, n1)
	if err != nil || !at.Equal(base) {
		t.Fatalf("Consume = %v, %v; want %v", at, err, base)
	}
	if _, err := s.Consume(ctx, n1); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("second Consume: %v", err)
	}
	if _, err := s.Consume(ctx, "never issued"); !errors.Is(err, ErrNonceUnknown) {
		t.Fatalf("unknown: %v", err)
	}
	c.Advance(time.Minute)
	if _, err := s.Consume(ctx, n2); !errors.Is(err, ErrNonceExpired) {
		t.Fatalf("expired: %v", err)
	}
	if _, err := s.Consume(ctx, n2); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("expired then replayed: %v", err)
	}
	// After 2×TTL everything is forgotten.
	c.Advance(2 * time.Minute)
	if _, err := s.Consume(ctx, n1); !errors.Is(err, ErrNonceUnknown) {
		t.Fatalf("purged: %v", err)
	}
	if s.Len() != 0 {
		t.Fatalf("Len = %d after purge", s.Len())
	}
}

func TestMemoryNonceStoreBounded(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := &MemoryNonceStore{Now: c.Now, TTL: time.Minute, MaxEntries: 3}
	for range 3 {
		if _, err := s.Issue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Issue(ctx); !errors.Is(err, ErrNonceStoreFull) {
		t.Fatalf("4th Issue: %v", err)
	}
	c.Advance(2*time.Minute + time.Second)
	if _, err := s.Issue(ctx); err != nil {
		t.Fatalf("Issue after expiry: %v", err)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
}

func TestMemoryNonceStoreOrderCompaction(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := &MemoryNonceStore{Now: c.Now, TTL: time.Second}
	for range 5000 {
		if _, err := s.Issue(ctx); err != nil {
			t.Fatal(err)
		}
		c.Advance(100 * time.Millisecond)
	}
	if n := s.Len(); n > 25 {
		t.Fatalf("Len = %d; old nonces not purged", n)
	}
	s.mu.Lock()
	held := len(s.order) - s.head
	capacity := cap(s.order)
	s.mu.Unlock()
	if held > 25 || capacity > 4096 {
		t.Fatalf("order queue holds %d live entries in capacity %d", held, capacity)
	}
}

func TestMemoryNonceStoreSingleUseConcurrent(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryNonceStore(0, 0)
	n, err := s.Issue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := s.Consume(ctx, n); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, ErrNonceReplayed) {
				t.Errorf("Consume: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d successful consumes, want 1", wins.Load())
	}
}

func TestMemoryNonceStoreRandFailure(t *testing.T) {
	boom := errors.New("no entropy")
	s := &MemoryNonceStore{Rand: func([]byte) error { return boom }}
	if _, err := s.Issue(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Issue(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Issue: %v", err)
	}
	if _, err := s.Consume(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Consume: %v", err)
	}
}
