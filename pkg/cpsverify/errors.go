package cpsverify

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors returned by the verifier. They are wrapped with context; test them
// with errors.Is. The ErrNonce* errors all match ErrNonce, the
// ErrCertificate* validity errors match ErrCertificateValidity,
// ErrCRLNotFound and ErrOCSPNoResponder match ErrRevocationUnknown. A
// revoked certificate is reported as a *RevokedError (errors.As), which
// matches ErrRevoked.
var (
	// ErrConfig reports a Verifier that cannot verify anything (no roots).
	ErrConfig = errors.New("cpsverify: verifier misconfigured")
	// ErrFormat reports a token or CMS structure that does not parse or
	// has an unsupported format/version.
	ErrFormat = errors.New("cpsverify: malformed input")
	// ErrUnsupportedAlgorithm reports an algorithm outside the allow-list.
	ErrUnsupportedAlgorithm = errors.New("cpsverify: unsupported algorithm")
	// ErrOriginMismatch reports an origin that is not allowed, is not a
	// plain https origin, or that the token was not signed for.
	ErrOriginMismatch = errors.New("cpsverify: origin mismatch")

	ErrNonce          = errors.New("cpsverify: nonce rejected")
	ErrNonceUnknown   = fmt.Errorf("%w: unknown nonce", ErrNonce)
	ErrNonceReplayed  = fmt.Errorf("%w: nonce already used", ErrNonce)
	ErrNonceExpired   = fmt.Errorf("%w: nonce expired", ErrNonce)
	ErrNonceStoreFull = fmt.Errorf("%w: nonce store full", ErrNonce)

	// ErrCertificateMalformed reports a certificate that does not parse.
	ErrCertificateMalformed   = fmt.Errorf("%w: certificate", ErrFormat)
	ErrCertificateValidity    = errors.New("cpsverify: certificate outside its validity period")
	ErrCertificateExpired     = fmt.Errorf("%w: expired", ErrCertificateValidity)
	ErrCertificateNotYetValid = fmt.Errorf("%w: not yet valid", ErrCertificateValidity)
	// ErrCertificateUntrusted reports a certificate that does not chain to
	// the configured roots.
	ErrCertificateUntrusted = errors.New("cpsverify: certificate not trusted")
	// ErrCertificatePolicy reports a certificate that carries none of the
	// certificate policies listed in Verifier.RequiredPolicies.
	ErrCertificatePolicy = errors.New("cpsverify: certificate policy not accepted")
	// ErrKeyUsage reports a certificate used for the wrong purpose
	// (authentication with the signature certificate or the reverse).
	ErrKeyUsage = errors.New("cpsverify: certificate key usage does not allow this operation")
	// ErrTestCard reports a test-PKI card while test cards are not allowed.
	ErrTestCard = errors.New("cpsverify: test card not allowed")
	// ErrProductionCard reports a production card while RequireTestCards is set.
	ErrProductionCard = errors.New("cpsverify: production card refused (test cards required)")
	// ErrSignature reports a signature that does not verify.
	ErrSignature = errors.New("cpsverify: signature invalid")

	// ErrDigestMismatch reports a CAdES message-digest that does not match
	// the document.
	ErrDigestMismatch = errors.New("cpsverify: document digest mismatch")
	// ErrSigningCertificate reports a signing-certificate(-v2) attribute
	// that is missing or names another certificate.
	ErrSigningCertificate = errors.New("cpsverify: signing-certificate attribute does not match the signer")
	// ErrSigningTime reports a claimed signing time outside the certificate
	// validity or in the future.
	ErrSigningTime = errors.New("cpsverify: implausible signing time")

	// ErrRevoked reports a certificate of the chain listed as revoked (or
	// suspended); the message gives its serial, revocation time and reason.
	ErrRevoked = errors.New("cpsverify: certificate revoked")
	// ErrRevocationUnknown reports a certificate whose revocation status
	// could not be established: no CRL for its issuer, CRL out of date or
	// not signed by the issuer, download failure, OCSP responder down or
	// answering "unknown", OCSP response not signed by the issuer or its
	// delegate, out of date, or for another certificate. Refused unless
	// Verifier.RevocationSoftFail is set.
	ErrRevocationUnknown = errors.New("cpsverify: revocation status unknown")
	// ErrCRLNotFound is ErrRevocationUnknown when the checker has no CRL
	// at all naming the issuer.
	ErrCRLNotFound = fmt.Errorf("%w: no CRL for the issuer", ErrRevocationUnknown)
	// ErrOCSPNoResponder is ErrRevocationUnknown when OCSPChecker has no
	// responder to ask: the certificate names none (and no ResponderURL
	// applies), or network access was not enabled (OCSPChecker.Query is
	// nil). Like ErrCRLNotFound, it leaves an intermediate CA unchecked.
	ErrOCSPNoResponder = fmt.Errorf("%w: no OCSP responder", ErrRevocationUnknown)
	// ErrCRLMalformed reports a CRL file that does not parse (or a delta
	// CRL) in ParseCRLs and LoadCRLs.
	ErrCRLMalformed = fmt.Errorf("%w: CRL", ErrFormat)
)

// RevokedError is the error CRLChecker and OCSPChecker return for a
// revoked (or suspended) certificate. It matches ErrRevoked; errors.As
// gives the details:
//
//	var re *cpsverify.RevokedError
//	if errors.As(err, &re) { log.Print(re.RevokedAt, re.ReasonName()) }
type RevokedError struct {
	// Certificate is the revoked certificate (the card's, or a CA's).
	Certificate *x509.Certificate
	// RevokedAt is the revocation time the CA gives.
	RevokedAt time.Time
	// Reason is the CRLReason code (RFC 5280 §5.3.1): 0 unspecified
	// (also when the CA gives none), 1 keyCompromise, 2 cACompromise,
	// 3 affiliationChanged, 4 superseded, 5 cessationOfOperation,
	// 6 certificateHold (suspended), 9 privilegeWithdrawn …
	Reason int
	// Source says which CRL or OCSP response told it.
	Source string
}

func (e *RevokedError) Error() string {
	if e.Certificate == nil {
		return fmt.Sprintf("%v: revoked on %s, %s (%s)", ErrRevoked, e.RevokedAt.UTC().Format(time.RFC3339), reasonName(e.Reason), e.Source)
	}
	return fmt.Sprintf("%v: %q (serial %s) revoked on %s, %s (%s)", ErrRevoked, certName(e.Certificate),
		e.Certificate.SerialNumber.Text(16), e.RevokedAt.UTC().Format(time.RFC3339), reasonName(e.Reason), e.Source)
}

// Unwrap makes the error match ErrRevoked.
func (e *RevokedError) Unwrap() error { return ErrRevoked }

// ReasonName is the RFC 5280 name of Reason ("keyCompromise" …), or its
// number.
func (e *RevokedError) ReasonName() string {
	return strings.TrimPrefix(reasonName(e.Reason), "reason ")
}
