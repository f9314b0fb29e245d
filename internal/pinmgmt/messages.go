package pinmgmt

import (
	"context"
	"errors"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/ledger"
	"github.com/cpsagent/cpsagent/internal/pinentry"
)

// Message turns the outcome of a PIN-management operation into a sentence
// for the card holder: what happened, and what to do next.
func Message(lang i18n.Lang, err error) string {
	p := i18n.For(lang)
	var wrong *card.WrongPINError
	switch {
	case err == nil:
		return p.T(i18n.PINChanged)
	case errors.As(err, &wrong):
		switch {
		case wrong.Kind == card.KindPUK && wrong.TriesLeft <= 0:
			return p.T(i18n.PUKBlockedNow)
		case wrong.Kind == card.KindPUK && wrong.TriesLeft == 1:
			return p.T(i18n.PUKWrongLast)
		case wrong.Kind == card.KindPUK:
			return p.T(i18n.PUKWrong, wrong.TriesLeft)
		case wrong.TriesLeft <= 0:
			return p.T(i18n.PINBlockedNow)
		case wrong.TriesLeft == 1:
			return p.T(i18n.PINWrongLast)
		default:
			return p.T(i18n.PINWrong, wrong.TriesLeft)
		}
	case errors.Is(err, card.ErrPUKBlocked):
		return p.T(i18n.PUKBlocked)
	case errors.Is(err, card.ErrPINBlocked):
		return p.T(i18n.PINBlocked)
	case errors.Is(err, ErrMismatch):
		return p.T(i18n.PINMismatchStop)
	case errors.Is(err, pinentry.ErrPINFormat), errors.Is(err, pinentry.ErrPUKFormat), errors.Is(err, card.ErrPINFormat):
		return p.T(i18n.PINFormat)
	case errors.Is(err, pinentry.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return p.T(i18n.PINTimeout)
	case errors.Is(err, pinentry.ErrCancelled), errors.Is(err, context.Canceled):
		return p.T(i18n.PINCancelled)
	case errors.Is(err, pinentry.ErrBusy), errors.Is(err, card.ErrBusy):
		return p.T(i18n.PINBusy)
	case errors.Is(err, pinentry.ErrUnavailable):
		return p.T(i18n.PINNoDialog)
	case errors.Is(err, card.ErrCardRemoved):
		return p.T(i18n.PINCardRemoved)
	case errors.Is(err, card.ErrCardMismatch):
		return p.T(i18n.PINCardChanged)
	case errors.Is(err, card.ErrNoCard):
		return p.T(i18n.PINNoCard)
	case errors.Is(err, card.ErrNoReader):
		return p.T(i18n.PINNoReader)
	case errors.Is(err, card.ErrPCSCUnavailable):
		return p.T(i18n.PINNoService)
	case errors.Is(err, card.ErrUnsupportedCard):
		return p.T(i18n.PINUnsupported)
	case errors.Is(err, card.ErrNotPermitted):
		return p.T(i18n.PINNotPermitted)
	default:
		return p.T(i18n.PINCardError)
	}
}

// Code is the ledger result code of an outcome (the API's problem codes).
func Code(err error) string {
	switch {
	case err == nil:
		return ledger.ResultOK
	case errors.Is(err, card.ErrPINIncorrect):
		var wrong *card.WrongPINError
		if errors.As(err, &wrong) && wrong.Kind == card.KindPUK {
			return "puk_incorrect"
		}
		return "pin_incorrect"
	case errors.Is(err, card.ErrPUKBlocked):
		return "puk_blocked"
	case errors.Is(err, card.ErrPINBlocked):
		return "pin_blocked"
	case errors.Is(err, ErrMismatch):
		return "pin_mismatch"
	case errors.Is(err, pinentry.ErrPINFormat), errors.Is(err, pinentry.ErrPUKFormat), errors.Is(err, card.ErrPINFormat):
		return "pin_format"
	case errors.Is(err, pinentry.ErrTimeout), errors.Is(err, pinentry.ErrCancelled),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "pin_cancelled"
	case errors.Is(err, pinentry.ErrUnavailable):
		return "pin_unavailable"
	case errors.Is(err, pinentry.ErrBusy), errors.Is(err, card.ErrBusy):
		return "agent_busy"
	case errors.Is(err, card.ErrCardRemoved):
		return "card_removed"
	case errors.Is(err, card.ErrCardMismatch):
		return "card_changed"
	case errors.Is(err, card.ErrNoCard):
		return "card_absent"
	case errors.Is(err, card.ErrNoReader):
		return "reader_absent"
	case errors.Is(err, card.ErrPCSCUnavailable):
		return "pcsc_unavailable"
	case errors.Is(err, card.ErrUnsupportedCard):
		return "card_unsupported"
	case errors.Is(err, card.ErrNotPermitted):
		return "operation_not_supported"
	default:
		return "card_error"
	}
}
