package cpstest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

func TestIssueCRL(t *testing.T) {
	p, err := NewPKI(nil)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Now().Truncate(time.Second)
	auth, sign, err := p.Issue(Holders()["medecin"], &k.PublicKey, &k.PublicKey, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	crl, err := p.IssueCRL(CRLOptions{Revoked: []x509.RevocationListEntry{
		Revoke(auth, now.Add(-time.Minute), ReasonKeyCompromise), Revoke(sign, now.Add(-time.Minute), ReasonUnspecified)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(p.Intermediate); err != nil {
		t.Errorf("CRL not signed by the intermediate: %v", err)
	}
	if !bytes.Equal(crl.RawIssuer, p.Intermediate.RawSubject) || !bytes.Equal(crl.AuthorityKeyId, p.Intermediate.SubjectKeyId) {
		t.Error("CRL issuer or authority key id differ from the intermediate's")
	}
	if crl.ThisUpdate.After(now) || crl.NextUpdate.Sub(crl.ThisUpdate) != 7*24*time.Hour || crl.Number == nil || crl.Number.Int64() != crl.ThisUpdate.Unix() {
		t.Errorf("defaults: this %v next %v number %v", crl.ThisUpdate, crl.NextUpdate, crl.Number)
	}
	if n := len(crl.RevokedCertificateEntries); n != 2 {
		t.Fatalf("%d entries", n)
	}
	if e := crl.RevokedCertificateEntries[0]; e.SerialNumber.Cmp(auth.SerialNumber) != 0 || e.ReasonCode != ReasonKeyCompromise {
		t.Errorf("entry %+v", e)
	}

	arl, err := p.IssueCRL(CRLOptions{ByRoot: true, ThisUpdate: now, NextUpdate: now.Add(time.Hour), Number: big.NewInt(42),
		Extensions: []pkix.Extension{{Id: []int{1, 2, 3}, Value: []byte{5, 0}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := arl.CheckSignatureFrom(p.Root); err != nil || arl.Number.Int64() != 42 || !arl.NextUpdate.Equal(now.Add(time.Hour)) {
		t.Errorf("root CRL: %v, number %v, next %v", err, arl.Number, arl.NextUpdate)
	}
	found := false
	for _, e := range arl.Extensions {
		found = found || e.Id.Equal([]int{1, 2, 3})
	}
	if !found {
		t.Error("extra extension missing")
	}

	block, rest := pem.Decode(CRLPEM(crl.Raw, arl.Raw))
	if block == nil || block.Type != "X509 CRL" || !bytes.Equal(block.Bytes, crl.Raw) {
		t.Fatal("CRLPEM: first block")
	}
	if block, _ = pem.Decode(rest); block == nil || !bytes.Equal(block.Bytes, arl.Raw) {
		t.Fatal("CRLPEM: second block")
	}
	if _, err := (&PKI{}).IssueCRL(CRLOptions{}); err == nil {
		t.Error("IssueCRL without CA succeeded")
	}
}
