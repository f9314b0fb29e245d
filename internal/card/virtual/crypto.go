package virtual

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/binary"
	"math/big"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
)

// CRT tags of MSE SET (P2).
const (
	crtAT  = 0xA4
	crtHT  = 0xAA
	crtDST = 0xB6
	crtCT  = 0xB8
)

// manageSecurityEnv implements MSE SET (P1 41) for HT, DST, AT and CT, and
// MSE RESTORE (P1 F3), which empties the environment. Tags 80 (algorithm)
// and 84 (key reference) may come in either order.
func (c *Card) manageSecurityEnv(cmd apdu.Command) response {
	if cmd.Le != apdu.NoLe {
		return sw(apdu.SWWrongLength)
	}
	if cmd.P1 == 0xF3 {
		if len(cmd.Data) != 0 {
			return sw(apdu.SWWrongLength)
		}
		c.se = securityEnv{}
		return sw(apdu.SWSuccess)
	}
	if cmd.P1 != 0x41 {
		return sw(apdu.SWIncorrectP1P2)
	}
	switch cmd.P2 {
	case crtHT, crtDST, crtAT, crtCT:
	default:
		return sw(apdu.SWIncorrectP1P2)
	}
	var alg, keyRef []byte
	tlvs, err := apdu.ParseTLV(cmd.Data)
	if err != nil || len(tlvs) == 0 {
		return sw(apdu.SWWrongData)
	}
	for _, t := range tlvs {
		switch {
		case t.Tag == 0x80 && alg == nil && len(t.Value) == 1:
			alg = t.Value
		case t.Tag == 0x84 && keyRef == nil && len(t.Value) == 1 && cmd.P2 != crtHT:
			keyRef = t.Value
		default:
			return sw(apdu.SWWrongData)
		}
	}
	if alg == nil {
		return sw(apdu.SWWrongData)
	}
	if cmd.P2 == crtHT {
		switch hashAlg(alg[0]) {
		case hashSHA1, hashSHA256:
		default:
			return sw(apdu.SWWrongData)
		}
		c.se.ht = hashAlg(alg[0])
		c.se.hash, c.se.hashOver = nil, false // a new hash template drops the old hash
		return sw(apdu.SWSuccess)
	}
	if keyRef == nil {
		return sw(apdu.SWWrongData)
	}
	// Keys are local SDOs of DF 0001: reference 80|n, DF 0001 current.
	k := c.keys[keyRef[0]&^0x80]
	if keyRef[0]&0x80 == 0 || k == nil || c.curDF != c.app {
		return sw(apdu.SWReferencedDataNotFound)
	}
	var valid bool
	switch cmd.P2 {
	case crtDST:
		valid = alg[0] == cps.AlgSigSHA256 || alg[0] == cps.AlgSigSHA1
	case crtAT:
		valid = alg[0] == cps.AlgAuthPKCS1
	case crtCT:
		valid = alg[0] == cps.AlgDecipherPKCS1
	}
	if !valid {
		return sw(apdu.SWWrongData)
	}
	t := &crt{key: k, alg: alg[0]}
	switch cmd.P2 {
	case crtDST: // keeps a pending hash (the Cryptolib hashes before MSE DST)
		c.se.dst = t
	case crtAT:
		c.se.at = t
	case crtCT:
		c.se.ct = t
	}
	return sw(apdu.SWSuccess)
}

// performSecurityOp dispatches PSO HASH, COMPUTE DIGITAL SIGNATURE and
// DECIPHER.
func (c *Card) performSecurityOp(cmd apdu.Command) response {
	switch {
	case cmd.P1 == 0x90 && cmd.P2 == 0xA0:
		return c.psoHash(cmd)
	case cmd.P1 == 0x9E && cmd.P2 == 0x9A:
		return c.psoCDS(cmd)
	case cmd.P1 == 0x80 && cmd.P2 == 0x86:
		return c.psoDecipher(cmd)
	}
	return sw(apdu.SWIncorrectP1P2)
}

// psoHash finishes a hash on the card: 90 L <state><bit count> (or 90 00)
// then 80 n <last bytes> (card-cpx.md §4.2).
func (c *Card) psoHash(cmd apdu.Command) response {
	if cmd.Le != apdu.NoLe {
		return sw(apdu.SWWrongLength)
	}
	alg := c.se.ht
	if alg == 0 {
		return sw(apdu.SWConditionsNotSatisfied)
	}
	d := cmd.Data
	if len(d) < 4 || d[0] != 0x90 {
		return sw(apdu.SWWrongData)
	}
	l := int(d[1])
	if l != 0 && l != alg.size()+8 || len(d) < 2+l+2 {
		return sw(apdu.SWWrongData)
	}
	var state []byte
	var count uint64
	if l > 0 {
		state = d[2 : 2+alg.size()]
		count = binary.BigEndian.Uint64(d[2+alg.size() : 2+l])
	}
	d = d[2+l:]
	if d[0] != 0x80 || int(d[1]) != len(d)-2 || len(d)-2 > hashBlock {
		return sw(apdu.SWWrongData)
	}
	tail := d[2:]
	if len(tail) == 0 && c.cfg.Behaviour.RejectEmptyHashTail {
		return sw(apdu.SWWrongData)
	}
	digest, ok := finishHash(alg, state, count, tail)
	if !ok {
		return sw(apdu.SWWrongData)
	}
	c.se.hash, c.se.hashAlg, c.se.hashOver = digest, alg, true
	c.stats.Hashes++
	return sw(apdu.SWSuccess)
}

