package cpsverify

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerifyAuthToken(t *testing.T) {
	w := getWorld(t)
	type env struct {
		v     *Verifier
		clock *clock
		nonce string
	}
	ok := func(t *testing.T, e env) AuthToken { return makeToken(t, w.auth, w.authKey, "RS256", originA, e.nonce) }

	tests := []struct {
		name      string
		configure func(v *Verifier)
		token     func(t *testing.T, e env) AuthToken
		before    func(t *testing.T, e env) // runs after the token is made
		origin    string
		nonce     func(e env) string
		want      error
	}{
		{name: "valid RS256", token: ok},
		{name: "valid PS256", token: func(t *testing.T, e env) AuthToken {
			return makeToken(t, w.auth, w.authKey, "PS256", originA, e.nonce)
		}},
		{name: "valid RS512", token: func(t *testing.T, e env) AuthToken {
			return makeToken(t, w.auth, w.authKey, "RS512", originA, e.nonce)
		}},
		{name: "valid ES256", token: func(t *testing.T, e env) AuthToken {
			return makeToken(t, w.ecAuth, w.ecKey, "ES256", originA, e.nonce)
		}},
		{name: "valid on second origin with port", origin: originB, token: func(t *testing.T, e env) AuthToken {
			return makeToken(t, w.auth, w.authKey, "RS256", originB, e.nonce)
		}},
		{name: "forged signature", want: ErrSignature, token: func(t *testing.T, e env) AuthToken {
			tok := ok(t, e)
			sig, _ := base64.StdEncoding.DecodeString(tok.Signature)
			sig[len(sig)/2] ^= 0x01
			tok.Signature = base64.StdEncoding.EncodeToString(sig)
			return tok
		}},
		{name: "signed by another key", want: ErrSignature, token: func(t *testing.T, e env) AuthToken {
			return makeToken(t, w.auth, w.signKey, "RS256", originA, e.nonce)
		}},
		{name: "algorithm label differs from signature (RS vs PS)", want: ErrSignature, token: func(t *testing.T, e env) AuthToken {
			tok := makeToken(t, w.auth, w.authKey, "RS256", originA, e.nonce)
			tok.Algorithm = "PS256"
			return tok
		}},
		{name: "ES algorithm with RSA key", want: ErrSignature, token: func(t *testing.T, e env) AuthToken {
			tok := ok(t, e)
			tok.Algorithm = "ES256"
			return tok
		}},
		{name: "signed for another nonce", want: ErrSignature, token: func(t *testing.T, e env) AuthToken {
			return makeToken(t, w.auth, w.authKey, "RS256", originA, strings.Repeat("A", 44))
		}},
		{name: "replayed nonce", want: ErrNonceReplayed, token: ok, before: func(t *testing.T, e env) {
			if _, err := e.v.VerifyAuthToken(context.Background(), ok(t, e), originA, e.nonce); err != nil {
				t.Fatalf("first use: %v", err)
			}
		}},
		{name: "expired nonce", want: ErrNonceExpired, token: ok, before: func(t *testing.T, e env) {
			e.clock.Advance(5*time.Minute + time.Second)
		}},
		{name: "nonce age bounded by MaxNonceAge", want: ErrNonceExpired, token: ok,
			configure: func(v *Verifier) { v.MaxNonceAge = time.Minute },
			before:    func(t *testing.T, e env) { e.clock.Advance(61 * time.Second) }},
		{name: "unknown nonce", want: ErrNonceUnknown, token: ok, nonce: func(env) string { return strings.Repeat("B", 44) }},
		{name: "short nonce", want: ErrNonce, token: ok, nonce: func(env) string { return "abc" }},
		{name: "signed for origin A, verified as B", want: ErrOriginMismatch, origin: originB, token: ok},
		{name: "origin not allowed", want: ErrOriginMismatch, origin: "https://evil.example", token: ok},
		{name: "origin with trailing slash", want: ErrOriginMismatch, origin: originA + "/", token: ok},
		{name: "http origin", want: ErrOriginMismatch, origin: "http://portail-a.example.fr", token: ok,
			configure: func(v *Verifier) { v.AllowedOrigins = append(v.AllowedOrigins, "http://portail-a.example.fr") }},
		{name: "no allowed origins", want: ErrOriginMismatch, token: ok, configure: func(v *Verifier) { v.AllowedOrigins = nil }},
		{name: "expired certificate", want: ErrCertificateExpired, token: func(t *testing.T, e env) AuthToken {
			return makeToken(t, w.expiredAuth, w.authKey, "RS256", originA, e.nonce)
		}},
		{name: "certificate not yet valid", want: ErrCertificateNotYetValid, token: func(t *testing.T, e env) AuthToken {
			return makeToken(t, w.futureAuth, w.authKey, "RS256", originA, e.nonce)
		}},
		{name: "wrong chain (other PKI, same names)", want: ErrCertificateUntrusted, token: func(t *testing.T, e env) AuthToken {
			return makeToken(t, w.otherAuth, w.authKey, "RS256", originA, e.nonce)
		}},
		{name: "no intermediates configured", want: ErrCertificateUntrusted, token: ok,
			configure: func(v *Verifier) { v.Intermediates = nil }},
		{name: "signing certificate used for authentication", want: ErrKeyUsage, token: func(t *testing.T, e env) AuthToken {
			return makeToken(t, w.sign, w.signKey, "RS256", originA, e.nonce)
		}},
		{name: "EKU without clientAuth", want: ErrKeyUsage, token: func(t *testing.T, e env) AuthToken {
			return makeToken(t, w.emailAuth, w.authKey, "RS256", originA, e.nonce)
		}},
		{name: "bad format", want: ErrFormat, token: func(t *testing.T, e env) AuthToken {
			tok := ok(t, e)
			tok.Format = "web-eid:2.0"
			return tok
		}},
		{name: "format 1.1 accepted", token: func(t *testing.T, e env) AuthToken {
			tok := ok(t, e)
			tok.Format = "web-eid:1.1"
			return tok
		}},
		{name: "algorithm none", want: ErrUnsupportedAlgorithm, token: func(t *testing.T, e env) AuthToken {
			tok := ok(t, e)
			tok.Algorithm = "none"
			return tok
		}},
		{name: "algorithm HS256", want: ErrUnsupportedAlgorithm, token: func(t *testing.T, e env) AuthToken {
			tok := ok(t, e)
			tok.Algorithm = "HS256"
			return tok
		}},
		{name: "certificate not base64", want: ErrCertificateMalformed, token: func(t *testing.T, e env) AuthToken {
			tok := ok(t, e)
			tok.UnverifiedCertificate = "%%%"
			return tok
		}},
		{name: "certificate not DER", want: ErrFormat, token: func(t *testing.T, e env) AuthToken {
			tok := ok(t, e)
			tok.UnverifiedCertificate = base64.StdEncoding.EncodeToString([]byte("not a certificate"))
			return tok
		}},
		{name: "signature not base64", want: ErrFormat, token: func(t *testing.T, e env) AuthToken {
			tok := ok(t, e)
			tok.Signature = "***"
			return tok
		}},
		{name: "test card refused by default", want: ErrTestCard, token: ok,
			configure: func(v *Verifier) { v.AllowTestCards = false }},
		{name: "production card accepted by default", configure: func(v *Verifier) {
			v.AllowTestCards = false
			v.Roots, v.Intermediates = w.prod.Roots(), w.prod.Intermediates()
		}, token: func(t *testing.T, e env) AuthToken {
			return makeToken(t, w.prodAuth, w.authKey, "RS256", originA, e.nonce)
		}},
		{name: "production card refused when test cards required", want: ErrProductionCard, configure: func(v *Verifier) {
			v.AllowTestCards, v.RequireTestCards = false, true
			v.Roots, v.Intermediates = w.prod.Roots(), w.prod.Intermediates()
		}, token: func(t *testing.T, e env) AuthToken {
			return makeToken(t, w.prodAuth, w.authKey, "RS256", originA, e.nonce)
		}},
		{name: "test card accepted when required", configure: func(v *Verifier) { v.AllowTestCards, v.RequireTestCards = false, true }, token: ok},
		{name: "no roots", want: ErrConfig, token: ok, configure: func(v *Verifier) { v.Roots = nil }},
		{name: "exclusive test-card options", want: ErrConfig, token: ok, configure: func(v *Verifier) { v.RequireTestCards = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			v := newVerifier(w, c)
			if tt.configure != nil {
				tt.configure(v)
			}
			e := env{v: v, clock: c, nonce: mustNonce(t, v)}
			tok := tt.token(t, e)
			if tt.before != nil {
				tt.before(t, e)
			}
			origin := originA
			if tt.origin != "" {
				origin = tt.origin
			}
			nonce := e.nonce
			if tt.nonce != nil {
				nonce = tt.nonce(e)
			}
			id, err := v.VerifyAuthToken(context.Background(), tok, origin, nonce)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if id == nil || id.NationalID != "899700367917" || id.Certificates.Authentication == nil {
					t.Fatalf("identity = %+v", id)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			t.Logf("rejected: %v", err)
			if id != nil {
				t.Fatal("identity returned with an error")
			}
		})
	}
}

// TestVerifyAuthTokenConsumesNonce checks that a token failing after the
// nonce check still burns the nonce (no retry with the same challenge).
func TestVerifyAuthTokenConsumesNonce(t *testing.T) {
	w := getWorld(t)
	v := newVerifier(w, newClock())
	nonce := mustNonce(t, v)
	bad := makeToken(t, w.auth, w.signKey, "RS256", originA, nonce)
	if _, err := v.VerifyAuthToken(context.Background(), bad, originA, nonce); !errors.Is(err, ErrSignature) {
		t.Fatalf("bad token: %v", err)
	}
	good := makeToken(t, w.auth, w.authKey, "RS256", originA, nonce)
	if _, err := v.VerifyAuthToken(context.Background(), good, originA, nonce); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("retry with the same nonce: %v", err)
	}
}

