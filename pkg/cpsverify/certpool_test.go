package cpsverify

import (
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/cpsagent/cpsagent/pkg/cpsid/cpstest"
)

// toIndefinite re-encodes the outer ContentInfo SEQUENCE and its [0]
// wrapper with BER indefinite lengths, as some PKCS#7 exporters do.
func toIndefinite(t *testing.T, der []byte) []byte {
	t.Helper()
	in := cryptobyte.String(der)
	var ci, explicit cryptobyte.String
	var oid cryptobyte.String
	if !in.ReadASN1(&ci, casn1.SEQUENCE) || !ci.ReadASN1Element(&oid, casn1.OBJECT_IDENTIFIER) || !ci.ReadASN1(&explicit, tagCtx0Cons) {
		t.Fatal("not a ContentInfo")
	}
	out := []byte{0x30, 0x80}
	out = append(out, oid...)
	out = append(out, 0xa0, 0x80)
	out = append(out, explicit...)
	return append(out, 0, 0, 0, 0)
}

func TestLoadCertificates(t *testing.T) {
	w := getWorld(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string { return writeFile(t, dir, name, b) }
	chainPEM := write("chain.pem", w.pki.ChainPEM())
	rootDER := write("root.cer", w.pki.Root.Raw)
	// A certs-only SignedData built with cades' encoder conventions.
	p7b := certsOnly(t, w.pki.Root, w.pki.Intermediate)
	p7bDER := write("chain.p7b", p7b)
	p7bBER := write("chain-ber.p7b", toIndefinite(t, p7b))
	p7bPEM := write("chain.p7b.pem", []byte("-----BEGIN PKCS7-----\n"+b64lines(p7b)+"-----END PKCS7-----\n"))

	for _, tt := range []struct {
		name  string
		paths []string
		n     int
	}{
		{"PEM chain", []string{chainPEM}, 2},
		{"DER certificate", []string{rootDER}, 1},
		{"DER p7b", []string{p7bDER}, 2},
		{"BER p7b", []string{p7bBER}, 2},
		{"PEM PKCS7", []string{p7bPEM}, 2},
		{"several files", []string{chainPEM, rootDER}, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			certs, err := LoadCertificates(tt.paths...)
			if err != nil {
				t.Fatal(err)
			}
			if len(certs) != tt.n {
				t.Fatalf("%d certificates, want %d", len(certs), tt.n)
			}
			roots, inter, err := LoadTrust(tt.paths...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.auth.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: base,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); tt.n >= 2 && err != nil {
				t.Fatalf("chain from LoadTrust: %v", err)
			}
			if _, err := LoadCertPool(tt.paths...); err != nil {
				t.Fatal(err)
			}
		})
	}

	if openssl, err := exec.LookPath("openssl"); err == nil {
		out := filepath.Join(dir, "openssl.p7b")
		if msg, err := exec.Command(openssl, "crl2pkcs7", "-nocrl", "-certfile", chainPEM, "-outform", "DER", "-out", out).CombinedOutput(); err != nil {
			t.Fatalf("openssl crl2pkcs7: %v\n%s", err, msg)
		}
		if certs, err := LoadCertificates(out); err != nil || len(certs) != 2 {
			t.Fatalf("openssl p7b: %d certificates, %v", len(certs), err)
		}
	}

	for _, tt := range []struct {
		name  string
		paths []string
		want  error
	}{
		{"no files", nil, ErrNoCertificates},
		{"empty PEM", []string{write("key.pem", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))}, ErrNoCertificates},
		{"garbage", []string{write("junk", []byte("hello"))}, ErrFormat},
		{"bad PEM certificate", []string{write("bad.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))}, ErrCertificateMalformed},
		{"missing file", []string{filepath.Join(dir, "nope")}, os.ErrNotExist},
	} {
		if _, err := LoadCertificates(tt.paths...); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, _, err := LoadTrust(write("inter.pem", cpstest.CertPEM(w.pki.Intermediate))); !errors.Is(err, ErrNoCertificates) {
		t.Errorf("LoadTrust without a root: %v", err)
	}
}

func certsOnly(t *testing.T, certs ...*x509.Certificate) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(tagCtx0Cons, func(b *cryptobyte.Builder) {
			b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(casn1.SET, func(*cryptobyte.Builder) {})
				b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) })
				b.AddASN1(tagCtx0Cons, func(b *cryptobyte.Builder) {
					for _, c := range certs {
						b.AddBytes(c.Raw)
					}
				})
				b.AddASN1(casn1.SET, func(*cryptobyte.Builder) {})
			})
		})
	})
	out, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func b64lines(b []byte) string {
	s := base64Std(b)
	var out string
	for len(s) > 64 {
		out += s[:64] + "\n"
		s = s[64:]
	}
	return out + s + "\n"
}
