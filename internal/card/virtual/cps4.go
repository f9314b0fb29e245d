package virtual

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"math/big"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
)

// The CPS4 model (ModelCPS4): what the agent knows of the NXP ChipDoc
// applet, all of it from cps.CPS4Facts (one source, the ANS Cryptolib, so
// correcting that table changes the agent and this card together).
//
//   - Logical channels 0..3 (CLA b2-b1). Channel 0 is always open and holds
//     no ChipDoc applet after a reset (the CPS2ter compatibility application,
//     not modelled: 6D 00). A SELECT by AID on a closed channel opens it
//     (Behaviour.ChannelNeedsManage: 68 81, only MANAGE CHANNEL 00 70
//     opens); any other command on a closed channel answers 68 81; the
//     chaining bit is CLA 10 (11 on channel 1).
//   - SELECT 80 25 00 00 01 FF 01 00 selects the applet on the channel; its
//     file system is the CPS3 one (EF.SN.ICC at the table's FID, the PKCS#15
//     DF 0001 with the certificates at the table's paths). A SELECT of the
//     CPS2ter application or of the GlobalPlatform ISD deselects it.
//   - VERIFY as the CPS3 (with data: 63 Cx, 69 83; without: the status).
//   - MSE 81 B6 "91 02 <alg> <key|80>" (alg 28 only) and MSE 41 B8
//     "83 01 20"; wrong key 6A 88, wrong template 6A 80.
//   - PSO CDS 2A 9E 9A with the 32-byte hash as data → PKCS#1 v1.5
//     signature; PSO DECIPHER 2A 80 86 of exactly one modulus, no padding
//     indicator → the raw RSA result (masked in the trace). Both need the
//     PIN (69 82) and their MSE (69 85). No INTERNAL AUTHENTICATE (6D 00).
//   - CHANGE REFERENCE DATA P1 01, new PIN only, after a VERIFY of the PIN
//     or right after RESET RETRY COUNTER 2C 03 81 (case 1), which needs the
//     PUK verified and uses one of its uses.
//   - Reset and power-off close channels 1..3 and clear every state.

// Other applications a CPS4 answers SELECT for (card-cpx.md §2.1).
var (
	aidCPS2ter = []byte{0x80, 0x25, 0x00, 0x00, 0x01, 0xFF, 0x00, 0x02}
	aidGPISD   = []byte{0xA0, 0x00, 0x00, 0x01, 0x51, 0x00, 0x00}
)

const insManageChannel = 0x70

// cps4State is the CPS4 model's volatile state.
type cps4State struct {
	ch [4]chanState
	// pinReset: RESET RETRY COUNTER ran; CHANGE REFERENCE DATA may set the
	// new PIN without a VERIFY of the PIN.
	pinReset bool
	chainCh  byte // logical channel of Card.chain
}

// chanState is one logical channel.
type chanState struct {
	open         bool
	applet       bool // the ChipDoc applet is selected
	curDF, curEF *file
	signKey      *key // MSE 81 B6
	decKey       *key // MSE 41 B8
}

func (s *cps4State) reset() {
	*s = cps4State{}
	s.ch[0].open = true
}

func (c *Card) signKey() *key { return c.keys[cps.KeySignature&^0x80] }
func (c *Card) authKey() *key { return c.keys[cps.KeyAuthentication&^0x80] }

