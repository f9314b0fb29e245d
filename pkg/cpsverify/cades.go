package cpsverify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	_ "crypto/sha1" // SHA-1 for legacy signing-certificate (v1) attributes
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"time"

	casn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/cpsagent/cpsagent/pkg/cpsid"
)

// MaxSigningTimeSkew is how far in the future (relative to Now) a claimed
// signing time may be.
const MaxSigningTimeSkew = 5 * time.Minute

// SignatureReport describes a verified detached CAdES signature.
type SignatureReport struct {
	// Signer is the identity from the signer certificate.
	Signer *cpsid.Identity `json:"signer"`
	// SigningTime is the signing-time attribute: a claim of the signer,
	// not a proof (a CAdES-BES has no timestamp). Nil when absent.
	SigningTime *time.Time `json:"signingTime"`
	// DigestAlgorithm is "SHA-256", "SHA-384" or "SHA-512".
	DigestAlgorithm string `json:"digestAlgorithm"`
	// SignatureAlgorithm is e.g. "SHA256-RSA" (PKCS#1 v1.5).
	SignatureAlgorithm string `json:"signatureAlgorithm"`
	// SigningCertificateAttribute is "v2" (RFC 5035) or "v1" (RFC 2634, SHA-1).
	SigningCertificateAttribute string `json:"signingCertificateAttribute"`
	// Certificate is the signer certificate and Chain the verified chain
	// (signer first, root last).
	Certificate *x509.Certificate   `json:"-"`
	Chain       []*x509.Certificate `json:"-"`
}

var digestAlgorithms = []struct {
	oid  asn1.ObjectIdentifier
	hash crypto.Hash
	name string
}{
	{oidSHA256, crypto.SHA256, "SHA-256"},
	{oidSHA384, crypto.SHA384, "SHA-384"},
	{oidSHA512, crypto.SHA512, "SHA-512"},
}

// VerifyCAdES verifies a detached CAdES-BES signature (DER CMS SignedData,
// one signer) of document. With Verifier.RequiredPolicies set, the
// signer's certificate must carry one of them. With Verifier.Revocation
// set, the signer's chain must not be revoked at Now (not at the claimed
// signing time: a CAdES-BES proves no time).
func (v *Verifier) VerifyCAdES(ctx context.Context, p7s, document []byte) (*SignatureReport, error) {
	return v.verifyCAdES(ctx, p7s, func(h crypto.Hash) ([]byte, error) {
		d := h.New()
		d.Write(document)
		return d.Sum(nil), nil
	})
}

// VerifyCAdESDigest is VerifyCAdES for a caller that only has the digest of
// the document, computed with the signature's digest algorithm (SHA-256 for
// signatures made by cpsagent).
func (v *Verifier) VerifyCAdESDigest(ctx context.Context, p7s, digest []byte) (*SignatureReport, error) {
	return v.verifyCAdES(ctx, p7s, func(h crypto.Hash) ([]byte, error) {
		if len(digest) != h.Size() {
			return nil, fmt.Errorf("%w: digest of %d bytes for %v", ErrDigestMismatch, len(digest), h)
		}
		return digest, nil
	})
}

func (v *Verifier) verifyCAdES(ctx context.Context, p7s []byte, digestOf func(crypto.Hash) ([]byte, error)) (*SignatureReport, error) {
	if err := v.checkConfig(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sd, err := parseSignedData(p7s)
	if err != nil {
		return nil, err
	}
	if len(sd.signers) != 1 {
		return nil, fmt.Errorf("%w: %d signers, want 1", ErrFormat, len(sd.signers))
	}
	if !sd.eContentType.Equal(oidData) || sd.hasEContent {
		return nil, fmt.Errorf("%w: not a detached signature of id-data", ErrFormat)
	}
	si := &sd.signers[0]
	report := &SignatureReport{}

	// Digest algorithm.
	var hash crypto.Hash
	for _, d := range digestAlgorithms {
		if d.oid.Equal(si.digestAlg) {
			hash, report.DigestAlgorithm = d.hash, d.name
		}
	}
	if hash == 0 {
		return nil, fmt.Errorf("%w: digest algorithm %v", ErrUnsupportedAlgorithm, si.digestAlg)
	}
	if si.signedAttrs == nil {
		return nil, fmt.Errorf("%w: no signed attributes (not CAdES)", ErrFormat)
	}

	// Signer certificate.
	var cert *x509.Certificate
	for _, c := range sd.certs {
		if (si.serial != nil && bytes.Equal(c.RawIssuer, si.issuer) && c.SerialNumber.Cmp(si.serial) == 0) ||
			(len(si.ski) > 0 && bytes.Equal(c.SubjectKeyId, si.ski)) {
			cert = c
			break
		}
	}
	if cert == nil {
		return nil, fmt.Errorf("%w: signer certificate not included", ErrFormat)
	}
	report.Certificate = cert

	// content-type and message-digest.
	ctv, ok, err := si.attribute(oidContentType)
	if err != nil {
		return nil, err
	}
	var ct asn1.ObjectIdentifier
	if !ok || !ctv.ReadASN1ObjectIdentifier(&ct) || !ctv.Empty() || !ct.Equal(sd.eContentType) {
		return nil, fmt.Errorf("%w: content-type attribute missing or not id-data", ErrFormat)
	}
	mdv, ok, err := si.attribute(oidMessageDigest)
	if err != nil {
		return nil, err
	}
	var md []byte
	if !ok || !mdv.ReadASN1Bytes(&md, casn1.OCTET_STRING) || !mdv.Empty() {
		return nil, fmt.Errorf("%w: message-digest attribute missing", ErrFormat)
	}
	want, err := digestOf(hash)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(md, want) != 1 {
		return nil, ErrDigestMismatch
	}

	// Signature over the signed attributes.
	sigAlg, err := signatureAlgorithm(si.sigAlg, hash, cert.PublicKey)
	if err != nil {
		return nil, err
	}
	report.SignatureAlgorithm = sigAlg.String()
	if err := cert.CheckSignature(sigAlg, si.signedAttrs, si.signature); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignature, err)
	}

	// signing-certificate-v2 (or v1) must designate the signer certificate.
	if err := checkSigningCertificate(si, cert, report); err != nil {
		return nil, err
	}

	// Signing time (claimed).
	now := v.now()
	if stv, ok, err := si.attribute(oidSigningTime); err != nil {
		return nil, err
	} else if ok {
		st, err := parseTime(stv)
		if err != nil {
			return nil, err
		}
		if st.Before(cert.NotBefore) || st.After(cert.NotAfter) || st.After(now.Add(MaxSigningTimeSkew)) {
			return nil, fmt.Errorf("%w: %s", ErrSigningTime, st.UTC().Format(time.RFC3339))
		}
		st = st.UTC()
		report.SigningTime = &st
	}

	// Certificate: validity, purpose, chain, environment.
	if err := checkValidity(cert, now); err != nil {
		return nil, err
	}
	if cert.KeyUsage&x509.KeyUsageContentCommitment == 0 {
		return nil, fmt.Errorf("%w: signature needs keyUsage nonRepudiation", ErrKeyUsage)
	}
	chains, err := v.verifyChain(cert, sd.certs, now, x509.ExtKeyUsageAny)
	if err != nil {
		return nil, err
	}
	if err := v.checkPolicies(cert); err != nil {
		return nil, err
	}
	if report.Chain, err = v.checkRevocation(ctx, chains, now); err != nil {
		return nil, err
	}
	if report.Signer, err = cpsid.FromCertificate(cert); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCertificateMalformed, err)
	}
	if err := v.checkCardEnvironment(report.Signer); err != nil {
		return nil, err
	}
	return report, nil
}

