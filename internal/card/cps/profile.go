// Package cps holds the CPx card profile: what the agent knows about French
// health-professional cards (AIDs, files, key and PIN references, ATRs) and
// the read/authenticate/sign flows built on the IAS-ECC commands.
//
// Every fact that card-cpx.md marks [?] (unconfirmed on a real card) lives in
// the Quirks table below and nowhere else, so a field report can correct it
// in one place, and a JSON quirks file can change it without a rebuild
// (quirksfile.go: shipped defaults in quirks.json, overridden by the machine
// policy directory's quirks.json).
package cps

// Generation names a card family as reported to portals (identity.card.generation).
const (
	GenerationCPS3   = "CPS3"
	GenerationCPS3CL = "CPS3-CL" // contactless interface: identity only, no signature
	GenerationCPS4   = "CPS4"
)

// ATRs and masks (card-cpx.md §1).
var (
	ATRCPS3Contact     = []byte{0x3B, 0xAC, 0x00, 0x40, 0x2A, 0x00, 0x12, 0x25, 0x00, 0x64, 0x80, 0x00, 0x03, 0x10, 0x00, 0x90, 0x00}
	ATRCPS3ContactMask = []byte{0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF}
	ATRCPS3CL          = []byte{0x3B, 0x8F, 0x80, 0x01, 0x00, 0x31, 0xB8, 0x64, 0x04, 0xB0, 0xEC, 0xC1, 0x73, 0x94, 0x01, 0x80, 0x82, 0x90, 0x00, 0x0E}
	ATRCPS3CLMask      = []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xC0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}
)

// Application identifiers (card-cpx.md §2.1).
var (
	AIDPKCS15Contact     = []byte{0xE8, 0x28, 0xBD, 0x08, 0x0F, 0x80, 0x25, 0x00, 0x00, 0x01, 0xFF, 0x00, 0x10}
	AIDPKCS15Contactless = []byte{0xE8, 0x28, 0xBD, 0x08, 0x0F, 0x80, 0x25, 0x00, 0x00, 0x01, 0xFF, 0x00, 0x20}
	AIDIASECCRoot        = []byte{0x80, 0x25, 0x00, 0x00, 0x01, 0xFF, 0x01, 0x00}
	// IssuerANS prefixes EF.SN.ICC's PAN and the card serial number.
	IssuerANS = []byte{0x80, 0x25, 0x00, 0x00, 0x01}
)

// File identifiers confirmed by real-card traces (card-cpx.md §2.2).
const (
	FIDMF       uint16 = 0x3F00
	FIDEFATR    uint16 = 0x2F01 // 57 bytes, leading 0x80 category byte
	FIDEFDIR    uint16 = 0x2F00 // 101 bytes
	FIDEFSNICC  uint16 = 0xD003 // 12 bytes: 5A 0A 80 25 00 00 01 + 5 bytes
	FIDAppDF    uint16 = 0x0001 // DF of the contact PKCS#15 application
	FIDODF      uint16 = 0x5031
	FIDTokenInf uint16 = 0x5032
)

// Key and algorithm references (card-cpx.md §4).
const (
	KeySignature      byte = 0x81 // CPS_PRIV_SIG, non-repudiation, RSA-2048
	KeyAuthentication byte = 0x82 // CPS_PRIV_AUT, RSA-2048

	AlgHashSHA256    byte = 0x40 // MSE SET HT
	AlgHashSHA1      byte = 0x10
	AlgSigSHA256     byte = 0x42 // MSE SET DST: RSA PKCS#1 v1.5 with SHA-256, card builds DigestInfo
	AlgSigSHA1       byte = 0x12
	AlgAuthPKCS1     byte = 0x02 // MSE SET AT: PKCS#1 v1.5 over caller data (INTERNAL AUTHENTICATE)
	AlgDecipherPKCS1 byte = 0x1A
)

// PIN facts confirmed by the ANS help pages (card-cpx.md §3).
const (
	PINLength    = 4
	PUKLength    = 8
	PINMaxTries  = 3
	PUKMaxTries  = 10
	PUKMaxUses   = 100
	PINSDORef    = 0x01 // CHV SDO reference of the PIN in the MF
	PUKSDORef    = 0x02 // CHV SDO reference of the PUK in the MF
	MaxAuthInput = 102  // INTERNAL AUTHENTICATE data ≤ 40 % of a 2048-bit modulus
	ReadChunk    = 0xE7 // READ BINARY / GET RESPONSE chunk (vendor driver)
)

