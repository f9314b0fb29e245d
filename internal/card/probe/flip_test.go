package probe_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/card/probe"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
)

// flipCase is one [?] fact of card-cpx.md: a virtual card that answers the
// other way, the agent failing on it with a clear error, then working with
// only the quirks file changed.
type flipCase struct {
	fact string // the probe's fact id
	// card is the behaviour of the card that answers the other way.
	card virtual.Behaviour
	// from is the quirks file the agent starts with ("": no policy file,
	// the shipped defaults); fix is the file that adapts it.
	from, fix string
	// op is the operation that needs the fact.
	op func(ctx context.Context, e *flipEnv) error
	// wantKeys are the quirks-file keys the failure must name (a
	// cps.QuirkError); wantErr, when set, is the engine error instead.
	wantKeys []string
	wantErr  error
	// probed: the read-only probe's suggested quirks equal the fix.
	probed bool
	// pcscd: also run through pcscd (vpcd slot 1).
	pcscd bool
}

type flipEnv struct {
	eng    *card.Engine
	reader string
	trace  *syncBuffer // engine trace
}

func newEnv(s *slot, q cps.Quirks) *flipEnv {
	tr := &syncBuffer{}
	return &flipEnv{eng: engine(s, q, tr), reader: s.reader, trace: tr}
}

func identity(ctx context.Context, e *flipEnv) error {
	d, err := e.eng.Card(ctx, e.reader)
	if err != nil {
		return err
	}
	if d.AuthCert.KeyUsage&x509.KeyUsageDigitalSignature == 0 || d.SignCert.KeyUsage&x509.KeyUsageContentCommitment == 0 {
		return fmt.Errorf("certificates mixed up: %v / %v", d.AuthCert.KeyUsage, d.SignCert.KeyUsage)
	}
	return nil
}

func authenticate(ctx context.Context, e *flipEnv) error {
	_, err := e.eng.Authenticate(ctx, e.reader, []byte("challenge"), secrets)
	return err
}

func signEmpty(ctx context.Context, e *flipEnv) error {
	_, err := e.eng.Sign(ctx, e.reader, nil, secrets)
	return err
}

// identityWithinBudget: the cold identity read costs 14 APDUs and no
// SELECT misses when the certificate paths are right (card README).
func identityWithinBudget(ctx context.Context, e *flipEnv) error {
	if err := identity(ctx, e); err != nil {
		return err
	}
	var cmds, misses int
	for _, l := range e.trace.lines() {
		switch {
		case strings.HasPrefix(l, "> "):
			cmds++
		case l == "< 6A 82":
			misses++
		}
	}
	if misses > 0 || cmds != 14 {
		return fmt.Errorf("cold identity read: %d APDUs, %d SELECT answered 6A 82 (budget 14, none): the certificate paths in the quirks are not the card's", cmds, misses)
	}
	return nil
}

// changePIN changes the PIN to 2468, then signs with the new PIN.
func changePIN(ctx context.Context, e *flipEnv) error {
	if err := e.eng.ChangePIN(ctx, e.reader, secrets); err != nil {
		return err
	}
	_, err := e.eng.Sign(ctx, e.reader, []byte("x"), func(context.Context, card.PINRequest) ([]byte, error) { return []byte("2468"), nil })
	return err
}

// unblock blocks the PIN with three wrong ones, then unblocks it with the
// PUK.
func unblock(ctx context.Context, e *flipEnv) error {
	for range 3 {
		if _, err := e.eng.Sign(ctx, e.reader, []byte("x"), wrongPIN); err == nil {
			return errors.New("a wrong PIN was accepted")
		}
	}
	return e.eng.Unblock(ctx, e.reader, secrets)
}

// thirdWrongPIN: the VERIFY that uses the last try must read as "blocked".
func thirdWrongPIN(ctx context.Context, e *flipEnv) error {
	var err error
	for range 3 {
		_, err = e.eng.Sign(ctx, e.reader, []byte("x"), wrongPIN)
	}
	if !errors.Is(err, card.ErrPINBlocked) {
		return fmt.Errorf("third wrong PIN: want %v, got %w", card.ErrPINBlocked, err)
	}
	return nil
}

