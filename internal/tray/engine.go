package tray

import (
	"context"
	"sync"
	"time"

	"github.com/cpsagent/cpsagent/internal/card"
)

// Engine is the part of the card engine the tray reads; *card.Engine
// implements it.
type Engine interface {
	Status() card.Snapshot
	Subscribe() (<-chan card.Event, func())
	Card(ctx context.Context, reader string) (*card.CardData, error)
	PINStatus(ctx context.Context, reader string) (card.PINStatus, error)
}

// EngineSource adapts the card engine to a CardSource. It remembers, per
// card serial, the holder's name and the PIN counters: read once per card,
// then kept up to date from the operations' own results (Event.PIN), so an
// operation costs the card no APDU for the tray; it never asks for a PIN.
func EngineSource(e Engine) CardSource {
	return &engineSource{e: e, cards: map[string]*cardInfo{}, busy: map[string]string{}}
}

type engineSource struct {
	e Engine

	mu    sync.Mutex
	busy  map[string]string    // reader → operation in progress
	cards map[string]*cardInfo // serial → what was read
}

type cardInfo struct {
	holder, profession string
	pin                *card.PINStatus
	stale              bool      // re-read the PIN status
	failed             time.Time // last failed PIN status read
}

func (s *engineSource) Watch(ctx context.Context, changed func()) {
	events, cancel := s.e.Subscribe()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			s.mu.Lock()
			switch ev.Type {
			case card.EventOperationStarted:
				s.busy[ev.Reader] = ev.Operation
			case card.EventOperationEnded:
				delete(s.busy, ev.Reader)
				if ci := s.cards[ev.Serial]; ci != nil {
					// The operation tells how it left the PIN counter; ask
					// the card only when it does not know.
					if p := ev.PIN; p != nil && ci.pin != nil {
						st := *ci.pin
						st.TriesLeft, st.MaxTries, st.Blocked = p.TriesLeft, p.MaxTries, p.Blocked
						ci.pin, ci.stale = &st, false
					} else {
						ci.stale = true
					}
				}
			case card.EventCardRemoved, card.EventReaderRemoved:
				delete(s.busy, ev.Reader)
			}
			s.mu.Unlock()
			changed()
		}
	}
}

func (s *engineSource) CardState(ctx context.Context) CardState {
	snap := s.e.Status()
	cs := CardState{ServiceUp: snap.ServiceUp}
	s.mu.Lock()
	for r, op := range s.busy {
		if r != "" {
			cs.Busy, cs.BusyOp = true, op
		}
	}
	s.mu.Unlock()
	for _, r := range snap.Readers {
		rs := ReaderState{Name: r.Name, CardPresent: r.CardPresent, TriesLeft: -1}
		if r.Card != nil {
			rs.Supported, rs.Generation = r.Card.Supported, r.Card.Generation
			if rs.Supported && !cs.Busy {
				s.fill(ctx, &rs, r.Card.Serial)
			}
		}
		cs.Readers = append(cs.Readers, rs)
	}
	return cs
}

// fill adds the holder and PIN counters of the card in rs, reading them at
// most once per card (and the counters again after an operation).
func (s *engineSource) fill(ctx context.Context, rs *ReaderState, serial string) {
	s.mu.Lock()
	ci := s.cards[serial]
	s.mu.Unlock()
	if ci == nil || serial == "" {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cd, err := s.e.Card(cctx, rs.Name)
		cancel()
		if err != nil || cd == nil {
			return
		}
		serial = cd.Serial
		ci = &cardInfo{stale: true}
		if id := cd.Identity; id != nil {
			ci.holder = id.GivenName + " " + id.FamilyName
			if id.Profession != nil {
				ci.profession = id.Profession.Label
			}
		}
		s.mu.Lock()
		if len(s.cards) > 16 {
			clear(s.cards)
		}
		s.cards[serial] = ci
		s.mu.Unlock()
	}
	s.mu.Lock()
	// After a failed read, wait a little: refreshes come in bursts of events.
	needPIN := ci.stale && time.Since(ci.failed) > 2*time.Second
	s.mu.Unlock()
	if needPIN {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := s.e.PINStatus(cctx, rs.Name)
		cancel()
		s.mu.Lock()
		if err == nil {
			ci.pin, ci.stale = &st, false
		} else {
			ci.failed = time.Now()
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rs.Holder, rs.Profession = ci.holder, ci.profession
	if ci.pin != nil {
		rs.PINBlocked, rs.PUKBlocked, rs.TriesLeft = ci.pin.Blocked, ci.pin.PUKBlocked, ci.pin.TriesLeft
	}
}
