package cpsverify

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// NonceSize is the number of random bytes in a nonce; its base64 form has
// 44 characters, the Web eID minimum.
const NonceSize = 32

// NonceStore issues single-use challenge nonces. Consume must succeed at
// most once per issued nonce and return when it was issued; unknown or
// already consumed nonces give an error matching ErrNonce (ErrNonceUnknown,
// ErrNonceReplayed, ErrNonceExpired).
//
// Production deployments with several server instances need a shared store
// (database, cache) or a store bound to the user's session, as Web eID
// recommends; MemoryNonceStore only works within one process.
type NonceStore interface {
	Issue(ctx context.Context) (nonce string, err error)
	Consume(ctx context.Context, nonce string) (issuedAt time.Time, err error)
}

// Defaults of MemoryNonceStore.
const (
	DefaultNonceTTL        = 5 * time.Minute
	DefaultNonceMaxEntries = 100_000
)

// MemoryNonceStore is an in-process NonceStore. Nonces expire after TTL.
// Consumed and expired nonces are remembered for another TTL so that a
// replay is reported as ErrNonceReplayed/ErrNonceExpired rather than
// ErrNonceUnknown. At most MaxEntries nonces are held; when full (after
// dropping old entries) Issue fails with ErrNonceStoreFull rather than
// evicting nonces users are still answering.
//
// The zero value is ready to use with the defaults. Do not copy after use.
type MemoryNonceStore struct {
	TTL        time.Duration    // default DefaultNonceTTL
	MaxEntries int              // default DefaultNonceMaxEntries
	Now        func() time.Time // default time.Now
	Rand       func([]byte) error

	mu      sync.Mutex
	entries map[string]nonceEntry
	order   []orderedNonce // issue order, for purging
	head    int
}

type nonceEntry struct {
	issuedAt time.Time
	used     bool
}

type orderedNonce struct {
	nonce    string
	issuedAt time.Time
}

// NewMemoryNonceStore returns a store with the given TTL and size bound
// (zero values select the defaults).
func NewMemoryNonceStore(ttl time.Duration, maxEntries int) *MemoryNonceStore {
	return &MemoryNonceStore{TTL: ttl, MaxEntries: maxEntries}
}

func (s *MemoryNonceStore) ttl() time.Duration {
	if s.TTL > 0 {
		return s.TTL
	}
	return DefaultNonceTTL
}

func (s *MemoryNonceStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// purge drops entries older than 2×TTL. Called with s.mu held.
func (s *MemoryNonceStore) purge(now time.Time) {
	limit := now.Add(-2 * s.ttl())
	for s.head < len(s.order) && !s.order[s.head].issuedAt.After(limit) {
		o := s.order[s.head]
		if e, ok := s.entries[o.nonce]; ok && e.issuedAt.Equal(o.issuedAt) {
			delete(s.entries, o.nonce)
		}
		s.order[s.head] = orderedNonce{}
		s.head++
	}
	if s.head > 1024 && s.head > len(s.order)/2 {
		s.order = append(s.order[:0:0], s.order[s.head:]...)
		s.head = 0
	}
}

// Issue returns a fresh nonce: 32 random bytes, standard base64 (44 chars).
func (s *MemoryNonceStore) Issue(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	b := make([]byte, NonceSize)
	read := s.Rand
	if read == nil {
		read = func(b []byte) error { _, err := rand.Read(b); return err }
	}
	if err := read(b); err != nil {
		return "", err
	}
	nonce := base64.StdEncoding.EncodeToString(b)

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.purge(now)
	limit := s.MaxEntries
	if limit <= 0 {
		limit = DefaultNonceMaxEntries
	}
	if len(s.entries) >= limit {
		return "", ErrNonceStoreFull
	}
	if s.entries == nil {
		s.entries = make(map[string]nonceEntry)
	}
	if _, dup := s.entries[nonce]; dup { // 2^-256; only a broken Rand gets here
		return "", ErrNonceStoreFull
	}
	s.entries[nonce] = nonceEntry{issuedAt: now}
	s.order = append(s.order, orderedNonce{nonce, now})
	return nonce, nil
}

// Consume marks nonce as used and returns when it was issued.
func (s *MemoryNonceStore) Consume(ctx context.Context, nonce string) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.purge(now)
	e, ok := s.entries[nonce]
	switch {
	case !ok:
		return time.Time{}, ErrNonceUnknown
	case e.used:
		return time.Time{}, ErrNonceReplayed
	}
	e.used = true
	s.entries[nonce] = e
	if now.Sub(e.issuedAt) > s.ttl() {
		return time.Time{}, ErrNonceExpired
	}
	return e.issuedAt, nil
}

// Len returns the number of remembered nonces (issued, consumed or expired
// but not yet purged).
func (s *MemoryNonceStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}
