package cps

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/iasecc"
)

// CPS3 is the Profile of CPS3 cards (IAS-ECC). Section numbers refer to
// card-cpx.md.
type CPS3 struct {
	Quirks   Quirks
	CardType CardType
}

var _ Profile = (*CPS3)(nil)

// Type implements Profile.
func (p *CPS3) Type() CardType { return p.CardType }

func (p *CPS3) path(s, what string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) < 4 || len(b)%2 != 0 || b[0] != 0x3F || b[1] != 0x00 {
		return nil, fmt.Errorf("%w: quirks %s %q is not a hex path from 3F00", ErrFormat, what, s)
	}
	return b, nil
}

// ReadSerial reads EF.SN.ICC (§2.2), 2 APDUs:
//
//	00 A4 09 0C 04 3F 00 D0 03      SELECT by path, no FCP
//	00 B0 00 00 0C                  READ BINARY 12 bytes
func (p *CPS3) ReadSerial(ch *apdu.Channel) (string, error) {
	if _, err := iasecc.SelectPath(ch, fidPath(FIDMF, FIDEFSNICC), false); err != nil {
		return "", fmt.Errorf("reading EF.SN.ICC: %w", err)
	}
	b, _, err := iasecc.ReadBinary(ch, 0, 12)
	if err != nil {
		return "", fmt.Errorf("reading EF.SN.ICC: %w", err)
	}
	return ParseSNICC(b)
}

// fidPath concatenates file identifiers into a path.
func fidPath(fids ...uint16) []byte {
	b := make([]byte, 0, 2*len(fids))
	for _, f := range fids {
		b = append(b, byte(f>>8), byte(f&0xFF))
	}
	return b
}

// derLength returns the total length of the DER element starting b.
func derLength(b []byte) (int, error) {
	if len(b) < 2 || b[0] != 0x30 {
		return 0, fmt.Errorf("%w: certificate file does not start with a DER SEQUENCE", ErrFormat)
	}
	l := int(b[1])
	if l < 0x80 {
		return 2 + l, nil
	}
	n := l & 0x7F
	if n == 0 || n > 3 || len(b) < 2+n {
		return 0, fmt.Errorf("%w: certificate length form %02X", ErrFormat, b[1])
	}
	l = 0
	for _, c := range b[2 : 2+n] {
		l = l<<8 | int(c)
	}
	return 2 + n + l, nil
}

// readDER reads one DER object from the start of the current EF: a first
// chunk of ReadChunk bytes gives the DER header, then exactly the remaining
// bytes are read (no probing READ past the end, no FCP needed).
func readDER(ch *apdu.Channel) ([]byte, error) {
	first, _, err := iasecc.ReadBinary(ch, 0, ReadChunk)
	if err != nil {
		return nil, err
	}
	total, err := derLength(first)
	if err != nil {
		return nil, err
	}
	if total <= len(first) {
		return first[:total], nil
	}
	return iasecc.ReadFrom(ch, first, total, ReadChunk)
}

// ReadCertificates reads the authentication and signature certificates:
// SELECT by path (P2=0C) of the default EFs from Quirks, then READ BINARY in
// ReadChunk pieces; when a default path answers 6A 82 the PKCS#15 ODF → CDF
// is followed instead (§2.2: the certificate FIDs are not public).
func (p *CPS3) ReadCertificates(ch *apdu.Channel) (auth, sign []byte, err error) {
	var fromP15 map[KeyRole][]byte
	read := func(role KeyRole, quirk, what string) ([]byte, error) {
		path, err := p.path(quirk, what)
		if err != nil {
			return nil, err
		}
		_, err = iasecc.SelectPath(ch, path, false)
		if err == nil {
			der, err := readDER(ch)
			if err != nil {
				return nil, fmt.Errorf("reading %s certificate: %w", what, err)
			}
			return der, nil
		}
		if !iasecc.IsNotFound(err) {
			return nil, fmt.Errorf("reading %s certificate: %w", what, err)
		}
		if fromP15 == nil {
			if fromP15, err = p.certificatesFromPKCS15(ch); err != nil {
				return nil, fmt.Errorf("reading %s certificate: default path absent, PKCS#15: %w", what, err)
			}
		}
		der, ok := fromP15[role]
		if !ok {
			return nil, fmt.Errorf("%w: no %s certificate in the PKCS#15 CDF", ErrNoCertificate, what)
		}
		return der, nil
	}
	if auth, err = read(RoleAuthentication, p.Quirks.AuthCertPath, "authentication"); err != nil {
		return nil, nil, err
	}
	if sign, err = read(RoleSignature, p.Quirks.SignCertPath, "signature"); err != nil {
		return nil, nil, err
	}
	return auth, sign, nil
}

