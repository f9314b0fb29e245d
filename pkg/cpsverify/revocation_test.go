package cpsverify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/cpsagent/cpsagent/pkg/cpsid/cpstest"
)

const (
	crlURL     = "http://crl.igc-sante.test/ac-fort-personnes.crl"
	crlLDAPURL = "ldap://annuaire.igc-sante.test/cn=TEST%20AC%20IGC-SANTE%20FORT%20PERSONNES?certificaterevocationlist;binary"
)

// issueCRL issues a CRL valid around base unless o says otherwise.
func issueCRL(t testing.TB, p *cpstest.PKI, o cpstest.CRLOptions) *x509.RevocationList {
	t.Helper()
	if o.ThisUpdate.IsZero() {
		o.ThisUpdate = base.Add(-time.Hour)
	}
	crl, err := p.IssueCRL(o)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

// revokedCards revokes both certificates of the test holder (the
// authentication one for tokens, the signature one for CAdES).
func revokedCards(w *world, reason int) []x509.RevocationListEntry {
	at := base.Add(-2 * time.Hour)
	return []x509.RevocationListEntry{cpstest.Revoke(w.auth, at, reason), cpstest.Revoke(w.sign, at, reason)}
}

// otherRevoked lists a certificate that is not the holder's.
func otherRevoked(w *world) []x509.RevocationListEntry {
	return []x509.RevocationListEntry{cpstest.Revoke(w.expiredAuth, base.Add(-24*time.Hour), cpstest.ReasonSuperseded)}
}

func idpExtension(t testing.TB, uri string, userOnly, caOnly bool) pkix.Extension {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if uri != "" {
			b.AddASN1(casn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(casn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1(casn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(uri)) })
				})
			})
		}
		if userOnly {
			b.AddASN1(casn1.Tag(1).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddUint8(0xff) })
		}
		if caOnly {
			b.AddASN1(casn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddUint8(0xff) })
		}
	})
	return pkix.Extension{Id: oidExtIssuingDistPoint, Critical: true, Value: b.BytesOrPanic()}
}

// checkBoth verifies a token made with w.auth and a CAdES signature made
// with w.sign with the same verifier configuration.
func checkBoth(t *testing.T, w *world, configure func(v *Verifier)) (tokenErr, cadesErr error) {
	t.Helper()
	v := newVerifier(w, newClock())
	configure(v)
	nonce := mustNonce(t, v)
	_, tokenErr = v.VerifyAuthToken(context.Background(), makeToken(t, w.auth, w.authKey, "RS256", originA, nonce), originA, nonce)
	rep, cadesErr := v.VerifyCAdES(context.Background(), buildP7S(t, w.sign, w.signKey, w.pki.Chain(), base.Add(-time.Minute)), document)
	if cadesErr == nil && len(rep.Chain) != 3 {
		t.Errorf("CAdES chain of %d certificates", len(rep.Chain))
	}
	return tokenErr, cadesErr
}

// expectBoth runs checkBoth and requires both verdicts to match want (nil:
// success) and not to match notWant (nil: no such check).
func expectBoth(t *testing.T, w *world, configure func(v *Verifier), want, notWant error) (tokenErr, cadesErr error) {
	t.Helper()
	tokenErr, cadesErr = checkBoth(t, w, configure)
	for kind, err := range map[string]error{"token": tokenErr, "cades": cadesErr} {
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", kind, err, want)
		}
		if notWant != nil && errors.Is(err, notWant) {
			t.Errorf("%s: err = %v matches %v", kind, err, notWant)
		}
	}
	return tokenErr, cadesErr
}

