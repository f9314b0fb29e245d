package localca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"
)

// The names a server certificate carries, and the CA's permitted subtrees.
var (
	leafDNSNames = []string{"localhost"}
	leafIPs      = []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	permittedIPs = []*net.IPNet{
		{IP: net.IPv4(127, 0, 0, 1).To4(), Mask: net.CIDRMask(32, 32)},
		{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
	}
)

func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("localca: serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// caCommonName is "cpsagent local CA <host> <8 hex digits>".
func caCommonName() (string, error) {
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '.') {
			return r
		}
		return -1
	}, host)
	if len(host) > 32 {
		host = host[:32]
	}
	if host == "" {
		host = "host"
	}
	return fmt.Sprintf("cpsagent local CA %s %s", host, hex.EncodeToString(id)), nil
}

func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("localca: CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	cn, err := caCommonName()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("localca: CA name: %w", err)
	}
	notBefore := now.Add(-backdate).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:                serial,
		Subject:                     pkix.Name{CommonName: cn, Organization: []string{"cpsagent"}},
		NotBefore:                   notBefore,
		NotAfter:                    notBefore.Add(CAValidity),
		IsCA:                        true,
		BasicConstraintsValid:       true,
		MaxPathLen:                  0,
		MaxPathLenZero:              true,
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:                 []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         slices.Clone(leafDNSNames),
		PermittedIPRanges:           permittedIPs,
		SignatureAlgorithm:          x509.ECDSAWithSHA256,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("localca: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("localca: CA certificate: %w", err)
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("localca: server key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-backdate).Truncate(time.Second)
	if notBefore.Before(ca.NotBefore) {
		notBefore = ca.NotBefore
	}
	notAfter := notBefore.Add(LeafValidity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"cpsagent"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              slices.Clone(leafDNSNames),
		IPAddresses:           slices.Clone(leafIPs),
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("localca: server certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("localca: server certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, nil
}

// checkCA returns why ca cannot be used at now ("" if it can), and whether it
// is due for renewal.
func checkCA(ca *x509.Certificate, key *ecdsa.PrivateKey, now time.Time) (problem string, nearExpiry bool) {
	pub, ok := ca.PublicKey.(*ecdsa.PublicKey)
	switch {
	case !ok || pub.Curve != elliptic.P256():
		return "not an ECDSA P-256 certificate", false
	case key == nil || key.Curve != elliptic.P256() || !pub.Equal(key.Public()):
		return "the key does not match the certificate", false
	case !ca.IsCA || !ca.BasicConstraintsValid || ca.MaxPathLen != 0 || !ca.MaxPathLenZero:
		return "not a CA with path length 0", false
	case ca.KeyUsage&x509.KeyUsageCertSign == 0:
		return "no certSign key usage", false
	case !ca.PermittedDNSDomainsCritical || !slices.Equal(ca.PermittedDNSDomains, leafDNSNames) || !sameNets(ca.PermittedIPRanges, permittedIPs) ||
		len(ca.ExcludedDNSDomains)+len(ca.ExcludedIPRanges) != 0:
		return "missing or unexpected name constraints", false
	case ca.SignatureAlgorithm != x509.ECDSAWithSHA256 || ca.CheckSignatureFrom(ca) != nil:
		return "bad self-signature", false
	case ca.NotAfter.Sub(ca.NotBefore) > CAValidity:
		return "validity longer than 825 days", false
	case now.Before(ca.NotBefore):
		return "not valid yet (clock moved back?)", false
	}
	return "", ca.NotAfter.Sub(now) < CARenewBefore
}

// checkLeaf returns why leaf cannot be served with ca at now ("" if it can),
// and whether it is due for renewal.
func checkLeaf(leaf *tls.Certificate, ca *x509.Certificate, now time.Time) (problem string, due bool) {
	c := leaf.Leaf
	key, ok := leaf.PrivateKey.(*ecdsa.PrivateKey)
	pub, pubOK := c.PublicKey.(*ecdsa.PublicKey)
	switch {
	case !ok || !pubOK || key.Curve != elliptic.P256() || !pub.Equal(key.Public()):
		return "not an ECDSA P-256 key matching the certificate", false
	case !slices.Equal(c.DNSNames, leafDNSNames) || !sameIPs(c.IPAddresses, leafIPs) ||
		len(c.EmailAddresses)+len(c.URIs) != 0:
		return "unexpected subject alternative names", false
	case !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || c.IsCA:
		return "not a server-only certificate", false
	case c.SignatureAlgorithm != x509.ECDSAWithSHA256:
		return "not signed with ECDSA-SHA256", false
	case c.NotAfter.Sub(c.NotBefore) > LeafValidity:
		return "validity longer than 397 days", false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := c.Verify(x509.VerifyOptions{
			DNSName:     name,
			Roots:       roots,
			CurrentTime: now,
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			return "does not verify with the CA: " + err.Error(), false
		}
	}
	return "", !now.Before(leafRenewAt(c))
}

// leafRenewAt is when less than a third of the lifetime, or less than 30
// days, remain.
func leafRenewAt(c *x509.Certificate) time.Time {
	margin := max(c.NotAfter.Sub(c.NotBefore)/3, LeafMinRemaining)
	return c.NotAfter.Add(-margin)
}

func sameIPs(a, b []net.IP) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(ip net.IP) bool {
		return !slices.ContainsFunc(b, ip.Equal)
	})
}

func sameNets(a, b []*net.IPNet) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(n *net.IPNet) bool {
		return !slices.ContainsFunc(b, func(m *net.IPNet) bool {
			return n.IP.Equal(m.IP) && bytes.Equal(n.Mask, m.Mask)
		})
	})
}
