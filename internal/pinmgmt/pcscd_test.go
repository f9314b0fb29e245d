//go:build cgo && unix

package pinmgmt

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/pcsc"
	"github.com/cpsagent/cpsagent/internal/card/pcsc/pcsctest"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
	"github.com/cpsagent/cpsagent/internal/ledger"
)

// vpcdSlot1 is the vpcd slot these tests use, and its lock.
const (
	vpcdSlot1     = "127.0.0.1:35964"
	vpcdSlot1Lock = "/tmp/cpsagent-vpcd-slot1.lock"
)

// newPCSCRig serves a fresh virtual card on vpcd slot 1 and runs the engine
// on the PC/SC transport: every APDU goes through pcscd and the vpcd driver.
func newPCSCRig(t *testing.T) (*rig, string) {
	t.Helper()
	t.Setenv(pcsctest.EnvVPCDAddr, vpcdSlot1)
	addr, readerName := pcsctest.Require(t)
	lock, err := os.OpenFile(vpcdSlot1Lock, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })

	cfg, err := virtual.Identity("medecin")
	if err != nil {
		t.Fatal(err)
	}
	cfg.PIN, cfg.PUK = oldPIN, puk
	vc, err := virtual.NewCard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = (&virtual.VPCDClient{Addr: addr, Card: vc, Dial: pcsctest.Dial}).Run(ctx)
	}()
	logs := &syncBuffer{}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewDevelopmentEncoderConfig()), logs, zap.DebugLevel))
	tr := pcsc.New(pcsc.Options{Logger: log})
	e := card.New(tr, card.Options{Quirks: cfg.Behaviour.AgentQuirks(), Logger: log})
	events, unsub := e.Subscribe()
	ran := make(chan struct{})
	go func() { defer close(ran); _ = e.Run(ctx) }()
	t.Cleanup(func() {
		unsub()
		cancel()
		<-ran
		<-served
		tr.Close()
	})
	timeout := time.After(20 * time.Second)
wait:
	for {
		select {
		case ev := <-events:
			if ev.Type == card.EventCardInserted && ev.Reader == readerName {
				break wait
			}
		case <-timeout:
			t.Fatalf("the virtual card never appeared in %q", readerName)
		}
	}
	l, err := ledger.Open(t.TempDir(), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &rig{engine: e, card: vc, ledger: l, logs: logs, log: log}, readerName
}

// TestThroughPCSCD: PIN change, PIN blocked, unblock with the PUK, then the
// PUK run out, all on the virtual card behind pcscd + vpcd.
func TestThroughPCSCD(t *testing.T) {
	r, rd := newPCSCRig(t)
	st := func() card.PINStatus {
		s, err := r.engine.PINStatus(t.Context(), rd)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	if res := r.flows(answers(oldPIN, newPIN, newPIN)).ChangePIN(t.Context(), rd); !res.OK() {
		t.Fatalf("change: %+v", res)
	}
	if res := r.flows(answers(badPIN, oldPIN, oldPIN, badPIN, oldPIN, oldPIN, badPIN, oldPIN, oldPIN)).ChangePIN(t.Context(), rd); res.OK() {
		t.Fatal("changed with wrong PINs")
	}
	if s := st(); !s.Blocked {
		t.Fatalf("PIN not blocked: %+v", s)
	}
	if res := r.flows(answers(puk, oldPIN, oldPIN)).Unblock(t.Context(), rd); !res.OK() {
		t.Fatalf("unblock: %+v", res)
	}
	if s := st(); s.Blocked || s.TriesLeft != 3 {
		t.Fatalf("after unblock: %+v", s)
	}
	var as []any
	for range 10 {
		as = append(as, badPUK, newPIN, newPIN)
	}
	p := answers(as...)
	res := r.flows(p).Unblock(t.Context(), rd)
	if res.OK() || !strings.Contains(res.Message, "new CPS card") {
		t.Fatalf("PUK run out: %+v", res)
	}
	if s := st(); !s.PUKBlocked {
		t.Fatalf("PUK not blocked: %+v", s)
	}
	if res := r.flows(answers()).Unblock(t.Context(), rd); res.Code != "puk_blocked" {
		t.Fatalf("after: %+v", res)
	}
	es, _ := r.ledger.Entries()
	ops := map[string]int{}
	for _, e := range es {
		ops[string(e.Operation)+":"+e.Result]++
	}
	if ops["change-pin:ok"] != 1 || ops["unblock-pin:ok"] != 1 || ops["unblock-pin:puk_incorrect"] < 9 || ops["unblock-pin:puk_blocked"] < 1 {
		t.Fatalf("ledger: %v", ops)
	}
	r.assertNoSecrets(t)
}
