// Package cpsverify lets a portal server (relying party) verify what a CPS
// card produced through cpsagent:
//
//   - Web eID authentication tokens ("web-eid:1.0"): VerifyAuthToken checks
//     the token against the portal's own origin and a single-use nonce, the
//     card certificate against the IGC-Santé roots, and returns the holder
//     identity (pkg/cpsid);
//   - detached CAdES-BES signatures: VerifyCAdES / VerifyCAdESDigest.
//
// Typical set-up:
//
//	roots, inters, err := cpsverify.LoadTrust("Chaine_de_certification-IGC-Sante.p7b")
//	v := &cpsverify.Verifier{Roots: roots, Intermediates: inters,
//		AllowedOrigins: []string{"https://portail.example.fr"}}
//	nonce, _ := v.IssueNonce(ctx)        // store in the user's session
//	token, _ := cpsverify.ParseAuthToken(body)
//	id, err := v.VerifyAuthToken(ctx, token, "https://portail.example.fr", nonce)
//
// The origin passed to VerifyAuthToken must be the portal's configured
// origin, never a value taken from the request: binding the token to it is
// what defeats a phishing site relaying the challenge (see Web eID's token
// format specification).
//
// Every failure is a wrapped sentinel error (ErrSignature, ErrNonceReplayed,
// ErrCertificateUntrusted …) to be tested with errors.Is.
//
// Revocation is checked when Verifier.Revocation is set, e.g. to a
// CRLChecker holding the IGC-Santé CRLs (LoadCRLs), fail closed: a
// certificate whose status is unknown is refused unless RevocationSoftFail
// is set. Nothing is downloaded unless CRLChecker.Fetch is set
// (HTTPFetcher).
//
// Not covered: OCSP (implement RevocationChecker) and certificate policy
// OIDs, whose values for card certificates are not yet known; a portal
// that needs them must add them on top of the returned chain.
//
// The CMS parser is this package's own (golang.org/x/crypto/cryptobyte,
// DER only): it verifies the signature over the exact received bytes of the
// signed attributes and checks the signing-certificate-v2 attribute, which
// github.com/smallstep/pkcs7 does not (it re-encodes the attributes and
// ignores ESS attributes). smallstep/pkcs7 is used only to read BER-encoded
// certificate bundles in LoadCertificates, and in tests as an independent
// implementation.
package cpsverify
