package apdu

import (
	"errors"
	"fmt"
)

// Status words (ISO 7816-4, as CPx cards use them; card-cpx.md §5.1).
const (
	SWSuccess                  uint16 = 0x9000
	SWEndOfFile                uint16 = 0x6282
	SWWrongLength              uint16 = 0x6700
	SWSecurityStatus           uint16 = 0x6982
	SWAuthBlocked              uint16 = 0x6983
	SWDataInvalidated          uint16 = 0x6984
	SWConditionsNotSatisfied   uint16 = 0x6985
	SWSMObjectsMissing         uint16 = 0x6987
	SWSMObjectsIncorrect       uint16 = 0x6988
	SWWrongData                uint16 = 0x6A80
	SWFunctionNotSupported     uint16 = 0x6A81
	SWFileNotFound             uint16 = 0x6A82
	SWRecordNotFound           uint16 = 0x6A83
	SWIncorrectP1P2            uint16 = 0x6A86
	SWReferencedDataNotFound   uint16 = 0x6A88
	SWWrongP1P2                uint16 = 0x6B00
	SWINSNotSupported          uint16 = 0x6D00
	SWCLANotSupported          uint16 = 0x6E00
	SWLogicalChannelNotSupp    uint16 = 0x6881
	SWNoPreciseDiagnosis       uint16 = 0x6F00
	SWVerificationFailedPrefix uint16 = 0x63C0
)

// Sentinel errors a *StatusError matches with errors.Is.
var (
	ErrSecurityStatus         = errors.New("security status not satisfied")
	ErrAuthBlocked            = errors.New("authentication method blocked")
	ErrDataInvalidated        = errors.New("referenced data invalidated")
	ErrConditionsNotSatisfied = errors.New("conditions of use not satisfied")
	ErrWrongData              = errors.New("incorrect data field")
	ErrFileNotFound           = errors.New("file or application not found")
	ErrIncorrectParameters    = errors.New("incorrect parameters P1-P2")
	ErrReferencedDataNotFound = errors.New("referenced data not found")
	ErrWrongLength            = errors.New("wrong length")
	ErrNotSupported           = errors.New("instruction or class not supported")
	ErrVerificationFailed     = errors.New("verification failed")
	ErrEndOfFile              = errors.New("end of file reached before reading Le bytes")
	ErrCardError              = errors.New("card error")
)

// StatusError is a non-success status word returned by the card.
type StatusError struct {
	SW uint16
}

func (e *StatusError) Error() string {
	if n, ok := e.TriesLeft(); ok {
		return fmt.Sprintf("card status %04X: verification failed, %d tries left", e.SW, n)
	}
	return fmt.Sprintf("card status %04X: %v", e.SW, e.sentinel())
}

// TriesLeft decodes 63 Cx. ok is false for other status words.
func (e *StatusError) TriesLeft() (n int, ok bool) {
	if e.SW&0xFFF0 == SWVerificationFailedPrefix {
		return int(e.SW & 0x000F), true
	}
	return 0, false
}

func (e *StatusError) sentinel() error {
	switch e.SW {
	case SWSecurityStatus:
		return ErrSecurityStatus
	case SWAuthBlocked:
		return ErrAuthBlocked
	case SWDataInvalidated:
		return ErrDataInvalidated
	case SWConditionsNotSatisfied:
		return ErrConditionsNotSatisfied
	case SWWrongData:
		return ErrWrongData
	case SWFileNotFound:
		return ErrFileNotFound
	case SWIncorrectP1P2, SWWrongP1P2:
		return ErrIncorrectParameters
	case SWReferencedDataNotFound:
		return ErrReferencedDataNotFound
	case SWWrongLength:
		return ErrWrongLength
	case SWINSNotSupported, SWCLANotSupported, SWFunctionNotSupported, SWLogicalChannelNotSupp:
		return ErrNotSupported
	case SWEndOfFile:
		return ErrEndOfFile
	}
	if _, ok := e.TriesLeft(); ok {
		return ErrVerificationFailed
	}
	return ErrCardError
}

// Is lets errors.Is match the sentinel for this status word.
func (e *StatusError) Is(target error) bool { return e.sentinel() == target }

// SW extracts the status word from an error chain, if any.
func SW(err error) (uint16, bool) {
	var se *StatusError
	if errors.As(err, &se) {
		return se.SW, true
	}
	return 0, false
}
