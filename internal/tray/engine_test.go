package tray

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/pkg/cpsid"
)

// fakeEngine is a tray.Engine with one reader holding one card; it counts
// the card reads the tray asks for.
type fakeEngine struct {
	mu        sync.Mutex
	events    chan card.Event
	cardReads int
	pinReads  int
	pin       card.PINStatus
}

func (f *fakeEngine) Status() card.Snapshot {
	return card.Snapshot{Monitoring: true, ServiceUp: true, Readers: []card.Reader{{Name: "R", CardPresent: true,
		Card: &card.CardSummary{Serial: "2501234567", Supported: true, Generation: "CPS3"}}}}
}

func (f *fakeEngine) Subscribe() (<-chan card.Event, func()) { return f.events, func() {} }

func (f *fakeEngine) Card(context.Context, string) (*card.CardData, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cardReads++
	return &card.CardData{Serial: "2501234567", Identity: &cpsid.Identity{GivenName: "Anne", FamilyName: "Martin"}}, nil
}

func (f *fakeEngine) PINStatus(context.Context, string) (card.PINStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pinReads++
	return f.pin, nil
}

func (f *fakeEngine) reads() (cardReads, pinReads int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cardReads, f.pinReads
}

// TestEngineSourceReadsOnceThenFollowsOperations: the tray reads a card's
// holder and counters once; after that an operation that tells its PIN
// counter (card.Event.PIN) costs the card nothing, and only one that does
// not (the card left mid-operation) makes the tray ask again.
func TestEngineSourceReadsOnceThenFollowsOperations(t *testing.T) {
	eng := &fakeEngine{events: make(chan card.Event, 4), pin: card.PINStatus{TriesLeft: 3, MaxTries: 3, PUKTriesLeft: 10}}
	src := EngineSource(eng)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 8)
	go src.Watch(ctx, func() { changed <- struct{}{} })
	state := func() ReaderState {
		t.Helper()
		cs := src.CardState(ctx)
		if len(cs.Readers) != 1 {
			t.Fatalf("readers %+v", cs.Readers)
		}
		return cs.Readers[0]
	}
	event := func(ev card.Event) {
		t.Helper()
		eng.events <- ev
		select {
		case <-changed:
		case <-time.After(5 * time.Second):
			t.Fatal("Watch did not report the event")
		}
	}
	rs := state()
	if rs.Holder != "Anne Martin" || rs.TriesLeft != 3 {
		t.Fatalf("first state %+v", rs)
	}
	state()
	if c, p := eng.reads(); c != 1 || p != 1 {
		t.Fatalf("after two refreshes: %d identity and %d PIN reads, want 1 and 1", c, p)
	}

	event(card.Event{Type: card.EventOperationStarted, Reader: "R", Operation: "sign"})
	event(card.Event{Type: card.EventOperationEnded, Reader: "R", Serial: "2501234567", Operation: "sign",
		PIN: &card.PINCounter{TriesLeft: 2, MaxTries: 3}})
	if rs := state(); rs.TriesLeft != 2 || rs.PINBlocked {
		t.Fatalf("after a wrong PIN: %+v", rs)
	}
	event(card.Event{Type: card.EventOperationEnded, Reader: "R", Serial: "2501234567", Operation: "sign",
		PIN: &card.PINCounter{TriesLeft: 0, MaxTries: 3, Blocked: true}})
	if rs := state(); !rs.PINBlocked {
		t.Fatalf("after the third wrong PIN: %+v", rs)
	}
	if c, p := eng.reads(); c != 1 || p != 1 {
		t.Fatalf("operations that told their counter made the tray read the card: %d identity, %d PIN reads", c, p)
	}

	eng.pin = card.PINStatus{TriesLeft: 3, MaxTries: 3, PUKTriesLeft: 10}
	event(card.Event{Type: card.EventOperationEnded, Reader: "R", Serial: "2501234567", Operation: "sign"})
	if rs := state(); rs.TriesLeft != 3 || rs.PINBlocked {
		t.Fatalf("after an operation with an unknown counter: %+v", rs)
	}
	if _, p := eng.reads(); p != 2 {
		t.Fatalf("unknown counter: %d PIN reads, want 2", p)
	}
}
