package virtual

import (
	"encoding/asn1"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
)

// File identifiers of the PKCS#15 directory files. Only ODF and TokenInfo
// have standard names; the others are reached through the ODF.
const (
	fidAODF    uint16 = 0x4401
	fidPrKDF   uint16 = 0x4402
	fidCDF     uint16 = 0x4404
	fidContact uint16 = 0x7001
)

// efATR is EF.ATR verbatim from a real CPS3 (card-cpx.md §5.3): the leading
// 80 category byte, card service data, pre-issuing data, capabilities (no
// extended length, chaining), root AID, I/O buffer sizes, IAS-ECC OID, status.
var efATR = []byte{
	0x80,
	0x43, 0x01, 0xB8,
	0x46, 0x04, 0x04, 0xB0, 0xEC, 0xC1,
	0x47, 0x03, 0x94, 0x01, 0x80,
	0x4F, 0x08, 0x80, 0x25, 0x00, 0x00, 0x01, 0xFF, 0x01, 0x00,
	0xE0, 0x10, 0x02, 0x02, 0x01, 0x04, 0x02, 0x02, 0x01, 0x04, 0x02, 0x02, 0x01, 0x00, 0x02, 0x02, 0x01, 0x00,
	0x78, 0x08, 0x06, 0x06, 0x2B, 0x81, 0x22, 0xF8, 0x78, 0x02,
	0x82, 0x02, 0x90, 0x00,
}

// efDIRSize is the size of EF.DIR on a real CPS3 (card-cpx.md §2.2).
const efDIRSize = 101

// buildEFDIR returns the two application templates, each with its AID,
// label and a discretionary template carrying the contact AID (as
// iasecc-tool printed for a real card), zero-padded to 101 bytes.
//
// The contactless record comes first. OpenSC's sc_enum_apps moves known
// PKCS#15 applications to the head of its list with a swap that is only
// right when the first record is the one it must not bind to: with the
// contact record first, OpenSC 0.23 binds to "CPX IAS CL" and fails. The
// order printed by iasecc-tool for a real CPx (contact, then CL, after that
// swap) shows the card stores CL first.
func buildEFDIR() []byte {
	ddo := apdu.EncodeTLV(0x73, apdu.EncodeTLV(0x4F, cps.AIDPKCS15Contact))
	app := func(aid []byte, label string) []byte {
		return apdu.EncodeTLV(0x61, cat(apdu.EncodeTLV(0x4F, aid), apdu.EncodeTLV(0x50, []byte(label)), ddo))
	}
	out := cat(app(cps.AIDPKCS15Contactless, "CPX IAS CL"), app(cps.AIDPKCS15Contact, "CPX IAS"))
	if len(out) < efDIRSize {
		out = append(out, make([]byte, efDIRSize-len(out))...)
	}
	return out
}

// buildEFSN returns EF.SN.ICC: the PAN (tag 5A) made of the ANS issuer
// number and the 10-digit serial in BCD.
func buildEFSN(serial string) []byte {
	return apdu.EncodeTLV(0x5A, cat(cps.IssuerANS, bcdDigits(serial)))
}

// bcdDigits packs an even number of decimal digits, two per byte.
func bcdDigits(s string) []byte {
	out := make([]byte, 0, (len(s)+1)/2)
	for i := 0; i < len(s); i += 2 {
		hi := s[i] - '0'
		lo := byte(0x0F)
		if i+1 < len(s) {
			lo = s[i+1] - '0'
		}
		out = append(out, hi<<4|lo)
	}
	return out
}

// PKCS#15 identifiers of the keys and certificates: the application AID
// followed by 01 (signature) or 02 (authentication), as a real CPx shows
// them (e828bd080f8025000001ff001001, card-cpx.md §2.4).
var (
	idSign = cat(cps.AIDPKCS15Contact, []byte{0x01})
	idAuth = cat(cps.AIDPKCS15Contact, []byte{0x02})
)

// pkcs15Files holds the DER of the PKCS#15 directory files.
type pkcs15Files struct {
	odf, tokenInfo, aodf, prkdf, cdf []byte
}

