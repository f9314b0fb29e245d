package virtual

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/cpsagent/cpsagent/internal/card/cps"
)

// Default secrets of a virtual card. They are printed by the vcard command:
// a virtual card is a test card and its codes are not secret.
const (
	DefaultPIN    = "1234"
	DefaultPUK    = "12345678"
	DefaultSerial = "9921384500"
)

// ErrConfig reports an unusable card configuration.
var ErrConfig = errors.New("virtual: invalid card configuration")

// Behaviour holds every card behaviour that card-cpx.md marks [?]. The zero
// value is the default described in the package documentation; each field
// can be flipped by a test (or a JSON file) to model a card that differs.
type Behaviour struct {
	// ThirdWrongPIN is the status word of the VERIFY that exhausts a counter:
	// "63C0" (default) or "6983".
	ThirdWrongPIN string `json:"thirdWrongPin,omitempty"`
	// PINEncoding is how the card stores and compares PIN and PUK: "ascii"
	// (default, one byte per digit) or "bcd" (two digits per byte, an odd
	// count padded with an F nibble).
	PINEncoding string `json:"pinEncoding,omitempty"`
	// PINPadLength, when > 0, is the stored length of PIN and PUK: VERIFY
	// data must be the encoded secret padded with PINPadByte to this length,
	// and the CHV public data (7F41) reports min = max = PINPadLength. A
	// zero PINPadByte means FF (OpenSC's pad character).
	PINPadLength int  `json:"pinPadLength,omitempty"`
	PINPadByte   byte `json:"pinPadByte,omitempty"`
	// PINRef and PUKRef are the CHV references (VERIFY P2); default 01 / 02.
	PINRef byte `json:"pinRef,omitempty"`
	PUKRef byte `json:"pukRef,omitempty"`
	// WrongLengthPIN is the answer to a VERIFY, CHANGE or RESET RETRY
	// COUNTER whose secret has the wrong length: "6A80" (default) or "6700",
	// both without consuming a try, or "consume" (counted as a wrong secret,
	// 63 Cx).
	WrongLengthPIN string `json:"wrongLengthPin,omitempty"`
	// ChangeWithoutVerify lets CHANGE REFERENCE DATA run without a prior
	// VERIFY (the old PIN in the data is still checked). Default: the PIN
	// must be verified first (69 82 otherwise).
	ChangeWithoutVerify bool `json:"changeWithoutVerify,omitempty"`
	// KeepPUKAfterUnblock keeps the PUK verified after RESET RETRY COUNTER.
	// Default: each unblock needs a fresh PUK VERIFY.
	KeepPUKAfterUnblock bool `json:"keepPukAfterUnblock,omitempty"`
	// AppSelectClearsPIN clears the verified state when DF 0001 or the root
	// application is selected (OpenSC's logout re-selects the root AID).
	AppSelectClearsPIN bool `json:"appSelectClearsPin,omitempty"`
	// SignatureNeedsFreshVerify demands a VERIFY before every PSO CDS
	// ("user consent" profiles); default off.
	SignatureNeedsFreshVerify bool `json:"signatureNeedsFreshVerify,omitempty"`
	// ReadPastEOF is the answer to READ BINARY with Le beyond the end of the
	// file: "6282" (default: the bytes left and 62 82) or "6C" (6C xx with the
	// number of bytes left, no data).
	ReadPastEOF string `json:"readPastEof,omitempty"`
	// RejectEmptyHashTail makes PSO HASH refuse "80 00" (6A 80).
	RejectEmptyHashTail bool `json:"rejectEmptyHashTail,omitempty"`
	// RejectHashInCDS makes PSO CDS refuse a hash given as data (6A 80), so
	// only the PSO HASH path works.
	RejectHashInCDS bool `json:"rejectHashInCds,omitempty"`
	// Transport is "t0" (default: 61 xx and GET RESPONSE, as a CPS3 contact
	// card) or "t1" (data returned directly when Le allows, like a reader
	// that runs GET RESPONSE itself).
	Transport string `json:"transport,omitempty"`
	// AuthCertFID and SignCertFID are the certificate EFs in DF 0001;
	// 0 means the FIDs of cps.DefaultQuirks (A001 and A002).
	AuthCertFID uint16 `json:"authCertFid,omitempty"`
	SignCertFID uint16 `json:"signCertFid,omitempty"`

	// The fields below answer the other way for the remaining [?] facts that
	// the agent's quirks file covers (issue #10, docs/field-test.md).

	// LocalCHVRefs makes the PIN and the PUK answer VERIFY, CHANGE REFERENCE
	// DATA and RESET RETRY COUNTER at P2 = 80|PINRef and 80|PUKRef (specific
	// references: "01 vs 81", card-cpx.md §3, §8 item 1); P2 = PINRef then
	// answers 6A 88. GET DATA still names the SDOs by their plain reference.
	LocalCHVRefs bool `json:"localChvRefs,omitempty"`
	// ChangeP1 is the P1 that CHANGE REFERENCE DATA accepts: 0 (default: 00,
	// data = old‖new) or 1 (01: data = new value only, the PIN having been
	// verified just before). The other P1 answers 6A 86 (card-cpx.md §3,
	// §8 item 5).
	ChangeP1 byte `json:"changeP1,omitempty"`
	// VerifyNeedsMF makes VERIFY (with or without data) answer 6A 88 unless
	// the MF is the current DF, as GET DATA of a CHV does; the vendor trace
	// sends VERIFY with the MF current (card-cpx.md §3).
	VerifyNeedsMF bool `json:"verifyNeedsMf,omitempty"`
	// SelectClearsPIN clears the verified state on every SELECT of the MF
	// or of the application DF, by FID, path or name (AppSelectClearsPIN:
	// by name only). card-cpx.md §3 [?].
	SelectClearsPIN bool `json:"selectClearsPin,omitempty"`
	// AppDFFID is the FID of the PKCS#15 application DF; 0 means 0001
	// (card-cpx.md §2.2: that 3F00/0001 is the AID's DF is inferred).
	AppDFFID uint16 `json:"appDfFid,omitempty"`

	// ChannelNeedsManage (CPS4 model, issue #9): a SELECT on a closed
	// logical channel answers 68 81 instead of opening it, so only MANAGE
	// CHANNEL opens channels. Default: SELECT opens the channel, which the
	// Cryptolib relies on (cps.CPS4Facts.ManageChannelOpen is the agent's
	// fallback).
	ChannelNeedsManage bool `json:"channelNeedsManage,omitempty"`
}