// psoCDS computes a PKCS#1 v1.5 signature with the DST key over the hash
// left by PSO HASH, or over a hash given as data (the Cryptolib path).
func (c *Card) psoCDS(cmd apdu.Command) response {
	dst := c.se.dst
	if dst == nil || !dst.key.sign {
		return sw(apdu.SWConditionsNotSatisfied)
	}
	if !c.pin.verified || (c.cfg.Behaviour.SignatureNeedsFreshVerify && !c.consent) {
		return sw(apdu.SWSecurityStatus)
	}
	alg, h := hashSHA256, crypto.SHA256
	if dst.alg == cps.AlgSigSHA1 {
		alg, h = hashSHA1, crypto.SHA1
	}
	var digest []byte
	switch {
	case len(cmd.Data) > 0:
		if c.cfg.Behaviour.RejectHashInCDS || len(cmd.Data) != alg.size() {
			return sw(apdu.SWWrongData)
		}
		digest = cmd.Data
	case c.se.hashOver && c.se.hashAlg == alg:
		digest = c.se.hash
	default:
		return sw(apdu.SWConditionsNotSatisfied)
	}
	if cmd.Le != apdu.NoLe && cmd.Le != dst.key.size() {
		return sw(swWrongLePrefix | uint16(dst.key.size()&0xFF))
	}
	c.se.hash, c.se.hashOver = nil, false
	c.consent = false
	sig, err := rsa.SignPKCS1v15(nil, dst.key.priv, h, digest)
	if err != nil {
		return sw(apdu.SWNoPreciseDiagnosis)
	}
	c.stats.Signatures++
	return response{data: sig, sw: apdu.SWSuccess}
}

// internalAuthenticate signs caller data with PKCS#1 v1.5 type 1 padding
// (the data is typically a DigestInfo), at most 40 % of the modulus.
func (c *Card) internalAuthenticate(cmd apdu.Command) response {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return sw(apdu.SWIncorrectP1P2)
	}
	at := c.se.at
	if at == nil || !at.key.intAuth {
		return sw(apdu.SWConditionsNotSatisfied)
	}
	if !c.pin.verified {
		return sw(apdu.SWSecurityStatus)
	}
	if len(cmd.Data) == 0 {
		return sw(apdu.SWWrongLength)
	}
	if len(cmd.Data) > at.key.size()*40/100 {
		return sw(apdu.SWWrongData)
	}
	if cmd.Le != apdu.NoLe && cmd.Le != at.key.size() {
		return sw(swWrongLePrefix | uint16(at.key.size()&0xFF))
	}
	sig, err := rsa.SignPKCS1v15(nil, at.key.priv, 0, cmd.Data)
	if err != nil {
		return sw(apdu.SWNoPreciseDiagnosis)
	}
	c.stats.InternalAuths++
	return response{data: sig, sw: apdu.SWSuccess}
}

// psoDecipher decrypts 81 <cryptogram> (PKCS#1 v1.5 type 2) with the CT key.
// The 257-byte body arrives with command chaining.
func (c *Card) psoDecipher(cmd apdu.Command) response {
	ct := c.se.ct
	if ct == nil || !ct.key.decipher {
		return sw(apdu.SWConditionsNotSatisfied)
	}
	if !c.pin.verified {
		return sw(apdu.SWSecurityStatus)
	}
	k := ct.key
	if len(cmd.Data) != 1+k.size() || cmd.Data[0] != 0x81 {
		return sw(apdu.SWWrongData)
	}
	plain, ok := rsaDecryptPKCS1(k.priv, cmd.Data[1:])
	if !ok {
		return sw(apdu.SWWrongData)
	}
	c.stats.Deciphers++
	return response{data: plain, sw: apdu.SWSuccess, secret: true}
}

// rsaDecryptPKCS1 is the card's own RSA decryption and type-2 unpadding
// (crypto/rsa's PKCS#1 v1.5 decryption is deprecated for hosts; a card has
// no choice).
func rsaDecryptPKCS1(priv *rsa.PrivateKey, ct []byte) ([]byte, bool) {
	k := (priv.N.BitLen() + 7) / 8
	c := new(big.Int).SetBytes(ct)
	if c.Cmp(priv.N) >= 0 {
		return nil, false
	}
	m := new(big.Int).Exp(c, priv.D, priv.N)
	em := m.FillBytes(make([]byte, k))
	if subtle.ConstantTimeByteEq(em[0], 0) != 1 || subtle.ConstantTimeByteEq(em[1], 2) != 1 {
		return nil, false
	}
	i := bytes.IndexByte(em[2:], 0)
	if i < 8 { // at least 8 bytes of non-zero padding
		return nil, false
	}
	return em[2+i+1:], true
}
