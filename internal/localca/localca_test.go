package localca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func load(t *testing.T, dir string, now time.Time) (*Authority, Changes) {
	t.Helper()
	a, ch, err := Load(dir, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return a, ch
}

func newDir(t *testing.T) string {
	return filepath.Join(t.TempDir(), "tls")
}

func TestFirstLoadCreatesEverything(t *testing.T) {
	dir := newDir(t)
	a, ch := load(t, dir, t0)
	if !ch.CACreated || ch.CARenewed || !ch.LeafIssued || ch.ReplacedCA != nil || !ch.TrustStoreUpdateNeeded() {
		t.Fatalf("changes = %+v", ch)
	}

	ca := a.CACert()
	pub, ok := ca.PublicKey.(*ecdsa.PublicKey)
	switch {
	case !ok || pub.Curve != elliptic.P256():
		t.Error("CA key is not ECDSA P-256")
	case !ca.IsCA || !ca.BasicConstraintsValid || ca.MaxPathLen != 0 || !ca.MaxPathLenZero:
		t.Error("basic constraints")
	case ca.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign:
		t.Errorf("CA key usage %v", ca.KeyUsage)
	case ca.SerialNumber.Sign() <= 0 || ca.SerialNumber.BitLen() > 128:
		t.Errorf("serial %v", ca.SerialNumber)
	case ca.NotAfter.Sub(ca.NotBefore) > 825*24*time.Hour:
		t.Errorf("CA validity %v", ca.NotAfter.Sub(ca.NotBefore))
	case !strings.HasPrefix(ca.Subject.CommonName, "cpsagent local CA "):
		t.Errorf("CA name %q", ca.Subject.CommonName)
	case ca.SignatureAlgorithm != x509.ECDSAWithSHA256:
		t.Errorf("CA signature %v", ca.SignatureAlgorithm)
	case !slices.Equal(ca.PermittedDNSDomains, []string{"localhost"}) || len(ca.PermittedIPRanges) != 2 ||
		ca.PermittedIPRanges[0].String() != "127.0.0.1/32" || ca.PermittedIPRanges[1].String() != "::1/128":
		t.Errorf("name constraints %v %v", ca.PermittedDNSDomains, ca.PermittedIPRanges)
	}
	critical := false
	for _, ext := range ca.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 30}) {
			critical = ext.Critical
		}
	}
	if !critical {
		t.Error("the name constraints extension is not critical")
	}

	leaf := a.Leaf()
	lpub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	switch {
	case !ok || lpub.Curve != elliptic.P256():
		t.Error("leaf key is not ECDSA P-256")
	case !slices.Equal(leaf.DNSNames, []string{"localhost"}):
		t.Errorf("DNS SANs %v", leaf.DNSNames)
	case len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !leaf.IPAddresses[1].Equal(net.ParseIP("::1")):
		t.Errorf("IP SANs %v", leaf.IPAddresses)
	case len(leaf.EmailAddresses)+len(leaf.URIs) != 0:
		t.Error("extra SANs")
	case !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || leaf.IsCA:
		t.Errorf("leaf EKU %v", leaf.ExtKeyUsage)
	case leaf.NotAfter.Sub(leaf.NotBefore) > 397*24*time.Hour:
		t.Errorf("leaf validity %v", leaf.NotAfter.Sub(leaf.NotBefore))
	case leaf.SignatureAlgorithm != x509.ECDSAWithSHA256:
		t.Errorf("leaf signature %v", leaf.SignatureAlgorithm)
	case leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128:
		t.Errorf("serial %v", leaf.SerialNumber)
	case leaf.NotBefore.After(t0) || leaf.NotAfter.Before(t0.Add(396*24*time.Hour)):
		t.Errorf("leaf validity %v – %v", leaf.NotBefore, leaf.NotAfter)
	}

	if !bytes.Equal(a.CACertPEM(), mustRead(t, filepath.Join(dir, CAFile))) || a.CACertFile() != filepath.Join(dir, CAFile) || a.Dir() != dir {
		t.Error("CA PEM or paths")
	}
	if fp := a.Fingerprint(); len(fp) != 64 || strings.ToLower(fp) != fp {
		t.Errorf("fingerprint %q", fp)
	}
	checkPermissions(t, dir)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkPermissions(t *testing.T, dir string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	want := map[string]os.FileMode{".": 0o700, CAFile: 0o644, CAKeyFile: 0o600, CertFile: 0o644, KeyFile: 0o600}
	for name, mode := range want {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %04o, want %04o", name, st.Mode().Perm(), mode)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("directory holds %d files, want 4 (temporary files left?)", len(entries))
	}
}

