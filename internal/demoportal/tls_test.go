package demoportal

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLoadOrCreateTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo-portal")
	now := time.Now()
	a, err := LoadOrCreateTLS(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, caKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key file: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("TLS dir: %v %v", fi.Mode(), err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(a.CA)
	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := a.Leaf.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("leaf for %s: %v", name, err)
		}
	}
	if _, err := a.Leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "portal.example.fr", Roots: roots, CurrentTime: now}); err == nil {
		t.Error("leaf valid for a public name")
	}

	// The CA is reused, the leaf is new.
	b, err := LoadOrCreateTLS(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if !b.CA.Equal(a.CA) || b.Leaf.Leaf.Equal(a.Leaf.Leaf) {
		t.Error("second start: want same CA, new leaf")
	}
	// Near its end the CA is replaced.
	c, err := LoadOrCreateTLS(dir, a.CA.NotAfter.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if c.CA.Equal(a.CA) {
		t.Error("expiring CA not renewed")
	}
	// A corrupt key is replaced, not fatal.
	if err := os.WriteFile(filepath.Join(dir, caKeyFile), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if d, err := LoadOrCreateTLS(dir, now); err != nil || d.CA.Equal(c.CA) {
		t.Errorf("corrupt CA key: %v", err)
	}
}

// TestCANameConstraints: a leaked demo CA key cannot vouch for any other site.
func TestCANameConstraints(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if _, err := LoadOrCreateTLS(dir, now); err != nil {
		t.Fatal(err)
	}
	ca, key, err := loadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sn, _ := serial()
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: "bank"}, DNSNames: []string{"bank.example"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &leafKey.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "bank.example", Roots: roots, CurrentTime: now}); err == nil {
		t.Fatal("name constraints not enforced")
	}
}
