package localca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLeafRenewAt(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		lifetime, margin time.Duration
	}{
		{397 * day, 397 * day / 3}, // a third of the lifetime
		{90 * day, 30 * day},       // a third is 30 days
		{60 * day, 30 * day},       // a third would be 20 days: 30 days win
	}
	for _, tt := range tests {
		c := &x509.Certificate{NotBefore: t0, NotAfter: t0.Add(tt.lifetime)}
		if got := leafRenewAt(c); !got.Equal(c.NotAfter.Add(-tt.margin)) {
			t.Errorf("lifetime %v: renew at %v, want %v before expiry", tt.lifetime, got, tt.margin)
		}
	}
}

func TestRenewalThresholds(t *testing.T) {
	dir := newDir(t)
	a, _ := load(t, dir, t0)
	ca0, leaf0 := a.CACert(), a.Leaf()
	leafDue := leafRenewAt(leaf0)
	if want := leaf0.NotAfter.Add(-(leaf0.NotAfter.Sub(leaf0.NotBefore) / 3)); !leafDue.Equal(want) {
		t.Fatalf("leaf renewal at %v, want %v", leafDue, want)
	}
	if !a.NextRenewal().Equal(leafDue) {
		t.Fatalf("NextRenewal = %v, want %v", a.NextRenewal(), leafDue)
	}

	// just before the leaf threshold: nothing
	ch, err := a.Renew(leafDue.Add(-time.Minute))
	if err != nil || ch != (Changes{}) {
		t.Fatalf("Renew before the leaf threshold = %+v, %v", ch, err)
	}
	// just after: a new leaf, same CA
	now := leafDue.Add(time.Minute)
	ch, err = a.Renew(now)
	if err != nil || !ch.LeafIssued || ch.CACreated || ch.CARenewed || !strings.Contains(ch.Reason, "renewal due") {
		t.Fatalf("Renew after the leaf threshold = %+v, %v", ch, err)
	}
	if a.Fingerprint() == "" || !a.CACert().Equal(ca0) || a.Leaf().Equal(leaf0) {
		t.Fatal("the CA changed or the leaf did not")
	}
	leaf1 := a.Leaf()
	if leaf1.NotBefore.After(now) || leaf1.NotAfter.Sub(leaf1.NotBefore) > LeafValidity {
		t.Fatalf("new leaf validity %v – %v", leaf1.NotBefore, leaf1.NotAfter)
	}
	// the new leaf is on disk
	if a2, ch := load(t, dir, now); ch != (Changes{}) || !a2.Leaf().Equal(leaf1) {
		t.Fatalf("reload after renewal: %+v", ch)
	}

	caDue := ca0.NotAfter.Add(-CARenewBefore)
	wantNext := leafRenewAt(leaf1)
	if caDue.Before(wantNext) {
		wantNext = caDue
	}
	if !a.NextRenewal().Equal(wantNext) {
		t.Fatalf("NextRenewal = %v", a.NextRenewal())
	}
	// just before the CA threshold: the CA stays (the leaf may be renewed)
	ch, err = a.Renew(caDue.Add(-time.Minute))
	if err != nil || ch.CACreated || ch.CARenewed || !a.CACert().Equal(ca0) {
		t.Fatalf("Renew before the CA threshold = %+v, %v", ch, err)
	}
	// just after: a new CA, and a new leaf signed by it
	now = caDue.Add(time.Minute)
	ch, err = a.Renew(now)
	if err != nil || !ch.CARenewed || ch.CACreated || !ch.LeafIssued || !ch.TrustStoreUpdateNeeded() || ch.ReplacedCA == nil || !ch.ReplacedCA.Equal(ca0) {
		t.Fatalf("Renew after the CA threshold = %+v, %v", ch, err)
	}
	ca1 := a.CACert()
	if ca1.Equal(ca0) || a.Leaf().CheckSignatureFrom(ca1) != nil {
		t.Fatal("the CA was not replaced or the leaf not reissued under it")
	}
	if ca1.NotAfter.Sub(now) < CAValidity-2*time.Hour {
		t.Fatalf("new CA expires %v", ca1.NotAfter)
	}
	checkPermissions(t, dir)
}

func TestLoadRenewsExpiredFiles(t *testing.T) {
	dir := newDir(t)
	a0, _ := load(t, dir, t0)
	// the agent was not run for three years: everything expired
	later := a0.CACert().NotAfter.Add(365 * 24 * time.Hour)
	a, ch := load(t, dir, later)
	if !ch.CARenewed || !ch.LeafIssued || ch.ReplacedCA == nil {
		t.Fatalf("changes = %+v", ch)
	}
	if a.CACert().NotBefore.After(later) || a.CACert().NotAfter.Before(later) {
		t.Fatal("new CA not valid now")
	}
}

