// Package memreader is an in-process card.Transport: readers that exist
// only in memory, holding any value that can Transmit APDUs (the virtual
// CPS3 card, a recorder, a script). Tests and demos use it to run the card
// engine fast and under -race, and to move cards in and out (Insert,
// Remove), add and remove readers, or stop the "service", exactly where
// they want — including in the middle of an operation via BeforeTransmit.
package memreader

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/cpsagent/cpsagent/internal/card"
)

// Card is what a reader can hold. *virtual.Card satisfies it. A card that
// also has a PowerOff method loses power when it leaves the reader.
type Card interface {
	Transmit(cmd []byte) ([]byte, error)
	ATR() []byte
	Reset()
}

func powerOff(c Card) {
	if p, ok := c.(interface{ PowerOff() }); ok {
		p.PowerOff()
	}
}

// Transport implements card.Transport in memory.
type Transport struct {
	// BeforeTransmit, when set, runs before each APDU reaches a card,
	// outside the transport's lock: a test may call Remove from it to pull
	// the card at an exact point of an operation (that APDU then fails with
	// card.ErrCardRemoved).
	BeforeTransmit func(reader string, cmd []byte)

	mu        sync.Mutex
	readers   map[string]*reader
	down      bool
	nextIns   uint64
	pending   []card.TransportEvent
	notify    chan struct{}
	watching  bool
	transmits uint64
}

type reader struct {
	name      string
	card      Card
	insertion uint64 // 0 when empty
	lock      chan struct{}
}

// New returns a transport with the named (empty) readers.
func New(readers ...string) *Transport {
	t := &Transport{readers: map[string]*reader{}, notify: make(chan struct{}, 1)}
	for _, r := range readers {
		t.readers[r] = &reader{name: r, lock: make(chan struct{}, 1)}
	}
	return t
}

var _ card.Transport = (*Transport)(nil)

func (t *Transport) queueLocked(ev card.TransportEvent) {
	if !t.watching {
		return
	}
	t.pending = append(t.pending, ev)
	select {
	case t.notify <- struct{}{}:
	default:
	}
}

// AddReader plugs a reader in.
func (t *Transport) AddReader(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.readers[name]; ok {
		return
	}
	t.readers[name] = &reader{name: name, lock: make(chan struct{}, 1)}
	if !t.down {
		t.queueLocked(card.TransportEvent{Type: card.EventReaderAdded, Reader: name})
	}
}

// RemoveReader unplugs a reader (and the card in it).
func (t *Transport) RemoveReader(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.readers[name]
	if r == nil {
		return
	}
	if r.insertion != 0 {
		powerOff(r.card)
		if !t.down {
			t.queueLocked(card.TransportEvent{Type: card.EventCardRemoved, Reader: name})
		}
	}
	r.card, r.insertion = nil, 0
	delete(t.readers, name)
	if !t.down {
		t.queueLocked(card.TransportEvent{Type: card.EventReaderRemoved, Reader: name})
	}
}

// Insert puts c into reader (a card already there is removed first). The
// card is reset, as a real insertion powers it up.
func (t *Transport) Insert(readerName string, c Card) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.readers[readerName]
	if r == nil {
		return fmt.Errorf("%w: %q", card.ErrNoReader, readerName)
	}
	if r.insertion != 0 {
		powerOff(r.card)
		r.card, r.insertion = nil, 0
		if !t.down {
			t.queueLocked(card.TransportEvent{Type: card.EventCardRemoved, Reader: readerName})
		}
	}
	c.Reset()
	t.nextIns++
	r.card, r.insertion = c, t.nextIns
	if !t.down {
		t.queueLocked(card.TransportEvent{Type: card.EventCardInserted, Reader: readerName, ATR: c.ATR()})
	}
	return nil
}

// Remove pulls the card out of reader; an operation in progress fails with
// card.ErrCardRemoved at its next APDU.
func (t *Transport) Remove(readerName string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.readers[readerName]
	if r == nil || r.insertion == 0 {
		return
	}
	powerOff(r.card)
	r.card, r.insertion = nil, 0
	if !t.down {
		t.queueLocked(card.TransportEvent{Type: card.EventCardRemoved, Reader: readerName})
	}
}

