package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/bench/harness"
	"github.com/cpsagent/cpsagent/internal/card/memreader"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
)

// Regression tests for the bugs the soak, the benchmarks and the HTTP
// fuzzer found. They run in-process (API + engine + in-memory reader, the
// real code paths, no pcscd), so they are fast and deterministic.

// gatedCard is a virtual card whose APDUs can be held: while the gate is
// closed, the card blocks inside its next APDU (through the latency
// model's sleep), as a slow real card would.
type gatedCard struct {
	card    *virtual.Card
	mu      sync.Mutex
	closed  bool
	release chan struct{}
	entered chan struct{}
}

func newGatedCard(t *testing.T) *gatedCard {
	t.Helper()
	g := &gatedCard{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	cfg, err := virtual.Identity("medecin")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Latency = virtual.Latency{PerAPDU: time.Nanosecond}
	cfg.Sleep = func(time.Duration) {
		g.mu.Lock()
		closed, release := g.closed, g.release
		g.mu.Unlock()
		if !closed {
			return
		}
		select {
		case g.entered <- struct{}{}:
		default:
		}
		<-release
	}
	if g.card, err = virtual.NewCard(cfg); err != nil {
		t.Fatal(err)
	}
	return g
}

// close makes the next APDU block until open.
func (g *gatedCard) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed, g.release = true, make(chan struct{})
}

func (g *gatedCard) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		g.closed = false
		close(g.release)
	}
}

