package cps

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// ErrQuirkMismatch is matched by every *QuirkError: the card answered in a
// way that a wrong quirk explains (a PIN format it refuses, a reference it
// does not know, a file that is not where the quirks say).
var ErrQuirkMismatch = errors.New("cps: the card does not behave as the quirks say")

// QuirkError names the quirks-file keys that may be wrong for this card, so
// the error a user or a support desk sees points at the fix
// (docs/field-test.md). It wraps the card's status.
type QuirkError struct {
	Detail string   // what happened, e.g. "the card answered 6A 80 to VERIFY"
	Keys   []string // quirks-file keys to check
	Err    error
}

func (e *QuirkError) Error() string {
	var b strings.Builder
	b.WriteString("cps: ")
	b.WriteString(e.Detail)
	if len(e.Keys) > 0 {
		fmt.Fprintf(&b, ": the quirks %s may not match this card (run \"cpsagent probe\", see docs/field-test.md)", strings.Join(e.Keys, ", "))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *QuirkError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrQuirkMismatch) true.
func (e *QuirkError) Is(target error) bool { return target == ErrQuirkMismatch }

// Quirks-file keys grouped by the fact they describe.
var (
	keysPINFormat = []string{"pinEncoding", "pinPadLength", "pinPadByte"}
	keysPINRef    = []string{"verifyP2Pin", "verifyInMf"}
	keysPUKRef    = []string{"verifyP2Puk", "verifyInMf"}
	keysLostPIN   = []string{"selectClearsPin", "verifyInMf"}
)

// quirkHint wraps err in a *QuirkError naming keys when the card's status
// word is one of sws; other errors pass unchanged.
func quirkHint(err error, command string, keys []string, sws ...uint16) error {
	sw, ok := apdu.SW(err)
	if !ok || errors.Is(err, ErrQuirkMismatch) {
		return err
	}
	for _, s := range sws {
		if sw == s {
			return &QuirkError{Detail: fmt.Sprintf("the card answered %02X %02X to %s", byte(sw>>8), byte(sw), command), Keys: keys, Err: err}
		}
	}
	return err
}

// hintPINFormat: a PIN that passed the local checks (4 or 8 digits) can
// only be refused for its length or format when the encoding or padding
// quirks differ from the card's.
func hintPINFormat(err error, command string, extra ...string) error {
	return quirkHint(err, command, append(append([]string(nil), extra...), keysPINFormat...), apdu.SWWrongData, apdu.SWWrongLength)
}

// checkCertRole refuses a certificate read from a quirks path that cannot
// be the one the path is meant for: a CA certificate, or the other role's
// key usage (the authentication path holding a nonRepudiation-only
// certificate, the signature path one without nonRepudiation; card-cpx.md
// §2.4). keys are
// the quirks that name the paths (nil over contactless, whose paths are
// CPS3CLFacts). A DER that does not parse is left to the caller.
func checkCertRole(der []byte, role KeyRole, path string, keys []string) error {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil
	}
	signOnly := c.KeyUsage&x509.KeyUsageContentCommitment != 0 && c.KeyUsage&x509.KeyUsageDigitalSignature == 0
	var what string
	switch {
	case c.IsCA:
		what = "a CA certificate"
	case role == RoleAuthentication && signOnly:
		what = "the signature certificate (nonRepudiation only)"
	case role == RoleSignature && c.KeyUsage&x509.KeyUsageContentCommitment == 0:
		what = "a certificate without nonRepudiation key usage"
	default:
		return nil
	}
	want := "authentication"
	if role == RoleSignature {
		want = "signature"
	}
	return &QuirkError{Detail: fmt.Sprintf("the %s certificate path %s holds %s", want, path, what), Keys: keys}
}
