package cpsverify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/cpsagent/cpsagent/pkg/cpsid/cpstest"
)

// ocspWorld holds delegated OCSP responder certificates of the test PKI.
type ocspWorld struct {
	key       *ecdsa.PrivateKey
	delegated *x509.Certificate // issued by the intermediate, OCSPSigning
	noEKU     *x509.Certificate // issued by the intermediate, clientAuth only
	byRoot    *x509.Certificate // issued by the root
	byOther   *x509.Certificate // issued by another PKI with the same names
	expired   *x509.Certificate // expired at base
}

var (
	ocspOnce   sync.Once
	theOCSP    ocspWorld
	ocspErrOut error
)

func getOCSPWorld(t testing.TB) (*world, *ocspWorld) {
	t.Helper()
	w := getWorld(t)
	ocspOnce.Do(func() {
		o := &theOCSP
		var err error
		if o.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			ocspErrOut = err
			return
		}
		pub := &o.key.PublicKey
		for _, c := range []struct {
			dst  **x509.Certificate
			pki  *cpstest.PKI
			opts cpstest.ResponderCertOptions
		}{
			{&o.delegated, w.pki, cpstest.ResponderCertOptions{}},
			{&o.noEKU, w.pki, cpstest.ResponderCertOptions{NoOCSPSigning: true}},
			{&o.byRoot, w.pki, cpstest.ResponderCertOptions{ByRoot: true}},
			{&o.byOther, w.other, cpstest.ResponderCertOptions{}},
			{&o.expired, w.pki, cpstest.ResponderCertOptions{NotBefore: base.Add(-48 * time.Hour), NotAfter: base.Add(-time.Hour)}},
		} {
			if *c.dst, err = c.pki.IssueOCSPResponder(pub, c.opts); err != nil {
				ocspErrOut = err
				return
			}
		}
	})
	if ocspErrOut != nil {
		t.Fatal(ocspErrOut)
	}
	return w, &theOCSP
}

// startResponder starts a responder of the test PKI on base's clock
// unless o says otherwise.
func startResponder(t testing.TB, p *cpstest.PKI, o cpstest.OCSPResponderOptions) *cpstest.OCSPResponder {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return base }
	}
	r, err := p.StartOCSPResponder(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// deadURL is a loopback URL where nothing listens.
func deadURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/ocsp"
}

