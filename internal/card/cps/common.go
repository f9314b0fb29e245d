package cps

import (
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// Logic shared by the CPS3 (IAS-ECC) and CPS4 (ChipDoc) profiles. The
// profiles differ in how they reach a file and send a command; what they
// do with the answers is here. Card facts stay in Quirks and CPS4Facts.

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

// completeDER finishes the read of one DER object from the start of the
// current EF: first is a first chunk, which gives the DER header; readRest
// then reads exactly up to total bytes (no probing READ past the end, no
// FCP needed).
func completeDER(first []byte, readRest func(total int) ([]byte, error)) ([]byte, error) {
	total, err := derLength(first)
	if err != nil {
		return nil, err
	}
	if total <= len(first) {
		return first[:total], nil
	}
	return readRest(total)
}

// certReader reads the two certificates of a card (ReadCertificates):
// each by a SELECT of its default EF and a read of the DER object there;
// when a default EF is absent (6A 82), the certificate of the same role in
// the PKCS#15 directory, which is read once for both. The profiles differ
// only in the functions.
type certReader struct {
	// decodePath turns a default path (what names the certificate) into
	// the path to select.
	decodePath func(path, what string) ([]byte, error)
	selectEF   func(path []byte) error
	// readDER reads the DER object of the current EF.
	readDER func() ([]byte, error)
	// check, when set, vets a certificate read at its default path.
	check func(der []byte, role KeyRole, path string) error
	// pkcs15 reads the certificates of the PKCS#15 directory, by role.
	pkcs15 func() (map[KeyRole][]byte, error)

	fromP15 map[KeyRole][]byte
}

// readBoth reads the authentication certificate, then the signature one;
// authWhat and signWhat name them in errors.
func (r *certReader) readBoth(authPath, authWhat, signPath, signWhat string) (auth, sign []byte, err error) {
	if auth, err = r.read(RoleAuthentication, authPath, authWhat); err != nil {
		return nil, nil, err
	}
	if sign, err = r.read(RoleSignature, signPath, signWhat); err != nil {
		return nil, nil, err
	}
	return auth, sign, nil
}

// read reads the certificate of role whose default EF is at path.
func (r *certReader) read(role KeyRole, path, what string) ([]byte, error) {
	b, err := r.decodePath(path, what)
	if err != nil {
		return nil, err
	}
	err = r.selectEF(b)
	if err == nil {
		der, err := r.readDER()
		if err != nil {
			return nil, fmt.Errorf("reading %s certificate: %w", what, err)
		}
		if r.check != nil {
			if err := r.check(der, role, path); err != nil {
				return nil, err
			}
		}
		return der, nil
	}
	if !errors.Is(err, apdu.ErrFileNotFound) {
		return nil, fmt.Errorf("reading %s certificate: %w", what, err)
	}
	if r.fromP15 == nil {
		if r.fromP15, err = r.pkcs15(); err != nil {
			return nil, fmt.Errorf("reading %s certificate: default path absent, PKCS#15: %w", what, err)
		}
	}
	der, ok := r.fromP15[role]
	if !ok {
		return nil, fmt.Errorf("%w: no %s certificate in the PKCS#15 CDF", ErrNoCertificate, what)
	}
	return der, nil
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

// checkAuthInput checks the size of the data to authenticate, before any
// APDU.
func checkAuthInput(data []byte) error {
	if len(data) == 0 || len(data) > MaxAuthInput {
		return fmt.Errorf("%w: authentication data of %d bytes (1..%d)", ErrFormat, len(data), MaxAuthInput)
	}
	return nil
}

// encodePINPair encodes, following the quirks, the secret presented first
// (the current PIN, or the PUK: digits long) and the new PIN, for ChangePIN
// and Unblock. On success the caller zeroes both after use; on error
// nothing is left to zero.
func encodePINPair(q Quirks, first []byte, digits int, newPIN []byte) (encFirst, encNew []byte, err error) {
	encFirst, err = EncodePIN(q, first, digits)
	if err != nil {
		return nil, nil, err
	}
	encNew, err = EncodePIN(q, newPIN, PINLength)
	if err != nil {
		clear(encFirst)
		return nil, nil, err
	}
	return encFirst, encNew, nil
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
