package card_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
)

// engineCase is one scenario, run over every leg.
type engineCase struct {
	name      string
	noPreRead bool
	run       func(t *testing.T, r *rig)
	// card, when set, is the [?] behaviour of the virtual card; the engine
	// then runs with the matching quirks.
	card *virtual.Behaviour
}

// TestEngine is the matrix transport × card model × case: every case runs
// over the in-memory reader and over pcscd+vpcd, against a CPS3 and a CPS4.
func TestEngine(t *testing.T) {
	for _, l := range legs {
		t.Run(l.name, func(t *testing.T) {
			for _, m := range models {
				t.Run(m.name, func(t *testing.T) {
					for _, c := range engineCases {
						t.Run(c.name, func(t *testing.T) {
							o := rigOptions{noPreRead: c.noPreRead, model: m}
							if c.card != nil {
								o.quirks = c.card.AgentQuirks()
							}
							r := l.setup(t, o)
							c.run(t, r)
						})
					}
				})
			}
		})
	}
}

var errCancelled = errors.New("user cancelled")

// DigestInfo prefix of SHA-256 (RFC 8017 §9.2 note 1).
var sha256Prefix = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

var engineCases = []engineCase{
	{"identity cold and warm", true, func(t *testing.T, r *rig) {
		c := r.newCard("medecin", virtual.Behaviour{})
		r.insert(c)
		ctx := context.Background()
		// Counted from the engine's trace: the card's own counters may include
		// other processes probing the shared pcscd (e.g. pkcs11-tool -L).
		r.trace.reset()
		d, err := r.eng.Card(ctx, r.reader)
		if err != nil {
			t.Fatal(err)
		}
		cold := len(r.trace.commands())
		if d.FromCache || d.Serial != agentSerial(c) || d.Generation != r.model.generation || d.AuthCert == nil || d.SignCert == nil {
			t.Fatalf("cold read = %+v", d)
		}
		if d.Identity == nil || d.Identity.FamilyName == "" || d.Identity.Card.SerialNumber == nil || *d.Identity.Card.SerialNumber != d.Serial {
			t.Fatalf("identity = %+v", d.Identity)
		}
		if d.Identity.Card.Generation == nil || *d.Identity.Card.Generation != r.model.generation {
			t.Fatalf("identity generation %v", d.Identity.Card.Generation)
		}
		if !hasCommand(r.trace.commands(), r.model.certSelect) {
			t.Fatalf("cold read did not select the certificate: %q", r.trace.commands())
		}
		// Serial (2, CPS4 3) + 2 × (SELECT + ⌈size/231⌉ READ BINARY).
		want := len(r.model.serialRead) + 2 + (len(d.AuthCert.Raw)+230)/231 + (len(d.SignCert.Raw)+230)/231
		if cold != want {
			t.Errorf("cold identity read: %d APDUs, want %d", cold, want)
		}
		r.trace.reset()
		d2, err := r.eng.Card(ctx, r.reader)
		if err != nil {
			t.Fatal(err)
		}
		if !d2.FromCache || d2.Serial != d.Serial || !d2.AuthCert.Equal(d.AuthCert) {
			t.Fatalf("warm read = %+v", d2)
		}
		if cmds := r.trace.commands(); len(cmds) != 0 {
			t.Fatalf("warm identity read, same insertion: %q, want no APDU", cmds)
		}
		// The same card taken out and put back: the engine forgot it when
		// it left (no identity outlives its card on a shared workstation),
		// so this is a cold read again.
		r.remove()
		r.insert(c)
		r.trace.reset()
		d3, err := r.eng.Card(ctx, r.reader)
		if err != nil || d3.FromCache || d3.Serial != d.Serial {
			t.Fatalf("read after re-insertion = %+v, %v", d3, err)
		}
		if n := len(r.trace.commands()); n != cold {
			t.Fatalf("read after re-insertion: %d APDUs, want a cold read's %d", n, cold)
		}
		t.Logf("%s: cold identity read %d APDUs, warm 0", r.leg, cold)
	}, nil},

	{"identity announced after insertion", false, func(t *testing.T, r *rig) {
		c := r.newCard("infirmier", virtual.Behaviour{})
		r.insertFn(c)
		ins := r.waitEvent(card.EventCardInserted, r.reader)
		if ins.Generation != r.model.generation {
			t.Errorf("inserted event = %+v", ins)
		}
		ev := r.waitEvent(card.EventIdentityReady, r.reader)
		if ev.Serial != agentSerial(c) || ev.Generation != r.model.generation {
			t.Fatalf("identity-available = %+v", ev)
		}
		st := r.eng.Status()
		if !st.Monitoring || !st.ServiceUp {
			t.Fatalf("status = %+v", st)
		}
		found := false
		for _, rd := range st.Readers {
			if rd.Name == r.reader {
				found = rd.CardPresent && rd.Card != nil && rd.Card.Serial == ev.Serial && rd.Card.Supported && !rd.Busy &&
					rd.Card.Generation == r.model.generation
			}
		}
		if !found {
			t.Fatalf("status readers = %+v", st.Readers)
		}
		d, err := r.eng.Card(context.Background(), "") // the only card present
		if err != nil || !d.FromCache || d.Reader != r.reader {
			t.Fatalf("Card(\"\") = %+v, %v", d, err)
		}
		r.remove()
		if _, err := r.eng.Card(context.Background(), ""); !errors.Is(err, card.ErrNoCard) {
			t.Fatalf("Card with no card = %v", err)
		}
	}, nil},

	{"authenticate", false, func(t *testing.T, r *rig) {
		c := r.newCard("medecin", virtual.Behaviour{})
		r.insert(c)
		for _, n := range []int{0, 1, 63, 64, 65, 1000} {
			msg := make([]byte, n)
			for i := range msg {
				msg[i] = byte(i * 7)
			}
			h := sha256.Sum256(msg)
			data := append(append([]byte(nil), sha256Prefix...), h[:]...)
			p := pins(t, virtual.DefaultPIN)
			sig, err := r.eng.Authenticate(context.Background(), r.reader, data, p.fn)
			if err != nil {
				t.Fatal(err)
			}
			pub := sig.Certificate.PublicKey.(*rsa.PublicKey)
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig.Value); err != nil {
				t.Fatalf("len %d: %v", n, err)
			}
			if sig.Algorithm != card.AlgRSAPKCS1 || sig.Serial != agentSerial(c) || sig.CardTime <= 0 {
				t.Fatalf("signature = %+v", sig)
			}
			if sig.APDUs != r.model.authAPDUs {
				t.Errorf("warm authenticate: %d APDUs, want %d", sig.APDUs, r.model.authAPDUs)
			}
			if rq := p.requests(); len(rq) != 1 || rq[0].Kind != card.KindPIN || rq[0].TriesLeft != 3 || rq[0].MaxTries != 3 ||
				rq[0].LastTry || rq[0].Serial != sig.Serial || rq[0].Holder == "" {
				t.Fatalf("PIN requests = %+v", rq)
			}
			if st := c.PINStatus(); st.PINVerified {
				t.Fatal("the PIN is still verified after the operation")
			}
		}
		if _, err := r.eng.Authenticate(context.Background(), r.reader, make([]byte, 103), pins(t).fn); !errors.Is(err, card.ErrInvalidInput) {
			t.Fatalf("103 bytes: %v", err)
		}
	}, nil},

	{"sign", false, func(t *testing.T, r *rig) {
		c := r.newCard("medecin", virtual.Behaviour{})
		r.insert(c)
		for _, n := range []int{0, 1, 63, 64, 65, 1000} {
			msg := make([]byte, n)
			for i := range msg {
				msg[i] = byte(i*13 + 1)
			}
			sig, err := r.eng.Sign(context.Background(), r.reader, msg, pins(t, virtual.DefaultPIN).fn)
			if err != nil {
				t.Fatalf("len %d: %v", n, err)
			}
			h := sha256.Sum256(msg)
			pub := sig.Certificate.PublicKey.(*rsa.PublicKey)
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig.Value); err != nil {
				t.Fatalf("len %d: %v", n, err)
			}
			if sig.Certificate.KeyUsage&x509.KeyUsageContentCommitment == 0 || sig.Algorithm != card.AlgRS256 {
				t.Fatalf("signed with %+v", sig)
			}
			if sig.APDUs != r.model.signAPDUs {
				t.Errorf("warm sign: %d APDUs, want %d", sig.APDUs, r.model.signAPDUs)
			}
		}
		st := c.Stats()
		if st.Signatures != 6 || st.Resets < 6 {
			t.Fatalf("card stats %+v", st)
		}
	}, nil},

	{"sign verified by openssl", false, func(t *testing.T, r *rig) {
		bin, err := exec.LookPath("openssl")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("openssl is required under CI")
			}
			t.Skip("openssl not installed")
		}
		c := r.newCard("cpe", virtual.Behaviour{})
		r.insert(c)
		msg := []byte(strings.Repeat("Ordonnance du 25/11/2026 — ", 40))
		sig, err := r.eng.Sign(context.Background(), r.reader, msg, pins(t, virtual.DefaultPIN).fn)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		pubDER, err := x509.MarshalPKIXPublicKey(sig.Certificate.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		write := func(name string, b []byte) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		pub := write("pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
		sigPath := write("sig.bin", sig.Value)
		msgPath := write("msg.txt", msg)
		out, err := exec.Command(bin, "dgst", "-sha256", "-verify", pub, "-signature", sigPath, msgPath).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Verified OK") {
			t.Fatalf("openssl: %v: %s", err, out)
		}
		write("msg.txt", append(msg, '!'))
		if out, err := exec.Command(bin, "dgst", "-sha256", "-verify", pub, "-signature", sigPath, msgPath).CombinedOutput(); err == nil {
			t.Fatalf("openssl accepted a modified message: %s", out)
		}
	}, nil},

	{"wrong PIN until blocked", false, func(t *testing.T, r *rig) {
		c := r.newCard("medecin", virtual.Behaviour{})
		r.insert(c)
		ctx := context.Background()
		for want := 2; want >= 1; want-- {
			p := pins(t, "0000")
			_, err := r.eng.Sign(ctx, r.reader, []byte("x"), p.fn)
			var wrong *card.WrongPINError
			if !errors.As(err, &wrong) || wrong.TriesLeft != want || wrong.Kind != card.KindPIN || !errors.Is(err, card.ErrPINIncorrect) {
				t.Fatalf("wrong PIN: %v, want %d tries left", err, want)
			}
			if !strings.Contains(err.Error(), "tries left") {
				t.Fatalf("message %q does not say the tries left", err)
			}
			if rq := p.requests()[0]; rq.TriesLeft != want+1 || rq.LastTry != (want+1 == 1) {
				t.Fatalf("request = %+v", rq)
			}
		}
		st, err := r.eng.PINStatus(ctx, r.reader)
		if err != nil || st.TriesLeft != 1 || st.Blocked || st.MaxTries != 3 {
			t.Fatalf("PINStatus = %+v, %v", st, err)
		}
		p := pins(t, "9999")
		if _, err := r.eng.Authenticate(ctx, r.reader, []byte{1}, p.fn); !errors.Is(err, card.ErrPINBlocked) {
			t.Fatalf("third wrong PIN: %v", err)
		}
		if rq := p.requests(); len(rq) != 1 || !rq[0].LastTry || rq[0].TriesLeft != 1 {
			t.Fatalf("last-try request = %+v", rq)
		}
		before := c.Stats()
		r.trace.reset()
		_, err = r.eng.Sign(ctx, r.reader, []byte("x"), pins(t).fn) // no answer: must not be asked
		if !errors.Is(err, card.ErrPINBlocked) {
			t.Fatalf("blocked: %v", err)
		}
		if d := c.Stats().Sub(before); d.Verifies != 0 {
			t.Fatalf("%d VERIFY with data sent to a blocked card", d.Verifies)
		}
		if hasCommand(r.trace.commands(), r.model.verifyPIN) {
			t.Fatalf("VERIFY with data in the trace: %q", r.trace.commands())
		}
		st, err = r.eng.PINStatus(ctx, r.reader)
		if err != nil || !st.Blocked || st.TriesLeft != 0 || st.PUKTriesLeft != 10 || st.PUKBlocked {
			t.Fatalf("PINStatus = %+v, %v", st, err)
		}
	}, nil},

	{"PIN format refused before any APDU", false, func(t *testing.T, r *rig) {
		c := r.newCard("medecin", virtual.Behaviour{})
		r.insert(c)
		for _, bad := range []string{"", "123", "12345", "12a4", " 123", "１２３４"} {
			var atPrompt int
			p := pins(t, bad)
			p.at = func(card.PINRequest) { atPrompt = len(r.trace.commands()) }
			_, err := r.eng.Sign(context.Background(), r.reader, []byte("doc"), p.fn)
			if !errors.Is(err, card.ErrPINFormat) {
				t.Fatalf("%q: %v", bad, err)
			}
			if n := len(r.trace.commands()); n != atPrompt {
				t.Fatalf("%q: %d APDUs sent after the PIN was entered", bad, n-atPrompt)
			}
			if strings.Contains(err.Error(), bad) && bad != "" {
				t.Fatalf("error quotes the PIN: %v", err)
			}
		}
		if st := c.Stats(); st.Verifies != 0 {
			t.Fatalf("%d VERIFY sent", st.Verifies)
		}
		// A 4-digit PUK is refused the same way, before the new PIN is asked.
		p := pins(t, "1234")
		if err := r.eng.Unblock(context.Background(), r.reader, p.fn); !errors.Is(err, card.ErrPINFormat) || len(p.requests()) != 1 {
			t.Fatalf("short PUK: %v after %d prompts", err, len(p.requests()))
		}
	}, nil},

	{"cancel in the PIN prompt", false, func(t *testing.T, r *rig) {
		c := r.newCard("medecin", virtual.Behaviour{})
		r.insert(c)
		before := c.Stats()
		_, err := r.eng.Sign(context.Background(), r.reader, []byte("doc"), func(context.Context, card.PINRequest) ([]byte, error) {
			return nil, errCancelled
		})
		if !errors.Is(err, errCancelled) {
			t.Fatalf("err = %v", err)
		}
		if d := c.Stats().Sub(before); d.Verifies != 0 || d.Signatures != 0 {
			t.Fatalf("card did %+v", d)
		}
		// The engine is free again.
		if _, err := r.eng.Sign(context.Background(), r.reader, []byte("doc"), pins(t, virtual.DefaultPIN).fn); err != nil {
			t.Fatal(err)
		}
	}, nil},

	{"card pulled just before PSO CDS", false, func(t *testing.T, r *rig) {
		c := r.newCard("medecin", virtual.Behaviour{})
		r.insert(c)
		r.pullWhen(isCmd(0x2A, 0x9E))
		_, err := r.eng.Sign(context.Background(), r.reader, []byte("document"), pins(t, virtual.DefaultPIN).fn)
		if !errors.Is(err, card.ErrCardRemoved) {
			t.Fatalf("err = %v, want ErrCardRemoved", err)
		}
		wantHashes := int64(0) // CPS4: the host hashes, PSO CDS carries the hash
		if r.model.hashOnCard {
			wantHashes = 1
		}
		if st := c.Stats(); st.Hashes != wantHashes || st.Signatures != 0 || st.Verifies != 1 {
			t.Fatalf("card stats %+v", st)
		}
		r.waitEvent(card.EventCardRemoved, r.reader)
		if _, err := r.eng.Sign(context.Background(), r.reader, []byte("document"), pins(t).fn); !errors.Is(err, card.ErrNoCard) {
			t.Fatalf("no card: %v", err)
		}
		if c.PINStatus().PINVerified {
			t.Fatal("PIN still verified on the pulled card")
		}
		r.removeFn() // the vpcd client already ended; make the rig forget it
		r.insert(c)
		sig, err := r.eng.Sign(context.Background(), r.reader, []byte("document"), pins(t, virtual.DefaultPIN).fn)
		if err != nil {
			t.Fatal(err)
		}
		if sig.Serial != agentSerial(c) {
			t.Fatalf("signed by %s", sig.Serial)
		}
	}, nil},

	{"card swapped during the PIN prompt", false, func(t *testing.T, r *rig) {
		a := r.newCard("medecin", virtual.Behaviour{})
		b := r.newCard("infirmier", virtual.Behaviour{})
		r.insert(a)
		p := pins(t, virtual.DefaultPIN)
		p.at = func(card.PINRequest) {
			r.remove()
			r.insertFn(b)
			r.waitEvent(card.EventCardInserted, r.reader)
		}
		_, err := r.eng.Sign(context.Background(), r.reader, []byte("doc"), p.fn)
		if !errors.Is(err, card.ErrCardMismatch) {
			t.Fatalf("err = %v, want ErrCardMismatch", err)
		}
		if st := b.Stats(); st.Verifies != 0 || st.Signatures != 0 {
			t.Fatalf("the new card got %+v", st)
		}
		ev := r.waitEvent(card.EventIdentityReady, r.reader)
		if ev.Serial != agentSerial(b) {
			t.Fatalf("identity-available for %s, want %s", ev.Serial, agentSerial(b))
		}
		sig, err := r.eng.Sign(context.Background(), r.reader, []byte("doc"), pins(t, virtual.DefaultPIN).fn)
		if err != nil || sig.Serial != agentSerial(b) {
			t.Fatalf("sign on the new card: %+v, %v", sig, err)
		}
	}, nil},

	{"card swapped after its identity was read, then addressed by serial", false, func(t *testing.T, r *rig) {
		a := r.newCard("medecin", virtual.Behaviour{})
		b := r.newCard("infirmier", virtual.Behaviour{})
		r.insert(a)
		ctx := context.Background()
		d, err := r.eng.Card(ctx, r.reader)
		if err != nil || d.Serial != agentSerial(a) {
			t.Fatalf("Card = %+v, %v", d, err)
		}
		r.remove()
		// Nothing in the reader: the card is absent, not changed.
		if _, err := r.eng.Sign(ctx, d.Serial, []byte("doc"), pins(t).fn); !errors.Is(err, card.ErrNoCard) {
			t.Fatalf("empty reader: %v, want ErrNoCard", err)
		}
		r.insert(b) // the engine has read b: it knows the reader holds another card
		p := pins(t)
		if _, err := r.eng.Sign(ctx, d.Serial, []byte("doc"), p.fn); !errors.Is(err, card.ErrCardMismatch) {
			t.Fatalf("Sign(%s) after the swap: %v, want ErrCardMismatch", d.Serial, err)
		}
		if _, err := r.eng.Authenticate(ctx, d.Serial, append(append([]byte{}, sha256Prefix...), make([]byte, 32)...), p.fn); !errors.Is(err, card.ErrCardMismatch) {
			t.Fatalf("Authenticate(%s) after the swap: %v, want ErrCardMismatch", d.Serial, err)
		}
		if _, err := r.eng.Card(ctx, d.Serial); !errors.Is(err, card.ErrCardMismatch) {
			t.Fatalf("Card(%s) after the swap: %v, want ErrCardMismatch", d.Serial, err)
		}
		if len(p.requests()) != 0 || b.Stats().Verifies != 0 || b.Stats().Signatures != 0 || a.Stats().Signatures != 0 {
			t.Fatalf("prompted (%d) or card used: new %+v, old %+v", len(p.requests()), b.Stats(), a.Stats())
		}
		// The new card is usable by its own serial; a never-seen serial is absent.
		if sig, err := r.eng.Sign(ctx, agentSerial(b), []byte("doc"), pins(t, virtual.DefaultPIN).fn); err != nil || sig.Serial != agentSerial(b) {
			t.Fatalf("sign on the new card: %+v, %v", sig, err)
		}
		if _, err := r.eng.Card(ctx, "0BADCAFE"); !errors.Is(err, card.ErrNoCard) {
			t.Fatalf("unknown serial: %v, want ErrNoCard", err)
		}
	}, nil},

	{"card swapped, addressed by serial before the new card was read", true, func(t *testing.T, r *rig) {
		a := r.newCard("medecin", virtual.Behaviour{})
		b := r.newCard("infirmier", virtual.Behaviour{})
		r.insert(a)
		ctx := context.Background()
		d, err := r.eng.Card(ctx, r.reader)
		if err != nil {
			t.Fatal(err)
		}
		r.remove()
		r.insert(b) // no read after insertion: the operation itself finds out
		p := pins(t)
		if _, err := r.eng.Sign(ctx, d.Serial, []byte("doc"), p.fn); !errors.Is(err, card.ErrCardMismatch) {
			t.Fatalf("Sign(%s) after the swap: %v, want ErrCardMismatch", d.Serial, err)
		}
		if len(p.requests()) != 0 || b.Stats().Verifies != 0 || b.Stats().Signatures != 0 {
			t.Fatalf("prompted (%d) or card used: %+v", len(p.requests()), b.Stats())
		}
	}, nil},

	{"change PIN", false, func(t *testing.T, r *rig) {
		c := r.newCard("medecin", virtual.Behaviour{})
		r.insert(c)
		ctx := context.Background()
		p := pins(t, virtual.DefaultPIN, "5678")
		if err := r.eng.ChangePIN(ctx, r.reader, p.fn); err != nil {
			t.Fatal(err)
		}
		rq := p.requests()
		if len(rq) != 2 || rq[0].Kind != card.KindPIN || rq[1].Kind != card.KindNewPIN || rq[0].TriesLeft != 3 || rq[1].TriesLeft != -1 {
			t.Fatalf("requests = %+v", rq)
		}
		if _, err := r.eng.Sign(ctx, r.reader, []byte("x"), pins(t, "5678").fn); err != nil {
			t.Fatalf("new PIN: %v", err)
		}
		var wrong *card.WrongPINError
		if _, err := r.eng.Sign(ctx, r.reader, []byte("x"), pins(t, virtual.DefaultPIN).fn); !errors.As(err, &wrong) || wrong.TriesLeft != 2 {
			t.Fatalf("old PIN: %v", err)
		}
		// A wrong current PIN changes nothing and costs a try.
		if err := r.eng.ChangePIN(ctx, r.reader, pins(t, "0000", "1111").fn); !errors.As(err, &wrong) || wrong.TriesLeft != 1 {
			t.Fatalf("change with a wrong PIN: %v", err)
		}
		if st := c.Stats(); st.PINChanges != 1 {
			t.Fatalf("%d changes", st.PINChanges)
		}
	}, nil},

	{"unblock with the PUK", false, func(t *testing.T, r *rig) {
		c := r.newCard("medecin", virtual.Behaviour{})
		r.insert(c)
		ctx := context.Background()
		for i := 0; i < 3; i++ {
			_, _ = r.eng.Authenticate(ctx, r.reader, []byte{1}, pins(t, "0000").fn)
		}
		if st, _ := r.eng.PINStatus(ctx, r.reader); !st.Blocked {
			t.Fatalf("PIN not blocked: %+v", st)
		}
		var wrong *card.WrongPINError
		p := pins(t, "00000000", "4321")
		err := r.eng.Unblock(ctx, r.reader, p.fn)
		if !errors.As(err, &wrong) || wrong.Kind != card.KindPUK || wrong.TriesLeft != 9 {
			t.Fatalf("wrong PUK: %v", err)
		}
		if rq := p.requests(); rq[0].Kind != card.KindPUK || rq[0].TriesLeft != 10 || rq[0].MaxTries != 10 {
			t.Fatalf("PUK request = %+v", rq[0])
		}
		if err := r.eng.Unblock(ctx, r.reader, pins(t, virtual.DefaultPUK, "4321").fn); err != nil {
			t.Fatal(err)
		}
		st, err := r.eng.PINStatus(ctx, r.reader)
		if err != nil || st.Blocked || st.TriesLeft != 3 || st.PUKTriesLeft != 10 {
			t.Fatalf("after unblock: %+v, %v", st, err)
		}
		if _, err := r.eng.Sign(ctx, r.reader, []byte("x"), pins(t, "4321").fn); err != nil {
			t.Fatalf("sign with the new PIN: %v", err)
		}
		if got := c.PINStatus().PUKUsesLeft; got != cps.PUKMaxUses-1 {
			t.Fatalf("PUK uses left %d", got)
		}
		// Run out of PUK tries.
		for want := 9; want >= 1; want-- {
			err := r.eng.Unblock(ctx, r.reader, pins(t, "00000000", "4321").fn)
			if !errors.As(err, &wrong) || wrong.TriesLeft != want {
				t.Fatalf("wrong PUK, want %d left: %v", want, err)
			}
		}
		if err := r.eng.Unblock(ctx, r.reader, pins(t, "00000000", "4321").fn); !errors.Is(err, card.ErrPUKBlocked) {
			t.Fatalf("last PUK try: %v", err)
		}
		before := c.Stats()
		if err := r.eng.Unblock(ctx, r.reader, pins(t).fn); !errors.Is(err, card.ErrPUKBlocked) {
			t.Fatalf("blocked PUK: %v", err)
		}
		if d := c.Stats().Sub(before); d.Verifies != 0 {
			t.Fatal("VERIFY sent to a blocked PUK")
		}
		if st, _ := r.eng.PINStatus(ctx, r.reader); !st.PUKBlocked || st.PUKTriesLeft != 0 {
			t.Fatalf("status %+v", st)
		}
	}, nil},

	{"quirks: BCD PIN padded to 8, 69 83 on the last try", false, func(t *testing.T, r *rig) {
		b := quirkyCard
		c := r.newCard("medecin", b)
		r.insert(c)
		ctx := context.Background()
		if _, err := r.eng.Sign(ctx, r.reader, []byte("x"), pins(t, virtual.DefaultPIN).fn); err != nil {
			t.Fatalf("BCD PIN: %v", err)
		}
		if !hasCommand(r.trace.commands(), r.model.cla+" 20 00 01 08 ** ** ** ** ** ** ** **") {
			t.Fatalf("VERIFY is not 8 bytes long: %q", r.trace.commands())
		}
		var wrong *card.WrongPINError
		for want := 2; want >= 1; want-- {
			if _, err := r.eng.Sign(ctx, r.reader, []byte("x"), pins(t, "0000").fn); !errors.As(err, &wrong) || wrong.TriesLeft != want {
				t.Fatalf("wrong PIN: %v", err)
			}
		}
		if _, err := r.eng.Sign(ctx, r.reader, []byte("x"), pins(t, "0000").fn); !errors.Is(err, card.ErrPINBlocked) {
			t.Fatalf("last try (69 83): %v", err)
		}
		if err := r.eng.Unblock(ctx, r.reader, pins(t, virtual.DefaultPUK, "2468").fn); err != nil {
			t.Fatalf("unblock with a BCD PUK: %v", err)
		}
		if _, err := r.eng.Sign(ctx, r.reader, []byte("x"), pins(t, "2468").fn); err != nil {
			t.Fatalf("new BCD PIN: %v", err)
		}
	}, &quirkyCard},

	{"one operation at a time", false, func(t *testing.T, r *rig) {
		c := r.newCard("medecin", virtual.Behaviour{})
		r.insert(c)
		ctx := context.Background()
		inPrompt := make(chan struct{})
		release := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := r.eng.Sign(ctx, r.reader, []byte("long"), func(context.Context, card.PINRequest) ([]byte, error) {
				close(inPrompt)
				<-release
				return []byte(virtual.DefaultPIN), nil
			})
			done <- err
		}()
		<-inPrompt
		start := time.Now()
		if _, err := r.eng.Authenticate(ctx, r.reader, []byte{1}, pins(t).fn); !errors.Is(err, card.ErrBusy) {
			t.Fatalf("second operation: %v", err)
		}
		if _, err := r.eng.Sign(ctx, "", []byte{1}, pins(t).fn); !errors.Is(err, card.ErrBusy) {
			t.Fatalf("second operation on \"\": %v", err)
		}
		if _, err := r.eng.PINStatus(ctx, r.reader); !errors.Is(err, card.ErrBusy) {
			t.Fatalf("PIN status: %v", err)
		}
		d, err := r.eng.Card(ctx, r.reader)
		if err != nil || !d.FromCache || d.Serial != agentSerial(c) {
			t.Fatalf("cached identity while busy: %+v, %v", d, err)
		}
		st := r.eng.Status()
		busy := false
		for _, rd := range st.Readers {
			busy = busy || rd.Name == r.reader && rd.Busy
		}
		if !busy {
			t.Fatalf("status does not show the reader busy: %+v", st.Readers)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("ErrBusy and cached reads took %v", el)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}, nil},
	{"operation-ended tells the PIN counter without asking the card", false, func(t *testing.T, r *rig) {
		c := r.newCard("medecin", virtual.Behaviour{})
		r.insert(c)
		ctx := context.Background()
		ended := func() *card.PINCounter {
			t.Helper()
			return r.waitEvent(card.EventOperationEnded, r.reader).PIN
		}
		steps := []struct {
			name string
			pin  string // "": the prompt is cancelled
			want card.PINCounter
		}{
			{"wrong PIN", "0000", card.PINCounter{TriesLeft: 2, MaxTries: 3}},
			{"cancelled prompt", "", card.PINCounter{TriesLeft: 2, MaxTries: 3}},
			{"right PIN", virtual.DefaultPIN, card.PINCounter{TriesLeft: 3, MaxTries: 3}},
			{"wrong", "1111", card.PINCounter{TriesLeft: 2, MaxTries: 3}},
			{"wrong", "2222", card.PINCounter{TriesLeft: 1, MaxTries: 3}},
			{"third wrong", "3333", card.PINCounter{TriesLeft: 0, MaxTries: 3, Blocked: true}},
		}
		for _, st := range steps {
			fn := pins(t, st.pin).fn
			if st.pin == "" {
				fn = func(context.Context, card.PINRequest) ([]byte, error) { return nil, errCancelled }
			}
			_, _ = r.eng.Sign(ctx, r.reader, []byte("x"), fn)
			got := ended()
			if got == nil || *got != st.want {
				t.Fatalf("%s: event PIN %+v, want %+v", st.name, got, st.want)
			}
			// What the event says is what the card says.
			ps, err := r.eng.PINStatus(ctx, r.reader)
			if err != nil || ps.TriesLeft != st.want.TriesLeft || ps.Blocked != st.want.Blocked {
				t.Fatalf("%s: card PIN status %+v, %v; event said %+v", st.name, ps, err, st.want)
			}
		}
		// Blocked: refused before the prompt; the counter read in Tx1 is known.
		_, err := r.eng.Sign(ctx, r.reader, []byte("x"), pins(t).fn)
		if !errors.Is(err, card.ErrPINBlocked) {
			t.Fatalf("blocked: %v", err)
		}
		if got := ended(); got == nil || !got.Blocked || got.TriesLeft != 0 {
			t.Fatalf("blocked: event PIN %+v", got)
		}
	}, nil},
}

// quirkyCard flips the unconfirmed PIN facts (card-cpx.md §3, §8): BCD
// digits padded with FF to 8 bytes, and 69 83 for the VERIFY that uses the
// last try.
var quirkyCard = virtual.Behaviour{PINEncoding: "bcd", PINPadLength: 8, PINPadByte: 0xFF, ThirdWrongPIN: "6983"}
