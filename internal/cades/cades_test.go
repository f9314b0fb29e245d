package cades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/cpsagent/cpsagent/pkg/cpsid/cpstest"
)

type fixture struct {
	pki        *cpstest.PKI
	key        *rsa.PrivateKey // stands in for the card signature key
	other      *rsa.PrivateKey
	sign       *x509.Certificate // valid around now
	wide       *x509.Certificate // valid 1949..2061, for time edge cases
	authOfSame *x509.Certificate
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
)

func setup(t testing.TB) *fixture {
	t.Helper()
	fixOnce.Do(func() {
		f := &fix
		if f.pki, fixErr = cpstest.NewPKI(nil); fixErr != nil {
			return
		}
		if f.key, fixErr = rsa.GenerateKey(rand.Reader, 2048); fixErr != nil {
			return
		}
		if f.other, fixErr = rsa.GenerateKey(rand.Reader, 2048); fixErr != nil {
			return
		}
		h := cpstest.Holders()["medecin"]
		now := time.Now()
		if f.authOfSame, f.sign, fixErr = f.pki.Issue(h, &f.other.PublicKey, &f.key.PublicKey, now.Add(-time.Hour), now.Add(24*time.Hour)); fixErr != nil {
			return
		}
		_, f.wide, fixErr = f.pki.Issue(h, &f.other.PublicKey, &f.key.PublicKey,
			time.Date(1949, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2061, 1, 1, 0, 0, 0, 0, time.UTC))
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return &fix
}

// cardSigner stands in for the card: it finishes the hash itself.
func cardSigner(key *rsa.PrivateKey, seen *[]byte) SignFunc {
	return func(ctx context.Context, tbs []byte) ([]byte, error) {
		if seen != nil {
			*seen = bytes.Clone(tbs)
		}
		h := sha256.Sum256(tbs)
		return rsa.SignPKCS1v15(nil, key, crypto.SHA256, h[:])
	}
}

// fixedHasher lets smallstep/pkcs7 verify a detached signature for which
// only the document digest is known.
type fixedHasher []byte

func (h fixedHasher) Hash(crypto.Hash, io.Reader) ([]byte, error) { return h, nil }

func TestRoundTripSmallstep(t *testing.T) {
	f := setup(t)
	doc := []byte("compte rendu de consultation\n")
	digest := sha256.Sum256(doc)
	signingTime := time.Now().Add(-time.Minute)
	var seen []byte
	p7s, err := BuildDetached(context.Background(), digest[:], f.sign, f.pki.Chain(), signingTime, cardSigner(f.key, &seen))
	if err != nil {
		t.Fatal(err)
	}

	// The signer received exactly SignedAttributes (dataToSign mode).
	want, err := SignedAttributes(digest[:], f.sign, signingTime)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(seen, want) {
		t.Fatal("SignFunc did not receive SignedAttributes output")
	}

	p7, err := pkcs7.Parse(p7s)
	if err != nil {
		t.Fatal(err)
	}
	if len(p7.Certificates) != 3 {
		t.Errorf("%d certificates embedded, want signer + 2 CA", len(p7.Certificates))
	}
	if !p7.GetOnlySigner().Equal(f.sign) {
		t.Error("signer certificate not found by issuerAndSerialNumber")
	}
	p7.Content = doc
	if err := p7.Verify(); err != nil {
		t.Fatalf("smallstep Verify: %v", err)
	}
	if err := p7.VerifyWithChain(f.pki.Roots()); err != nil {
		t.Fatalf("smallstep VerifyWithChain: %v", err)
	}
	var st time.Time
	if err := p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeSigningTime, &st); err != nil || !st.Equal(signingTime.Truncate(time.Second)) {
		t.Errorf("signing time = %v, %v; want %v", st, err, signingTime.Truncate(time.Second))
	}
	var ct asn1.ObjectIdentifier
	if err := p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeContentType, &ct); err != nil || !ct.Equal(OIDData) {
		t.Errorf("content type = %v, %v", ct, err)
	}

	// Modified document.
	p7.Content = append(bytes.Clone(doc), '!')
	var mismatch *pkcs7.MessageDigestMismatchError
	if err := p7.Verify(); !errors.As(err, &mismatch) {
		t.Errorf("modified document: %v, want MessageDigestMismatchError", err)
	}

	// Another PKI with the same names must not validate the chain.
	other, err := cpstest.New(cpstest.Options{RootKey: f.other, IntermediateKey: f.other})
	if err != nil {
		t.Fatal(err)
	}
	p7.Content = doc
	if err := p7.VerifyWithChain(other.Roots()); err == nil {
		t.Error("chain accepted by a foreign root with the same name")
	}
}

// essCertIDv2 mirrors RFC 5035 for an independent decode with encoding/asn1.
type essCertIDv2 struct {
	HashAlgorithm pkix.AlgorithmIdentifier `asn1:"optional"`
	CertHash      []byte
	IssuerSerial  struct {
		Issuer []asn1.RawValue
		Serial *big.Int
	}
}