func TestLeafLimitedByCA(t *testing.T) {
	dir := newDir(t)
	a, _ := load(t, dir, t0)
	// 100 days before the CA expires the leaf is reissued (it was due) and
	// cannot outlive the CA
	now := a.CACert().NotAfter.Add(-100 * 24 * time.Hour)
	ch, err := a.Renew(now)
	if err != nil || !ch.LeafIssued || ch.CARenewed {
		t.Fatalf("changes = %+v, %v", ch, err)
	}
	if !a.Leaf().NotAfter.Equal(a.CACert().NotAfter) {
		t.Fatalf("leaf expires %v, CA %v", a.Leaf().NotAfter, a.CACert().NotAfter)
	}
}

func TestGetCertificate(t *testing.T) {
	clk := &clock{t: t0}
	dir := newDir(t)
	a, _, err := Load(dir, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := a.TLSConfig()
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("MinVersion %x", cfg.MinVersion)
	}
	get := func(sni string) (*tls.Certificate, error) {
		return cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
	}
	c0, err := get("localhost")
	if err != nil || !c0.Leaf.Equal(a.Leaf()) {
		t.Fatalf("GetCertificate = %v", err)
	}
	if c, err := get(""); err != nil || c != c0 {
		t.Fatalf("no SNI: %v", err)
	}
	if c, err := get("LocalHost"); err != nil || c != c0 {
		t.Fatalf("SNI case: %v", err)
	}
	for _, sni := range []string{"evil.example", "localhost.", "localhost.evil.example", "127.0.0.1.nip.io"} {
		if _, err := get(sni); err == nil {
			t.Errorf("SNI %q served", sni)
		}
	}

	// Renew from a timer: the next handshake gets the new certificate
	if _, err := a.Renew(leafRenewAt(c0.Leaf).Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	c1, err := get("localhost")
	if err != nil || c1.Leaf.Equal(c0.Leaf) {
		t.Fatal("GetCertificate did not serve the renewed certificate")
	}

	// no timer: the clock passes the threshold and GetCertificate renews
	clk.Set(leafRenewAt(c1.Leaf).Add(time.Second))
	c2, err := get("localhost")
	if err != nil || c2.Leaf.Equal(c1.Leaf) {
		t.Fatal("GetCertificate did not renew a due certificate")
	}
	if c3, _ := get("localhost"); c3 != c2 {
		t.Fatal("renewed twice")
	}
	onDisk, _, err := Load(dir, clk.Now)
	if err != nil || !onDisk.Leaf().Equal(c2.Leaf) {
		t.Fatal("the renewed certificate was not written")
	}

	// GetCertificate never replaces the CA: it keeps serving and Renew does it
	clk.Set(a.CACert().NotAfter.Add(-CARenewBefore / 2))
	ca := a.CACert()
	if _, err := get("localhost"); err != nil || !a.CACert().Equal(ca) {
		t.Fatalf("GetCertificate near CA expiry: %v", err)
	}
}

func TestConcurrentHandshakesAndRenewals(t *testing.T) {
	clk := &clock{t: t0}
	a, _, err := Load(newDir(t), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := a.TLSConfig()
	due := leafRenewAt(a.Leaf())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				if i == 0 && j == 10 {
					clk.Set(due.Add(time.Hour))
				}
				if i == 1 && j%10 == 0 {
					if _, err := a.Renew(clk.Now()); err != nil {
						t.Error(err)
					}
				}
				if c, err := cfg.GetCertificate(&tls.ClientHelloInfo{}); err != nil || c == nil {
					t.Error("GetCertificate failed")
				}
				_ = a.Fingerprint()
			}
		}()
	}
	wg.Wait()
	if !a.Leaf().NotBefore.After(t0) {
		t.Fatal("not renewed")
	}
}

// otherInstall returns the files of another install.
func otherInstall(t *testing.T) string {
	dir := newDir(t)
	load(t, dir, t0)
	return dir
}

