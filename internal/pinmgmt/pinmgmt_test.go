package pinmgmt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/memreader"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/ledger"
	"github.com/cpsagent/cpsagent/internal/pinentry"
)

// Codes used by the tests: distinctive, so that a grep for them in the
// ledger and logs means something.
const (
	oldPIN = "4826"
	newPIN = "5193"
	badPIN = "7061"
	puk    = "73915064"
	badPUK = "26048351"
	reader = "Virtual Reader 0"
)

// rig is an engine over an in-process reader holding a virtual CPS card.
type rig struct {
	engine *card.Engine
	card   *virtual.Card
	ledger *ledger.Ledger
	logs   *syncBuffer
	log    *zap.Logger
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) Sync() error    { return nil }
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newRig(t *testing.T) *rig {
	t.Helper()
	cfg, err := virtual.Identity("medecin")
	if err != nil {
		t.Fatal(err)
	}
	cfg.PIN, cfg.PUK = oldPIN, puk
	vc, err := virtual.NewCard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := memreader.New(reader)
	if err := tr.Insert(reader, vc); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewDevelopmentEncoderConfig()), logs, zap.DebugLevel))
	l, err := ledger.Open(t.TempDir(), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e := card.New(tr, card.Options{Quirks: cfg.Behaviour.AgentQuirks(), Logger: log})
	return &rig{engine: e, card: vc, ledger: l, logs: logs, log: log}
}

func (r *rig) flows(p pinentry.Prompter) *Flows {
	return &Flows{Engine: r.engine, Prompter: p, Ledger: r.ledger, Lang: i18n.EN, Logger: r.log}
}

func (r *rig) status(t *testing.T) card.PINStatus {
	t.Helper()
	st, err := r.engine.PINStatus(t.Context(), reader)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// assertNoSecrets greps the ledger files and the logs for every code used.
func (r *rig) assertNoSecrets(t *testing.T) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(r.ledger.Dir(), "*"))
	texts := map[string]string{"logs": r.logs.String()}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts[f] = string(b)
	}
	for name, text := range texts {
		for _, code := range []string{oldPIN, newPIN, badPIN, puk, badPUK} {
			if regexp.MustCompile(`(^|[^0-9])` + code + `([^0-9]|$)`).MatchString(text) {
				t.Errorf("%s contains the code %s", name, code)
			}
		}
	}
}

// script is a Prompter answering from a list, recording each request.
type script struct {
	mu       sync.Mutex
	answers  []any // string code, or error
	requests []pinentry.Request
}

func (s *script) GetPIN(_ context.Context, r pinentry.Request) (*pinentry.Secret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
	if len(s.answers) == 0 {
		return nil, pinentry.ErrCancelled
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	if err, ok := a.(error); ok {
		return nil, err
	}
	return pinentry.SecretFromBytes([]byte(a.(string))), nil
}

func (s *script) Confirm(context.Context, pinentry.ConfirmRequest) (pinentry.Decision, error) {
	return pinentry.Refuse, errors.New("not used")
}

func answers(a ...any) *script { return &script{answers: a} }

func kinds(rs []pinentry.Request) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(map[pinentry.Kind]string{pinentry.PIN: "P", pinentry.PUK: "U", pinentry.NewPIN: "N", pinentry.ConfirmNewPIN: "C"}[r.Kind])
	}
	return b.String()
}

func TestChangePIN(t *testing.T) {
	r := newRig(t)
	p := answers(oldPIN, newPIN, newPIN)
	res := r.flows(p).ChangePIN(t.Context(), reader)
	if !res.OK() || res.Code != "ok" || res.Message != i18n.T(i18n.EN, i18n.PINChanged) {
		t.Fatalf("result %+v", res)
	}
	if got := kinds(p.requests); got != "PNC" {
		t.Fatalf("dialogs %s, want PNC", got)
	}
	if p.requests[0].TriesLeft != 3 || p.requests[0].LastTry || p.requests[0].Operation == "" || p.requests[0].Origin != "" {
		t.Errorf("first request %+v", p.requests[0])
	}
	// The new PIN is in force: changing back with it works, the old one fails.
	if res := r.flows(answers(oldPIN, "0000", "0000")).ChangePIN(t.Context(), reader); res.OK() {
		t.Fatal("old PIN still accepted")
	}
	if res := r.flows(answers(newPIN, oldPIN, oldPIN)).ChangePIN(t.Context(), reader); !res.OK() {
		t.Fatalf("new PIN refused: %+v", res)
	}
	r.assertNoSecrets(t)
}

