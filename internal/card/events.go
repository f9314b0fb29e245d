package card

import (
	"cmp"
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/ctxsleep"
)

// subscriberBuffer is the per-subscriber queue. When it is full the oldest
// event is dropped, so a slow subscriber loses history but always gets the
// latest state, and the monitor never waits.
const subscriberBuffer = 64

type subscriber struct {
	ch      chan Event
	dropped uint64
}

// Subscribe returns a channel of events and a function that ends the
// subscription (it closes the channel; calling it twice is harmless).
func (e *Engine) Subscribe() (<-chan Event, func()) {
	s := &subscriber{ch: make(chan Event, subscriberBuffer)}
	e.subMu.Lock()
	e.subs[s] = struct{}{}
	e.subMu.Unlock()
	return s.ch, func() {
		e.subMu.Lock()
		defer e.subMu.Unlock()
		if _, ok := e.subs[s]; ok {
			delete(e.subs, s)
			close(s.ch)
		}
	}
}

// emit sends ev to every subscriber without blocking.
func (e *Engine) emit(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = e.now()
	}
	e.subMu.Lock()
	defer e.subMu.Unlock()
	for s := range e.subs {
		select {
		case s.ch <- ev:
			continue
		default:
		}
		// Full: drop the oldest, then queue the new one. Only this function
		// sends (under subMu), so the second send cannot block.
		select {
		case <-s.ch:
			s.dropped++
		default:
		}
		select {
		case s.ch <- ev:
		default:
		}
	}
}

// handle applies one transport event (called from the monitor goroutine).
func (e *Engine) handle(tev TransportEvent) {
	now := e.now()
	var out []Event
	var preRead *slot
	var preGen uint64

	if tev.Reader != "" && !e.filter(tev.Reader) {
		return
	}
	e.mu.Lock()
	wasMonitoring := e.monitoring
	e.monitoring = true
	switch tev.Type {
	case EventServiceRestored:
		if !e.serviceUp {
			e.serviceUp = true
			if wasMonitoring {
				out = append(out, Event{Type: EventServiceRestored, Time: now})
			}
		}
	case EventServiceLost:
		if e.serviceUp || !wasMonitoring {
			e.serviceUp = false
			out = append(out, Event{Type: EventServiceLost, Time: now})
		}
	case EventReaderAdded:
		s := e.slotLocked(tev.Reader)
		s.gen++
		s.seen = true
		out = append(out, Event{Type: EventReaderAdded, Reader: tev.Reader, Time: now})
	case EventReaderRemoved:
		if s := e.slots[tev.Reader]; s != nil {
			e.forgetLocked(s)
			delete(e.slots, tev.Reader)
		}
		out = append(out, Event{Type: EventReaderRemoved, Reader: tev.Reader, Time: now})
	case EventCardInserted:
		s := e.slotLocked(tev.Reader)
		s.gen++
		s.seen = true
		s.present = true
		s.atr = append([]byte(nil), tev.ATR...)
		s.ctype = cps.Recognise(tev.ATR)
		out = append(out, Event{Type: EventCardInserted, Reader: tev.Reader, Generation: s.ctype.Generation, Time: now})
		if s.ctype.Supported && !e.noPre {
			preRead, preGen = s, s.gen
		}
	case EventCardRemoved:
		if s := e.slots[tev.Reader]; s != nil {
			serial := s.reported
			if serial == "" {
				serial = s.serial
			}
			s.gen++
			e.forgetLocked(s)
			out = append(out, Event{Type: EventCardRemoved, Reader: tev.Reader, Serial: serial, Generation: s.ctype.Generation, Time: now})
			s.present, s.atr, s.ctype = false, nil, cps.CardType{}
		} else {
			out = append(out, Event{Type: EventCardRemoved, Reader: tev.Reader, Time: now})
		}
	}
	ctx := e.runCtx
	if preRead != nil && ctx != nil {
		e.bg.Add(1)
	} else {
		preRead = nil
	}
	e.mu.Unlock()

	for _, ev := range out {
		e.emit(ev)
	}
	if preRead != nil {
		go func() {
			defer e.bg.Done()
			e.preRead(ctx, preRead.name, preGen)
		}()
	}
}

// forgetLocked drops what the engine knows about the card in s (removal,
// ErrCardRemoved): its serial binding and its cached certificates.
func (e *Engine) forgetLocked(s *slot) {
	if s.serial != "" {
		e.cache.drop(s.serial)
	}
	if s.reported != "" {
		e.cache.drop(s.reported)
	}
	s.leftLocked()
}

// leftLocked records that the card known in s left it (see slot.gone) and
// clears its serial binding.
func (s *slot) leftLocked() {
	if old := cmp.Or(s.reported, s.serial); old != "" {
		s.gone = old
	}
	s.serial, s.insertion, s.reported = "", 0, ""
}

// preReadBackoff spaces the automatic identity read's retries after a
// transport failure: a card just inserted may not answer its first APDUs
// (contacts settling; over vpcd, the card's connection racing pcscd's
// power-up, or pcscd just restarted), and without a retry the card would stay without identity
// (no identity-available) until someone reads it.
var preReadBackoff = []time.Duration{200 * time.Millisecond, 600 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second}

// preRead reads the identity of a card just inserted and announces it.
// While a PIN operation holds the reader (a card put in while a PIN dialog
// is open), it waits for the operation to end, then reads: otherwise the
// card would stay without identity (no identity-available, no serial in
// the status) until someone asks for it. After a transport failure or a
// card that did not answer properly, it tries again while the same card
// stays inserted.
func (e *Engine) preRead(ctx context.Context, reader string, gen uint64) {
	for attempt := 0; ; {
		err := e.preReadOnce(ctx, reader, gen)
		switch {
		case err == nil, ctx.Err() != nil:
			return
		case errors.Is(err, ErrBusy):
			e.waitIdle(ctx, reader)
			continue
		case attempt == len(preReadBackoff):
			return
		case errors.Is(err, apdu.ErrTransport), errors.Is(err, ErrCardReset), errors.Is(err, ErrCardFailure):
		default:
			return // no card any more, not a CPS card…: nothing a retry changes
		}
		if !ctxsleep.Sleep(ctx, preReadBackoff[attempt]) {
			return
		}
		attempt++
	}
}

// preReadOnce is one automatic identity read; it returns the read's error
// (nil also when there is nothing to do), ErrBusy while a PIN operation
// holds the reader.
func (e *Engine) preReadOnce(ctx context.Context, reader string, gen uint64) error {
	release, err := e.acquire(ctx, reader, true)
	if err != nil {
		return err
	}
	defer release()
	e.mu.Lock()
	s := e.slots[reader]
	stale := s == nil || s.gen != gen
	e.mu.Unlock()
	if stale {
		return nil
	}
	d, n, err := e.readIdentity(ctx, reader, "")
	if err != nil {
		e.log.Info("identity read after insertion failed", zap.String("reader", reader), zap.Error(err))
		return err
	}
	e.mu.Lock()
	s = e.slots[reader]
	stale = s == nil || s.gen != gen
	e.mu.Unlock()
	if stale {
		return nil
	}
	e.log.Debug("identity read after insertion", zap.String("reader", reader), zap.String("serial", d.Serial),
		zap.Int("apdus", n), zap.Bool("fromCache", d.FromCache))
	e.emit(Event{Type: EventIdentityReady, Reader: reader, Serial: d.Serial, Generation: d.Generation})
	return nil
}
