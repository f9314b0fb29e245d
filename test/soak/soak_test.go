package soak

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cpsagent/cpsagent/bench/harness"
	"github.com/cpsagent/cpsagent/internal/api"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
	"github.com/cpsagent/cpsagent/internal/ctxsleep"
	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
	"github.com/cpsagent/cpsagent/internal/testutil"
	"github.com/cpsagent/cpsagent/pkg/cpsverify"
)

// Origins: the soak clients, the clients that go away mid-prompt, and the
// harness's own requests (status polls, metrics, event streams) use
// different origins so that the agent's access log can be matched exactly.
const (
	soakOrigin       = "https://soak.portal.test"
	disconnectOrigin = "https://disconnect.portal.test"
	wrongPIN         = "9361"
)

// Operation kinds.
const (
	kStatus     = "status"
	kReaders    = "readers"
	kCard       = "card"
	kAuth       = "authenticate"
	kSignRaw    = "sign-raw"
	kSignDoc    = "sign-cades-document"
	kSignDigest = "sign-cades-digest"
	kDisconnect = "disconnect-mid-prompt"
)

// opWeights is the mix of a portal client.
var opWeights = []struct {
	kind   string
	weight int
}{
	{kStatus, 22}, {kReaders, 5}, {kCard, 20}, {kAuth, 18}, {kSignRaw, 15}, {kSignDoc, 6}, {kSignDigest, 4}, {kDisconnect, 10},
}

// Fault kinds injected by the harness (the pinentry faults come from the
// plan and are counted from the wrapper's record).
const (
	fPull     = "card pulled at an APDU"
	fUnplug   = "reader unplugged (vpcd socket closed)"
	fSlow     = "slow card window"
	fRestart  = "pcscd stopped and restarted"
	fReplaced = "card replaced (PIN blocked by wrong PINs)"
)

// Codes that a correct agent never answers to the soak's valid requests.
var forbiddenCodes = map[string]bool{
	api.CodeInternal: true, api.CodeBadRequest: true, api.CodeReaderAmbiguous: true, api.CodeHostNotAllowed: true,
	api.CodeOriginNotAllowed: true, api.CodeMethodNotAllowed: true, api.CodeUnsupportedMediaType: true,
	api.CodePayloadTooLarge: true, api.CodeNotFound: true, api.CodeRateLimited: true, api.CodeShuttingDown: true,
	api.CodeCardUnsupported: true, api.CodeOperationNotSupported: true, api.CodePINFormat: true,
}

// opStats is the record of one kind of operation.
type opStats struct {
	Sent      int            `json:"sent"`
	OK        int            `json:"ok"`
	Codes     map[string]int `json:"codes,omitempty"`
	Cancelled int            `json:"clientCancelled,omitempty"` // the client went away before the answer
	MaxTook   time.Duration  `json:"maxTook"`
}

// Report is what a soak run did.
type Report struct {
	Seed        int64               `json:"seed"`
	Clients     int                 `json:"clients"`
	Duration    time.Duration       `json:"duration"`
	Operations  int                 `json:"operations"`
	Ops         map[string]*opStats `json:"ops"`
	Codes       map[string]int      `json:"errorsByCode"`
	Faults      map[string]int      `json:"faultsInjected"`
	Prompts     map[string]int      `json:"pinentryByMode"`
	PINAnswers  int                 `json:"pinAnswers"`      // PINs handed out by the fake user
	WrongAnswer int                 `json:"wrongPinAnswers"` // wrong PINs handed out
	Verifies    int64               `json:"verifyWithData"`  // VERIFY with data seen by the card
	WrongOnCard int64               `json:"wrongPinOnCard"`  // wrong presentations counted by the card
	Events      int                 `json:"events"`          // WebSocket events received
	Leaks       map[string]string   `json:"leaks"`           // before → after
	Violations  []string            `json:"violations"`
	CardAPDUs   int64               `json:"cardApdus"`
	CardSigs    int64               `json:"cardSignatures"`
}

