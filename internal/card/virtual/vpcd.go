package virtual

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/cpsagent/cpsagent/internal/ctxsleep"
)

// The vpcd protocol (card-cpx.md §7): the driver inside pcscd listens, the
// card connects. Every message, both ways, is a 2-byte big-endian length and
// a payload. A 1-byte payload from the driver is a control code (00 power
// off, 01 power on, 02 reset: no answer; 04 get ATR: answer the ATR); any
// longer payload is a command APDU, answered with the response APDU. Closing
// the socket removes the card. Debian's driver sends header and payload with
// two send() calls, so frames are read with io.ReadFull.

// VPCD ports and reader names of the Debian vsmartcard-vpcd driver.
const (
	VPCDBasePort     = 0x8C7B // 35963, "Virtual PCD 00 00"
	DefaultVPCDAddr  = "127.0.0.1:35963"
	vpcdPowerOff     = 0x00
	vpcdPowerOn      = 0x01
	vpcdReset        = 0x02
	vpcdGetATR       = 0x04
	defaultBackoff   = 100 * time.Millisecond
	defaultMaxBackof = 5 * time.Second
)

// Errors returned by the vpcd client.
var (
	// ErrVPCDClosed: the driver closed the connection (pcscd stopped or
	// restarted). Dial again to re-insert the card.
	ErrVPCDClosed = errors.New("virtual: vpcd closed the connection")
	// ErrCardPulled: the card was removed on purpose (Remove, or a Drop
	// action of BeforeAPDU).
	ErrCardPulled = errors.New("virtual: card removed")
	// ErrVPCDDial: the driver could not be reached.
	ErrVPCDDial = errors.New("virtual: cannot reach vpcd")
)

// ActionKind is what a BeforeAPDU hook asks for.
type ActionKind int

// Action kinds.
const (
	ActContinue ActionKind = iota // process the APDU
	ActDrop                       // close the socket before answering: the card is pulled
	ActDelay                      // wait, then process the APDU
)

// Action is the answer of a BeforeAPDU fault-injection hook.
type Action struct {
	Kind  ActionKind
	Delay time.Duration // for ActDelay
}

// Ready-made actions.
var (
	Continue = Action{Kind: ActContinue}
	Drop     = Action{Kind: ActDrop}
)

// Delay returns an action that holds the APDU for d before processing it.
func Delay(d time.Duration) Action { return Action{Kind: ActDelay, Delay: d} }

// VPCDEvent reports a connection change to VPCDClient.OnEvent.
type VPCDEvent struct {
	Connected bool
	Err       error // why the connection ended (nil when connected)
}

// VPCDClient inserts a Card into a vpcd reader and keeps it there.
type VPCDClient struct {
	Addr string
	Card *Card
	// Redial keeps the card inserted across driver restarts: after the
	// connection ends (other than by ctx or Remove), dial again with
	// exponential backoff between MinBackoff and MaxBackoff.
	Redial                 bool
	MinBackoff, MaxBackoff time.Duration
	// BeforeAPDU, when set, sees every command APDU before the card.
	BeforeAPDU func(cmd []byte) Action
	// OnEvent, when set, is told about connections and disconnections.
	OnEvent func(VPCDEvent)
	// Logf, when set, receives diagnostics (never APDU data).
	Logf func(format string, args ...any)
	// Dial replaces the TCP dialer (tests).
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	mu      sync.Mutex
	conn    net.Conn
	removed bool
	insert  chan struct{}
}

// VPCDOption configures ServeVPCD.
type VPCDOption func(*VPCDClient)

// WithRedial keeps redialing after the driver goes away (pcscd restart).
func WithRedial() VPCDOption { return func(v *VPCDClient) { v.Redial = true } }

// WithBeforeAPDU installs a fault-injection hook.
func WithBeforeAPDU(f func(cmd []byte) Action) VPCDOption {
	return func(v *VPCDClient) { v.BeforeAPDU = f }
}

// WithLogf installs a diagnostics logger.
func WithLogf(f func(format string, args ...any)) VPCDOption {
	return func(v *VPCDClient) { v.Logf = f }
}

// ServeVPCD connects card to the vpcd driver at addr and serves it until
// ctx is cancelled (the card is removed, nil is returned) or the connection
// ends: ErrVPCDClosed when the driver closed it, ErrCardPulled for a Drop,
// ErrVPCDDial when it could not connect. With WithRedial it only returns
// when ctx is cancelled.
func ServeVPCD(ctx context.Context, addr string, card *Card, opts ...VPCDOption) error {
	v := &VPCDClient{Addr: addr, Card: card}
	for _, o := range opts {
		o(v)
	}
	return v.Run(ctx)
}

func (v *VPCDClient) logf(format string, args ...any) {
	if v.Logf != nil {
		v.Logf(format, args...)
	}
}

func (v *VPCDClient) event(e VPCDEvent) {
	if v.OnEvent != nil {
		v.OnEvent(e)
	}
}

// Remove pulls the card: the connection is closed and, until Insert, Run
// does not dial again.
func (v *VPCDClient) Remove() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.removed = true
	if v.conn != nil {
		_ = v.conn.Close()
	}
}

// Insert puts a removed card back (Run dials again).
func (v *VPCDClient) Insert() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.removed = false
	if v.insert != nil {
		select {
		case v.insert <- struct{}{}:
		default:
		}
	}
}