func TestReloadKeepsEverything(t *testing.T) {
	dir := newDir(t)
	a1, _ := load(t, dir, t0)
	a2, ch := load(t, dir, t0.Add(24*time.Hour))
	if ch != (Changes{}) {
		t.Fatalf("changes on reload: %+v", ch)
	}
	if a1.Fingerprint() != a2.Fingerprint() || a1.Leaf().SerialNumber.Cmp(a2.Leaf().SerialNumber) != 0 {
		t.Fatal("reload changed the CA or the leaf")
	}
}

func TestChainVerifies(t *testing.T) {
	a, _ := load(t, newDir(t), t0)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(a.CACertPEM()) {
		t.Fatal("CA PEM")
	}
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := a.Leaf().Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"example.com", "127.0.0.2", "localhost.example", "::2"} {
		if _, err := a.Leaf().Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: t0}); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	// and not with the system roots only
	if _, err := a.Leaf().Verify(x509.VerifyOptions{DNSName: "localhost", CurrentTime: t0}); err == nil {
		t.Error("verified without the local CA")
	}
}

// issueWithCA signs a server certificate with the Authority's CA key, as an
// attacker holding a stolen CA key would.
func issueWithCA(t *testing.T, a *Authority, dns []string, ips []net.IP) *x509.Certificate {
	t.Helper()
	st := a.st.Load()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "evil"},
		NotBefore:    t0.Add(-time.Hour),
		NotAfter:     t0.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, st.ca, &key.PublicKey, st.caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNameConstraintsRejectOtherNames(t *testing.T) {
	dir := newDir(t)
	a, _ := load(t, dir, t0)
	roots := x509.NewCertPool()
	roots.AddCert(a.CACert())
	tests := []struct {
		name   string
		dns    []string
		ips    []net.IP
		verify string
	}{
		{"evil.example", []string{"evil.example"}, nil, "evil.example"},
		{"localhost plus evil", []string{"localhost", "evil.example"}, nil, "localhost"},
		{"LAN IP", nil, []net.IP{net.ParseIP("192.168.1.10")}, "192.168.1.10"},
		{"other loopback", nil, []net.IP{net.ParseIP("127.0.0.2")}, "127.0.0.2"},
		{"localhost with wildcard", []string{"*.example"}, nil, "a.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := issueWithCA(t, a, tt.dns, tt.ips)
			_, err := c.Verify(x509.VerifyOptions{DNSName: tt.verify, Roots: roots, CurrentTime: t0})
			var inv x509.CertificateInvalidError
			if !errors.As(err, &inv) || inv.Reason != x509.CANotAuthorizedForThisName {
				t.Fatalf("Verify = %v, want a name constraint violation", err)
			}
		})
	}
	// a certificate within the constraints, e.g. a subdomain of localhost, verifies
	if _, err := issueWithCA(t, a, []string{"api.localhost"}, nil).Verify(x509.VerifyOptions{DNSName: "api.localhost", Roots: roots, CurrentTime: t0}); err != nil {
		t.Fatalf("in-constraint certificate: %v", err)
	}

	t.Run("openssl", func(t *testing.T) {
		requireTool(t, "openssl")
		tmp := t.TempDir()
		evil := filepath.Join(tmp, "evil.pem")
		os.WriteFile(evil, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issueWithCA(t, a, []string{"evil.example"}, nil).Raw}), 0o644)
		attime := []string{"-attime", strconv.FormatInt(t0.Unix(), 10)}
		out, err := exec.Command("openssl", append([]string{"verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", a.CACertFile()}, append(attime, evil)...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "permitted subtree violation") {
			t.Fatalf("openssl verify of evil.example: err=%v\n%s", err, out)
		}
		out, err = exec.Command("openssl", append([]string{"verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", a.CACertFile()}, append(attime, filepath.Join(dir, CertFile))...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ": OK") {
			t.Fatalf("openssl verify of the server certificate: err=%v\n%s", err, out)
		}
	})
}