// certificatesFromPKCS15 reads EF.ODF (AppDF/5031), each CDF it lists, and
// each end-entity certificate those list; it classifies them by key usage
// (nonRepudiation only = signature, otherwise authentication) because the
// PKCS#15 IDs of a real CPx are not documented.
func (p *CPS3) certificatesFromPKCS15(ch *apdu.Channel) (map[KeyRole][]byte, error) {
	appDF, err := p.path(p.Quirks.AppDFPath, "appDfPath")
	if err != nil {
		return nil, err
	}
	readFile := func(pp P15Path) ([]byte, error) {
		if _, err := iasecc.SelectPath(ch, pp.Path, false); err != nil {
			return nil, err
		}
		b, err := iasecc.ReadAll(ch, -1, ReadChunk)
		if err != nil {
			return nil, err
		}
		if pp.Offset > 0 || pp.Length >= 0 {
			end := len(b)
			if pp.Length >= 0 && pp.Offset+pp.Length < end {
				end = pp.Offset + pp.Length
			}
			if pp.Offset > end {
				return nil, fmt.Errorf("%w: PKCS#15 path offset beyond file", ErrFormat)
			}
			b = b[pp.Offset:end]
		}
		return b, nil
	}
	odf, err := readFile(P15Path{Path: append(append([]byte(nil), appDF...), fidPath(FIDODF)...), Length: -1})
	if err != nil {
		return nil, fmt.Errorf("EF.ODF: %w", err)
	}
	cdfs, err := ParseODF(odf, appDF)
	if err != nil {
		return nil, err
	}
	out := map[KeyRole][]byte{}
	for _, cdfPath := range cdfs {
		cdf, err := readFile(cdfPath)
		if err != nil {
			return nil, fmt.Errorf("CDF %X: %w", cdfPath.Path, err)
		}
		entries, err := ParseCDF(cdf, appDF)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			der, err := readFile(e.Path)
			if err != nil {
				return nil, fmt.Errorf("certificate %q: %w", e.Label, err)
			}
			if n, err := derLength(der); err == nil && n <= len(der) {
				der = der[:n]
			}
			c, err := x509.ParseCertificate(der)
			if err != nil || c.IsCA {
				continue
			}
			role := RoleAuthentication
			if c.KeyUsage&x509.KeyUsageContentCommitment != 0 && c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
				role = RoleSignature
			}
			if _, dup := out[role]; !dup {
				out[role] = der
			}
		}
	}
	return out, nil
}

// chvState interprets VERIFY without data for the PIN or PUK.
func (p *CPS3) chvState(st iasecc.CHVStatus, max int) CHVState {
	s := CHVState{TriesLeft: st.TriesLeft, MaxTries: max, Blocked: st.Blocked, Verified: st.Verified, UsesLeft: -1}
	if !st.Verified && !st.Blocked && st.TriesLeft == 0 && p.Quirks.BlockedOn63C0 {
		s.Blocked = true
	}
	if s.Blocked {
		s.TriesLeft = 0
	}
	return s
}

// PINStatus sends VERIFY without data (§3 method 1), 1 APDU: 00 20 00 01.
// The PIN is a global CHV, so no SELECT is needed unless Quirks.VerifyInMF.
func (p *CPS3) PINStatus(ch *apdu.Channel) (CHVState, error) {
	if p.Quirks.VerifyInMF {
		if err := iasecc.SelectMF(ch); err != nil {
			return CHVState{}, err
		}
	}
	st, err := iasecc.VerifyStatus(ch, p.Quirks.VerifyP2PIN)
	if err != nil {
		return CHVState{}, fmt.Errorf("reading PIN status: %w", err)
	}
	return p.chvState(st, PINMaxTries), nil
}