// Connected reports whether the card is currently connected to the driver.
func (v *VPCDClient) Connected() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.conn != nil
}

// Run serves the card; see ServeVPCD.
func (v *VPCDClient) Run(ctx context.Context) error {
	if v.Card == nil {
		return fmt.Errorf("%w: no card", ErrConfig)
	}
	v.mu.Lock()
	if v.insert == nil {
		v.insert = make(chan struct{}, 1)
	}
	v.mu.Unlock()
	minB, maxB := v.MinBackoff, v.MaxBackoff
	if minB <= 0 {
		minB = defaultBackoff
	}
	if maxB < minB {
		maxB = max(defaultMaxBackof, minB)
	}
	backoff := minB
	for {
		if ctx.Err() != nil {
			return nil
		}
		if !v.waitInserted(ctx) {
			return nil
		}
		conn, err := v.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			err = fmt.Errorf("%w at %s: %w", ErrVPCDDial, v.Addr, err)
			if !v.Redial {
				return err
			}
			v.logf("vpcd: %v; retrying in %v", err, backoff)
			if !ctxsleep.Sleep(ctx, backoff) {
				return nil
			}
			backoff = min(backoff*2, maxB)
			continue
		}
		backoff = minB
		v.mu.Lock()
		if v.removed { // removed while dialing
			v.mu.Unlock()
			_ = conn.Close()
			continue
		}
		v.conn = conn
		v.mu.Unlock()
		v.Card.TraceEvent("vpcd connected " + v.Addr)
		v.event(VPCDEvent{Connected: true})

		err = v.serveConn(ctx, conn)

		v.mu.Lock()
		v.conn = nil
		if v.removed {
			err = ErrCardPulled
		}
		v.mu.Unlock()
		_ = conn.Close()
		// A card that leaves the reader loses power.
		v.Card.PowerOff()
		v.Card.TraceEvent("vpcd disconnected")
		if ctx.Err() != nil {
			v.event(VPCDEvent{})
			return nil
		}
		v.event(VPCDEvent{Err: err})
		if errors.Is(err, ErrCardPulled) {
			v.mu.Lock()
			v.removed = true
			v.mu.Unlock()
		}
		if !v.Redial {
			return err
		}
		v.logf("vpcd: %v", err)
		if errors.Is(err, ErrVPCDClosed) && !ctxsleep.Sleep(ctx, minB) {
			return nil
		}
	}
}

func (v *VPCDClient) waitInserted(ctx context.Context) bool {
	for {
		v.mu.Lock()
		removed := v.removed
		v.mu.Unlock()
		if !removed {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-v.insert:
		}
	}
}

func (v *VPCDClient) dial(ctx context.Context) (net.Conn, error) {
	if v.Dial != nil {
		return v.Dial(ctx, v.Addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", v.Addr)
}

func (v *VPCDClient) serveConn(ctx context.Context, conn net.Conn) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = conn.Close()
		case <-done:
		}
	}()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return serveStream(ctx, &ackingConn{Conn: conn}, v.Card, v.BeforeAPDU)
}

// ackingConn re-arms TCP_QUICKACK before each read (see quickAck).
type ackingConn struct{ net.Conn }

func (a *ackingConn) Read(p []byte) (int, error) {
	quickAck(a.Conn)
	return a.Conn.Read(p)
}

// serveStream runs the vpcd protocol over one connection until it fails.
func serveStream(ctx context.Context, rw io.ReadWriter, card *Card, before func([]byte) Action) error {
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(rw, hdr[:]); err != nil {
			return closedErr(err)
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n == 0 {
			continue // not sent by vpcd; nothing to answer
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(rw, msg); err != nil {
			return closedErr(err)
		}
		if n == 1 {
			switch msg[0] {
			case vpcdPowerOff:
				card.PowerOff()
			case vpcdPowerOn:
				card.PowerOn()
			case vpcdReset:
				card.Reset()
			case vpcdGetATR:
				if err := writeFrame(rw, card.ATR()); err != nil {
					return closedErr(err)
				}
			}
			continue
		}
		if before != nil {
			switch a := before(msg); a.Kind {
			case ActDrop:
				return ErrCardPulled
			case ActDelay:
				if !ctxsleep.Sleep(ctx, a.Delay) {
					return ctx.Err()
				}
			}
		}
		resp, err := card.Transmit(msg)
		if err != nil {
			resp = []byte{0x6F, 0x00} // powered off: the driver always powers on first
		}
		if err := writeFrame(rw, resp); err != nil {
			return closedErr(err)
		}
	}
}

func writeFrame(w io.Writer, payload []byte) error {
	buf := make([]byte, 2+len(payload))
	binary.BigEndian.PutUint16(buf, uint16(len(payload)))
	copy(buf[2:], payload)
	_, err := w.Write(buf)
	return err
}

// closedErr maps any read or write failure (EOF, reset, closed socket) to
// ErrVPCDClosed, keeping the cause.
func closedErr(err error) error { return fmt.Errorf("%w: %w", ErrVPCDClosed, err) }

// SlotName returns the reader name pcscd gives the vpcd slot at addr
// ("Virtual PCD 00 01" for port 35964), or "" when the port is not a vpcd
// slot port.
func SlotName(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < VPCDBasePort || port >= VPCDBasePort+16 {
		return ""
	}
	return fmt.Sprintf("Virtual PCD 00 %02d", port-VPCDBasePort)
}
