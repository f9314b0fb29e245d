package cpstest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

func TestIssueOCSPResponder(t *testing.T) {
	p, err := NewPKI(nil)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c, err := p.IssueOCSPResponder(&key.PublicKey, ResponderCertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckSignatureFrom(p.Intermediate); err != nil {
		t.Errorf("not issued by the intermediate: %v", err)
	}
	noCheck := slices.ContainsFunc(c.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(oidOCSPNoCheck) })
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}) || c.KeyUsage != x509.KeyUsageDigitalSignature ||
		c.IsCA || !noCheck || c.Subject.CommonName != "TEST OCSP IGC-SANTE FORT PERSONNES" {
		t.Errorf("responder certificate: EKU %v, KU %v, CA %v, nocheck %v, CN %q", c.ExtKeyUsage, c.KeyUsage, c.IsCA, noCheck, c.Subject.CommonName)
	}
	c, err = p.IssueOCSPResponder(&key.PublicKey, ResponderCertOptions{ByRoot: true, NoOCSPSigning: true, CommonName: "R",
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1e9, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if c.CheckSignatureFrom(p.Root) != nil || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) ||
		c.Subject.CommonName != "R" || !c.NotAfter.Equal(time.Unix(1e9, 0)) {
		t.Errorf("options not applied: %+v", c)
	}
	if _, err := (&PKI{}).IssueOCSPResponder(&key.PublicKey, ResponderCertOptions{}); err == nil {
		t.Error("IssueOCSPResponder without CA succeeded")
	}
}

// TestHolderOCSPServers: the option puts the responder in both
// certificates; without it they have none, as before.
func TestHolderOCSPServers(t *testing.T) {
	p, err := NewPKI(nil)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	h := Holders()["medecin"]
	now := time.Now()
	auth, sign, err := p.Issue(h, &k.PublicKey, &k.PublicKey, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(auth.OCSPServer) != 0 || len(sign.OCSPServer) != 0 || len(auth.Policies) != 0 {
		t.Errorf("default certificates name a responder or a policy: %v %v %v", auth.OCSPServer, sign.OCSPServer, auth.Policies)
	}
	h.OCSPServers = []string{"http://ocsp.igc-sante.test/", "http://ocsp2.igc-sante.test/"}
	h.Policies = []asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 32473, 9}}
	auth, sign, err = p.Issue(h, &k.PublicKey, &k.PublicKey, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*x509.Certificate{auth, sign} {
		if !slices.Equal(c.OCSPServer, h.OCSPServers) || len(c.Policies) != 1 || !c.Policies[0].EqualASN1OID(h.Policies[0]) {
			t.Errorf("AIA %v, policies %v", c.OCSPServer, c.Policies)
		}
	}
}

type ocspFixture struct {
	p          *PKI
	leaf       *x509.Certificate
	req        []byte
	delegated  *x509.Certificate
	respKey    *ecdsa.PrivateKey
	now        time.Time
	nonceValue []byte
}