// PUKStatus reads the PUK's DOCP with the MF current (§3 method 2), 3 APDUs
// over T=0: SELECT MF, GET DATA (61 xx), GET RESPONSE. It gives the tries
// and the uses left; a card without the DOCP falls back to VERIFY without
// data (P2 = PUK reference).
func (p *CPS3) PUKStatus(ch *apdu.Channel) (CHVState, error) {
	if err := iasecc.SelectMF(ch); err != nil {
		return CHVState{}, err
	}
	d, err := iasecc.GetCHVDOCP(ch, PUKSDORef)
	if err == nil {
		s := CHVState{TriesLeft: d.TriesLeft, MaxTries: d.MaxTries, UsesLeft: d.UsesLeft}
		if s.MaxTries < 0 {
			s.MaxTries = PUKMaxTries
		}
		s.Blocked = s.TriesLeft == 0 || s.UsesLeft == 0
		return s, nil
	}
	var se *apdu.StatusError
	if !errors.As(err, &se) && !errors.Is(err, iasecc.ErrFormat) {
		return CHVState{}, fmt.Errorf("reading PUK status: %w", err)
	}
	st, err := iasecc.VerifyStatus(ch, p.Quirks.VerifyP2PUK)
	if err != nil {
		return CHVState{}, fmt.Errorf("reading PUK status: %w", err)
	}
	return p.chvState(st, PUKMaxTries), nil
}

// verifyErr turns VERIFY status words into profile errors (§3): 63 Cx →
// *WrongPINError (63 C0 → blocked when Quirks.BlockedOn63C0), 69 83 → blocked.
func (p *CPS3) verifyErr(err error, puk bool) error {
	if err == nil {
		return nil
	}
	blocked := ErrPINBlocked
	if puk {
		blocked = ErrPUKBlocked
	}
	var se *apdu.StatusError
	if errors.As(err, &se) {
		if n, ok := se.TriesLeft(); ok {
			if n == 0 && p.Quirks.BlockedOn63C0 {
				return fmt.Errorf("%w: %w", blocked, err)
			}
			return &WrongPINError{PUK: puk, TriesLeft: n}
		}
		if se.SW == apdu.SWAuthBlocked {
			return fmt.Errorf("%w: %w", blocked, err)
		}
	}
	return err
}

// verifyPIN presents the PIN (1 APDU, 2 with Quirks.VerifyInMF).
func (p *CPS3) verifyPIN(ch *apdu.Channel, enc []byte) error {
	if p.Quirks.VerifyInMF {
		if err := iasecc.SelectMF(ch); err != nil {
			return err
		}
	}
	return p.verifyErr(iasecc.Verify(ch, p.Quirks.VerifyP2PIN, enc), false)
}

func (p *CPS3) selectAppDF(ch *apdu.Channel) error {
	df, err := p.path(p.Quirks.AppDFPath, "appDfPath")
	if err != nil {
		return err
	}
	_, err = iasecc.SelectPath(ch, df, false)
	return err
}

// Authenticate signs caller data with the authentication key (§4.1):
//
//	00 A4 09 0C 04 3F 00 00 01          SELECT the key DF (keys are local)
//	00 20 00 01 04 ** ** ** **          VERIFY
//	00 22 41 A4 06 84 01 82 80 01 02    MSE SET AT
//	00 88 00 00 Lc data 00              INTERNAL AUTHENTICATE → 61 00
//	00 C0 00 00 00                      GET RESPONSE (256 bytes)
func (p *CPS3) Authenticate(ch *apdu.Channel, pin, data []byte) ([]byte, error) {
	if len(data) == 0 || len(data) > MaxAuthInput {
		return nil, fmt.Errorf("%w: authentication data of %d bytes (1..%d)", ErrFormat, len(data), MaxAuthInput)
	}
	enc, err := EncodePIN(p.Quirks, pin, PINLength)
	if err != nil {
		return nil, err
	}
	defer clear(enc)
	if !p.Quirks.VerifyInMF {
		if err := p.selectAppDF(ch); err != nil {
			return nil, err
		}
	}
	if err := p.verifyPIN(ch, enc); err != nil {
		return nil, err
	}
	if p.Quirks.VerifyInMF {
		if err := p.selectAppDF(ch); err != nil {
			return nil, err
		}
	}
	if err := iasecc.MSESetAT(ch, KeyAuthentication, AlgAuthPKCS1); err != nil {
		return nil, err
	}
	return iasecc.InternalAuthenticate(ch, data)
}

