package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/ledger"
	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
)

func ledgerHarness(t *testing.T, ho harnessOpts) (*harness, *ledger.Ledger) {
	t.Helper()
	led, err := ledger.Open(t.TempDir(), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	prev := ho.options
	ho.options = func(o *Options) {
		if prev != nil {
			prev(o)
		}
		o.Ledger = led
	}
	return newHarness(t, ho), led
}

func entries(t *testing.T, led *ledger.Ledger) []ledger.Entry {
	t.Helper()
	es, err := led.Entries()
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func serialOf(t *testing.T, der []byte) string {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.Text(16)
}

// TestLedgerRecordsCardOperations: every authentication, signature (raw
// and CAdES) and card read is recorded with the origin, the certificate
// serial and the digest of what was signed; nothing else (no PIN, no
// document) reaches the ledger files.
func TestLedgerRecordsCardOperations(t *testing.T) {
	h, led := ledgerHarness(t, harnessOpts{})
	authSerial, signSerial := serialOf(t, h.vc.Config().AuthCert), serialOf(t, h.vc.Config().SignCert)

	if w := h.do(http.MethodPost, "/v1/authenticate", authBody(goodNonce)); w.Code != 200 {
		t.Fatalf("authenticate: %d %s", w.Code, w.Body)
	}
	data := []byte("signed attributes built by the portal")
	if w := h.do(http.MethodPost, "/v1/sign", `{"dataToSign":"`+b64(data)+`"}`); w.Code != 200 {
		t.Fatalf("sign raw: %d %s", w.Code, w.Body)
	}
	doc := []byte("Ordonnance : amoxicilline 1 g, 3 fois par jour, 7 jours. Patient 1 85 12 75 108 042 77\n")
	docSum := sha256.Sum256(doc)
	if w := h.do(http.MethodPost, "/v1/sign", `{"document":"`+b64(doc)+`","format":"cades"}`); w.Code != 200 {
		t.Fatalf("sign CAdES: %d %s", w.Code, w.Body)
	}
	if w := h.do(http.MethodPost, "/v1/sign", `{"documentDigest":"`+b64(docSum[:])+`","digestAlgorithm":"SHA-256","format":"cades"}`); w.Code != 200 {
		t.Fatalf("sign CAdES digest: %d %s", w.Code, w.Body)
	}
	// Card reads: once per origin and card within the window.
	for range 3 {
		if w := h.do(http.MethodGet, "/v1/card", ""); w.Code != 200 {
			t.Fatalf("card: %d %s", w.Code, w.Body)
		}
	}
	if w := h.do(http.MethodGet, "/v1/card", "", "Origin", otherOrigin); w.Code != 200 {
		t.Fatalf("card: %d %s", w.Code, w.Body)
	}
	// Refused before the card: not card operations, not recorded.
	problemOf(t, h.do(http.MethodPost, "/v1/sign", `{"dataToSign":"!"}`), 400, CodeBadRequest)
	problemOf(t, h.do(http.MethodPost, "/v1/sign", validSign, "Origin", "https://evil.example"), 403, CodeOriginNotAllowed)

	authData, _ := AuthenticationData(testOrigin, goodNonce)
	want := []ledger.Entry{
		{Origin: testOrigin, Operation: ledger.OpAuthenticate, CertSerial: authSerial, SHA256: ledger.Digest(authData), Result: "ok"},
		{Origin: testOrigin, Operation: ledger.OpSign, CertSerial: signSerial, SHA256: ledger.Digest(data), Result: "ok"},
		{Origin: testOrigin, Operation: ledger.OpSign, CertSerial: signSerial, SHA256: hex.EncodeToString(docSum[:]), Result: "ok"},
		{Origin: testOrigin, Operation: ledger.OpSign, CertSerial: signSerial, SHA256: hex.EncodeToString(docSum[:]), Result: "ok"},
		{Origin: testOrigin, Operation: ledger.OpReadCard, CertSerial: authSerial, Result: "ok"},
		{Origin: otherOrigin, Operation: ledger.OpReadCard, CertSerial: authSerial, Result: "ok"},
	}
	got := entries(t, led)
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g := got[i]
		if time.Since(g.Time) > time.Minute {
			t.Errorf("entry %d: time %v", i, g.Time)
		}
		g.Time = time.Time{}
		if g != want[i] {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, g, want[i])
		}
	}
	assertLedgerClean(t, led.Dir(), goodPIN, doc)
}

// TestLedgerRecordsFailures: an operation that reached the card or the
// prompt is recorded with its problem code.
func TestLedgerRecordsFailures(t *testing.T) {
	t.Run("wrong PIN", func(t *testing.T) {
		h, led := ledgerHarness(t, harnessOpts{pin: pinentrytest.Options{PIN: wrongPIN}})
		problemOf(t, h.do(http.MethodPost, "/v1/sign", validSign), 409, CodePINIncorrect)
		es := entries(t, led)
		if len(es) != 1 || es[0].Operation != ledger.OpSign || es[0].Result != CodePINIncorrect || es[0].SHA256 == "" || es[0].Origin != testOrigin {
			t.Fatalf("entries %+v", es)
		}
		assertLedgerClean(t, led.Dir(), wrongPIN, nil)
	})
	t.Run("prompt cancelled", func(t *testing.T) {
		h, led := ledgerHarness(t, harnessOpts{pin: pinentrytest.Options{Mode: pinentrytest.ModeCancel}})
		problemOf(t, h.do(http.MethodPost, "/v1/authenticate", authBody(goodNonce)), 409, CodePINCancelled)
		es := entries(t, led)
		if len(es) != 1 || es[0].Operation != ledger.OpAuthenticate || es[0].Result != CodePINCancelled {
			t.Fatalf("entries %+v", es)
		}
	})
	t.Run("no card", func(t *testing.T) {
		h, led := ledgerHarness(t, harnessOpts{noCard: true})
		for range 2 {
			problemOf(t, h.do(http.MethodGet, "/v1/card", ""), 409, CodeCardAbsent)
		}
		es := entries(t, led)
		if len(es) != 1 || es[0].Operation != ledger.OpReadCard || es[0].Result != CodeCardAbsent || es[0].CertSerial != "" {
			t.Fatalf("entries %+v (a polling page records one line per window)", es)
		}
	})
}

// assertLedgerClean fails if any ledger file holds the PIN (as a number of
// its own, not inside a digest) or the document (raw or base64).
func assertLedgerClean(t *testing.T, dir, pin string, doc []byte) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "ledger*.jsonl"))
	if len(files) == 0 {
		t.Fatal("no ledger file")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if digitsRE(pin).Match(b) {
			t.Errorf("%s holds the PIN", f)
		}
		if doc != nil && (bytes.Contains(b, doc[:20]) || strings.Contains(string(b), b64(doc)[:20])) {
			t.Errorf("%s holds the document", f)
		}
	}
}

func TestReadDedupe(t *testing.T) {
	var d readDedupe
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	if !d.first("a", t0) || d.first("a", t0.Add(time.Minute)) || !d.first("b", t0) {
		t.Fatal("within the window")
	}
	if !d.first("a", t0.Add(readLedgerWindow)) {
		t.Fatal("after the window")
	}
	if !d.first("c", t0.Add(-time.Hour)) || !d.first("c", t0) {
		t.Fatal("clock going back")
	}
	for i := range 1000 {
		d.first(strings.Repeat("k", i%7)+string(rune('a'+i%26))+itoa(i), t0)
	}
	if len(d.seen) > 256 {
		t.Fatalf("%d keys kept", len(d.seen))
	}
}