func TestVerifyAuthTokenDefaultNonceStore(t *testing.T) {
	w := getWorld(t)
	c := newClock()
	v := &Verifier{Roots: w.pki.Roots(), Intermediates: w.pki.Intermediates(), Now: c.Now,
		AllowedOrigins: []string{originA}, AllowTestCards: true}
	nonce := mustNonce(t, v)
	if len(nonce) != 44 {
		t.Fatalf("nonce %q has %d chars", nonce, len(nonce))
	}
	tok := makeToken(t, w.auth, w.authKey, "RS256", originA, nonce)
	id, err := v.VerifyAuthToken(context.Background(), tok, originA, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if id.RPPS == nil || *id.RPPS != "99700367917" || !id.Card.Test {
		t.Errorf("identity: %+v", id)
	}
	if _, err := v.VerifyAuthToken(context.Background(), tok, originA, nonce); !errors.Is(err, ErrNonceReplayed) {
		t.Errorf("replay: %v", err)
	}
}

func TestVerifyAuthTokenConcurrent(t *testing.T) {
	w := getWorld(t)
	c := newClock()
	v := &Verifier{Roots: w.pki.Roots(), Intermediates: w.pki.Intermediates(), Now: c.Now,
		AllowedOrigins: []string{originA}, AllowTestCards: true}
	type job struct {
		tok   AuthToken
		nonce string
	}
	jobs := make([]job, 16)
	for i := range jobs {
		jobs[i].nonce = mustNonce(t, v)
		jobs[i].tok = makeToken(t, w.auth, w.authKey, "RS256", originA, jobs[i].nonce)
	}
	errs := make(chan error, len(jobs))
	for _, j := range jobs {
		go func() {
			_, err := v.VerifyAuthToken(context.Background(), j.tok, originA, j.nonce)
			errs <- err
		}()
	}
	for range jobs {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestVerifyAuthTokenCancelled(t *testing.T) {
	w := getWorld(t)
	v := newVerifier(w, newClock())
	nonce := mustNonce(t, v)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := v.VerifyAuthToken(ctx, makeToken(t, w.auth, w.authKey, "RS256", originA, nonce), originA, nonce)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestTokenSignedData(t *testing.T) {
	data, h, err := TokenSignedData("RS256", "https://a", "n")
	if err != nil || h != crypto.SHA256 || len(data) != 64 {
		t.Fatalf("RS256: %d bytes, %v, %v", len(data), h, err)
	}
	if data, h, _ = TokenSignedData("ES384", "https://a", "n"); h != crypto.SHA384 || len(data) != 96 {
		t.Fatalf("ES384: %d bytes, %v", len(data), h)
	}
	if _, _, err := TokenSignedData("RS1", "", ""); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Fatalf("RS1: %v", err)
	}
}

func TestParseAuthToken(t *testing.T) {
	valid := `{"unverifiedCertificate":"MIIB","algorithm":"RS256","signature":"c2ln","format":"web-eid:1.0","appVersion":"https://x/1"}`
	tok, err := ParseAuthToken([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if tok != (AuthToken{"MIIB", "RS256", "c2ln", "web-eid:1.0", "https://x/1"}) {
		t.Errorf("parsed %+v", tok)
	}
	for _, tt := range []struct{ name, in string }{
		{"empty", ``},
		{"array", `[]`},
		{"string", `"x"`},
		{"trailing data", valid + `{}`},
		{"trailing garbage", valid + `x`},
		{"duplicate key", `{"algorithm":"RS256","algorithm":"none","unverifiedCertificate":"a","signature":"b","format":"web-eid:1.0"}`},
		{"number value", `{"unverifiedCertificate":"a","algorithm":256,"signature":"b","format":"web-eid:1.0"}`},
		{"null value", `{"unverifiedCertificate":"a","algorithm":null,"signature":"b","format":"web-eid:1.0"}`},
		{"missing signature", `{"unverifiedCertificate":"a","algorithm":"RS256","format":"web-eid:1.0"}`},
		{"empty certificate", `{"unverifiedCertificate":"","algorithm":"RS256","signature":"b","format":"web-eid:1.0"}`},
		{"unterminated", `{"unverifiedCertificate":"a"`},
		{"too large", `{"x":"` + strings.Repeat("a", MaxTokenSize) + `"}`},
	} {
		if _, err := ParseAuthToken([]byte(tt.in)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", tt.name, err)
		}
	}
	// Unknown fields of later minor versions are ignored.
	v11 := `{"unverifiedCertificate":"a","algorithm":"RS256","signature":"b","format":"web-eid:1.1","unverifiedSigningCertificates":[{"certificate":"c"}]}`
	if _, err := ParseAuthToken([]byte(v11)); err != nil {
		t.Errorf("web-eid:1.1 token: %v", err)
	}
}

func TestValidOrigin(t *testing.T) {
	for origin, ok := range map[string]bool{
		"https://a.example":                   true,
		"https://a.example:8443":              true,
		"https://a.example/":                  false,
		"https://a.example/path":              false,
		"https://a.example?q":                 false,
		"https://a.example#f":                 false,
		"https://user@a.example":              false,
		"http://a.example":                    false,
		"wss://a.example":                     false,
		"https://":                            false,
		"":                                    false,
		"https://" + strings.Repeat("a", 250): false,
	} {
		if err := validOrigin(origin); (err == nil) != ok {
			t.Errorf("validOrigin(%q) = %v, want ok=%v", origin, err, ok)
		}
	}
}
