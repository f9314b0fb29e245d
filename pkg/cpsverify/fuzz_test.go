package cpsverify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/cpsagent/cpsagent/pkg/cpsid/cpstest"
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

// FuzzParseCRLs: CRL files (PEM or DER) parse or fail with ErrCRLMalformed,
// and whatever parses can be used by CRLChecker without panicking and
// without vouching for a certificate unless the issuer signed the CRL.
func FuzzParseCRLs(f *testing.F) {
	w := getWorld(f)
	good := issueCRL(f, w.pki, cpstest.CRLOptions{Revoked: revokedCards(w, cpstest.ReasonKeyCompromise)})
	arl := issueCRL(f, w.pki, cpstest.CRLOptions{ByRoot: true})
	idp := issueCRL(f, w.pki, cpstest.CRLOptions{Extensions: []pkix.Extension{idpExtension(f, crlURL, true, false)}})
	delta := issueCRL(f, w.pki, cpstest.CRLOptions{Extensions: []pkix.Extension{{Id: oidExtDeltaCRLIndicator, Critical: true, Value: []byte{2, 1, 5}}}})
	f.Add(good.Raw)
	f.Add(idp.Raw)
	f.Add(delta.Raw)
	f.Add(cpstest.CRLPEM(good.Raw, arl.Raw))
	f.Add(append(cpstest.CertPEM(w.pki.Root), cpstest.CRLPEM(idp.Raw)...))
	f.Add([]byte("-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n"))
	f.Add([]byte{0x30, 0x03, 0x30, 0x01, 0x02})
	f.Fuzz(func(t *testing.T, data []byte) {
		crls, err := ParseCRLs(data)
		if err != nil {
			if !errors.Is(err, ErrCRLMalformed) || !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not match ErrCRLMalformed", err)
			}
			return
		}
		if len(crls) == 0 {
			t.Fatal("no error and no CRL")
		}
		signed := false
		for _, crl := range crls {
			if crl == nil {
				t.Fatal("nil CRL")
			}
			signed = signed || crl.CheckSignatureFrom(w.pki.Intermediate) == nil
		}
		err = NewCRLChecker(crls...).Check(context.Background(), w.auth, w.pki.Intermediate, base)
		switch {
		case err == nil || errors.Is(err, ErrRevoked):
			if !signed {
				t.Fatalf("verdict %v from a CRL the issuer did not sign", err)
			}
		case !errors.Is(err, ErrRevocationUnknown):
			t.Fatalf("error %v matches neither ErrRevoked nor ErrRevocationUnknown", err)
		}
	})
}

