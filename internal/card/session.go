package card

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
)

// txn is one transport transaction of an operation: the session, the
// APDU channel over it and the card's profile.
type txn struct {
	e       *Engine
	reader  string
	sess    Session
	meter   *meter
	ch      *apdu.Channel
	profile cps.Profile
	ctype   cps.CardType
	ended   bool
}

// meter wraps a Session: it times Transmit and notes whether a secret
// (VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER with data) was sent,
// in which case the transaction ends with a card reset.
type meter struct {
	s       Session
	elapsed time.Duration
	secret  bool
	// mute notes a card that answered 6F 00 (no precise diagnosis) or whose
	// transmit failed while it stayed in the reader: the transaction ends
	// with a reset, or a card that went mute (contact bounce, lost power)
	// would fail every request until it is pulled out (regression:
	// test/soak TestRegressionRecoversFromMuteCard).
	mute bool
}

func (m *meter) Transmit(cmd []byte) ([]byte, error) {
	if len(cmd) > 5 && apdu.CarriesSecret(cmd[1]) {
		m.secret = true
	}
	start := time.Now()
	resp, err := m.s.Transmit(cmd)
	m.elapsed += time.Since(start)
	switch {
	case err != nil && !errors.Is(err, ErrCardRemoved) && !errors.Is(err, ErrPCSCUnavailable) && !errors.Is(err, ErrNoCard):
		m.mute = true
	case err == nil && len(resp) == 2 && resp[0] == 0x6F && resp[1] == 0x00:
		m.mute = true
	}
	return resp, err
}

// begin opens a transaction on reader and picks the card's profile.
func (e *Engine) begin(ctx context.Context, reader string) (*txn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sess, err := e.t.Begin(ctx, reader)
	if err != nil {
		return nil, err
	}
	atr := sess.ATR()
	prof, err := cps.NewProfile(atr, e.quirks)
	if err != nil {
		_ = sess.End(false)
		return nil, translate(err)
	}
	m := &meter{s: sess}
	tx := &txn{e: e, reader: reader, sess: sess, meter: m, profile: prof, ctype: prof.Type()}
	tx.ch = &apdu.Channel{T: m}
	if e.trace != nil {
		tx.ch.Trace = func(cmd, resp []byte, err error) {
			e.trace(reader, "> "+traceCommand(cmd))
			e.trace(reader, "< "+traceResponse(resp, err))
		}
	}
	return tx, nil
}

// end closes the transaction; it resets the card when a secret was sent,
// so the PIN's verified state never outlives the operation.
func (tx *txn) end() {
	if tx.ended {
		return
	}
	tx.ended = true
	reset := tx.meter.secret || tx.meter.mute
	start := time.Now()
	err := tx.sess.End(reset)
	if reset {
		tx.e.log.Debug("card reset to clear the verified state", zap.String("reader", tx.reader),
			zap.Duration("took", time.Since(start)), zap.Error(err))
	}
	if err != nil && reset && !errors.Is(err, ErrCardRemoved) && !errors.Is(err, ErrPCSCUnavailable) {
		// The reset failed and the card is still there: it may keep the
		// verified state until another application resets it.
		tx.e.log.Warn("could not reset the card after a PIN operation", zap.String("reader", tx.reader), zap.Error(err))
	}
}

// traceCommand masks PIN data (apdu.Redact) and the data of every PSO
// (HASH: document bytes; CDS: the document's hash on a CPS4; DECIPHER: the
// padded challenge on a CPS4, a cryptogram otherwise) and of INTERNAL
// AUTHENTICATE (challenge bytes).
func traceCommand(cmd []byte) string {
	if len(cmd) > 5 && (cmd[1] == apdu.InsPerformSecurityOp || cmd[1] == apdu.InsInternalAuthenticate) {
		return apdu.Hex(cmd[:5]) + fmt.Sprintf(" [%d bytes]", len(cmd)-5)
	}
	return apdu.Redact(cmd)
}

func traceResponse(resp []byte, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	if len(resp) < 2 {
		return apdu.Hex(resp)
	}
	sw := apdu.Hex(resp[len(resp)-2:])
	if len(resp) == 2 {
		return sw
	}
	return fmt.Sprintf("[%d bytes] %s", len(resp)-2, sw)
}

// translate maps profile and APDU errors to the engine's vocabulary.
// Transport errors already are card errors and pass through.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var wrong *cps.WrongPINError
	switch {
	case errors.As(err, &wrong):
		kind := KindPIN
		if wrong.PUK {
			kind = KindPUK
		}
		return &WrongPINError{Kind: kind, TriesLeft: wrong.TriesLeft}
	case errors.Is(err, cps.ErrPINFormat):
		return fmt.Errorf("%w: %w", ErrPINFormat, err)
	case errors.Is(err, cps.ErrPUKBlocked):
		return fmt.Errorf("%w: %w", ErrPUKBlocked, err)
	case errors.Is(err, cps.ErrPINBlocked):
		return fmt.Errorf("%w: %w", ErrPINBlocked, err)
	case errors.Is(err, cps.ErrUnsupported):
		return fmt.Errorf("%w: %w", ErrUnsupportedCard, err)
	case errors.Is(err, cps.ErrNotPermitted):
		return fmt.Errorf("%w: %w", ErrNotPermitted, err)
	case isEngineError(err):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("%w: %w", ErrCardFailure, err)
}

func isEngineError(err error) bool {
	for _, e := range []error{ErrPCSCUnavailable, ErrNoReader, ErrNoCard, ErrCardRemoved, ErrCardReset, ErrBusy,
		ErrPINBlocked, ErrPUKBlocked, ErrPINFormat, ErrUnsupportedCard, ErrCardMismatch, ErrNotPermitted,
		ErrCardFailure, ErrPINIncorrect, ErrSeveralCards, ErrInvalidInput} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// secretDigits is the length a secret of each kind must have.
func secretDigits(k PINKind) int {
	if k == KindPUK {
		return cps.PUKLength
	}
	return cps.PINLength
}