// Sign signs msg with the non-repudiation key, RSA PKCS#1 v1.5 with SHA-256,
// the card finishing the hash (§4.2):
//
//	00 A4 09 0C 04 3F 00 00 01          SELECT the key DF
//	00 20 00 01 04 ** ** ** **          VERIFY
//	00 22 41 AA 03 80 01 40             MSE SET HT SHA-256
//	00 22 41 B6 06 84 01 81 80 01 42    MSE SET DST key 81, RSA-SHA256
//	00 2A 90 A0 Lc 90 28|00 ... 80 n …  PSO HASH (host state + tail)
//	00 2A 9E 9A 00                      PSO CDS → 61 00
//	00 C0 00 00 00                      GET RESPONSE (256 bytes)
func (p *CPS3) Sign(ch *apdu.Channel, pin, msg []byte) ([]byte, error) {
	if p.CardType.Contactless {
		return nil, fmt.Errorf("%w: no signature over the contactless interface", ErrNotPermitted)
	}
	enc, err := EncodePIN(p.Quirks, pin, PINLength)
	if err != nil {
		return nil, err
	}
	defer clear(enc)
	split := iasecc.SplitSHA256(msg)
	if !p.Quirks.VerifyInMF {
		if err := p.selectAppDF(ch); err != nil {
			return nil, err
		}
	}
	if err := p.verifyPIN(ch, enc); err != nil {
		return nil, err
	}
	if p.Quirks.VerifyInMF {
		if err := p.selectAppDF(ch); err != nil {
			return nil, err
		}
	}
	if err := iasecc.MSESetHT(ch, AlgHashSHA256); err != nil {
		return nil, err
	}
	if err := iasecc.MSESetDST(ch, KeySignature, AlgSigSHA256); err != nil {
		return nil, err
	}
	if err := iasecc.PSOHash(ch, split); err != nil {
		if len(msg) == 0 && errors.Is(err, apdu.ErrWrongData) {
			// The card refuses an empty tail (80 00, card-cpx.md §4.2 [?]);
			// the Cryptolib would refuse an empty message altogether. Give
			// the card the whole hash instead (its CKM_RSA_PKCS path).
			h := sha256.Sum256(nil)
			return iasecc.PSOComputeDigitalSignatureOfHash(ch, h[:])
		}
		return nil, err
	}
	return iasecc.PSOComputeDigitalSignature(ch)
}

// ChangePIN: VERIFY old (IAS-ECC has no implicit check), then
// CHANGE REFERENCE DATA 00 24 00 01 08 old‖new (§3), 2 APDUs.
func (p *CPS3) ChangePIN(ch *apdu.Channel, oldPIN, newPIN []byte) error {
	if p.CardType.Contactless {
		return fmt.Errorf("%w: no PIN change over the contactless interface", ErrNotPermitted)
	}
	encOld, err := EncodePIN(p.Quirks, oldPIN, PINLength)
	if err != nil {
		return err
	}
	defer clear(encOld)
	encNew, err := EncodePIN(p.Quirks, newPIN, PINLength)
	if err != nil {
		return err
	}
	defer clear(encNew)
	if err := p.verifyPIN(ch, encOld); err != nil {
		return err
	}
	return p.verifyErr(iasecc.ChangeReferenceData(ch, p.Quirks.VerifyP2PIN, encOld, encNew), false)
}

// Unblock: VERIFY the PUK (00 20 00 02 08 …), then RESET RETRY COUNTER
// 00 2C 02 01 Lc newPIN (§3, OpenSC iasecc_pin_reset), 2 APDUs (3 with
// Quirks.VerifyInMF). Each unblock consumes one PUK use.
func (p *CPS3) Unblock(ch *apdu.Channel, puk, newPIN []byte) error {
	if p.CardType.Contactless {
		return fmt.Errorf("%w: no unblocking over the contactless interface", ErrNotPermitted)
	}
	if p.Quirks.ResetRetryCounterP1 != 0x02 {
		// P1=03 resets the counter only and would need a second command to
		// set the new PIN; no source shows a CPx needing it.
		return fmt.Errorf("%w: reset retry counter P1 %02X is not implemented", ErrNotPermitted, p.Quirks.ResetRetryCounterP1)
	}
	encPUK, err := EncodePIN(p.Quirks, puk, PUKLength)
	if err != nil {
		return err
	}
	defer clear(encPUK)
	encNew, err := EncodePIN(p.Quirks, newPIN, PINLength)
	if err != nil {
		return err
	}
	defer clear(encNew)
	if p.Quirks.VerifyInMF {
		if err := iasecc.SelectMF(ch); err != nil {
			return err
		}
	}
	if err := p.verifyErr(iasecc.Verify(ch, p.Quirks.VerifyP2PUK, encPUK), true); err != nil {
		return err
	}
	if err := iasecc.ResetRetryCounter(ch, 0x02, p.Quirks.VerifyP2PIN, encNew); err != nil {
		if errors.Is(err, apdu.ErrAuthBlocked) {
			return fmt.Errorf("%w: %w", ErrPUKBlocked, err)
		}
		return err
	}
	return nil
}