// leafWithOCSP issues an authentication certificate for w.authKey naming
// the given OCSP responders.
func leafWithOCSP(t testing.TB, w *world, urls ...string) *x509.Certificate {
	t.Helper()
	h := cpstest.Holders()["medecin"]
	h.OCSPServers = urls
	auth, _, err := w.pki.Issue(h, &w.authKey.PublicKey, &w.signKey.PublicKey, base.Add(-24*time.Hour), base.Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return auth
}

func TestOCSPChecker(t *testing.T) {
	w, ow := getOCSPWorld(t)
	revokedAt := base.Add(-2 * time.Hour)
	revoke := func(reason int) func(r *cpstest.OCSPResponder) {
		return func(r *cpstest.OCSPResponder) { r.Revoke(w.auth, revokedAt, reason) }
	}
	fault := func(f cpstest.OCSPFault) func(r *cpstest.OCSPResponder) {
		return func(r *cpstest.OCSPResponder) { r.SetFault(f) }
	}
	delegated := cpstest.OCSPResponderOptions{ResponderCert: ow.delegated, ResponderKey: ow.key}
	withCert := func(c *x509.Certificate) cpstest.OCSPResponderOptions {
		return cpstest.OCSPResponderOptions{ResponderCert: c, ResponderKey: ow.key}
	}
	tests := []struct {
		name      string
		responder cpstest.OCSPResponderOptions
		setup     func(r *cpstest.OCSPResponder)
		checker   func(c *OCSPChecker, r *cpstest.OCSPResponder)
		cert      func(r *cpstest.OCSPResponder) *x509.Certificate // default w.auth with ResponderURL
		want      error
		notWant   error
		contains  []string
	}{
		{name: "good"},
		{name: "revoked", setup: revoke(cpstest.ReasonKeyCompromise), want: ErrRevoked,
			contains: []string{"revoked on " + revokedAt.Format(time.RFC3339), "reason keyCompromise", w.auth.SerialNumber.Text(16), "OCSP responder http://127.0.0.1:"}},
		{name: "revoked, no reason given", setup: revoke(cpstest.ReasonUnspecified), want: ErrRevoked, contains: []string{"reason unspecified"}},
		{name: "suspended (certificateHold)", setup: revoke(cpstest.ReasonCertificateHold), want: ErrRevoked, contains: []string{"certificateHold"}},
		{name: "another certificate revoked", setup: func(r *cpstest.OCSPResponder) { r.Revoke(w.sign, revokedAt, cpstest.ReasonSuperseded) }},
		{name: "unknown to the responder", setup: func(r *cpstest.OCSPResponder) {
			r.SetStatus(w.auth.SerialNumber, cpstest.OCSPStatus{Status: cpstest.OCSPUnknown})
		}, want: ErrRevocationUnknown, notWant: ErrOCSPNoResponder, contains: []string{"status unknown"}},
		{name: "unreachable", checker: func(c *OCSPChecker, _ *cpstest.OCSPResponder) { c.ResponderURL = deadURL(t) },
			want: ErrRevocationUnknown, notWant: ErrOCSPNoResponder, contains: []string{"asking http://127.0.0.1:"}},
		{name: "timeout", responder: cpstest.OCSPResponderOptions{Delay: time.Minute}, setup: fault(cpstest.OCSPFaultSlow),
			checker: func(c *OCSPChecker, _ *cpstest.OCSPResponder) { c.Timeout = time.Second },
			want:    ErrRevocationUnknown, contains: []string{"no answer within 1s"}},
		{name: "HTTP 500", setup: fault(cpstest.OCSPFaultHTTP500), want: ErrRevocationUnknown, contains: []string{"HTTP status 500"}},
		{name: "tryLater", setup: fault(cpstest.OCSPFaultTryLater), want: ErrRevocationUnknown, contains: []string{`answered "try later"`}},
		{name: "garbage", setup: fault(cpstest.OCSPFaultGarbage), want: ErrRevocationUnknown, contains: []string{"unusable OCSP response"}},
		{name: "oversized", setup: fault(cpstest.OCSPFaultOversized), want: ErrRevocationUnknown, contains: []string{"65536"}},
		{name: "stale (nextUpdate past)", setup: fault(cpstest.OCSPFaultStale), want: ErrRevocationUnknown,
			contains: []string{"out of date (next update " + base.Add(-24*time.Hour).Format(time.RFC3339)}},
		{name: "stale, revoked: still unknown", setup: func(r *cpstest.OCSPResponder) {
			r.Revoke(w.auth, revokedAt, cpstest.ReasonKeyCompromise)
			r.SetFault(cpstest.OCSPFaultStale)
		}, want: ErrRevocationUnknown, notWant: ErrRevoked},
		{name: "from the future", setup: fault(cpstest.OCSPFaultFuture), want: ErrRevocationUnknown, contains: []string{"after the verification time"}},
		{name: "clock skew tolerated", responder: cpstest.OCSPResponderOptions{Now: func() time.Time { return base.Add(4 * time.Minute) }}},
		{name: "nextUpdate just past, within the skew", responder: cpstest.OCSPResponderOptions{
			Now: func() time.Time { return base.Add(-61 * time.Minute) }, Validity: time.Hour}},
		{name: "no nextUpdate, recent", responder: cpstest.OCSPResponderOptions{Validity: -1}},
		{name: "no nextUpdate, older than DefaultOCSPMaxAge", responder: cpstest.OCSPResponderOptions{
			Validity: -1, Now: func() time.Time { return base.Add(-2 * time.Hour) }},
			want: ErrRevocationUnknown, contains: []string{"older than 1h0m0s"}},
		{name: "older than MaxAge", responder: cpstest.OCSPResponderOptions{Now: func() time.Time { return base.Add(-3 * time.Hour) }},
			checker: func(c *OCSPChecker, _ *cpstest.OCSPResponder) { c.MaxAge = time.Hour },
			want:    ErrRevocationUnknown, contains: []string{"older than 1h0m0s"}},
		{name: "wrong signer", setup: fault(cpstest.OCSPFaultWrongSigner), want: ErrRevocationUnknown,
			contains: []string{"not signed by \"" + cpstest.TestIntermediateCN + "\""}},
		{name: "wrong signer, revoked: still unknown", setup: func(r *cpstest.OCSPResponder) {
			r.Revoke(w.auth, revokedAt, cpstest.ReasonKeyCompromise)
			r.SetFault(cpstest.OCSPFaultWrongSigner)
		}, want: ErrRevocationUnknown, notWant: ErrRevoked},
		{name: "responder of another PKI with the same names",
			checker: func(c *OCSPChecker, _ *cpstest.OCSPResponder) {
				other := startResponder(t, w.other, cpstest.OCSPResponderOptions{})
				c.ResponderURL = other.URL
			}, want: ErrRevocationUnknown, contains: []string{"unauthorized"}},
		{name: "mismatched serial", setup: fault(cpstest.OCSPFaultWrongSerial), want: ErrRevocationUnknown,
			contains: []string{"no response matching the supplied certificate"}},
		{name: "mismatched issuer hashes", setup: fault(cpstest.OCSPFaultWrongIssuer), want: ErrRevocationUnknown,
			contains: []string{"of another issuer than \"" + cpstest.TestIntermediateCN + "\""}},
		{name: "responder of the root asked about a card", responder: cpstest.OCSPResponderOptions{ByRoot: true},
			want: ErrRevocationUnknown, contains: []string{`answered "unauthorized"`}},
		{name: "delegated responder", responder: delegated},
		{name: "delegated responder, revoked", responder: delegated, setup: revoke(cpstest.ReasonAffiliationChanged), want: ErrRevoked,
			contains: []string{"affiliationChanged"}},
		{name: "delegated responder, with nonce", responder: delegated,
			checker: func(c *OCSPChecker, _ *cpstest.OCSPResponder) { c.Nonce = true }},
		{name: "delegated without OCSPSigning EKU", responder: withCert(ow.noEKU), want: ErrRevocationUnknown,
			contains: []string{"lacks the OCSPSigning extended key usage"}},
		{name: "delegated without OCSPSigning EKU, revoked: still unknown", responder: withCert(ow.noEKU),
			setup: revoke(cpstest.ReasonKeyCompromise), want: ErrRevocationUnknown, notWant: ErrRevoked},
		{name: "delegated by the root, not the issuer", responder: withCert(ow.byRoot), want: ErrRevocationUnknown,
			contains: []string{"not issued by \"" + cpstest.TestIntermediateCN + "\""}},
		{name: "delegated by another PKI with the same names", responder: withCert(ow.byOther), want: ErrRevocationUnknown,
			contains: []string{"not signed by \"" + cpstest.TestIntermediateCN + "\""}},
		{name: "delegated responder certificate expired", responder: withCert(ow.expired), want: ErrRevocationUnknown,
			contains: []string{"not valid at"}},
		{name: "delegated responder, wrong signer", responder: delegated, setup: fault(cpstest.OCSPFaultWrongSigner),
			want: ErrRevocationUnknown, contains: []string{"bad signature"}},
		{name: "nonce echoed", checker: func(c *OCSPChecker, _ *cpstest.OCSPResponder) { c.Nonce = true }},
		{name: "nonce missing", setup: fault(cpstest.OCSPFaultNoNonce), checker: func(c *OCSPChecker, _ *cpstest.OCSPResponder) { c.Nonce = true },
			want: ErrRevocationUnknown, contains: []string{"without the request's nonce"}},
		{name: "nonce differs", setup: fault(cpstest.OCSPFaultWrongNonce), checker: func(c *OCSPChecker, _ *cpstest.OCSPResponder) { c.Nonce = true },
			want: ErrRevocationUnknown, contains: []string{"nonce differs"}},
		{name: "nonce not asked for", setup: fault(cpstest.OCSPFaultWrongNonce)},
		{name: "responder named in the certificate", checker: func(c *OCSPChecker, _ *cpstest.OCSPResponder) { c.ResponderURL = "" },
			cert: func(r *cpstest.OCSPResponder) *x509.Certificate { return leafWithOCSP(t, w, r.URL) }},
		{name: "second responder named answers", checker: func(c *OCSPChecker, _ *cpstest.OCSPResponder) { c.ResponderURL = "" },
			cert: func(r *cpstest.OCSPResponder) *x509.Certificate { return leafWithOCSP(t, w, deadURL(t), r.URL) }},
		{name: "ldap responder only", checker: func(c *OCSPChecker, _ *cpstest.OCSPResponder) { c.ResponderURL = "" },
			cert: func(*cpstest.OCSPResponder) *x509.Certificate { return leafWithOCSP(t, w, "ldap://ocsp.example/") },
			want: ErrRevocationUnknown, notWant: ErrOCSPNoResponder, contains: []string{"only http and https"}},
		{name: "no responder named", checker: func(c *OCSPChecker, _ *cpstest.OCSPResponder) { c.ResponderURL = "" },
			want: ErrOCSPNoResponder, contains: []string{"names no OCSP responder"}},
		{name: "network not enabled", checker: func(c *OCSPChecker, _ *cpstest.OCSPResponder) { c.Query = nil },
			want: ErrOCSPNoResponder, contains: []string{"OCSPChecker.Query is nil"}},
		{name: "wrong issuer given", cert: func(*cpstest.OCSPResponder) *x509.Certificate { return w.pki.Intermediate },
			want: ErrRevocationUnknown, contains: []string{"is not the issuer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startResponder(t, w.pki, tt.responder)
			if tt.setup != nil {
				tt.setup(r)
			}
			c := &OCSPChecker{Query: HTTPOCSPQuery(nil, 0), ResponderURL: r.URL}
			if tt.checker != nil {
				tt.checker(c, r)
			}
			cert := w.auth
			if tt.cert != nil {
				cert = tt.cert(r)
			}
			start := time.Now()
			err := c.Check(context.Background(), cert, w.pki.Intermediate, base)
			if elapsed := time.Since(start); elapsed > 30*time.Second {
				t.Errorf("check took %v", elapsed)
			}
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.notWant != nil && errors.Is(err, tt.notWant) {
				t.Errorf("err = %v matches %v", err, tt.notWant)
			}
			if err != nil {
				t.Logf("refused: %v", err)
			}
			for _, s := range tt.contains {
				if err == nil || !strings.Contains(err.Error(), s) {
					t.Errorf("error %v lacks %q", err, s)
				}
			}
			if c.Nonce {
				reqs := r.Requests()
				if len(reqs) == 0 || len(reqs[len(reqs)-1].Nonce) != 32 {
					t.Errorf("requests %+v: no 32-byte nonce sent", reqs)
				}
			}
		})
	}
}

// TestOCSPRevokedError: the revocation details are reachable with
// errors.As, for CRLs and OCSP alike.
func TestOCSPRevokedError(t *testing.T) {
	w, _ := getOCSPWorld(t)
	at := base.Add(-3 * time.Hour).Truncate(time.Second)
	r := startResponder(t, w.pki, cpstest.OCSPResponderOptions{})
	r.Revoke(w.auth, at, cpstest.ReasonPrivilegeWithdrawn)
	crl := issueCRL(t, w.pki, cpstest.CRLOptions{Revoked: []x509.RevocationListEntry{cpstest.Revoke(w.auth, at, cpstest.ReasonPrivilegeWithdrawn)}})
	for name, c := range map[string]RevocationChecker{
		"OCSP": &OCSPChecker{Query: HTTPOCSPQuery(nil, 0), ResponderURL: r.URL},
		"CRL":  NewCRLChecker(crl),
	} {
		err := c.Check(context.Background(), w.auth, w.pki.Intermediate, base)
		var re *RevokedError
		if !errors.As(err, &re) || !errors.Is(err, ErrRevoked) {
			t.Fatalf("%s: %v is not a *RevokedError", name, err)
		}
		if !re.Certificate.Equal(w.auth) || !re.RevokedAt.Equal(at) || re.Reason != cpstest.ReasonPrivilegeWithdrawn ||
			re.ReasonName() != "privilegeWithdrawn" || !strings.HasPrefix(re.Source, name) {
			t.Errorf("%s: %+v", name, re)
		}
	}
	re := &RevokedError{Reason: 7, RevokedAt: at, Source: "a custom checker"}
	if got, msg := re.ReasonName(), re.Error(); got != "7" || msg != "cpsverify: certificate revoked: revoked on "+at.Format(time.RFC3339)+", reason 7 (a custom checker)" {
		t.Errorf("reason 7: %q, %q", got, msg)
	}
}

// TestOCSPVerifier: OCSP through VerifyAuthToken and VerifyCAdES; the
// intermediate, which names no responder, is not checked.
func TestOCSPVerifier(t *testing.T) {
	w, _ := getOCSPWorld(t)
	good := startResponder(t, w.pki, cpstest.OCSPResponderOptions{})
	revoked := startResponder(t, w.pki, cpstest.OCSPResponderOptions{})
	revoked.Revoke(w.auth, base.Add(-time.Hour), cpstest.ReasonKeyCompromise)
	revoked.Revoke(w.sign, base.Add(-time.Hour), cpstest.ReasonKeyCompromise)
	unknown := startResponder(t, w.pki, cpstest.OCSPResponderOptions{Default: cpstest.OCSPStatus{Status: cpstest.OCSPUnknown}})
	down := deadURL(t)
	crl := issueCRL(t, w.pki, cpstest.CRLOptions{})
	crlRevoked := issueCRL(t, w.pki, cpstest.CRLOptions{Revoked: revokedCards(w, cpstest.ReasonSuperseded)})
	arl := issueCRL(t, w.pki, cpstest.CRLOptions{ByRoot: true})
	arlRevoked := issueCRL(t, w.pki, cpstest.CRLOptions{ByRoot: true, Revoked: []x509.RevocationListEntry{
		cpstest.Revoke(w.pki.Intermediate, base.Add(-time.Hour), cpstest.ReasonCACompromise)}})
	ocspAt := func(url string) *OCSPChecker { return &OCSPChecker{Query: HTTPOCSPQuery(nil, 0), ResponderURL: url} }
	use := func(c RevocationChecker, soft bool) func(v *Verifier) {
		return func(v *Verifier) { v.Revocation, v.RevocationSoftFail = c, soft }
	}
	tests := []struct {
		name      string
		configure func(v *Verifier)
		want      error
		notWant   error
	}{
		{"good", use(ocspAt(good.URL), false), nil, nil},
		{"revoked", use(ocspAt(revoked.URL), false), ErrRevoked, nil},
		{"revoked, soft-fail does not help", use(ocspAt(revoked.URL), true), ErrRevoked, nil},
		{"unknown (fail closed)", use(ocspAt(unknown.URL), false), ErrRevocationUnknown, ErrOCSPNoResponder},
		{"unknown, soft-fail", use(ocspAt(unknown.URL), true), nil, nil},
		{"responder down (fail closed)", use(ocspAt(down), false), ErrRevocationUnknown, nil},
		{"responder down, soft-fail", use(ocspAt(down), true), nil, nil},
		{"no responder for the card (fail closed)", use(&OCSPChecker{Query: HTTPOCSPQuery(nil, 0)}, false), ErrOCSPNoResponder, nil},
		{"no responder for the card, soft-fail", use(&OCSPChecker{Query: HTTPOCSPQuery(nil, 0)}, true), nil, nil},
		{"OCSP, then CRL: OCSP good", use(FallbackChecker{ocspAt(good.URL), NewCRLChecker(crlRevoked)}, false), nil, nil},
		{"OCSP, then CRL: OCSP revoked", use(FallbackChecker{ocspAt(revoked.URL), NewCRLChecker(crl)}, false), ErrRevoked, nil},
		{"OCSP, then CRL: responder down, CRL good", use(FallbackChecker{ocspAt(down), NewCRLChecker(crl)}, false), nil, nil},
		{"OCSP, then CRL: responder down, CRL revoked", use(FallbackChecker{ocspAt(down), NewCRLChecker(crlRevoked)}, false), ErrRevoked, nil},
		{"OCSP, then CRL: both unknown", use(FallbackChecker{ocspAt(unknown.URL), NewCRLChecker(arl)}, false), ErrRevocationUnknown, ErrCRLNotFound},
		{"OCSP, then CRL: intermediate revoked by the ARL", use(FallbackChecker{ocspAt(good.URL), NewCRLChecker(arlRevoked)}, false), ErrRevoked, nil},
		{"OCSP, then CRL: intermediate good by the ARL", use(FallbackChecker{ocspAt(good.URL), NewCRLChecker(arl)}, false), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectBoth(t, w, tt.configure, tt.want, tt.notWant)
		})
	}
}

