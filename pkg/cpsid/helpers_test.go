package cpsid

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/pkg/cpsid/cpstest"
)

var (
	fixtureOnce sync.Once
	fixture     struct {
		pki, prod        *cpstest.PKI
		authKey, signKey *rsa.PrivateKey
		err              error
	}
	notBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter  = time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)
)

// testPKI returns a test PKI, a production-named PKI sharing its CA keys,
// and two holder keys, generated once per test binary.
func testPKI(t testing.TB) (pki, prod *cpstest.PKI, authKey, signKey *rsa.PrivateKey) {
	t.Helper()
	fixtureOnce.Do(func() {
		f := &fixture
		if f.pki, f.err = cpstest.NewPKI(nil); f.err != nil {
			return
		}
		if f.prod, f.err = cpstest.New(cpstest.Options{Production: true, RootKey: f.pki.RootKey, IntermediateKey: f.pki.IntermediateKey}); f.err != nil {
			return
		}
		if f.authKey, f.err = rsa.GenerateKey(rand.Reader, 2048); f.err != nil {
			return
		}
		f.signKey, f.err = rsa.GenerateKey(rand.Reader, 2048)
	})
	if fixture.err != nil {
		t.Fatal(fixture.err)
	}
	return fixture.pki, fixture.prod, fixture.authKey, fixture.signKey
}

func issue(t testing.TB, p *cpstest.PKI, h cpstest.Holder) (auth, sign *x509.Certificate) {
	t.Helper()
	_, _, ak, sk := testPKI(t)
	auth, sign, err := p.Issue(h, &ak.PublicKey, &sk.PublicKey, notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return auth, sign
}
