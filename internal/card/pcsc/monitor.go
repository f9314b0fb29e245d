package pcsc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ebfe/scard"
	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/ctxsleep"
)

// pnpReader is pcsc-lite's pseudo-reader whose state changes when a reader
// is plugged or unplugged.
const pnpReader = `\\?PnP?\Notification`

// shared is process-wide: the pinned scard writes a package-global map in
// every GetStatusChange call without a lock, so all Transports of the
// process share one claim on GetStatusChange. At most one Watch runs per
// process; every Transport's Readers and removal checks use its state
// (pcscd's state is global anyway). Readers without a running Watch makes
// a one-shot scan under the same claim.
var shared struct {
	mu      sync.Mutex
	mon     *monitorState // non-nil while a Watch runs
	gscBusy bool
	gscFree chan struct{}
}

// monitorState is what Watch publishes for Readers and for Transmit's
// removal check. Guarded by shared.mu.
type monitorState struct {
	ready     chan struct{} // closed after the first scan (or when Watch ends)
	scanned   bool
	serviceUp bool
	readers   map[string]card.ReaderState
	gone      map[string]chan struct{} // closed when the card in the reader leaves
	sctx      *scard.Context           // the context GetStatusChange waits on
}

func (t *Transport) releaseGSC() {
	shared.mu.Lock()
	shared.gscBusy = false
	close(shared.gscFree)
	shared.mu.Unlock()
}

