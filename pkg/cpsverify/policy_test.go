package cpsverify

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/pkg/cpsid/cpstest"
)

// Policy OIDs of the tests: a documentation arc (RFC 5612's 1.3.6.1.4.1.32473),
// not IGC-Santé's, whose card policies are not known.
var (
	policyA   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 1, 1}
	policyB   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 1, 2}
	policyC   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 1, 3}
	anyPolicy = asn1.ObjectIdentifier{2, 5, 29, 32, 0}
)

func TestRequiredPolicies(t *testing.T) {
	w := getWorld(t)
	issue := func(policies ...asn1.ObjectIdentifier) [2]*x509.Certificate {
		h := cpstest.Holders()["medecin"]
		h.Policies = policies
		auth, sign, err := w.pki.Issue(h, &w.authKey.PublicKey, &w.signKey.PublicKey, base.Add(-24*time.Hour), base.Add(365*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return [2]*x509.Certificate{auth, sign}
	}
	ab, none, anyPol := issue(policyA, policyB), [2]*x509.Certificate{w.auth, w.sign}, issue(anyPolicy)
	tests := []struct {
		name     string
		certs    [2]*x509.Certificate
		required []asn1.ObjectIdentifier
		want     error
		contains []string
	}{
		{"no requirement", ab, nil, nil, nil},
		{"empty list: no check", none, []asn1.ObjectIdentifier{}, nil, nil},
		{"present", ab, []asn1.ObjectIdentifier{policyA}, nil, nil},
		{"one of several present", ab, []asn1.ObjectIdentifier{policyC, policyB}, nil, nil},
		{"absent", ab, []asn1.ObjectIdentifier{policyC}, ErrCertificatePolicy,
			[]string{"policies 1.3.6.1.4.1.32473.1.1, 1.3.6.1.4.1.32473.1.2 include none of 1.3.6.1.4.1.32473.1.3"}},
		{"no policy at all", none, []asn1.ObjectIdentifier{policyA, policyC}, ErrCertificatePolicy,
			[]string{"no certificate policy, want one of 1.3.6.1.4.1.32473.1.1, 1.3.6.1.4.1.32473.1.3"}},
		{"anyPolicy is not a listed policy", anyPol, []asn1.ObjectIdentifier{policyA}, ErrCertificatePolicy, []string{"2.5.29.32.0"}},
		{"anyPolicy when listed", anyPol, []asn1.ObjectIdentifier{anyPolicy}, nil, nil},
		{"invalid OID", ab, []asn1.ObjectIdentifier{{1}}, ErrConfig, nil},
		{"invalid second arc", ab, []asn1.ObjectIdentifier{{1, 40}}, ErrConfig, nil},
		{"negative arc", ab, []asn1.ObjectIdentifier{{1, 2, -3}}, ErrConfig, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(w, newClock())
			v.RequiredPolicies = tt.required
			nonce := mustNonce(t, v)
			_, tokenErr := v.VerifyAuthToken(context.Background(), makeToken(t, tt.certs[0], w.authKey, "RS256", originA, nonce), originA, nonce)
			_, cadesErr := v.VerifyCAdES(context.Background(), buildP7S(t, tt.certs[1], w.signKey, w.pki.Chain(), base.Add(-time.Minute)), document)
			for kind, err := range map[string]error{"token": tokenErr, "cades": cadesErr} {
				if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
					t.Errorf("%s: err = %v, want %v", kind, err, tt.want)
				}
				for _, s := range tt.contains {
					if err == nil || !strings.Contains(err.Error(), s) {
						t.Errorf("%s: error %v lacks %q", kind, err, s)
					}
				}
			}
		})
	}
}

// TestRequiredPoliciesBeforeRevocation: a certificate refused for its
// policy does not cost a revocation query.
func TestRequiredPoliciesBeforeRevocation(t *testing.T) {
	w := getWorld(t)
	v := newVerifier(w, newClock())
	v.RequiredPolicies = []asn1.ObjectIdentifier{policyA}
	called := false
	v.Revocation = checkerFunc(func() error { called = true; return nil })
	nonce := mustNonce(t, v)
	_, err := v.VerifyAuthToken(context.Background(), makeToken(t, w.auth, w.authKey, "RS256", originA, nonce), originA, nonce)
	if !errors.Is(err, ErrCertificatePolicy) || called {
		t.Fatalf("err = %v, revocation checked: %v", err, called)
	}
}