func TestRevocation(t *testing.T) {
	w := getWorld(t)
	good := issueCRL(t, w.pki, cpstest.CRLOptions{Revoked: otherRevoked(w)})
	goodARL := issueCRL(t, w.pki, cpstest.CRLOptions{ByRoot: true})
	revoked := issueCRL(t, w.pki, cpstest.CRLOptions{Revoked: revokedCards(w, cpstest.ReasonKeyCompromise)})
	held := issueCRL(t, w.pki, cpstest.CRLOptions{ThisUpdate: base.Add(-3 * time.Hour), Revoked: revokedCards(w, cpstest.ReasonCertificateHold)})
	released := issueCRL(t, w.pki, cpstest.CRLOptions{ThisUpdate: base.Add(-2 * time.Hour)}) // hold lifted
	newerEmpty := issueCRL(t, w.pki, cpstest.CRLOptions{ThisUpdate: base.Add(-time.Minute)})
	heldSameNumber := issueCRL(t, w.pki, cpstest.CRLOptions{Revoked: revokedCards(w, cpstest.ReasonCertificateHold)})
	otherCA := issueCRL(t, w.other, cpstest.CRLOptions{}) // same names, other keys
	expired := issueCRL(t, w.pki, cpstest.CRLOptions{ThisUpdate: base.Add(-8 * 24 * time.Hour), NextUpdate: base.Add(-time.Second)})
	future := issueCRL(t, w.pki, cpstest.CRLOptions{ThisUpdate: base.Add(time.Hour)})
	revokedInter := issueCRL(t, w.pki, cpstest.CRLOptions{ByRoot: true, Revoked: []x509.RevocationListEntry{
		cpstest.Revoke(w.pki.Intermediate, base.Add(-time.Hour), cpstest.ReasonCACompromise)}})
	expiredARL := issueCRL(t, w.pki, cpstest.CRLOptions{ByRoot: true, ThisUpdate: base.Add(-30 * 24 * time.Hour), NextUpdate: base.Add(-24 * time.Hour)})
	delta := issueCRL(t, w.pki, cpstest.CRLOptions{Extensions: []pkix.Extension{{Id: oidExtDeltaCRLIndicator, Critical: true, Value: []byte{2, 1, 5}}}})
	unknownCritical := issueCRL(t, w.pki, cpstest.CRLOptions{Extensions: []pkix.Extension{{Id: []int{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}}})
	unknownNonCritical := issueCRL(t, w.pki, cpstest.CRLOptions{Extensions: []pkix.Extension{{Id: []int{1, 2, 3, 4}, Value: []byte{5, 0}}}})
	caOnly := issueCRL(t, w.pki, cpstest.CRLOptions{Extensions: []pkix.Extension{idpExtension(t, "", false, true)}})
	userOnly := issueCRL(t, w.pki, cpstest.CRLOptions{Extensions: []pkix.Extension{idpExtension(t, "", true, false)}})
	partition := issueCRL(t, w.pki, cpstest.CRLOptions{Extensions: []pkix.Extension{idpExtension(t, crlURL, false, false)}})
	tampered, err := x509.ParseRevocationList(append(bytes.Clone(good.Raw[:len(good.Raw)-1]), good.Raw[len(good.Raw)-1]^1))
	if err != nil {
		t.Fatal(err)
	}

	crls := func(l ...*x509.RevocationList) func(v *Verifier) {
		return func(v *Verifier) { v.Revocation = NewCRLChecker(l...) }
	}
	soft := func(l ...*x509.RevocationList) func(v *Verifier) {
		return func(v *Verifier) { v.Revocation, v.RevocationSoftFail = NewCRLChecker(l...), true }
	}
	tests := []struct {
		name      string
		configure func(v *Verifier)
		want      error
		notWant   error    // must not match (e.g. unknown must not be "not found")
		contains  []string // in the token error message
	}{
		{name: "no checker", configure: func(*Verifier) {}},
		{name: "not revoked", configure: crls(good)},
		{name: "not revoked, ARL too", configure: crls(good, goodARL)},
		{name: "revoked", configure: crls(revoked), want: ErrRevoked,
			contains: []string{"revoked on " + base.Add(-2*time.Hour).Format(time.RFC3339), "keyCompromise", w.auth.SerialNumber.Text(16)}},
		{name: "revoked, soft-fail does not help", configure: soft(revoked), want: ErrRevoked},
		{name: "revoked among several CRLs of other issuers", configure: crls(goodARL, otherCA, revoked), want: ErrRevoked},
		{name: "suspended (certificateHold)", configure: crls(held), want: ErrRevoked, contains: []string{"certificateHold"}},
		{name: "suspension lifted by a newer CRL", configure: crls(held, released)},
		{name: "newer CRL revokes", configure: crls(released, revoked), want: ErrRevoked},
		{name: "a newer CRL cannot lift a revocation", configure: crls(revoked, newerEmpty), want: ErrRevoked},
		{name: "suspended in one of two CRLs of the same number", configure: crls(good, heldSameNumber), want: ErrRevoked},
		{name: "CRL signed by another CA", configure: crls(otherCA), want: ErrRevocationUnknown, notWant: ErrCRLNotFound,
			contains: []string{"not signed by the issuer's key"}},
		{name: "CRL signed by another CA, soft-fail", configure: soft(otherCA)},
		{name: "CRL with a bad signature", configure: crls(tampered), want: ErrRevocationUnknown, notWant: ErrCRLNotFound,
			contains: []string{"not signed by the issuer's key (crypto/rsa: verification error)"}},
		{name: "expired CRL", configure: crls(expired), want: ErrRevocationUnknown, notWant: ErrCRLNotFound,
			contains: []string{"out of date (next update " + base.Add(-time.Second).Format(time.RFC3339)}},
		{name: "expired CRL, soft-fail", configure: soft(expired)},
		{name: "CRL published after now", configure: crls(future), want: ErrRevocationUnknown, contains: []string{"after the verification time"}},
		{name: "expired and current CRL", configure: crls(expired, good)},
		{name: "no CRL for the issuer (fail closed)", configure: crls(goodARL), want: ErrCRLNotFound,
			contains: []string{cpstest.TestIntermediateCN}},
		{name: "no CRL at all (fail closed)", configure: crls(), want: ErrCRLNotFound},
		{name: "no CRL for the issuer, soft-fail", configure: soft(goodARL)},
		{name: "intermediate revoked by the ARL", configure: crls(good, revokedInter), want: ErrRevoked,
			contains: []string{cpstest.TestIntermediateCN, "cACompromise"}},
		{name: "intermediate revoked, soft-fail does not help", configure: soft(good, revokedInter), want: ErrRevoked},
		{name: "ARL out of date", configure: crls(good, expiredARL), want: ErrRevocationUnknown, contains: []string{cpstest.TestRootCN}},
		{name: "ARL out of date, soft-fail", configure: soft(good, expiredARL)},
		{name: "delta CRL is not a complete CRL", configure: crls(delta), want: ErrRevocationUnknown, contains: []string{"delta CRL"}},
		{name: "unknown critical extension", configure: crls(unknownCritical), want: ErrRevocationUnknown, contains: []string{"critical extension 1.2.3.4"}},
		{name: "unknown non-critical extension", configure: crls(unknownNonCritical)},
		{name: "CRL of CA certificates only", configure: crls(caOnly), want: ErrRevocationUnknown, contains: []string{"does not cover"}},
		{name: "CRL of user certificates only", configure: crls(userOnly)},
		{name: "partitioned CRL of another distribution point", configure: crls(partition), want: ErrRevocationUnknown, contains: []string{crlURL}},
		{name: "checker error counts as unknown", want: ErrRevocationUnknown,
			configure: func(v *Verifier) {
				v.Revocation = checkerFunc(func() error { return errors.New("OCSP responder down") })
			}},
		{name: "checker error, soft-fail", configure: func(v *Verifier) {
			v.Revocation, v.RevocationSoftFail = checkerFunc(func() error { return errors.New("OCSP responder down") }), true
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokenErr, cadesErr := expectBoth(t, w, tt.configure, tt.want, tt.notWant)
			if tokenErr != nil {
				t.Logf("token refused: %v", tokenErr)
			}
			for _, s := range tt.contains {
				if tokenErr == nil || !strings.Contains(tokenErr.Error(), s) {
					t.Errorf("token error %v lacks %q", tokenErr, s)
				}
			}
			if errors.Is(tt.want, ErrRevoked) && cadesErr != nil && !strings.Contains(cadesErr.Error(), w.sign.SerialNumber.Text(16)) &&
				!strings.Contains(cadesErr.Error(), cpstest.TestIntermediateCN) {
				t.Errorf("CAdES error %v names neither the signature certificate nor the CA", cadesErr)
			}
		})
	}
}

type checkerFunc func() error

func (f checkerFunc) Check(context.Context, *x509.Certificate, *x509.Certificate, time.Time) error {
	return f()
}

// TestRevocationCancelled: a check under a cancelled context reports the
// cancellation, not an unknown status that soft-fail would accept.
func TestRevocationCancelled(t *testing.T) {
	w := getWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	block := make(chan struct{})
	v := newVerifier(w, newClock())
	v.RevocationSoftFail = true
	v.Revocation = &CRLChecker{Fetch: func(ctx context.Context, url string) ([]byte, error) {
		close(block)
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	leaf := leafWithCRLDP(t, w, crlURL)
	go func() { <-block; cancel() }()
	nonce := mustNonce(t, v)
	_, err := v.VerifyAuthToken(ctx, makeToken(t, leaf, w.authKey, "RS256", originA, nonce), originA, nonce)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// leafWithCRLDP issues an authentication certificate for w.authKey with
// CRL distribution points, as IGC-Santé card certificates have.
func leafWithCRLDP(t testing.TB, w *world, urls ...string) *x509.Certificate {
	t.Helper()
	subject, err := cpstest.HolderSubject(cpstest.Holders()["medecin"])
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)), RawSubject: subject,
		NotBefore: base.Add(-24 * time.Hour), NotAfter: base.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		CRLDistributionPoints: urls,
	}
	c, err := issueLeaf(w, tmpl, &w.authKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRevocationPartitionedCRL(t *testing.T) {
	w := getWorld(t)
	leaf := leafWithCRLDP(t, w, crlLDAPURL, crlURL)
	inter := w.pki.Intermediate
	partition := issueCRL(t, w.pki, cpstest.CRLOptions{Extensions: []pkix.Extension{idpExtension(t, crlURL, true, false)}})
	other := issueCRL(t, w.pki, cpstest.CRLOptions{Extensions: []pkix.Extension{idpExtension(t, "http://crl.igc-sante.test/other.crl", false, false)}})
	if err := NewCRLChecker(partition).Check(context.Background(), leaf, inter, base); err != nil {
		t.Errorf("CRL of the certificate's distribution point: %v", err)
	}
	if err := NewCRLChecker(other).Check(context.Background(), leaf, inter, base); !errors.Is(err, ErrRevocationUnknown) {
		t.Errorf("CRL of another distribution point: %v", err)
	}
	// A CRL of a distribution point says nothing of a certificate without one.
	if err := NewCRLChecker(partition).Check(context.Background(), w.auth, inter, base); !errors.Is(err, ErrRevocationUnknown) {
		t.Errorf("certificate without distribution point: %v", err)
	}
	// The issuer passed must be the certificate's.
	if err := NewCRLChecker(partition).Check(context.Background(), leaf, w.pki.Root, base); !errors.Is(err, ErrRevocationUnknown) {
		t.Errorf("wrong issuer: %v", err)
	}
}

func TestParseIDP(t *testing.T) {
	for _, tt := range []struct {
		name string
		der  []byte
		want string // error substring, "" for success
	}{
		{"empty", []byte{0x30, 0x00}, ""},
		{"user only", []byte{0x30, 0x03, 0x81, 0x01, 0xff}, ""},
		{"some reasons", []byte{0x30, 0x04, 0x83, 0x02, 0x06, 0x40}, "onlySomeReasons"},
		{"indirect", []byte{0x30, 0x03, 0x84, 0x01, 0xff}, "indirect"},
		{"bad boolean", []byte{0x30, 0x03, 0x81, 0x01, 0x01}, "malformed"},
		{"trailing", []byte{0x30, 0x00, 0x00}, "malformed"},
		{"unknown field", []byte{0x30, 0x03, 0x87, 0x01, 0xff}, "malformed"},
		{"relative name", []byte{0x30, 0x04, 0xa0, 0x02, 0xa1, 0x00}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseIDP(tt.der)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	sc, err := parseIDP([]byte{0x30, 0x04, 0xa0, 0x02, 0xa1, 0x00})
	if err != nil || !sc.otherName {
		t.Errorf("relative name: %+v %v", sc, err)
	}
}

func TestParseCRLs(t *testing.T) {
	w := getWorld(t)
	a := issueCRL(t, w.pki, cpstest.CRLOptions{Revoked: revokedCards(w, cpstest.ReasonKeyCompromise)})
	b := issueCRL(t, w.pki, cpstest.CRLOptions{ByRoot: true})
	delta := issueCRL(t, w.pki, cpstest.CRLOptions{Extensions: []pkix.Extension{{Id: oidExtDeltaCRLIndicator, Critical: true, Value: []byte{2, 1, 5}}}})
	withCert := append(cpstest.CertPEM(w.pki.Root), cpstest.CRLPEM(a.Raw, b.Raw)...)
	tests := []struct {
		name string
		data []byte
		n    int
		want error
	}{
		{"DER", a.Raw, 1, nil},
		{"PEM", cpstest.CRLPEM(a.Raw), 1, nil},
		{"PEM, two CRLs and a certificate", withCert, 2, nil},
		{"PEM without CRL", cpstest.CertPEM(w.pki.Root), 0, ErrCRLMalformed},
		{"certificate DER", w.pki.Root.Raw, 0, ErrCRLMalformed},
		{"garbage", []byte("not a CRL"), 0, ErrCRLMalformed},
		{"empty", nil, 0, ErrCRLMalformed},
		{"truncated", a.Raw[:len(a.Raw)-3], 0, ErrCRLMalformed},
		{"delta CRL", delta.Raw, 0, ErrCRLMalformed},
		{"bad PEM body", []byte("-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n"), 0, ErrCRLMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCRLs(tt.data)
			if !errors.Is(err, tt.want) || len(got) != tt.n {
				t.Fatalf("%d CRLs, err = %v; want %d, %v", len(got), err, tt.n, tt.want)
			}
			if err != nil && !errors.Is(err, ErrFormat) {
				t.Errorf("%v does not match ErrFormat", err)
			}
		})
	}

	// Files: DER and PEM give the same verdicts.
	dir := t.TempDir()
	der, pemFile := filepath.Join(dir, "ac.crl"), filepath.Join(dir, "crls.pem")
	if err := os.WriteFile(der, a.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pemFile, cpstest.CRLPEM(b.Raw, a.Raw), 0o644); err != nil {
		t.Fatal(err)
	}
	checkCRLFile(t, w, der, w.auth, w.cpeAuth)
	checkCRLFile(t, w, pemFile, w.auth, w.cpeAuth)
	if _, err := LoadCRLs(filepath.Join(dir, "missing.crl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.crl")
	os.WriteFile(bad, []byte("x"), 0o644)
	if _, err := LoadCRLs(der, bad); !errors.Is(err, ErrCRLMalformed) || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad file: %v", err)
	}
}

// checkCRLFile loads file and checks that revoked is revoked and good is
// not, both issued by the test PKI's intermediate.
func checkCRLFile(t *testing.T, w *world, file string, revoked, good *x509.Certificate) {
	t.Helper()
	crls, err := LoadCRLs(file)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCRLChecker(crls...)
	if err := c.Check(context.Background(), revoked, w.pki.Intermediate, base); !errors.Is(err, ErrRevoked) {
		t.Errorf("%s: revoked certificate: %v", file, err)
	}
	if err := c.Check(context.Background(), good, w.pki.Intermediate, base); err != nil {
		t.Errorf("%s: other certificate: %v", file, err)
	}
}

// TestCRLCheckerSetCRLs: a refresh replaces the CRLs.
func TestCRLCheckerSetCRLs(t *testing.T) {
	w := getWorld(t)
	c := &CRLChecker{} // zero value: no CRL
	ctx := context.Background()
	if err := c.Check(ctx, w.auth, w.pki.Intermediate, base); !errors.Is(err, ErrCRLNotFound) {
		t.Fatalf("zero value: %v", err)
	}
	c.SetCRLs(issueCRL(t, w.pki, cpstest.CRLOptions{}), nil)
	if err := c.Check(ctx, w.auth, w.pki.Intermediate, base); err != nil {
		t.Fatalf("after SetCRLs: %v", err)
	}
	c.SetCRLs(issueCRL(t, w.pki, cpstest.CRLOptions{Revoked: revokedCards(w, cpstest.ReasonUnspecified)}))
	err := c.Check(ctx, w.auth, w.pki.Intermediate, base)
	if !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), "unspecified") {
		t.Fatalf("after refresh: %v", err)
	}
	if err := c.Check(ctx, nil, w.pki.Intermediate, base); !errors.Is(err, ErrRevocationUnknown) {
		t.Errorf("nil certificate: %v", err)
	}
}

// TestCRLCheckerLargeCRL: lookups in a CRL of many entries, and the
// signature is checked once per issuer.
func TestCRLCheckerLargeCRL(t *testing.T) {
	w := getWorld(t)
	entries := make([]x509.RevocationListEntry, 0, 20001)
	for i := range 20000 {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: big.NewInt(int64(i)*7919 + 3), RevocationTime: base.Add(-time.Hour)})
	}
	entries = append(entries, cpstest.Revoke(w.sign, base.Add(-time.Hour), cpstest.ReasonAffiliationChanged))
	c := NewCRLChecker(issueCRL(t, w.pki, cpstest.CRLOptions{Revoked: entries}))
	start := time.Now()
	for range 200 {
		if err := c.Check(context.Background(), w.auth, w.pki.Intermediate, base); err != nil {
			t.Fatal(err)
		}
		if err := c.Check(context.Background(), w.sign, w.pki.Intermediate, base); !errors.Is(err, ErrRevoked) {
			t.Fatal(err)
		}
	}
	t.Logf("400 checks against a CRL of %d entries: %v", len(entries), time.Since(start))
}