func startInProc(t *testing.T, g *gatedCard, noPreRead bool) *harness.InProc {
	t.Helper()
	p, err := harness.StartInProcess(harness.InProcOptions{Dir: t.TempDir(), Card: g.card, NoPreRead: noPreRead})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.open()
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func do(p *harness.InProc, ctx context.Context, method, path, body string) harness.Result {
	r, err := http.NewRequestWithContext(ctx, method, p.Base+path, strings.NewReader(body))
	if err != nil {
		return harness.Result{Err: err}
	}
	r.Header.Set("Origin", harness.DefaultOrigin)
	if method == http.MethodPost {
		r.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.Client.Do(r)
	if err != nil {
		return harness.Result{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return harness.Result{Status: resp.StatusCode, Header: resp.Header, Body: b, Err: err}
}

// TestRegressionSignNotBusyDuringIdentityRead: docs/api.md says GET
// /v1/card reads cached state and that agent_busy means "another card
// operation or PIN prompt in progress". But the engine takes the reader for
// GET /v1/card as a user operation (card.Engine.Card → acquire(internal =
// false), reading the serial number again: 2 APDUs, 80 ms on a CPS3; a
// cold read takes seconds), so a signature requested while a page reads
// the identity fails at once with agent_busy. Found by the benchmark's load phase (16 clients reading
// /v1/card while signing): some signatures got agent_busy.
//
// Expected: the signature waits for the short identity read (as it already
// waits for the automatic read after insertion) and succeeds.
func TestRegressionSignNotBusyDuringIdentityRead(t *testing.T) {
	g := newGatedCard(t)
	p := startInProc(t, g, true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := "?reader=" + url.QueryEscape(harness.InProcReader)

	// A page reads the identity of a card the agent has not read yet (a
	// warm read of the card in place sends no APDU); the card is slow to
	// answer.
	g.close()
	cardDone := make(chan harness.Result, 1)
	go func() { cardDone <- do(p, ctx, http.MethodGet, "/v1/card"+q, "") }()
	select {
	case <-g.entered:
	case <-ctx.Done():
		t.Fatal("GET /v1/card never reached the card")
	}
	// Meanwhile the user clicks "sign". The identity read ends 300 ms later.
	time.AfterFunc(300*time.Millisecond, g.open)
	r := do(p, ctx, http.MethodPost, "/v1/sign", fmt.Sprintf(`{"dataToSign":"YWJj","reader":%q}`, harness.InProcReader))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if c := <-cardDone; c.Err != nil || c.Status != http.StatusOK {
		t.Fatalf("GET /v1/card: %v %d %s", c.Err, c.Status, c.Body)
	}
	if r.Status != http.StatusOK {
		code, _ := harness.ProblemCode(r)
		t.Fatalf("POST /v1/sign during a GET /v1/card: %d %s, want 200 (the identity read is not a card operation "+
			"in the sense of docs/api.md; the signature should wait for it)", r.Status, code)
	}
}

// muteCard answers 6F 00 while the virtual card has no power, as the vpcd
// driver does (internal/card/virtual, serveStream): the reader still sees
// the card (its ATR), the card no longer answers. It also counts resets.
type muteCard struct {
	*virtual.Card
	resets atomic.Int64
}

func (m *muteCard) Transmit(cmd []byte) ([]byte, error) {
	resp, err := m.Card.Transmit(cmd)
	if errors.Is(err, virtual.ErrPoweredOff) {
		return []byte{0x6F, 0x00}, nil
	}
	return resp, err
}

func (m *muteCard) Reset() { m.resets.Add(1); m.Card.Reset() }

// TestRegressionRecoversFromMuteCard: the full soak (10,000 requests,
// seed 563083) ended with an agent that answered card_error to every
// request for good: the virtual card had lost its power in a fast
// pull-and-reinsert that pcscd did not see as a removal (vpcd reconnected
// within its 400 ms presence polling), so every APDU got 6F 00 — the real
// world's equivalent is a contact bounce or a card that went mute. The
// agent never resets the card unless a PIN was sent (card/session.go,
// txn.end), so no request can ever recover it; only pulling the card out
// does. Reproduced here deterministically: the card loses power while the
// reader keeps it.
//
// Expected: after a failure with an unexpected card answer (ErrCardFailure:
// 6F 00, no status word, a transmit error while the card is still present),
// the engine ends the transaction with a card reset (Session.End(true):
// SCARD_RESET_CARD, one "02" on vpcd), so the next request works.
func TestRegressionRecoversFromMuteCard(t *testing.T) {
	cfg, err := virtual.Identity("medecin")
	if err != nil {
		t.Fatal(err)
	}
	vc, err := virtual.NewCard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mc := &muteCard{Card: vc}
	p, err := harness.StartInProcess(harness.InProcOptions{Dir: t.TempDir(), Card: vc,
		Wrap: func(*virtual.Card) memreader.Card { return mc }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := "?reader=" + url.QueryEscape(harness.InProcReader)
	sign := fmt.Sprintf(`{"dataToSign":"YWJj","reader":%q}`, harness.InProcReader)
	for _, step := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/card" + q, ""},
		{http.MethodPost, "/v1/sign", sign},
	} {
		vc.PowerOff() // the card goes mute; the reader does not notice
		var codes []string
		ok := false
		for try := 0; try < 3 && !ok; try++ {
			r := do(p, ctx, step.method, step.path, step.body)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			ok = r.Status == http.StatusOK
			if !ok {
				code, err := harness.ProblemCode(r)
				if err != nil {
					t.Fatal(err)
				}
				codes = append(codes, code)
			}
		}
		if !ok {
			t.Fatalf("%s %s: no recovery after 3 requests (%v, %d card resets): the agent must reset a card that answers "+
				"6F 00 instead of failing every request until the card is pulled", step.method, step.path, codes, mc.resets.Load())
		}
	}
}

// TestRegressionIdentityReadWaitsForReadAfterInsertion: the fix of
// TestRegressionSignNotBusyDuringIdentityRead (commit 8ba4632) made
// card.Engine.Card take the reader as an "internal" operation, and two
// internal operations exclude each other: a GET /v1/card sent right after
// the card-inserted event, while the agent's own read after insertion runs,
// now fails at once with agent_busy (there is no identity in the cache
// yet) instead of waiting for that read, as it did before. Found by the
// benchmark's cold sequences (bench/run.sh --quick: "agent cold-identity
// failed: /v1/card: 409 agent_busy").
//
// Expected: an identity read waits for the read after insertion (and for
// another identity read) and answers the identity; a PIN operation waits
// for both; only a PIN operation in progress makes the identity read fall
// back to the cache (or agent_busy without one). E.g. acquire with two
// flags: waitable (internal, Card) and mayWait (user operations and Card).
func TestRegressionIdentityReadWaitsForReadAfterInsertion(t *testing.T) {
	g := newGatedCard(t)
	p := startInProc(t, g, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := "?reader=" + url.QueryEscape(harness.InProcReader)

	// The card leaves and comes back; the agent's read after insertion is
	// slow (held at its first APDU).
	p.Reader.Remove(harness.InProcReader)
	waitReader(t, p, false)
	g.close()
	if err := p.Reader.Insert(harness.InProcReader, g.card); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.entered:
	case <-ctx.Done():
		t.Fatal("the read after insertion never reached the card")
	}
	// A portal reacts to card-inserted with GET /v1/card; the read after
	// insertion ends 300 ms later.
	time.AfterFunc(300*time.Millisecond, g.open)
	r := do(p, ctx, http.MethodGet, "/v1/card"+q, "")
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if r.Status != http.StatusOK {
		code, _ := harness.ProblemCode(r)
		t.Fatalf("GET /v1/card during the read after insertion: %d %s, want 200 (wait for that read)", r.Status, code)
	}
}

// waitReader waits until the engine reports the in-process reader with or
// without a card.
func waitReader(t *testing.T, p *harness.InProc, present bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, r := range p.Engine.Status().Readers {
			if r.Name == harness.InProcReader && r.CardPresent == present {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader never reported card present=%v", present)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
