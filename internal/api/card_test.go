package api

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
	"github.com/cpsagent/cpsagent/internal/testutil"
	"github.com/cpsagent/cpsagent/pkg/cpsid"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func authBody(nonce string) string { return `{"challengeNonce":"` + nonce + `"}` }

// verifyToken checks a web-eid:1.0 token the way a portal does, with its
// own code (crypto/rsa), for origin and nonce.
func verifyToken(tok AuthToken, origin, nonce string) error {
	der, err := base64.StdEncoding.DecodeString(tok.UnverifiedCertificate)
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(tok.Signature)
	if err != nil {
		return err
	}
	if tok.Format != "web-eid:1.0" || tok.Algorithm != "RS256" || !strings.HasPrefix(tok.AppVersion, "https://") {
		return errors.New("bad token header fields")
	}
	ho := sha256.Sum256([]byte(origin))
	hn := sha256.Sum256([]byte(nonce))
	signed := append(ho[:], hn[:]...)
	h := sha256.Sum256(signed)
	return rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, h[:], sig)
}

func TestAuthenticateToken(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	w := h.do(http.MethodPost, "/v1/authenticate", authBody(goodNonce))
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var tok AuthToken
	decodeJSON(t, w.Body.Bytes(), &tok)
	if err := verifyToken(tok, testOrigin, goodNonce); err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	// The authentication certificate, not the signature one.
	der, _ := base64.StdEncoding.DecodeString(tok.UnverifiedCertificate)
	if !bytes.Equal(der, h.vc.Config().AuthCert) {
		t.Fatal("token carries another certificate than the authentication one")
	}
	if st := h.vc.Stats(); st.InternalAuths != 1 || st.Signatures != 0 || st.Verifies != 1 {
		t.Fatalf("card stats %+v", st)
	}
}

func TestSec38_OriginBinding(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	w := h.do(http.MethodPost, "/v1/authenticate", authBody(goodNonce))
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var tok AuthToken
	decodeJSON(t, w.Body.Bytes(), &tok)
	if err := verifyToken(tok, testOrigin, goodNonce); err != nil {
		t.Fatalf("origin A: %v", err)
	}
	for _, o := range []string{otherOrigin, "https://portal.test:443", "https://portal.test/", "http://portal.test", "https://evil.example"} {
		if verifyToken(tok, o, goodNonce) == nil {
			t.Errorf("token for %s verifies for %s", testOrigin, o)
		}
	}
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5A}, 32))
	if verifyToken(tok, testOrigin, other) == nil {
		t.Error("token verifies with another nonce")
	}
	// The same request from origin B gives a token bound to B only.
	w = h.do(http.MethodPost, "/v1/authenticate", authBody(goodNonce), "Origin", otherOrigin)
	var tokB AuthToken
	decodeJSON(t, w.Body.Bytes(), &tokB)
	if verifyToken(tokB, otherOrigin, goodNonce) != nil || verifyToken(tokB, testOrigin, goodNonce) == nil {
		t.Error("origin B token binding")
	}
}

func TestSec23_BodyOriginNeverUsed(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	w := h.do(http.MethodPost, "/v1/authenticate", `{"challengeNonce":"`+goodNonce+`","origin":"`+otherOrigin+`"}`)
	if p := problemOf(t, w, 400, CodeBadRequest); p.Field != "origin" {
		t.Fatalf("field %q", p.Field)
	}
	h.assertUntouched(t)
}

func TestSignRaw(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	data := []byte("1\x0b0\t\x06\x03U\x04\x06\x13\x02FR signed attributes")
	w := h.do(http.MethodPost, "/v1/sign", `{"dataToSign":"`+b64(data)+`","description":"Ordonnance 42"}`)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var resp SignResponse
	decodeJSON(t, w.Body.Bytes(), &resp)
	if resp.Format != "raw" || resp.SignatureAlgorithm != rsaPKCS1SHA256 {
		t.Fatalf("resp %+v", resp)
	}
	der, _ := base64.StdEncoding.DecodeString(resp.Certificate)
	if !bytes.Equal(der, h.vc.Config().SignCert) {
		t.Fatal("not the signature certificate")
	}
	cert, _ := x509.ParseCertificate(der)
	sig, _ := base64.StdEncoding.DecodeString(resp.Signature)
	hsum := sha256.Sum256(data)
	if err := rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, hsum[:], sig); err != nil {
		t.Fatal(err)
	}
	if st := h.vc.Stats(); st.Signatures != 1 || st.InternalAuths != 0 {
		t.Fatalf("stats %+v: the authentication key must never sign documents", st)
	}
}

func testChainPEM(t *testing.T) []byte {
	pki, err := virtual.IdentityPKI()
	if err != nil {
		t.Fatal(err)
	}
	return pki.ChainPEM()
}

