package cpsverify_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/cpsagent/cpsagent/pkg/cpsid/cpstest"
	"github.com/cpsagent/cpsagent/pkg/cpsverify"
)

// A portal back end authenticating a CPS holder with a Web eID token.
// In production Roots/Intermediates come from
// cpsverify.LoadTrust("Chaine_de_certification-IGC-Sante.p7b").
func ExampleVerifier_VerifyAuthToken() {
	ctx := context.Background()
	const origin = "https://portail.example.fr"

	// A throw-away test PKI and card stand in for IGC-Santé and the CPS.
	pki, err := cpstest.NewPKI(nil)
	if err != nil {
		log.Fatal(err)
	}
	cardKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	authCert, _, err := pki.Issue(cpstest.Holders()["medecin"], &cardKey.PublicKey, &cardKey.PublicKey,
		time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		log.Fatal(err)
	}

	v := &cpsverify.Verifier{
		Roots:          pki.Roots(),
		Intermediates:  pki.Intermediates(),
		AllowedOrigins: []string{origin},
		AllowTestCards: true,
	}

	// 1. The portal issues a nonce and keeps it in the user's session.
	nonce, err := v.IssueNonce(ctx)
	if err != nil {
		log.Fatal(err)
	}

	// 2. The agent signs hash(origin) ‖ hash(nonce) with the card's
	// authentication key and returns a web-eid:1.0 token.
	data, hash, _ := cpsverify.TokenSignedData("RS256", origin, nonce)
	digest := hash.New()
	digest.Write(data)
	sig, _ := rsa.SignPKCS1v15(nil, cardKey, crypto.SHA256, digest.Sum(nil))
	body, _ := json.Marshal(map[string]string{
		"unverifiedCertificate": base64.StdEncoding.EncodeToString(authCert.Raw),
		"algorithm":             "RS256",
		"signature":             base64.StdEncoding.EncodeToString(sig),
		"format":                "web-eid:1.0",
		"appVersion":            "https://cpsagent.example/1.0",
	})

	// 3. The portal verifies the token against its own origin and the
	// nonce from the session.
	token, err := cpsverify.ParseAuthToken(body)
	if err != nil {
		log.Fatal(err)
	}
	id, err := v.VerifyAuthToken(ctx, token, origin, nonce)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id.Summary())
	fmt.Println("RPPS:", *id.RPPS, "test card:", id.Card.Test)

	// A second use of the same token is a replay.
	_, err = v.VerifyAuthToken(ctx, token, origin, nonce)
	fmt.Println(err)
	// Output:
	// KIT DOC0036791 — Médecin
	// RPPS: 99700367917 test card: true
	// cpsverify: nonce rejected: nonce already used
}

// Revocation checking with the CRLs a portal downloads from IGC-Santé
// (here a test PKI's). The verifier is given the checker:
//
//	v := &cpsverify.Verifier{Roots: roots, Intermediates: inters,
//		AllowedOrigins: []string{origin}, Revocation: checker}
//
// and then refuses a revoked card (ErrRevoked), and a card whose CA has no
// current CRL (ErrRevocationUnknown: fail closed), in VerifyAuthToken as in
// VerifyCAdES. Check is what the verifier calls for each certificate.
func ExampleCRLChecker() {
	ctx := context.Background()
	pki, err := cpstest.NewPKI(nil)
	if err != nil {
		log.Fatal(err)
	}
	cardKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Now()
	authCert, signCert, err := pki.Issue(cpstest.Holders()["medecin"], &cardKey.PublicKey, &cardKey.PublicKey,
		now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	// The CA revokes the authentication certificate; the portal loads the
	// CRL file (cpsverify.LoadCRLs("ac-fort-personnes.crl") in production).
	crl, err := pki.IssueCRL(cpstest.CRLOptions{Revoked: []x509.RevocationListEntry{
		cpstest.Revoke(authCert, time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), cpstest.ReasonKeyCompromise)}})
	if err != nil {
		log.Fatal(err)
	}
	crls, err := cpsverify.ParseCRLs(cpstest.CRLPEM(crl.Raw))
	if err != nil {
		log.Fatal(err)
	}
	checker := cpsverify.NewCRLChecker(crls...)

	fmt.Println(checker.Check(ctx, signCert, pki.Intermediate, now))
	err = checker.Check(ctx, authCert, pki.Intermediate, now)
	fmt.Println(errors.Is(err, cpsverify.ErrRevoked), strings.Contains(err.Error(), "revoked on 2026-03-01T09:00:00Z, reason keyCompromise"))

	checker.SetCRLs() // no CRL any more: status unknown
	err = checker.Check(ctx, signCert, pki.Intermediate, now)
	fmt.Println(errors.Is(err, cpsverify.ErrRevocationUnknown), errors.Is(err, cpsverify.ErrCRLNotFound))
	// Output:
	// <nil>
	// true true
	// true true
}

// Revocation checking with OCSP, at the responder a card certificate names
// in its authority information access extension (here a test responder on
// the loopback interface). The library asks nothing on the network unless
// given a Query function; the verifier is then given the checker, alone
// or before the CRLs:
//
//	v.Revocation = cpsverify.FallbackChecker{ocspChecker, crlChecker}
//
// A revoked card gives a *RevokedError (ErrRevoked); a responder that is
// down, answers "unknown" or sends an answer that cannot be trusted gives
// ErrRevocationUnknown, which the verifier refuses unless
// RevocationSoftFail is set.
func ExampleOCSPChecker() {
	ctx := context.Background()
	pki, err := cpstest.NewPKI(nil)
	if err != nil {
		log.Fatal(err)
	}
	responder, err := pki.StartOCSPResponder(cpstest.OCSPResponderOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer responder.Close()

	cardKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	holder := cpstest.Holders()["medecin"]
	holder.OCSPServers = []string{responder.URL}
	now := time.Now()
	authCert, signCert, err := pki.Issue(holder, &cardKey.PublicKey, &cardKey.PublicKey, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	responder.Revoke(authCert, time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), cpstest.ReasonKeyCompromise)

	checker := &cpsverify.OCSPChecker{Query: cpsverify.HTTPOCSPQuery(nil, 0)}
	fmt.Println(checker.Check(ctx, signCert, pki.Intermediate, now))
	err = checker.Check(ctx, authCert, pki.Intermediate, now)
	var revoked *cpsverify.RevokedError
	if errors.As(err, &revoked) {
		fmt.Println("revoked on", revoked.RevokedAt.Format(time.DateOnly), revoked.ReasonName())
	}

	// The responder fails: status unknown, fail closed.
	responder.SetFault(cpstest.OCSPFaultHTTP500)
	err = (&cpsverify.OCSPChecker{Query: cpsverify.HTTPOCSPQuery(nil, 0)}).Check(ctx, signCert, pki.Intermediate, now)
	fmt.Println(errors.Is(err, cpsverify.ErrRevocationUnknown))
	// Output:
	// <nil>
	// revoked on 2026-03-01 keyCompromise
	// true
}