// fakeFetcher serves CRLs by URL and counts downloads.
type fakeFetcher struct {
	mu    sync.Mutex
	crls  map[string][]byte
	calls map[string]int
}

func (f *fakeFetcher) fetch(_ context.Context, url string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[url]++
	if d, ok := f.crls[url]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("%s: connection refused", url)
}

func (f *fakeFetcher) count(url string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[url]
}

func TestCRLCheckerFetch(t *testing.T) {
	w := getWorld(t)
	leaf := leafWithCRLDP(t, w, crlLDAPURL, crlURL)
	inter := w.pki.Intermediate
	ctx := context.Background()
	first := issueCRL(t, w.pki, cpstest.CRLOptions{NextUpdate: base.Add(time.Hour)})
	second := issueCRL(t, w.pki, cpstest.CRLOptions{ThisUpdate: base.Add(time.Hour), NextUpdate: base.Add(2 * time.Hour),
		Revoked: []x509.RevocationListEntry{cpstest.Revoke(leaf, base.Add(30*time.Minute), cpstest.ReasonKeyCompromise)}})

	f := &fakeFetcher{crls: map[string][]byte{crlURL: first.Raw}}
	c := &CRLChecker{Fetch: f.fetch}
	if err := c.Check(ctx, leaf, inter, base); err != nil {
		t.Fatalf("downloaded CRL: %v", err)
	}
	if err := c.Check(ctx, leaf, inter, base.Add(time.Minute)); err != nil {
		t.Fatalf("cached CRL: %v", err)
	}
	if n := f.count(crlURL); n != 1 {
		t.Errorf("%d downloads of a current CRL, want 1", n)
	}
	if n := f.count(crlLDAPURL); n != 1 {
		t.Errorf("ldap URL tried %d times, want 1 (the first time)", n)
	}
	// After NextUpdate the CRL is downloaded again.
	f.mu.Lock()
	f.crls[crlURL] = second.Raw
	f.mu.Unlock()
	if err := c.Check(ctx, leaf, inter, base.Add(90*time.Minute)); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after next update: %v", err)
	}
	if n := f.count(crlURL); n != 2 {
		t.Errorf("%d downloads, want 2", n)
	}
	// A current given CRL avoids any download.
	c2 := &CRLChecker{Fetch: f.fetch}
	c2.SetCRLs(first)
	if err := c2.Check(ctx, leaf, inter, base); err != nil || f.count(crlURL) != 2 {
		t.Errorf("given CRL: %v, %d downloads", err, f.count(crlURL))
	}
	// Download failures: unknown, with the causes; not retried at once.
	downFetcher := &fakeFetcher{}
	down := &CRLChecker{Fetch: downFetcher.fetch}
	for range 3 {
		err := down.Check(ctx, leaf, inter, base)
		if !errors.Is(err, ErrRevocationUnknown) || errors.Is(err, ErrCRLNotFound) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("server down: %v", err)
		}
	}
	if n := downFetcher.count(crlURL); n != 1 {
		t.Errorf("server down: %d downloads within FetchRetryDelay, want 1", n)
	}
	// A download giving an out-of-date CRL (a late CA) is not retried at once either.
	late := &fakeFetcher{crls: map[string][]byte{crlURL: first.Raw}}
	lateChecker := &CRLChecker{Fetch: late.fetch}
	for range 3 {
		if err := lateChecker.Check(ctx, leaf, inter, base.Add(3*time.Hour)); !errors.Is(err, ErrRevocationUnknown) || !strings.Contains(err.Error(), "out of date") {
			t.Errorf("late CRL: %v", err)
		}
	}
	if n := late.count(crlURL); n != 1 {
		t.Errorf("late CRL: %d downloads within FetchRetryDelay, want 1", n)
	}
	// A downloaded CRL of another CA is not used.
	bad := &CRLChecker{Fetch: (&fakeFetcher{crls: map[string][]byte{crlURL: issueCRL(t, w.other, cpstest.CRLOptions{}).Raw}}).fetch}
	if err := bad.Check(ctx, leaf, inter, base); !errors.Is(err, ErrRevocationUnknown) {
		t.Errorf("CRL of another CA: %v", err)
	}
	garbage := &CRLChecker{Fetch: (&fakeFetcher{crls: map[string][]byte{crlURL: []byte("<html>")}}).fetch}
	if err := garbage.Check(ctx, leaf, inter, base); !errors.Is(err, ErrRevocationUnknown) || !strings.Contains(err.Error(), crlURL) {
		t.Errorf("not a CRL: %v", err)
	}
	// Without distribution point, nothing to download.
	if err := down.Check(ctx, w.auth, inter, base); !errors.Is(err, ErrCRLNotFound) {
		t.Errorf("no distribution point: %v", err)
	}
}