// Readers implements card.Transport. While Watch runs it answers from the
// monitor's state; otherwise it makes one non-blocking scan.
func (t *Transport) Readers(ctx context.Context) ([]card.ReaderState, error) {
	for {
		shared.mu.Lock()
		if m := shared.mon; m != nil {
			ready := m.ready
			shared.mu.Unlock()
			select {
			case <-ready:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			shared.mu.Lock()
			if m.scanned {
				defer shared.mu.Unlock()
				if !m.serviceUp {
					return nil, card.ErrPCSCUnavailable
				}
				return snapshot(m.readers), nil
			}
			shared.mu.Unlock()
			continue // Watch ended before its first scan
		}
		if !shared.gscBusy {
			shared.gscBusy = true
			shared.gscFree = make(chan struct{})
			shared.mu.Unlock()
			defer t.releaseGSC()
			return t.scanOnce()
		}
		free := shared.gscFree
		shared.mu.Unlock()
		select {
		case <-free:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func snapshot(m map[string]card.ReaderState) []card.ReaderState {
	out := make([]card.ReaderState, 0, len(m))
	for _, r := range m {
		r.ATR = append([]byte(nil), r.ATR...)
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// scanOnce lists readers and their cards with a zero-timeout
// GetStatusChange (caller holds the GetStatusChange claim).
func (t *Transport) scanOnce() ([]card.ReaderState, error) {
	sctx, err := scard.EstablishContext()
	if err != nil {
		return nil, mapError(err, "")
	}
	defer func() { _ = sctx.Release() }()
	names, err := sctx.ListReaders()
	if errors.Is(err, scard.ErrNoReadersAvailable) {
		return []card.ReaderState{}, nil
	}
	if err != nil {
		return nil, mapError(err, "")
	}
	states := make([]scard.ReaderState, len(names))
	for i, n := range names {
		states[i] = scard.ReaderState{Reader: n, CurrentState: scard.StateUnaware}
	}
	if err := sctx.GetStatusChange(states, 0); err != nil && !errors.Is(err, scard.ErrTimeout) {
		return nil, mapError(err, "")
	}
	out := make([]card.ReaderState, 0, len(names))
	for _, s := range states {
		present := s.EventState&scard.StatePresent != 0
		r := card.ReaderState{Name: s.Reader, CardPresent: present}
		if present {
			r.ATR = append([]byte(nil), s.Atr...)
		}
		out = append(out, r)
	}
	return out, nil
}

// Refresh makes the monitor list the readers again now (it cancels its
// GetStatusChange). Reader hot-plug is already seen through the PnP
// pseudo-reader; this is for platforms or drivers that do not signal it.
func (t *Transport) Refresh() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.mon != nil && shared.mon.sctx != nil {
		_ = shared.mon.sctx.Cancel()
	}
}

// Watch implements card.Transport (one Watch per process, see shared):
// exactly one goroutine (this one) calls GetStatusChange, with an infinite
// timeout, on the readers plus the
// \\?PnP?\Notification pseudo-reader. It wakes up only on a change, on
// Refresh, or when ctx ends (Context.Cancel from another goroutine). When
// pcscd is unreachable it retries SCardEstablishContext after RetryMin,
// doubling up to RetryMax (250 ms → 2 s by default).
func (t *Transport) Watch(ctx context.Context, emit func(card.TransportEvent)) error {
	m := &monitorState{ready: make(chan struct{}), readers: map[string]card.ReaderState{}, gone: map[string]chan struct{}{}}
	// Claim GetStatusChange and publish the monitor in one step, so that
	// Readers never waits behind the monitor (only behind a one-shot scan).
	for {
		shared.mu.Lock()
		if shared.mon != nil {
			shared.mu.Unlock()
			return fmt.Errorf("pcsc: Watch is already running in this process")
		}
		if !shared.gscBusy {
			shared.gscBusy = true
			shared.gscFree = make(chan struct{})
			shared.mon = m
			shared.mu.Unlock()
			break
		}
		free := shared.gscFree
		shared.mu.Unlock()
		select {
		case <-free:
		case <-ctx.Done():
			return nil
		}
	}
	defer t.releaseGSC()

	stopCancel := make(chan struct{})
	cancelled := make(chan struct{})
	go func() {
		defer close(cancelled)
		select {
		case <-ctx.Done():
		case <-stopCancel:
			return
		}
		// SCardCancel only interrupts a GetStatusChange in progress; repeat
		// it until the monitor has left, in case ctx ended between two calls.
		for {
			shared.mu.Lock()
			if m.sctx != nil {
				_ = m.sctx.Cancel()
			}
			shared.mu.Unlock()
			select {
			case <-stopCancel:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	w := &watcher{t: t, m: m, emit: emit, known: map[string]*readerWatch{}}
	defer func() {
		close(stopCancel)
		<-cancelled
		shared.mu.Lock()
		shared.mon = nil
		for _, g := range m.gone {
			closeOnce(g)
		}
		if !m.scanned {
			close(m.ready)
		}
		shared.mu.Unlock()
	}()

	backoff := t.opts.RetryMin
	for ctx.Err() == nil {
		sctx, err := scard.EstablishContext()
		if err != nil {
			w.serviceDown(err)
			if !ctxsleep.Sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, t.opts.RetryMax)
			continue
		}
		shared.mu.Lock()
		m.sctx = sctx
		shared.mu.Unlock()
		err = w.loop(ctx, sctx)
		shared.mu.Lock()
		m.sctx = nil
		shared.mu.Unlock()
		_ = sctx.Release()
		if ctx.Err() != nil {
			return nil
		}
		if isServiceError(err) {
			w.serviceDown(err)
			backoff = t.opts.RetryMin
		} else {
			t.log.Warn("pcsc: monitor error, restarting", zap.Error(err))
		}
		if !ctxsleep.Sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, t.opts.RetryMax)
	}
	return nil
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// readerWatch is the monitor's memory of one reader.
type readerWatch struct {
	current scard.StateFlag // passed back as CurrentState
	seen    bool
	present bool
	atr     []byte
}

type watcher struct {
	t       *Transport
	m       *monitorState
	emit    func(card.TransportEvent)
	known   map[string]*readerWatch
	service int // 0 unknown, 1 up, -1 down
}

// serviceDown reports everything as gone, then the service loss (once).
func (w *watcher) serviceDown(err error) {
	if w.service == -1 {
		return
	}
	names := make([]string, 0, len(w.known))
	for n := range w.known {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w.removeReader(n)
	}
	w.service = -1
	w.t.log.Info("pcsc: service unavailable", zap.Error(err))
	shared.mu.Lock()
	w.m.serviceUp = false
	w.markScannedLocked()
	shared.mu.Unlock()
	w.emit(card.TransportEvent{Type: card.EventServiceLost})
}

func (w *watcher) markScannedLocked() {
	if !w.m.scanned {
		w.m.scanned = true
		close(w.m.ready)
	}
}

func (w *watcher) removeReader(n string) {
	rw := w.known[n]
	if rw != nil && rw.present {
		w.cardRemoved(n)
	}
	delete(w.known, n)
	shared.mu.Lock()
	delete(w.m.readers, n)
	if g := w.m.gone[n]; g != nil {
		closeOnce(g)
		delete(w.m.gone, n)
	}
	shared.mu.Unlock()
	w.emit(card.TransportEvent{Type: card.EventReaderRemoved, Reader: n})
}

func (w *watcher) cardRemoved(n string) {
	if rw := w.known[n]; rw != nil {
		rw.present, rw.atr = false, nil
	}
	shared.mu.Lock()
	w.m.readers[n] = card.ReaderState{Name: n}
	if g := w.m.gone[n]; g != nil {
		closeOnce(g)
	}
	shared.mu.Unlock()
	w.emit(card.TransportEvent{Type: card.EventCardRemoved, Reader: n})
}

func (w *watcher) cardInserted(n string, atr []byte) {
	rw := w.known[n]
	rw.present, rw.atr = true, append([]byte(nil), atr...)
	shared.mu.Lock()
	w.m.readers[n] = card.ReaderState{Name: n, CardPresent: true, ATR: rw.atr}
	if g := w.m.gone[n]; g != nil {
		closeOnce(g)
	}
	w.m.gone[n] = make(chan struct{})
	shared.mu.Unlock()
	w.emit(card.TransportEvent{Type: card.EventCardInserted, Reader: n, ATR: rw.atr})
}

// loop runs GetStatusChange until an error (nil when ctx ends).
func (w *watcher) loop(ctx context.Context, sctx *scard.Context) error {
	if w.service != 1 {
		w.service = 1
		w.t.log.Info("pcsc: service available")
		shared.mu.Lock()
		w.m.serviceUp = true
		shared.mu.Unlock()
		w.emit(card.TransportEvent{Type: card.EventServiceRestored})
	}
	pnp := scard.StateUnaware
	for {
		if ctx.Err() != nil {
			return nil
		}
		names, err := sctx.ListReaders()
		if errors.Is(err, scard.ErrNoReadersAvailable) {
			names, err = nil, nil
		}
		if err != nil {
			return err
		}
		w.reconcile(names)
		states := make([]scard.ReaderState, 0, len(names)+1)
		states = append(states, scard.ReaderState{Reader: pnpReader, CurrentState: pnp})
		for _, n := range names {
			states = append(states, scard.ReaderState{Reader: n, CurrentState: w.known[n].current})
		}
		err = sctx.GetStatusChange(states, -1)
		switch {
		case err == nil:
		case errors.Is(err, scard.ErrCancelled), errors.Is(err, scard.ErrTimeout):
			continue // shutdown (checked above) or Refresh
		case errors.Is(err, scard.ErrUnknownReader), errors.Is(err, scard.ErrReaderUnavailable):
			continue // a reader left between ListReaders and now
		default:
			return err
		}
		pnp = states[0].EventState &^ scard.StateChanged
		for _, st := range states[1:] {
			w.update(st)
		}
		shared.mu.Lock()
		w.markScannedLocked()
		shared.mu.Unlock()
	}
}

// reconcile reports readers that appeared or disappeared.
func (w *watcher) reconcile(names []string) {
	in := map[string]bool{}
	for _, n := range names {
		in[n] = true
	}
	var gone []string
	for n := range w.known {
		if !in[n] {
			gone = append(gone, n)
		}
	}
	sort.Strings(gone)
	for _, n := range gone {
		w.removeReader(n)
	}
	for _, n := range names {
		if w.known[n] == nil {
			w.known[n] = &readerWatch{current: scard.StateUnaware}
			shared.mu.Lock()
			w.m.readers[n] = card.ReaderState{Name: n}
			shared.mu.Unlock()
			w.emit(card.TransportEvent{Type: card.EventReaderAdded, Reader: n})
		}
	}
}

// update compares a reader's new state with the last one seen. A card
// present in both with another ATR was swapped between two wake-ups.
func (w *watcher) update(st scard.ReaderState) {
	rw := w.known[st.Reader]
	if rw == nil {
		return
	}
	ev, old := st.EventState, rw.current
	w.t.log.Debug("pcsc: reader state", zap.String("reader", st.Reader), zap.Uint32("from", uint32(rw.current)),
		zap.Uint32("to", uint32(ev)))
	rw.current = ev &^ scard.StateChanged
	if ev&(scard.StateUnknown|scard.StateIgnore|scard.StateUnavailable) != 0 {
		return // the reader is leaving; the next ListReaders reports it
	}
	present := ev&scard.StatePresent != 0
	switch {
	case !rw.seen:
		rw.seen = true
		if present {
			w.cardInserted(st.Reader, st.Atr)
		}
	case rw.present && !present:
		w.cardRemoved(st.Reader)
	case !rw.present && present:
		w.cardInserted(st.Reader, st.Atr)
	case rw.present && present && (!bytes.Equal(rw.atr, st.Atr) || eventCount(ev) != eventCount(old)):
		// pcsc-lite counts card insertions and removals in the upper 16
		// bits (a reset does not change it): the card was swapped between
		// two wake-ups.
		w.cardRemoved(st.Reader)
		w.cardInserted(st.Reader, st.Atr)
	}
}

// eventCount is pcsc-lite's per-reader card event counter.
func eventCount(f scard.StateFlag) uint32 { return uint32(f) >> 16 }

// confirmRemoval tells whether the card behind h left the reader, after a
// Transmit failed with a communication error: first from the handle, then
// by waiting (at most RemovalGrace) for the monitor to see the removal.
func (t *Transport) confirmRemoval(reader string, h *scard.Card) bool {
	st, err := h.Status()
	if errors.Is(err, scard.ErrRemovedCard) || errors.Is(err, scard.ErrNoSmartcard) {
		return true
	}
	if err == nil && st.State&scard.Absent != 0 {
		return true
	}
	shared.mu.Lock()
	var gone chan struct{}
	if shared.mon != nil {
		gone = shared.mon.gone[reader]
	}
	shared.mu.Unlock()
	if gone == nil {
		return false
	}
	tm := time.NewTimer(t.opts.RemovalGrace)
	defer tm.Stop()
	select {
	case <-gone:
		return true
	case <-tm.C:
		return false
	}
}