// noConstraintsCA writes a CA like ours but without name constraints, and a
// leaf signed by it, into dir.
func noConstraintsCA(t *testing.T, dir string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cpsagent local CA x"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(800 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	kp, _ := keyPEM(key)
	os.WriteFile(filepath.Join(dir, CAKeyFile), kp, 0o600)
	os.WriteFile(filepath.Join(dir, CAFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	leaf, err := newLeaf(ca, key, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeLeaf(dir, leaf); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedFilesAreRegenerated(t *testing.T) {
	copyFrom := func(src, name string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			b := mustRead(t, filepath.Join(src, name))
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	write := func(name, content string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	other := otherInstall(t)
	tests := []struct {
		name      string
		damage    func(t *testing.T, dir string)
		newCA     bool   // a new CA (CACreated) rather than only a new leaf
		reason    string // substring of Changes.Reason
		unixOnly  bool
		keepsLeaf bool
	}{
		{name: "CA key garbage", damage: write(CAKeyFile, "garbage"), newCA: true, reason: "ca-key.pem: no PEM private key"},
		{name: "CA key truncated", damage: func(t *testing.T, dir string) {
			b := mustRead(t, filepath.Join(dir, CAKeyFile))
			os.WriteFile(filepath.Join(dir, CAKeyFile), b[:len(b)/2], 0o600)
		}, newCA: true, reason: "ca-key.pem"},
		{name: "CA certificate garbage", damage: write(CAFile, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), newCA: true, reason: "ca.pem: unparsable"},
		{name: "CA certificate missing", damage: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, CAFile)) }, newCA: true, reason: "ca.pem: missing"},
		{name: "CA key missing", damage: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, CAKeyFile)) }, newCA: true, reason: "ca-key.pem: missing"},
		{name: "CA key of another install", damage: copyFrom(other, CAKeyFile), newCA: true, reason: "does not match"},
		{name: "CA without name constraints", damage: noConstraintsCA, newCA: true, reason: "name constraints"},
		{name: "CA key readable by others", damage: func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, CAKeyFile), 0o640) }, newCA: true, reason: "readable by other users (mode 0640)", unixOnly: true},
		{name: "RSA key in PKCS#1", damage: write(CAKeyFile, "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), newCA: true, reason: "no PEM private key"},
		{name: "leaf garbage", damage: write(CertFile, "x"), reason: "cert.pem: no PEM certificate"},
		{name: "leaf of another install", damage: copyFrom(other, CertFile), reason: "key matching"},
		{name: "leaf and key of another install", damage: func(t *testing.T, dir string) {
			copyFrom(other, CertFile)(t, dir)
			copyFrom(other, KeyFile)(t, dir)
		}, reason: "does not verify with the CA"},
		{name: "leaf key missing", damage: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, KeyFile)) }, reason: "key.pem: missing"},
		{name: "both leaf files missing", damage: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, KeyFile))
			os.Remove(filepath.Join(dir, CertFile))
		}, reason: "missing"},
		{name: "leaf key readable by others", damage: func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, KeyFile), 0o644) }, reason: "key.pem: readable by other users", unixOnly: true},
		{name: "two certificates in cert.pem", damage: func(t *testing.T, dir string) {
			b := mustRead(t, filepath.Join(dir, CertFile))
			os.WriteFile(filepath.Join(dir, CertFile), append(b, b...), 0o644)
		}, reason: "more than one PEM block"},
		{name: "directory too open is fixed", damage: func(t *testing.T, dir string) { os.Chmod(dir, 0o755) }, keepsLeaf: true, unixOnly: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.unixOnly && runtime.GOOS == "windows" {
				t.Skip("Unix permissions")
			}
			dir := newDir(t)
			a0, _ := load(t, dir, t0)
			tt.damage(t, dir)
			a, ch := load(t, dir, t0.Add(time.Hour))
			if tt.keepsLeaf {
				if ch != (Changes{}) || !a.Leaf().Equal(a0.Leaf()) {
					t.Fatalf("changes = %+v", ch)
				}
				checkPermissions(t, dir)
				return
			}
			if ch.CACreated != tt.newCA || ch.CARenewed || !ch.LeafIssued || !strings.Contains(ch.Reason, tt.reason) {
				t.Fatalf("changes = %+v, want CACreated=%v and reason %q", ch, tt.newCA, tt.reason)
			}
			if (a.Fingerprint() != a0.Fingerprint()) != tt.newCA {
				t.Fatal("the CA fingerprint changed (or not) unexpectedly")
			}
			if a.Leaf().Equal(a0.Leaf()) {
				t.Fatal("the leaf was not reissued")
			}
			checkPermissions(t, dir)
			// and the result is stable
			if _, ch := load(t, dir, t0.Add(2*time.Hour)); ch != (Changes{}) {
				t.Fatalf("second load changed again: %+v", ch)
			}
		})
	}
}

func TestIOErrors(t *testing.T) {
	t.Run("directory is a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o600)
		if _, _, err := Load(f, nil); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("ca.pem is a directory", func(t *testing.T) {
		dir := newDir(t)
		os.MkdirAll(filepath.Join(dir, CAFile, "x"), 0o700)
		_, _, err := Load(dir, nil)
		if err == nil || !strings.Contains(err.Error(), "ca.pem") {
			t.Fatalf("err = %v", err)
		}
	})
}