// soak is one run.
type soak struct {
	t       *testing.T
	a       *harness.Agent
	vc      *harness.VCard
	pe      *harness.Pinentry
	reader  string
	q       string
	signPub *rsa.PublicKey
	authPub *rsa.PublicKey
	signDER string
	authDER string
	ver     *cpsverify.Verifier

	mu         sync.Mutex
	rep        Report
	violations []string
	sentBy     map[string]int // origin → requests sent
	doneBy     map[string]int // origin → answers received
}

func (s *soak) violate(f string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.violations) < 200 {
		s.violations = append(s.violations, fmt.Sprintf(f, a...))
	}
}

func (s *soak) fault(kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rep.Faults[kind]++
}

func TestSoak(t *testing.T) {
	testutil.RequirePCSCD(t)
	restart := os.Getenv("CPSAGENT_PCSCD_RESTART_OK") == "1"
	unlock, err := harness.LockSlot0(15*time.Minute, restart, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	bin := agent(t)
	seed := *flagSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000
	}
	t.Logf("soak: seed %d (rerun with -soak.seed=%d), %d clients, up to %d requests or %v, a fault every %v on average, card latency %s, pcscd restarts %v",
		seed, seed, *flagClients, *flagOps, *flagDuration, *flagFaults, *flagLatency, restart)
	dir := t.TempDir()

	// The card, with a pristine copy for replacing a blocked one.
	state := filepath.Join(dir, "card.json")
	lat, err := virtual.LatencyPreset(*flagLatency)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := harness.NewVCard(harness.VCardOptions{StateFile: state, Latency: lat})
	if err != nil {
		t.Fatal(err)
	}
	pristine, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	cfg := vc.Card().Config()
	ctx := context.Background()
	startVCard(t, ctx, vc)
	defer vc.Stop()

	// The fake user: a plan of behaviours, one per PIN dialog.
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	pe, err := harness.NewPinentry(filepath.Join(dir, "pinentry"), harness.PinentryStep{PIN: cfg.PIN})
	if err != nil {
		t.Fatal(err)
	}

	a, err := harness.StartAgent(ctx, harness.AgentOptions{Bin: bin, Dir: filepath.Join(dir, "agent"), Pinentry: pe.Program,
		Origins: []string{harness.DefaultOrigin, soakOrigin, disconnectOrigin}, PINTimeout: 5 * time.Second,
		LogLevel: "debug", DebugMetrics: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if a.Alive() {
			a.Kill()
		}
	}()
	pki, err := virtual.IdentityPKI()
	if err != nil {
		t.Fatal(err)
	}
	s := &soak{t: t, a: a, vc: vc, pe: pe, reader: vc.Reader(), signPub: certKey(t, cfg.SignCert), authPub: certKey(t, cfg.AuthCert),
		signDER: b64(cfg.SignCert), authDER: b64(cfg.AuthCert),
		ver:    &cpsverify.Verifier{Roots: pki.Roots(), Intermediates: pki.Intermediates(), AllowTestCards: true},
		sentBy: map[string]int{}, doneBy: map[string]int{}}
	s.q = "?reader=" + url.QueryEscape(s.reader)
	s.rep = Report{Seed: seed, Clients: *flagClients, Ops: map[string]*opStats{}, Codes: map[string]int{}, Faults: map[string]int{},
		Prompts: map[string]int{}, Leaks: map[string]string{}}
	if err := a.WaitCard(ctx, s.reader, true, 60*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, a.Output())
	}

	// Warm-up, then the baseline.
	s.final(ctx, "warm-up")
	base := s.settle(ctx, nil)
	if err := pe.SetPlanNext(pinPlan(rng, *flagOps+100, cfg.PIN)); err != nil {
		t.Fatal(err)
	}
	t.Logf("baseline: %d goroutines, %d fds, RSS %.1f MiB", base.Goroutines, base.FDs, float64(base.RSSKiB)/1024)

	// The load phase.
	loadCtx, stopLoad := context.WithTimeout(ctx, *flagDuration)
	defer stopLoad()
	start := time.Now()
	var wg sync.WaitGroup
	events := s.listen(loadCtx, &wg, 2)
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		s.inject(loadCtx, rand.New(rand.NewPCG(uint64(seed), 2)), restart, pristine)
	}()
	var sent atomic.Int64
	for i := 0; i < *flagClients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s.client(loadCtx, rand.New(rand.NewPCG(uint64(seed), uint64(10+i))), &sent)
		}(i)
	}
	go s.progress(loadCtx, &sent)
	waitClients := make(chan struct{})
	go func() { wg.Wait(); close(waitClients) }()
	// The clients stop at the count or the deadline; the listeners and the
	// injector at the deadline or when the clients are done.
	clientsOnly := make(chan struct{})
	go func() {
		for sent.Load() < int64(*flagOps) && loadCtx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		close(clientsOnly)
	}()
	<-clientsOnly
	stopLoad()
	<-waitClients
	<-faultsDone
	s.rep.Duration = time.Since(start)
	s.rep.Events = int(events.Load())

	// Back to a healthy card and user; the agent must recover by itself.
	vc.DropAt(0)
	vc.SlowFor(0, 0)
	vc.Insert()
	if err := pe.SetPlan(nil); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitCard(ctx, s.reader, true, 90*time.Second); err != nil {
		s.violate("the agent did not see the card again after the faults: %v\nits last card log lines:\n%s",
			err, cardLogTail(a.LogFile, 30))
	} else {
		s.final(ctx, "after the soak")
	}

	// Leaks.
	end := s.settle(ctx, &base)
	s.rep.Leaks["goroutines"] = fmt.Sprintf("%d → %d", base.Goroutines, end.Goroutines)
	s.rep.Leaks["fds"] = fmt.Sprintf("%d → %d", base.FDs, end.FDs)
	s.rep.Leaks["rssMiB"] = fmt.Sprintf("%.1f → %.1f", float64(base.RSSKiB)/1024, float64(end.RSSKiB)/1024)

	s.checkPIN()
	s.checkLog()
	st := vc.Stats()
	s.rep.CardAPDUs, s.rep.CardSigs = st.APDUs, st.Signatures+st.InternalAuths
	out := a.Output()
	for _, bad := range []string{"DATA RACE", "panic:", "fatal error:"} {
		if strings.Contains(out, bad) {
			s.violate("the agent printed %q:\n%s", bad, tail(out, 4000))
		}
	}
	if err := a.Stop(); err != nil {
		s.violate("the agent did not stop cleanly: %v", err)
	}
	s.report()
}

