package card_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/card/memreader"
	"github.com/cpsagent/cpsagent/internal/card/pcsc"
	"github.com/cpsagent/cpsagent/internal/card/pcsc/pcsctest"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
)

// The engine tests run one table of cases over two transports (legs):
//   - mem:   memreader, in process, the virtual card called directly;
//   - pcscd: pcsc over the real pcscd, the same virtual card inserted in
//            vpcd's slot 0 (CPSAGENT_VPCD_ADDR) through its TCP protocol.
// Under CI=true the pcscd leg fails when pcscd is missing; elsewhere it is
// skipped with a warning.

type leg struct {
	name  string
	setup func(t *testing.T, o rigOptions) *rig
}

var legs = []leg{{"mem", memRig}, {"pcscd", pcscRig}}

type rigOptions struct {
	quirks    cps.Quirks
	noPreRead bool
	model     cardModel
}

// cardModel is the card dimension of the engine matrix: every case runs
// against each model, through each transport. What differs between the
// models is only what the card is sent (APDU counts and sequences, the
// generation reported); the public results are the same.
type cardModel struct {
	name       string // virtual.Config.Model
	generation string
	// serialRead is the exact command sequence of the serial read, the
	// start of a cold identity read (a warm read, same insertion, sends
	// nothing).
	serialRead []string
	// certSelect selects the authentication certificate on a cold read.
	certSelect string
	// authAPDUs and signAPDUs are a warm Authenticate and Sign, both
	// transactions, GET RESPONSE included.
	authAPDUs, signAPDUs int
	// verifyPIN prefixes a VERIFY of the PIN with data (4 bytes).
	verifyPIN string
	// cla is the class byte of every command, as traced.
	cla string
	// hashOnCard: the card finishes the hash (PSO HASH); otherwise the host
	// sends the whole hash with PSO CDS.
	hashOnCard bool
}

var (
	modelCPS3 = cardModel{
		name: virtual.ModelCPS3, generation: cps.GenerationCPS3,
		serialRead: []string{"00 A4 09 0C 04 3F 00 D0 03", "00 B0 00 00 0C"},
		certSelect: "00 A4 09 0C 06 3F 00 00 01 A0 01",
		// SELECT DF, VERIFY status, VERIFY, MSE SET AT, INTERNAL AUTHENTICATE, GET RESPONSE.
		authAPDUs: 6,
		// SELECT DF, VERIFY status, VERIFY, MSE HT, MSE DST, PSO HASH, PSO CDS, GET RESPONSE.
		signAPDUs: 8,
		verifyPIN: "00 20 00 01 04", cla: "00", hashOnCard: true,
	}
	modelCPS4 = cardModel{
		name: virtual.ModelCPS4, generation: cps.GenerationCPS4,
		serialRead: []string{"01 A4 04 0C 08 80 25 00 00 01 FF 01 00", "01 A4 00 0C 02 D0 03", "01 B0 00 00 0C"},
		certSelect: "01 A4 08 0C 04 00 01 A0 01",
		// Tx1: SELECT applet, VERIFY status; Tx2: SELECT applet, VERIFY,
		// MSE SET CT, PSO DECIPHER in two chained commands (T=1: no GET RESPONSE).
		authAPDUs: 7,
		// Tx1: SELECT applet, VERIFY status; Tx2: SELECT applet, VERIFY, MSE SET DST, PSO CDS.
		signAPDUs: 6,
		verifyPIN: "01 20 00 01 04", cla: "01", hashOnCard: false,
	}
	models = []cardModel{modelCPS3, modelCPS4}
)

// rig is one engine over one transport with one reader under test.
type rig struct {
	t      *testing.T
	leg    string
	model  cardModel
	eng    *card.Engine
	reader string
	events <-chan card.Event
	trace  *lines

	insertFn func(c *virtual.Card)
	removeFn func()
	pullFn   func(pred func(cmd []byte) bool)
	noPre    bool

	mu   sync.Mutex
	card *virtual.Card
}

// lines collects trace lines from the engine.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) add(s string) {
	l.mu.Lock()
	l.l = append(l.l, s)
	l.mu.Unlock()
}

