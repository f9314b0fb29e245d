package pinentry

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

const redacted = "[redacted]"

// A Secret holds a PIN or unblocking code. It never prints or marshals its
// content: String, GoString, Format (every verb), MarshalJSON, MarshalText and
// LogValue all give "[redacted]".
//
// The bytes are read with [Secret.Bytes] by the card layer, which must call
// [Secret.Wipe] as soon as the VERIFY command is built and sent. Secrets are
// created by [Client.GetPIN] (decoded straight from the pinentry answer) or by
// [SecretFromBytes].
type Secret struct {
	b []byte
}

// SecretFromBytes returns a Secret holding a copy of b. It exists for the card
// layer's own tests and tools (for example a virtual card test that needs a
// known PIN); production code gets its Secrets from a [Prompter]. The caller
// should clear b.
func SecretFromBytes(b []byte) *Secret {
	return &Secret{b: append(make([]byte, 0, len(b)), b...)}
}

// Bytes returns the secret bytes, not a copy. Do not retain or log them; they
// are zeroed by Wipe. A nil Secret returns nil.
func (s *Secret) Bytes() []byte {
	if s == nil {
		return nil
	}
	return s.b
}

// Len returns the length of the secret (0 after Wipe).
func (s *Secret) Len() int {
	if s == nil {
		return 0
	}
	return len(s.b)
}

// Equal reports, in constant time for equal lengths, whether s and o hold the
// same bytes (for example a new PIN and its confirmation).
func (s *Secret) Equal(o *Secret) bool {
	return subtle.ConstantTimeCompare(s.Bytes(), o.Bytes()) == 1
}

// Wipe zeroes the secret bytes and forgets them. It is safe to call more than
// once and on a nil Secret.
func (s *Secret) Wipe() {
	if s == nil {
		return
	}
	clear(s.b)
	s.b = nil
}

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return redacted }

// Format implements fmt.Formatter: every verb and flag prints "[redacted]".
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// Format errors of [ValidatePIN] and [ValidatePUK]. They never contain the
// code itself.
var (
	ErrPINFormat = errors.New("pinentry: the PIN must be exactly 4 digits")
	ErrPUKFormat = errors.New("pinentry: the unblocking code must be exactly 8 digits")
)

// PIN and PUK lengths of the CPS card.
const (
	PINLength = 4
	PUKLength = 8
)

// ValidatePIN checks that b is exactly 4 ASCII digits (the CPS code porteur).
// Call it before any VERIFY: a malformed PIN must not cost a card try.
func ValidatePIN(b []byte) error { return validateDigits(b, PINLength, ErrPINFormat) }

// ValidatePUK checks that b is exactly 8 ASCII digits (the CPS code de
// déblocage).
func ValidatePUK(b []byte) error { return validateDigits(b, PUKLength, ErrPUKFormat) }

func validateDigits(b []byte, n int, sentinel error) error {
	if len(b) != n {
		return fmt.Errorf("%w (got %d characters)", sentinel, len(b))
	}
	for i, c := range b {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w (character %d is not a digit)", sentinel, i+1)
		}
	}
	return nil
}