// signatureAlgorithm maps the SignerInfo signatureAlgorithm to an x509
// algorithm consistent with the digest algorithm and the key.
func signatureAlgorithm(oid asn1.ObjectIdentifier, hash crypto.Hash, pub any) (x509.SignatureAlgorithm, error) {
	rsaAlgs := map[crypto.Hash]x509.SignatureAlgorithm{crypto.SHA256: x509.SHA256WithRSA, crypto.SHA384: x509.SHA384WithRSA, crypto.SHA512: x509.SHA512WithRSA}
	ecAlgs := map[crypto.Hash]x509.SignatureAlgorithm{crypto.SHA256: x509.ECDSAWithSHA256, crypto.SHA384: x509.ECDSAWithSHA384, crypto.SHA512: x509.ECDSAWithSHA512}
	explicit := map[string]crypto.Hash{
		oidSHA256WithRSA.String(): crypto.SHA256, oidSHA384WithRSA.String(): crypto.SHA384, oidSHA512WithRSA.String(): crypto.SHA512,
		oidECDSAWithSHA256.String(): crypto.SHA256, oidECDSAWithSHA384.String(): crypto.SHA384, oidECDSAWithSHA512.String(): crypto.SHA512,
	}
	if h, ok := explicit[oid.String()]; ok && h != hash {
		return 0, fmt.Errorf("%w: signature algorithm %v disagrees with digest algorithm %v", ErrUnsupportedAlgorithm, oid, hash)
	}
	switch pub.(type) {
	case *rsa.PublicKey:
		if oid.Equal(oidRSAEncryption) || oid.Equal(oidSHA256WithRSA) || oid.Equal(oidSHA384WithRSA) || oid.Equal(oidSHA512WithRSA) {
			return rsaAlgs[hash], nil
		}
	case *ecdsa.PublicKey:
		if oid.Equal(oidECDSAWithSHA256) || oid.Equal(oidECDSAWithSHA384) || oid.Equal(oidECDSAWithSHA512) {
			return ecAlgs[hash], nil
		}
	}
	return 0, fmt.Errorf("%w: signature algorithm %v with a %T key", ErrUnsupportedAlgorithm, oid, pub)
}

func checkSigningCertificate(si *signerInfo, cert *x509.Certificate, report *SignatureReport) error {
	v2, has2, err := si.attribute(oidSigningCertificateV2)
	if err != nil {
		return err
	}
	v1, has1, err := si.attribute(oidSigningCertificate)
	if err != nil {
		return err
	}
	var id essCertID
	switch {
	case has2:
		report.SigningCertificateAttribute = "v2"
		id, err = parseSigningCertificate(v2, true)
	case has1:
		report.SigningCertificateAttribute = "v1"
		id, err = parseSigningCertificate(v1, false)
	default:
		return fmt.Errorf("%w: no signing-certificate(-v2) attribute", ErrSigningCertificate)
	}
	if err != nil {
		return err
	}
	var h crypto.Hash
	switch {
	case id.hashAlg.Equal(oidSHA1) && !has2:
		h = crypto.SHA1
	default:
		for _, d := range digestAlgorithms {
			if d.oid.Equal(id.hashAlg) {
				h = d.hash
			}
		}
	}
	if h == 0 || !h.Available() {
		return fmt.Errorf("%w: certificate hash algorithm %v", ErrSigningCertificate, id.hashAlg)
	}
	d := h.New()
	d.Write(cert.Raw)
	if subtle.ConstantTimeCompare(d.Sum(nil), id.certHash) != 1 {
		return fmt.Errorf("%w: certificate hash differs", ErrSigningCertificate)
	}
	if !id.matchesIssuer(cert) {
		return fmt.Errorf("%w: issuerSerial differs", ErrSigningCertificate)
	}
	return nil
}