// TestSec04_NameConstraints (security.md §6 item 4): whoever holds the CA
// key (this test, like a thief of ca-key.pem) cannot mint a certificate
// that crypto/x509 accepts for anything but localhost, 127.0.0.1 and ::1,
// because of the CA's critical Name Constraints; the agent's own server
// certificate verifies for exactly those three names. OpenSSL and NSS give
// the same verdicts in TestNameConstraintsRejectOtherNames and
// TestNameConstraintsNSS.
func TestSec04_NameConstraints(t *testing.T) {
	a, _ := load(t, newDir(t), t0)
	roots := x509.NewCertPool()
	roots.AddCert(a.CACert())
	verify := func(c *x509.Certificate, name string) error {
		_, err := c.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: t0,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		return err
	}
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if err := verify(a.Leaf(), name); err != nil {
			t.Errorf("the agent's own certificate for %s: %v", name, err)
		}
	}
	ip := func(s string) []net.IP { return []net.IP{net.ParseIP(s)} }
	tests := []struct {
		name   string
		dns    []string
		ips    []net.IP
		verify string // the name a client would check
	}{
		{"evil.example", []string{"evil.example"}, nil, "evil.example"},
		{"evil.example next to localhost", []string{"localhost", "evil.example"}, ip("127.0.0.1"), "localhost"},
		{"a portal's name", []string{"portail.example.fr"}, nil, "portail.example.fr"},
		{"localhost.evil.example", []string{"localhost.evil.example"}, nil, "localhost.evil.example"},
		{"wildcard", []string{"*.example"}, nil, "www.example"},
		{"LAN IPv4", nil, ip("192.168.1.10"), "192.168.1.10"},
		{"public IPv4", nil, ip("8.8.8.8"), "8.8.8.8"},
		{"0.0.0.0", nil, ip("0.0.0.0"), "0.0.0.0"},
		{"other 127/8 address", nil, ip("127.0.0.2"), "127.0.0.2"},
		{"global IPv6", nil, ip("2001:db8::1"), "2001:db8::1"},
		{"link-local IPv6", nil, ip("fe80::1"), "fe80::1"},
		{"LAN IPv4 next to loopback", nil, []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")}, "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verify(issueWithCA(t, a, tt.dns, tt.ips), tt.verify)
			var inv x509.CertificateInvalidError
			if !errors.As(err, &inv) || inv.Reason != x509.CANotAuthorizedForThisName {
				t.Fatalf("Verify(%s) = %v, want a name constraint violation", tt.verify, err)
			}
		})
	}
}

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required when CI=true", name)
		}
		t.Skipf("SKIPPED: %s is not installed", name)
	}
}

// TestNameConstraintsNSS checks the constraints with NSS, the library of
// Firefox and of Chromium on Linux (certutil from libnss3-tools).
func TestNameConstraintsNSS(t *testing.T) {
	requireTool(t, "certutil")
	tmp := t.TempDir()
	a, _ := load(t, filepath.Join(tmp, "tls"), t0)
	db := "sql:" + filepath.Join(tmp, "nssdb")
	os.Mkdir(filepath.Join(tmp, "nssdb"), 0o700)
	certutil := func(args ...string) (string, error) {
		out, err := exec.Command("certutil", append(args, "-d", db)...).CombinedOutput()
		return string(out), err
	}
	evil := filepath.Join(tmp, "evil.pem")
	os.WriteFile(evil, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issueWithCA(t, a, []string{"evil.example"}, nil).Raw}), 0o644)
	for _, args := range [][]string{
		{"-N", "--empty-password"},
		{"-A", "-n", "ca", "-t", "C,,", "-i", a.CACertFile()},
		{"-A", "-n", "leaf", "-t", ",,", "-i", filepath.Join(a.Dir(), CertFile)},
		{"-A", "-n", "evil", "-t", ",,", "-i", evil},
	} {
		if out, err := certutil(args...); err != nil {
			t.Fatalf("certutil %q: %v\n%s", args, err, out)
		}
	}
	at := t0.Format("060102150405Z")
	if out, err := certutil("-V", "-n", "leaf", "-u", "V", "-b", at); err != nil {
		t.Fatalf("NSS rejects the server certificate: %v\n%s", err, out)
	}
	out, err := certutil("-V", "-n", "evil", "-u", "V", "-b", at)
	if err == nil || !strings.Contains(out, "not permitted to issue a certificate with this name") {
		t.Fatalf("NSS on evil.example: err=%v\n%s", err, out)
	}
}

func TestInstallsDoNotShareKeys(t *testing.T) {
	a1, _ := load(t, newDir(t), t0)
	a2, _ := load(t, newDir(t), t0)
	if a1.Fingerprint() == a2.Fingerprint() {
		t.Fatal("same CA")
	}
	k1, k2 := a1.st.Load(), a2.st.Load()
	if k1.caKey.Equal(k2.caKey) || k1.leaf.PrivateKey.(*ecdsa.PrivateKey).Equal(k2.leaf.PrivateKey) {
		t.Fatal("shared key")
	}
	if a1.CACert().Subject.CommonName == a2.CACert().Subject.CommonName || a1.CACert().SerialNumber.Cmp(a2.CACert().SerialNumber) == 0 {
		t.Fatal("same CA name or serial")
	}
}
