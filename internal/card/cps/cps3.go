package cps

import (
	"crypto/sha256"
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

// readDER reads one DER object from the start of the current EF: a first
// chunk of ReadChunk bytes gives the DER header, then exactly the remaining
// bytes are read (no probing READ past the end, no FCP needed).
func readDER(ch *apdu.Channel) ([]byte, error) {
	first, _, err := iasecc.ReadBinary(ch, 0, ReadChunk)
	if err != nil {
		return nil, err
	}
	return completeDER(first, func(total int) ([]byte, error) {
		return iasecc.ReadFrom(ch, first, total, ReadChunk)
	})
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
	r := &certReader{
		decodePath: p.path,
		selectEF: func(path []byte) error {
			_, err := iasecc.SelectPath(ch, path, false)
			return err
		},
		readDER: func() ([]byte, error) { return readDER(ch) },
		check: func(der []byte, role KeyRole, path string) error {
			return checkCertRole(der, role, path, pathKeys)
		},
		pkcs15: func() (map[KeyRole][]byte, error) {
			certs, err := p.certificatesFromPKCS15(ch, appDF)
			if err != nil && !p.CardType.Contactless {
				err = quirkHint(err, "SELECT of the PKCS#15 ODF", []string{"appDfPath", "authCertPath", "signCertPath"}, apdu.SWFileNotFound)
			}
			return certs, err
		},
	}
	return r.readBoth(authPath, "authentication", signPath, "signature")
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

// verifyForKeys presents the PIN for Authenticate and Sign and leaves the
// application DF current: SELECT of the DF then VERIFY, or VERIFY in the MF
// then SELECT of the DF (verifyInMFForKeys).
func (p *CPS3) verifyForKeys(ch *apdu.Channel, enc []byte) error {
	inMF := p.verifyInMFForKeys()
	if !inMF {
		if err := p.selectAppDF(ch); err != nil {
			return err
		}
	}
	if err := p.presentPIN(ch, enc, inMF); err != nil {
		return err
	}
	if inMF {
		return p.selectAppDF(ch)
	}
	return nil
}

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
	if err := checkAuthInput(data); err != nil {
		return nil, err
	}
	enc, err := EncodePIN(p.Quirks, pin, PINLength)
	if err != nil {
		return nil, err
	}
	defer clear(enc)
	if err := p.verifyForKeys(ch, enc); err != nil {
		return nil, err
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
	if err := p.verifyForKeys(ch, enc); err != nil {
		return nil, err
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
	encOld, encNew, err := encodePINPair(p.Quirks, oldPIN, PINLength, newPIN)
	if err != nil {
		return err
	}
	defer clear(encOld)
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
	encPUK, encNew, err := encodePINPair(p.Quirks, puk, PUKLength, newPIN)
	if err != nil {
		return err
	}
	defer clear(encPUK)
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