func TestSignCAdES(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	doc := []byte("%PDF-1.7 prescription for a patient\n")
	sum := sha256.Sum256(doc)
	for _, body := range []string{
		`{"document":"` + b64(doc) + `","format":"cades"}`,
		`{"documentDigest":"` + b64(sum[:]) + `","digestAlgorithm":"SHA-256","format":"cades","lang":"en"}`,
	} {
		w := h.do(http.MethodPost, "/v1/sign", body)
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		var resp SignResponse
		decodeJSON(t, w.Body.Bytes(), &resp)
		if resp.Format != "cades" {
			t.Fatalf("format %q", resp.Format)
		}
		p7s, err := base64.StdEncoding.DecodeString(resp.Signature)
		if err != nil {
			t.Fatal(err)
		}
		testutil.OpenSSLVerifyCMS(t, p7s, doc, testChainPEM(t))
		// The signing-certificate-v2 and signing-time attributes are present
		// (OIDs 1.2.840.113549.1.9.16.2.47 and 1.2.840.113549.1.9.5).
		for _, oid := range [][]byte{{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x02, 0x2f}, {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x05}} {
			if !bytes.Contains(p7s, oid) {
				t.Errorf("attribute %x missing", oid)
			}
		}
		if bytes.Contains(p7s, doc) {
			t.Error("the signature is not detached")
		}
	}
}

func TestCardAndStatus(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	w := h.do(http.MethodGet, "/v1/card", "")
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var id cpsid.Identity
	decodeJSON(t, w.Body.Bytes(), &id)
	if id.Certificates.Authentication == nil || id.Certificates.Signature == nil || id.FamilyName == "" || id.NationalID == "" {
		t.Fatalf("identity %+v", id)
	}
	if der, _ := base64.StdEncoding.DecodeString(id.Certificates.Signature.DER); !bytes.Equal(der, h.vc.Config().SignCert) {
		t.Fatal("signature certificate")
	}
	if bytes.Contains(w.Body.Bytes(), []byte(goodPIN)) {
		t.Fatal("PIN in /v1/card")
	}
	problemOf(t, h.do(http.MethodGet, "/v1/card?reader=nope", ""), 409, CodeReaderAbsent)
	if w := h.do(http.MethodGet, "/v1/card?reader="+strings.ReplaceAll(readerName, " ", "%20"), ""); w.Code != 200 {
		t.Fatalf("named reader: %d %s", w.Code, w.Body)
	}

	w = h.do(http.MethodGet, "/v1/status", "")
	var st StatusResponse
	decodeJSON(t, w.Body.Bytes(), &st)
	if st.Agent != "cpsagent" || st.APIVersion != "1.0" || st.Version != "test" || !st.PCSC.Available || !st.CardPresent ||
		len(st.Readers) != 1 || st.Readers[0].Name != readerName || st.Readers[0].Card == nil || !st.Readers[0].Card.Supported {
		t.Fatalf("status %+v", st)
	}
	w = h.do(http.MethodGet, "/v1/readers", "")
	var rd ReadersResponse
	decodeJSON(t, w.Body.Bytes(), &rd)
	if len(rd.Readers) != 1 || rd.Readers[0].Name != readerName {
		t.Fatalf("readers %+v", rd)
	}
	h.mr.Remove(readerName)
	problemOf(t, h.do(http.MethodPost, "/v1/sign", validSign), 409, CodeCardAbsent)
}

func TestPINPromptContent(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	w := h.do(http.MethodPost, "/v1/sign", `{"dataToSign":"`+b64([]byte("x"))+`","description":"Ordonnance n°42 du patient","lang":"fr"}`)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	reqs := h.prompter.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d prompts", len(reqs))
	}
	r := reqs[0]
	if r.Origin != testOrigin || r.Description != "Ordonnance n°42 du patient" || r.Operation == "" || r.Holder == "" ||
		r.TriesLeft != 3 || r.LastTry || r.Lang != "fr" || r.Reader != readerName {
		t.Fatalf("prompt request %+v", r)
	}
	// What the real dialog received (the fake pinentry logs commands).
	log, _ := pinentrytest.ReadLog(h.pinLog)
	all := strings.Join(log, "\n")
	for _, want := range []string{"portal.test", "Ordonnance", "GETPIN"} {
		if !strings.Contains(all, want) {
			t.Errorf("dialog lacks %q:\n%s", want, all)
		}
	}
	w = h.do(http.MethodPost, "/v1/authenticate", `{"challengeNonce":"`+goodNonce+`","lang":"en"}`)
	if w.Code != 200 {
		t.Fatal(w.Code)
	}
	if r := h.prompter.requests()[1]; r.Description != "" || !strings.Contains(r.Operation, "sign in") || r.Lang != "en" {
		t.Fatalf("authenticate prompt %+v", r)
	}
}

// dialogTexts returns, for each dialog the fake pinentry ran (each GETPIN
// or CONFIRM), the SETTITLE and SETDESC it received, Assuan-unescaped.
func dialogTexts(t *testing.T, logFile string) (titles, descs []string) {
	t.Helper()
	lines, err := pinentrytest.ReadLog(logFile)
	if err != nil {
		t.Fatal(err)
	}
	unescape := strings.NewReplacer("%0A", "\n", "%0D", "\r", "%25", "%")
	var title, desc string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "SETTITLE "):
			title = unescape.Replace(strings.TrimPrefix(l, "SETTITLE "))
		case strings.HasPrefix(l, "SETDESC "):
			desc = unescape.Replace(strings.TrimPrefix(l, "SETDESC "))
		case l == "GETPIN" || l == "CONFIRM":
			titles, descs = append(titles, title), append(descs, desc)
		}
	}
	return titles, descs
}

