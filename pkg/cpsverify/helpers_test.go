package cpsverify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/pkg/cpsid/cpstest"
)

// base is the fixed "now" of the tests.
var base = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: base} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type world struct {
	pki, other, prod  *cpstest.PKI
	authKey, signKey  *rsa.PrivateKey
	ecKey             *ecdsa.PrivateKey
	auth, sign        *x509.Certificate // test PKI, valid at base
	prodAuth, prodSig *x509.Certificate // production-named PKI
	otherAuth         *x509.Certificate // another PKI with the same names
	expiredAuth       *x509.Certificate
	futureAuth        *x509.Certificate
	expiredSign       *x509.Certificate
	ecAuth            *x509.Certificate
	emailAuth         *x509.Certificate // digitalSignature but EKU emailProtection only
	sign2             *x509.Certificate // second signature certificate for signKey
	cpeAuth, cpeSign  *x509.Certificate
}

var (
	worldOnce sync.Once
	theWorld  world
	worldErr  error
)

func getWorld(t testing.TB) *world {
	t.Helper()
	worldOnce.Do(func() { worldErr = buildWorld(&theWorld) })
	if worldErr != nil {
		t.Fatal(worldErr)
	}
	return &theWorld
}

func buildWorld(w *world) error {
	var err error
	if w.pki, err = cpstest.NewPKI(nil); err != nil {
		return err
	}
	if w.authKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return err
	}
	if w.signKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return err
	}
	if w.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	// Same CA names, other keys.
	if w.other, err = cpstest.New(cpstest.Options{RootKey: w.authKey, IntermediateKey: w.signKey}); err != nil {
		return err
	}
	if w.prod, err = cpstest.New(cpstest.Options{Production: true, RootKey: w.pki.RootKey, IntermediateKey: w.pki.IntermediateKey}); err != nil {
		return err
	}
	med := cpstest.Holders()["medecin"]
	nb, na := base.Add(-30*24*time.Hour), base.Add(3*365*24*time.Hour)
	ap, sp := &w.authKey.PublicKey, &w.signKey.PublicKey
	if w.auth, w.sign, err = w.pki.Issue(med, ap, sp, nb, na); err != nil {
		return err
	}
	if w.prodAuth, w.prodSig, err = w.prod.Issue(med, ap, sp, nb, na); err != nil {
		return err
	}
	if w.otherAuth, _, err = w.other.Issue(med, ap, sp, nb, na); err != nil {
		return err
	}
	if w.expiredAuth, w.expiredSign, err = w.pki.Issue(med, ap, sp, base.Add(-3*365*24*time.Hour), base.Add(-24*time.Hour)); err != nil {
		return err
	}
	if w.futureAuth, _, err = w.pki.Issue(med, ap, sp, base.Add(24*time.Hour), na); err != nil {
		return err
	}
	if _, w.sign2, err = w.pki.Issue(med, ap, sp, nb, na); err != nil {
		return err
	}
	if w.cpeAuth, w.cpeSign, err = w.pki.Issue(cpstest.Holders()["cpe"], ap, sp, nb, na); err != nil {
		return err
	}
	subject, err := cpstest.HolderSubject(med)
	if err != nil {
		return err
	}
	leaf := func(pub any, ku x509.KeyUsage, eku []x509.ExtKeyUsage) (*x509.Certificate, error) {
		return issueLeaf(w, &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), RawSubject: subject,
			NotBefore: nb, NotAfter: na, KeyUsage: ku, ExtKeyUsage: eku,
		}, pub)
	}
	if w.ecAuth, err = leaf(&w.ecKey.PublicKey, x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}); err != nil {
		return err
	}
	w.emailAuth, err = leaf(ap, x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection})
	return err
}

// issueLeaf has the test PKI's intermediate issue tmpl for pub.
func issueLeaf(w *world, tmpl *x509.Certificate, pub any) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, w.pki.Intermediate, pub, w.pki.IntermediateKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// writeFile writes b to dir/name and returns the path.
func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newVerifier returns a verifier trusting the test PKI, with a fake clock
// and its own nonce store.
func newVerifier(w *world, c *clock) *Verifier {
	return &Verifier{
		Roots:          w.pki.Roots(),
		Intermediates:  w.pki.Intermediates(),
		Nonces:         &MemoryNonceStore{Now: c.Now},
		Now:            c.Now,
		AllowedOrigins: []string{originA, originB},
		AllowTestCards: true,
	}
}

const (
	originA = "https://portail-a.example.fr"
	originB = "https://portail-b.example.fr:8443"
)

// makeToken plays the agent: it signs hash(origin) ‖ hash(nonce) with key.
func makeToken(t testing.TB, cert *x509.Certificate, key crypto.Signer, alg, origin, nonce string) AuthToken {
	t.Helper()
	data, h, err := TokenSignedData(alg, origin, nonce)
	if err != nil {
		t.Fatal(err)
	}
	d := h.New()
	d.Write(data)
	digest := d.Sum(nil)
	var sig []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if alg[0] == 'P' {
			sig, err = rsa.SignPSS(rand.Reader, k, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(nil, k, h, digest)
		}
	case *ecdsa.PrivateKey:
		var r, s *big.Int
		if r, s, err = ecdsa.Sign(rand.Reader, k, digest); err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return AuthToken{
		UnverifiedCertificate: base64.StdEncoding.EncodeToString(cert.Raw),
		Algorithm:             alg,
		Signature:             base64.StdEncoding.EncodeToString(sig),
		Format:                "web-eid:1.0",
		AppVersion:            "https://cpsagent.example/1.0.0",
	}
}

func mustNonce(t testing.TB, v *Verifier) string {
	t.Helper()
	n, err := v.IssueNonce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
