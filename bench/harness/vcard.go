package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/pcsc"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
	"github.com/cpsagent/cpsagent/internal/testutil"
)

// ErrVPCD: the virtual card could not be inserted (vpcd not reachable).
var ErrVPCD = errors.New("harness: virtual card not inserted")

// VCardOptions configure a VCard.
type VCardOptions struct {
	// Addr is the vpcd slot (default Slot0Addr).
	Addr string
	// Identity names the virtual identity (default "medecin"); ignored when
	// StateFile already holds a card.
	Identity string
	// StateFile keeps the card (keys, certificates, codes, counters): an
	// existing file is loaded, otherwise it is created. Copy a pristine
	// file to start from a full PIN counter.
	StateFile string
	// Latency is the card's latency model (virtual.LatencyPreset).
	Latency virtual.Latency
	// Trace receives the card's APDU trace (PIN data masked); optional.
	Trace io.Writer
	// Record keeps the header of every command APDU (see APDUs).
	Record bool
	// Logf receives the vpcd client's diagnostics; optional.
	Logf func(string, ...any)
}

// APDURecord is one command APDU as the card received it (header only:
// never data).
type APDURecord struct {
	At      time.Time
	CLA     byte
	INS     byte
	P1, P2  byte
	Len     int  // whole command length
	HasData bool // Lc and data present (case 3 or 4)
}

// VCard is a virtual CPS3 card in a vpcd reader, with fault injection.
// Its methods are safe for concurrent use.
type VCard struct {
	opts VCardOptions

	mu        sync.Mutex
	card      *virtual.Card
	client    *virtual.VPCDClient
	cancel    context.CancelFunc
	done      chan error
	prev      virtual.Stats // counters of the cards replaced by Replace
	dropIn    int           // > 0: the dropIn-th next APDU pulls the card
	slowUntil time.Time
	slowDelay time.Duration
	apdus     []APDURecord
	connected bool
	events    chan virtual.VPCDEvent
	drops     int
}

// NewVCard builds the card (keys are generated when the state file does
// not exist yet, which takes a second or two).
func NewVCard(o VCardOptions) (*VCard, error) {
	if o.Addr == "" {
		o.Addr = Slot0Addr
	}
	if o.Identity == "" {
		o.Identity = "medecin"
	}
	v := &VCard{opts: o, events: make(chan virtual.VPCDEvent, 64)}
	c, err := v.newCard()
	if err != nil {
		return nil, err
	}
	v.card = c
	return v, nil
}

func (v *VCard) newCard() (*virtual.Card, error) {
	var cfg virtual.Config
	if v.opts.StateFile != "" && virtual.StateHasIdentity(v.opts.StateFile) {
		cfg.Holder = v.opts.Identity
	} else {
		var err error
		if cfg, err = virtual.Identity(v.opts.Identity); err != nil {
			return nil, err
		}
	}
	cfg.StateFile = v.opts.StateFile
	cfg.Latency = v.opts.Latency
	cfg.Trace = v.opts.Trace
	return virtual.NewCard(cfg)
}

// Card returns the current virtual card.
func (v *VCard) Card() *virtual.Card {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.card
}

// Reader is the reader name pcscd gives the slot.
func (v *VCard) Reader() string { return virtual.SlotName(v.opts.Addr) }

// Start inserts the card and waits (up to 10 s) until vpcd accepted it.
func (v *VCard) Start(ctx context.Context) error {
	v.mu.Lock()
	if v.client != nil {
		v.mu.Unlock()
		return errors.New("harness: card already started")
	}
	v.startLocked()
	v.mu.Unlock()
	return v.waitConnected(ctx, 10*time.Second)
}

