package virtual

import (
	"crypto/subtle"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// chv is a card-holder verification SDO of the MF: the PIN or the PUK.
type chv struct {
	ref      byte
	value    string // digits
	maxTries int
	tries    int
	maxUses  int // 0: no usage counter
	uses     int
	verified bool
}

func (ch *chv) blocked() bool { return ch.tries == 0 || (ch.maxUses > 0 && ch.uses == 0) }

// encodedLen is the length of an encoded secret of n digits, before padding.
func encodedLen(b Behaviour, n int) int {
	if b.PINEncoding == "bcd" {
		return (n + 1) / 2
	}
	return n
}

// encodeSecret encodes digits as the card stores them.
func encodeSecret(b Behaviour, digits string) []byte {
	var out []byte
	if b.PINEncoding == "bcd" {
		out = bcdDigits(digits)
	} else {
		out = []byte(digits)
	}
	for len(out) < b.PINPadLength {
		out = append(out, b.PINPadByte)
	}
	return out
}

// decodeSecret is the inverse of encodeSecret; ok is false when data is not
// a well-formed secret of 4 to 8 digits.
func decodeSecret(b Behaviour, data []byte) (string, bool) {
	d := data
	if b.PINPadLength > 0 {
		if len(d) != b.PINPadLength {
			return "", false
		}
		for len(d) > 0 && d[len(d)-1] == b.PINPadByte {
			d = d[:len(d)-1]
		}
	}
	var digits []byte
	if b.PINEncoding == "bcd" {
		for i, v := range d {
			for j, n := range []byte{v >> 4, v & 0x0F} {
				switch {
				case n <= 9:
					digits = append(digits, '0'+n)
				case n == 0x0F && i == len(d)-1 && j == 1:
				default:
					return "", false
				}
			}
		}
	} else {
		digits = d
	}
	s := string(digits)
	if len(s) < 4 || len(s) > 8 || !allDigits(s) {
		return "", false
	}
	if subtle.ConstantTimeCompare(encodeSecret(b, s), data) != 1 {
		return "", false
	}
	return s, true
}

// chvByRef finds the PIN or the PUK from the P2 of VERIFY, CHANGE
// REFERENCE DATA or RESET RETRY COUNTER (80|ref with Behaviour.LocalCHVRefs).
func (c *Card) chvByRef(ref byte) *chv {
	b := c.cfg.Behaviour
	switch ref {
	case b.chvP2(c.pin.ref):
		return c.pin
	case b.chvP2(c.puk.ref):
		return c.puk
	}
	return nil
}

// chvBySDO finds the PIN or the PUK from its SDO reference (GET DATA).
func (c *Card) chvBySDO(ref byte) *chv {
	switch ref {
	case c.pin.ref:
		return c.pin
	case c.puk.ref:
		return c.puk
	}
	return nil
}

// chvP2 is the P2 that addresses the CHV of SDO reference ref.
func (b Behaviour) chvP2(ref byte) byte {
	if b.LocalCHVRefs {
		return ref | 0x80
	}
	return ref
}

// status is the answer to VERIFY without data: 90 00 when verified since
// the last reset, 69 83 when blocked, 63 Cx otherwise. It never consumes a
// try.
func (ch *chv) status() uint16 {
	switch {
	case ch.blocked():
		return apdu.SWAuthBlocked
	case ch.verified:
		return apdu.SWSuccess
	}
	return apdu.SWVerificationFailedPrefix | uint16(ch.tries)
}

// fail records a wrong secret.
func (c *Card) fail(ch *chv) uint16 {
	c.stats.WrongSecrets++
	if ch.tries > 0 {
		ch.tries--
	}
	ch.verified = false
	if ch == c.pin {
		c.consent = false
	}
	c.persistQuiet()
	if ch.tries == 0 && c.cfg.Behaviour.ThirdWrongPIN == "6983" {
		return apdu.SWAuthBlocked
	}
	return apdu.SWVerificationFailedPrefix | uint16(ch.tries)
}

// wrongLength answers a secret of the wrong length.
func (c *Card) wrongLength(ch *chv) uint16 {
	switch c.cfg.Behaviour.WrongLengthPIN {
	case "consume":
		return c.fail(ch)
	case "6700":
		return apdu.SWWrongLength
	}
	return apdu.SWWrongData
}

// verify implements VERIFY 00 20 00 <ref> [Lc secret].
func (c *Card) verify(cmd apdu.Command) response {
	if cmd.P1 != 0x00 {
		return sw(apdu.SWIncorrectP1P2)
	}
	ch := c.chvByRef(cmd.P2)
	if ch == nil || c.cfg.Behaviour.VerifyNeedsMF && c.curDF != c.mf {
		return sw(apdu.SWReferencedDataNotFound)
	}
	if len(cmd.Data) == 0 {
		// Case 1, or the T=0 header "00 20 00 01 00" (P3 = Lc = 0).
		if cmd.Le != apdu.NoLe && cmd.Le != apdu.MaxShortLe {
			return sw(apdu.SWWrongLength)
		}
		return sw(ch.status())
	}
	if cmd.Le != apdu.NoLe {
		return sw(apdu.SWWrongLength)
	}
	c.stats.Verifies++
	if ch.blocked() {
		return sw(apdu.SWAuthBlocked)
	}
	want := encodeSecret(c.cfg.Behaviour, ch.value)
	if len(cmd.Data) != len(want) {
		return sw(c.wrongLength(ch))
	}
	if subtle.ConstantTimeCompare(cmd.Data, want) != 1 {
		return sw(c.fail(ch))
	}
	ch.verified = true
	if ch == c.pin {
		c.consent = true
	}
	if ch.tries != ch.maxTries {
		ch.tries = ch.maxTries
		c.persistQuiet()
	}
	return sw(apdu.SWSuccess)
}

// changeReferenceData implements CHANGE REFERENCE DATA 00 24 00 <ref>
// old‖new. IAS-ECC has no implicit verification: the PIN must have been
// verified before (unless Behaviour.ChangeWithoutVerify), and the old value
// in the data is checked too. The PUK cannot be changed (SCB never).
func (c *Card) changeReferenceData(cmd apdu.Command) response {
	if cmd.P1 != c.cfg.Behaviour.ChangeP1 {
		return sw(apdu.SWIncorrectP1P2)
	}
	ch := c.chvByRef(cmd.P2)
	if ch == nil {
		return sw(apdu.SWReferencedDataNotFound)
	}
	if cmd.Le != apdu.NoLe {
		return sw(apdu.SWWrongLength)
	}
	if ch != c.pin {
		return sw(apdu.SWSecurityStatus)
	}
	if ch.blocked() {
		return sw(apdu.SWAuthBlocked)
	}
	if !ch.verified && !c.cfg.Behaviour.ChangeWithoutVerify {
		return sw(apdu.SWSecurityStatus)
	}
	if cmd.P1 == 0x01 {
		// New value only: the VERIFY just before is the check.
		if !ch.verified {
			return sw(apdu.SWSecurityStatus)
		}
		digits, ok := decodeSecret(c.cfg.Behaviour, cmd.Data)
		if !ok {
			return sw(c.wrongLength(ch))
		}
		ch.value, ch.tries = digits, ch.maxTries
		c.stats.PINChanges++
		c.persistQuiet()
		return sw(apdu.SWSuccess)
	}
	old := encodeSecret(c.cfg.Behaviour, ch.value)
	if len(cmd.Data) <= len(old) {
		return sw(c.wrongLength(ch))
	}
	if subtle.ConstantTimeCompare(cmd.Data[:len(old)], old) != 1 {
		return sw(c.fail(ch))
	}
	digits, ok := decodeSecret(c.cfg.Behaviour, cmd.Data[len(old):])
	if !ok {
		return sw(c.wrongLength(ch))
	}
	ch.value, ch.tries, ch.verified = digits, ch.maxTries, true
	c.stats.PINChanges++
	c.persistQuiet()
	return sw(apdu.SWSuccess)
}

// resetRetryCounter implements RESET RETRY COUNTER 00 2C 02 <ref> newPIN
// (or 00 2C 03 <ref>, counter only). The PIN's RESET SCB is "user
// authentication in SE #3", whose AT names the PUK: the PUK must have been
// verified. Each unblock consumes one of the PUK's 100 uses.
func (c *Card) resetRetryCounter(cmd apdu.Command) response {
	ch := c.chvByRef(cmd.P2)
	if ch == nil {
		return sw(apdu.SWReferencedDataNotFound)
	}
	if cmd.P1 != 0x02 && cmd.P1 != 0x03 {
		return sw(apdu.SWIncorrectP1P2)
	}
	if cmd.Le != apdu.NoLe {
		return sw(apdu.SWWrongLength)
	}
	if ch != c.pin {
		return sw(apdu.SWSecurityStatus)
	}
	if !c.puk.verified {
		return sw(apdu.SWSecurityStatus)
	}
	if c.puk.blocked() {
		return sw(apdu.SWAuthBlocked)
	}
	newValue := ch.value
	switch cmd.P1 {
	case 0x03:
		if len(cmd.Data) != 0 {
			return sw(apdu.SWWrongLength)
		}
	case 0x02:
		digits, ok := decodeSecret(c.cfg.Behaviour, cmd.Data)
		if !ok {
			if c.cfg.Behaviour.WrongLengthPIN == "6700" {
				return sw(apdu.SWWrongLength)
			}
			return sw(apdu.SWWrongData)
		}
		newValue = digits
	}
	ch.value, ch.tries, ch.verified = newValue, ch.maxTries, false
	c.puk.uses--
	if !c.cfg.Behaviour.KeepPUKAfterUnblock {
		c.puk.verified = false
	}
	c.stats.Unblocks++
	c.persistQuiet()
	return sw(apdu.SWSuccess)
}