func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.l...)
}

func (l *lines) reset() {
	l.mu.Lock()
	l.l = nil
	l.mu.Unlock()
}

// commands returns the traced commands (without the "> ").
func (l *lines) commands() []string {
	var out []string
	for _, s := range l.all() {
		if strings.HasPrefix(s, "> ") {
			out = append(out, s[2:])
		}
	}
	return out
}

func newEngine(t *testing.T, tr card.Transport, o rigOptions, filter func(string) bool) (*card.Engine, *lines) {
	tl := &lines{}
	eng := card.New(tr, card.Options{
		Quirks: o.quirks,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)),
		Trace: func(reader, line string) {
			tl.add(line)
		},
		ReaderFilter: filter,
		NoPreRead:    o.noPreRead,
	})
	return eng, tl
}

func startRig(t *testing.T, r *rig) {
	events, unsub := r.eng.Subscribe()
	r.events = events
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		unsub()
	})
}

const memReader = "Mem Reader 0"

func memRig(t *testing.T, o rigOptions) *rig {
	tr := memreader.New(memReader)
	eng, tl := newEngine(t, tr, o, nil)
	r := &rig{t: t, leg: "mem", model: o.model, eng: eng, reader: memReader, trace: tl, noPre: o.noPreRead}
	r.insertFn = func(c *virtual.Card) {
		if err := tr.Insert(memReader, c); err != nil {
			t.Fatal(err)
		}
	}
	r.removeFn = func() { tr.Remove(memReader) }
	var pred atomic.Pointer[func([]byte) bool]
	tr.BeforeTransmit = func(reader string, cmd []byte) {
		if p := pred.Load(); p != nil && (*p)(cmd) {
			pred.Store(nil)
			tr.Remove(reader)
		}
	}
	r.pullFn = func(p func([]byte) bool) { pred.Store(&p) }
	startRig(t, r)
	r.waitEvent(card.EventReaderAdded, "")
	return r
}

func pcscRig(t *testing.T, o rigOptions) *rig {
	addr, reader := pcsctest.Require(t)
	pcsctest.LockSlot(t, addr)
	tr := pcsc.New(pcsc.Options{Logger: zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))})
	t.Cleanup(func() { _ = tr.Close() })
	eng, tl := newEngine(t, tr, o, func(n string) bool { return n == reader })
	r := &rig{t: t, leg: "pcscd", model: o.model, eng: eng, reader: reader, trace: tl, noPre: o.noPreRead}
	var pred atomic.Pointer[func([]byte) bool]
	var client *virtual.VPCDClient
	var stop func()
	r.insertFn = func(c *virtual.Card) {
		ctx, cancel := context.WithCancel(context.Background())
		cl := &virtual.VPCDClient{Addr: addr, Card: c, Dial: pcsctest.Dial,
			BeforeAPDU: func(cmd []byte) virtual.Action {
				if p := pred.Load(); p != nil && (*p)(cmd) {
					pred.Store(nil)
					return virtual.Drop
				}
				return virtual.Continue
			}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := cl.Run(ctx); err != nil && !errors.Is(err, virtual.ErrCardPulled) {
				t.Logf("vpcd client: %v", err)
			}
		}()
		client, stop = cl, func() { cancel(); <-done }
	}
	r.removeFn = func() {
		if stop != nil {
			stop()
			client, stop = nil, nil
		}
	}
	r.pullFn = func(p func([]byte) bool) { pred.Store(&p) }
	startRig(t, r)
	r.waitEvent(card.EventReaderAdded, reader)
	// A card left by the previous user of the slot (another test process)
	// may still be seen until pcscd's next presence poll.
	if rs, err := tr.Readers(context.Background()); err == nil {
		for _, st := range rs {
			if st.Name == reader && st.CardPresent {
				r.waitEvent(card.EventCardRemoved, reader)
			}
		}
	}
	t.Cleanup(func() {
		if client != nil {
			r.remove()
		}
	})
	return r
}

