package e2e

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/api"
	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/card/pcsc"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
	"github.com/cpsagent/cpsagent/internal/testutil"
	"github.com/cpsagent/cpsagent/pkg/cpsid"
)

const (
	vpcdAddr1     = "127.0.0.1:35964"
	vpcdReader1   = "Virtual PCD 00 01"
	vpcdSlot1Lock = "/tmp/cpsagent-vpcd-slot1.lock" // the pcsctest / pinmgmt convention
)

// waitSlotsEmpty waits until pcscd shows no card in readers. A card taken
// out of a vpcd slot and another put in before pcscd's next presence poll
// (~0.4 s) look to pcscd like one card that never left: it keeps the first
// card's ATR, so the agent would pick the wrong profile. Each test that
// inserts a card of its own model first lets pcscd see the slot empty.
func waitSlotsEmpty(t *testing.T, readers ...string) {
	t.Helper()
	tr := pcsc.New(pcsc.Options{})
	defer tr.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		rs, err := tr.Readers(context.Background())
		busy := ""
		for _, r := range rs {
			for _, want := range readers {
				if r.Name == want && r.CardPresent {
					busy = r.Name
				}
			}
		}
		if err == nil && busy == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pcscd still shows a card in %q (%v) after 15 s", busy, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readerOf returns the status entry of reader.
func readerOf(st api.StatusResponse, name string) *card.Reader {
	for i := range st.Readers {
		if st.Readers[i].Name == name {
			return &st.Readers[i]
		}
	}
	return nil
}

// TestE2E_TwoReaders: a CPS3 in vpcd slot 0 and a CPS4 in slot 1 under one
// agent. /v1/status and the events name each card (generation, serial); a
// portal addresses a card by its serial number (the "reader" parameter
// takes a serial too); an operation on one leaves the other usable; then an
// unrelated card replaces the CPS4 and is reported unsupported, with no APDU
// sent to it.
func TestE2E_TwoReaders(t *testing.T) {
	testutil.RequirePCSCD(t)
	testutil.LockPCSCD(t, false, 10*time.Minute)
	testutil.LockVPCDSlot0(t, 10*time.Minute)
	unlock, err := testutil.LockFile(vpcdSlot1Lock, true, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)
	waitSlotsEmpty(t, vpcdReader, vpcdReader1)

	fx3 := newCardFixtureFor(t, virtual.ModelCPS3, "medecin")
	fx4 := newCardFixtureFor(t, virtual.ModelCPS4, "infirmier")
	startVCard(t, t, fx3.fresh(t), fx3.vcardArgs()...)
	vc4 := startVCard(t, t, fx4.fresh(t), append(fx4.vcardArgs(), "--vpcd", vpcdAddr1)...)
	a := startAgent(t, agentOpts{})
	a.waitCard(t, vpcdReader, true, 60*time.Second)
	a.waitCard(t, vpcdReader1, true, 60*time.Second)
	ctx := context.Background()

	st := a.status(t)
	r3, r4 := readerOf(st, vpcdReader), readerOf(st, vpcdReader1)
	if r3 == nil || r4 == nil || r3.Card.Generation != cps.GenerationCPS3 || r4.Card.Generation != cps.GenerationCPS4 ||
		!r3.Card.Supported || !r4.Card.Supported || r3.Card.Serial == r4.Card.Serial {
		t.Fatalf("status %+v", st.Readers)
	}
	s3, s4 := r3.Card.Serial, r4.Card.Serial

	t.Run("identity by serial number", func(t *testing.T) {
		problem(t, a.do(ctx, http.MethodGet, "/v1/card", ""), api.CodeReaderAmbiguous)
		problem(t, a.do(ctx, http.MethodGet, "/v1/card?reader=0BADCAFE", ""), api.CodeCardAbsent)
		for serial, fx := range map[string]*cardFixture{s3: fx3, s4: fx4} {
			var id cpsid.Identity
			must(t, a.do(ctx, http.MethodGet, "/v1/card?reader="+url.QueryEscape(serial), ""), &id)
			if id.Certificates.Authentication.DER != b64(fx.authCert) || id.Card.SerialNumber == nil || *id.Card.SerialNumber != serial ||
				id.Card.Generation == nil || *id.Card.Generation != fx.generation() {
				t.Fatalf("card %s: %+v", serial, id.Card)
			}
		}
	})

	signOn := func(t *testing.T, serial string, fx *cardFixture, data []byte) result {
		t.Helper()
		return a.do(ctx, http.MethodPost, "/v1/sign", `{"dataToSign":"`+b64(data)+`","reader":"`+serial+`"}`)
	}
	checkSig := func(t *testing.T, r result, fx *cardFixture, data []byte) {
		t.Helper()
		var resp api.SignResponse
		must(t, r, &resp)
		der, _ := base64.StdEncoding.DecodeString(resp.Certificate)
		if string(der) != string(fx.signCert) {
			t.Fatal("signed with another card's certificate")
		}
		cert, _ := x509.ParseCertificate(der)
		sig, _ := base64.StdEncoding.DecodeString(resp.Signature)
		h := sha256.Sum256(data)
		if err := rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, h[:], sig); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("sign and authenticate by serial number", func(t *testing.T) {
		a.setPIN(t, pinentrytest.Options{PIN: cardPIN})
		for serial, fx := range map[string]*cardFixture{s3: fx3, s4: fx4} {
			data := []byte("prescription signed by " + serial)
			checkSig(t, signOn(t, serial, fx, data), fx, data)
			nonce := newNonce()
			r := a.do(ctx, http.MethodPost, "/v1/authenticate", `{"challengeNonce":"`+nonce+`","reader":"`+serial+`"}`)
			must(t, r, nil)
			if cert := verifyToken(t, r.body, portalOrigin, nonce); string(cert.Raw) != string(fx.authCert) {
				t.Fatalf("token of %s made with another card", serial)
			}
		}
	})

	t.Run("an operation on one card leaves the other usable", func(t *testing.T) {
		// The holder of the CPS3 takes 2 s to type the PIN.
		a.setPIN(t, pinentrytest.Options{PIN: cardPIN, Delay: 2 * time.Second})
		before := a.getPINs(t)
		data3 := []byte("slow signature")
		done := make(chan result, 1)
		go func() { done <- signOn(t, s3, fx3, data3) }()
		a.waitGETPIN(t, before)
		start := time.Now()
		var id cpsid.Identity
		must(t, a.do(ctx, http.MethodGet, "/v1/card?reader="+url.QueryEscape(s4), ""), &id)
		st := a.status(t)
		if b3, b4 := readerOf(st, vpcdReader), readerOf(st, vpcdReader1); !b3.Busy || b4.Busy || b4.Card.Serial != s4 {
			t.Fatalf("status during the CPS3 prompt: %+v / %+v", b3, b4)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("reads of the CPS4 waited %v for the CPS3", el)
		}
		// One PIN prompt at a time is the agent's policy (docs/api.md,
		// agent_busy): the second card's signature waits for its turn.
		problem(t, signOn(t, s4, fx4, []byte("x")), api.CodeAgentBusy)
		checkSig(t, <-done, fx3, data3)
		a.setPIN(t, pinentrytest.Options{PIN: cardPIN})
		data4 := []byte("then the CPS4")
		checkSig(t, signOn(t, s4, fx4, data4), fx4, data4)
	})

	t.Run("events name each card; an unrelated card is reported and left alone", func(t *testing.T) {
		next := a.events(t, ctx, 90*time.Second)
		_ = vc4.stop(t)
		for {
			m := next()
			if m["type"] == "card-removed" && m["reader"] == vpcdReader1 {
				if m["serialNumber"] != s4 || m["generation"] != cps.GenerationCPS4 {
					t.Fatalf("card-removed %v", m)
				}
				break
			}
		}
		trace := filepath.Join(t.TempDir(), "other.trace")
		p := startProc(t, t, nil, "vcard", "--vpcd", vpcdAddr1, "--model", virtual.ModelOther, "--trace", trace)
		p.waitLine(t, "card inserted", 30*time.Second)
		for {
			m := next()
			if m["reader"] != vpcdReader1 {
				continue
			}
			if m["type"] == "identity-available" {
				t.Fatalf("identity announced for a non-CPx card: %v", m)
			}
			if m["type"] == "card-inserted" {
				if m["generation"] != cps.GenerationUnknown {
					t.Fatalf("card-inserted %v", m)
				}
				break
			}
		}
		rd := readerOf(a.status(t), vpcdReader1)
		if rd == nil || !rd.CardPresent || rd.Card == nil || rd.Card.Supported || rd.Card.Generation != cps.GenerationUnknown {
			t.Fatalf("status of the unrelated card: %+v", rd)
		}
		before := a.getPINs(t)
		problem(t, a.do(ctx, http.MethodGet, "/v1/card?reader="+url.QueryEscape(vpcdReader1), ""), api.CodeCardUnsupported)
		problem(t, a.do(ctx, http.MethodPost, "/v1/sign", `{"dataToSign":"YWJj","reader":"`+vpcdReader1+`"}`), api.CodeCardUnsupported)
		if a.getPINs(t) != before {
			t.Fatal("PIN dialog for an unrelated card")
		}
		// The CPS3 is undisturbed, still addressed by its serial.
		must(t, a.do(ctx, http.MethodGet, "/v1/card?reader="+url.QueryEscape(s3), ""), nil)
		_ = p.stop(t)
		b, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), " > ") {
			t.Fatalf("APDUs sent to the unrelated card:\n%s", b)
		}
	})
}