func TestChangePINWrongThenRight(t *testing.T) {
	r := newRig(t)
	p := answers(badPIN, newPIN, newPIN, oldPIN, newPIN, newPIN)
	res := r.flows(p).ChangePIN(t.Context(), reader)
	if !res.OK() {
		t.Fatalf("result %+v", res)
	}
	if got := kinds(p.requests); got != "PNCPNC" {
		t.Fatalf("dialogs %s", got)
	}
	second := p.requests[3]
	if second.TriesLeft != 2 || second.Error != "Wrong PIN. 2 tries left before the card is blocked." {
		t.Errorf("retry dialog: tries %d, error %q", second.TriesLeft, second.Error)
	}
	if st := r.status(t); st.TriesLeft != 3 {
		t.Errorf("counter %d after a right PIN, want 3", st.TriesLeft)
	}
	es, _ := r.ledger.Entries()
	if len(es) != 2 || es[0].Result != "pin_incorrect" || es[1].Result != "ok" || es[1].Operation != ledger.OpChangePIN {
		t.Fatalf("ledger %+v", es)
	}
	r.assertNoSecrets(t)
}

func TestChangePINUntilBlockedThenUnblock(t *testing.T) {
	r := newRig(t)
	p := answers(badPIN, newPIN, newPIN, badPIN, newPIN, newPIN, badPIN, newPIN, newPIN)
	res := r.flows(p).ChangePIN(t.Context(), reader)
	if res.OK() || !errors.Is(res.Err, card.ErrPINIncorrect) && !errors.Is(res.Err, card.ErrPINBlocked) {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(res.Message, "blocked") || !strings.Contains(res.Message, "unblocking code") {
		t.Errorf("message %q", res.Message)
	}
	// The third dialog warned that it was the last try.
	third := p.requests[6]
	if !third.LastTry || third.TriesLeft != 1 || !strings.Contains(third.Error, "only one try left") {
		t.Errorf("last-try dialog %+v", third)
	}
	if st := r.status(t); !st.Blocked {
		t.Fatalf("PIN not blocked: %+v", st)
	}
	// Blocked: no dialog at all, a clear message.
	p2 := answers()
	res = r.flows(p2).ChangePIN(t.Context(), reader)
	if !errors.Is(res.Err, card.ErrPINBlocked) || len(p2.requests) != 0 || res.Code != "pin_blocked" {
		t.Fatalf("blocked: %+v, %d dialogs", res, len(p2.requests))
	}

	// Unblock with the PUK and a new PIN; a first confirmation mismatch is
	// asked again.
	p3 := answers(puk, newPIN, "9999", newPIN, newPIN)
	res = r.flows(p3).Unblock(t.Context(), reader)
	if !res.OK() || res.Message != i18n.T(i18n.EN, i18n.PINUnblocked) {
		t.Fatalf("unblock %+v", res)
	}
	if got := kinds(p3.requests); got != "UNCNC" {
		t.Fatalf("dialogs %s", got)
	}
	if p3.requests[0].TriesLeft != 10 || p3.requests[3].Error == "" {
		t.Errorf("PUK tries %d, mismatch error %q", p3.requests[0].TriesLeft, p3.requests[3].Error)
	}
	if st := r.status(t); st.Blocked || st.TriesLeft != 3 {
		t.Fatalf("after unblock %+v", st)
	}
	if res := r.flows(answers(newPIN, oldPIN, oldPIN)).ChangePIN(t.Context(), reader); !res.OK() {
		t.Fatalf("new PIN after unblock: %+v", res)
	}
	r.assertNoSecrets(t)
}

func TestUnblockRunsOutOfPUKTries(t *testing.T) {
	r := newRig(t)
	var as []any
	for range 10 {
		as = append(as, badPUK, newPIN, newPIN)
	}
	p := answers(as...)
	res := r.flows(p).Unblock(t.Context(), reader)
	if res.OK() {
		t.Fatal("unblocked with a wrong PUK")
	}
	if got := len(p.requests); got != 30 {
		t.Fatalf("%d dialogs, want 30 (10 rounds)", got)
	}
	last := p.requests[27]
	if last.Kind != pinentry.PUK || !last.LastTry || last.TriesLeft != 1 || !strings.Contains(last.Error, "only one try left") {
		t.Errorf("last PUK dialog %+v", last)
	}
	if !strings.Contains(res.Message, "blocked") || !strings.Contains(res.Message, "new CPS card") {
		t.Errorf("message %q", res.Message)
	}
	st := r.status(t)
	if !st.PUKBlocked {
		t.Fatalf("PUK not blocked: %+v", st)
	}
	// Now: PUK blocked, no dialog.
	p2 := answers()
	res = r.flows(p2).Unblock(t.Context(), reader)
	if !errors.Is(res.Err, card.ErrPUKBlocked) || len(p2.requests) != 0 || res.Code != "puk_blocked" {
		t.Fatalf("PUK blocked: %+v, %d dialogs", res, len(p2.requests))
	}
	if !strings.Contains(res.Message, "can no longer be unblocked") {
		t.Errorf("message %q", res.Message)
	}
	es, _ := r.ledger.Entries()
	if len(es) != 11 {
		t.Fatalf("%d ledger entries, want 11", len(es))
	}
	for _, e := range es[:9] {
		if e.Result != "puk_incorrect" || e.Operation != ledger.OpUnblockPIN {
			t.Fatalf("entry %+v", e)
		}
	}
	r.assertNoSecrets(t)
}

func TestNothingSentWithoutAnswers(t *testing.T) {
	tests := []struct {
		name    string
		answers []any
		code    string
		msg     i18n.Key
	}{
		{"cancel first", []any{pinentry.ErrCancelled}, "pin_cancelled", i18n.PINCancelled},
		{"cancel new PIN", []any{oldPIN, pinentry.ErrCancelled}, "pin_cancelled", i18n.PINCancelled},
		{"cancel confirmation", []any{oldPIN, newPIN, pinentry.ErrCancelled}, "pin_cancelled", i18n.PINCancelled},
		{"timeout", []any{pinentry.ErrTimeout}, "pin_cancelled", i18n.PINTimeout},
		{"no pinentry", []any{pinentry.ErrUnavailable}, "pin_unavailable", i18n.PINNoDialog},
		{"dialog busy", []any{pinentry.ErrBusy}, "agent_busy", i18n.PINBusy},
		{"three mismatches", []any{oldPIN, "1111", "2222", "1111", "2222", "1111", "2222"}, "pin_mismatch", i18n.PINMismatchStop},
		{"bad format", []any{"12a4", newPIN, newPIN}, "pin_format", i18n.PINFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			res := r.flows(answers(tt.answers...)).ChangePIN(t.Context(), reader)
			if res.OK() || res.Code != tt.code || res.Message != i18n.T(i18n.EN, tt.msg) {
				t.Fatalf("result %+v (message %q)", res, res.Message)
			}
			if st := r.status(t); st.TriesLeft != 3 {
				t.Fatalf("a try was used: %+v", st)
			}
		})
	}
}