// withDefaults returns b with empty fields set to their defaults.
func (b Behaviour) withDefaults() Behaviour {
	if b.ThirdWrongPIN == "" {
		b.ThirdWrongPIN = "63C0"
	}
	if b.PINEncoding == "" {
		b.PINEncoding = "ascii"
	}
	if b.PINPadLength > 0 && b.PINPadByte == 0 {
		b.PINPadByte = 0xFF
	}
	if b.PINRef == 0 {
		b.PINRef = cps.PINSDORef
	}
	if b.PUKRef == 0 {
		b.PUKRef = cps.PUKSDORef
	}
	if b.WrongLengthPIN == "" {
		b.WrongLengthPIN = "6A80"
	}
	if b.ReadPastEOF == "" {
		b.ReadPastEOF = "6282"
	}
	if b.Transport == "" {
		b.Transport = "t0"
	}
	if b.AppDFFID == 0 {
		b.AppDFFID = cps.FIDAppDF
	}
	q := cps.DefaultQuirks()
	if b.AuthCertFID == 0 {
		b.AuthCertFID = fidOfPath(q.AuthCertPath, 0xA001)
	}
	if b.SignCertFID == 0 {
		b.SignCertFID = fidOfPath(q.SignCertPath, 0xA002)
	}
	return b
}

