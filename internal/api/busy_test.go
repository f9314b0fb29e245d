package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/card"
)

// busyCards is the real engine behind a reader that the agent itself holds
// for the first busy calls of Sign and Authenticate (the tray reading the
// PIN counter). With afterPrompt, it asks for the PIN first and then
// reports busy (another application took the card between the two
// transactions).
type busyCards struct {
	CardService
	busy        int32
	afterPrompt bool
	calls       atomic.Int32
}

func (b *busyCards) try(ctx context.Context, reader string, pin card.PINFunc) error {
	if b.calls.Add(1) > b.busy {
		return nil
	}
	if b.afterPrompt {
		secret, err := pin(ctx, card.PINRequest{Kind: card.KindPIN, Reader: reader, TriesLeft: 3})
		clear(secret)
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("%w on reader %q", card.ErrBusy, reader)
}

func (b *busyCards) Sign(ctx context.Context, reader string, tbs []byte, pin card.PINFunc) (*card.Signature, error) {
	if err := b.try(ctx, reader, pin); err != nil {
		return nil, err
	}
	return b.CardService.Sign(ctx, reader, tbs, pin)
}

func (b *busyCards) Authenticate(ctx context.Context, reader string, data []byte, pin card.PINFunc) (*card.Signature, error) {
	if err := b.try(ctx, reader, pin); err != nil {
		return nil, err
	}
	return b.CardService.Authenticate(ctx, reader, data, pin)
}

// TestEngineBusyWithTheAgentsOwnRead: a web operation waits a little for a
// reader the agent itself holds, before any prompt; it gives agent_busy
// when that lasts, and never retries once the holder was prompted.
func TestEngineBusyWithTheAgentsOwnRead(t *testing.T) {
	old := engineBusyWait
	engineBusyWait = 300 * time.Millisecond
	t.Cleanup(func() { engineBusyWait = old })
	h := newHarness(t, harnessOpts{})
	serve := func(cards CardService, method, path, body string) (*httptest.ResponseRecorder, time.Duration) {
		srv, err := New(Options{AllowedOrigins: []string{testOrigin}, Ports: []int{47180}, Version: "test", PINTimeout: 20 * time.Second}, cards, h.prompter)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		start := time.Now()
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, req(method, path, body))
		return w, time.Since(start)
	}

	for _, c := range []struct{ path, body string }{
		{"/v1/sign", validSign},
		{"/v1/authenticate", authBody(goodNonce)},
		{"/v1/sign", `{"document":"` + b64([]byte("doc")) + `","format":"cades"}`},
	} {
		before := h.prompts()
		bc := &busyCards{CardService: h.eng, busy: 3}
		w, _ := serve(bc, http.MethodPost, c.path, c.body)
		if w.Code != 200 || bc.calls.Load() != 4 || h.prompts() != before+1 {
			t.Fatalf("%s: %d after %d calls, %d prompts: %s", c.path, w.Code, bc.calls.Load(), h.prompts()-before, w.Body)
		}
	}

	before := h.prompts()
	bc := &busyCards{CardService: h.eng, busy: 1 << 30}
	w, took := serve(bc, http.MethodPost, "/v1/sign", validSign)
	problemOf(t, w, 409, CodeAgentBusy)
	if took < engineBusyWait || took > 10*engineBusyWait || h.prompts() != before {
		t.Fatalf("lasting busy: took %v, %d prompts", took, h.prompts()-before)
	}

	bc = &busyCards{CardService: h.eng, busy: 1, afterPrompt: true}
	w, _ = serve(bc, http.MethodPost, "/v1/sign", validSign)
	problemOf(t, w, 409, CodeAgentBusy)
	if bc.calls.Load() != 1 || h.prompts() != before+1 {
		t.Fatalf("retried after the prompt: %d calls, %d prompts", bc.calls.Load(), h.prompts()-before)
	}
}
