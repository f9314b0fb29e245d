package cpsverify

import (
	"context"
	"errors"
	"testing"
)

func FuzzParseToken(f *testing.F) {
	f.Add([]byte(`{"unverifiedCertificate":"MIIB","algorithm":"RS256","signature":"c2ln","format":"web-eid:1.0","appVersion":"https://x/1"}`))
	f.Add([]byte(`{"algorithm":"RS256","algorithm":"none"}`))
	f.Add([]byte(`{"unverifiedCertificate":null}`))
	f.Add([]byte(`[{}]`))
	f.Add([]byte(`{"a":{"b":[1,2,{"c":"d"}]},"format":"web-eid:1.1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := ParseAuthToken(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not match ErrFormat", err)
			}
			return
		}
		if tok.UnverifiedCertificate == "" || tok.Algorithm == "" || tok.Signature == "" || tok.Format == "" {
			t.Fatalf("accepted a token with an empty required field: %+v", tok)
		}
	})
}

func FuzzVerifyCAdES(f *testing.F) {
	w := getWorld(f)
	f.Add(buildP7S(f, w.sign, w.signKey, w.pki.Chain(), base.Add(-1)))
	f.Add(buildP7S(f, w.sign, w.signKey, nil, base.Add(-1)))
	f.Add(certsOnly(&testing.T{}, w.pki.Root))
	f.Add([]byte{0x30, 0x03, 0x06, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, p7s []byte) {
		v := newVerifier(w, newClock())
		rep, err := v.VerifyCAdES(context.Background(), p7s, document)
		if err == nil && !rep.Certificate.Equal(w.sign) {
			t.Fatal("verified a signature by an unexpected certificate")
		}
		if _, err := parseSignedData(p7s); err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("parse error %v does not match ErrFormat", err)
		}
	})
}

func FuzzParseCertificates(f *testing.F) {
	w := getWorld(f)
	f.Add(w.pki.ChainPEM())
	f.Add(w.pki.Root.Raw)
	f.Add(certsOnly(&testing.T{}, w.pki.Root, w.pki.Intermediate))
	f.Add([]byte("-----BEGIN PKCS7-----\nMAA=\n-----END PKCS7-----\n"))
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80, 0x00, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertificates(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		for _, c := range certs {
			if c == nil {
				t.Fatal("nil certificate")
			}
		}
	})
}
