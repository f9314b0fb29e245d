package cpstest

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// RFC 5280 §5.3.1 revocation reasons, for CRLOptions entries and
// OCSPStatus.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonCACompromise         = 2
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
	ReasonRemoveFromCRL        = 8
	ReasonPrivilegeWithdrawn   = 9
	ReasonAACompromise         = 10
)

// CRLOptions configures IssueCRL.
type CRLOptions struct {
	// ByRoot makes the root sign the CRL (an authority revocation list,
	// for the intermediate); by default the intermediate signs it (the
	// CRL of card certificates).
	ByRoot bool
	// ThisUpdate and NextUpdate bound the CRL; zero ThisUpdate means now
	// minus an hour, zero NextUpdate ThisUpdate plus 7 days.
	ThisUpdate, NextUpdate time.Time
	// Number is the cRLNumber; nil means ThisUpdate in Unix seconds, which
	// grows with each issue as a CA's numbers do.
	Number *big.Int
	// Revoked lists the revoked certificates (see Revoke).
	Revoked []x509.RevocationListEntry
	// Extensions are added to the CRL as they are (e.g. a delta CRL
	// indicator or an issuing distribution point).
	Extensions []pkix.Extension
}

// Revoke returns the CRL entry revoking c at the given time for reason
// (ReasonUnspecified leaves the reasonCode extension out).
func Revoke(c *x509.Certificate, at time.Time, reason int) x509.RevocationListEntry {
	return x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: at, ReasonCode: reason}
}

// IssueCRL returns an X.509 v2 CRL signed by the intermediate CA (or the
// root with o.ByRoot), shaped as IGC-Santé publishes them: the issuer's
// name, authorityKeyIdentifier, cRLNumber, SHA-256 with RSA. The DER form
// is the result's Raw field; CRLPEM encodes it as PEM.
func (p *PKI) IssueCRL(o CRLOptions) (*x509.RevocationList, error) {
	issuer, key := p.Intermediate, p.IntermediateKey
	if o.ByRoot {
		issuer, key = p.Root, p.RootKey
	}
	if issuer == nil || key == nil {
		return nil, errors.New("cpstest: PKI has no CA to sign the CRL")
	}
	tu, nu := o.ThisUpdate, o.NextUpdate
	if tu.IsZero() {
		tu = time.Now().Add(-time.Hour)
	}
	if nu.IsZero() {
		nu = tu.Add(7 * 24 * time.Hour)
	}
	number := o.Number
	if number == nil {
		number = big.NewInt(tu.Unix())
	}
	rnd := p.rand
	if rnd == nil {
		rnd = rand.Reader
	}
	der, err := x509.CreateRevocationList(rnd, &x509.RevocationList{
		SignatureAlgorithm:        x509.SHA256WithRSA,
		RevokedCertificateEntries: o.Revoked,
		Number:                    number,
		ThisUpdate:                tu,
		NextUpdate:                nu,
		ExtraExtensions:           o.Extensions,
	}, issuer, key)
	if err != nil {
		return nil, fmt.Errorf("cpstest: creating CRL: %w", err)
	}
	return x509.ParseRevocationList(der)
}

// CRLPEM encodes DER CRLs (RevocationList.Raw) as "X509 CRL" PEM blocks,
// the form openssl crl writes.
func CRLPEM(ders ...[]byte) []byte {
	var b bytes.Buffer
	for _, d := range ders {
		_ = pem.Encode(&b, &pem.Block{Type: "X509 CRL", Bytes: d})
	}
	return b.Bytes()
}
