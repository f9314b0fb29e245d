package card

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
)

// Options configures an Engine.
type Options struct {
	// Quirks are the unconfirmed card facts; the zero value means
	// cps.DefaultQuirks().
	Quirks cps.Quirks
	// Logger receives non-secret fields only (reader, serial, operation,
	// APDU counts, durations, errors). Nil means no logging.
	Logger *zap.Logger
	// Trace, when set, receives one line per command ("> …") and per
	// response ("< …"). PIN data and document bytes (PSO HASH,
	// INTERNAL AUTHENTICATE data) are masked; response data is shown as a
	// byte count only.
	Trace func(reader string, line string)
	// Now stamps events and reads; nil means time.Now.
	Now func() time.Time
	// ReaderFilter, when set, hides the readers for which it returns false:
	// no events, no automatic read, ErrNoReader for operations (e.g. a
	// configured reader list, or tests sharing pcscd with other cards).
	ReaderFilter func(name string) bool
	// NoPreRead disables the automatic identity read after insertion.
	NoPreRead bool
}

// Engine is the card service: one per process, shared by the API and the
// tray. All methods are safe for concurrent use.
type Engine struct {
	t      Transport
	quirks cps.Quirks
	log    *zap.Logger
	trace  func(reader, line string)
	now    func() time.Time
	filter func(string) bool
	noPre  bool

	mu         sync.Mutex
	running    bool
	monitoring bool // Watch delivered at least one event
	serviceUp  bool
	slots      map[string]*slot
	cache      *certCache
	runCtx     context.Context
	bg         sync.WaitGroup // pre-reads

	subMu sync.Mutex
	subs  map[*subscriber]struct{}
}

// slot is the engine's state for one reader.
type slot struct {
	name    string
	present bool
	atr     []byte
	ctype   cps.CardType
	// serial is the serial number of the card at insertion (a transport
	// Session.Insertion value); 0 = unknown.
	serial    string
	insertion uint64
	// reported is the serial whose identity the engine last handed out for
	// this reader (Card or identity-available); cleared when the card goes.
	reported string
	// gone is the serial of the last card the engine saw leave this reader
	// (or found replaced in it): a request addressed to that serial while
	// the reader holds another card is about a swapped card.
	gone string
	// gen changes with every insertion/removal seen by the monitor.
	gen  uint64
	op   *operation
	seen bool // reported by the monitor
}

type operation struct {
	internal bool // a short read without a PIN (automatic after insertion, or Card): others wait for it
	done     chan struct{}
}

// New returns an engine over t. Call Run to follow readers and cards;
// without Run, operations still work on named readers.
func New(t Transport, opts Options) *Engine {
	e := &Engine{
		t:      t,
		quirks: opts.Quirks,
		log:    opts.Logger,
		trace:  opts.Trace,
		now:    opts.Now,
		filter: opts.ReaderFilter,
		noPre:  opts.NoPreRead,
		slots:  map[string]*slot{},
		cache:  newCertCache(16),
		subs:   map[*subscriber]struct{}{},
	}
	if e.quirks == (cps.Quirks{}) {
		e.quirks = cps.DefaultQuirks()
	}
	if e.log == nil {
		e.log = zap.NewNop()
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.filter == nil {
		e.filter = func(string) bool { return true }
	}
	return e
}

// Run follows readers and cards through the transport until ctx ends
// (monitor events, automatic identity read after insertion). It returns
// nil when ctx ends, ErrAlreadyRunning if Run is already active.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return ErrAlreadyRunning
	}
	e.running = true
	e.runCtx = ctx
	e.mu.Unlock()
	err := e.t.Watch(ctx, e.handle)
	// No new background read may start once runCtx is nil; then wait for
	// the running ones (they stop with ctx).
	e.mu.Lock()
	e.runCtx = nil
	e.mu.Unlock()
	e.bg.Wait()
	e.mu.Lock()
	e.running, e.monitoring = false, false
	for _, s := range e.slots {
		// Without the monitor nothing says what is in the readers any more.
		s.seen, s.present, s.reported = false, false, ""
	}
	e.mu.Unlock()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Status returns the cached state. It never touches a card and never waits
