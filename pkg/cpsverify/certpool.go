package cpsverify

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/smallstep/pkcs7"
)

// ErrNoCertificates reports a trust file without any certificate.
var ErrNoCertificates = errors.New("cpsverify: no certificate found")

// LoadCertificates reads certificates from files in any of these forms:
// PEM (CERTIFICATE or PKCS7 blocks, several per file), a DER certificate, or
// a DER/BER PKCS#7 certificate bundle such as IGC-Santé's
// Chaine_de_certification-IGC-Sante.p7b.
func LoadCertificates(paths ...string) ([]*x509.Certificate, error) {
	all, err := loadFiles(paths, ParseCertificates)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, ErrNoCertificates
	}
	return all, nil
}

// loadFiles parses each file with parse and returns all the results; an
// error names the file.
func loadFiles[T any](paths []string, parse func([]byte) ([]T, error)) ([]T, error) {
	var all []T
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		items, err := parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		all = append(all, items...)
	}
	return all, nil
}

// LoadCertPool returns a pool with every certificate of the given files
// (see LoadCertificates).
func LoadCertPool(paths ...string) (*x509.CertPool, error) {
	certs, err := LoadCertificates(paths...)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// LoadTrust splits the certificates of the given files into self-signed
// roots and intermediates, the shape of a published chain bundle, ready for
// Verifier.Roots and Verifier.Intermediates. Only load files from a trusted
// source: every self-signed certificate becomes a trust anchor.
func LoadTrust(paths ...string) (roots, intermediates *x509.CertPool, err error) {
	certs, err := LoadCertificates(paths...)
	if err != nil {
		return nil, nil, err
	}
	roots, intermediates = x509.NewCertPool(), x509.NewCertPool()
	nroots := 0
	for _, c := range certs {
		if bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
			roots.AddCert(c)
			nroots++
		} else {
			intermediates.AddCert(c)
		}
	}
	if nroots == 0 {
		return nil, nil, fmt.Errorf("%w: no self-signed root among %d certificates", ErrNoCertificates, len(certs))
	}
	return roots, intermediates, nil
}

// ParseCertificates parses certificates from PEM, DER or PKCS#7 data.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	if bytes.Contains(data, []byte("-----BEGIN ")) {
		var out []*x509.Certificate
		for _, block := range pemBlocks(data) {
			switch block.Type {
			case "CERTIFICATE":
				c, err := x509.ParseCertificate(block.Bytes)
				if err != nil {
					return nil, fmt.Errorf("%w: %w", ErrCertificateMalformed, err)
				}
				out = append(out, c)
			case "PKCS7", "CMS":
				certs, err := parsePKCS7Certificates(block.Bytes)
				if err != nil {
					return nil, err
				}
				out = append(out, certs...)
			}
		}
		if len(out) == 0 {
			return nil, ErrNoCertificates
		}
		return out, nil
	}
	if c, err := x509.ParseCertificate(data); err == nil {
		return []*x509.Certificate{c}, nil
	}
	return parsePKCS7Certificates(data)
}

// pemBlocks returns the PEM blocks of data, in order.
func pemBlocks(data []byte) []*pem.Block {
	var blocks []*pem.Block
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return blocks
		}
		blocks = append(blocks, block)
	}
}

// parsePKCS7Certificates extracts the certificates of a SignedData (usually
// a "certs-only" bundle). DER goes through this package's parser; BER
// (indefinite lengths, as some Windows exports produce) falls back to
// smallstep/pkcs7, whose BER-to-DER conversion is the only part used. The
// result only feeds trust configuration chosen by an administrator.
func parsePKCS7Certificates(data []byte) ([]*x509.Certificate, error) {
	sd, err := parseSignedData(data)
	if err == nil {
		if len(sd.certs) == 0 {
			return nil, ErrNoCertificates
		}
		return sd.certs, nil
	}
	if errors.Is(err, ErrCertificateMalformed) {
		return nil, err
	}
	p7, berErr := pkcs7.Parse(data)
	if berErr != nil {
		return nil, fmt.Errorf("%w: neither a certificate nor a PKCS#7 bundle: %w", ErrFormat, err)
	}
	if len(p7.Certificates) == 0 {
		return nil, ErrNoCertificates
	}
	return p7.Certificates, nil
}
