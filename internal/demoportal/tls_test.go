package demoportal

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
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

// writePair writes a fresh leaf of the CA in dir as cert.pem/key.pem (the
// agent's file names) and returns it.
func writePair(t *testing.T, caDir, dir string) *x509.Certificate {
	t.Helper()
	dt, err := LoadOrCreateTLS(caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(dt.Leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, agentKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, agentCertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: dt.Leaf.Leaf.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return dt.Leaf.Leaf
}

func TestFileCertificateReload(t *testing.T) {
	caDir, dir := t.TempDir(), t.TempDir()
	first := writePair(t, caDir, dir)
	fc, err := newFileCertificate(filepath.Join(dir, agentCertFile), filepath.Join(dir, agentKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	got, err := fc.get(nil)
	if err != nil || !got.Leaf.Equal(first) {
		t.Fatalf("first pair: %v", err)
	}
	second := writePair(t, caDir, dir)
	later := time.Now().Add(time.Minute)
	for _, f := range []string{agentCertFile, agentKeyFile} {
		if err := os.Chtimes(filepath.Join(dir, f), later, later); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := fc.get(nil); !got.Leaf.Equal(second) {
		t.Error("renewed pair not picked up")
	}
	// A half-written pair keeps the previous one.
	if err := os.WriteFile(filepath.Join(dir, agentKeyFile), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := fc.get(nil); err != nil || !got.Leaf.Equal(second) {
		t.Errorf("broken pair: %v", err)
	}
	if _, err := newFileCertificate(filepath.Join(dir, agentCertFile), filepath.Join(dir, agentKeyFile)); err == nil {
		t.Error("broken pair accepted at start")
	}
}

func TestServerTLSChoice(t *testing.T) {
	state := t.TempDir()
	o := &Options{AgentTLSDir: filepath.Join(state, "tls"), OwnTLSDir: filepath.Join(state, "demo-portal")}
	// No agent certificate yet: the portal's own CA.
	conf, note, err := serverTLS(o)
	if err != nil || len(conf.Certificates) != 1 || !strings.Contains(note, "must trust") {
		t.Fatalf("own CA: %v %q", err, note)
	}
	// With the agent's certificate: served as is.
	if err := os.MkdirAll(o.AgentTLSDir, 0o700); err != nil {
		t.Fatal(err)
	}
	leaf := writePair(t, t.TempDir(), o.AgentTLSDir)
	conf, note, err = serverTLS(o)
	if err != nil || conf.GetCertificate == nil || !strings.Contains(note, "agent's certificate") {
		t.Fatalf("agent certificate: %v %q", err, note)
	}
	if c, _ := conf.GetCertificate(nil); !c.Leaf.Equal(leaf) {
		t.Error("not the agent's certificate")
	}
	// --tls-dir wins over the agent's certificate.
	o.TLSDir = filepath.Join(state, "mine")
	if conf, _, err = serverTLS(o); err != nil || len(conf.Certificates) != 1 {
		t.Fatalf("--tls-dir: %v", err)
	}
}