// progress logs the counts every 30 s of a long soak.
func (s *soak) progress(ctx context.Context, sent *atomic.Int64) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			s.t.Logf("progress: %d requests, codes %v, faults %v, %d violations", sent.Load(), s.rep.Codes, s.rep.Faults, len(s.violations))
			s.mu.Unlock()
		}
	}
}

// pinPlan is the fake user's behaviour for the next n dialogs: mostly the
// right PIN, sometimes slowly (a prompt open long enough to pull the card
// or go away), and cancel, crash, hang, pinentry timeout, wrong PIN. A
// wrong PIN is never planned within three dialogs of another.
func pinPlan(rng *rand.Rand, n int, pin string) []harness.PinentryStep {
	steps := make([]harness.PinentryStep, n)
	lastWrong := -10
	for i := range steps {
		x := rng.IntN(100)
		switch {
		case x < 10:
			steps[i] = harness.PinentryStep{PIN: pin, Delay: time.Duration(200+rng.IntN(1300)) * time.Millisecond}
		case x < 16:
			steps[i] = harness.PinentryStep{Mode: pinentrytest.ModeCancel}
		case x < 21:
			steps[i] = harness.PinentryStep{Mode: pinentrytest.ModeCrash}
		case x < 23:
			steps[i] = harness.PinentryStep{Mode: pinentrytest.ModeHang}
		case x < 26:
			steps[i] = harness.PinentryStep{Mode: pinentrytest.ModeTimeout}
		case x < 30 && i-lastWrong > 3:
			steps[i] = harness.PinentryStep{PIN: wrongPIN}
			lastWrong = i
		default:
			steps[i] = harness.PinentryStep{PIN: pin}
		}
	}
	return steps
}