// buildPKCS15 encodes ODF, TokenInfo, AODF, PrKDF and CDF for a card.
func buildPKCS15(cfg Config, signBits, authBits int) pkcs15Files {
	b := cfg.Behaviour
	appPath := func(fid uint16) []byte {
		return derPath(0x3F, 0x00, byte(b.AppDFFID>>8), byte(b.AppDFFID), byte(fid>>8), byte(fid))
	}

	var f pkcs15Files
	// ODF: privateKeys [0], certificates [4], authObjects [8].
	f.odf = cat(
		derTLV(0xA0, appPath(fidPrKDF)),
		derTLV(0xA4, appPath(fidCDF)),
		derTLV(0xA8, appPath(fidAODF)),
	)

	// TokenInfo: version 0, serial (last 8 bytes of the PAN, as OpenSC shows
	// for a real CPS3), manufacturer, label [0], flags readOnly|loginRequired,
	// supportedAlgorithms [2], lastUpdate [5].
	pan := cat(cps.IssuerANS, bcdDigits(cfg.Serial))
	label := cfg.Label
	if label == "" {
		label = "CPS3v3-" + cfg.Serial
	}
	algo := func(ref int64, mech int64, ops []int, oid asn1.ObjectIdentifier, algRef int64) []byte {
		return derSeq(derInt(ref), derInt(mech), []byte{0x05, 0x00}, derBits(ops...), derOID(oid), derInt(algRef))
	}
	const (
		opComputeSignature = 1
		opDecipher         = 5
		opHash             = 6
	)
	algos := cat(
		algo(1, 0x220, []int{opHash}, asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, int64(cps.AlgHashSHA1)),
		algo(2, 0x250, []int{opHash}, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, int64(cps.AlgHashSHA256)),
		algo(3, 0x06, []int{opComputeSignature}, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}, int64(cps.AlgSigSHA1)),
		algo(4, 0x40, []int{opComputeSignature}, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, int64(cps.AlgSigSHA256)),
		algo(5, 0x01, []int{opDecipher}, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}, int64(cps.AlgDecipherPKCS1)),
		algo(6, 0x01, []int{opComputeSignature}, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}, int64(cps.AlgAuthPKCS1)),
	)
	f.tokenInfo = derSeq(
		derInt(0),
		derTLV(0x04, pan[len(pan)-8:]),
		derTLV(0x0C, []byte(cfg.Manufacturer)),
		derTLV(0x80, []byte(label)),
		derBits(0, 1),
		derTLV(0xA2, algos),
		derTLV(0xA5, derTLV(0x18, []byte("20100316110000Z"))),
	)

	// AODF: the PIN (auth id 01, unblocked by auth id 02) and the PUK.
	pinType := int64(1) // ascii-numeric
	if b.PINEncoding == "bcd" {
		pinType = 0
	}
	pinAttrs := func(flags []int, minLen, storedLen, maxLen int, ref byte) []byte {
		parts := [][]byte{derBits(flags...), derTLV(0x0A, []byte{byte(pinType)}),
			derInt(int64(minLen)), derInt(int64(storedLen)), derInt(int64(maxLen)),
			derTLV(0x80, refInteger(ref))}
		if b.PINPadLength > 0 {
			parts = append(parts, derTLV(0x04, []byte{b.PINPadByte}))
		}
		parts = append(parts, derPath(0x3F, 0x00))
		return derSeq(parts...)
	}
	// minLength is the number of digits; storedLength the encoded length
	// (or the padded length); maxLength equals the stored length when the
	// card pads, else the number of digits.
	lengths := func(digits int) (minLen, stored, maxLen int) {
		if b.PINPadLength > 0 {
			return digits, b.PINPadLength, b.PINPadLength
		}
		return digits, encodedLen(b, digits), digits
	}
	const (
		pinCaseSensitive  = 0
		pinChangeDisabled = 2
		pinUnblockDisable = 3
		pinInitialized    = 4
		pinNeedsPadding   = 5
		pinUnblockingPin  = 6
	)
	pinFlags := []int{pinCaseSensitive, pinInitialized}
	pukFlags := []int{pinCaseSensitive, pinChangeDisabled, pinUnblockDisable, pinInitialized, pinUnblockingPin}
	if b.PINPadLength > 0 {
		pinFlags = append(pinFlags, pinNeedsPadding)
		pukFlags = append(pukFlags, pinNeedsPadding)
	}
	pmin, pstored, pmax := lengths(len(cfg.PIN))
	kmin, kstored, kmax := lengths(len(cfg.PUK))
	f.aodf = cat(
		derSeq(
			derSeq(derUTF8("Code porteur"), derBits(0, 1), derTLV(0x04, []byte{0x02})),
			derSeq(derTLV(0x04, []byte{0x01})),
			derTLV(0xA1, pinAttrs(pinFlags, pmin, pstored, pmax, b.chvP2(b.PINRef))),
		),
		derSeq(
			derSeq(derUTF8("Code de déblocage"), derBits(0)),
			derSeq(derTLV(0x04, []byte{0x02})),
			derTLV(0xA1, pinAttrs(pukFlags, kmin, kstored, kmax, b.chvP2(b.PUKRef))),
		),
	)

	// PrKDF: the two RSA keys, path = the application AID (an SDO in the
	// application DF), access rules pso_cds:01 / pso_decrypt:01 int_auth:01.
	const (
		usageDecrypt        = 1
		usageSign           = 2
		usageNonRepudiation = 9
		accSensitive        = 0
		accAlwaysSensitive  = 2
		accNeverExtract     = 3
		ruleCDS             = 5
		ruleDecrypt         = 7
		ruleIntAuth         = 9
	)
	keyPath := derSeq(derTLV(0xA1, cat(derTLV(0x4F, cps.AIDPKCS15Contact), derTLV(0x04, nil))))
	rule := func(mode int) []byte { return derSeq(derBits(mode), derTLV(0x04, []byte{0x01})) }
	prkey := func(label string, objFlags []int, rules []byte, id []byte, usage []int, ref byte, bits int) []byte {
		return derSeq(
			derSeq(derUTF8(label), derBits(objFlags...), derTLV(0x04, []byte{0x01}), derSeq(rules)),
			derSeq(derTLV(0x04, id), derBits(usage...), derBits(accSensitive, accAlwaysSensitive, accNeverExtract), derInt(int64(ref))),
			derTLV(0xA1, derSeq(keyPath, derInt(int64(bits)))),
		)
	}
	// The key references are those the card's MSE takes: 81 / 82 on a
	// CPS3, the CPS4 table's on a CPS4 (its PrKDF is where a real card says
	// them, card-cpx.md §8 item 6).
	sigRef, autRef := cps.KeySignature, cps.KeyAuthentication
	if cfg.Model == ModelCPS4 {
		sigRef, autRef = cps.CPS4Facts.SignKeyRef, cps.CPS4Facts.AuthKeyRef
	}
	f.prkdf = cat(
		prkey("CPS_PRIV_SIG", []int{0}, rule(ruleCDS), idSign, []int{usageNonRepudiation}, sigRef, signBits),
		prkey("CPS_PRIV_AUT", []int{0, 1}, cat(rule(ruleDecrypt), rule(ruleIntAuth)), idAuth, []int{usageDecrypt, usageSign}, autRef, authBits),
	)

	// CDF: the two certificates, public, linked to the keys by ID.
	cert := func(label string, id []byte, fid uint16) []byte {
		return derSeq(
			derSeq(derUTF8(label)),
			derSeq(derTLV(0x04, id)),
			derTLV(0xA1, derSeq(appPath(fid))),
		)
	}
	f.cdf = cat(
		cert("Certificat d'Authentification CPS", idAuth, b.AuthCertFID),
		cert("Certificat de Signature CPS", idSign, b.SignCertFID),
	)
	return f
}