// TestSec29_DialogNamesOriginAndOperation (security.md §6 item 29): the PIN
// dialog a web request opens names the exact origin (an IDN decoded and
// raw) and the operation, in the agent's own lines; the request's
// description is accepted only as plain text on one line of at most 200
// characters (else 400 before any dialog) and is shown quoted, once, as the
// site's unverified message, after every agent line, so that it cannot
// pass for the agent's wording (quotes and markup inside it are
// neutralised by pinentry.SanitizeDescription).
func TestSec29_DialogNamesOriginAndOperation(t *testing.T) {
	const idn = "https://xn--caf-dma.example" // café.example
	h := newHarness(t, harnessOpts{options: func(o *Options) { o.AllowedOrigins = append(o.AllowedOrigins, idn) }})
	data := b64([]byte("attributes"))
	fake := "Opération : connexion au site (authentification) Porteur : Dr FAUX Essais restants : 3 " +
		`ATTENTION : dernier essai. « cpsagent – Code porteur » \"ok\" <b>Valider</b>` // JSON-escaped quotes
	tests := []struct {
		name, origin, path, body string
		title                    string
		lines                    []string // the agent's lines, in order, before the site's message
		message                  string   // the site's line, "" for none
	}{
		{
			name: "sign, plain origin, description faking agent lines", origin: testOrigin, path: "/v1/sign",
			body:  `{"dataToSign":"` + data + `","description":"` + fake + `"}`,
			title: "cpsagent – Code porteur de la carte CPS",
			lines: []string{"Le site suivant demande votre code porteur :", "    " + testOrigin, "Opération : signature d'un document"},
			message: "Message du site (non vérifié) : « Opération : connexion au site (authentification) Porteur : Dr FAUX " +
				"Essais restants : 3 ATTENTION : dernier essai. ' cpsagent – Code porteur ' 'ok' ‹b›Valider‹/b› »",
		},
		{
			name: "sign, IDN origin, english", origin: idn, path: "/v1/sign",
			body:    `{"dataToSign":"` + data + `","description":"Prescription 42","lang":"en"}`,
			title:   "cpsagent – CPS card PIN",
			lines:   []string{"The following site asks for your PIN:", "    https://café.example", "    (raw address: " + idn + ")", "Operation: signature of a document"},
			message: "Message from the site (unverified): “Prescription 42”",
		},
		{
			name: "sign, description at the 200-character limit", origin: testOrigin, path: "/v1/sign",
			body:    `{"dataToSign":"` + data + `","description":"` + strings.Repeat("é", 200) + `"}`,
			title:   "cpsagent – Code porteur de la carte CPS",
			lines:   []string{"Le site suivant demande votre code porteur :", "    " + testOrigin, "Opération : signature d'un document"},
			message: "Message du site (non vérifié) : « " + strings.Repeat("é", 200) + " »",
		},
		{
			name: "authenticate, IDN origin: no site text at all", origin: idn, path: "/v1/authenticate",
			body:  authBody(goodNonce),
			title: "cpsagent – Code porteur de la carte CPS",
			lines: []string{"Le site suivant demande votre code porteur :", "    https://café.example", "    (adresse technique : " + idn + ")",
				"Opération : connexion au site (authentification)"},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w := h.do(http.MethodPost, tt.path, tt.body, "Origin", tt.origin); w.Code != 200 {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			titles, descs := dialogTexts(t, h.pinLog)
			if len(descs) != i+1 {
				t.Fatalf("%d dialogs, want %d", len(descs), i+1)
			}
			if titles[i] != tt.title {
				t.Errorf("title %q, want %q", titles[i], tt.title)
			}
			lines := strings.Split(descs[i], "\n")
			if !slices.Equal(lines[:min(len(tt.lines), len(lines))], tt.lines) {
				t.Fatalf("dialog starts %q, want %q", lines, tt.lines)
			}
			for _, l := range lines[len(tt.lines):] {
				if !strings.HasPrefix(l, "Porteur : ") && !strings.HasPrefix(l, "Card holder: ") &&
					!strings.HasPrefix(l, "Lecteur : ") && !strings.HasPrefix(l, "Reader: ") &&
					!strings.HasPrefix(l, "Essais restants : ") && !strings.HasPrefix(l, "Tries left: ") &&
					l != "" && l != tt.message {
					t.Errorf("unexpected dialog line %q in\n%s", l, descs[i])
				}
			}
			switch last := lines[len(lines)-1]; {
			case tt.message == "" && strings.Contains(descs[i], "Message"):
				t.Errorf("a site message without a description:\n%s", descs[i])
			case tt.message != "" && (last != tt.message || strings.Count(descs[i], "\n\n") != 1):
				t.Errorf("site message %q, want %q last, after one blank line:\n%s", last, tt.message, descs[i])
			}
		})
	}

	// Descriptions that are not plain one-line text, or too long, are
	// refused before any dialog.
	for _, d := range []string{
		`a\nOpération : rien`, `a\rb`, `a\tb`, `a\u0000b`, `a\u0085b`, `a\u2028b`, `a\u2029b`,
		`a\u202eb`, `a\u2066b\u2069`, `a\u200bb`, `a\ufeffb`, `\u001b[31mrouge`, strings.Repeat("a", 201),
	} {
		w := h.do(http.MethodPost, "/v1/sign", `{"dataToSign":"`+data+`","description":"`+d+`"}`)
		if p := problemOf(t, w, 400, CodeBadRequest); p.Field != "description" {
			t.Errorf("description %q: field %q", d, p.Field)
		}
	}
	if n := h.prompts(); n != len(tests) {
		t.Fatalf("%d dialogs, want %d (none for a refused description)", n, len(tests))
	}
}