var flipCases = []flipCase{
	{fact: "pin-encoding", card: virtual.Behaviour{PINEncoding: "bcd"},
		fix: `{"pinEncoding": "bcd"}`, op: authenticate,
		wantKeys: []string{"pinEncoding", "pinPadLength", "pinPadByte"}, probed: true, pcscd: true},
	{fact: "pin-padding", card: virtual.Behaviour{PINPadLength: 8},
		fix: `{"pinPadLength": 8, "pinPadByte": "FF"}`, op: authenticate,
		wantKeys: []string{"pinPadLength", "pinPadByte"}, probed: true},
	{fact: "pin-encoding", card: virtual.Behaviour{PINEncoding: "bcd", PINPadLength: 8, PINPadByte: 0xFF},
		fix: `{"pinEncoding": "bcd", "pinPadLength": 8, "pinPadByte": "FF"}`, op: authenticate,
		wantKeys: []string{"pinEncoding", "pinPadLength"}, probed: true},
	{fact: "verify-p2-pin", card: virtual.Behaviour{LocalCHVRefs: true},
		fix: `{"verifyP2Pin": "81", "verifyP2Puk": "82"}`, op: authenticate,
		wantKeys: []string{"verifyP2Pin"}, probed: true, pcscd: true},
	{fact: "puk-reference", card: virtual.Behaviour{PUKRef: 0x03},
		fix: `{"verifyP2Puk": "03"}`, op: unblock,
		wantKeys: []string{"verifyP2Puk"}, probed: true},
	{fact: "verify-in-mf", card: virtual.Behaviour{VerifyNeedsMF: true},
		fix: `{"verifyInMf": true}`, op: authenticate,
		wantKeys: []string{"verifyInMf"}, probed: true},
	{fact: "third-wrong-pin", card: virtual.Behaviour{ThirdWrongPIN: "63C0"},
		from: `{"blockedOn63C0": false}`, fix: `{"blockedOn63C0": true}`, op: thirdWrongPIN,
		wantErr: card.ErrPINIncorrect},
	{fact: "certificate-paths", card: virtual.Behaviour{AuthCertFID: 0xA002, SignCertFID: 0xA001},
		fix: `{"authCertPath": "3F000001A002", "signCertPath": "3F000001A001"}`, op: identity,
		wantKeys: []string{"authCertPath", "signCertPath"}, probed: true},
	{fact: "certificate-paths", card: virtual.Behaviour{AuthCertFID: 0xC001, SignCertFID: 0xC002},
		fix: `{"authCertPath": "3F000001C001", "signCertPath": "3F000001C002"}`, op: identityWithinBudget,
		probed: true},
	{fact: "app-df", card: virtual.Behaviour{AppDFFID: 0x0101},
		fix: `{"appDfPath": "3F000101", "authCertPath": "3F000101A001", "signCertPath": "3F000101A002"}`, op: identity,
		wantKeys: []string{"appDfPath"}, probed: true, pcscd: true},
	{fact: "select-clears-pin", card: virtual.Behaviour{SelectClearsPIN: true},
		from: `{"verifyInMf": true}`, fix: `{"verifyInMf": true, "selectClearsPin": true}`, op: authenticate,
		wantKeys: []string{"selectClearsPin", "verifyInMf"}},
	{fact: "change-reference-p1", card: virtual.Behaviour{ChangeP1: 1},
		fix: `{"changeReferenceP1": "01"}`, op: changePIN,
		wantKeys: []string{"changeReferenceP1"}},
	{fact: "empty-hash-tail", card: virtual.Behaviour{RejectEmptyHashTail: true},
		from: `{"emptyHashTail": "psohash"}`, fix: `{"emptyHashTail": "cds"}`, op: signEmpty,
		wantKeys: []string{"emptyHashTail"}},
	{fact: "empty-hash-tail", card: virtual.Behaviour{RejectHashInCDS: true},
		from: `{"emptyHashTail": "cds"}`, fix: `{"emptyHashTail": "psohash"}`, op: signEmpty,
		wantKeys: []string{"emptyHashTail"}},
}