// for an operation.
func (e *Engine) Status() Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Snapshot{Monitoring: e.monitoring, ServiceUp: e.serviceUp}
	if e.monitoring {
		s.Readers = e.readersLocked()
	}
	return s
}

func (e *Engine) readersLocked() []Reader {
	out := make([]Reader, 0, len(e.slots))
	for _, s := range e.slots {
		if !s.seen {
			continue // created by an operation, never reported by the monitor
		}
		r := Reader{Name: s.name, CardPresent: s.present, Busy: s.op != nil && !s.op.internal}
		if s.present {
			r.ATR = apdu.Hex(s.atr)
			r.Card = &CardSummary{Generation: s.ctype.Generation, Supported: s.ctype.Supported, Serial: s.reported}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Readers lists the readers: from the monitor's state while Run is active,
// otherwise by asking the transport.
func (e *Engine) Readers(ctx context.Context) ([]Reader, error) {
	e.mu.Lock()
	if e.monitoring {
		defer e.mu.Unlock()
		if !e.serviceUp {
			return nil, ErrPCSCUnavailable
		}
		return e.readersLocked(), nil
	}
	e.mu.Unlock()
	states, err := e.t.Readers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Reader, 0, len(states))
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, st := range states {
		if !e.filter(st.Name) {
			continue
		}
		r := Reader{Name: st.Name, CardPresent: st.CardPresent}
		if s := e.slots[st.Name]; s != nil {
			r.Busy = s.op != nil && !s.op.internal
		}
		if st.CardPresent {
			ct := cps.Recognise(st.ATR)
			r.ATR = apdu.Hex(st.ATR)
			r.Card = &CardSummary{Generation: ct.Generation, Supported: ct.Supported}
			if s := e.slots[st.Name]; s != nil {
				r.Card.Serial = s.reported
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// target is what an operation addresses: a reader, and the serial number
// of the card when the caller named the card rather than its reader.
type target struct {
	reader string
	serial string // "" when addressed by reader name
}

// looksLikeSerial reports whether s has the shape of a card serial number
// as the engine reports it (cps.ParseSNICC: upper-case hex, whole bytes; a
// CPx serial has 8 digits): reader names do not (they hold spaces), so one
// parameter can carry either.
func looksLikeSerial(s string) bool {
	if len(s) < 4 || len(s) > 32 || len(s)%2 != 0 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// resolve turns the caller's reader argument into a reader: "" is the only
// reader holding a card; a reader name is that reader; otherwise a card
// serial number (as in Status and the identity-available event) is the
// reader that holds that card. The operation then checks that the card it
// talks to has that serial (ErrCardMismatch otherwise), so a card swapped
// after the lookup is never used. A serial no reader reports, whose card
// the monitor saw leave a reader that holds a card again, is a swap too:
// ErrCardMismatch when that card is known to be another one, else that
// reader, for the operation's own check.
func (e *Engine) resolve(ctx context.Context, reader string) (target, error) {
	e.mu.Lock()
	monitoring := e.monitoring
	if monitoring && !e.serviceUp {
		e.mu.Unlock()
		return target{}, ErrPCSCUnavailable
	}
	var states []ReaderState
	if monitoring {
		for _, s := range e.slots {
			if s.seen {
				states = append(states, ReaderState{Name: s.name, CardPresent: s.present})
			}
		}
	}
	// Readers holding a card with this serial. Without the monitor, the
	// serials the engine read during earlier operations are all it knows.
	var holders []string
	var swapped []target // readers the card left, holding another card (serial if known)
	if reader != "" && looksLikeSerial(reader) {
		for _, s := range e.slots {
			if monitoring && (!s.seen || !s.present) {
				continue
			}
			if s.reported == reader || s.serial == reader {
				holders = append(holders, s.name)
			}
		}
		for _, s := range e.slots {
			if len(holders) == 0 && monitoring && s.seen && s.present && s.gone == reader {
				swapped = append(swapped, target{reader: s.name, serial: cmp.Or(s.reported, s.serial)})
			}
		}
	}
	e.mu.Unlock()

	if reader != "" {
		named := false
		if monitoring {
			for _, s := range states {
				named = named || s.Name == reader
			}
		}
		if named || (!monitoring && len(holders) == 0 && !looksLikeSerial(reader)) {
			// A reader name; without the monitor the transport says whether it exists.
			if !e.filter(reader) {
				return target{}, fmt.Errorf("%w: %q", ErrNoReader, reader)
			}
			return target{reader: reader}, nil
		}
		if !looksLikeSerial(reader) {
			return target{}, fmt.Errorf("%w: %q", ErrNoReader, reader)
		}
		if !monitoring && len(holders) == 0 {
			// A reader may be named like a serial: ask the transport.
			all, err := e.t.Readers(ctx)
			if err != nil {
				return target{}, err
			}
			for _, st := range all {
				if st.Name == reader && e.filter(reader) {
					return target{reader: reader}, nil
				}
			}
		}
		switch len(holders) {
		case 0:
			if len(swapped) > 0 {
				sort.Slice(swapped, func(i, j int) bool { return swapped[i].reader < swapped[j].reader })
				sw := swapped[0]
				if sw.serial == "" {
					// Not read yet: the operation checks the card it finds.
					return target{reader: sw.reader, serial: reader}, nil
				}
				return target{}, fmt.Errorf("%w: card %s left reader %q, which holds card %s now", ErrCardMismatch, reader, sw.reader, sw.serial)
			}
			return target{}, fmt.Errorf("%w: no card with serial number %s", ErrNoCard, reader)
		case 1:
			return target{reader: holders[0], serial: reader}, nil
		}
		sort.Strings(holders)
		return target{}, fmt.Errorf("%w: card %s reported in %q", ErrSeveralCards, reader, holders)
	}

	if !monitoring {
		all, err := e.t.Readers(ctx)
		if err != nil {
			return target{}, err
		}
		for _, st := range all {
			if e.filter(st.Name) {
				states = append(states, st)
			}
		}
	}
	if len(states) == 0 {
		return target{}, ErrNoReader
	}
	var with []string
	for _, s := range states {
		if s.CardPresent {
			with = append(with, s.Name)
		}
	}
	switch len(with) {
	case 0:
		return target{}, ErrNoCard
	case 1:
		return target{reader: with[0]}, nil
	}
	sort.Strings(with)
	return target{}, fmt.Errorf("%w: %q", ErrSeveralCards, with)
}

func (e *Engine) slotLocked(name string) *slot {
	s := e.slots[name]
	if s == nil {
		s = &slot{name: name}
		e.slots[name] = s
	}
	return s
}

// acquire reserves the reader for one operation. Anyone fails at once with
// ErrBusy while a PIN operation runs there (it may wait minutes for the
// holder); everyone waits for a short read without a PIN (internal: the
// automatic identity read, Card) to end. In particular two internal reads
// wait for each other: a component reading the identity as soon as a card
// is inserted (the tray) must neither get ErrBusy nor make the automatic
// read give up, which would lose the identity-available event.
func (e *Engine) acquire(ctx context.Context, name string, internal bool) (func(), error) {
	for {
		e.mu.Lock()
		s := e.slotLocked(name)
		if s.op == nil {
			op := &operation{internal: internal, done: make(chan struct{})}
			s.op = op
			e.mu.Unlock()
			return func() {
				e.mu.Lock()
				if s.op == op {
					s.op = nil
				}
				e.mu.Unlock()
				close(op.done)
			}, nil
		}
		if !s.op.internal {
			e.mu.Unlock()
			return nil, fmt.Errorf("%w on reader %q", ErrBusy, name)
		}
		done := s.op.done
		e.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