// startSign runs a sign request in the background and returns its result
// channel and the cancel function of its (client) context.
func (h *harness) startSign(origin string) (<-chan *httpResult, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan *httpResult, 1)
	go func() {
		r := req(http.MethodPost, "/v1/sign", validSign, "Origin", origin).WithContext(ctx)
		w := h.serve(r)
		ch <- &httpResult{w.Code, w.Header(), w.Body.Bytes()}
	}()
	return ch, cancel
}

type httpResult struct {
	code int
	hdr  http.Header
	body []byte
}

func (h *harness) waitPrompt(t *testing.T) {
	t.Helper()
	select {
	case <-h.prompter.started:
	case <-time.After(30 * time.Second):
		t.Fatal("no PIN prompt")
	}
}

func TestSec26_BusyWhileDialogOpen(t *testing.T) {
	h := newHarness(t, harnessOpts{pin: pinentrytest.Options{Mode: pinentrytest.ModeHang}})
	first, cancel := h.startSign(testOrigin)
	h.waitPrompt(t)

	// Every other card operation, from any origin, is refused at once
	// while the first one's dialog is open.
	for _, c := range []struct{ path, body, origin string }{
		{"/v1/sign", validSign, testOrigin},
		{"/v1/sign", validSign, otherOrigin},
		{"/v1/authenticate", authBody(goodNonce), otherOrigin},
		{"/v1/sign", `{"bad json`, testOrigin}, // busy wins before the body is read
	} {
		problemOf(t, h.do(http.MethodPost, c.path, c.body, "Origin", c.origin), 409, CodeAgentBusy)
	}
	// Cached reads are not blocked.
	for _, p := range []string{"/v1/status", "/v1/card", "/v1/readers"} {
		if w := h.do(http.MethodGet, p, ""); w.Code != 200 {
			t.Fatalf("%s during a prompt: %d %s", p, w.Code, w.Body)
		}
	}
	select {
	case <-first:
		t.Fatal("the first request ended while its dialog was open")
	default:
	}
	cancel()
	res := <-first
	checkProblem(t, res.code, res.hdr, res.body, 409, CodePINCancelled)
	if n := h.prompts(); n != 1 {
		t.Fatalf("%d dialogs, want 1", n)
	}
	if n := h.verifies(); n != 0 {
		t.Fatalf("%d VERIFY", n)
	}
}

func TestSec27_RateLimitOneDialog(t *testing.T) {
	h := newHarness(t, harnessOpts{
		pin:     pinentrytest.Options{Mode: pinentrytest.ModeCancel},
		options: func(o *Options) { o.RateBurst, o.RatePerMinute = 3, 1 },
	})
	codes := map[string]int{}
	for i := 0; i < 50; i++ {
		w := h.do(http.MethodPost, "/v1/sign", validSign)
		var p Problem
		_ = json.Unmarshal(w.Body.Bytes(), &p)
		codes[p.Code]++
		if p.Code == CodeRateLimited {
			if ra := w.Header().Get("Retry-After"); ra == "" || ra == "0" {
				t.Fatalf("Retry-After %q", ra)
			}
			if w.Header().Get("Access-Control-Expose-Headers") != "Retry-After" {
				t.Fatal("Retry-After not exposed to the page")
			}
		}
	}
	if codes[CodePINCancelled] != 3 || codes[CodeRateLimited] != 47 {
		t.Fatalf("codes %v", codes)
	}
	if n := h.prompts(); n != 3 {
		t.Fatalf("%d dialogs", n)
	}
	// Per origin: another allowed site is not affected.
	w := h.do(http.MethodPost, "/v1/sign", validSign, "Origin", otherOrigin)
	problemOf(t, w, 409, CodePINCancelled)

	// 50 concurrent requests: one dialog at most.
	h2 := newHarness(t, harnessOpts{pin: pinentrytest.Options{Mode: pinentrytest.ModeHang}})
	var wg sync.WaitGroup
	results := make(chan int, 50)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := h2.serve(req(http.MethodPost, "/v1/sign", validSign).WithContext(ctx))
			results <- w.Code
		}()
	}
	h2.waitPrompt(t)
	// 49 answer agent_busy (the 50th holds the dialog until cancelled).
	for i := 0; i < 49; i++ {
		if c := <-results; c != 409 {
			t.Fatalf("status %d", c)
		}
	}
	cancel()
	wg.Wait()
	if n := h2.prompts(); n != 1 {
		t.Fatalf("%d dialogs", n)
	}
}

