package cpsverify_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
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