// client is one portal page sending requests until ctx ends or the count
// is reached.
func (s *soak) client(ctx context.Context, rng *rand.Rand, sent *atomic.Int64) {
	total := 0
	for _, w := range opWeights {
		total += w.weight
	}
	for ctx.Err() == nil {
		if sent.Add(1) > int64(*flagOps) {
			return
		}
		x, kind := rng.IntN(total), ""
		for _, w := range opWeights {
			if x < w.weight {
				kind = w.kind
				break
			}
			x -= w.weight
		}
		s.one(kind, rng)
		// A person behind each page: think time between two requests.
		if !ctxsleep.Sleep(ctx, time.Duration(rng.ExpFloat64()*float64(*flagThink))) {
			return
		}
	}
}

// result of one request, as the client saw it.
type result struct {
	harness.Result
	cancelled bool
}

// one sends one request of kind and checks its answer. Requests are not
// tied to the load context: once sent, each must be answered (a request
// that gets no answer in 2 minutes is lost).
func (s *soak) one(kind string, rng *rand.Rand) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	origin := soakOrigin
	var method, path, body string
	var check func([]byte) error
	switch kind {
	case kStatus:
		method, path = http.MethodGet, "/v1/status"
		check = func(b []byte) error {
			var st api.StatusResponse
			if err := strictJSON(b, &st); err != nil {
				return err
			}
			if st.Agent != api.AgentName || st.APIVersion != api.APIVersion {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		}
	case kReaders:
		method, path = http.MethodGet, "/v1/readers"
		check = func(b []byte) error { var r api.ReadersResponse; return strictJSON(b, &r) }
	case kCard:
		method, path = http.MethodGet, "/v1/card"+s.q
		check = s.checkIdentity
	case kAuth:
		nonce := b64(randBytes(rng, 32+rng.IntN(40)))
		method, path, body = http.MethodPost, "/v1/authenticate", fmt.Sprintf(`{"challengeNonce":%q,"reader":%q}`, nonce, s.reader)
		check = func(b []byte) error { return s.checkToken(b, nonce) }
	case kSignRaw, kDisconnect:
		data := randBytes(rng, 1+rng.IntN(3000))
		method, path, body = http.MethodPost, "/v1/sign", fmt.Sprintf(`{"dataToSign":%q,"reader":%q,"description":"soak"}`, b64(data), s.reader)
		check = func(b []byte) error { return s.checkRaw(b, data) }
		if kind == kDisconnect {
			origin = disconnectOrigin
			var c2 context.CancelFunc
			ctx, c2 = context.WithCancel(ctx)
			defer c2()
			t := time.AfterFunc(time.Duration(50+rng.IntN(1500))*time.Millisecond, c2)
			defer t.Stop()
		}
	case kSignDoc:
		doc := randBytes(rng, 1+rng.IntN(20000))
		method, path, body = http.MethodPost, "/v1/sign", fmt.Sprintf(`{"document":%q,"format":"cades","reader":%q}`, b64(doc), s.reader)
		check = func(b []byte) error { return s.checkCAdES(b, doc, nil) }
	case kSignDigest:
		doc := randBytes(rng, 1+rng.IntN(5000))
		sum := sha256.Sum256(doc)
		method, path, body = http.MethodPost, "/v1/sign",
			fmt.Sprintf(`{"documentDigest":%q,"digestAlgorithm":"SHA-256","format":"cades","reader":%q}`, b64(sum[:]), s.reader)
		check = func(b []byte) error { return s.checkCAdES(b, nil, sum[:]) }
	}
	s.mu.Lock()
	s.sentBy[origin]++
	st := s.rep.Ops[kind]
	if st == nil {
		st = &opStats{Codes: map[string]int{}}
		s.rep.Ops[kind] = st
	}
	st.Sent++
	s.rep.Operations++
	s.mu.Unlock()

	r := result{Result: s.a.DoOrigin(ctx, origin, method, path, body)}
	if r.Err != nil && kind == kDisconnect && errors.Is(r.Err, context.Canceled) {
		r.cancelled = true
	}
	code, verr := "", error(nil)
	switch {
	case r.cancelled:
	case r.Err != nil:
		verr = fmt.Errorf("transport error (request lost?): %w", r.Err)
	case r.Status == http.StatusOK:
		verr = check(r.Body)
	default:
		code, verr = harness.ProblemCode(r.Result)
		if verr == nil && forbiddenCodes[code] {
			verr = fmt.Errorf("code %s is not a valid answer to a valid request: %s", code, r.Body)
		}
		if verr == nil && code == api.CodePINIncorrect && (kind == kStatus || kind == kCard || kind == kReaders) {
			verr = fmt.Errorf("pin_incorrect for %s", kind)
		}
		if verr == nil && kind == kStatus {
			verr = fmt.Errorf("/v1/status answered %d %s: it reads cached state and must never fail", r.Status, code)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !r.cancelled && r.Err == nil {
		s.doneBy[origin]++
	}
	st.MaxTook = max(st.MaxTook, r.Took)
	switch {
	case r.cancelled:
		st.Cancelled++
	case r.Err == nil && r.Status == http.StatusOK:
		st.OK++
	case code != "":
		st.Codes[code]++
		s.rep.Codes[code]++
	}
	if verr != nil && len(s.violations) < 200 {
		s.violations = append(s.violations, fmt.Sprintf("%s %s: %v", method, path, verr))
	}
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %.300s", err, b)
	}
	if dec.More() {
		return fmt.Errorf("trailing data: %.300s", b)
	}
	return nil
}

func (s *soak) checkIdentity(b []byte) error {
	var id struct {
		Certificates struct {
			Authentication, Signature struct {
				DER string `json:"der"`
			}
		} `json:"certificates"`
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return err
	}
	if id.Certificates.Signature.DER != s.signDER || id.Certificates.Authentication.DER != s.authDER {
		return fmt.Errorf("/v1/card: not the card's certificates")
	}
	return nil
}

func (s *soak) checkToken(b []byte, nonce string) error {
	var tok api.AuthToken
	if err := strictJSON(b, &tok); err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(tok.Signature)
	if err != nil {
		return err
	}
	_, hash := api.AuthenticationData(soakOrigin, nonce)
	if err := rsa.VerifyPKCS1v15(s.authPub, crypto.SHA256, hash, sig); err != nil {
		return fmt.Errorf("token signature: %w", err)
	}
	if tok.UnverifiedCertificate != s.authDER || tok.Format != api.TokenFormat {
		return fmt.Errorf("token %+v", tok)
	}
	return nil
}

func (s *soak) checkRaw(b []byte, data []byte) error {
	var sr api.SignResponse
	if err := strictJSON(b, &sr); err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(sr.Signature)
	if err != nil {
		return err
	}
	h := sha256.Sum256(data)
	if err := rsa.VerifyPKCS1v15(s.signPub, crypto.SHA256, h[:], sig); err != nil {
		return fmt.Errorf("raw signature: %w", err)
	}
	if sr.Certificate != s.signDER || sr.Format != "raw" {
		return fmt.Errorf("sign response %+v", sr)
	}
	return nil
}

func (s *soak) checkCAdES(b []byte, doc, digest []byte) error {
	var sr api.SignResponse
	if err := strictJSON(b, &sr); err != nil {
		return err
	}
	p7s, err := base64.StdEncoding.DecodeString(sr.Signature)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if doc != nil {
		_, err = s.ver.VerifyCAdES(ctx, p7s, doc)
	} else {
		_, err = s.ver.VerifyCAdESDigest(ctx, p7s, digest)
	}
	if err != nil {
		return fmt.Errorf("CAdES: %w", err)
	}
	return nil
}

// listen keeps n event streams open for the load phase, checking every
// message.
func (s *soak) listen(ctx context.Context, wg *sync.WaitGroup, n int) *atomic.Int64 {
	var count atomic.Int64
	known := map[string]bool{"hello": true, "reader-added": true, "reader-removed": true, "card-inserted": true, "card-removed": true,
		"identity-available": true, "pcsc-unavailable": true, "pcsc-available": true, "pong": true}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, _, err := websocket.Dial(ctx, strings.Replace(s.a.Base, "https://", "wss://", 1)+"/v1/events",
					&websocket.DialOptions{HTTPClient: s.a.Client, HTTPHeader: http.Header{"Origin": {harness.DefaultOrigin}}})
				if err != nil {
					if ctx.Err() == nil {
						s.violate("event stream: dial: %v", err)
					}
					return
				}
				for {
					typ, m, err := c.Read(ctx)
					if err != nil {
						if ctx.Err() == nil {
							s.violate("event stream closed by the agent: %v", err)
						}
						break
					}
					var e struct{ Type string }
					if typ != websocket.MessageText || json.Unmarshal(m, &e) != nil || !known[e.Type] {
						s.violate("event stream: bad message %q", m)
					}
					count.Add(1)
				}
				c.Close(websocket.StatusNormalClosure, "")
			}
		}()
	}
	return &count
}

