package cps

import "fmt"

// CheckPIN validates a secret locally, before any APDU: exactly digits
// ASCII digits (PIN 4, PUK 8; card-cpx.md §3). The error never quotes the
// secret.
func CheckPIN(pin []byte, digits int) error {
	if len(pin) != digits {
		return fmt.Errorf("%w: %d characters, want %d digits", ErrPINFormat, len(pin), digits)
	}
	for _, c := range pin {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: not only digits", ErrPINFormat)
		}
	}
	return nil
}

// EncodePIN checks pin (digits long) and encodes it as VERIFY data following
// the quirks: ASCII digits by default, or packed BCD (odd length padded with
// F); then padded with PINPadByte up to PINPadLength. Encoding and padding
// are unconfirmed on a real card (card-cpx.md §3, §8 item 1). The caller
// zeroes the result after use.
func EncodePIN(q Quirks, pin []byte, digits int) ([]byte, error) {
	if err := CheckPIN(pin, digits); err != nil {
		return nil, err
	}
	n := len(pin)
	if q.PINEncoding == "bcd" {
		n = (len(pin) + 1) / 2
	}
	if q.PINPadLength > n {
		n = q.PINPadLength
	}
	out := make([]byte, 0, n)
	switch q.PINEncoding {
	case "", "ascii":
		out = append(out, pin...)
	case "bcd":
		for i := 0; i < len(pin); i += 2 {
			lo := byte(0x0F)
			if i+1 < len(pin) {
				lo = pin[i+1] - '0'
			}
			out = append(out, (pin[i]-'0')<<4|lo)
		}
	default:
		return nil, fmt.Errorf("%w: unknown PIN encoding %q in quirks", ErrPINFormat, q.PINEncoding)
	}
	for len(out) < q.PINPadLength {
		out = append(out, q.PINPadByte)
	}
	return out, nil
}