// SetServiceDown simulates the smart-card service stopping (true) and
// coming back (false): while down every call fails with
// card.ErrPCSCUnavailable and Watch reports the loss, then the state again.
func (t *Transport) SetServiceDown(down bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.down == down {
		return
	}
	t.down = down
	names := t.namesLocked()
	if down {
		for _, n := range names {
			if t.readers[n].insertion != 0 {
				t.queueLocked(card.TransportEvent{Type: card.EventCardRemoved, Reader: n})
			}
			t.queueLocked(card.TransportEvent{Type: card.EventReaderRemoved, Reader: n})
		}
		t.queueLocked(card.TransportEvent{Type: card.EventServiceLost})
		return
	}
	t.queueLocked(card.TransportEvent{Type: card.EventServiceRestored})
	for _, ev := range t.stateLocked() {
		t.queueLocked(ev)
	}
}

// Transmits counts the APDUs that reached a card.
func (t *Transport) Transmits() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.transmits
}

func (t *Transport) namesLocked() []string {
	names := make([]string, 0, len(t.readers))
	for n := range t.readers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (t *Transport) stateLocked() []card.TransportEvent {
	var evs []card.TransportEvent
	for _, n := range t.namesLocked() {
		r := t.readers[n]
		evs = append(evs, card.TransportEvent{Type: card.EventReaderAdded, Reader: n})
		if r.insertion != 0 {
			evs = append(evs, card.TransportEvent{Type: card.EventCardInserted, Reader: n, ATR: r.card.ATR()})
		}
	}
	return evs
}

// Readers implements card.Transport.
func (t *Transport) Readers(ctx context.Context) ([]card.ReaderState, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.down {
		return nil, card.ErrPCSCUnavailable
	}
	out := []card.ReaderState{}
	for _, n := range t.namesLocked() {
		r := t.readers[n]
		st := card.ReaderState{Name: n, CardPresent: r.insertion != 0}
		if st.CardPresent {
			st.ATR = r.card.ATR()
		}
		out = append(out, st)
	}
	return out, nil
}

// Watch implements card.Transport. Only one Watch may run at a time.
func (t *Transport) Watch(ctx context.Context, emit func(card.TransportEvent)) error {
	t.mu.Lock()
	if t.watching {
		t.mu.Unlock()
		return fmt.Errorf("memreader: already watched")
	}
	t.watching = true
	var initial []card.TransportEvent
	if t.down {
		initial = []card.TransportEvent{{Type: card.EventServiceLost}}
	} else {
		initial = append([]card.TransportEvent{{Type: card.EventServiceRestored}}, t.stateLocked()...)
	}
	t.pending = nil
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.watching, t.pending = false, nil
		t.mu.Unlock()
	}()
	for _, ev := range initial {
		emit(ev)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.notify:
		}
		t.mu.Lock()
		evs := t.pending
		t.pending = nil
		t.mu.Unlock()
		for _, ev := range evs {
			emit(ev)
		}
	}
}

// Begin implements card.Transport: it waits for the reader's lock (a
// transaction), like SCardBeginTransaction.
func (t *Transport) Begin(ctx context.Context, readerName string) (card.Session, error) {
	t.mu.Lock()
	if t.down {
		t.mu.Unlock()
		return nil, card.ErrPCSCUnavailable
	}
	r := t.readers[readerName]
	t.mu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("%w: %q", card.ErrNoReader, readerName)
	}
	select {
	case r.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.readers[readerName] != r {
		<-r.lock
		return nil, fmt.Errorf("%w: %q", card.ErrNoReader, readerName)
	}
	if r.insertion == 0 {
		<-r.lock
		return nil, fmt.Errorf("%w: %q", card.ErrNoCard, readerName)
	}
	return &session{t: t, r: r, card: r.card, insertion: r.insertion, atr: r.card.ATR()}, nil
}

type session struct {
	t         *Transport
	r         *reader
	card      Card
	insertion uint64
	atr       []byte
	ended     bool
}

func (s *session) present() error {
	if s.t.down {
		return card.ErrPCSCUnavailable
	}
	if s.r.insertion != s.insertion {
		return card.ErrCardRemoved
	}
	return nil
}

func (s *session) Transmit(cmd []byte) ([]byte, error) {
	if hook := s.t.BeforeTransmit; hook != nil {
		hook(s.r.name, cmd)
	}
	s.t.mu.Lock()
	if err := s.present(); err != nil {
		s.t.mu.Unlock()
		return nil, err
	}
	s.t.transmits++
	s.t.mu.Unlock()
	return s.card.Transmit(cmd)
}

func (s *session) ATR() []byte { return append([]byte(nil), s.atr...) }

func (s *session) Insertion() uint64 { return s.insertion }

func (s *session) End(reset bool) error {
	if s.ended {
		return nil
	}
	s.ended = true
	defer func() { <-s.r.lock }()
	s.t.mu.Lock()
	err := s.present()
	s.t.mu.Unlock()
	if err != nil {
		return err
	}
	if reset {
		s.card.Reset()
	}
	return nil
}
