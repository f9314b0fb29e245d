package pcsc_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/pcsc"
	"github.com/cpsagent/cpsagent/internal/card/pcsc/pcsctest"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
)

// vcard inserts a fresh virtual card in the test slot.
type vcard struct {
	card   *virtual.Card
	client *virtual.VPCDClient
	stop   func()
}

func insert(t *testing.T, addr string, dial bool) *vcard {
	t.Helper()
	cfg, err := virtual.Identity("medecin")
	if err != nil {
		t.Fatal(err)
	}
	c, err := virtual.NewCard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl := &virtual.VPCDClient{Addr: addr, Card: c}
	if dial {
		cl.Dial = pcsctest.Dial
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = cl.Run(ctx)
	}()
	v := &vcard{card: c, client: cl, stop: func() { cancel(); <-done }}
	t.Cleanup(v.stop)
	return v
}

// watch runs Watch and returns its events.
func watch(t *testing.T, tr *pcsc.Transport) <-chan card.TransportEvent {
	t.Helper()
	evs := make(chan card.TransportEvent, 256)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Watch(ctx, func(e card.TransportEvent) { evs <- e }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Watch did not return after cancel")
		}
	})
	return evs
}

func waitFor(t *testing.T, evs <-chan card.TransportEvent, typ card.EventType, reader string) card.TransportEvent {
	t.Helper()
	tm := time.NewTimer(10 * time.Second)
	defer tm.Stop()
	for {
		select {
		case e := <-evs:
			if e.Type == typ && (reader == "" || e.Reader == reader) {
				return e
			}
		case <-tm.C:
			t.Fatalf("no %s for %q", typ, reader)
		}
	}
}

func TestMonitorSeesCards(t *testing.T) {
	addr, reader := pcsctest.Require(t)
	pcsctest.LockSlot(t, addr)
	tr := pcsc.New(pcsc.Options{})
	defer tr.Close()

	// Without Watch, Readers scans once.
	rs, err := tr.Readers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !hasReader(rs, reader, false) && !hasReader(rs, reader, true) {
		t.Fatalf("Readers = %+v, want %q", rs, reader)
	}

	evs := watch(t, tr)
	waitFor(t, evs, card.EventServiceRestored, "")
	waitFor(t, evs, card.EventReaderAdded, reader)
	waitEmpty(t, tr, evs, reader)

	start := time.Now()
	v := insert(t, addr, true)
	ev := waitFor(t, evs, card.EventCardInserted, reader)
	t.Logf("insertion seen after %v", time.Since(start))
	if !strings.HasPrefix(fmt.Sprintf("% X", ev.ATR), "3B AC 00 40") {
		t.Fatalf("ATR % X", ev.ATR)
	}
	// While Watch runs, Readers answers from the monitor's state.
	if rs, err = tr.Readers(context.Background()); err != nil || !hasReader(rs, reader, true) {
		t.Fatalf("Readers = %+v, %v", rs, err)
	}
	// A session works, and the monitor does not wake up for it or for the reset.
	s, err := tr.Begin(context.Background(), reader)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := s.Transmit([]byte{0x00, 0x20, 0x00, 0x01}); err != nil || fmt.Sprintf("% X", resp) != "63 C3" {
		t.Fatalf("VERIFY status = % X, %v", resp, err)
	}
	if err := s.End(true); err != nil {
		t.Fatal(err)
	}
	tr.Refresh() // relist readers: nothing changes
	start = time.Now()
	v.stop()
	waitFor(t, evs, card.EventCardRemoved, reader)
	t.Logf("removal seen after %v", time.Since(start))
	select {
	case e := <-evs:
		if e.Reader == reader {
			t.Fatalf("unexpected event %+v", e)
		}
	default:
	}
	if _, err := tr.Begin(context.Background(), reader); !errors.Is(err, card.ErrNoCard) {
		t.Fatalf("Begin on an empty reader: %v", err)
	}
	if _, err := tr.Begin(context.Background(), "No Such Reader 00 00"); !errors.Is(err, card.ErrNoReader) {
		t.Fatalf("Begin on an unknown reader: %v", err)
	}
}

// waitEmpty waits until a card left in the slot by its previous user
// (another test process) is seen leaving.
func waitEmpty(t *testing.T, tr *pcsc.Transport, evs <-chan card.TransportEvent, reader string) {
	t.Helper()
	rs, err := tr.Readers(context.Background()) // the monitor's first scan
	if err != nil {
		t.Fatal(err)
	}
	if hasReader(rs, reader, true) {
		waitFor(t, evs, card.EventCardRemoved, reader)
	}
}

func hasReader(rs []card.ReaderState, name string, present bool) bool {
	for _, r := range rs {
		if r.Name == name {
			return r.CardPresent == present
		}
	}
	return false
}