// TestCRLCheckerFetchOnce: concurrent checks share one download.
func TestCRLCheckerFetchOnce(t *testing.T) {
	w := getWorld(t)
	leaf := leafWithCRLDP(t, w, crlURL)
	crl := issueCRL(t, w.pki, cpstest.CRLOptions{})
	var calls atomic.Int32
	release := make(chan struct{})
	c := &CRLChecker{Fetch: func(ctx context.Context, url string) ([]byte, error) {
		calls.Add(1)
		<-release
		return crl.Raw, nil
	}}
	const n = 16
	errs := make(chan error, n)
	var started sync.WaitGroup
	for range n {
		started.Add(1)
		go func() {
			started.Done()
			errs <- c.Check(context.Background(), leaf, w.pki.Intermediate, base)
		}()
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond)
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// Checks that came after the download use the cache.
	if got := calls.Load(); got != 1 {
		t.Errorf("%d downloads for %d concurrent checks", got, n)
	}
}

func TestHTTPFetcher(t *testing.T) {
	w := getWorld(t)
	crl := issueCRL(t, w.pki, cpstest.CRLOptions{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ac.crl":
			rw.Header().Set("Content-Type", "application/pkix-crl")
			rw.Write(crl.Raw)
		case "/big.crl":
			rw.Header().Set("Content-Length", strconv.Itoa(1<<20))
			rw.Write(make([]byte, 1<<20))
		case "/chunked.crl":
			for range 64 {
				rw.Write(make([]byte, 1<<14))
				rw.(http.Flusher).Flush()
			}
		case "/slow.crl":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			http.NotFound(rw, r)
		}
	}))
	defer srv.Close()
	fetch := HTTPFetcher(srv.Client(), 512<<10)
	ctx := context.Background()
	data, err := fetch(ctx, srv.URL+"/ac.crl")
	if err != nil || !bytes.Equal(data, crl.Raw) {
		t.Fatalf("fetch: %v", err)
	}
	for _, tt := range []struct{ url, want string }{
		{srv.URL + "/missing.crl", "404"},
		{srv.URL + "/big.crl", "more than"},
		{srv.URL + "/chunked.crl", "larger than"},
		{"ldap://annuaire.example/cn=AC", "only http and https"},
		{"file:///etc/passwd", "only http and https"},
	} {
		if _, err := fetch(ctx, tt.url); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.url, err, tt.want)
		}
	}
	short := HTTPFetcher(&http.Client{Timeout: 100 * time.Millisecond}, 0)
	if _, err := short(ctx, srv.URL+"/slow.crl"); err == nil {
		t.Error("slow server: no timeout")
	}
	// End to end: a checker downloading through HTTPFetcher.
	leaf := leafWithCRLDP(t, w, srv.URL+"/ac.crl")
	c := &CRLChecker{Fetch: HTTPFetcher(srv.Client(), 0)}
	if err := c.Check(ctx, leaf, w.pki.Intermediate, base); err != nil {
		t.Fatalf("checker with HTTPFetcher: %v", err)
	}
}

