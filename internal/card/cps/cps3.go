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
//
// Over the contactless interface the paths come from CPS3CLFacts (the
// "CPX IAS CL" application) instead of Quirks.
func (p *CPS3) ReadCertificates(ch *apdu.Channel) (auth, sign []byte, err error) {
	authPath, signPath, appDF := p.Quirks.AuthCertPath, p.Quirks.SignCertPath, p.Quirks.AppDFPath
	if p.CardType.Contactless {
		authPath, signPath, appDF = CPS3CLFacts.AuthCertPath, CPS3CLFacts.SignCertPath, CPS3CLFacts.AppDFPath
	}
	pathKeys := []string{"authCertPath", "signCertPath"}
	if p.CardType.Contactless {
		pathKeys = nil
	}
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
			if err := checkCertRole(der, role, quirk, pathKeys); err != nil {
				return nil, err
			}
			return der, nil
		}
		if !iasecc.IsNotFound(err) {
			return nil, fmt.Errorf("reading %s certificate: %w", what, err)
		}
		if fromP15 == nil {
			if fromP15, err = p.certificatesFromPKCS15(ch, appDF); err != nil {
				if !p.CardType.Contactless {
					err = quirkHint(err, "SELECT of the PKCS#15 ODF", []string{"appDfPath", "authCertPath", "signCertPath"}, apdu.SWFileNotFound)
				}
				return nil, fmt.Errorf("reading %s certificate: default path absent, PKCS#15: %w", what, err)
			}
		}
		der, ok := fromP15[role]
		if !ok {
			return nil, fmt.Errorf("%w: no %s certificate in the PKCS#15 CDF", ErrNoCertificate, what)
		}
		return der, nil
	}
	if auth, err = read(RoleAuthentication, authPath, "authentication"); err != nil {
		return nil, nil, err
	}
	if sign, err = read(RoleSignature, signPath, "signature"); err != nil {
		return nil, nil, err
	}
	return auth, sign, nil
}

// certificatesFromPKCS15 follows the PKCS#15 directory of the application
// DF appDFPath (hex path from 3F00) with SELECT by path and READ BINARY.
func (p *CPS3) certificatesFromPKCS15(ch *apdu.Channel, appDFPath string) (map[KeyRole][]byte, error) {
	appDF, err := p.path(appDFPath, "appDfPath")
	if err != nil {
		return nil, err
	}
	return certificatesFromPKCS15(appDF, func(path []byte) ([]byte, error) {
		if _, err := iasecc.SelectPath(ch, path, false); err != nil {
			return nil, err
		}
		return iasecc.ReadAll(ch, -1, ReadChunk)
	})
}

// certificatesFromPKCS15 reads EF.ODF (appDF/5031), each CDF it lists, and
// each end-entity certificate those list, through readFile (the whole EF at
// an absolute path from 3F00); it classifies them by key usage
// (nonRepudiation only = signature, otherwise authentication) because the
// PKCS#15 IDs of a real CPx are not documented. Shared by the CPS3 (IAS-ECC)
// and CPS4 (ChipDoc) profiles, which differ only in how a file is read.
func certificatesFromPKCS15(appDF []byte, readWhole func(path []byte) ([]byte, error)) (map[KeyRole][]byte, error) {
	readFile := func(pp P15Path) ([]byte, error) {
		b, err := readWhole(pp.Path)
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
	if p.CardType.Contactless {
		return CHVState{}, fmt.Errorf("%w: no PIN over the contactless interface", ErrNotPermitted)
	}
	if p.Quirks.VerifyInMF {
		if err := iasecc.SelectMF(ch); err != nil {
			return CHVState{}, err
		}
	}
	st, err := iasecc.VerifyStatus(ch, p.Quirks.VerifyP2PIN)
	if err != nil {
		err = quirkHint(err, "VERIFY without data (PIN status)", keysPINRef, apdu.SWReferencedDataNotFound, apdu.SWIncorrectP1P2)
		return CHVState{}, fmt.Errorf("reading PIN status: %w", err)
	}
	return p.chvState(st, PINMaxTries), nil
}

// PUKStatus reads the PUK's DOCP with the MF current (§3 method 2), 3 APDUs
// over T=0: SELECT MF, GET DATA (61 xx), GET RESPONSE. It gives the tries
// and the uses left; a card without the DOCP falls back to VERIFY without
// data (P2 = PUK reference).
func (p *CPS3) PUKStatus(ch *apdu.Channel) (CHVState, error) {
	if p.CardType.Contactless {
		return CHVState{}, fmt.Errorf("%w: no PUK over the contactless interface", ErrNotPermitted)
	}
	if err := iasecc.SelectMF(ch); err != nil {
		return CHVState{}, err
	}
	d, err := iasecc.GetCHVDOCP(ch, p.Quirks.VerifyP2PUK&0x1F)
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
		err = quirkHint(err, "VERIFY without data (PUK status)", keysPUKRef, apdu.SWReferencedDataNotFound, apdu.SWIncorrectP1P2)
		return CHVState{}, fmt.Errorf("reading PUK status: %w", err)
	}
	return p.chvState(st, PUKMaxTries), nil
}

