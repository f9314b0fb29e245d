// Package pcsc is the card.Transport over PC/SC (pcsc-lite on Linux and
// macOS, WinSCard on Windows). It is the only package that imports
// github.com/ebfe/scard.
//
//   - Connections are SCARD_SHARE_SHARED with T=0|T=1 (a CPS3 contact card
//     offers T=0 only; other CPS software shares the reader), one per reader,
//     each on its own PC/SC context so a reader blocked by another
//     application's transaction never stalls another reader.
//   - Each operation step is one PC/SC transaction (Begin → Session.End).
//     Session.End(true) ends it with SCARD_RESET_CARD: the card is reset,
//     which clears the PIN's verified state (see Session.End for the cost).
//   - SCARD_W_RESET_CARD at the start of a step (another application reset
//     the card) is absorbed with SCardReconnect(LEAVE_CARD); a removed card
//     is reconnected lazily at the next step, with a new insertion number.
//   - When pcscd stops, every context is dropped and re-established lazily
//     by the next call; the monitor (Watch) retries with a backoff.
//   - One goroutine per process calls GetStatusChange (Watch, or a one-shot
//     scan of Readers when no Watch runs): the pinned scard is not safe for
//     concurrent GetStatusChange calls.
package pcsc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ebfe/scard"
	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/card"
)

// Options configures a Transport.
type Options struct {
	// Logger receives connection events (never APDU data). Nil: no logging.
	Logger *zap.Logger
	// RetryMin and RetryMax bound the monitor's backoff while pcscd cannot
	// be reached: it waits RetryMin, then doubles up to RetryMax between
	// attempts (defaults 250 ms and 2 s). Each attempt is one
	// SCardEstablishContext, a failed connect() on pcscd's socket.
	RetryMin, RetryMax time.Duration
	// RemovalGrace is how long a failed Transmit waits for the monitor to
	// confirm that the card left before reporting a plain transport error
	// (default 1.5 s, a bit more than pcscd's 400 ms presence polling and a
	// vpcd reconnection).
	RemovalGrace time.Duration
}

// Transport implements card.Transport over PC/SC.
type Transport struct {
	opts Options
	log  *zap.Logger

	mu    sync.Mutex
	conns map[string]*conn

	insertions atomic.Uint64
}

var _ card.Transport = (*Transport)(nil)

// New returns a PC/SC transport. Nothing is opened until first use.
func New(opts Options) *Transport {
	if opts.RetryMin <= 0 {
		opts.RetryMin = 250 * time.Millisecond
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(2*time.Second, opts.RetryMin)
	}
	if opts.RemovalGrace <= 0 {
		opts.RemovalGrace = 1500 * time.Millisecond
	}
	t := &Transport{opts: opts, log: opts.Logger, conns: map[string]*conn{}}
	if t.log == nil {
		t.log = zap.NewNop()
	}
	return t
}

// conn is the connection to one reader: its own context and card handle,
// kept between operations. sem allows one session at a time.
type conn struct {
	reader    string
	sem       chan struct{}
	sctx      *scard.Context
	card      *scard.Card
	atr       []byte
	insertion uint64
}

// isServiceError reports PC/SC codes meaning pcscd is gone or our context
// died with it.
func isServiceError(err error) bool {
	var e scard.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e {
	case scard.ErrNoService, scard.ErrServiceStopped, scard.ErrInvalidHandle, scard.ErrShutdown,
		scard.ErrCommDataLost, scard.ErrInternalError,
		scard.ErrCommError: // "RPC transport error": pcscd's socket closed under us
		return true
	}
	return false
}