// processCPS4 is the CPS4 model's APDU processing.
func (c *Card) processCPS4(raw []byte) []byte {
	c.maskResp = false
	st := c.cps4
	cmd, err := apdu.ParseCommand(raw)
	if err != nil {
		c.pending, c.chain = nil, nil
		return swBytes(apdu.SWWrongLength)
	}
	if cmd.INS != apdu.InsGetResponse {
		c.pending, c.secret = nil, false
	}
	switch {
	case cmd.CLA&0x80 != 0 || cmd.CLA&0x20 != 0:
		return swBytes(apdu.SWCLANotSupported)
	case cmd.CLA&0x40 != 0: // further interindustry class: channels 4 to 19
		return swBytes(apdu.SWLogicalChannelNotSupp)
	case cmd.CLA&0x0C != 0:
		return swBytes(swSMNotSupported)
	}
	if cmd.INS&0xF0 == 0x60 || cmd.INS&0xF0 == 0x90 {
		return swBytes(apdu.SWINSNotSupported)
	}
	n := cmd.CLA & 0x03
	chained := cmd.CLA&apdu.ClaChaining != 0
	if cmd.INS == insManageChannel && !chained {
		return c.manageChannel(n, cmd)
	}
	chs := &st.ch[n]
	if !chs.open {
		if n == 0 || chained || cmd.INS != apdu.InsSelect || cmd.P1 != 0x04 || c.cfg.Behaviour.ChannelNeedsManage {
			return swBytes(apdu.SWLogicalChannelNotSupp)
		}
		*chs = chanState{open: true} // SELECT by name opens the channel
	}

	// Command chaining (PSO only), per channel.
	if chained {
		if cmd.INS != apdu.InsPerformSecurityOp || !chs.applet {
			c.chain = nil
			return swBytes(swChainingNotSupp)
		}
		if c.chain == nil || st.chainCh != n || c.chain.ins != cmd.INS || c.chain.p1 != cmd.P1 || c.chain.p2 != cmd.P2 {
			c.chain, st.chainCh = &chain{ins: cmd.INS, p1: cmd.P1, p2: cmd.P2}, n
		}
		if cmd.Le != apdu.NoLe || len(c.chain.data)+len(cmd.Data) > maxChainedData {
			c.chain = nil
			return swBytes(apdu.SWWrongLength)
		}
		c.chain.data = append(c.chain.data, cmd.Data...)
		return swBytes(apdu.SWSuccess)
	}
	if ch := c.chain; ch != nil {
		c.chain = nil
		if st.chainCh == n && ch.ins == cmd.INS && ch.p1 == cmd.P1 && ch.p2 == cmd.P2 {
			if len(ch.data)+len(cmd.Data) > maxChainedData {
				return swBytes(apdu.SWWrongLength)
			}
			cmd.Data = append(ch.data, cmd.Data...)
		}
	}

	if cmd.INS == apdu.InsGetResponse {
		return c.getResponse(cmd)
	}
	if cmd.INS == apdu.InsSelect && cmd.P1 == 0x04 {
		if r, done := c.selectApplication(chs, cmd); done {
			return c.shape(cmd, r)
		}
	}
	if !chs.applet {
		return swBytes(apdu.SWINSNotSupported)
	}

	// The file handlers of the CPS3 card work on the channel's current files.
	c.curDF, c.curEF = chs.curDF, chs.curEF
	defer func() { chs.curDF, chs.curEF = c.curDF, c.curEF }()
	var r response
	switch cmd.INS {
	case apdu.InsSelect:
		r = c.selectFile(cmd)
	case apdu.InsReadBinary:
		r = c.readBinary(cmd)
	case apdu.InsVerify:
		r = c.verify(cmd)
	case apdu.InsChangeReferenceData:
		r = c.cps4Change(cmd)
	case apdu.InsResetRetryCounter:
		r = c.cps4ResetRetryCounter(cmd)
	case apdu.InsManageSecurityEnv:
		r = c.cps4MSE(chs, cmd)
	case apdu.InsPerformSecurityOp:
		r = c.cps4PSO(chs, cmd)
	case apdu.InsGetChallenge:
		r = c.getChallenge(cmd)
	case 0xD6, 0xD7, 0x0E, 0xDA, 0xDB, 0x46, 0x47, 0xE0, 0xE4:
		r = sw(apdu.SWSecurityStatus)
	default:
		return swBytes(apdu.SWINSNotSupported) // INTERNAL AUTHENTICATE, GET DATA, …
	}
	return c.shape(cmd, r)
}

// selectApplication handles SELECT by name for the applications of the
// card; done is false for a DF name inside the applet (the PKCS#15 DF),
// which the file handler resolves.
func (c *Card) selectApplication(chs *chanState, cmd apdu.Command) (response, bool) {
	name := cmd.Data
	switch {
	case cmd.P2 != 0x00 && cmd.P2 != 0x04 && cmd.P2 != 0x0C:
		return sw(apdu.SWIncorrectP1P2), true
	case bytes.Equal(name, cps.CPS4Facts.AppletAID):
		*chs = chanState{open: true, applet: true, curDF: c.mf}
		if cmd.P2 == 0x04 {
			return response{data: c.mf.fcp(), sw: apdu.SWSuccess}, true
		}
		return sw(apdu.SWSuccess), true
	case bytes.Equal(name, aidCPS2ter), bytes.Equal(name, aidGPISD):
		*chs = chanState{open: true}
		return sw(apdu.SWSuccess), true
	case !chs.applet:
		return sw(apdu.SWFileNotFound), true
	}
	return response{}, false
}

