package memreader_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/memreader"
)

// echo answers 90 00 and counts resets and power-offs.
type echo struct{ resets, offs int }

func (e *echo) Transmit([]byte) ([]byte, error) { return []byte{0x90, 0x00}, nil }
func (e *echo) ATR() []byte                     { return []byte{0x3B, 0x00} }
func (e *echo) Reset()                          { e.resets++ }
func (e *echo) PowerOff()                       { e.offs++ }

func TestEventsAndSessions(t *testing.T) {
	tr := memreader.New("R")
	evs := make(chan card.TransportEvent, 32)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Watch(ctx, func(e card.TransportEvent) { evs <- e }) }()
	defer func() { cancel(); <-done }()
	next := func() card.TransportEvent {
		t.Helper()
		select {
		case e := <-evs:
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
		return card.TransportEvent{}
	}
	if e := next(); e.Type != card.EventServiceRestored {
		t.Fatalf("first event %+v", e)
	}
	if e := next(); e.Type != card.EventReaderAdded || e.Reader != "R" {
		t.Fatalf("second event %+v", e)
	}
	if _, err := tr.Begin(ctx, "R"); !errors.Is(err, card.ErrNoCard) {
		t.Fatalf("empty reader: %v", err)
	}
	if _, err := tr.Begin(ctx, "X"); !errors.Is(err, card.ErrNoReader) {
		t.Fatalf("unknown reader: %v", err)
	}
	c := &echo{}
	if err := tr.Insert("R", c); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Type != card.EventCardInserted || !bytes.Equal(e.ATR, c.ATR()) {
		t.Fatalf("insert event %+v", e)
	}
	s, err := tr.Begin(ctx, "R")
	if err != nil {
		t.Fatal(err)
	}
	// The reader is held: a second Begin waits (here until its ctx ends).
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	if _, err := tr.Begin(short, "R"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Begin: %v", err)
	}
	cancelShort()
	if r, err := s.Transmit([]byte{0, 0xA4, 0, 0}); err != nil || !bytes.Equal(r, []byte{0x90, 0}) {
		t.Fatalf("Transmit = % X, %v", r, err)
	}
	ins := s.Insertion()
	if err := s.End(true); err != nil || c.resets != 2 { // Insert resets too
		t.Fatalf("End(reset): %v, %d resets", err, c.resets)
	}
	s, _ = tr.Begin(ctx, "R")
	if s.Insertion() != ins {
		t.Fatal("insertion changed without a removal")
	}
	tr.Remove("R")
	if e := next(); e.Type != card.EventCardRemoved {
		t.Fatalf("remove event %+v", e)
	}
	if _, err := s.Transmit([]byte{0, 0xA4, 0, 0}); !errors.Is(err, card.ErrCardRemoved) {
		t.Fatalf("Transmit after removal: %v", err)
	}
	if err := s.End(true); !errors.Is(err, card.ErrCardRemoved) || c.offs != 1 {
		t.Fatalf("End after removal: %v, %d power-offs", err, c.offs)
	}
	_ = tr.Insert("R", c)
	next()
	s, _ = tr.Begin(ctx, "R")
	if s.Insertion() == ins {
		t.Fatal("a new insertion kept the old number")
	}
	_ = s.End(false)
	tr.SetServiceDown(true)
	for _, want := range []card.EventType{card.EventCardRemoved, card.EventReaderRemoved, card.EventServiceLost} {
		if e := next(); e.Type != want {
			t.Fatalf("event %+v, want %s", e, want)
		}
	}
	if _, err := tr.Readers(ctx); !errors.Is(err, card.ErrPCSCUnavailable) {
		t.Fatalf("Readers while down: %v", err)
	}
	tr.SetServiceDown(false)
	for _, want := range []card.EventType{card.EventServiceRestored, card.EventReaderAdded, card.EventCardInserted} {
		if e := next(); e.Type != want {
			t.Fatalf("event %+v, want %s", e, want)
		}
	}
	tr.AddReader("S")
	if e := next(); e.Type != card.EventReaderAdded || e.Reader != "S" {
		t.Fatalf("event %+v", e)
	}
	tr.RemoveReader("R")
	if e := next(); e.Type != card.EventCardRemoved {
		t.Fatalf("event %+v", e)
	}
	if e := next(); e.Type != card.EventReaderRemoved || e.Reader != "R" {
		t.Fatalf("event %+v", e)
	}
	rs, err := tr.Readers(ctx)
	if err != nil || len(rs) != 1 || rs[0].Name != "S" {
		t.Fatalf("Readers = %+v, %v", rs, err)
	}
}
