package probe_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/card/memreader"
	"github.com/cpsagent/cpsagent/internal/card/pcsc"
	"github.com/cpsagent/cpsagent/internal/card/pcsc/pcsctest"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
)

// The pcscd legs of this package use the vpcd slot of the shared test
// convention (pcsctest: CPSAGENT_VPCD_ADDR, default slot 0 "Virtual PCD 00
// 00") under its flock (/tmp/cpsagent-vpcd-slotN.lock). Slot 1 would be the
// natural choice, but internal/card/virtual's OpenSC test inserts its card
// there without the flock, so two packages run by one `go test` would
// disconnect each other's cards.

var serialSeq atomic.Int64

// newCard returns a virtual CPS3 (identity "medecin") with behaviour b, a
// serial unique in the process, and its trace in buf (may be nil).
func newCard(t testing.TB, b virtual.Behaviour, buf *syncBuffer) *virtual.Card {
	t.Helper()
	cfg, err := virtual.Identity("medecin")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Serial = fmt.Sprintf("%08d00", 20000000+serialSeq.Add(1))
	cfg.Behaviour = b
	if buf != nil {
		cfg.Trace = buf
	}
	c, err := virtual.NewCard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// syncBuffer is a goroutine-safe trace sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// quirksFile writes content to a temporary quirks.json and loads it with
// the agent's loader; "" means no policy file (the shipped defaults).
func quirksFile(t testing.TB, content string) cps.Quirks {
	t.Helper()
	path := filepath.Join(t.TempDir(), "quirks.json")
	if content != "" {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	q, src, err := cps.LoadQuirks(path)
	if err != nil {
		t.Fatalf("loading the quirks file %s: %v", content, err)
	}
	if (content == "") != (src == "built-in") {
		t.Fatalf("quirks source %q for %q", src, content)
	}
	return q
}

// slot is one reader holding a card, over memreader or pcscd.
type slot struct {
	tr     card.Transport
	reader string
	insert func(t *testing.T, c *virtual.Card)
	remove func(t *testing.T)
}

const memReaderName = "Mem Reader 0"

func memSlot(t *testing.T) *slot {
	tr := memreader.New(memReaderName)
	return &slot{tr: tr, reader: memReaderName,
		insert: func(t *testing.T, c *virtual.Card) {
			if err := tr.Insert(memReaderName, c); err != nil {
				t.Fatal(err)
			}
		},
		remove: func(*testing.T) { tr.Remove(memReaderName) },
	}
}

// requireSlot is pcsctest.Require plus the slot's flock: under CI=true a
// missing pcscd or reader fails the test, elsewhere it is skipped with a
// warning.
func requireSlot(t *testing.T) (addr, reader string) {
	t.Helper()
	addr, reader = pcsctest.Require(t) // shared pcscd lock held until t ends
	pcsctest.LockSlot(t, addr)
	return addr, reader
}

// pcscSlot inserts cards into the vpcd slot and waits, through the PC/SC
// monitor's events, until pcscd has seen them come and go.
func pcscSlot(t *testing.T) *slot {
	slotAddr, slotReader := requireSlot(t)
	tr := pcsc.New(pcsc.Options{})
	t.Cleanup(func() { _ = tr.Close() })
	events := make(chan card.TransportEvent, 64)
	ctx, cancel := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		_ = tr.Watch(ctx, func(ev card.TransportEvent) {
			if ev.Reader == slotReader || ev.Reader == "" {
				events <- ev
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-watchDone })
	wait := func(t *testing.T, typ card.EventType) {
		t.Helper()
		tm := time.NewTimer(15 * time.Second)
		defer tm.Stop()
		for {
			select {
			case ev := <-events:
				if ev.Type == typ {
					return
				}
			case <-tm.C:
				t.Fatalf("no %s event for %q within 15 s", typ, slotReader)
			}
		}
	}
	wait(t, card.EventReaderAdded)
	// A card left by the previous user of the slot (another test process)
	// is still shown until pcscd's next presence poll.
	if rs, err := tr.Readers(context.Background()); err == nil {
		for _, r := range rs {
			if r.Name == slotReader && r.CardPresent {
				wait(t, card.EventCardRemoved)
			}
		}
	}
	var stop func()
	s := &slot{tr: tr, reader: slotReader}
	s.insert = func(t *testing.T, c *virtual.Card) {
		cctx, ccancel := context.WithCancel(context.Background())
		cl := &virtual.VPCDClient{Addr: slotAddr, Card: c, Dial: pcsctest.Dial}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := cl.Run(cctx); err != nil && !errors.Is(err, virtual.ErrCardPulled) && !errors.Is(err, context.Canceled) &&
				!errors.Is(err, net.ErrClosed) {
				t.Logf("vpcd client: %v", err)
			}
		}()
		stop = func() { ccancel(); <-done }
		wait(t, card.EventCardInserted)
	}
	s.remove = func(t *testing.T) {
		if stop != nil {
			stop()
			stop = nil
			wait(t, card.EventCardRemoved)
		}
	}
	t.Cleanup(func() { s.remove(t) })
	return s
}

// engine returns an engine over s with quirks q, its trace in lines.
func engine(s *slot, q cps.Quirks, trace *syncBuffer) *card.Engine {
	return card.New(s.tr, card.Options{Quirks: q, NoPreRead: true, Trace: func(_, line string) {
		if trace != nil {
			fmt.Fprintln(trace, line)
		}
	}})
}

// secrets answers every prompt: the virtual card's PIN and PUK, and 2468 as
// a new PIN.
func secrets(_ context.Context, req card.PINRequest) ([]byte, error) {
	switch req.Kind {
	case card.KindPUK:
		return []byte(virtual.DefaultPUK), nil
	case card.KindNewPIN:
		return []byte("2468"), nil
	}
	return []byte(virtual.DefaultPIN), nil
}

// wrongPIN always answers 0000.
func wrongPIN(context.Context, card.PINRequest) ([]byte, error) { return []byte("0000"), nil }

// commandsWithData returns the card-trace lines of commands with INS ins
// that carry a data field (after the 5-byte header).
func commandsWithData(lines []string, ins string) []string {
	var out []string
	for _, l := range lines {
		i := strings.Index(l, " > ")
		if i < 0 {
			continue
		}
		f := strings.Fields(l[i+3:])
		if len(f) > 5 && f[1] == ins {
			out = append(out, l)
		}
	}
	return out
}
