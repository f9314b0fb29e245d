package card

import (
	"errors"
	"fmt"
)

// The card layer's error vocabulary. The API maps each to a stable problem
// code (in parentheses); wrap them with %w so errors.Is keeps working.
var (
	ErrPCSCUnavailable = errors.New("card: smart-card service unavailable")                 // pcsc_unavailable
	ErrNoReader        = errors.New("card: no reader")                                      // reader_absent
	ErrNoCard          = errors.New("card: no card in the reader")                          // card_absent
	ErrCardRemoved     = errors.New("card: card removed during the operation")              // card_removed
	ErrBusy            = errors.New("card: another operation is in progress")               // agent_busy
	ErrPINBlocked      = errors.New("card: PIN blocked")                                    // pin_blocked
	ErrPUKBlocked      = errors.New("card: unblocking code (PUK) blocked")                  // puk_blocked
	ErrPINFormat       = errors.New("card: PIN format invalid")                             // pin_format
	ErrUnsupportedCard = errors.New("card: not a supported CPx card")                       // card_unsupported
	ErrCardMismatch    = errors.New("card: the card changed")                               // card_changed
	ErrNotPermitted    = errors.New("card: operation not permitted on this card interface") // operation_not_supported
	ErrCardFailure     = errors.New("card: unexpected card answer")                         // card_error
)

// Added by the engine (same conventions as above).
var (
	// ErrSeveralCards: reader "" was given while several readers hold a card.
	ErrSeveralCards = errors.New("card: several cards present, name the reader") // reader_ambiguous
	// ErrCardReset: another application reset the card during the
	// operation; the verified state is gone, the operation was not retried.
	ErrCardReset = errors.New("card: card reset by another application during the operation") // card_reset
	// ErrInvalidInput: the caller's data cannot be processed (e.g. more than
	// 102 bytes to authenticate, or no PINFunc).
	ErrInvalidInput = errors.New("card: invalid input") // bad_request
	// ErrAlreadyRunning: Engine.Run was called while it already runs.
	ErrAlreadyRunning = errors.New("card: engine already running")
)

// WrongPINError reports a rejected PIN or PUK and how many tries remain.
// It matches ErrPINIncorrect with errors.Is.
type WrongPINError struct {
	Kind      PINKind
	TriesLeft int
}

// ErrPINIncorrect is matched by every *WrongPINError.
var ErrPINIncorrect = errors.New("card: incorrect PIN") // pin_incorrect

func (e *WrongPINError) Error() string {
	return fmt.Sprintf("card: incorrect %s, %d tries left", e.Kind, e.TriesLeft)
}

// Is makes errors.Is(err, ErrPINIncorrect) true.
func (e *WrongPINError) Is(target error) bool { return target == ErrPINIncorrect }