// refInteger encodes a PKCS#15 Reference (INTEGER) of one byte: 81 needs a
// leading 00 to stay positive.
func refInteger(ref byte) []byte {
	if ref&0x80 != 0 {
		return []byte{0x00, ref}
	}
	return []byte{ref}
}

// DER helpers. Lengths and tags go through apdu.EncodeTLV (BER-TLV with
// definite lengths is DER for these structures).

func derTLV(tag uint32, v []byte) []byte { return apdu.EncodeTLV(tag, v) }

func derSeq(parts ...[]byte) []byte { return derTLV(0x30, cat(parts...)) }

func derUTF8(s string) []byte { return derTLV(0x0C, []byte(s)) }

func derInt(v int64) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err) // int64 always marshals
	}
	return b
}

func derOID(oid asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(oid)
	if err != nil {
		panic(err) // constant OIDs
	}
	return b
}

// derBits encodes a BIT STRING with the given bits set (bit 0 = most
// significant bit of the first byte), minimal length, DER unused-bit count.
func derBits(bits ...int) []byte {
	maxBit := -1
	for _, b := range bits {
		maxBit = max(maxBit, b)
	}
	if maxBit < 0 {
		return []byte{0x03, 0x01, 0x00}
	}
	n := maxBit/8 + 1
	v := make([]byte, n)
	for _, b := range bits {
		v[b/8] |= 0x80 >> (b % 8)
	}
	unused := byte(7 - maxBit%8)
	return derTLV(0x03, append([]byte{unused}, v...))
}

// derPath encodes a PKCS#15 Path with an absolute path.
func derPath(path ...byte) []byte { return derSeq(derTLV(0x04, path)) }

func cat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