type testAttribute struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.RawValue `asn1:"set"`
}

func TestSignedAttributesEncoding(t *testing.T) {
	f := setup(t)
	digest := sha256.Sum256([]byte("x"))
	tbs, err := SignedAttributes(digest[:], f.sign, time.Date(2025, 3, 4, 5, 6, 7, 999, time.FixedZone("CET", 3600)))
	if err != nil {
		t.Fatal(err)
	}
	if tbs[0] != 0x31 {
		t.Fatalf("tag %#x, want SET", tbs[0])
	}
	var attrs []testAttribute
	rest, err := asn1.UnmarshalWithParams(tbs, &attrs, "set")
	if err != nil || len(rest) != 0 {
		t.Fatalf("not a SET OF Attribute: %v", err)
	}
	// Re-encoding with encoding/asn1 (which sorts SET OF) must give the
	// same bytes: the encoding is DER.
	again, err := asn1.MarshalWithParams(attrs, "set")
	if err != nil || !bytes.Equal(again, tbs) {
		t.Fatalf("signed attributes are not DER (re-encoding differs): %v", err)
	}
	byType := map[string]asn1.RawValue{}
	for _, a := range attrs {
		if len(a.Values) != 1 {
			t.Errorf("%v has %d values", a.Type, len(a.Values))
		}
		byType[a.Type.String()] = a.Values[0]
	}
	if len(byType) != 4 {
		t.Fatalf("%d distinct attributes, want 4", len(byType))
	}
	if v := byType[OIDSigningTime.String()]; v.Tag != asn1.TagUTCTime || string(v.Bytes) != "250304040607Z" {
		t.Errorf("signing time = tag %d %q, want UTCTime 250304040607Z", v.Tag, v.Bytes)
	}
	if v := byType[OIDMessageDigest.String()]; !bytes.Equal(v.Bytes, digest[:]) {
		t.Error("message digest differs")
	}
	var sc struct{ Certs []essCertIDv2 }
	if _, err := asn1.Unmarshal(byType[OIDSigningCertificateV2.String()].FullBytes, &sc); err != nil {
		t.Fatal(err)
	}
	certHash := sha256.Sum256(f.sign.Raw)
	id := sc.Certs[0]
	if len(sc.Certs) != 1 || !bytes.Equal(id.CertHash, certHash[:]) {
		t.Error("ESSCertIDv2 hash is not SHA-256 of the signer certificate")
	}
	if id.HashAlgorithm.Algorithm != nil {
		t.Error("default hashAlgorithm sha256 must be omitted in DER")
	}
	if id.IssuerSerial.Serial.Cmp(f.sign.SerialNumber) != 0 || len(id.IssuerSerial.Issuer) != 1 ||
		id.IssuerSerial.Issuer[0].Tag != 4 || !bytes.Equal(id.IssuerSerial.Issuer[0].Bytes, f.sign.RawIssuer) {
		t.Error("issuerSerial does not name the signer certificate")
	}
}

func TestSigningTimeEncodings(t *testing.T) {
	f := setup(t)
	digest := sha256.Sum256([]byte("x"))
	for _, tt := range []struct {
		t   time.Time
		tag int
	}{
		{time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC), asn1.TagUTCTime},
		{time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC), asn1.TagUTCTime},
		{time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC), asn1.TagGeneralizedTime},
		{time.Date(1949, 12, 31, 23, 59, 59, 0, time.UTC), asn1.TagGeneralizedTime},
	} {
		p7s, err := BuildDetached(context.Background(), digest[:], f.wide, nil, tt.t, cardSigner(f.key, nil))
		if err != nil {
			t.Fatalf("%v: %v", tt.t, err)
		}
		p7, err := pkcs7.Parse(p7s)
		if err != nil {
			t.Fatal(err)
		}
		var raw asn1.RawValue
		if err := p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeSigningTime, &raw); err != nil || raw.Tag != tt.tag {
			t.Errorf("%v: tag %d (%v), want %d", tt.t, raw.Tag, err, tt.tag)
		}
		p7.Hasher = fixedHasher(digest[:])
		if err := p7.Verify(); err != nil {
			t.Errorf("%v: %v", tt.t, err)
		}
	}
	if _, err := SignedAttributes(digest[:], f.sign, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, ErrSigningTime) {
		t.Errorf("year 10000: %v", err)
	}
}