// pinentryAlive reports whether a fake pinentry started with this log file
// still runs (Linux: its environment names the file).
func pinentryAlive(t *testing.T, logFile string) bool {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	needle := []byte("FAKE_PINENTRY_LOG=" + logFile + "\x00")
	for _, e := range ents {
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, needle) {
			stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if !bytes.Contains(stat, []byte(") Z ")) { // zombies are dead
				return true
			}
		}
	}
	return false
}

func TestSec31_CancelOrDisconnectNoVerify(t *testing.T) {
	t.Run("user cancels", func(t *testing.T) {
		h := newHarness(t, harnessOpts{pin: pinentrytest.Options{Mode: pinentrytest.ModeCancel}})
		problemOf(t, h.do(http.MethodPost, "/v1/sign", validSign), 409, CodePINCancelled)
		problemOf(t, h.do(http.MethodPost, "/v1/authenticate", authBody(goodNonce)), 409, CodePINCancelled)
		if h.verifies() != 0 || h.vc.PINStatus().PINTriesLeft != 3 {
			t.Fatal("card touched")
		}
	})
	t.Run("prompt times out", func(t *testing.T) {
		h := newHarness(t, harnessOpts{pin: pinentrytest.Options{Mode: pinentrytest.ModeTimeout}})
		problemOf(t, h.do(http.MethodPost, "/v1/sign", validSign), 409, CodePINCancelled)
		if h.verifies() != 0 {
			t.Fatal("VERIFY sent")
		}
	})
	t.Run("prompt program crashes", func(t *testing.T) {
		h := newHarness(t, harnessOpts{pin: pinentrytest.Options{Mode: pinentrytest.ModeCrash}})
		problemOf(t, h.do(http.MethodPost, "/v1/sign", validSign), 503, CodePINUnavailable)
		if h.verifies() != 0 {
			t.Fatal("VERIFY sent")
		}
	})
	t.Run("no prompt program", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		h.srv.prompter = &recordingPrompter{inner: newMissingPrompter(), started: make(chan pinentryRequest, 1)}
		problemOf(t, h.do(http.MethodPost, "/v1/sign", validSign), 503, CodePINUnavailable)
	})
	t.Run("client disconnects", func(t *testing.T) {
		h := newHarness(t, harnessOpts{pin: pinentrytest.Options{Mode: pinentrytest.ModeHang}})
		res, cancel := h.startSign(testOrigin)
		h.waitPrompt(t)
		if runtime.GOOS == "linux" && !waitFor(5*time.Second, func() bool { return pinentryAlive(t, h.pinLog) }) {
			t.Fatal("pinentry not found running")
		}
		cancel()
		r := <-res
		checkProblem(t, r.code, r.hdr, r.body, 409, CodePINCancelled)
		if runtime.GOOS == "linux" && !waitFor(10*time.Second, func() bool { return !pinentryAlive(t, h.pinLog) }) {
			t.Fatal("the pinentry process survived the client")
		}
		if h.verifies() != 0 {
			t.Fatal("VERIFY sent after the client left")
		}
		// The agent is free again.
		h.srv.prompter.(*recordingPrompter).inner = newOKPrompter(t)
		if w := h.do(http.MethodPost, "/v1/sign", validSign); w.Code != 200 {
			t.Fatalf("after disconnect: %d %s", w.Code, w.Body)
		}
	})
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSec32_WrongPINOnceNoRetry(t *testing.T) {
	h := newHarness(t, harnessOpts{pin: pinentrytest.Options{PINs: []string{wrongPIN, goodPIN}}})
	p := problemOf(t, h.do(http.MethodPost, "/v1/sign", validSign), 409, CodePINIncorrect)
	if p.TriesLeft == nil || *p.TriesLeft != 2 {
		t.Fatalf("triesLeft %v", p.TriesLeft)
	}
	if h.prompts() != 1 || h.verifies() != 1 {
		t.Fatalf("prompts %d verifies %d: exactly one VERIFY per submission, no retry", h.prompts(), h.verifies())
	}
	// The next request asks again and shows 2 tries left.
	if w := h.do(http.MethodPost, "/v1/sign", validSign); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if r := h.prompter.requests()[1]; r.TriesLeft != 2 {
		t.Fatalf("second prompt shows %d tries", r.TriesLeft)
	}
}

func TestSec33_MalformedPINCostsNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{pin: pinentrytest.Options{PINs: []string{"12a4", "123", "12345"}}})
	problemOf(t, h.do(http.MethodPost, "/v1/sign", validSign), 409, CodePINFormat)
	if h.verifies() != 0 || h.vc.PINStatus().PINTriesLeft != 3 {
		t.Fatalf("verifies %d, tries %d", h.verifies(), h.vc.PINStatus().PINTriesLeft)
	}
	log, _ := pinentrytest.ReadLog(h.pinLog)
	if n := strings.Count(strings.Join(log, "\n"), "GETPIN"); n != 3 {
		t.Fatalf("%d GETPIN in one dialog, want 3 (re-asked locally)", n)
	}
}