// mapError turns a PC/SC error into the card vocabulary (wrapping it).
func mapError(err error, reader string) error {
	if err == nil {
		return nil
	}
	var e scard.Error
	if !errors.As(err, &e) {
		return err
	}
	switch {
	case isServiceError(err):
		return fmt.Errorf("%w: %w", card.ErrPCSCUnavailable, err)
	case e == scard.ErrNoReadersAvailable, e == scard.ErrUnknownReader, e == scard.ErrReaderUnavailable:
		return fmt.Errorf("%w: %q: %w", card.ErrNoReader, reader, err)
	case e == scard.ErrNoSmartcard:
		return fmt.Errorf("%w: %q: %w", card.ErrNoCard, reader, err)
	case e == scard.ErrRemovedCard:
		return fmt.Errorf("%w: %q: %w", card.ErrCardRemoved, reader, err)
	case e == scard.ErrResetCard:
		return fmt.Errorf("%w: %q: %w", card.ErrCardReset, reader, err)
	case e == scard.ErrUnpoweredCard, e == scard.ErrUnresponsiveCard, e == scard.ErrUnsupportedCard, e == scard.ErrProtoMismatch:
		return fmt.Errorf("%w: %q: %w", card.ErrCardFailure, reader, err)
	}
	return fmt.Errorf("%w: %q: %w", card.ErrCardFailure, reader, err)
}

func (t *Transport) conn(reader string) *conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.conns[reader]
	if c == nil {
		c = &conn{reader: reader, sem: make(chan struct{}, 1)}
		t.conns[reader] = c
	}
	return c
}

// drop disconnects and releases everything of c (the caller holds c.sem).
func (c *conn) drop() {
	if c.card != nil {
		_ = c.card.Disconnect(scard.LeaveCard)
		c.card = nil
	}
	if c.sctx != nil {
		_ = c.sctx.Release()
		c.sctx = nil
	}
	c.atr = nil
}

func (c *conn) disconnect() {
	if c.card != nil {
		_ = c.card.Disconnect(scard.LeaveCard)
		c.card = nil
	}
	c.atr = nil
}

// Begin implements card.Transport: connect if needed, then
// SCardBeginTransaction.
func (t *Transport) Begin(ctx context.Context, reader string) (card.Session, error) {
	c := t.conn(reader)
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s, err := t.begin(c)
	if err != nil {
		<-c.sem
		return nil, err
	}
	return s, nil
}

func (t *Transport) begin(c *conn) (*session, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if c.sctx == nil {
			sctx, err := scard.EstablishContext()
			if err != nil {
				return nil, mapError(err, c.reader)
			}
			c.sctx = sctx
		}
		if c.card == nil {
			h, err := c.sctx.Connect(c.reader, scard.ShareShared, scard.ProtocolAny)
			if err != nil {
				if isServiceError(err) {
					c.drop()
					lastErr = err
					continue
				}
				return nil, mapError(err, c.reader)
			}
			st, err := h.Status()
			if err != nil {
				_ = h.Disconnect(scard.LeaveCard)
				if isServiceError(err) {
					c.drop()
					lastErr = err
					continue
				}
				return nil, mapError(err, c.reader)
			}
			c.card, c.atr = h, st.Atr
			c.insertion = t.insertions.Add(1)
			t.log.Debug("pcsc: connected", zap.String("reader", c.reader), zap.Uint32("protocol", uint32(h.ActiveProtocol())))
		}
		err := c.card.BeginTransaction()
		if err == nil {
			return &session{t: t, c: c}, nil
		}
		lastErr = err
		var e scard.Error
		errors.As(err, &e)
		switch {
		case e == scard.ErrResetCard:
			// Another application reset the card; same card, new state.
			rerr := c.card.Reconnect(scard.ShareShared, scard.ProtocolAny, scard.LeaveCard)
			t.log.Debug("pcsc: card reset by another application, reconnected", zap.String("reader", c.reader), zap.Error(rerr))
			if rerr != nil {
				c.disconnect()
			}
		case e == scard.ErrRemovedCard, e == scard.ErrNoSmartcard:
			// The card we knew left; a new Connect finds the current one.
			c.disconnect()
		case isServiceError(err):
			c.drop()
		default:
			return nil, mapError(err, c.reader)
		}
	}
	return nil, mapError(lastErr, c.reader)
}

// session is one transaction on a connected card.
type session struct {
	t     *Transport
	c     *conn
	ended bool
	dead  bool // the handle is unusable (card removed, service gone)
}

func (s *session) ATR() []byte { return append([]byte(nil), s.c.atr...) }

