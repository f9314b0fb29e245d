package cps

import (
	"bytes"
	"fmt"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// ATRsCPS4 are the CPS4 ATRs, matched exactly (CPS4Facts.ATRs, card-cpx.md §1).
var ATRsCPS4 = CPS4Facts.ATRs

// GenerationUnknown names a card whose ATR matches no CPx entry.
const GenerationUnknown = "unknown"

// CardType is what the ATR tells about a card.
type CardType struct {
	Generation  string // GenerationCPS3, GenerationCPS3CL, GenerationCPS4 or GenerationUnknown
	Supported   bool   // a Profile exists for it
	Contactless bool
}

// MatchATR compares atr with ref under mask (same length required).
func MatchATR(atr, ref, mask []byte) bool {
	if len(atr) != len(ref) || len(mask) != len(ref) {
		return false
	}
	for i := range ref {
		if atr[i]&mask[i] != ref[i]&mask[i] {
			return false
		}
	}
	return true
}

// Recognise classifies a card from its ATR alone (card-cpx.md §1): CPS3
// contact and contactless with the masks both drivers use, CPS4 by exact
// match (CPS4Facts). Anything else is GenerationUnknown and unsupported.
func Recognise(atr []byte) CardType {
	// CPS4 first: the CPS3 contact mask also matches the CPS4 release
	// candidate's T=0 ATR 3B DC 18 FF 00 00 12 25 00 64 80 00 04 01 00 90 00.
	for _, a := range CPS4Facts.ATRs {
		if bytes.Equal(atr, a) {
			return CardType{Generation: GenerationCPS4, Supported: true}
		}
	}
	switch {
	case MatchATR(atr, ATRCPS3Contact, ATRCPS3ContactMask):
		return CardType{Generation: GenerationCPS3, Supported: true}
	case MatchATR(atr, ATRCPS3CL, ATRCPS3CLMask):
		return CardType{Generation: GenerationCPS3CL, Supported: true, Contactless: true}
	}
	return CardType{Generation: GenerationUnknown}
}

// KeyRole names one of the two card keys.
type KeyRole int

const (
	RoleAuthentication KeyRole = iota // CPS_PRIV_AUT, key 0x82
	RoleSignature                     // CPS_PRIV_SIG, key 0x81
)

// CHVState is a PIN or PUK counter as the card reports it.
type CHVState struct {
	TriesLeft int  // -1 when unknown (e.g. already verified)
	MaxTries  int  // from the profile (or the DOCP)
	Blocked   bool // 69 83, or 63 C0 when Quirks.BlockedOn63C0
	Verified  bool // VERIFY without data answered 90 00
	UsesLeft  int  // PUK only: unblocks left; -1 when unknown
}

// Profile is one card family's flows over the IAS-ECC (or another) command
// set. The engine calls these inside one transport transaction each; they
// assume nothing about the card's current DF on entry. Methods taking a
// secret validate it before sending any APDU and never retain it.
type Profile interface {
	Type() CardType
	// ReadSerial reads the card serial number (EF.SN.ICC for CPS3).
	ReadSerial(ch *apdu.Channel) (string, error)
	// ReadCertificates returns the DER authentication and signature certificates.
	ReadCertificates(ch *apdu.Channel) (auth, sign []byte, err error)
	// PINStatus reads the PIN counter without consuming a try.
	PINStatus(ch *apdu.Channel) (CHVState, error)
	// PUKStatus reads the PUK counter (and uses left) without consuming a try.
	PUKStatus(ch *apdu.Channel) (CHVState, error)
	// Authenticate verifies pin then signs data (PKCS#1 v1.5, card pads).
	Authenticate(ch *apdu.Channel, pin, data []byte) ([]byte, error)
	// Sign verifies pin then signs SHA-256(msg), the card finishing the hash.
	Sign(ch *apdu.Channel, pin, msg []byte) ([]byte, error)
	// ChangePIN verifies oldPIN then replaces it with newPIN.
	ChangePIN(ch *apdu.Channel, oldPIN, newPIN []byte) error
	// Unblock verifies puk then sets newPIN and resets its counter.
	Unblock(ch *apdu.Channel, puk, newPIN []byte) error
}

// AuthKeySizer is implemented by profiles that pad the authentication
// input on the host (CPS4): the engine tells them the modulus size of the
// authentication certificate before Authenticate.
type AuthKeySizer interface {
	SetAuthKeyBits(bits int)
}

// NewProfile returns the Profile for a card, chosen from its ATR, or
// ErrUnsupported. CPS3 contact and contactless cards get the IAS-ECC
// profile (CPS3), CPS4 cards the ChipDoc profile (CPS4) with q.CPS4Table()
// (CPS4Facts unless the quirks file overrides rows);
// the PIN encoding quirks apply to both.
func NewProfile(atr []byte, q Quirks) (Profile, error) {
	ct := Recognise(atr)
	if !ct.Supported {
		return nil, fmt.Errorf("%w: %s card (ATR %s)", ErrUnsupported, ct.Generation, apdu.Hex(atr))
	}
	if ct.Generation == GenerationCPS4 {
		return NewCPS4(q, q.CPS4Table()), nil
	}
	return &CPS3{Quirks: q, CardType: ct}, nil
}