func TestSec34_LastTryWarningAndBlocked(t *testing.T) {
	h := newHarness(t, harnessOpts{pin: pinentrytest.Options{PINs: []string{wrongPIN, wrongPIN, wrongPIN}}})
	for want := 2; want >= 1; want-- {
		p := problemOf(t, h.do(http.MethodPost, "/v1/sign", validSign), 409, CodePINIncorrect)
		if *p.TriesLeft != want {
			t.Fatalf("triesLeft %d, want %d", *p.TriesLeft, want)
		}
	}
	// The third wrong PIN blocks the card (63 C0 then 69 83): reported as
	// pin_blocked, or pin_incorrect with 0 tries left.
	w := h.do(http.MethodPost, "/v1/sign", validSign)
	if p := checkProblem(t, w.Code, w.Header(), w.Body.Bytes(), 409, problemCode(w.Body.Bytes())); p.Code != CodePINBlocked &&
		(p.Code != CodePINIncorrect || *p.TriesLeft != 0) {
		t.Fatalf("third wrong PIN: %+v", p)
	}
	if h.vc.PINStatus().PINTriesLeft != 0 || h.verifies() != 3 {
		t.Fatalf("card: %+v, %d VERIFY", h.vc.PINStatus(), h.verifies())
	}
	reqs := h.prompter.requests()
	if reqs[0].LastTry || reqs[1].LastTry || !reqs[2].LastTry || reqs[2].TriesLeft != 1 {
		t.Fatalf("last-try warning: %+v", reqs)
	}
	log, _ := pinentrytest.ReadLog(h.pinLog)
	if descs := grepLines(log, "SETDESC"); len(descs) != 3 || descs[2] == descs[1] {
		t.Fatalf("the last dialog does not differ (warning): %q", descs)
	}
	// Blocked: an error, no dialog, no VERIFY.
	prompts, verifies := h.prompts(), h.verifies()
	for _, path := range []string{"/v1/sign", "/v1/authenticate"} {
		body := validSign
		if path == "/v1/authenticate" {
			body = authBody(goodNonce)
		}
		problemOf(t, h.do(http.MethodPost, path, body), 409, CodePINBlocked)
	}
	if h.prompts() != prompts || h.verifies() != verifies {
		t.Fatal("a blocked card got a dialog or a VERIFY")
	}
}

func grepLines(lines []string, prefix string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// secondCard is another holder's virtual card, with the harness PIN and a
// serial of its own (the ready-made identities share the first 8 digits,
// which are the card serial the agent reports).
func secondCard(t *testing.T) *virtual.Card {
	t.Helper()
	cfg, err := virtual.Identity("infirmier")
	if err != nil {
		t.Fatal(err)
	}
	cfg.PIN, cfg.Serial = goodPIN, "1357924600"
	vc, err := virtual.NewCard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return vc
}

// TestSec36_CardSwappedBeforeSigning (security.md §6 item 36): the page read
// the holder's identity and certificates (GET /v1/card), then another card
// is put in the reader before the signature or authentication. The
// operation is refused with 409 card_changed and nothing is signed, when
// the swap happens while the PIN prompt is open (the engine re-reads the
// serial before VERIFY), and, when it happened before the request, for a
// request that names the card by the serialNumber it read (reader field;
// for CAdES the agent also compares the signing certificate): then without
// a prompt. A request that names no card uses the card in the reader, and
// its answer carries that card's certificate, never the one read before.
func TestSec36_CardSwappedBeforeSigning(t *testing.T) {
	digest := sha256.Sum256([]byte("ordonnance"))
	cades := func(reader string) string {
		return `{"documentDigest":"` + b64(digest[:]) + `","digestAlgorithm":"SHA-256","format":"cades"` + reader + `}`
	}
	raw := func(reader string) string { return `{"dataToSign":"` + b64([]byte("attributes")) + `"` + reader + `}` }
	auth := func(reader string) string { return `{"challengeNonce":"` + goodNonce + `"` + reader + `}` }
	tests := []struct {
		name         string
		duringPrompt bool // else swapped (and seen by the engine) before the request
		method, path string
		body         func(reader string) string // reader is `,"reader":"SERIAL"` or ""
		bySerial     bool
		wantPrompts  int
	}{
		{"raw signature, swapped during the PIN prompt", true, http.MethodPost, "/v1/sign", raw, false, 1},
		{"raw signature by serial, swapped during the PIN prompt", true, http.MethodPost, "/v1/sign", raw, true, 1},
		{"CAdES, swapped during the PIN prompt", true, http.MethodPost, "/v1/sign", cades, false, 1},
		{"authentication, swapped during the PIN prompt", true, http.MethodPost, "/v1/authenticate", auth, false, 1},
		{"raw signature by serial, swapped before", false, http.MethodPost, "/v1/sign", raw, true, 0},
		{"CAdES by serial, swapped before", false, http.MethodPost, "/v1/sign", cades, true, 0},
		{"authentication by serial, swapped before", false, http.MethodPost, "/v1/authenticate", auth, true, 0},
		{"identity by serial, swapped before", false, http.MethodGet, "/v1/card?reader=", nil, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			var id cpsid.Identity
			w := h.do(http.MethodGet, "/v1/card", "")
			decodeJSON(t, w.Body.Bytes(), &id)
			if w.Code != 200 || id.Card.SerialNumber == nil {
				t.Fatalf("identity read: %d %s", w.Code, w.Body)
			}
			serial := *id.Card.SerialNumber
			other := secondCard(t)
			events, unsubscribe := h.eng.Subscribe()
			defer unsubscribe()
			swap := func() {
				if err := h.mr.Insert(readerName, other); err != nil {
					t.Error(err)
				}
			}
			if tt.duringPrompt {
				var once sync.Once
				h.prompter.before = func(pinentryRequest) { once.Do(swap) }
			} else {
				swap()
				for ev := waitEvent(t, events, card.EventIdentityReady); ev.Serial == serial; {
					ev = waitEvent(t, events, card.EventIdentityReady)
				}
			}
			path, body, reader := tt.path, "", ""
			if tt.bySerial {
				reader = `,"reader":"` + serial + `"`
			}
			if tt.body != nil {
				body = tt.body(reader)
			} else {
				path += serial
			}
			w = h.do(tt.method, path, body)
			problemOf(t, w, 409, CodeCardChanged)
			if n := h.prompts(); n != tt.wantPrompts {
				t.Errorf("%d PIN prompts, want %d", n, tt.wantPrompts)
			}
			if st := other.Stats(); st.Verifies != 0 || st.Signatures != 0 || st.InternalAuths != 0 {
				t.Errorf("the new card was used: %+v", st)
			}
			if st := h.vc.Stats(); st.Verifies != 0 || st.Signatures != 0 || st.InternalAuths != 0 {
				t.Errorf("the card read before was used: %+v", st)
			}
		})
	}

	t.Run("no card named: the answer names the card that signed", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		if w := h.do(http.MethodGet, "/v1/card", ""); w.Code != 200 {
			t.Fatal(w.Code)
		}
		other := secondCard(t)
		events, unsubscribe := h.eng.Subscribe()
		defer unsubscribe()
		if err := h.mr.Insert(readerName, other); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, events, card.EventIdentityReady)
		w := h.do(http.MethodPost, "/v1/sign", raw(""))
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		var resp SignResponse
		decodeJSON(t, w.Body.Bytes(), &resp)
		if resp.Certificate != b64(other.Config().SignCert) || resp.Certificate == b64(h.vc.Config().SignCert) {
			t.Fatal("the answer does not carry the certificate of the card that signed")
		}
	})
}