// waitEvent reads events until one of type typ for reader ("" = any).
func (r *rig) waitEvent(typ card.EventType, reader string) card.Event {
	r.t.Helper()
	tm := time.NewTimer(15 * time.Second)
	defer tm.Stop()
	for {
		select {
		case ev := <-r.events:
			if ev.Type == typ && (reader == "" || ev.Reader == reader) {
				return ev
			}
		case <-tm.C:
			r.t.Fatalf("%s: no %s event for %q within 15 s", r.leg, typ, reader)
		}
	}
}

// insert puts c in the reader and waits until the engine has seen it (and
// has read its identity, unless pre-reading is off).
func (r *rig) insert(c *virtual.Card) {
	r.t.Helper()
	r.mu.Lock()
	r.card = c
	r.mu.Unlock()
	r.insertFn(c)
	r.waitEvent(card.EventCardInserted, r.reader)
	if !r.noPre {
		r.waitEvent(card.EventIdentityReady, r.reader)
	}
}

// remove pulls the card and waits until the engine has seen it leave.
func (r *rig) remove() {
	r.t.Helper()
	r.removeFn()
	r.waitEvent(card.EventCardRemoved, r.reader)
}

// pullWhen arranges for the card to leave the reader just before the
// first command for which pred is true reaches it.
func (r *rig) pullWhen(pred func(cmd []byte) bool) { r.pullFn(pred) }

var serialSeq atomic.Int64

// newCard returns a fresh virtual card for identity name with a serial
// unique in this process. (The agent's serial is the PAN without its last
// byte — the Cryptolib rule — so the serials differ in their first 8 digits;
// the ready-made identities' serials 99213845 01/02/03 would all read as
// 99213845.)
func newCard(t testing.TB, name string, b virtual.Behaviour) *virtual.Card {
	t.Helper()
	return newModelCard(t, virtual.ModelCPS3, name, b)
}

// newModelCard is newCard for a card model (virtual.Model*).
func newModelCard(t testing.TB, model, name string, b virtual.Behaviour) *virtual.Card {
	t.Helper()
	cfg, err := virtual.Identity(name)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Serial = fmt.Sprintf("%08d00", 10000000+serialSeq.Add(1))
	cfg.Behaviour = b
	cfg.Model = model
	c, err := virtual.NewCard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newCard returns a fresh virtual card of the rig's model.
func (r *rig) newCard(name string, b virtual.Behaviour) *virtual.Card {
	r.t.Helper()
	return newModelCard(r.t, r.model.name, name, b)
}

// agentSerial is the serial the agent reads for a virtual card.
func agentSerial(c *virtual.Card) string { return c.Serial()[:8] }

// pins returns a PINFunc answering the given secrets in order and
// recording the requests. A call beyond the list fails the test.
type pinRecorder struct {
	t       *testing.T
	mu      sync.Mutex
	answers []string
	reqs    []card.PINRequest
	// at, when set, runs when the PINFunc is called (before answering).
	at func(req card.PINRequest)
}

func pins(t *testing.T, answers ...string) *pinRecorder {
	return &pinRecorder{t: t, answers: answers}
}

func (p *pinRecorder) fn(ctx context.Context, req card.PINRequest) ([]byte, error) {
	p.mu.Lock()
	i := len(p.reqs)
	p.reqs = append(p.reqs, req)
	at := p.at
	p.mu.Unlock()
	if at != nil {
		at(req)
	}
	if i >= len(p.answers) {
		p.t.Errorf("PINFunc called %d times, %d answers", i+1, len(p.answers))
		return nil, errors.New("unexpected prompt")
	}
	return []byte(p.answers[i]), nil
}

func (p *pinRecorder) requests() []card.PINRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]card.PINRequest(nil), p.reqs...)
}

// hasCommand reports whether a traced command starts with prefix.
func hasCommand(cmds []string, prefix string) bool {
	for _, c := range cmds {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

func isCmd(ins, p1 byte) func([]byte) bool {
	return func(cmd []byte) bool { return len(cmd) >= 4 && cmd[1] == ins && cmd[2] == p1 }
}