func TestBuildDetachedErrors(t *testing.T) {
	f := setup(t)
	digest := sha256.Sum256([]byte("x"))
	ctx := context.Background()
	now := time.Now()
	boom := errors.New("card removed")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	tests := []struct {
		name   string
		ctx    context.Context
		digest []byte
		cert   *x509.Certificate
		sign   SignFunc
		want   error
	}{
		{"short digest", ctx, digest[:31], f.sign, cardSigner(f.key, nil), ErrDigest},
		{"no certificate", ctx, digest[:], nil, cardSigner(f.key, nil), ErrCertificate},
		{"no signer", ctx, digest[:], f.sign, nil, ErrSigner},
		{"signer error", ctx, digest[:], f.sign, func(context.Context, []byte) ([]byte, error) { return nil, boom }, boom},
		{"signed with the authentication key", ctx, digest[:], f.sign, cardSigner(f.other, nil), ErrSignatureMismatch},
		{"garbage signature", ctx, digest[:], f.sign, func(context.Context, []byte) ([]byte, error) { return []byte{1, 2, 3}, nil }, ErrSignatureMismatch},
		{"cancelled", cancelled, digest[:], f.sign, cardSigner(f.key, nil), context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := BuildDetached(tt.ctx, tt.digest, tt.cert, nil, now, tt.sign)
			if !errors.Is(err, tt.want) || out != nil {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := AssembleDetached([]byte{0x30, 0x00}, nil, f.sign, nil); !errors.Is(err, ErrSignedAttributes) {
		t.Errorf("AssembleDetached(not a SET): %v", err)
	}
}

func TestOpenSSLVerify(t *testing.T) {
	openssl := lookOpenSSL(t)
	f := setup(t)
	dir := t.TempDir()
	doc := []byte("ordonnance %PDF-1.7 \x00\x01 binary content")
	digest := sha256.Sum256(doc)
	p7s, err := BuildDetached(context.Background(), digest[:], f.sign, f.pki.Chain(), time.Now(), cardSigner(f.key, nil))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sig := write("doc.p7s", p7s)
	chain := filepath.Join(dir, "chain.pem")
	if err := f.pki.WriteChainPEM(chain); err != nil {
		t.Fatal(err)
	}
	verify := func(content string) ([]byte, error) {
		return exec.Command(openssl, "cms", "-verify", "-binary", "-content", content, "-inform", "DER",
			"-in", sig, "-CAfile", chain, "-purpose", "any", "-out", os.DevNull).CombinedOutput()
	}
	if out, err := verify(write("doc", doc)); err != nil {
		t.Fatalf("openssl cms -verify: %v\n%s", err, out)
	}
	if out, err := verify(write("doc-modified", append(bytes.Clone(doc), ' '))); err == nil {
		t.Fatalf("openssl accepted a modified document:\n%s", out)
	}

	// Signer-only (no chain embedded): openssl needs the intermediate from -CAfile.
	p7s, err = BuildDetached(context.Background(), digest[:], f.sign, nil, time.Now(), cardSigner(f.key, nil))
	if err != nil {
		t.Fatal(err)
	}
	write("doc.p7s", p7s)
	if out, err := verify(filepath.Join(dir, "doc")); err != nil {
		t.Fatalf("openssl cms -verify (no chain embedded): %v\n%s", err, out)
	}
	// openssl must see the ESS signing-certificate-v2 and the expected layout.
	out, err := exec.Command(openssl, "cms", "-cmsout", "-print", "-inform", "DER", "-in", sig).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl cms -cmsout: %v\n%s", err, out)
	}
	for _, want := range []string{"id-smime-aa-signingCertificateV2", "rsaEncryption", "signingTime", "messageDigest", "eContent: <ABSENT>"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("openssl -print output lacks %q", want)
		}
	}
}

func lookOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not found and CI=true")
		}
		t.Skip("SKIPPED: openssl not found in PATH; the CMS interoperability check did not run")
	}
	return path
}

// FuzzBuildDetached checks that for any digest and signing time the output
// parses and verifies with an independent CMS implementation.
func FuzzBuildDetached(f *testing.F) {
	f.Add(make([]byte, 32), int64(0))
	f.Add(bytes.Repeat([]byte{0xff}, 32), int64(2524608000)) // 2050-01-01
	f.Add([]byte("short"), int64(-631152000))
	f.Fuzz(func(t *testing.T, digest []byte, unix int64) {
		fx := setup(t)
		lo, hi := fx.wide.NotBefore.Unix(), fx.wide.NotAfter.Unix()
		ts := time.Unix(lo+int64(uint64(unix)%uint64(hi-lo)), 0)
		p7s, err := BuildDetached(context.Background(), digest, fx.wide, fx.pki.Chain(), ts, cardSigner(fx.key, nil))
		if len(digest) != 32 {
			if !errors.Is(err, ErrDigest) {
				t.Fatalf("digest of %d bytes: %v", len(digest), err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p7, err := pkcs7.Parse(p7s)
		if err != nil {
			t.Fatal(err)
		}
		p7.Hasher = fixedHasher(digest)
		if err := p7.Verify(); err != nil {
			t.Fatalf("time %v: %v", ts, err)
		}
		var st time.Time
		if err := p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeSigningTime, &st); err != nil || !st.Equal(ts) {
			t.Fatalf("signing time %v (%v), want %v", st, err, ts)
		}
	})
}