func TestFallbackChecker(t *testing.T) {
	w := getWorld(t)
	ctx, inter := context.Background(), w.pki.Intermediate
	fail := func(err error) RevocationChecker { return checkerFunc(func() error { return err }) }
	notFound := fail(ErrCRLNotFound)
	noResponder := fail(ErrOCSPNoResponder)
	stale := fail(errors.New("CRL out of date"))
	revoked := fail(&RevokedError{Certificate: w.auth, Reason: 1, Source: "test"})
	tests := []struct {
		name      string
		f         FallbackChecker
		want      error
		noSource  bool
		contains  []string
		notWanted []string
	}{
		{"empty", FallbackChecker{}, ErrRevocationUnknown, false, []string{"no revocation checker"}, nil},
		{"first good", FallbackChecker{fail(nil), revoked}, nil, false, nil, nil},
		{"revoked wins over unknown", FallbackChecker{stale, revoked}, ErrRevoked, false, nil, nil},
		{"nil checkers skipped", FallbackChecker{nil, fail(nil)}, nil, false, nil, nil},
		{"no source at all", FallbackChecker{noResponder, notFound}, ErrOCSPNoResponder, true, []string{"no CRL for the issuer"}, nil},
		{"a real unknown leads", FallbackChecker{noResponder, stale}, ErrRevocationUnknown, false, []string{"CRL out of date", "no OCSP responder"}, nil},
		{"single unknown", FallbackChecker{stale}, ErrRevocationUnknown, false, []string{"CRL out of date"}, []string{"also"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Check(ctx, w.auth, inter, base)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err != nil && noRevocationSource(err) != tt.noSource {
				t.Errorf("err = %v: no source %v, want %v", err, !tt.noSource, tt.noSource)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %v lacks %q", err, s)
				}
			}
			for _, s := range tt.notWanted {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %v has %q", err, s)
				}
			}
		})
	}
	// A cancelled check stops at once.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	called := false
	f := FallbackChecker{fail(errors.New("down")), checkerFunc(func() error { called = true; return nil })}
	if err := f.Check(cctx, w.auth, inter, base); !errors.Is(err, context.Canceled) || called {
		t.Errorf("cancelled: %v, second checker called %v", err, called)
	}
}

