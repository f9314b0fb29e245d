// Package pinmgmt runs the card holder's PIN-management flows started from
// the tray: change the PIN (current PIN, new PIN, confirmation) and unblock
// it (8-digit unblocking code, new PIN, confirmation). They are never
// reachable from the web API.
//
// Codes are asked through pinentry, with the tries left shown and a
// warning before the last try; every card answer becomes a clear message in
// the user's language ([Message]). Each flow is recorded in the activity
// ledger (operation and result code only).
package pinmgmt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/ledger"
	"github.com/cpsagent/cpsagent/internal/pinentry"
)

// Engine is the part of the card engine the flows use; *card.Engine
// implements it.
type Engine interface {
	ChangePIN(ctx context.Context, reader string, pin card.PINFunc) error
	Unblock(ctx context.Context, reader string, pin card.PINFunc) error
}

// Recorder receives one ledger entry per flow; *ledger.Ledger implements it.
type Recorder interface {
	Record(ledger.Entry) error
}

// Messenger is an optional ability of the Prompter: showing a message with
// a single OK button (pinentry's MESSAGE). When the Prompter has it, the
// result of each flow is shown that way; the tray also shows it in its menu.
type Messenger interface {
	Message(ctx context.Context, title, text, lang string) error
}

// Flows runs the PIN-management flows.
type Flows struct {
	Engine   Engine
	Prompter pinentry.Prompter
	Ledger   Recorder // optional
	Lang     i18n.Lang
	// Timeout of each dialog (0: pinentry's default).
	Timeout time.Duration
	// MaxMismatch is how many times a new PIN and its confirmation may
	// differ before the flow stops (0: 3).
	MaxMismatch int
	Logger      *zap.Logger
}

// Result is the outcome of a flow.
type Result struct {
	Op      ledger.Operation
	Err     error  // nil on success
	Code    string // ledger result code: "ok" or a problem code
	Message string // for the user, in Flows.Lang
}

// OK reports success.
func (r Result) OK() bool { return r.Err == nil }

// ErrMismatch: the new PIN and its confirmation differed too many times.
var ErrMismatch = errors.New("pinmgmt: the new PIN and its confirmation differ")

// ChangePIN changes the PIN of the card in reader ("" for the only card).
// After a wrong current PIN it asks again, showing the tries left, until
// the PIN is right, the user cancels, or the card blocks the PIN.
func (f *Flows) ChangePIN(ctx context.Context, reader string) Result {
	return f.run(ctx, ledger.OpChangePIN, reader, f.Engine.ChangePIN)
}

// Unblock resets the PIN with the unblocking code (PUK) and a new PIN. It
// asks again after a wrong PUK, showing the tries left, until the PUK is
// right, the user cancels, or the PUK is blocked (the card must be replaced).
func (f *Flows) Unblock(ctx context.Context, reader string) Result {
	return f.run(ctx, ledger.OpUnblockPIN, reader, f.Engine.Unblock)
}

func (f *Flows) run(ctx context.Context, op ledger.Operation, reader string,
	do func(context.Context, string, card.PINFunc) error) Result {
	log := f.Logger
	if log == nil {
		log = zap.NewNop()
	}
	var lastErr string
	var err error
	for attempt := 0; ; attempt++ {
		err = do(ctx, reader, f.pinFunc(op, lastErr))
		var wrong *card.WrongPINError
		// A wrong code with tries left: ask again (the user may cancel). The
		// engine never retries by itself; each round is one user entry and
		// at most one VERIFY.
		if errors.As(err, &wrong) && wrong.TriesLeft > 0 && ctx.Err() == nil && attempt < 20 {
			lastErr = Message(f.Lang, err)
			f.record(op, err)
			continue
		}
		break
	}
	res := Result{Op: op, Err: err, Code: Code(err), Message: Message(f.Lang, err)}
	if err == nil {
		res.Message = i18n.T(f.Lang, successKey(op))
	}
	f.record(op, err)
	log.Info("PIN management", zap.String("op", string(op)), zap.String("result", res.Code))
	if m, ok := f.Prompter.(Messenger); ok && !errors.Is(err, pinentry.ErrCancelled) {
		title := i18n.T(f.Lang, titleKey(op))
		if merr := m.Message(context.WithoutCancel(ctx), title, res.Message, f.Lang.Code()); merr != nil {
			log.Warn("showing the result", zap.Error(merr))
		}
	}
	return res
}

func (f *Flows) record(op ledger.Operation, err error) {
	if f.Ledger == nil {
		return
	}
	if lerr := f.Ledger.Record(ledger.Entry{Operation: op, Result: Code(err)}); lerr != nil && f.Logger != nil {
		f.Logger.Warn("ledger", zap.Error(lerr))
	}
}

func successKey(op ledger.Operation) i18n.Key {
	if op == ledger.OpUnblockPIN {
		return i18n.PINUnblocked
	}
	return i18n.PINChanged
}

func titleKey(op ledger.Operation) i18n.Key {
	if op == ledger.OpUnblockPIN {
		return i18n.OpUnblockPIN
	}
	return i18n.OpChangePIN
}

// pinFunc adapts the Prompter to the engine's callback. lastErr is shown in
// the first dialog (the previous wrong-code message).
func (f *Flows) pinFunc(op ledger.Operation, lastErr string) card.PINFunc {
	operation := i18n.T(f.Lang, titleKey(op))
	return func(ctx context.Context, req card.PINRequest) ([]byte, error) {
		base := pinentry.Request{
			Operation: operation,
			Holder:    req.Holder,
			Reader:    req.Reader,
			TriesLeft: req.TriesLeft,
			LastTry:   req.LastTry,
			Timeout:   f.Timeout,
			Lang:      f.Lang.Code(),
		}
		switch req.Kind {
		case card.KindPIN, card.KindPUK:
			r := base
			r.Kind = pinentry.PIN
			if req.Kind == card.KindPUK {
				r.Kind = pinentry.PUK
			}
			r.Error = lastErr
			s, err := f.Prompter.GetPIN(ctx, r)
			if err != nil {
				return nil, err
			}
			return s.Bytes(), nil // the engine zeroes it after the VERIFY
		case card.KindNewPIN:
			return f.newPIN(ctx, base)
		default:
			return nil, fmt.Errorf("pinmgmt: unexpected %v request", req.Kind)
		}
	}
}

// newPIN asks the new PIN twice until both entries agree.
func (f *Flows) newPIN(ctx context.Context, base pinentry.Request) ([]byte, error) {
	max := f.MaxMismatch
	if max <= 0 {
		max = 3
	}
	base.TriesLeft, base.LastTry = -1, false
	errLine := ""
	for i := 0; i < max; i++ {
		r := base
		r.Kind, r.Error = pinentry.NewPIN, errLine
		first, err := f.Prompter.GetPIN(ctx, r)
		if err != nil {
			return nil, err
		}
		r.Kind, r.Error = pinentry.ConfirmNewPIN, ""
		second, err := f.Prompter.GetPIN(ctx, r)
		if err != nil {
			first.Wipe()
			return nil, err
		}
		same := first.Equal(second)
		second.Wipe()
		if same {
			return first.Bytes(), nil // zeroed by the engine
		}
		first.Wipe()
		errLine = i18n.T(f.Lang, i18n.PINMismatch)
	}
	return nil, ErrMismatch
}