func (v *VCard) startLocked() {
	c := &virtual.VPCDClient{
		Addr: v.opts.Addr, Card: v.card, Redial: true,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		BeforeAPDU: v.hook, Logf: v.opts.Logf,
	}
	c.OnEvent = func(e virtual.VPCDEvent) {
		v.mu.Lock()
		v.connected = e.Connected
		v.mu.Unlock()
		select {
		case v.events <- e:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	v.client, v.cancel, v.done = c, cancel, done
}

func (v *VCard) waitConnected(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		if v.Connected() {
			return nil
		}
		select {
		case <-v.events:
		case <-t.C:
			return fmt.Errorf("%w: no vpcd connection to %s after %v", ErrVPCD, v.opts.Addr, d)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Events reports connections and disconnections (a buffered channel; old
// events are dropped when nobody reads).
func (v *VCard) Events() <-chan virtual.VPCDEvent { return v.events }

// Connected reports whether the card is in the reader.
func (v *VCard) Connected() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.connected
}

// Stop removes the card and stops the vpcd client.
func (v *VCard) Stop() {
	v.mu.Lock()
	cancel, done := v.cancel, v.done
	v.client, v.cancel, v.done = nil, nil, nil
	v.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	v.mu.Lock()
	v.connected = false
	v.mu.Unlock()
}

// Remove pulls the card out of the reader at once (the vpcd socket is
// closed, whatever the card is doing): the "reader unplugged" fault.
func (v *VCard) Remove() {
	v.mu.Lock()
	c := v.client
	v.mu.Unlock()
	if c != nil {
		c.Remove()
	}
}

// Insert puts the card back after Remove or a dropped APDU.
func (v *VCard) Insert() {
	v.mu.Lock()
	c := v.client
	v.mu.Unlock()
	if c != nil {
		c.Insert()
	}
}

// DropAt arms the "card pulled at an APDU" fault: the n-th next command
// APDU (n ≥ 1) is not answered and the card leaves the reader. 0 disarms.
func (v *VCard) DropAt(n int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.dropIn = n
}

// Armed reports whether a DropAt is still waiting for its APDU.
func (v *VCard) Armed() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dropIn > 0
}

// Drops is the number of APDUs at which the card was pulled.
func (v *VCard) Drops() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.drops
}

// SlowFor delays every command APDU by delay during d (a slow card, on top
// of the latency model).
func (v *VCard) SlowFor(d, delay time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.slowUntil, v.slowDelay = time.Now().Add(d), delay
}

func (v *VCard) hook(cmd []byte) virtual.Action {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.opts.Record && len(cmd) >= 4 {
		v.apdus = append(v.apdus, APDURecord{At: time.Now(), CLA: cmd[0], INS: cmd[1], P1: cmd[2], P2: cmd[3],
			Len: len(cmd), HasData: len(cmd) > 5})
	}
	if v.dropIn > 0 {
		v.dropIn--
		if v.dropIn == 0 {
			v.drops++
			return virtual.Drop
		}
	}
	if time.Now().Before(v.slowUntil) {
		return virtual.Delay(v.slowDelay)
	}
	return virtual.Continue
}

// APDUs returns the command headers recorded since index from (Record).
func (v *VCard) APDUs(from int) []APDURecord {
	v.mu.Lock()
	defer v.mu.Unlock()
	if from >= len(v.apdus) {
		return nil
	}
	return append([]APDURecord(nil), v.apdus[from:]...)
}

// APDUMark is the current length of the APDU record (pass it to APDUs).
func (v *VCard) APDUMark() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.apdus)
}

// Stats returns the card's counters since NewVCard (across Replace).
func (v *VCard) Stats() virtual.Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return addStats(v.prev, v.card.Stats())
}

// PINStatus returns the current card's PIN and PUK counters.
func (v *VCard) PINStatus() virtual.PINStatus { return v.Card().PINStatus() }

// Replace swaps in a fresh copy of the card from pristine (a state file
// content: same keys, serial and certificates, full counters): the card
// leaves the reader, and the copy is inserted. Counters carry over.
func (v *VCard) Replace(ctx context.Context, pristine []byte) error {
	if v.opts.StateFile == "" {
		return errors.New("harness: Replace needs a state file")
	}
	v.Stop()
	if err := os.WriteFile(v.opts.StateFile, pristine, 0o600); err != nil {
		return err
	}
	c, err := v.newCard()
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.prev = addStats(v.prev, v.card.Stats())
	v.card = c
	v.startLocked()
	v.mu.Unlock()
	return v.waitConnected(ctx, 10*time.Second)
}

func addStats(a, b virtual.Stats) virtual.Stats {
	zero := virtual.Stats{}
	// b - (zero - a) = a + b, with the package's own field list.
	return b.Sub(zero.Sub(a))
}

// WaitReader waits until pcscd reports reader with (present) or without a
// card, polling PC/SC.
func WaitReader(ctx context.Context, reader string, present bool, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := pcsc.New(pcsc.Options{})
	defer t.Close()
	last := "no answer"
	for {
		rs, err := t.Readers(ctx)
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%+v", rs)
			for _, r := range rs {
				if r.Name == reader && r.CardPresent == present {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("harness: reader %q card present=%v not seen in %v (last: %s)", reader, present, d, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// IsVerifyWithData reports a VERIFY that presents a secret (the only
// command that can decrement a PIN try counter).
func (r APDURecord) IsVerifyWithData() bool { return r.INS == apdu.InsVerify && r.HasData }

// PCSCDRunning reports why pcscd's socket cannot be reached (nil when it
// can).
func PCSCDRunning() error { return testutil.PCSCDRunning() }
