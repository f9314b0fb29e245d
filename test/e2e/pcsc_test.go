package e2e

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
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cpsagent/cpsagent/internal/api"
	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
	"github.com/cpsagent/cpsagent/internal/testutil"
	"github.com/cpsagent/cpsagent/pkg/cpsid"
)

// PINs of the e2e card: not the virtual default, so that a leak into a
// log is findable.
const (
	cardPIN  = "4827"
	wrongPIN = "9361"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// cardFixture is a pristine virtual card state (keys, certificates, PIN
// counters) and the test PKI chain that issued its certificates, for a card
// model (virtual.ModelCPS3 or ModelCPS4: `cpsagent vcard --model`).
type cardFixture struct {
	model    string
	pristine []byte
	chainPEM []byte
	authCert []byte
	signCert []byte
	dir      string
	n        int
}

func newCardFixture(t *testing.T, model string) *cardFixture {
	t.Helper()
	return newCardFixtureFor(t, model, "medecin")
}

// newCardFixtureFor is newCardFixture for a ready-made identity (each has
// its own serial number).
func newCardFixtureFor(t *testing.T, model, identity string) *cardFixture {
	t.Helper()
	dir := t.TempDir()
	cfg, err := virtual.Identity(identity)
	if err != nil {
		t.Fatal(err)
	}
	cfg.PIN = cardPIN
	cfg.StateFile = filepath.Join(dir, "pristine.json")
	vc, err := virtual.NewCard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pristine, err := os.ReadFile(cfg.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	pki, err := virtual.IdentityPKI()
	if err != nil {
		t.Fatal(err)
	}
	return &cardFixture{model: model, pristine: pristine, chainPEM: pki.ChainPEM(), authCert: vc.Config().AuthCert, signCert: vc.Config().SignCert, dir: dir}
}

// vcardArgs are the `cpsagent vcard` flags of the fixture's model.
func (f *cardFixture) vcardArgs() []string { return []string{"--model", f.model} }

// generation is what the agent reports for the fixture's model.
func (f *cardFixture) generation() string {
	if f.model == virtual.ModelCPS4 {
		return cps.GenerationCPS4
	}
	return cps.GenerationCPS3
}

// fresh returns a new state file copied from the pristine card (PIN
// counter full).
func (f *cardFixture) fresh(t *testing.T) string {
	t.Helper()
	f.n++
	p := filepath.Join(f.dir, "card-"+strconv.Itoa(f.n)+".json")
	if err := os.WriteFile(p, f.pristine, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var nonceSeq int

func newNonce() string {
	nonceSeq++
	b := make([]byte, 32)
	copy(b, "e2e nonce "+strconv.Itoa(nonceSeq))
	return b64(b)
}

// verifyToken is the portal side of a login: rebuild SHA-256(origin) ‖
// SHA-256(nonce) from its own state and check the RSA signature with the
// token's certificate. No agent code is involved.
func verifyToken(t *testing.T, body []byte, origin, nonce string) *x509.Certificate {
	t.Helper()
	var tok struct {
		UnverifiedCertificate, Algorithm, Signature, Format, AppVersion string
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		t.Fatal(err)
	}
	if tok.Format != "web-eid:1.0" || tok.Algorithm != "RS256" || tok.AppVersion == "" {
		t.Fatalf("token fields %+v", tok)
	}
	der, _ := base64.StdEncoding.DecodeString(tok.UnverifiedCertificate)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(tok.Signature)
	ho, hn := sha256.Sum256([]byte(origin)), sha256.Sum256([]byte(nonce))
	h := sha256.Sum256(append(ho[:], hn[:]...))
	if err := rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, h[:], sig); err != nil {
		t.Fatalf("token signature: %v", err)
	}
	other := sha256.Sum256(append(sha256Of("https://evil.example"), hn[:]...))
	if rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, other[:], sig) == nil {
		t.Fatal("token verifies for another origin")
	}
	return cert
}

func sha256Of(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func withReader(body string) string {
	return strings.TrimSuffix(body, "}") + `,"reader":"` + vpcdReader + `"}`
}

// TestE2E_PCSC is the whole product path: portal → HTTPS → agent → pinentry
// → PC/SC → pcscd → vpcd → virtual card, once with a CPS3 and once with a
// CPS4 (`cpsagent vcard --model`): the portal sees the same API, only
// card.generation differs. Subtests run in order on one agent; the card is
// swapped by stopping and starting `cpsagent vcard`.
func TestE2E_PCSC(t *testing.T) {
	for _, model := range []string{virtual.ModelCPS3, virtual.ModelCPS4} {
		t.Run(model, func(t *testing.T) { testE2EPCSC(t, model) })
	}
}

func testE2EPCSC(t *testing.T, model string) {
	testutil.RequirePCSCD(t)
	restartOK := os.Getenv("CPSAGENT_PCSCD_RESTART_OK") == "1"
	testutil.LockPCSCD(t, restartOK, 10*time.Minute)
	testutil.LockVPCDSlot0(t, 10*time.Minute)
	waitSlotsEmpty(t, vpcdReader) // the previous model's card must be seen gone
	fx := newCardFixture(t, model)
	top := t
	vc := startVCard(t, top, fx.fresh(t), fx.vcardArgs()...)
	a := startAgent(t, agentOpts{})
	a.waitCard(t, vpcdReader, true, 60*time.Second)
	ctx := context.Background()
	q := "?reader=" + url.QueryEscape(vpcdReader)

	t.Run("status on both loopback addresses", func(t *testing.T) {
		for _, base := range a.bases {
			var st api.StatusResponse
			must(t, a.doBase(ctx, base, http.MethodGet, "/v1/status", ""), &st)
			if !st.PCSC.Available || !st.CardPresent || st.APIVersion != "1.0" {
				t.Fatalf("%s: %+v", base, st)
			}
			for _, r := range st.Readers {
				if r.Name == vpcdReader && (r.Card == nil || r.Card.Generation != fx.generation() || !r.Card.Supported) {
					t.Fatalf("%s: reader %+v", base, r)
				}
			}
		}
	})

	t.Run("card identity", func(t *testing.T) {
		var id cpsid.Identity
		must(t, a.do(ctx, http.MethodGet, "/v1/card"+q, ""), &id)
		if id.Certificates.Authentication.DER != b64(fx.authCert) || id.Certificates.Signature.DER != b64(fx.signCert) {
			t.Fatal("certificates differ from the card's")
		}
		if id.Card.SerialNumber == nil || id.FamilyName == "" || id.Profession == nil || !id.Card.Test ||
			id.Card.Generation == nil || *id.Card.Generation != fx.generation() {
			t.Fatalf("identity %+v", id)
		}
	})

	t.Run("authenticate", func(t *testing.T) {
		a.setPIN(t, pinentrytest.Options{PIN: cardPIN})
		nonce := newNonce()
		r := a.do(ctx, http.MethodPost, "/v1/authenticate", withReader(`{"challengeNonce":"`+nonce+`"}`))
		must(t, r, nil)
		cert := verifyToken(t, r.body, portalOrigin, nonce)
		if !bytes.Equal(cert.Raw, fx.authCert) {
			t.Fatal("not the authentication certificate")
		}
	})

	t.Run("sign raw", func(t *testing.T) {
		data := []byte("signed attributes built by the portal")
		var resp api.SignResponse
		must(t, a.do(ctx, http.MethodPost, "/v1/sign", withReader(`{"dataToSign":"`+b64(data)+`","description":"e2e raw"}`)), &resp)
		der, _ := base64.StdEncoding.DecodeString(resp.Certificate)
		if !bytes.Equal(der, fx.signCert) || resp.Format != "raw" {
			t.Fatalf("response %+v", resp)
		}
		cert, _ := x509.ParseCertificate(der)
		sig, _ := base64.StdEncoding.DecodeString(resp.Signature)
		h := sha256.Sum256(data)
		if err := rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, h[:], sig); err != nil {
			t.Fatal(err)
		}
	})

	doc := []byte("%PDF-1.7\nordonnance e2e\n")
	t.Run("sign CAdES from the document", func(t *testing.T) {
		var resp api.SignResponse
		must(t, a.do(ctx, http.MethodPost, "/v1/sign", withReader(`{"document":"`+b64(doc)+`","format":"cades"}`)), &resp)
		p7s, _ := base64.StdEncoding.DecodeString(resp.Signature)
		testutil.OpenSSLVerifyCMS(t, p7s, doc, fx.chainPEM)
	})

	t.Run("sign CAdES from the digest", func(t *testing.T) {
		sum := sha256.Sum256(doc)
		var resp api.SignResponse
		must(t, a.do(ctx, http.MethodPost, "/v1/sign", withReader(`{"documentDigest":"`+b64(sum[:])+`","digestAlgorithm":"SHA-256","format":"cades"}`)), &resp)
		p7s, _ := base64.StdEncoding.DecodeString(resp.Signature)
		testutil.OpenSSLVerifyCMS(t, p7s, doc, fx.chainPEM)
	})

	t.Run("events over wss", func(t *testing.T) {
		next := a.events(t, ctx, 90*time.Second)
		// Remove the card: stop the vcard process.
		if err := vc.stop(t); err != nil {
			t.Logf("vcard exit: %v", err)
		}
		for {
			m := next()
			if m["type"] == "card-removed" && m["reader"] == vpcdReader {
				break
			}
		}
		vc = startVCard(t, top, vc.state, vc.args...)
		seen := map[any]bool{}
		for !seen["identity-available"] {
			m := next()
			if m["reader"] == vpcdReader {
				seen[m["type"]] = true
				if (m["type"] == "card-inserted" || m["type"] == "identity-available") && m["generation"] != fx.generation() {
					t.Fatalf("event %v, want generation %s", m, fx.generation())
				}
			}
		}
		if !seen["card-inserted"] {
			t.Fatalf("events %v", seen)
		}
	})

	t.Run("wrong PIN", func(t *testing.T) {
		a.setPIN(t, pinentrytest.Options{PIN: wrongPIN})
		p := problem(t, a.do(ctx, http.MethodPost, "/v1/sign", withReader(`{"dataToSign":"YWJj"}`)), api.CodePINIncorrect)
		if p.TriesLeft == nil || *p.TriesLeft != 2 {
			t.Fatalf("triesLeft %v", p.TriesLeft)
		}
		a.setPIN(t, pinentrytest.Options{PIN: cardPIN}) // resets the counter
		must(t, a.do(ctx, http.MethodPost, "/v1/sign", withReader(`{"dataToSign":"YWJj"}`)), nil)
	})

	t.Run("cancelled prompt", func(t *testing.T) {
		a.setPIN(t, pinentrytest.Options{Mode: pinentrytest.ModeCancel})
		problem(t, a.do(ctx, http.MethodPost, "/v1/sign", withReader(`{"dataToSign":"YWJj"}`)), api.CodePINCancelled)
		problem(t, a.do(ctx, http.MethodPost, "/v1/authenticate", withReader(`{"challengeNonce":"`+newNonce()+`"}`)), api.CodePINCancelled)
	})

	t.Run("blocked PIN gets no prompt", func(t *testing.T) {
		a.setPIN(t, pinentrytest.Options{PIN: wrongPIN})
		for i := 0; i < 3; i++ {
			problem(t, a.do(ctx, http.MethodPost, "/v1/sign", withReader(`{"dataToSign":"YWJj"}`)), api.CodePINIncorrect, api.CodePINBlocked)
		}
		before := a.getPINs(t)
		problem(t, a.do(ctx, http.MethodPost, "/v1/sign", withReader(`{"dataToSign":"YWJj"}`)), api.CodePINBlocked)
		problem(t, a.do(ctx, http.MethodPost, "/v1/authenticate", withReader(`{"challengeNonce":"`+newNonce()+`"}`)), api.CodePINBlocked)
		if after := a.getPINs(t); after != before {
			t.Fatalf("%d dialog(s) for a blocked card", after-before)
		}
		// Back to a fresh card.
		_ = vc.stop(t)
		a.waitCard(t, vpcdReader, false, 30*time.Second)
		vc = startVCard(t, top, fx.fresh(t), fx.vcardArgs()...)
		a.waitCard(t, vpcdReader, true, 60*time.Second)
	})

	t.Run("card pulled mid-operation", func(t *testing.T) {
		// The holder takes 3 s to type the PIN; the card leaves meanwhile.
		a.setPIN(t, pinentrytest.Options{PIN: cardPIN, Delay: 3 * time.Second})
		before := a.getPINs(t)
		done := make(chan result, 1)
		go func() { done <- a.do(ctx, http.MethodPost, "/v1/sign", withReader(`{"dataToSign":"YWJj"}`)) }()
		a.waitGETPIN(t, before)
		_ = vc.cmd.Process.Kill()
		<-vc.exited
		problem(t, <-done, api.CodeCardRemoved, api.CodeCardAbsent, api.CodeCardChanged)
		must(t, a.do(ctx, http.MethodGet, "/v1/status", ""), nil)
		vc = startVCard(t, top, vc.state, vc.args...)
		a.waitCard(t, vpcdReader, true, 60*time.Second)
		a.setPIN(t, pinentrytest.Options{PIN: cardPIN})
		must(t, a.do(ctx, http.MethodPost, "/v1/sign", withReader(`{"dataToSign":"YWJj"}`)), nil)
	})

	t.Run("pcscd restart", func(t *testing.T) {
		if !restartOK {
			t.Skip("SKIPPED: set CPSAGENT_PCSCD_RESTART_OK=1 to let this test kill and restart the machine's pcscd")
		}
		restartPCSCD(t, a)
		// The agent reports the loss, then recovers by itself.
		a.waitCard(t, vpcdReader, true, 90*time.Second)
		a.setPIN(t, pinentrytest.Options{PIN: cardPIN})
		must(t, a.do(ctx, http.MethodPost, "/v1/sign", withReader(`{"dataToSign":"YWJj"}`)), nil)
	})

	t.Run("50 concurrent clients, no leak", func(t *testing.T) {
		a.setPIN(t, pinentrytest.Options{PIN: cardPIN, Delay: 200 * time.Millisecond})
		a.client.CloseIdleConnections()
		g0, fd0 := settle(t, a)
		concurrentClients(t, a, 50)
		// Event streams too.
		for i := 0; i < 5; i++ {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, _, err := websocket.Dial(wctx, strings.Replace(a.bases[0], "https://", "wss://", 1)+"/v1/events",
				&websocket.DialOptions{HTTPClient: a.client, HTTPHeader: http.Header{"Origin": {portalOrigin}}})
			if err != nil {
				t.Fatal(err)
			}
			_, _, _ = c.Read(wctx)
			c.Close(websocket.StatusNormalClosure, "")
			cancel()
		}
		a.client.CloseIdleConnections()
		checkNoLeak(t, a, g0, fd0)
	})

	t.Run("graceful stop releases the card", func(t *testing.T) {
		a.setPIN(t, pinentrytest.Options{Mode: pinentrytest.ModeHang})
		done := make(chan result, 1)
		before := a.getPINs(t)
		go func() { done <- a.do(ctx, http.MethodPost, "/v1/sign", withReader(`{"dataToSign":"YWJj"}`)) }()
		a.waitGETPIN(t, before)
		if err := a.stop(t); err != nil {
			t.Fatalf("agent exit: %v\n%s", err, a.out)
		}
		problem(t, <-done, api.CodeShuttingDown)
		if !strings.Contains(a.out.String(), "card released") {
			t.Fatalf("no 'card released' in the output:\n%s", a.out)
		}
	})

	t.Run("Sec39 no PIN or document in the logs", func(t *testing.T) {
		checkLogs(t, a, [][]byte{doc, []byte("signed attributes built by the portal")})
	})
	_ = vc.stop(t)
}

// settle waits for the agent's goroutine and descriptor counts to stop
// falling, and returns them.
func settle(t *testing.T, a *agent) (goroutines, fds int) {
	t.Helper()
	g, f := a.metrics(t)
	for i := 0; i < 20; i++ {
		time.Sleep(100 * time.Millisecond)
		g2, f2 := a.metrics(t)
		if g2 >= g && f2 >= f {
			return g2, f2
		}
		g, f = g2, f2
	}
	return g, f
}

// checkNoLeak waits (bounded) until the counts return near the baseline.
func checkNoLeak(t *testing.T, a *agent, g0, fd0 int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		g, fd := a.metrics(t)
		// slack: the metrics request's own connection and goroutines
		if g <= g0+4 && fd <= fd0+2 {
			t.Logf("goroutines %d -> %d, fds %d -> %d", g0, g, fd0, fd)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("leak: goroutines %d -> %d, fds %d -> %d", g0, g, fd0, fd)
		}
		a.client.CloseIdleConnections()
		time.Sleep(200 * time.Millisecond)
	}
}

// concurrentClients runs n clients at once, mixing reads and card
// operations. Every answer must be a 200 or a well-formed problem with a
// known code, and the agent must keep serving.
func concurrentClients(t *testing.T, a *agent, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var r result
			switch i % 5 {
			case 0:
				r = a.do(ctx, http.MethodGet, "/v1/status", "")
			case 1:
				r = a.do(ctx, http.MethodGet, "/v1/card?reader="+url.QueryEscape(vpcdReader), "")
			case 2:
				r = a.do(ctx, http.MethodPost, "/v1/authenticate", withReader(`{"challengeNonce":"`+b64(bytes.Repeat([]byte{byte(i)}, 32))+`"}`))
			default:
				r = a.do(ctx, http.MethodPost, "/v1/sign", withReader(`{"dataToSign":"`+b64([]byte("doc "+strconv.Itoa(i)))+`"}`))
			}
			key := "200"
			if r.err != nil {
				key = "error: " + r.err.Error()
			} else if r.status != 200 {
				code, err := problemCode(r)
				if err != nil {
					t.Errorf("client %d: %v", i, err)
				}
				key = code
			}
			mu.Lock()
			outcomes[key]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	t.Logf("outcomes: %v", outcomes)
	for k := range outcomes {
		if strings.HasPrefix(k, "error") {
			t.Fatalf("transport error: %v", outcomes)
		}
	}
	if outcomes["200"] < 2*n/5 {
		t.Fatalf("reads failed: %v", outcomes)
	}
	must(t, a.do(context.Background(), http.MethodGet, "/v1/status", ""), nil)
}

// problemCode checks that r is a well-formed problem with a known code
// (safe to call from any goroutine).
func problemCode(r result) (string, error) {
	var p api.Problem
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return "", fmt.Errorf("status %d, not a problem: %s", r.status, r.body)
	}
	status, known := api.Codes()[p.Code]
	if !known || status != r.status || p.Status != r.status || r.hdr.Get("Content-Type") != "application/problem+json" || p.DetailFr == "" {
		return p.Code, fmt.Errorf("malformed or unknown problem %d %s", r.status, r.body)
	}
	return p.Code, nil
}

