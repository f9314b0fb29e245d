package cps

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// ParseSNICC extracts the card serial number from EF.SN.ICC (3F00/D003,
// card-cpx.md §2.2): 5A 0A 80 25 00 00 01 99 21 38 45 0F. The Cryptolib rule
// is applied: take the PAN (tag 5A), require the ANS issuer prefix
// 80 25 00 00 01, drop the last byte (Luhn/padding nibble), print the rest in
// hex and strip the prefix → "99213845".
func ParseSNICC(b []byte) (string, error) {
	ts, err := apdu.ParseTLV(b)
	if err != nil {
		return "", fmt.Errorf("%w: EF.SN.ICC: %w", ErrFormat, err)
	}
	pan, ok := apdu.FindTLV(ts, 0x5A)
	if !ok {
		return "", fmt.Errorf("%w: EF.SN.ICC: no PAN (tag 5A)", ErrFormat)
	}
	v := pan.Value
	if len(v) < len(IssuerANS)+2 || len(v) > 16 {
		return "", fmt.Errorf("%w: EF.SN.ICC: PAN of %d bytes", ErrFormat, len(v))
	}
	if !bytes.Equal(v[:len(IssuerANS)], IssuerANS) {
		return "", fmt.Errorf("%w: EF.SN.ICC: issuer % X is not ANS", ErrFormat, v[:len(IssuerANS)])
	}
	return strings.ToUpper(hex.EncodeToString(v[len(IssuerANS) : len(v)-1])), nil
}