func (b Behaviour) validate() error {
	switch {
	case b.ThirdWrongPIN != "63C0" && b.ThirdWrongPIN != "6983":
		return fmt.Errorf("%w: thirdWrongPin %q (want 63C0 or 6983)", ErrConfig, b.ThirdWrongPIN)
	case b.PINEncoding != "ascii" && b.PINEncoding != "bcd":
		return fmt.Errorf("%w: pinEncoding %q (want ascii or bcd)", ErrConfig, b.PINEncoding)
	case b.WrongLengthPIN != "6A80" && b.WrongLengthPIN != "6700" && b.WrongLengthPIN != "consume":
		return fmt.Errorf("%w: wrongLengthPin %q (want 6A80, 6700 or consume)", ErrConfig, b.WrongLengthPIN)
	case b.ReadPastEOF != "6282" && b.ReadPastEOF != "6C":
		return fmt.Errorf("%w: readPastEof %q (want 6282 or 6C)", ErrConfig, b.ReadPastEOF)
	case b.Transport != "t0" && b.Transport != "t1":
		return fmt.Errorf("%w: transport %q (want t0 or t1)", ErrConfig, b.Transport)
	case b.PINPadLength < 0 || b.PINPadLength > 16:
		return fmt.Errorf("%w: pinPadLength %d", ErrConfig, b.PINPadLength)
	case b.PINRef == b.PUKRef || b.PINRef&0x80 != 0 || b.PUKRef&0x80 != 0 || b.PINRef > 0x1F || b.PUKRef > 0x1F:
		return fmt.Errorf("%w: CHV references %02X/%02X must differ and be global (01..1F)", ErrConfig, b.PINRef, b.PUKRef)
	case b.AuthCertFID == b.SignCertFID:
		return fmt.Errorf("%w: certificate FIDs must differ", ErrConfig)
	case b.ChangeP1 > 1:
		return fmt.Errorf("%w: changeP1 %02X (want 0 or 1)", ErrConfig, b.ChangeP1)
	}
	switch b.AppDFFID {
	case 0x0000, 0x3F00, 0x3FFF, 0xFFFF, cps.FIDEFATR, cps.FIDEFDIR, cps.FIDEFSNICC:
		return fmt.Errorf("%w: application DF FID %04X is reserved", ErrConfig, b.AppDFFID)
	}
	for _, fid := range []uint16{b.AuthCertFID, b.SignCertFID} {
		switch fid {
		case 0x3F00, 0x3FFF, 0xFFFF, 0x5031, 0x5032, 0x4401, 0x4402, 0x4404, 0x7001:
			return fmt.Errorf("%w: certificate FID %04X is reserved", ErrConfig, fid)
		}
	}
	return nil
}

// AgentQuirks returns the agent's cps.Quirks that match a card with this
// behaviour, so a test can flip a fact on both sides at once.
func (b Behaviour) AgentQuirks() cps.Quirks {
	b = b.withDefaults()
	q := cps.DefaultQuirks()
	q.PINEncoding = b.PINEncoding
	q.PINPadLength = b.PINPadLength
	q.PINPadByte = b.PINPadByte
	q.VerifyP2PIN = b.PINRef
	q.VerifyP2PUK = b.PUKRef
	if b.LocalCHVRefs {
		q.VerifyP2PIN |= 0x80
		q.VerifyP2PUK |= 0x80
	}
	q.AppDFPath = fmt.Sprintf("3F00%04X", b.AppDFFID)
	q.AuthCertPath = fmt.Sprintf("3F00%04X%04X", b.AppDFFID, b.AuthCertFID)
	q.SignCertPath = fmt.Sprintf("3F00%04X%04X", b.AppDFFID, b.SignCertFID)
	q.ChangeReferenceP1 = b.ChangeP1
	q.VerifyInMF = b.VerifyNeedsMF
	q.SelectClearsPIN = b.SelectClearsPIN
	switch {
	case b.RejectEmptyHashTail && !b.RejectHashInCDS:
		q.EmptyHashTail = cps.EmptyTailCDS
	case b.RejectHashInCDS && !b.RejectEmptyHashTail:
		q.EmptyHashTail = cps.EmptyTailPSOHash
	}
	return q
}

// fidOfPath takes the last FID of a hex path such as "3F000001A001".
func fidOfPath(path string, def uint16) uint16 {
	if len(path) < 4 {
		return def
	}
	v, err := strconv.ParseUint(path[len(path)-4:], 16, 16)
	if err != nil {
		return def
	}
	return uint16(v)
}