// manageChannel implements MANAGE CHANNEL on channel n: P1 00 opens (P2 00:
// the card picks and returns the number, Le 01; P2 01..03: that channel),
// P1 80 closes channel P2.
func (c *Card) manageChannel(n byte, cmd apdu.Command) []byte {
	st := c.cps4
	if !st.ch[n].open {
		return swBytes(apdu.SWLogicalChannelNotSupp)
	}
	if len(cmd.Data) > 0 {
		return swBytes(apdu.SWWrongLength)
	}
	switch {
	case cmd.P1 == 0x00 && cmd.P2 == 0x00:
		if cmd.Le != 1 {
			return swBytes(apdu.SWWrongLength)
		}
		for i := byte(1); i < byte(len(st.ch)); i++ {
			if !st.ch[i].open {
				st.ch[i] = chanState{open: true}
				return []byte{i, 0x90, 0x00}
			}
		}
		return swBytes(apdu.SWFunctionNotSupported)
	case cmd.P1 == 0x00 && int(cmd.P2) < len(st.ch):
		if cmd.Le != apdu.NoLe {
			return swBytes(apdu.SWWrongLength)
		}
		st.ch[cmd.P2] = chanState{open: true}
		return swBytes(apdu.SWSuccess)
	case cmd.P1 == 0x80 && cmd.P2 != 0 && int(cmd.P2) < len(st.ch):
		if cmd.Le != apdu.NoLe {
			return swBytes(apdu.SWWrongLength)
		}
		st.ch[cmd.P2] = chanState{}
		return swBytes(apdu.SWSuccess)
	}
	return swBytes(apdu.SWIncorrectP1P2)
}

// cps4MSE: MSE SET 81 B6 "91 02 <alg> <key|80>" for the signature, 41 B8
// "83 01 <key>" for the authentication key; F3 restores (empties).
func (c *Card) cps4MSE(chs *chanState, cmd apdu.Command) response {
	f := cps.CPS4Facts
	if cmd.Le != apdu.NoLe {
		return sw(apdu.SWWrongLength)
	}
	d := cmd.Data
	switch {
	case cmd.P1 == 0xF3:
		chs.signKey, chs.decKey = nil, nil
		return sw(apdu.SWSuccess)
	case cmd.P1 == f.SignMSEP1 && cmd.P2 == f.SignMSEP2:
		if len(d) != 4 || d[0] != f.SignMSETag || d[1] != 0x02 || d[2] != f.SignAlgSHA256 {
			return sw(apdu.SWWrongData)
		}
		if d[3] != f.SignKeyRef|f.SignKeyHashBit {
			return sw(apdu.SWReferencedDataNotFound)
		}
		chs.signKey = c.signKey()
		return sw(apdu.SWSuccess)
	case cmd.P1 == f.AuthMSEP1 && cmd.P2 == f.AuthMSEP2:
		if len(d) != 3 || d[0] != f.AuthMSETag || d[1] != 0x01 {
			return sw(apdu.SWWrongData)
		}
		if d[2] != f.AuthKeyRef {
			return sw(apdu.SWReferencedDataNotFound)
		}
		chs.decKey = c.authKey()
		return sw(apdu.SWSuccess)
	}
	return sw(apdu.SWIncorrectP1P2)
}

