package localca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/cpsagent/cpsagent/internal/atomicfile"
)

const maxFileSize = 64 << 10

func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("localca: %w", err)
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("localca: %w", err)
		}
	}
	return nil
}

// readFile reads a small file. missing reports a file that does not exist;
// err is any other I/O error. problem reports a file too large or, for a key,
// readable by others.
func readFile(dir, name string, secret bool) (data []byte, missing bool, problem string, err error) {
	f, err := os.Open(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, true, "", nil
	}
	if err != nil {
		return nil, false, "", fmt.Errorf("localca: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, "", fmt.Errorf("localca: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, false, name + ": not a regular file", nil
	}
	if secret && runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Sprintf("%s: readable by other users (mode %04o), treated as compromised", name, st.Mode().Perm()), nil
	}
	data, err = io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, false, "", fmt.Errorf("localca: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, false, name + ": too large", nil
	}
	return data, false, "", nil
}

// loadCA returns the CA from dir, or a problem ("" with a nil ca when both
// files are missing: first run).
func loadCA(dir string) (ca *x509.Certificate, key *ecdsa.PrivateKey, caPEM []byte, problem string, err error) {
	certPEM, certMissing, problem, err := readFile(dir, CAFile, false)
	if err != nil || problem != "" {
		return nil, nil, nil, problem, err
	}
	keyPEM, keyMissing, problem, err := readFile(dir, CAKeyFile, true)
	if err != nil || problem != "" {
		return nil, nil, nil, problem, err
	}
	switch {
	case certMissing && keyMissing:
		return nil, nil, nil, "", nil
	case certMissing:
		return nil, nil, nil, CAFile + ": missing", nil
	case keyMissing:
		return nil, nil, nil, CAKeyFile + ": missing", nil
	}
	ca, problem = parseCertPEM(certPEM)
	if problem != "" {
		return nil, nil, nil, CAFile + ": " + problem, nil
	}
	key, problem = parseKeyPEM(keyPEM)
	if problem != "" {
		return nil, nil, nil, CAKeyFile + ": " + problem, nil
	}
	return ca, key, certPEM, "", nil
}

// loadLeaf returns the server certificate from dir, or a problem (also when
// missing: without a CA problem this means a damaged install).
func loadLeaf(dir string) (*tls.Certificate, string, error) {
	certPEM, certMissing, problem, err := readFile(dir, CertFile, false)
	if err != nil || problem != "" {
		return nil, problem, err
	}
	keyPEM, keyMissing, problem, err := readFile(dir, KeyFile, true)
	if err != nil || problem != "" {
		return nil, problem, err
	}
	switch {
	case certMissing && keyMissing:
		return nil, "", nil
	case certMissing:
		return nil, CertFile + ": missing", nil
	case keyMissing:
		return nil, KeyFile + ": missing", nil
	}
	cert, problem := parseCertPEM(certPEM)
	if problem != "" {
		return nil, CertFile + ": " + problem, nil
	}
	key, problem := parseKeyPEM(keyPEM)
	if problem != "" {
		return nil, KeyFile + ": " + problem, nil
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, "", nil
}

// parseCertPEM expects exactly one CERTIFICATE block.
func parseCertPEM(data []byte) (*x509.Certificate, string) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, "no PEM certificate"
	}
	if more, _ := pem.Decode(rest); more != nil {
		return nil, "more than one PEM block"
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, "unparsable certificate"
	}
	return cert, ""
}

// parseKeyPEM expects exactly one PKCS #8 ECDSA P-256 PRIVATE KEY block.
func parseKeyPEM(data []byte) (*ecdsa.PrivateKey, string) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, "no PEM private key"
	}
	if more, _ := pem.Decode(rest); more != nil {
		return nil, "more than one PEM block"
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, "unparsable private key"
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, "not an ECDSA P-256 key"
	}
	return key, ""
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	clear(der)
	return b, nil
}

// writeCA writes the key first: a crash in between leaves a mismatched pair,
// which the next Load regenerates.
func writeCA(dir string, key *ecdsa.PrivateKey, certPEM []byte) error {
	k, err := keyPEM(key)
	if err != nil {
		return err
	}
	defer clear(k)
	if err := writeFileAtomic(dir, CAKeyFile, k, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(dir, CAFile, certPEM, 0o644)
}

func writeLeaf(dir string, leaf *tls.Certificate) error {
	k, err := keyPEM(leaf.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		return err
	}
	defer clear(k)
	if err := writeFileAtomic(dir, KeyFile, k, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(dir, CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Leaf.Raw}), 0o644)
}

// writeFileAtomic writes name in dir through atomicfile (a rename, which
// also replaces a symbolic link instead of following it).
func writeFileAtomic(dir, name string, data []byte, perm os.FileMode) error {
	if err := atomicfile.WriteFile(filepath.Join(dir, name), data, perm); err != nil {
		return fmt.Errorf("localca: writing %s: %w", name, err)
	}
	return nil
}