// TestResetCost measures how to clear the PIN's verified state at the end
// of an operation, through pcscd + vpcd and the virtual card:
//   - EndTransaction(SCARD_RESET_CARD)  — what Session.End(true) does;
//   - Reconnect(SCARD_RESET_CARD)       — same effect, one more call;
//   - a "logout" APDU (re-select the IAS-ECC root application, OpenSC's
//     iasecc logout) — clears nothing on the virtual card (card-cpx.md §3
//     marks it [?]), so it is not an option.
//
// It prints a table with -v.
func TestResetCost(t *testing.T) {
	addr, reader := pcsctest.Require(t)
	pcsctest.LockSlot(t, addr)
	// The virtual card's default dialer shows the Debian vpcd driver's
	// ~40 ms per message (Nagle + delayed ACK); pcsctest.Dial removes it.
	for _, mode := range []struct {
		name   string
		quick  bool
		rounds int
	}{{"quickack dialer", true, 20}, {"default dialer", false, 8}} {
		t.Run(mode.name, func(t *testing.T) { resetCost(t, addr, reader, mode.quick, mode.rounds) })
	}
}

func resetCost(t *testing.T, addr, reader string, quick bool, rounds int) {
	tr := pcsc.New(pcsc.Options{})
	defer tr.Close()
	evs := watch(t, tr)
	waitEmpty(t, tr, evs, reader)
	v := insert(t, addr, quick)
	waitFor(t, evs, card.EventCardInserted, reader)
	defer func() {
		v.stop()
		waitFor(t, evs, card.EventCardRemoved, reader)
	}()
	rows := []string{}
	for _, m := range pcsc.ClearMethods() {
		var total time.Duration
		v.card.ResetStats()
		cleared, apdus := true, 0
		for i := 0; i < rounds; i++ {
			d, n, ok, err := pcsc.MeasureClear(context.Background(), tr, reader, m, []byte(virtual.DefaultPIN))
			if err != nil {
				t.Fatalf("%s: %v", m, err)
			}
			total += d
			apdus = n
			cleared = cleared && ok
		}
		// Each round ends with a reset of its own (cleanup). (Card counters
		// may include other processes' probes of the shared pcscd.)
		resets := v.card.Stats().Resets/int64(rounds) - 1
		rows = append(rows, fmt.Sprintf("%-28s clears=%-5v %8v/op  APDUs=%d  card resets=%d",
			m, cleared, (total/time.Duration(rounds)).Round(time.Microsecond), apdus, resets))
		switch m {
		case pcsc.ClearEndTransactionReset, pcsc.ClearReconnectReset:
			if !cleared || resets < 1 {
				t.Errorf("%s: cleared=%v, %d resets", m, cleared, resets)
			}
		case pcsc.ClearNone:
			if cleared {
				t.Errorf("LeaveCard cleared the verified state?")
			}
		}
	}
	// Reference: one APDU round trip (VERIFY without data).
	s, err := tr.Begin(context.Background(), reader)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < rounds; i++ {
		if i == 0 {
			start = time.Now() // the first exchange after a reset is slower
		}
		if _, err := s.Transmit([]byte{0x00, 0x20, 0x00, 0x01}); err != nil {
			t.Fatal(err)
		}
	}
	rows = append(rows, fmt.Sprintf("%-28s %23v/op", "(one APDU round trip)", (time.Since(start)/time.Duration(rounds)).Round(time.Microsecond)))
	_ = s.End(false)
	sort.Strings(rows)
	t.Logf("clearing the verified state over pcscd+vpcd (%d rounds each):\n  %s", rounds, strings.Join(rows, "\n  "))
}

// TestResetByAnotherApplication: another PC/SC client resets the card
// between two of our transactions; our next Begin absorbs
// SCARD_W_RESET_CARD (Reconnect) and keeps the insertion number.
func TestResetByAnotherApplication(t *testing.T) {
	addr, reader := pcsctest.Require(t)
	pcsctest.LockSlot(t, addr)
	core, logs := observer.New(zap.DebugLevel)
	ours, other := pcsc.New(pcsc.Options{Logger: zap.New(core)}), pcsc.New(pcsc.Options{})
	defer ours.Close()
	defer other.Close()
	evs := watch(t, ours)
	waitEmpty(t, ours, evs, reader)
	v := insert(t, addr, true)
	waitFor(t, evs, card.EventCardInserted, reader)
	defer func() {
		v.stop()
		waitFor(t, evs, card.EventCardRemoved, reader)
	}()
	ctx := context.Background()
	s, err := ours.Begin(ctx, reader)
	if err != nil {
		t.Fatal(err)
	}
	ins := s.Insertion()
	_ = s.End(false)
	resets := v.card.Stats().Resets
	o, err := other.Begin(ctx, reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.End(true); err != nil {
		t.Fatal(err)
	}
	if v.card.Stats().Resets != resets+1 {
		t.Fatal("the other application's reset did not reach the card")
	}
	s, err = ours.Begin(ctx, reader)
	if err != nil {
		t.Fatalf("Begin after another application's reset: %v", err)
	}
	defer s.End(false)
	if s.Insertion() != ins {
		t.Fatal("a reset changed the insertion number")
	}
	if logs.FilterMessageSnippet("reset by another application").Len() != 1 {
		t.Fatal("Begin did not see SCARD_W_RESET_CARD")
	}
	if r, err := s.Transmit([]byte{0x00, 0x20, 0x00, 0x01}); err != nil || fmt.Sprintf("% X", r) != "63 C3" {
		t.Fatalf("VERIFY status after the reset = % X, %v", r, err)
	}
}
