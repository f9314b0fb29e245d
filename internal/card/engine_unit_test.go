package card_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/card/memreader"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
)

// Engine behaviour that needs two readers, a service outage or no monitor:
// in memory only (the pcscd leg covers the transport-specific parts in
// pcscd_test.go).

func runEngine(t *testing.T, eng *card.Engine) <-chan card.Event {
	t.Helper()
	evs, unsub := eng.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		unsub()
	})
	return evs
}

func expect(t *testing.T, evs <-chan card.Event, typ card.EventType, reader string) card.Event {
	t.Helper()
	tm := time.NewTimer(5 * time.Second)
	defer tm.Stop()
	for {
		select {
		case ev := <-evs:
			if ev.Type == typ && (reader == "" || ev.Reader == reader) {
				return ev
			}
		case <-tm.C:
			t.Fatalf("no %s event for %q", typ, reader)
		}
	}
}

func TestTwoReaders(t *testing.T) {
	tr := memreader.New("A", "B")
	eng := card.New(tr, card.Options{})
	evs := runEngine(t, eng)
	a, b := newCard(t, "medecin", virtual.Behaviour{}), newCard(t, "infirmier", virtual.Behaviour{})
	_ = tr.Insert("A", a)
	expect(t, evs, card.EventIdentityReady, "A")
	_ = tr.Insert("B", b)
	expect(t, evs, card.EventIdentityReady, "B")
	ctx := context.Background()

	if _, err := eng.Card(ctx, ""); !errors.Is(err, card.ErrSeveralCards) {
		t.Fatalf(`Card("") with two cards: %v`, err)
	}
	if _, err := eng.Card(ctx, "C"); !errors.Is(err, card.ErrNoReader) {
		t.Fatalf("unknown reader: %v", err)
	}
	// A long operation on A does not disturb B.
	inPrompt, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := eng.Sign(ctx, "A", []byte("a"), func(context.Context, card.PINRequest) ([]byte, error) {
			close(inPrompt)
			<-release
			return []byte(virtual.DefaultPIN), nil
		})
		done <- err
	}()
	<-inPrompt
	sig, err := eng.Sign(ctx, "B", []byte("b"), pins(t, virtual.DefaultPIN).fn)
	if err != nil || sig.Serial != agentSerial(b) {
		t.Fatalf("sign on B while A is busy: %+v, %v", sig, err)
	}
	if _, err := eng.Authenticate(ctx, "A", []byte{1}, pins(t).fn); !errors.Is(err, card.ErrBusy) {
		t.Fatalf("second operation on A: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// With B removed, "" is A.
	tr.Remove("B")
	expect(t, evs, card.EventCardRemoved, "B")
	if d, err := eng.Card(ctx, ""); err != nil || d.Reader != "A" {
		t.Fatalf(`Card("") = %+v, %v`, d, err)
	}
}

func TestServiceOutage(t *testing.T) {
	tr := memreader.New("R")
	eng := card.New(tr, card.Options{})
	evs := runEngine(t, eng)
	c := newCard(t, "medecin", virtual.Behaviour{})
	_ = tr.Insert("R", c)
	expect(t, evs, card.EventIdentityReady, "R")
	ctx := context.Background()

	tr.SetServiceDown(true)
	expect(t, evs, card.EventCardRemoved, "R")
	expect(t, evs, card.EventReaderRemoved, "R")
	expect(t, evs, card.EventServiceLost, "")
	if st := eng.Status(); st.ServiceUp || len(st.Readers) != 0 {
		t.Fatalf("status while down: %+v", st)
	}
	if _, err := eng.Sign(ctx, "R", []byte("x"), pins(t).fn); !errors.Is(err, card.ErrPCSCUnavailable) {
		t.Fatalf("sign while down: %v", err)
	}
	if _, err := eng.Readers(ctx); !errors.Is(err, card.ErrPCSCUnavailable) {
		t.Fatalf("Readers while down: %v", err)
	}
	if _, err := eng.Card(ctx, ""); !errors.Is(err, card.ErrPCSCUnavailable) {
		t.Fatalf("card while down: %v", err)
	}

	tr.SetServiceDown(false)
	expect(t, evs, card.EventServiceRestored, "")
	expect(t, evs, card.EventIdentityReady, "R")
	if st := eng.Status(); !st.ServiceUp || len(st.Readers) != 1 || !st.Readers[0].CardPresent {
		t.Fatalf("status after recovery: %+v", st)
	}
	if _, err := eng.Sign(ctx, "", []byte("x"), pins(t, virtual.DefaultPIN).fn); err != nil {
		t.Fatal(err)
	}
}

func TestWithoutMonitor(t *testing.T) {
	tr := memreader.New("R")
	eng := card.New(tr, card.Options{})
	ctx := context.Background()
	if _, err := eng.Card(ctx, ""); !errors.Is(err, card.ErrNoCard) {
		t.Fatalf("no card: %v", err)
	}
	a := newCard(t, "medecin", virtual.Behaviour{})
	_ = tr.Insert("R", a)
	rs, err := eng.Readers(ctx)
	if err != nil || len(rs) != 1 || !rs[0].CardPresent || rs[0].Card == nil || rs[0].Card.Generation != cps.GenerationCPS3 {
		t.Fatalf("Readers = %+v, %v", rs, err)
	}
	if st := eng.Status(); st.Monitoring || len(st.Readers) != 0 {
		t.Fatalf("Status without Run = %+v", st)
	}
	d, err := eng.Card(ctx, "")
	if err != nil || d.Serial != agentSerial(a) {
		t.Fatalf("Card = %+v, %v", d, err)
	}
	// Swap the card between the identity read and the signature: no
	// monitor told the engine, the serial check does.
	b := newCard(t, "infirmier", virtual.Behaviour{})
	_ = tr.Insert("R", b)
	p := pins(t)
	if _, err := eng.Sign(ctx, "R", []byte("x"), p.fn); !errors.Is(err, card.ErrCardMismatch) {
		t.Fatalf("swapped card: %v", err)
	}
	if len(p.requests()) != 0 || b.Stats().Verifies != 0 {
		t.Fatal("prompted or verified on the swapped card")
	}
	// The mismatch is reported once; the new card is then usable.
	if sig, err := eng.Sign(ctx, "R", []byte("x"), pins(t, virtual.DefaultPIN).fn); err != nil || sig.Serial != agentSerial(b) {
		t.Fatalf("after the mismatch: %+v, %v", sig, err)
	}
	if _, err := eng.Sign(ctx, "R", []byte("x"), nil); !errors.Is(err, card.ErrInvalidInput) {
		t.Fatalf("nil PINFunc: %v", err)
	}
}

func TestRunTwice(t *testing.T) {
	eng := card.New(memreader.New("R"), card.Options{})
	evs := runEngine(t, eng)
	expect(t, evs, card.EventReaderAdded, "R")
	if err := eng.Run(context.Background()); !errors.Is(err, card.ErrAlreadyRunning) {
		t.Fatalf("second Run: %v", err)
	}
}

func TestContextCancelledInPrompt(t *testing.T) {
	tr := memreader.New("R")
	eng := card.New(tr, card.Options{})
	c := newCard(t, "medecin", virtual.Behaviour{})
	_ = tr.Insert("R", c)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := eng.Sign(ctx, "R", []byte("x"), func(ctx context.Context, _ card.PINRequest) ([]byte, error) {
		cancel()
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if !errors.Is(err, context.Canceled) || c.Stats().Verifies != 0 {
		t.Fatalf("err = %v, verifies = %d", err, c.Stats().Verifies)
	}
	// A PINFunc that ignores the cancellation: nothing is sent either.
	ctx, cancel = context.WithCancel(context.Background())
	_, err = eng.Sign(ctx, "R", []byte("x"), func(context.Context, card.PINRequest) ([]byte, error) {
		cancel()
		return []byte(virtual.DefaultPIN), nil
	})
	if !errors.Is(err, context.Canceled) || c.Stats().Verifies != 0 {
		t.Fatalf("err = %v, verifies = %d", err, c.Stats().Verifies)
	}
}

// fakeCard answers every APDU with 6D 00 and has a configurable ATR.
type fakeCard struct{ atr []byte }

func (f *fakeCard) Transmit([]byte) ([]byte, error) { return []byte{0x6D, 0x00}, nil }
func (f *fakeCard) ATR() []byte                     { return f.atr }
func (f *fakeCard) Reset()                          {}

func TestUnsupportedCards(t *testing.T) {
	tr := memreader.New("R")
	eng := card.New(tr, card.Options{})
	evs := runEngine(t, eng)
	ctx := context.Background()
	for _, tc := range []struct {
		atr []byte
		gen string
	}{
		{virtual.ATROther, cps.GenerationUnknown},
		{[]byte{0x3B, 0x95, 0x13, 0x81, 0x01, 0x80, 0x73, 0xFF, 0x01, 0x00, 0x0B}, cps.GenerationUnknown},
		// One byte off a CPS4 ATR: CPS4 ATRs match exactly.
		{append(append([]byte(nil), cps.CPS4Facts.ATRs[0][:16]...), 0x45), cps.GenerationUnknown},
	} {
		_ = tr.Insert("R", &fakeCard{atr: tc.atr})
		if ev := expect(t, evs, card.EventCardInserted, "R"); ev.Generation != tc.gen {
			t.Fatalf("inserted %+v", ev)
		}
		if _, err := eng.Card(ctx, "R"); !errors.Is(err, card.ErrUnsupportedCard) {
			t.Fatalf("%s: %v", tc.gen, err)
		}
		if _, err := eng.Sign(ctx, "R", nil, pins(t).fn); !errors.Is(err, card.ErrUnsupportedCard) {
			t.Fatalf("%s sign: %v", tc.gen, err)
		}
		rs, _ := eng.Readers(ctx)
		if len(rs) != 1 || rs[0].Card == nil || rs[0].Card.Supported || rs[0].Card.Generation != tc.gen {
			t.Fatalf("readers %+v", rs)
		}
	}
	if tr.Transmits() != 0 {
		t.Fatalf("%d APDUs sent to unsupported cards", tr.Transmits())
	}
}

func TestSlowSubscriber(t *testing.T) {
	tr := memreader.New("R")
	eng := card.New(tr, card.Options{NoPreRead: true})
	slow, unsub := eng.Subscribe() // never read until the end
	defer unsub()
	evs := runEngine(t, eng)
	expect(t, evs, card.EventReaderAdded, "R")
	c := newCard(t, "medecin", virtual.Behaviour{})
	for i := 0; i < 100; i++ {
		_ = tr.Insert("R", c)
		tr.Remove("R")
	}
	tr.AddReader("Z")
	// The fast subscriber gets the last event: the monitor never waited for
	// the slow one (each subscriber keeps the newest events).
	expect(t, evs, card.EventReaderAdded, "Z")
	if got := len(slow); got != cap(slow) {
		t.Fatalf("slow subscriber holds %d events, want a full buffer of %d", got, cap(slow))
	}
	var last card.Event
	for len(slow) > 0 {
		last = <-slow
	}
	if last.Type != card.EventReaderAdded || last.Reader != "Z" {
		t.Fatalf("the slow subscriber's newest event is %+v, want the last one", last)
	}
	unsub()
	unsub() // harmless
}

func TestPKCS15Fallback(t *testing.T) {
	// Certificates at other FIDs than the default quirks say: the default
	// paths answer 6A 82 and the engine follows ODF → CDF. Also with the
	// other [?] transport behaviours of the card: READ BINARY past the end
	// answering 6C xx, and data returned without 61 xx (T=1-like reader).
	for name, b := range map[string]virtual.Behaviour{
		"default":         {AuthCertFID: 0xB001, SignCertFID: 0xB002},
		"6C past the end": {AuthCertFID: 0xB001, SignCertFID: 0xB002, ReadPastEOF: "6C"},
		"no GET RESPONSE": {AuthCertFID: 0xB001, SignCertFID: 0xB002, Transport: "t1"},
	} {
		t.Run(name, func(t *testing.T) {
			tr := memreader.New("R")
			var cmds []string
			var mu sync.Mutex
			eng := card.New(tr, card.Options{NoPreRead: true, Trace: func(_, l string) {
				mu.Lock()
				defer mu.Unlock()
				if strings.HasPrefix(l, "> ") {
					cmds = append(cmds, l[2:])
				}
			}})
			c := newCard(t, "medecin", b)
			_ = tr.Insert("R", c)
			d, err := eng.Card(context.Background(), "R")
			if err != nil {
				t.Fatal(err)
			}
			if d.AuthCert.KeyUsage == d.SignCert.KeyUsage || d.Identity == nil {
				t.Fatalf("certificates mixed up: %v / %v", d.AuthCert.KeyUsage, d.SignCert.KeyUsage)
			}
			if _, err := eng.Sign(context.Background(), "R", []byte("x"), pins(t, virtual.DefaultPIN).fn); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, want := range []string{"00 A4 09 0C 06 3F 00 00 01 A0 01", "00 A4 09 0C 06 3F 00 00 01 50 31", "00 A4 09 0C 06 3F 00 00 01 B0 01", "00 A4 09 0C 06 3F 00 00 01 B0 02"} {
				if !hasCommand(cmds, want) {
					t.Errorf("no %s in %q", want, cmds)
				}
			}
		})
	}
}

// TestNoSecretInLogsOrTrace runs PIN operations with distinctive codes and
// checks that neither the log nor the trace ever carries them.
func TestNoSecretInLogsOrTrace(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	var trace []string
	var mu sync.Mutex
	tr := memreader.New("R")
	eng := card.New(tr, card.Options{Logger: zap.New(core), Trace: func(_, l string) {
		mu.Lock()
		trace = append(trace, l)
		mu.Unlock()
	}})
	evs := runEngine(t, eng)
	c := newCard(t, "medecin", virtual.Behaviour{})
	_ = tr.Insert("R", c)
	expect(t, evs, card.EventIdentityReady, "R")
	ctx := context.Background()
	doc := []byte("CONFIDENTIAL-DOCUMENT-BODY")
	steps := []func() error{
		func() error { return eng.ChangePIN(ctx, "R", pins(t, virtual.DefaultPIN, "8642").fn) },
		func() error { _, err := eng.Sign(ctx, "R", doc, pins(t, "8642").fn); return err },
		func() error { _, _ = eng.Sign(ctx, "R", doc, pins(t, "7531").fn); return nil }, // wrong PIN
		func() error { return eng.Unblock(ctx, "R", pins(t, virtual.DefaultPUK, "8642").fn) },
	}
	for i, f := range steps {
		if err := f(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	secrets := []string{"8642", "7531", virtual.DefaultPUK, "38 36 34 32", "37 35 33 31", "31 32 33 34 35 36 37 38",
		"CONFIDENTIAL", fmt.Sprintf("% X", doc[len(doc)-8:])}
	mu.Lock()
	defer mu.Unlock()
	all := append([]string(nil), trace...)
	for _, e := range logs.All() {
		all = append(all, e.Message)
		for k, v := range e.ContextMap() {
			all = append(all, fmt.Sprintf("%s=%v", k, v))
		}
	}
	for _, line := range all {
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Fatalf("%q leaks %q", line, s)
			}
		}
	}
	if !hasCommand(trace, "> 00 20 00 01 04 ** ** ** **") || !hasCommand(trace, "> 00 2A 90 A0") {
		t.Fatalf("trace does not show the masked commands: %q", trace)
	}
}

// TestContactless: the identity over the contactless interface; signing,
// authentication and PIN management refused before any APDU (issue #9; the
// pcscd leg is in models_test.go).
func TestContactless(t *testing.T) {
	tr := memreader.New("R")
	eng := card.New(tr, card.Options{NoPreRead: true})
	c := newModelCard(t, virtual.ModelCPS3CL, "medecin", virtual.Behaviour{})
	_ = tr.Insert("R", c)
	ctx := context.Background()
	for name, op := range map[string]func() error{
		"sign":         func() error { _, err := eng.Sign(ctx, "R", []byte("x"), pins(t).fn); return err },
		"authenticate": func() error { _, err := eng.Authenticate(ctx, "R", []byte{1, 2, 3}, pins(t).fn); return err },
		"change-pin":   func() error { return eng.ChangePIN(ctx, "R", pins(t).fn) },
		"unblock":      func() error { return eng.Unblock(ctx, "R", pins(t).fn) },
		"pin-status":   func() error { _, err := eng.PINStatus(ctx, "R"); return err },
	} {
		if err := op(); !errors.Is(err, card.ErrNotPermitted) {
			t.Fatalf("%s over contactless: %v", name, err)
		}
	}
	if n := tr.Transmits(); n != 0 {
		t.Fatalf("%d APDUs sent before refusing", n)
	}
	d, err := eng.Card(ctx, "R")
	if err != nil || d.Generation != cps.GenerationCPS3CL || d.Identity == nil {
		t.Fatalf("identity over contactless: %+v, %v", d, err)
	}
}

func TestVerifyInMFQuirk(t *testing.T) {
	tr := memreader.New("R")
	q := cps.DefaultQuirks()
	q.VerifyInMF = true
	eng := card.New(tr, card.Options{Quirks: q, NoPreRead: true})
	_ = tr.Insert("R", newCard(t, "medecin", virtual.Behaviour{}))
	ctx := context.Background()
	if _, err := eng.Card(ctx, "R"); err != nil {
		t.Fatal(err)
	}
	sig, err := eng.Sign(ctx, "R", []byte("x"), pins(t, virtual.DefaultPIN).fn)
	if err != nil {
		t.Fatal(err)
	}
	// SELECT MF + VERIFY status | SELECT MF, VERIFY, SELECT DF, HT, DST, HASH, CDS, GET RESPONSE.
	if sig.APDUs != 10 {
		t.Fatalf("sign with VerifyInMF: %d APDUs, want 10", sig.APDUs)
	}
}

func TestSignEmptyMessageWhenTheCardRefusesAnEmptyTail(t *testing.T) {
	tr := memreader.New("R")
	eng := card.New(tr, card.Options{NoPreRead: true})
	_ = tr.Insert("R", newCard(t, "medecin", virtual.Behaviour{RejectEmptyHashTail: true}))
	if _, err := eng.Card(context.Background(), "R"); err != nil {
		t.Fatal(err)
	}
	sig, err := eng.Sign(context.Background(), "R", nil, pins(t, virtual.DefaultPIN).fn)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(nil)
	if err := rsa.VerifyPKCS1v15(sig.Certificate.PublicKey.(*rsa.PublicKey), crypto.SHA256, h[:], sig.Value); err != nil {
		t.Fatal(err)
	}
	if sig.APDUs != 8 { // the refused PSO HASH takes the place of nothing: CDS carries the hash
		t.Fatalf("%d APDUs", sig.APDUs)
	}
}