func newOCSPFixture(t *testing.T) *ocspFixture {
	t.Helper()
	p, err := NewPKI(nil)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	f := &ocspFixture{p: p, now: time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)}
	if f.leaf, _, err = p.Issue(Holders()["medecin"], &k.PublicKey, &k.PublicKey, f.now.Add(-time.Hour), f.now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if f.req, err = ocsp.CreateRequest(f.leaf, p.Intermediate, nil); err != nil {
		t.Fatal(err)
	}
	f.respKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if f.delegated, err = p.IssueOCSPResponder(&f.respKey.PublicKey, ResponderCertOptions{}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *ocspFixture) start(t *testing.T, o OCSPResponderOptions) *OCSPResponder {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return f.now }
	}
	r, err := f.p.StartOCSPResponder(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func TestOCSPResponderAnswers(t *testing.T) {
	f := newOCSPFixture(t)
	inter := f.p.Intermediate
	at := f.now.Add(-2 * time.Hour)
	tests := []struct {
		name    string
		o       OCSPResponderOptions
		setup   func(r *OCSPResponder)
		check   func(t *testing.T, resp *ocsp.Response)
		wantErr string // from ocsp.ParseResponseForCert(…, issuer)
	}{
		{name: "good by default", check: func(t *testing.T, resp *ocsp.Response) {
			if resp.Status != ocsp.Good || !resp.ThisUpdate.Equal(f.now.Add(-time.Minute)) || !resp.NextUpdate.Equal(f.now.Add(24*time.Hour-time.Minute)) ||
				resp.Certificate != nil || !bytes.Equal(resp.RawResponderName, inter.RawSubject) {
				t.Errorf("%+v", resp)
			}
		}},
		{name: "revoked", setup: func(r *OCSPResponder) { r.Revoke(f.leaf, at, ReasonKeyCompromise) }, check: func(t *testing.T, resp *ocsp.Response) {
			if resp.Status != ocsp.Revoked || !resp.RevokedAt.Equal(at) || resp.RevocationReason != ReasonKeyCompromise {
				t.Errorf("%+v", resp)
			}
		}},
		{name: "unknown", setup: func(r *OCSPResponder) { r.SetStatus(f.leaf.SerialNumber, OCSPStatus{Status: OCSPUnknown}) },
			check: func(t *testing.T, resp *ocsp.Response) {
				if resp.Status != ocsp.Unknown {
					t.Errorf("%+v", resp)
				}
			}},
		{name: "default unknown", o: OCSPResponderOptions{Default: OCSPStatus{Status: OCSPUnknown}, Validity: -1},
			check: func(t *testing.T, resp *ocsp.Response) {
				if resp.Status != ocsp.Unknown || !resp.NextUpdate.IsZero() {
					t.Errorf("%+v", resp)
				}
			}},
		{name: "delegated", o: OCSPResponderOptions{ResponderCert: f.delegated, ResponderKey: f.respKey, Validity: time.Hour},
			check: func(t *testing.T, resp *ocsp.Response) {
				if resp.Certificate == nil || !resp.Certificate.Equal(f.delegated) || !bytes.Equal(resp.RawResponderName, f.delegated.RawSubject) ||
					resp.NextUpdate.Sub(resp.ThisUpdate) != time.Hour {
					t.Errorf("%+v", resp)
				}
			}},
		{name: "stale", setup: func(r *OCSPResponder) { r.SetFault(OCSPFaultStale) }, check: func(t *testing.T, resp *ocsp.Response) {
			if !resp.NextUpdate.Before(f.now) {
				t.Errorf("next update %v", resp.NextUpdate)
			}
		}},
		{name: "future", setup: func(r *OCSPResponder) { r.SetFault(OCSPFaultFuture) }, check: func(t *testing.T, resp *ocsp.Response) {
			if !resp.ThisUpdate.After(f.now) {
				t.Errorf("this update %v", resp.ThisUpdate)
			}
		}},
		{name: "wrong issuer hashes", setup: func(r *OCSPResponder) { r.SetFault(OCSPFaultWrongIssuer) }, check: func(t *testing.T, resp *ocsp.Response) {
			if resp.SerialNumber.Cmp(f.leaf.SerialNumber) != 0 {
				t.Errorf("serial %v", resp.SerialNumber)
			}
		}},
		{name: "wrong signer", setup: func(r *OCSPResponder) { r.SetFault(OCSPFaultWrongSigner) }, wantErr: "bad OCSP signature"},
		{name: "wrong serial", setup: func(r *OCSPResponder) { r.SetFault(OCSPFaultWrongSerial) }, wantErr: "no response matching"},
		{name: "garbage", setup: func(r *OCSPResponder) { r.SetFault(OCSPFaultGarbage) }, wantErr: "asn1"},
		{name: "tryLater", setup: func(r *OCSPResponder) { r.SetFault(OCSPFaultTryLater) }, wantErr: "try later"},
		{name: "root's responder asked about a card", o: OCSPResponderOptions{ByRoot: true}, wantErr: "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.start(t, tt.o)
			if tt.setup != nil {
				tt.setup(r)
			}
			resp, err := ocsp.ParseResponseForCert(r.Answer(f.req), f.leaf, inter)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, resp)
		})
	}
	if got := f.start(t, OCSPResponderOptions{}).Answer([]byte("junk")); !bytes.Equal(got, ocsp.MalformedRequestErrorResponse) {
		t.Errorf("malformed request: %x", got)
	}
	// The root's responder answers for the intermediate.
	req, err := ocsp.CreateRequest(inter, f.p.Root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := ocsp.ParseResponseForCert(f.start(t, OCSPResponderOptions{ByRoot: true}).Answer(req), inter, f.p.Root); err != nil || resp.Status != ocsp.Good {
		t.Errorf("root's responder: %v", err)
	}
	if _, err := f.p.StartOCSPResponder(OCSPResponderOptions{ResponderCert: f.delegated}); err == nil {
		t.Error("responder certificate without key accepted")
	}
}