// inject injects faults until ctx ends.
func (s *soak) inject(ctx context.Context, rng *rand.Rand, restart bool, pristine []byte) {
	lastRestart := time.Now()
	kinds := map[string]bool{}
	for _, k := range strings.Split(*flagKinds, ",") {
		kinds[strings.TrimSpace(k)] = true
	}
	for {
		wait := time.Duration(rng.ExpFloat64() * float64(*flagFaults))
		if !ctxsleep.Sleep(ctx, min(wait, 10*(*flagFaults))) {
			return
		}
		if st := s.vc.PINStatus(); st.PINTriesLeft == 0 {
			// Three wrong PINs reached the card (legitimately: each one was
			// typed by the fake user): put a fresh copy of the card in.
			if err := s.vc.Replace(context.Background(), pristine); err != nil {
				s.violate("replacing the blocked card: %v", err)
				return
			}
			s.fault(fReplaced)
			continue
		}
		x := rng.IntN(100)
		switch {
		case x < 10 && !(kinds["restart"] && restart && time.Since(lastRestart) > 20*time.Second),
			x >= 10 && x < 45 && !kinds["pull"], x >= 45 && x < 70 && !kinds["unplug"], x >= 70 && !kinds["slow"]:
			continue
		case x < 10:
			lastRestart = time.Now()
			if err := restartPCSCD(); err != nil {
				s.violate("pcscd restart: %v", err)
				return
			}
			s.fault(fRestart)
		case x < 45:
			before := s.vc.Drops()
			s.vc.DropAt(1 + rng.IntN(25))
			deadline := time.Now().Add(5 * time.Second)
			for s.vc.Drops() == before && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
			if s.vc.Drops() == before {
				s.vc.DropAt(0) // no APDU came: nothing was pulled
				continue
			}
			s.fault(fPull)
			ctxsleep.Sleep(ctx, time.Duration(100+rng.IntN(1200))*time.Millisecond)
			s.vc.Insert()
		case x < 70:
			s.vc.Remove()
			s.fault(fUnplug)
			ctxsleep.Sleep(ctx, time.Duration(200+rng.IntN(1500))*time.Millisecond)
			s.vc.Insert()
		default:
			s.vc.SlowFor(time.Duration(1000+rng.IntN(3000))*time.Millisecond, time.Duration(50+rng.IntN(350))*time.Millisecond)
			s.fault(fSlow)
		}
	}
}