func TestNoCard(t *testing.T) {
	r := newRig(t)
	tr := memreader.New(reader)
	e := card.New(tr, card.Options{})
	f := &Flows{Engine: e, Prompter: answers(), Lang: i18n.FR, Ledger: r.ledger}
	res := f.ChangePIN(t.Context(), reader)
	if !errors.Is(res.Err, card.ErrNoCard) || res.Message != i18n.T(i18n.FR, i18n.PINNoCard) {
		t.Fatalf("%+v", res)
	}
}

// TestMessages: every card answer gives a distinct, non-empty message in
// both languages.
func TestMessages(t *testing.T) {
	errs := []error{
		&card.WrongPINError{Kind: card.KindPIN, TriesLeft: 2},
		&card.WrongPINError{Kind: card.KindPIN, TriesLeft: 1},
		&card.WrongPINError{Kind: card.KindPIN, TriesLeft: 0},
		&card.WrongPINError{Kind: card.KindPUK, TriesLeft: 5},
		&card.WrongPINError{Kind: card.KindPUK, TriesLeft: 1},
		&card.WrongPINError{Kind: card.KindPUK, TriesLeft: 0},
		card.ErrPINBlocked, card.ErrPUKBlocked, ErrMismatch, card.ErrPINFormat, pinentry.ErrTimeout,
		pinentry.ErrCancelled, pinentry.ErrBusy, pinentry.ErrUnavailable, card.ErrCardRemoved, card.ErrCardMismatch,
		card.ErrNoCard, card.ErrNoReader, card.ErrPCSCUnavailable, card.ErrUnsupportedCard, card.ErrNotPermitted,
		card.ErrCardFailure,
	}
	for _, lang := range []i18n.Lang{i18n.FR, i18n.EN} {
		seen := map[string]error{}
		for _, err := range errs {
			m := Message(lang, err)
			if m == "" || strings.Contains(m, "%!") {
				t.Errorf("%v: bad message %q", err, m)
			}
			if prev, dup := seen[m]; dup {
				t.Errorf("%v and %v share the message %q", prev, err, m)
			}
			seen[m] = err
			if c := Code(err); c == "" || (ledger.Entry{Operation: ledger.OpChangePIN, Result: c}).Validate() != nil {
				t.Errorf("%v: code %q not valid in the ledger", err, c)
			}
		}
	}
}