func (s *session) Insertion() uint64 { return s.c.insertion }

// Transmit sends one APDU. A card removed or reset meanwhile gives
// card.ErrCardRemoved or card.ErrCardReset; other transport failures are
// checked against the monitor (a vpcd card closing its socket, a reader
// losing the card mid-APDU, first show up as a communication error).
func (s *session) Transmit(cmd []byte) ([]byte, error) {
	if s.dead {
		return nil, card.ErrCardRemoved
	}
	resp, err := s.c.card.Transmit(cmd)
	if err == nil && len(resp) >= 2 {
		return resp, nil
	}
	if err == nil {
		// No status word: the reader lost the card mid-APDU (the vpcd
		// driver answers an empty response when the card's socket closes).
		err = fmt.Errorf("pcsc: response of %d bytes without status word", len(resp))
		if s.t.confirmRemoval(s.c.reader, s.c.card) {
			s.dead = true
			return nil, fmt.Errorf("%w: %q: %w", card.ErrCardRemoved, s.c.reader, err)
		}
		return nil, fmt.Errorf("%w: %q: %w", card.ErrCardFailure, s.c.reader, err)
	}
	var e scard.Error
	errors.As(err, &e)
	switch {
	case e == scard.ErrRemovedCard, e == scard.ErrNoSmartcard:
		s.dead = true
		return nil, mapError(err, s.c.reader)
	case e == scard.ErrResetCard:
		return nil, mapError(err, s.c.reader)
	case isServiceError(err):
		s.dead = true
		return nil, mapError(err, s.c.reader)
	}
	if s.t.confirmRemoval(s.c.reader, s.c.card) {
		s.dead = true
		return nil, fmt.Errorf("%w: %q: %w", card.ErrCardRemoved, s.c.reader, err)
	}
	return nil, mapError(err, s.c.reader)
}

// End ends the transaction. With reset, SCardEndTransaction uses
// SCARD_RESET_CARD: pcscd warm-resets the card (vpcd: a "02" reset message,
// then "04" to read the ATR again), clearing the verified state. No APDU is
// sent and our handle stays valid (no SCARD_W_RESET_CARD on the next
// transaction); other applications' handles get SCARD_W_RESET_CARD once.
// TestResetCost measures it against Reconnect(SCARD_RESET_CARD) (same
// effect, one more call) and a "logout" SELECT of the root application
// (does not clear the state on the virtual card; card-cpx.md §3 marks it
// [?]): 0 APDUs, 0.1-0.3 ms over pcscd+vpcd, about 1-2 APDU round trips;
// on a real reader a warm reset costs the ATR exchange (tens of ms). The
// next operation must select DF 0001 again (the reset makes the MF
// current), which it does anyway since the card is shared.
func (s *session) End(reset bool) error {
	if s.ended {
		return nil
	}
	s.ended = true
	defer func() { <-s.c.sem }()
	if s.dead {
		s.c.disconnect()
		if isDeadContext(s.c) {
			s.c.drop()
		}
		return card.ErrCardRemoved
	}
	disp := scard.LeaveCard
	if reset {
		disp = scard.ResetCard
	}
	err := s.c.card.EndTransaction(disp)
	if err == nil {
		return nil
	}
	var e scard.Error
	errors.As(err, &e)
	switch {
	case isServiceError(err):
		s.c.drop()
	case e == scard.ErrRemovedCard, e == scard.ErrNoSmartcard:
		s.c.disconnect()
	case e == scard.ErrResetCard:
		// Reset by someone else during our transaction: the verified state
		// is gone anyway. Keep the handle; Begin reconnects it.
		if reset {
			return nil
		}
	}
	return mapError(err, s.c.reader)
}

func isDeadContext(c *conn) bool {
	if c.sctx == nil {
		return false
	}
	ok, err := c.sctx.IsValid()
	return err != nil || !ok
}

// Close releases every connection (shutdown).
func (t *Transport) Close() error {
	t.mu.Lock()
	conns := make([]*conn, 0, len(t.conns))
	for _, c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.sem <- struct{}{}
		c.drop()
		<-c.sem
	}
	return nil
}