// final runs one identity read, authentication and signature that must
// all succeed (the fake user types the right PIN, the card is in).
func (s *soak) final(ctx context.Context, when string) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, kind := range []string{kCard, kAuth, kSignRaw} {
		ok := false
		var last string
		for try := 0; try < 20 && !ok; try++ {
			before := s.rep.Ops[kind]
			var okBefore int
			if before != nil {
				okBefore = before.OK
			}
			s.one(kind, rng)
			st := s.rep.Ops[kind]
			ok = st.OK > okBefore
			if !ok {
				last = fmt.Sprint(st.Codes)
				time.Sleep(500 * time.Millisecond) // e.g. the agent still reading the card after its return
			}
		}
		if !ok {
			s.violate("%s: %s never succeeded (codes %s)\n%s", when, kind, last, tail(s.a.Output(), 3000))
		}
	}
}

// settle waits until the agent is idle and returns its counts; with a
// baseline, it waits (30 s at most) for the counts to come back to it and
// records a leak otherwise.
func (s *soak) settle(ctx context.Context, base *harness.ProcSample) harness.ProcSample {
	var last harness.ProcSample
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.a.Client.CloseIdleConnections()
		time.Sleep(300 * time.Millisecond)
		m, err := s.a.Metrics(ctx)
		if err != nil {
			s.violate("debug metrics: %v", err)
			return last
		}
		s.a.Client.CloseIdleConnections()
		p, err := harness.ReadProc(s.a.PID())
		if err != nil {
			s.violate("/proc: %v", err)
			return last
		}
		p.Goroutines = int(m["goroutines"])
		busy := m["operations"] != 0 || m["websockets"] != 0
		if base == nil {
			if !busy && last.Goroutines == p.Goroutines && last.FDs == p.FDs {
				return p
			}
		} else if !busy && p.Goroutines <= base.Goroutines+3 && p.FDs <= base.FDs+2 && p.RSSKiB <= rssLimit(base.RSSKiB) {
			return p
		}
		if time.Now().After(deadline) {
			if base != nil {
				s.violate("leak: goroutines %d → %d, fds %d → %d, RSS %d → %d KiB (limit %d), operations %d, websockets %d",
					base.Goroutines, p.Goroutines, base.FDs, p.FDs, base.RSSKiB, p.RSSKiB, rssLimit(base.RSSKiB), m["operations"], m["websockets"])
			}
			return p
		}
		last = p
	}
}