// TestQuirksFileAdaptsAgent: for each [?] fact, the agent fails on a card
// that answers the other way, with an error naming the quirks to change,
// and works once only the quirks file changes. Where a read-only probe can
// tell, the probe's suggested quirks are exactly that change.
func TestQuirksFileAdaptsAgent(t *testing.T) {
	for _, leg := range []struct {
		name string
		slot func(t *testing.T) *slot
	}{{"mem", memSlot}, {"pcscd", pcscSlot}} {
		t.Run(leg.name, func(t *testing.T) {
			var s *slot
			if leg.name == "mem" {
				s = leg.slot(t)
			}
			for _, fc := range flipCases {
				if leg.name == "pcscd" && !fc.pcscd {
					continue
				}
				if s == nil {
					s = leg.slot(t) // once, after the first row is known to run
				}
				t.Run(fmt.Sprintf("%s/%s", fc.fact, strings.Trim(fc.fix, "{}")), func(t *testing.T) {
					runFlip(t, s, fc)
				})
			}
		})
	}
}

func runFlip(t *testing.T, s *slot, fc flipCase) {
	ctx := context.Background()
	from := quirksFile(t, fc.from)
	fixed := quirksFile(t, fc.fix)
	if cps.DiffQuirks(from, fixed) == nil {
		t.Fatal("the fix changes no quirk")
	}
	if fc.from == "" {
		// The fix is what the virtual card's own description says.
		if want := fc.card.AgentQuirks(); fixed != want {
			t.Fatalf("the fix %s differs from the card's AgentQuirks in %v", fc.fix, cps.DiffQuirks(fixed, want))
		}
	}

	// 1. The agent with the old quirks fails with a clear error.
	c := newCard(t, fc.card, nil)
	s.insert(t, c)
	env := newEnv(s, from)
	err := fc.op(ctx, env)
	switch {
	case err == nil:
		t.Fatal("the agent worked with the old quirks: the card does not answer the other way")
	case fc.wantErr != nil:
		if !errors.Is(err, fc.wantErr) {
			t.Fatalf("old quirks: %v, want %v", err, fc.wantErr)
		}
	case fc.wantKeys != nil:
		var qe *cps.QuirkError
		if !errors.Is(err, cps.ErrQuirkMismatch) || !errors.As(err, &qe) || !errors.Is(err, card.ErrCardFailure) && !errors.Is(err, card.ErrPINBlocked) {
			t.Fatalf("old quirks: %v, want a card error naming the quirks %v", err, fc.wantKeys)
		}
		for _, k := range fc.wantKeys {
			if !strings.Contains(err.Error(), k) {
				t.Errorf("the error does not name the quirk %s: %v", k, err)
			}
		}
	}
	t.Logf("old quirks: %v", err)
	s.remove(t)

	// 2. Only the quirks file changes: the same kind of card works.
	c = newCard(t, fc.card, nil)
	s.insert(t, c)
	env = newEnv(s, fixed)
	if err := fc.op(ctx, env); err != nil {
		t.Fatalf("with the quirks file %s: %v", fc.fix, err)
	}

	// 3. The read-only probe, run with the old quirks, suggests the fix.
	if !fc.probed {
		return
	}
	s.remove(t)
	c = newCard(t, fc.card, nil)
	s.insert(t, c)
	defer s.remove(t)
	r, err := probe.Run(ctx, s.tr, probe.Options{Reader: s.reader, Quirks: from, QuirksSource: "test"})
	if err != nil {
		t.Fatal(err)
	}
	got := quirksFile(t, string(r.Quirks.PolicyFile))
	if got != fixed {
		t.Errorf("the probe suggests %s; the fix changes %v", r.Quirks.PolicyFile, cps.DiffQuirks(from, fixed))
	}
	for _, f := range r.Facts {
		if f.ID == fc.fact && f.Verdict != probe.Contradicts {
			t.Errorf("fact %s: verdict %s (%s), want %s", f.ID, f.Verdict, f.Observed, probe.Contradicts)
		}
	}
	if !agentReadsOK(r, "suggested") {
		t.Errorf("the agent's read flows fail with the suggested quirks: %+v", r.AgentReads)
	}
}