// verifyErr turns VERIFY status words into profile errors (§3): 63 Cx →
// *WrongPINError (63 C0 → blocked when Quirks.BlockedOn63C0), 69 83 → blocked.
func (p *CPS3) verifyErr(err error, puk bool) error {
	return chvError(err, puk, p.Quirks.BlockedOn63C0)
}

// chvError maps the status of a VERIFY (or of a command checking a secret)
// for the PIN or the PUK: 63 Cx → *WrongPINError, 63 C0 → blocked when
// blockedOn63C0, 69 83 → blocked; anything else is returned unchanged.
func chvError(err error, puk, blockedOn63C0 bool) error {
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
			if n == 0 && blockedOn63C0 {
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
	return p.presentPIN(ch, enc, p.Quirks.VerifyInMF)
}

// presentPIN sends VERIFY for the PIN, after a SELECT of the MF when inMF.
// A status that a wrong quirk explains becomes a *QuirkError.
func (p *CPS3) presentPIN(ch *apdu.Channel, enc []byte, inMF bool) error {
	if inMF {
		if err := iasecc.SelectMF(ch); err != nil {
			return err
		}
	}
	err := p.verifyErr(iasecc.Verify(ch, p.Quirks.VerifyP2PIN, enc), false)
	err = hintPINFormat(err, "VERIFY")
	return quirkHint(err, "VERIFY", keysPINRef, apdu.SWReferencedDataNotFound, apdu.SWIncorrectP1P2)
}

// verifyInMFForKeys: Authenticate and Sign VERIFY with the MF current only
// when the quirks say so and a SELECT does not clear the verified state
// (the application DF is selected after the VERIFY then).
func (p *CPS3) verifyInMFForKeys() bool { return p.Quirks.VerifyInMF && !p.Quirks.SelectClearsPIN }

// afterVerify names the quirks that explain a "security status not
// satisfied" right after a successful VERIFY, and a key not found in the
// DF the quirks name.
func afterVerify(err error, command string) error {
	err = quirkHint(err, command, keysLostPIN, apdu.SWSecurityStatus)
	return quirkHint(err, command, []string{"appDfPath"}, apdu.SWReferencedDataNotFound)
}

func (p *CPS3) selectAppDF(ch *apdu.Channel) error {
	df, err := p.path(p.Quirks.AppDFPath, "appDfPath")
	if err != nil {
		return err
	}
	_, err = iasecc.SelectPath(ch, df, false)
	return quirkHint(err, "SELECT of the application DF", []string{"appDfPath"}, apdu.SWFileNotFound)
}

// Authenticate signs caller data with the authentication key (§4.1):
//
//	00 A4 09 0C 04 3F 00 00 01          SELECT the key DF (keys are local)
//	00 20 00 01 04 ** ** ** **          VERIFY
//	00 22 41 A4 06 84 01 82 80 01 02    MSE SET AT
//	00 88 00 00 Lc data 00              INTERNAL AUTHENTICATE → 61 00
//	00 C0 00 00 00                      GET RESPONSE (256 bytes)
func (p *CPS3) Authenticate(ch *apdu.Channel, pin, data []byte) ([]byte, error) {
	if p.CardType.Contactless {
		return nil, fmt.Errorf("%w: no authentication over the contactless interface", ErrNotPermitted)
	}
	if len(data) == 0 || len(data) > MaxAuthInput {
		return nil, fmt.Errorf("%w: authentication data of %d bytes (1..%d)", ErrFormat, len(data), MaxAuthInput)
	}
	enc, err := EncodePIN(p.Quirks, pin, PINLength)
	if err != nil {
		return nil, err
	}
	defer clear(enc)
	inMF := p.verifyInMFForKeys()
	if !inMF {
		if err := p.selectAppDF(ch); err != nil {
			return nil, err
		}
	}
	if err := p.presentPIN(ch, enc, inMF); err != nil {
		return nil, err
	}
	if inMF {
		if err := p.selectAppDF(ch); err != nil {
			return nil, err
		}
	}
	if err := iasecc.MSESetAT(ch, KeyAuthentication, AlgAuthPKCS1); err != nil {
		return nil, afterVerify(err, "MSE SET AT")
	}
	sig, err := iasecc.InternalAuthenticate(ch, data)
	return sig, afterVerify(err, "INTERNAL AUTHENTICATE")
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
	inMF := p.verifyInMFForKeys()
	if !inMF {
		if err := p.selectAppDF(ch); err != nil {
			return nil, err
		}
	}
	if err := p.presentPIN(ch, enc, inMF); err != nil {
		return nil, err
	}
	if inMF {
		if err := p.selectAppDF(ch); err != nil {
			return nil, err
		}
	}
	// The empty message has an empty PSO HASH tail (80 00), which a card may
	// refuse (card-cpx.md §4.2, §8 item 4 [?]; Quirks.EmptyHashTail): the
	// complete hash can go as PSO CDS data instead (the Cryptolib's
	// CKM_RSA_PKCS path), after MSE SET DST only.
	hashInCDS := func() ([]byte, error) {
		h := sha256.Sum256(nil)
		sig, err := iasecc.PSOComputeDigitalSignatureOfHash(ch, h[:])
		return sig, quirkHint(afterVerify(err, "PSO CDS"), "PSO CDS with the hash as data", []string{"emptyHashTail"}, apdu.SWWrongData)
	}
	if len(msg) == 0 && p.Quirks.EmptyHashTail == EmptyTailCDS {
		if err := iasecc.MSESetDST(ch, KeySignature, AlgSigSHA256); err != nil {
			return nil, afterVerify(err, "MSE SET DST")
		}
		return hashInCDS()
	}
	if err := iasecc.MSESetHT(ch, AlgHashSHA256); err != nil {
		return nil, afterVerify(err, "MSE SET HT")
	}
	if err := iasecc.MSESetDST(ch, KeySignature, AlgSigSHA256); err != nil {
		return nil, afterVerify(err, "MSE SET DST")
	}
	if err := iasecc.PSOHash(ch, split); err != nil {
		if len(msg) == 0 && errors.Is(err, apdu.ErrWrongData) {
			if p.Quirks.EmptyHashTail != EmptyTailPSOHash {
				return hashInCDS()
			}
			return nil, quirkHint(err, "PSO HASH with an empty tail (80 00)", []string{"emptyHashTail"}, apdu.SWWrongData)
		}
		return nil, afterVerify(err, "PSO HASH")
	}
	sig, err := iasecc.PSOComputeDigitalSignature(ch)
	return sig, afterVerify(err, "PSO CDS")
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
	var err2 error
	if p.Quirks.ChangeReferenceP1 == 0x01 {
		// New PIN only; the VERIFY above is the check (ISO 7816-4 P1=01).
		err2 = iasecc.ChangeReferenceDataNewOnly(ch, p.Quirks.VerifyP2PIN, encNew)
	} else {
		err2 = iasecc.ChangeReferenceData(ch, p.Quirks.VerifyP2PIN, encOld, encNew)
	}
	err2 = quirkHint(p.verifyErr(err2, false), "CHANGE REFERENCE DATA", []string{"changeReferenceP1"}, apdu.SWIncorrectP1P2, apdu.SWWrongP1P2)
	return hintPINFormat(err2, "CHANGE REFERENCE DATA", "changeReferenceP1")
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
		err = hintPINFormat(err, "VERIFY of the PUK")
		return quirkHint(err, "VERIFY of the PUK", keysPUKRef, apdu.SWReferencedDataNotFound, apdu.SWIncorrectP1P2)
	}
	if err := iasecc.ResetRetryCounter(ch, 0x02, p.Quirks.VerifyP2PIN, encNew); err != nil {
		if errors.Is(err, apdu.ErrAuthBlocked) {
			return fmt.Errorf("%w: %w", ErrPUKBlocked, err)
		}
		// 69 82: the card wants another CHV verified first (SE #3 names it).
		err = quirkHint(err, "RESET RETRY COUNTER", []string{"verifyP2Puk"}, apdu.SWSecurityStatus)
		return hintPINFormat(err, "RESET RETRY COUNTER")
	}
	return nil
}