// Quirks gathers every card fact that card-cpx.md marks [?]. The defaults
// are our best reading of two independent drivers; a real card may differ.
type Quirks struct {
	// PINEncoding is "ascii" (digits as 0x30..0x39, default) or "bcd".
	PINEncoding string `json:"pinEncoding"`
	// PINPadLength pads the PIN to this many bytes with PINPadByte; 0 = no padding (default).
	PINPadLength int  `json:"pinPadLength"`
	PINPadByte   byte `json:"pinPadByte"`
	// VerifyP2PIN / VerifyP2PUK are the P2 of VERIFY for the PIN and PUK (default 0x01 / 0x02).
	VerifyP2PIN byte `json:"verifyP2Pin"`
	VerifyP2PUK byte `json:"verifyP2Puk"`
	// BlockedOn63C0 treats "63 C0" like "69 83" (PIN blocked).
	BlockedOn63C0 bool `json:"blockedOn63C0"`
	// AuthCertPath / SignCertPath are the certificate EF paths used when the
	// PKCS#15 CDF cannot be read (hex, from the MF, e.g. "3F000001A001").
	AuthCertPath string `json:"authCertPath"`
	SignCertPath string `json:"signCertPath"`
	// ResetRetryCounterP1 is 0x02 (new PIN given) by default (OpenSC iasecc_pin_reset).
	ResetRetryCounterP1 byte `json:"resetRetryCounterP1"`
	// AppDFPath is the DF that holds the private keys 0x81/0x82 (local key
	// references, bit 8 set) and the PKCS#15 ODF/CDF; it must be current for
	// MSE SET. 3F00/0001 exists on a real card; that it is the PKCS#15
	// application's DF is inferred (card-cpx.md §2.2, §2.4).
	AppDFPath string `json:"appDfPath"`
	// VerifyInMF selects the MF before VERIFY / CHANGE REFERENCE DATA. The
	// PIN is a global CHV (P2 bit 8 clear), which IAS-ECC finds from any DF;
	// the vendor trace happens to send VERIFY with the MF current
	// (card-cpx.md §3). Default false (one APDU less per PIN operation).
	VerifyInMF bool `json:"verifyInMf"`

	// Fields below were added for the field probe and the quirks file
	// (issue #10); each names the card-cpx.md [?] it stands for.

	// ChangeReferenceP1 is the P1 of CHANGE REFERENCE DATA: 0x00 (default,
	// OpenSC: data = old PIN ‖ new PIN, sent after a VERIFY of the old PIN)
	// or 0x01 (ISO 7816-4: data = new PIN only, the VERIFY just before it
	// being the check). card-cpx.md §3, §8 item 5.
	ChangeReferenceP1 byte `json:"changeReferenceP1"`
	// SelectClearsPIN says that selecting a DF (the MF or the application
	// DF) clears the card's verified PIN state, as OpenSC's logout (a SELECT
	// of the root AID) suggests (card-cpx.md §3 [?]). When set, Authenticate
	// and Sign send their VERIFY after their last SELECT even if VerifyInMF
	// is set. Default false.
	SelectClearsPIN bool `json:"selectClearsPin"`
	// EmptyHashTail says how a message whose PSO HASH tail is empty (the
	// empty message) is signed (card-cpx.md §4.2, §8 item 4): "fallback"
	// (default, also ""): PSO HASH with "80 00", and when the card refuses
	// it with 6A 80 the complete hash as PSO CDS data; "psohash": "80 00"
	// only; "cds": the complete hash as PSO CDS data, no PSO HASH.
	EmptyHashTail string `json:"emptyHashTail"`
	// CPS4 overrides the CPS4 table (cps4facts.go, the CPS4 profile's one
	// place for its facts) from the quirks file's "cps4" object; nil means
	// CPS4Facts. Use Quirks.CPS4Table. A pointer keeps Quirks comparable.
	CPS4 *CPS4Table `json:"cps4,omitempty"`
}

// EmptyHashTail values.
const (
	EmptyTailFallback = "fallback"
	EmptyTailPSOHash  = "psohash"
	EmptyTailCDS      = "cds"
)

// DefaultQuirks returns the agent's defaults for a CPS3 contact card.
func DefaultQuirks() Quirks {
	return Quirks{
		PINEncoding:         "ascii",
		VerifyP2PIN:         PINSDORef,
		VerifyP2PUK:         PUKSDORef,
		BlockedOn63C0:       true,
		AuthCertPath:        "3F000001A001",
		SignCertPath:        "3F000001A002",
		ResetRetryCounterP1: 0x02,
		AppDFPath:           "3F000001",
		ChangeReferenceP1:   0x00,
		EmptyHashTail:       EmptyTailFallback,
	}
}