func agentReadsOK(r *probe.Report, label string) bool {
	n := 0
	for _, a := range r.AgentReads {
		if a.Quirks == label {
			n++
			if !a.OK {
				return false
			}
		}
	}
	return n > 0
}

// TestDefaultsTolerate: the [?] behaviours the default quirks accept either
// way (so no quirks change is needed, whatever a real card does).
func TestDefaultsTolerate(t *testing.T) {
	for name, tc := range map[string]struct {
		card virtual.Behaviour
		op   func(ctx context.Context, e *flipEnv) error
	}{
		"69 83 on the third wrong PIN":      {virtual.Behaviour{ThirdWrongPIN: "6983"}, thirdWrongPIN},
		"63 C0 on the third wrong PIN":      {virtual.Behaviour{ThirdWrongPIN: "63C0"}, thirdWrongPIN},
		"empty tail refused":                {virtual.Behaviour{RejectEmptyHashTail: true}, signEmpty},
		"hash as CDS data refused":          {virtual.Behaviour{RejectHashInCDS: true}, signEmpty},
		"fresh VERIFY before each PSO CDS":  {virtual.Behaviour{SignatureNeedsFreshVerify: true}, signEmpty},
		"SELECT clears the verified PIN":    {virtual.Behaviour{SelectClearsPIN: true, AppSelectClearsPIN: true}, authenticate},
		"no GET RESPONSE (T=1-like reader)": {virtual.Behaviour{Transport: "t1"}, identity},
		"6C xx past the end of a file":      {virtual.Behaviour{ReadPastEOF: "6C", AuthCertFID: 0xC001, SignCertFID: 0xC002}, identity},
		"wrong-length PIN counted":          {virtual.Behaviour{WrongLengthPIN: "consume"}, changePIN},
	} {
		t.Run(name, func(t *testing.T) {
			s := memSlot(t)
			s.insert(t, newCard(t, tc.card, nil))
			if err := tc.op(context.Background(), newEnv(s, quirksFile(t, ""))); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCPS4QuirksReachProfile: the quirks file's "cps4" object reaches the
// CPS4 profile (a wrong signature key reference breaks signing on the
// virtual CPS4), and the probe, run with that file, finds the reference in
// the PrKDF and suggests the file that works again. The virtual CPS4 takes
// its facts from cps.CPS4Facts only, so it cannot itself answer the other
// way (issue #9 owns it).
func TestCPS4QuirksReachProfile(t *testing.T) {
	ctx := context.Background()
	cps4Card := func() *virtual.Card {
		cfg, err := virtual.Identity("medecin")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Model = virtual.ModelCPS4
		cfg.Serial = fmt.Sprintf("%08d00", 40000000+serialSeq.Add(1))
		c, err := virtual.NewCard(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	s := memSlot(t)
	wrong := quirksFile(t, `{"cps4": {"signKeyRef": "22"}}`)
	if wrong.CPS4Table().SignKeyRef != 0x22 || wrong.CPS4Table().AuthKeyRef != cps.CPS4Facts.AuthKeyRef {
		t.Fatalf("cps4 override: %+v", wrong.CPS4Table())
	}
	s.insert(t, cps4Card())
	if _, err := engine(s, wrong, nil).Sign(ctx, s.reader, []byte("x"), secrets); !errors.Is(err, card.ErrCardFailure) {
		t.Fatalf("sign with signKeyRef 22: %v", err)
	}
	s.remove(t)
	s.insert(t, cps4Card())
	r, err := probe.Run(ctx, s.tr, probe.Options{Reader: s.reader, Quirks: wrong})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Facts {
		if f.ID == "cps4-key-references" && (f.Verdict != probe.Contradicts || string(f.Suggested["cps4"]) != "{}") {
			t.Errorf("fact %+v", f)
		}
	}
	fixed := quirksFile(t, string(r.Quirks.PolicyFile))
	if _, err := engine(s, fixed, nil).Sign(ctx, s.reader, []byte("x"), secrets); err != nil {
		t.Fatalf("sign with the probe's quirks file %s: %v", r.Quirks.PolicyFile, err)
	}
}