// nonceRequest is f.req with a nonce extension.
func nonceRequest(t *testing.T, f *ocspFixture, nonce []byte) []byte {
	t.Helper()
	var req ocspRequestASN1
	if _, err := asn1.Unmarshal(f.req, &req); err != nil {
		t.Fatal(err)
	}
	v, _ := asn1.Marshal(nonce)
	req.TBSRequest.Extensions = append(req.TBSRequest.Extensions, pkix.Extension{Id: oidOCSPNonce, Value: v})
	der, err := asn1.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// responseNonce reads the nonce of a DER OCSP response, or nil.
func responseNonce(t *testing.T, der []byte) []byte {
	t.Helper()
	var resp ocspResponseASN1
	var basic basicResponseASN1
	var tbs responseDataASN1
	if _, err := asn1.Unmarshal(der, &resp); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(resp.Bytes.Response, &basic); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(basic.TBSResponseData.FullBytes, &tbs); err != nil {
		t.Fatal(err)
	}
	for _, e := range tbs.Extensions {
		if e.Id.Equal(oidOCSPNonce) {
			var n []byte
			if _, err := asn1.Unmarshal(e.Value, &n); err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return nil
}

func TestOCSPResponderNonce(t *testing.T) {
	f := newOCSPFixture(t)
	nonce := bytes.Repeat([]byte{0x5a}, 32)
	req := nonceRequest(t, f, nonce)
	if got := requestNonce(req); !bytes.Equal(got, nonce) {
		t.Fatalf("requestNonce = %x", got)
	}
	for _, tc := range []struct {
		name  string
		o     OCSPResponderOptions
		fault OCSPFault
		want  []byte
	}{
		{"CA signs", OCSPResponderOptions{}, OCSPFaultNone, nonce},
		{"delegated", OCSPResponderOptions{ResponderCert: f.delegated, ResponderKey: f.respKey}, OCSPFaultNone, nonce},
		{"left out", OCSPResponderOptions{}, OCSPFaultNoNonce, nil},
		{"another nonce", OCSPResponderOptions{}, OCSPFaultWrongNonce, []byte("other")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.start(t, tc.o)
			r.SetFault(tc.fault)
			der := r.Answer(req)
			// Signed again after adding the extension: still valid.
			if resp, err := ocsp.ParseResponseForCert(der, f.leaf, f.p.Intermediate); err != nil || resp.Status != ocsp.Good {
				t.Fatalf("response with nonce: %v", err)
			}
			if got := responseNonce(t, der); !bytes.Equal(got, tc.want) {
				t.Errorf("nonce %q, want %q", got, tc.want)
			}
		})
	}
	// Without a nonce in the request, none in the answer.
	if got := responseNonce(t, f.start(t, OCSPResponderOptions{}).Answer(f.req)); got != nil {
		t.Errorf("nonce %x in the answer to a request without", got)
	}
}

func TestOCSPResponderHTTP(t *testing.T) {
	f := newOCSPFixture(t)
	r := f.start(t, OCSPResponderOptions{Delay: time.Minute})
	r.Revoke(f.leaf, f.now.Add(-time.Hour), ReasonSuperseded)
	ctx := context.Background()
	do := func(method string) (int, []byte) {
		t.Helper()
		var req *http.Request
		var err error
		if method == http.MethodGet {
			req, err = http.NewRequestWithContext(ctx, method, r.URL+"/"+url.QueryEscape(base64.StdEncoding.EncodeToString(f.req)), nil)
		} else {
			req, err = http.NewRequestWithContext(ctx, method, r.URL, bytes.NewReader(f.req))
		}
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") != "application/ocsp-response" {
			t.Errorf("content type %q", resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode, body
	}
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		code, body := do(m)
		resp, err := ocsp.ParseResponseForCert(body, f.leaf, f.p.Intermediate)
		if code != http.StatusOK || err != nil || resp.Status != ocsp.Revoked || resp.RevocationReason != ReasonSuperseded {
			t.Errorf("%s: %d %v", m, code, err)
		}
	}
	if code, _ := do(http.MethodPut); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", code)
	}
	r.SetFault(OCSPFaultHTTP500)
	if code, _ := do(http.MethodPost); code != http.StatusInternalServerError {
		t.Errorf("HTTP 500 fault: %d", code)
	}
	r.SetFault(OCSPFaultOversized)
	if code, body := do(http.MethodPost); code != http.StatusOK || len(body) != 1<<20 {
		t.Errorf("oversized fault: %d, %d bytes", code, len(body))
	}
	reqs := r.Requests()
	if len(reqs) != 4 || reqs[0].Method != "GET" || reqs[1].Method != "POST" || reqs[0].Serial.Cmp(f.leaf.SerialNumber) != 0 { // PUT not recorded
		t.Errorf("requests %+v", reqs)
	}
	// Slow: the client gives up, the responder does not hold it.
	r.SetFault(OCSPFaultSlow)
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(cctx, http.MethodPost, r.URL, bytes.NewReader(f.req))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Error("slow fault answered at once")
	}
}
