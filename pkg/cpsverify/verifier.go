package cpsverify

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cpsagent/cpsagent/pkg/cpsid"
)

// DefaultMaxNonceAge is the nonce lifetime used when Verifier.MaxNonceAge
// is zero (Web eID recommends 5 minutes).
const DefaultMaxNonceAge = 5 * time.Minute

// Verifier checks authentication tokens and CAdES signatures made with CPS
// cards. Configure it once and share it; do not copy it after first use.
type Verifier struct {
	// Roots are the trust anchors (e.g. the IGC-Santé roots). Required:
	// the system roots are never used.
	Roots *x509.CertPool
	// Intermediates are extra CA certificates used to build chains (e.g.
	// "AC IGC-SANTE FORT PERSONNES"). Optional.
	Intermediates *x509.CertPool
	// Nonces issues and consumes challenge nonces. When nil, an in-memory
	// MemoryNonceStore private to this Verifier is used (see IssueNonce).
	Nonces NonceStore
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AllowedOrigins lists the exact origins ("https://portal.example.fr",
	// no trailing slash) tokens may be bound to. Empty refuses every token.
	AllowedOrigins []string
	// MaxNonceAge bounds the time between issuing a nonce and verifying the
	// token; zero means DefaultMaxNonceAge.
	MaxNonceAge time.Duration
	// By default cards of the IGC-Santé test PKI are refused.
	// AllowTestCards accepts them as well as production cards;
	// RequireTestCards accepts only them (staging portals).
	AllowTestCards   bool
	RequireTestCards bool
	// Revocation, when set, checks the verified chain: the end-entity
	// certificate always, an intermediate CA when the checker has a CRL
	// (or other source) for its issuer; the root is a trust anchor. A
	// revoked certificate gives ErrRevoked; an unknown status gives
	// ErrRevocationUnknown (fail closed). Nil: no revocation checking.
	// CRLChecker (CRLs), OCSPChecker (OCSP) and FallbackChecker (OCSP,
	// then CRLs) are the ready implementations.
	Revocation RevocationChecker
	// RevocationSoftFail accepts a certificate whose revocation status is
	// unknown (no CRL, CRL out of date, download failure, OCSP responder
	// down or answering "unknown"); a certificate listed as revoked is
	// always refused. To log such acceptances, wrap the checker.
	RevocationSoftFail bool
	// RequiredPolicies, when not empty, requires the card certificate
	// (the end-entity certificate only) to carry at least one of these
	// OIDs in its certificatePolicies extension; anyPolicy (2.5.29.32.0)
	// in the certificate satisfies only a list naming it. A certificate
	// without them gives ErrCertificatePolicy. Empty: no policy check.
	// The OIDs of the IGC-Santé card policies are not confirmed (see the
	// package documentation): take them from the CA's certification
	// policy or from a real card.
	RequiredPolicies []asn1.ObjectIdentifier

	once         sync.Once
	memoryNonces *MemoryNonceStore
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) nonces() NonceStore {
	if v.Nonces != nil {
		return v.Nonces
	}
	v.once.Do(func() {
		v.memoryNonces = &MemoryNonceStore{TTL: v.maxNonceAge(), Now: v.Now}
	})
	return v.memoryNonces
}

func (v *Verifier) maxNonceAge() time.Duration {
	if v.MaxNonceAge > 0 {
		return v.MaxNonceAge
	}
	return DefaultMaxNonceAge
}

// IssueNonce issues a challenge nonce from v.Nonces (or the built-in store).
func (v *Verifier) IssueNonce(ctx context.Context) (string, error) {
	return v.nonces().Issue(ctx)
}

func (v *Verifier) checkConfig() error {
	if v.Roots == nil {
		return fmt.Errorf("%w: Roots is nil", ErrConfig)
	}
	if v.AllowTestCards && v.RequireTestCards {
		return fmt.Errorf("%w: AllowTestCards and RequireTestCards are exclusive", ErrConfig)
	}
	for _, oid := range v.RequiredPolicies {
		if !validOID(oid) {
			return fmt.Errorf("%w: RequiredPolicies holds an invalid OID %v", ErrConfig, oid)
		}
	}
	return nil
}

// validOID tells an OID that can be encoded: two arcs at least, the
// first 0, 1 or 2, the second below 40 under 0 and 1, none negative.
func validOID(oid asn1.ObjectIdentifier) bool {
	if len(oid) < 2 || oid[0] < 0 || oid[0] > 2 || oid[0] < 2 && oid[1] >= 40 {
		return false
	}
	return !slices.ContainsFunc(oid, func(a int) bool { return a < 0 })
}

// checkPolicies requires one of v.RequiredPolicies among cert's
// certificate policies.
func (v *Verifier) checkPolicies(cert *x509.Certificate) error {
	if len(v.RequiredPolicies) == 0 {
		return nil
	}
	var have []string
	for _, p := range cert.Policies {
		for _, want := range v.RequiredPolicies {
			if p.EqualASN1OID(want) {
				return nil
			}
		}
		have = append(have, p.String())
	}
	want := make([]string, len(v.RequiredPolicies))
	for i, oid := range v.RequiredPolicies {
		want[i] = oid.String()
	}
	if len(have) == 0 {
		return fmt.Errorf("%w: the certificate has no certificate policy, want one of %s", ErrCertificatePolicy, strings.Join(want, ", "))
	}
	return fmt.Errorf("%w: the certificate's policies %s include none of %s", ErrCertificatePolicy,
		strings.Join(have, ", "), strings.Join(want, ", "))
}

// checkOrigin requires a plain https origin listed in AllowedOrigins.
func (v *Verifier) checkOrigin(origin string) error {
	if err := validOrigin(origin); err != nil {
		return err
	}
	if !slices.Contains(v.AllowedOrigins, origin) {
		return fmt.Errorf("%w: %q is not an allowed origin", ErrOriginMismatch, origin)
	}
	return nil
}

// validOrigin accepts "https://host[:port]" only (Web eID's rule), at most
// 255 characters.
func validOrigin(origin string) error {
	if len(origin) == 0 || len(origin) > 255 {
		return fmt.Errorf("%w: origin length %d", ErrOriginMismatch, len(origin))
	}
	u, err := url.Parse(origin)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrOriginMismatch, err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" ||
		u.Opaque != "" || strings.HasSuffix(origin, "/") || strings.ContainsAny(origin, "?#") {
		return fmt.Errorf("%w: %q is not an https origin (scheme://host[:port])", ErrOriginMismatch, origin)
	}
	return nil
}

// checkValidity checks the certificate validity period at now.
func checkValidity(c *x509.Certificate, now time.Time) error {
	switch {
	case now.Before(c.NotBefore):
		return fmt.Errorf("%w: valid from %s", ErrCertificateNotYetValid, c.NotBefore.UTC().Format(time.RFC3339))
	case now.After(c.NotAfter):
		return fmt.Errorf("%w: expired %s", ErrCertificateExpired, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// verifyChain builds a chain from c to v.Roots.
func (v *Verifier) verifyChain(c *x509.Certificate, extra []*x509.Certificate, now time.Time, usage x509.ExtKeyUsage) ([][]*x509.Certificate, error) {
	inter := x509.NewCertPool()
	if v.Intermediates != nil {
		inter = v.Intermediates.Clone()
	}
	for _, e := range extra {
		inter.AddCert(e)
	}
	chains, err := c.Verify(x509.VerifyOptions{
		Roots:         v.Roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCertificateUntrusted, err)
	}
	return chains, nil
}

// checkCardEnvironment applies the test-card policy.
func (v *Verifier) checkCardEnvironment(id *cpsid.Identity) error {
	switch {
	case v.RequireTestCards && !id.Card.Test:
		return ErrProductionCard
	case !v.RequireTestCards && !v.AllowTestCards && id.Card.Test:
		return ErrTestCard
	}
	return nil
}