func TestSec35_NoPINCache(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for i := 0; i < 2; i++ {
		if w := h.do(http.MethodPost, "/v1/sign", validSign); w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	if w := h.do(http.MethodPost, "/v1/authenticate", authBody(goodNonce)); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if h.prompts() != 3 || h.verifies() != 3 {
		t.Fatalf("prompts %d verifies %d: every operation asks the PIN", h.prompts(), h.verifies())
	}
	if h.vc.PINStatus().PINVerified {
		t.Fatal("the card was left with the PIN verified")
	}
}

func TestSec40_CardFailuresAreGeneric(t *testing.T) {
	t.Run("card pulled mid-operation", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		var once sync.Once
		h.mr.BeforeTransmit = func(reader string, cmd []byte) {
			if len(cmd) > 1 && cmd[1] == 0x20 && len(cmd) > 5 { // VERIFY with data
				once.Do(func() { h.mr.Remove(reader) })
			}
		}
		w := h.do(http.MethodPost, "/v1/sign", validSign)
		p := checkProblem(t, w.Code, w.Header(), w.Body.Bytes(), 409, problemCode(w.Body.Bytes()))
		if p.Code != CodeCardRemoved && p.Code != CodeCardAbsent {
			t.Fatalf("code %s", p.Code)
		}
		h.mr.BeforeTransmit = nil
		if w := h.do(http.MethodGet, "/v1/status", ""); w.Code != 200 {
			t.Fatal("agent stopped serving")
		}
		events, unsub := h.eng.Subscribe()
		defer unsub()
		_ = h.mr.Insert(readerName, h.vc)
		waitEvent(t, events, card.EventIdentityReady)
		if w := h.do(http.MethodPost, "/v1/sign", validSign); w.Code != 200 {
			t.Fatalf("after re-insertion: %d %s", w.Code, w.Body)
		}
	})
	t.Run("smart-card service stopped", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		events, unsub := h.eng.Subscribe()
		defer unsub()
		h.mr.SetServiceDown(true)
		waitEvent(t, events, card.EventServiceLost)
		for _, c := range []struct{ method, path, body string }{{"POST", "/v1/sign", validSign}, {"POST", "/v1/authenticate", authBody(goodNonce)}, {"GET", "/v1/card", ""}} {
			w := h.do(c.method, c.path, c.body)
			code := problemCode(w.Body.Bytes())
			if code != CodePCSCUnavailable && code != CodeReaderAbsent {
				t.Fatalf("%s: %d %s", c.path, w.Code, w.Body)
			}
			checkProblem(t, w.Code, w.Header(), w.Body.Bytes(), Codes()[code], code)
		}
		var st StatusResponse
		decodeJSON(t, h.do(http.MethodGet, "/v1/status", "").Body.Bytes(), &st)
		if st.PCSC.Available {
			t.Fatal("status says PC/SC is available")
		}
		h.mr.SetServiceDown(false)
		waitEvent(t, events, card.EventIdentityReady)
		if w := h.do(http.MethodPost, "/v1/sign", validSign); w.Code != 200 {
			t.Fatalf("after restart: %d %s", w.Code, w.Body)
		}
	})
	t.Run("unknown error is internal", func(t *testing.T) {
		p := problemFor(context.Background(), errors.New("open /secret/path/file.go: boom"))
		if p.Code != CodeInternal || strings.Contains(p.Detail, "secret") {
			t.Fatalf("%+v", p)
		}
	})
}