// Config describes one virtual card.
type Config struct {
	// Serial is the 10-digit card number stored in BCD after the ANS issuer
	// number in EF.SN.ICC (default DefaultSerial).
	Serial string `json:"serial,omitempty"`
	// Label is the PKCS#15 token label (default "CPS3v3-" + Serial, the
	// pattern of a real CPS3).
	Label string `json:"label,omitempty"`
	// Manufacturer is the TokenInfo manufacturerID (default "ANS").
	Manufacturer string `json:"manufacturer,omitempty"`
	// Holder names the identity (informational, e.g. "medecin").
	Holder string `json:"holder,omitempty"`
	// SignKey is key 0x81 (CPS_PRIV_SIG) and AuthKey key 0x82
	// (CPS_PRIV_AUT); both RSA, 2048 bits on a real CPS3.
	SignKey *rsa.PrivateKey `json:"-"`
	AuthKey *rsa.PrivateKey `json:"-"`
	// SignCert and AuthCert are the certificate DERs stored in the
	// certificate EFs (any bytes are accepted: the card does not parse them).
	SignCert []byte `json:"-"`
	AuthCert []byte `json:"-"`
	// PIN and PUK are the initial codes (defaults DefaultPIN, DefaultPUK);
	// digits only.
	PIN string `json:"-"`
	PUK string `json:"-"`
	// Behaviour selects the [?] behaviours.
	Behaviour Behaviour `json:"behaviour"`
	// StateFile, when set, persists the card across runs: codes, counters
	// and identity (keys, certificates, serial). When the file exists its
	// content wins over the fields above; otherwise it is created from them.
	StateFile string `json:"stateFile,omitempty"`
	// Trace receives one line per command and per response (PIN data and
	// document bytes masked). Nil disables the trace.
	Trace io.Writer `json:"-"`
	// Latency models the time a real card takes; zero means instant.
	Latency Latency `json:"latency"`
	// Sleep replaces time.Sleep for the latency model (tests).
	Sleep func(time.Duration) `json:"-"`
	// Rand is the randomness of GET CHALLENGE; nil means crypto/rand.
	Rand io.Reader `json:"-"`
	// Now stamps the trace; nil means time.Now.
	Now func() time.Time `json:"-"`
	// Model is the kind of card (model.go): ModelCPS3 (default), ModelCPS4,
	// ModelCPS3CL or ModelOther.
	Model string `json:"model,omitempty"`
}

// normalize fills defaults and validates the parts that do not come from a
// state file.
func (cfg Config) normalize() (Config, error) {
	cfg.Behaviour = cfg.Behaviour.withDefaults()
	if err := cfg.Behaviour.validate(); err != nil {
		return cfg, err
	}
	if cfg.Serial == "" {
		cfg.Serial = DefaultSerial
	}
	if cfg.PIN == "" {
		cfg.PIN = DefaultPIN
	}
	if cfg.PUK == "" {
		cfg.PUK = DefaultPUK
	}
	if cfg.Manufacturer == "" {
		cfg.Manufacturer = "ANS"
	}
	return cfg, nil
}

func (cfg Config) validateIdentity() error {
	if len(cfg.Serial) != 10 || !allDigits(cfg.Serial) {
		return fmt.Errorf("%w: serial %q must be 10 digits", ErrConfig, cfg.Serial)
	}
	if !allDigits(cfg.PIN) || len(cfg.PIN) < 4 || len(cfg.PIN) > 8 {
		return fmt.Errorf("%w: PIN must be 4 to 8 digits", ErrConfig)
	}
	if !allDigits(cfg.PUK) || len(cfg.PUK) < 4 || len(cfg.PUK) > 16 {
		return fmt.Errorf("%w: PUK must be 4 to 16 digits", ErrConfig)
	}
	if cfg.SignKey == nil || cfg.AuthKey == nil {
		return fmt.Errorf("%w: both keys are required", ErrConfig)
	}
	for _, k := range []*rsa.PrivateKey{cfg.SignKey, cfg.AuthKey} {
		if n := k.N.BitLen(); n < 1024 || n > 2048 || n%8 != 0 {
			return fmt.Errorf("%w: RSA key of %d bits (want 1024..2048)", ErrConfig, n)
		}
	}
	if len(cfg.SignCert) == 0 || len(cfg.AuthCert) == 0 {
		return fmt.Errorf("%w: both certificates are required", ErrConfig)
	}
	if len(cfg.SignCert) > 0x7FFF || len(cfg.AuthCert) > 0x7FFF {
		return fmt.Errorf("%w: certificate larger than 32767 bytes", ErrConfig)
	}
	if p := cfg.Behaviour.PINPadLength; p > 0 && (p < encodedLen(cfg.Behaviour, len(cfg.PIN)) || p < encodedLen(cfg.Behaviour, len(cfg.PUK))) {
		return fmt.Errorf("%w: pinPadLength %d shorter than the encoded PIN or PUK", ErrConfig, p)
	}
	return nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	return strings.Trim(s, "0123456789") == ""
}