// FuzzParseOCSPResponse: whatever a responder sends, OCSPChecker answers
// not revoked, revoked or unknown without panicking, and vouches for a
// certificate (good or revoked) only with a response about it signed by
// its issuer or by a responder certificate the issuer signed, current at
// the verification time.
func FuzzParseOCSPResponse(f *testing.F) {
	w, ow := getOCSPWorld(f)
	inter := w.pki.Intermediate
	id, err := newOCSPCertID(crypto.SHA1, w.auth, inter)
	if err != nil {
		f.Fatal(err)
	}
	req, err := marshalOCSPRequest(id, nil)
	if err != nil {
		f.Fatal(err)
	}
	nonceReq, err := marshalOCSPRequest(id, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	answer := func(o cpstest.OCSPResponderOptions, fault cpstest.OCSPFault, status *cpstest.OCSPStatus, request []byte) []byte {
		o.Now = func() time.Time { return base }
		r, err := w.pki.StartOCSPResponder(o)
		if err != nil {
			f.Fatal(err)
		}
		defer r.Close()
		r.SetFault(fault)
		if status != nil {
			r.SetStatus(w.auth.SerialNumber, *status)
		}
		return r.Answer(request)
	}
	delegated := cpstest.OCSPResponderOptions{ResponderCert: ow.delegated, ResponderKey: ow.key}
	revoked := &cpstest.OCSPStatus{Status: cpstest.OCSPRevoked, RevokedAt: base.Add(-time.Hour), Reason: cpstest.ReasonKeyCompromise}
	f.Add(answer(cpstest.OCSPResponderOptions{}, cpstest.OCSPFaultNone, nil, req))
	f.Add(answer(cpstest.OCSPResponderOptions{}, cpstest.OCSPFaultNone, revoked, req))
	f.Add(answer(cpstest.OCSPResponderOptions{}, cpstest.OCSPFaultNone, &cpstest.OCSPStatus{Status: cpstest.OCSPUnknown}, req))
	f.Add(answer(delegated, cpstest.OCSPFaultNone, revoked, nonceReq))
	f.Add(answer(cpstest.OCSPResponderOptions{ResponderCert: ow.noEKU, ResponderKey: ow.key}, cpstest.OCSPFaultNone, nil, req))
	f.Add(answer(cpstest.OCSPResponderOptions{Validity: -1}, cpstest.OCSPFaultWrongIssuer, nil, req))
	f.Add(answer(cpstest.OCSPResponderOptions{}, cpstest.OCSPFaultWrongSerial, nil, req))
	f.Add(answer(cpstest.OCSPResponderOptions{}, cpstest.OCSPFaultStale, nil, req))
	f.Add(answer(cpstest.OCSPResponderOptions{}, cpstest.OCSPFaultWrongSigner, nil, req))
	f.Add(ocsp.TryLaterErrorResponse)
	f.Add([]byte("<html>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &OCSPChecker{}
		a, err := c.parseResponse(data, id, w.auth, inter, nil, base)
		if err == nil {
			// Independent checks with golang.org/x/crypto/ocsp given the issuer.
			resp, perr := ocsp.ParseResponseForCert(data, w.auth, inter)
			if perr != nil {
				// The issuer may sign with its own certificate attached.
				resp, perr = ocsp.ParseResponseForCert(data, w.auth, nil)
				if perr != nil || resp.Certificate == nil || !resp.Certificate.Equal(inter) {
					t.Fatalf("accepted a response x/crypto/ocsp refuses with the issuer: %v", perr)
				}
			}
			if resp.Certificate != nil && !resp.Certificate.Equal(inter) &&
				!(bytes.Equal(resp.Certificate.RawIssuer, inter.RawSubject) && resp.Certificate.CheckSignatureFrom(inter) == nil &&
					containsEKU(resp.Certificate, x509.ExtKeyUsageOCSPSigning)) {
				t.Fatal("accepted a response signed by a certificate the issuer did not delegate")
			}
			if resp.SerialNumber.Cmp(w.auth.SerialNumber) != 0 || resp.Status != a.status {
				t.Fatalf("answer %+v for a response about %v, status %d", a, resp.SerialNumber, resp.Status)
			}
			if a.thisUpdate.After(base.Add(DefaultOCSPClockSkew)) || !a.nextUpdate.IsZero() && !base.Before(a.nextUpdate.Add(DefaultOCSPClockSkew)) {
				t.Fatalf("accepted a response not current at %v: %v – %v", base, a.thisUpdate, a.nextUpdate)
			}
		}
		// The whole check, with the data as the responder's answer.
		c = &OCSPChecker{ResponderURL: "http://ocsp.test/", Query: func(context.Context, string, []byte) ([]byte, error) { return data, nil }}
		err = c.Check(context.Background(), w.auth, inter, base)
		switch {
		case err == nil:
			if a == nil || a.status != ocsp.Good {
				t.Fatalf("not revoked, but the response alone gives %+v", a)
			}
		case errors.Is(err, ErrRevoked):
			if a == nil || a.status != ocsp.Revoked {
				t.Fatalf("revoked, but the response alone gives %+v", a)
			}
		case !errors.Is(err, ErrRevocationUnknown) || errors.Is(err, ErrOCSPNoResponder):
			t.Fatalf("error %v is not an unknown status", err)
		}
	})
}

func containsEKU(c *x509.Certificate, eku x509.ExtKeyUsage) bool {
	for _, e := range c.ExtKeyUsage {
		if e == eku {
			return true
		}
	}
	return false
}