// rssLimit is how far the resident memory may stay above its baseline
// once the load is over: Go returns freed memory to the system gradually.
func rssLimit(base int64) int64 { return base + max(base/2, 16*1024) }

// checkPIN compares the card's VERIFY count with the PINs the fake user
// handed out: the counter may only move because of a typed PIN.
func (s *soak) checkPIN() {
	invs, err := s.pe.Invocations()
	if err != nil {
		s.violate("pinentry record: %v", err)
		return
	}
	for _, inv := range invs {
		mode := inv.Mode
		if mode == "ok" && inv.PIN == wrongPIN {
			mode = "wrong PIN"
		}
		if mode == "ok" && inv.Commands != nil && inv.Answers == 0 && inv.GetPINs > 0 {
			mode = "ok, killed before answering"
		}
		s.rep.Prompts[mode]++
		s.rep.PINAnswers += inv.Answers
		if inv.PIN == wrongPIN {
			s.rep.WrongAnswer += inv.Answers
		}
		if inv.GetPINs > 1 {
			s.violate("pinentry invocation %d got %d GETPIN: a second prompt in one dialog", inv.N, inv.GetPINs)
		}
	}
	st := s.vc.Stats()
	s.rep.Verifies, s.rep.WrongOnCard = st.Verifies, st.WrongSecrets
	if st.Verifies > int64(s.rep.PINAnswers) {
		s.violate("the card received %d VERIFY with a PIN, the user typed only %d PINs", st.Verifies, s.rep.PINAnswers)
	}
	if st.WrongSecrets > int64(s.rep.WrongAnswer) {
		s.violate("the card counted %d wrong PINs, the user typed only %d wrong PINs", st.WrongSecrets, s.rep.WrongAnswer)
	}
	prompts := 0
	for k, st := range s.rep.Ops {
		if k == kAuth || k == kSignRaw || k == kSignDoc || k == kSignDigest || k == kDisconnect {
			prompts += st.Sent
		}
	}
	if len(invs) > prompts {
		s.violate("%d PIN dialogs for %d card operations requested", len(invs), prompts)
	}
}