// cps4PSO: COMPUTE DIGITAL SIGNATURE of a SHA-256 hash given as data, and
// DECIPHER (raw RSA) of one modulus-sized block.
func (c *Card) cps4PSO(chs *chanState, cmd apdu.Command) response {
	switch {
	case cmd.P1 == 0x9E && cmd.P2 == 0x9A:
		k := chs.signKey
		if k == nil {
			return sw(apdu.SWConditionsNotSatisfied)
		}
		if !c.pin.verified || (c.cfg.Behaviour.SignatureNeedsFreshVerify && !c.consent) {
			return sw(apdu.SWSecurityStatus)
		}
		if len(cmd.Data) != hashSHA256.size() {
			return sw(apdu.SWWrongData)
		}
		if cmd.Le != apdu.NoLe && cmd.Le != k.size() && cmd.Le != apdu.MaxShortLe {
			return sw(swWrongLePrefix | uint16(k.size()&0xFF))
		}
		sig, err := rsa.SignPKCS1v15(nil, k.priv, crypto.SHA256, cmd.Data)
		if err != nil {
			return sw(apdu.SWNoPreciseDiagnosis)
		}
		c.consent = false
		c.stats.Signatures++
		return response{data: sig, sw: apdu.SWSuccess}
	case cmd.P1 == 0x80 && cmd.P2 == 0x86:
		k := chs.decKey
		if k == nil {
			return sw(apdu.SWConditionsNotSatisfied)
		}
		if !c.pin.verified {
			return sw(apdu.SWSecurityStatus)
		}
		if len(cmd.Data) != k.size() {
			return sw(apdu.SWWrongData)
		}
		out, ok := rsaRaw(k.priv, cmd.Data)
		if !ok {
			return sw(apdu.SWWrongData)
		}
		c.stats.Deciphers++
		return response{data: out, sw: apdu.SWSuccess, secret: true}
	}
	return sw(apdu.SWIncorrectP1P2)
}

// rsaRaw is the RSA private-key operation without padding: in^d mod n, as
// many bytes as the modulus. On a type-1 block built by the host, the
// result is a PKCS#1 v1.5 signature.
func rsaRaw(priv *rsa.PrivateKey, in []byte) ([]byte, bool) {
	k := (priv.N.BitLen() + 7) / 8
	m := new(big.Int).SetBytes(in)
	if m.Cmp(priv.N) >= 0 {
		return nil, false
	}
	return new(big.Int).Exp(m, priv.D, priv.N).FillBytes(make([]byte, k)), true
}

// cps4Change: CHANGE REFERENCE DATA P1 01 with the new PIN only, after a
// VERIFY of the PIN or a RESET RETRY COUNTER.
func (c *Card) cps4Change(cmd apdu.Command) response {
	f, st := cps.CPS4Facts, c.cps4
	if cmd.P1 != f.ChangeP1 {
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
	if !st.pinReset {
		if ch.blocked() {
			return sw(apdu.SWAuthBlocked)
		}
		if !ch.verified {
			return sw(apdu.SWSecurityStatus)
		}
	}
	digits, ok := decodeSecret(c.cfg.Behaviour, cmd.Data)
	if !ok {
		if c.cfg.Behaviour.WrongLengthPIN == "6700" {
			return sw(apdu.SWWrongLength)
		}
		return sw(apdu.SWWrongData)
	}
	if !st.pinReset {
		c.stats.PINChanges++
	}
	ch.value, ch.tries, ch.verified = digits, ch.maxTries, true
	st.pinReset = false
	c.persistQuiet()
	return sw(apdu.SWSuccess)
}

// cps4ResetRetryCounter: 2C 03 <PIN|80>, case 1, with the PUK verified.
func (c *Card) cps4ResetRetryCounter(cmd apdu.Command) response {
	f := cps.CPS4Facts
	if cmd.P1 != f.UnblockP1 {
		return sw(apdu.SWIncorrectP1P2)
	}
	if cmd.P2 != c.pin.ref|f.UnblockRefBit {
		return sw(apdu.SWReferencedDataNotFound)
	}
	if len(cmd.Data) != 0 || cmd.Le != apdu.NoLe {
		return sw(apdu.SWWrongLength)
	}
	if !c.puk.verified {
		return sw(apdu.SWSecurityStatus)
	}
	if c.puk.blocked() {
		return sw(apdu.SWAuthBlocked)
	}
	c.pin.tries, c.pin.verified = c.pin.maxTries, false
	c.puk.uses--
	if !c.cfg.Behaviour.KeepPUKAfterUnblock {
		c.puk.verified = false
	}
	c.cps4.pinReset = true
	c.stats.Unblocks++
	c.persistQuiet()
	return sw(apdu.SWSuccess)
}