// checkLogs greps every file the agent wrote (logs, state dir) and its
// console output for the PINs, VERIFY data and document bytes.
func checkLogs(t *testing.T, a *agent, docs [][]byte) {
	t.Helper()
	pinRE := func(pin string) *regexp.Regexp {
		return regexp.MustCompile(`(^|[^0-9A-Fa-f.])` + pin + `($|[^0-9A-Fa-f])`)
	}
	pats := map[string]*regexp.Regexp{
		"PIN":        pinRE(cardPIN),
		"wrong PIN":  pinRE(wrongPIN),
		"PIN hex":    regexp.MustCompile(`(?i)` + hex.EncodeToString([]byte(cardPIN)) + `|` + strings.TrimSpace(regexp.MustCompile(`(..)`).ReplaceAllString(hex.EncodeToString([]byte(cardPIN)), "$1 "))),
		"VERIFY":     regexp.MustCompile(`(?i)\b00 ?20 ?00 ?[0-9a-f]{2} ?0[48] ?3`),
		"PIN base64": regexp.MustCompile(regexp.QuoteMeta(b64([]byte(cardPIN)))),
	}
	for i, d := range docs {
		pats["document "+strconv.Itoa(i)] = regexp.MustCompile(regexp.QuoteMeta(string(d[:12])))
		pats["document b64 "+strconv.Itoa(i)] = regexp.MustCompile(regexp.QuoteMeta(b64(d)[:16]))
	}
	var files []string
	_ = filepath.Walk(a.stateDir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && !strings.HasSuffix(p, ".pem") {
			files = append(files, p)
		}
		return nil
	})
	logged := 0
	check := func(name string, b []byte) {
		for what, re := range pats {
			if loc := re.FindIndex(b); loc != nil {
				t.Errorf("%s contains the %s: …%q…", name, what, b[max(0, loc[0]-80):min(len(b), loc[1]+80)])
			}
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(f, "logs") {
			logged += len(b)
			if fi, _ := os.Stat(f); fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s is readable by others: %v", f, fi.Mode())
			}
		}
		check(f, b)
	}
	if logged == 0 {
		t.Fatal("no log file written: the check would prove nothing")
	}
	check("console output", []byte(a.out.String()))
	lines, _ := pinentrytest.ReadLog(a.pinLog)
	check("pinentry log", []byte(strings.Join(lines, "\n")))
}

// restartPCSCD stops the machine's pcscd (SIGTERM) and starts it again
// (daemon mode, so that it outlives the test).
func restartPCSCD(t *testing.T, a *agent) {
	t.Helper()
	b, err := os.ReadFile("/run/pcscd/pcscd.pid")
	if err != nil {
		t.Fatalf("pcscd pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.Trim(string(b), "\x00")))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("pcscd did not stop")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The agent notices the loss.
	deadline = time.Now().Add(30 * time.Second)
	for a.status(t).PCSC.Available {
		if time.Now().After(deadline) {
			t.Fatal("the agent still reports PC/SC available")
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err := exec.Command("pcscd").CombinedOutput()
	if err != nil {
		t.Fatalf("restarting pcscd: %v %s", err, out)
	}
	deadline = time.Now().Add(15 * time.Second)
	for testutil.PCSCDRunning() != nil {
		if time.Now().After(deadline) {
			t.Fatal("pcscd did not come back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
