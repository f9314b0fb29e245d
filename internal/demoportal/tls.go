package demoportal

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cpsagent/cpsagent/internal/atomicfile"
)

// Files of the demo portal's own CA, in its TLS directory.
const (
	CAFile    = "ca.pem"
	caKeyFile = "ca-key.pem"
)

const (
	caValidity   = 2 * 365 * 24 * time.Hour
	caRenewal    = 30 * 24 * time.Hour // make a new CA when less is left
	leafValidity = 7 * 24 * time.Hour
)

// DemoTLS is the portal's certificate material.
type DemoTLS struct {
	// CAPath is the CA certificate a browser must trust (PEM).
	CAPath string
	CA     *x509.Certificate
	// Leaf is the server certificate, issued at start for 127.0.0.1, ::1
	// and localhost.
	Leaf tls.Certificate
}

// LoadOrCreateTLS returns a server certificate for the loopback names,
// issued by a CA kept in dir (created 0700; the key file 0600). The CA is
// name-constrained to localhost, 127.0.0.0/8 and ::1, so a leaked key
// cannot be used for any other site. It is the demo's own CA, separate
// from the agent's: trust it once (certutil, see docs/integration.md) or
// accept the browser warning.
func LoadOrCreateTLS(dir string, now time.Time) (*DemoTLS, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating TLS directory: %w", err)
	}
	ca, key, err := loadCA(dir)
	if err != nil || now.Add(caRenewal).After(ca.NotAfter) {
		if ca, key, err = createCA(dir, now); err != nil {
			return nil, err
		}
	}
	leaf, err := issueLeaf(ca, key, now)
	if err != nil {
		return nil, err
	}
	return &DemoTLS{CAPath: filepath.Join(dir, CAFile), CA: ca, Leaf: leaf}, nil
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, caKeyFile))
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("demoportal: malformed CA files")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, errors.New("demoportal: CA key does not match the CA certificate")
	}
	return cert, key, nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func createCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating CA key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:                sn,
		Subject:                     pkix.Name{CommonName: "cpsagent demo portal CA (" + host + ")", Organization: []string{"cpsagent demo"}},
		NotBefore:                   now.Add(-time.Hour),
		NotAfter:                    now.Add(caValidity),
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid:       true,
		IsCA:                        true,
		MaxPathLenZero:              true,
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         []string{"localhost"},
		PermittedIPRanges: []*net.IPNet{
			{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)},
			{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
		},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, caKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, CAFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func issueLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	sn, err := serial()
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "cpsagent demo portal"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// Files of the agent's own server certificate (internal/localca), in
// STATE-DIR/tls. The demo portal can serve the same certificate: it names
// localhost, 127.0.0.1 and ::1 whatever the port, so a browser that trusts
// the agent (cpsagent install) trusts the portal too.
const (
	agentCertFile = "cert.pem"
	agentKeyFile  = "key.pem"
)

// fileCertificate serves a certificate/key pair from files, reloading them
// when they change (the agent renews its certificate while it runs).
type fileCertificate struct {
	certFile, keyFile string

	mu     sync.Mutex
	cert   *tls.Certificate
	stamps []fileStamp
}

func newFileCertificate(certFile, keyFile string) (*fileCertificate, error) {
	f := &fileCertificate{certFile: certFile, keyFile: keyFile}
	if _, err := f.get(nil); err != nil {
		return nil, err
	}
	return f, nil
}

// get is a tls.Config.GetCertificate.
func (f *fileCertificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	stamps := stampsOf([]string{f.certFile, f.keyFile})
	if f.cert != nil && stamps[0] == f.stamps[0] && stamps[1] == f.stamps[1] {
		return f.cert, nil
	}
	c, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		if f.cert != nil {
			return f.cert, nil // mid-rename: keep serving the previous pair
		}
		return nil, err
	}
	f.cert, f.stamps = &c, stamps
	return f.cert, nil
}
