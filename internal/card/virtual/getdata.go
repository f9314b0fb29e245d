package virtual

import (
	"math/big"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// IAS-ECC SDO classes (OSC:iasecc-sdo.h).
const (
	sdoClassCHV    = 0x01
	sdoClassRSAPrv = 0x10
	sdoClassRSAPub = 0x20
	sdoClassSE     = 0x7B
)

// getData implements GET DATA 00 CB 3F FF for IAS-ECC SDOs and SEs:
//
//	4D L 70 L BF <class> <ref> L <tag> 80
//
// where <tag> is A0 (the DOCP), 7F41 / 7F48 / 7F49 (the SDO's public data)
// or 7B (an SE). The trailing 80 is IAS-ECC's "whole element" marker, not a
// BER length, so the request is parsed by hand.
func (c *Card) getData(cmd apdu.Command) response {
	if cmd.P1 != 0x3F || cmd.P2 != 0xFF {
		return sw(apdu.SWIncorrectP1P2)
	}
	class, ref, tag, ok := parseSDORequest(cmd.Data)
	if !ok {
		return sw(apdu.SWWrongData)
	}
	var payload []byte
	var st uint16
	switch class & 0x7F {
	case sdoClassCHV:
		payload, st = c.chvData(ref, tag)
	case sdoClassRSAPrv, sdoClassRSAPub:
		payload, st = c.keyData(class&0x7F, ref, tag)
	case sdoClassSE:
		payload, st = c.seData(ref, tag)
	default:
		st = apdu.SWReferencedDataNotFound
	}
	if st != apdu.SWSuccess {
		return sw(st)
	}
	return response{data: apdu.EncodeTLV(0x70, apdu.EncodeTLV(0xBF0000|uint32(class)<<8|uint32(ref), payload)), sw: apdu.SWSuccess}
}

func parseSDORequest(d []byte) (class, ref byte, tag uint32, ok bool) {
	if len(d) < 2 || d[0] != 0x4D || int(d[1]) != len(d)-2 {
		return 0, 0, 0, false
	}
	d = d[2:]
	if len(d) < 2 || d[0] != 0x70 || int(d[1]) != len(d)-2 {
		return 0, 0, 0, false
	}
	d = d[2:]
	if len(d) < 6 || d[0] != 0xBF || int(d[3]) != len(d)-4 {
		return 0, 0, 0, false
	}
	class, ref, d = d[1], d[2], d[4:]
	if d[len(d)-1] != 0x80 || len(d) > 3 {
		return 0, 0, 0, false
	}
	for _, b := range d[:len(d)-1] {
		tag = tag<<8 | uint32(b)
	}
	return class, ref, tag, true
}

// chvData answers for the PIN or the PUK; the MF must be current
// (card-cpx.md §3: in the application DF the card answers 6A 88).
func (c *Card) chvData(ref byte, tag uint32) ([]byte, uint16) {
	if c.curDF != c.mf {
		return nil, apdu.SWReferencedDataNotFound
	}
	ch := c.chvBySDO(ref & 0x1F)
	if ch == nil {
		return nil, apdu.SWReferencedDataNotFound
	}
	switch tag {
	case 0xA0:
		// DOCP verbatim from a real CPS3: 9A max tries, 9B tries left, (PUK)
		// 9D uses left, A1/8C contact ACL: CHANGE, VERIFY, RESET, PUT DATA,
		// GET DATA.
		var acl []byte
		body := cat(apdu.EncodeTLV(0x9A, []byte{byte(ch.maxTries)}), apdu.EncodeTLV(0x9B, []byte{byte(ch.tries)}))
		if ch.maxUses > 0 {
			body = append(body, apdu.EncodeTLV(0x9D, []byte{byte(ch.uses >> 8), byte(ch.uses)})...)
			acl = []byte{0xF3, 0xFF, 0x00, 0xFF, 0xFF, 0x00}
		} else {
			acl = []byte{0xF3, 0x00, 0x00, 0x13, 0xFF, 0x00}
		}
		body = append(body, apdu.EncodeTLV(0xA1, apdu.EncodeTLV(0x8C, acl))...)
		return apdu.EncodeTLV(0xA0, body), apdu.SWSuccess
	case 0x7F41:
		// Public data: 80 max size, 81 min size of the stored value.
		n := byte(len(encodeSecret(c.cfg.Behaviour, ch.value)))
		return apdu.EncodeTLV(0x7F41, cat(apdu.EncodeTLV(0x80, []byte{n}), apdu.EncodeTLV(0x81, []byte{n}))), apdu.SWSuccess
	}
	return nil, apdu.SWWrongData
}

// keyData answers for the RSA key SDOs of DF 0001, which must be current.
func (c *Card) keyData(class, ref byte, tag uint32) ([]byte, uint16) {
	if c.curDF != c.app {
		return nil, apdu.SWReferencedDataNotFound
	}
	k := c.keys[ref&0x1F]
	if k == nil || ref&0x60 != 0 {
		return nil, apdu.SWReferencedDataNotFound
	}
	switch {
	case tag == 0xA0:
		// DOCP: 80 size (in bytes, which OpenSC's PSO DST path expects),
		// A1/8C ACL with AMB 7B: PSO CDS, INTERNAL AUTHENTICATE, DECIPHER,
		// GENERATE, PUT DATA, GET DATA. 11 = user authentication in SE #1
		// (the PIN).
		scb := func(ok bool) byte {
			if ok {
				return 0x11
			}
			return 0xFF
		}
		acl := []byte{0x7B, scb(k.sign), scb(k.intAuth), scb(k.decipher), 0xFF, 0xFF, 0x00}
		if class == sdoClassRSAPub {
			acl = []byte{0x7B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00}
		}
		size := k.size()
		return apdu.EncodeTLV(0xA0, cat(
			apdu.EncodeTLV(0x80, []byte{byte(size >> 8), byte(size)}),
			apdu.EncodeTLV(0xA1, apdu.EncodeTLV(0x8C, acl)),
		)), apdu.SWSuccess
	case tag == 0x7F48 && class == sdoClassRSAPrv:
		// No public part to read: the real card answers "incorrect
		// parameters", which makes OpenSC fall back to the DOCP.
		return nil, apdu.SWIncorrectP1P2
	case tag == 0x7F49 && class == sdoClassRSAPub:
		pub := k.priv.PublicKey
		return apdu.EncodeTLV(0x7F49, cat(
			apdu.EncodeTLV(0x81, pub.N.Bytes()),
			apdu.EncodeTLV(0x82, big.NewInt(int64(pub.E)).Bytes()),
		)), apdu.SWSuccess
	}
	return nil, apdu.SWWrongData
}

// seData answers for the security environments of the MF: SE #1 names the
// PIN (user authentication for the keys), SE #3 the PUK (the PIN's RESET
// rule, read by OpenSC's unblock).
func (c *Card) seData(ref byte, tag uint32) ([]byte, uint16) {
	if c.curDF != c.mf {
		return nil, apdu.SWReferencedDataNotFound
	}
	if tag != uint32(sdoClassSE) {
		return nil, apdu.SWWrongData
	}
	var chvRef byte
	switch ref & 0x1F {
	case 1:
		chvRef = c.cfg.Behaviour.chvP2(c.pin.ref)
	case 3:
		chvRef = c.cfg.Behaviour.chvP2(c.puk.ref)
	default:
		return nil, apdu.SWReferencedDataNotFound
	}
	at := apdu.EncodeTLV(0xA4, cat(apdu.EncodeTLV(0x83, []byte{chvRef}), apdu.EncodeTLV(0x95, []byte{0x08})))
	return apdu.EncodeTLV(sdoClassSE, at), apdu.SWSuccess
}