// TestOCSPCache: answers are kept until their nextUpdate, not with a
// nonce, and an unknown status is not kept.
func TestOCSPCache(t *testing.T) {
	w, _ := getOCSPWorld(t)
	clk := newClock()
	r := startResponder(t, w.pki, cpstest.OCSPResponderOptions{Now: clk.Now, Validity: 2 * time.Hour})
	r.Revoke(w.sign, base.Add(-time.Hour), cpstest.ReasonKeyCompromise)
	c := &OCSPChecker{Query: HTTPOCSPQuery(nil, 0), ResponderURL: r.URL}
	ctx, inter := context.Background(), w.pki.Intermediate
	check := func(cert *x509.Certificate, want error, wantRequests int) {
		t.Helper()
		if err := c.Check(ctx, cert, inter, clk.Now()); want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("at %v: err = %v, want %v", clk.Now(), err, want)
		}
		if n := len(r.Requests()); n != wantRequests {
			t.Fatalf("at %v: %d requests, want %d", clk.Now(), n, wantRequests)
		}
	}
	check(w.auth, nil, 1)
	check(w.auth, nil, 1) // kept
	check(w.sign, ErrRevoked, 2)
	check(w.sign, ErrRevoked, 2) // kept too
	clk.Advance(time.Hour)
	check(w.auth, nil, 2)
	clk.Advance(2 * time.Hour) // past nextUpdate + skew
	check(w.auth, nil, 3)
	r.SetStatus(w.cpeAuth.SerialNumber, cpstest.OCSPStatus{Status: cpstest.OCSPUnknown})
	check(w.cpeAuth, ErrRevocationUnknown, 4)
	check(w.cpeAuth, ErrRevocationUnknown, 5)
	c.Nonce = true
	check(w.auth, nil, 6)
	check(w.auth, nil, 7)
}