// checkLog matches the agent's access log with what the clients sent: one
// line per request of the soak origin, exactly; for the clients that went
// away, no more lines than requests and at least one per answer received.
func (s *soak) checkLog() {
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(s.a.LogFile), "cpsagent*.log"))
	logged := map[string]int{}
	for _, f := range files {
		ents, _, err := harness.ReadLog(f, 0)
		if err != nil {
			s.violate("agent log %s: %v", f, err)
			return
		}
		for _, e := range ents {
			if e.Msg() == "request" {
				logged[e.Str("origin")]++
			}
		}
	}
	if logged[soakOrigin] != s.sentBy[soakOrigin] {
		s.violate("the agent logged %d requests from %s, the clients sent %d (lost or answered twice)",
			logged[soakOrigin], soakOrigin, s.sentBy[soakOrigin])
	}
	if n := logged[disconnectOrigin]; n > s.sentBy[disconnectOrigin] || n < s.doneBy[disconnectOrigin] {
		s.violate("the agent logged %d requests from %s: %d sent, %d answered", n, disconnectOrigin, s.sentBy[disconnectOrigin], s.doneBy[disconnectOrigin])
	}
}

func (s *soak) report() {
	s.rep.Violations = s.violations
	var b strings.Builder
	fmt.Fprintf(&b, "soak report: %d requests in %v by %d clients (seed %d), %d events received\n",
		s.rep.Operations, s.rep.Duration.Round(time.Second), s.rep.Clients, s.rep.Seed, s.rep.Events)
	fmt.Fprintf(&b, "  %-24s %6s %6s %9s  %s\n", "operation", "sent", "ok", "cancelled", "problems by code (max time)")
	for _, k := range sortedKeys(s.rep.Ops) {
		st := s.rep.Ops[k]
		fmt.Fprintf(&b, "  %-24s %6d %6d %9d  %v (max %v)\n", k, st.Sent, st.OK, st.Cancelled, st.Codes, st.MaxTook.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "  errors by code: %v\n", s.rep.Codes)
	fmt.Fprintf(&b, "  faults injected: %v\n", s.rep.Faults)
	fmt.Fprintf(&b, "  PIN dialogs by behaviour: %v\n", s.rep.Prompts)
	fmt.Fprintf(&b, "  PINs typed %d (wrong %d); VERIFY with a PIN on the card %d (wrong %d); card APDUs %d, RSA operations %d\n",
		s.rep.PINAnswers, s.rep.WrongAnswer, s.rep.Verifies, s.rep.WrongOnCard, s.rep.CardAPDUs, s.rep.CardSigs)
	fmt.Fprintf(&b, "  leaks (baseline → end): %v\n", s.rep.Leaks)
	fmt.Fprintf(&b, "  violations: %d\n", len(s.violations))
	s.t.Log(b.String())
	if *flagReport != "" {
		if err := os.MkdirAll(filepath.Dir(*flagReport), 0o755); err == nil {
			js, _ := json.MarshalIndent(&s.rep, "", "  ")
			if err := os.WriteFile(*flagReport, append(js, '\n'), 0o644); err != nil {
				s.t.Errorf("report: %v", err)
			}
		}
	}
	for _, v := range s.violations {
		s.t.Error(v)
	}
	if s.rep.Operations == 0 || s.rep.Ops[kSignRaw] == nil || s.rep.Ops[kSignRaw].OK == 0 {
		s.t.Error("the soak completed no signature: it proved nothing")
	}
	if len(s.rep.Faults) == 0 {
		s.t.Error("no fault was injected: it proved nothing")
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func certKey(t *testing.T, der []byte) *rsa.PublicKey {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c.PublicKey.(*rsa.PublicKey)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// cardLogTail returns the last n lines of the agent's log that are about
// the card (to explain a failure).
func cardLogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"card`) || strings.Contains(l, "identity") || strings.Contains(l, "pcsc") {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

// startVCard puts the virtual card in vpcd slot 0: a failure fails the test
// under CI=true and skips it loudly elsewhere (no pcscd).
func startVCard(t *testing.T, ctx context.Context, vc *harness.VCard) {
	t.Helper()
	if err := vc.Start(ctx); err != nil {
		if testutil.InCI() {
			t.Fatal(err)
		}
		t.Skipf("SKIPPED: %v", err)
	}
}