func problemCode(b []byte) string {
	var p Problem
	_ = json.Unmarshal(b, &p)
	return p.Code
}

func TestSec42_ForgedOriginStillNeedsThePIN(t *testing.T) {
	h := newHarness(t, harnessOpts{pin: pinentrytest.Options{Mode: pinentrytest.ModeCancel}})
	// A local program (no Sec-Fetch-* headers, curl's User-Agent) forging an
	// allowed Origin: the holder still sees the dialog naming that origin,
	// and nothing is signed without the PIN.
	w := h.do(http.MethodPost, "/v1/sign", validSign, "User-Agent", "curl/8.5.0", "Origin", testOrigin)
	problemOf(t, w, 409, CodePINCancelled)
	reqs := h.prompter.requests()
	if len(reqs) != 1 || reqs[0].Origin != testOrigin {
		t.Fatalf("prompts %+v", reqs)
	}
	if h.vc.Stats().Signatures != 0 {
		t.Fatal("signed without the PIN")
	}
}

// TestSec39_NoSecretsInLogs runs the card flows with debug logging and
// searches the agent's log and the dialog log for the PINs, the VERIFY
// data, the documents and the nonce.
func TestSec39_NoSecretsInLogs(t *testing.T) {
	h := newHarness(t, harnessOpts{pin: pinentrytest.Options{PINs: []string{goodPIN, wrongPIN, goodPIN, goodPIN, goodPIN}}})
	doc := []byte("CONFIDENTIAL-PATIENT-DOCUMENT-7f3a")
	sum := sha256.Sum256(doc)
	bodies := []struct{ path, body string }{
		{"/v1/sign", `{"dataToSign":"` + b64(doc) + `"}`},
		{"/v1/sign", `{"document":"` + b64(doc) + `","format":"cades"}`},
		{"/v1/sign", `{"document":"` + b64(doc) + `","format":"cades"}`},
		{"/v1/sign", `{"documentDigest":"` + b64(sum[:]) + `","digestAlgorithm":"SHA-256","format":"cades"}`},
		{"/v1/authenticate", authBody(goodNonce)},
		{"/v1/sign", `{"dataToSign":"` + b64(doc) + `","pin":"` + goodPIN + `"}`},
	}
	for _, b := range bodies {
		h.do(http.MethodPost, b.path, b.body)
	}
	if h.verifies() != 5 {
		t.Fatalf("%d VERIFY", h.verifies())
	}
	hexPIN := strings.ToUpper(hex.EncodeToString([]byte(goodPIN)))
	secrets := map[string]*regexp.Regexp{
		"PIN":              digitsRE(goodPIN),
		"wrong PIN":        digitsRE(wrongPIN),
		"PIN hex":          regexp.MustCompile(`(?i)` + hexPIN + `|` + spaced(hexPIN)),
		"PIN base64":       regexp.MustCompile(regexp.QuoteMeta(b64([]byte(goodPIN)))),
		"VERIFY APDU":      regexp.MustCompile(`(?i)00 ?20 ?00 ?0[0-9a-f] ?0[48]`),
		"document":         regexp.MustCompile(`CONFIDENTIAL`),
		"document base64":  regexp.MustCompile(regexp.QuoteMeta(b64(doc)[:20])),
		"document hex":     regexp.MustCompile(`(?i)` + hex.EncodeToString(doc[:8])),
		"digest hex":       regexp.MustCompile(`(?i)` + hex.EncodeToString(sum[:8])),
		"digest base64":    regexp.MustCompile(regexp.QuoteMeta(b64(sum[:])[:16])),
		"challenge nonce":  regexp.MustCompile(regexp.QuoteMeta(goodNonce[:16])),
		"certificate blob": regexp.MustCompile(regexp.QuoteMeta(b64(h.vc.Config().SignCert)[60:90])),
	}
	for _, f := range []string{h.logPath, h.pinLog} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) == 0 {
			t.Fatalf("%s is empty: the test would prove nothing", f)
		}
		for name, re := range secrets {
			if loc := re.FindIndex(raw); loc != nil {
				t.Errorf("%s contains the %s: …%s…", filepath.Base(f), name, raw[max(0, loc[0]-60):min(len(raw), loc[1]+60)])
			}
		}
		if runtime.GOOS != "windows" {
			if fi, _ := os.Stat(f); f == h.logPath && fi.Mode().Perm() != 0o600 {
				t.Errorf("log file mode %v", fi.Mode().Perm())
			}
		}
	}
}

// digitsRE matches s not inside a longer number, float or hex string.
func digitsRE(s string) *regexp.Regexp {
	return regexp.MustCompile(`(^|[^0-9A-Fa-f.])` + s + `($|[^0-9A-Fa-f])`)
}

func spaced(hexs string) string {
	var b strings.Builder
	for i := 0; i < len(hexs); i += 2 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(hexs[i : i+2])
	}
	return b.String()
}
