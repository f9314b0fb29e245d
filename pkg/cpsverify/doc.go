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
// Revocation is checked when Verifier.Revocation is set, fail closed: a
// certificate whose status is unknown is refused unless RevocationSoftFail
// is set. CRLChecker uses CRLs such as the IGC-Santé ones (LoadCRLs);
// OCSPChecker asks the OCSP responder a certificate names (RFC 6960:
// answer signed by the issuer or by a responder it delegated with the
// OCSPSigning extended key usage, about this very certificate, current
// within a small clock skew, optionally with a nonce);
// FallbackChecker{ocspChecker, crlChecker} tries OCSP, then the CRLs. A
// revoked certificate gives a *RevokedError (matching ErrRevoked) with
// the revocation time and reason. Nothing goes on the network unless
// CRLChecker.Fetch (HTTPFetcher) or OCSPChecker.Query (HTTPOCSPQuery) is
// set.
//
// Verifier.RequiredPolicies requires the card certificate to carry one
// of the given certificate policy OIDs (ErrCertificatePolicy otherwise).
// No IGC-Santé OID is built in: the card policies sit under the ANS arc
// 1.2.250.1.213.1.7, but the exact OIDs of the card certificates are not
// confirmed; take them from the certification policy in force or from a
// real card.
//
// Not covered: the revocation of an OCSP responder's own certificate
// (id-pkix-ocsp-nocheck is assumed), responders trusted outside the CA
// hierarchy (a designated responder certificate), and policy processing
// along the chain (policy mappings and constraints): only the card
// certificate's own policies are read.
//
// The CMS parser is this package's own (golang.org/x/crypto/cryptobyte,
// DER only): it verifies the signature over the exact received bytes of the
// signed attributes and checks the signing-certificate-v2 attribute, which
// github.com/smallstep/pkcs7 does not (it re-encodes the attributes and
// ignores ESS attributes). smallstep/pkcs7 is used only to read BER-encoded
// certificate bundles in LoadCertificates, and in tests as an independent
// implementation.
package cpsverify