// TestCRLWithOpenSSL checks a generated CRL and a revoked certificate with
// an independent implementation: openssl crl verifies the CRL signature,
// openssl verify -crl_check refuses the revoked certificate and accepts
// the other one, as CRLChecker does with the same files.
func TestCRLWithOpenSSL(t *testing.T) {
	openssl := lookOpenSSL(t)
	w := getWorld(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string { return writeFile(t, dir, name, b) }
	crl := issueCRL(t, w.pki, cpstest.CRLOptions{Revoked: []x509.RevocationListEntry{
		cpstest.Revoke(w.auth, base.Add(-2*time.Hour), cpstest.ReasonKeyCompromise)}})
	chain := write("chain.pem", w.pki.ChainPEM())
	crlPEM := write("ac.crl.pem", cpstest.CRLPEM(crl.Raw))
	crlDER := write("ac.crl", crl.Raw)
	auth := write("auth.pem", cpstest.CertPEM(w.auth))
	sign := write("sign.pem", cpstest.CertPEM(w.sign))
	at := strconv.FormatInt(base.Unix(), 10)

	out, err := exec.Command(openssl, "crl", "-in", crlDER, "-inform", "DER", "-CAfile", chain, "-noout", "-text").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "verify OK") || !strings.Contains(string(out), strings.ToUpper(w.auth.SerialNumber.Text(16))) ||
		!strings.Contains(string(out), "Key Compromise") {
		t.Fatalf("openssl crl: %v\n%s", err, out)
	}
	out, err = exec.Command(openssl, "crl", "-in", crlDER, "-inform", "DER", "-CAfile", write("other.pem", w.other.ChainPEM()), "-noout").CombinedOutput()
	if err == nil && !strings.Contains(string(out), "verify fail") {
		t.Errorf("openssl crl accepted the CRL with another CA:\n%s", out)
	}
	verify := func(cert string) (string, error) {
		out, err := exec.Command(openssl, "verify", "-crl_check", "-attime", at, "-CAfile", chain, "-CRLfile", crlPEM, cert).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(auth); err == nil || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify of the revoked certificate: %v\n%s", err, out)
	}
	if out, err := verify(sign); err != nil || !strings.Contains(out, "OK") {
		t.Errorf("openssl verify of the other certificate: %v\n%s", err, out)
	}
	checkCRLFile(t, w, crlPEM, w.auth, w.sign)
	checkCRLFile(t, w, crlDER, w.auth, w.sign)
}