func TestHTTPOCSPQuery(t *testing.T) {
	w, _ := getOCSPWorld(t)
	r := startResponder(t, w.pki, cpstest.OCSPResponderOptions{})
	id, err := newOCSPCertID(crypto.SHA1, w.auth, w.pki.Intermediate)
	if err != nil {
		t.Fatal(err)
	}
	req, err := marshalOCSPRequest(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	withNonce, err := marshalOCSPRequest(id, []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ocsp.ParseRequest(withNonce); err != nil || p.SerialNumber.Cmp(w.auth.SerialNumber) != 0 {
		t.Fatalf("request with nonce: %v", err)
	}
	q := HTTPOCSPQuery(nil, 0)
	ctx := context.Background()
	long := r.URL + "/" + strings.Repeat("x", 200)
	for i, tc := range []struct {
		url    string
		method string
	}{
		{r.URL, "GET"},
		{r.URL + "/", "GET"},
		{long, "POST"},
	} {
		der, err := q(ctx, tc.url, req)
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		resp, err := ocsp.ParseResponseForCert(der, w.auth, w.pki.Intermediate)
		if err != nil || resp.Status != ocsp.Good {
			t.Fatalf("%s: %v", tc.method, err)
		}
		reqs := r.Requests()
		if len(reqs) != i+1 || reqs[i].Method != tc.method || reqs[i].Serial.Cmp(w.auth.SerialNumber) != 0 || reqs[i].Nonce != nil {
			t.Errorf("request %d: %+v, want %s", i, reqs[len(reqs)-1], tc.method)
		}
	}
	if _, err := q(ctx, long, withNonce); err != nil {
		t.Fatal(err)
	}
	if reqs := r.Requests(); string(reqs[len(reqs)-1].Nonce) != "0123456789abcdef0123456789abcdef" {
		t.Errorf("nonce received: %q", reqs[len(reqs)-1].Nonce)
	}
	for _, u := range []string{"ldap://ocsp.example/", "file:///etc/passwd"} {
		if _, err := q(ctx, u, req); err == nil || !strings.Contains(err.Error(), "only http and https") {
			t.Errorf("%s: %v", u, err)
		}
	}
	small := HTTPOCSPQuery(nil, 100)
	if _, err := small(ctx, r.URL, req); err == nil || !strings.Contains(err.Error(), "than 100") {
		t.Errorf("size limit: %v", err)
	}
	// The default client's timeout bounds a query without deadline.
	r.SetFault(cpstest.OCSPFaultSlow)
	short := HTTPOCSPQuery(&http.Client{Timeout: 500 * time.Millisecond}, 0)
	if _, err := short(ctx, r.URL, req); err == nil {
		t.Error("slow responder: no timeout")
	}
}

// TestOCSPCancelled: a cancelled verification reports the cancellation,
// not an unknown status that soft-fail would accept.
func TestOCSPCancelled(t *testing.T) {
	w, _ := getOCSPWorld(t)
	r := startResponder(t, w.pki, cpstest.OCSPResponderOptions{Fault: cpstest.OCSPFaultSlow})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for len(r.Requests()) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	v := newVerifier(w, newClock())
	v.RevocationSoftFail = true
	v.Revocation = &OCSPChecker{Query: HTTPOCSPQuery(nil, 0), ResponderURL: r.URL, Timeout: time.Minute}
	nonce := mustNonce(t, v)
	_, err := v.VerifyAuthToken(ctx, makeToken(t, w.auth, w.authKey, "RS256", originA, nonce), originA, nonce)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestOCSPWithOpenSSL asks the test responder with an independent client,
// openssl ocsp, and checks that it agrees with OCSPChecker: good, revoked,
// a delegated responder accepted, one without the OCSPSigning EKU refused.
// Both use the real clock.
func TestOCSPWithOpenSSL(t *testing.T) {
	openssl := lookOpenSSL(t)
	w, ow := getOCSPWorld(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string { return writeFile(t, dir, name, b) }
	chain := write("chain.pem", w.pki.ChainPEM())
	issuer := write("issuer.pem", cpstest.CertPEM(w.pki.Intermediate))
	files := map[*x509.Certificate]string{w.auth: write("auth.pem", cpstest.CertPEM(w.auth)), w.sign: write("sign.pem", cpstest.CertPEM(w.sign))}
	now := time.Now()
	revokedAt := now.Add(-time.Hour)

	start := func(o cpstest.OCSPResponderOptions) *cpstest.OCSPResponder {
		o.Now = time.Now
		r, err := w.pki.StartOCSPResponder(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		r.Revoke(w.sign, revokedAt, cpstest.ReasonKeyCompromise)
		return r
	}
	tests := []struct {
		name      string
		responder cpstest.OCSPResponderOptions
		cert      *x509.Certificate
		want      error  // OCSPChecker's verdict
		status    string // openssl's, "" when it must refuse the response
	}{
		{"good", cpstest.OCSPResponderOptions{}, w.auth, nil, "good"},
		{"revoked", cpstest.OCSPResponderOptions{}, w.sign, ErrRevoked, "revoked"},
		{"delegated, good", cpstest.OCSPResponderOptions{ResponderCert: ow.delegated, ResponderKey: ow.key}, w.auth, nil, "good"},
		{"delegated, revoked", cpstest.OCSPResponderOptions{ResponderCert: ow.delegated, ResponderKey: ow.key}, w.sign, ErrRevoked, "revoked"},
		{"delegated without OCSPSigning", cpstest.OCSPResponderOptions{ResponderCert: ow.noEKU, ResponderKey: ow.key}, w.auth, ErrRevocationUnknown, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := start(tt.responder)
			out, err := exec.Command(openssl, "ocsp", "-issuer", issuer, "-cert", files[tt.cert], "-url", r.URL,
				"-CAfile", chain, "-timeout", "20").CombinedOutput()
			text := string(out)
			if tt.status != "" {
				if err != nil || !strings.Contains(text, "Response verify OK") || !strings.Contains(text, files[tt.cert]+": "+tt.status) ||
					strings.Contains(text, "WARNING") {
					t.Fatalf("openssl ocsp: %v\n%s", err, text)
				}
				if tt.status == "revoked" && !strings.Contains(text, "Reason: keyCompromise") {
					t.Errorf("openssl ocsp gives no reason:\n%s", text)
				}
			} else if strings.Contains(text, "Response verify OK") || !strings.Contains(text, "Response Verify Failure") {
				t.Fatalf("openssl ocsp did not refuse the response:\n%s", text)
			}
			t.Logf("openssl ocsp:\n%s", text)
			c := &OCSPChecker{Query: HTTPOCSPQuery(nil, 0), ResponderURL: r.URL, Nonce: true}
			got := c.Check(context.Background(), tt.cert, w.pki.Intermediate, time.Now())
			if tt.want == nil && got != nil || tt.want != nil && !errors.Is(got, tt.want) {
				t.Fatalf("OCSPChecker: %v, openssl: %s", got, tt.status)
			}
			var re *RevokedError
			if errors.As(got, &re) && (!re.RevokedAt.Equal(revokedAt.Truncate(time.Second)) || re.Reason != cpstest.ReasonKeyCompromise) {
				t.Errorf("revocation details %+v", re)
			}
		})
	}
}
