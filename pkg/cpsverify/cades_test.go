package cpsverify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/cades"
	"github.com/cpsagent/cpsagent/pkg/cpsid/cpstest"
)

var document = []byte("%PDF-1.7 ordonnance sécurisée\n")

func cardSign(key *rsa.PrivateKey) cades.SignFunc {
	return func(_ context.Context, tbs []byte) ([]byte, error) {
		h := sha256.Sum256(tbs)
		return rsa.SignPKCS1v15(nil, key, crypto.SHA256, h[:])
	}
}

func buildP7S(t testing.TB, cert *x509.Certificate, key *rsa.PrivateKey, chain []*x509.Certificate, at time.Time) []byte {
	t.Helper()
	d := sha256.Sum256(document)
	p7s, err := cades.BuildDetached(context.Background(), d[:], cert, chain, at, cardSign(key))
	if err != nil {
		t.Fatal(err)
	}
	return p7s
}

func TestVerifyCAdES(t *testing.T) {
	w := getWorld(t)
	signedAt := base.Add(-time.Hour)
	valid := buildP7S(t, w.sign, w.signKey, w.pki.Chain(), signedAt)

	// ESS attribute naming another certificate of the same key.
	digest := sha256.Sum256(document)
	attrs, err := cades.SignedAttributes(digest[:], w.sign2, signedAt)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := cardSign(w.signKey)(context.Background(), attrs)
	wrongESS, err := cades.AssembleDetached(attrs, sig, w.sign, w.pki.Chain())
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Clone(valid)
	forged[len(forged)-10] ^= 0x01 // inside the signature value, the last field

	tests := []struct {
		name      string
		p7s       []byte
		doc       []byte
		configure func(v *Verifier)
		want      error
	}{
		{name: "valid", p7s: valid},
		{name: "valid, chain not embedded", p7s: buildP7S(t, w.sign, w.signKey, nil, signedAt)},
		{name: "modified document", p7s: valid, doc: append(bytes.Clone(document), '.'), want: ErrDigestMismatch},
		{name: "forged signature value", p7s: forged, want: ErrSignature},
		{name: "signed with the authentication certificate", p7s: buildP7S(t, w.auth, w.authKey, nil, signedAt), want: ErrKeyUsage},
		{name: "signing-certificate-v2 names another certificate", p7s: wrongESS, want: ErrSigningCertificate},
		{name: "expired certificate", p7s: buildP7S(t, w.expiredSign, w.signKey, nil, base.Add(-48*time.Hour)), want: ErrCertificateExpired},
		{name: "signing time in the future", p7s: buildP7S(t, w.sign, w.signKey, nil, base.Add(time.Hour)), want: ErrSigningTime},
		{name: "signing time before the certificate", p7s: buildP7S(t, w.sign, w.signKey, nil, base.Add(-365*24*time.Hour)), want: ErrSigningTime},
		{name: "wrong chain", p7s: valid, configure: func(v *Verifier) { v.Roots, v.Intermediates = w.other.Roots(), nil }, want: ErrCertificateUntrusted},
		{name: "test card refused", p7s: valid, configure: func(v *Verifier) { v.AllowTestCards = false }, want: ErrTestCard},
		{name: "production card", p7s: buildP7S(t, w.prodSig, w.signKey, w.prod.Chain(), signedAt),
			configure: func(v *Verifier) { v.AllowTestCards, v.Roots, v.Intermediates = false, w.prod.Roots(), nil }},
		{name: "garbage", p7s: []byte("not CMS"), want: ErrFormat},
		{name: "truncated", p7s: valid[:len(valid)-1], want: ErrFormat},
		{name: "no roots", p7s: valid, configure: func(v *Verifier) { v.Roots = nil }, want: ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(w, newClock())
			if tt.configure != nil {
				tt.configure(v)
			}
			doc := document
			if tt.doc != nil {
				doc = tt.doc
			}
			rep, err := v.VerifyCAdES(context.Background(), tt.p7s, doc)
			if tt.want != nil {
				if !errors.Is(err, tt.want) || rep != nil {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				t.Logf("rejected: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.Signer == nil || rep.Signer.NationalID != "899700367917" || rep.Signer.Certificates.Signature == nil {
				t.Errorf("signer = %+v", rep.Signer)
			}
			if rep.DigestAlgorithm != "SHA-256" || rep.SignatureAlgorithm != "SHA256-RSA" || rep.SigningCertificateAttribute != "v2" {
				t.Errorf("report = %+v", rep)
			}
			if rep.SigningTime == nil || !rep.SigningTime.Equal(signedAt) {
				t.Errorf("signing time = %v, want %v", rep.SigningTime, signedAt)
			}
			if len(rep.Chain) != 3 {
				t.Errorf("chain of %d certificates", len(rep.Chain))
			}
		})
	}
}

func TestVerifyCAdESDigest(t *testing.T) {
	w := getWorld(t)
	v := newVerifier(w, newClock())
	p7s := buildP7S(t, w.sign, w.signKey, nil, base)
	d := sha256.Sum256(document)
	if _, err := v.VerifyCAdESDigest(context.Background(), p7s, d[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyCAdESDigest(context.Background(), p7s, d[:20]); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("short digest: %v", err)
	}
	d[0] ^= 1
	if _, err := v.VerifyCAdESDigest(context.Background(), p7s, d[:]); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("other digest: %v", err)
	}
}

// TestVerifyCAdESFromOpenSSL verifies signatures produced by an independent
// implementation: with -cades OpenSSL adds signing-certificate-v2; without
// it the signature is plain CMS and must be refused as not CAdES-BES.
func TestVerifyCAdESFromOpenSSL(t *testing.T) {
	openssl := lookOpenSSL(t)
	w := getWorld(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string { return writeFile(t, dir, name, b) }
	keyDER, err := x509.MarshalPKCS8PrivateKey(w.signKey)
	if err != nil {
		t.Fatal(err)
	}
	key := write("key.der", keyDER)
	// OpenSSL stamps the real time: use a certificate valid around it.
	now := time.Now()
	_, signCert, err := w.pki.Issue(cpstest.Holders()["medecin"], &w.authKey.PublicKey, &w.signKey.PublicKey, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cert := write("cert.pem", cpstest.CertPEM(signCert))
	doc := write("doc", document)
	for _, tt := range []struct {
		name   string
		extra  []string
		want   error
		digest string
	}{
		{"cades", []string{"-cades"}, nil, "SHA-256"},
		{"sha384 cades", []string{"-cades", "-md", "sha384"}, nil, "SHA-384"},
		{"plain CMS", nil, ErrSigningCertificate, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, tt.name+".p7s")
			args := append([]string{"cms", "-sign", "-binary", "-in", doc, "-signer", cert, "-inkey", key, "-keyform", "DER",
				"-outform", "DER", "-out", out, "-nocerts"}, tt.extra...)
			if msg, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
				t.Fatalf("openssl cms -sign: %v\n%s", err, msg)
			}
			p7s, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			// -nocerts: the verifier needs the signer certificate anyway.
			v := newVerifier(w, newClock())
			v.Now = time.Now
			_, err = v.VerifyCAdES(context.Background(), p7s, document)
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("without embedded signer certificate: %v", err)
			}
			args = append(args[:len(args)-len(tt.extra)-1], tt.extra...)
			if msg, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
				t.Fatalf("openssl cms -sign: %v\n%s", err, msg)
			}
			if p7s, err = os.ReadFile(out); err != nil {
				t.Fatal(err)
			}
			rep, err := v.VerifyCAdES(context.Background(), p7s, document)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil && (rep.SigningCertificateAttribute != "v2" || rep.DigestAlgorithm != tt.digest || rep.SigningTime == nil) {
				t.Errorf("report = %+v", rep)
			}
		})
	}
}

func lookOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not found and CI=true")
		}
		t.Skip("SKIPPED: openssl not found in PATH; interoperability check did not run")
	}
	return path
}
