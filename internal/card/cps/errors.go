package cps

import (
	"errors"
	"fmt"
)

// Errors of the profile layer. The engine (package card) translates them to
// its public vocabulary; cps cannot import card, which imports cps for Quirks.
var (
	ErrPINFormat     = errors.New("cps: PIN format invalid")
	ErrPINBlocked    = errors.New("cps: PIN blocked")
	ErrPUKBlocked    = errors.New("cps: PUK blocked")
	ErrUnsupported   = errors.New("cps: card not supported")
	ErrNotPermitted  = errors.New("cps: operation not permitted on this card interface")
	ErrFormat        = errors.New("cps: unexpected card data")
	ErrNoCertificate = errors.New("cps: certificate not found on the card")
)

// WrongPINError is a rejected PIN (or PUK) with the tries the card says remain.
type WrongPINError struct {
	PUK       bool
	TriesLeft int
}

func (e *WrongPINError) Error() string {
	what := "PIN"
	if e.PUK {
		what = "PUK"
	}
	return fmt.Sprintf("cps: incorrect %s, %d tries left", what, e.TriesLeft)
}
