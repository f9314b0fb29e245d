// Package cpstest generates a throw-away PKI shaped like the IGC-Santé test
// PKI and card certificates shaped like those of CPS/CPE test cards, for
// tests and for the virtual card. Nothing here is trusted anywhere: every
// call makes new CA keys unless the caller passes its own.
//
// The certificate layout follows docs identity.md §1 (CA DN pattern, holder
// subject C=FR, title=<profession>, {SN+GN+CN} as one multi-valued RDN,
// card-type extension 1.2.250.1.71.1.2.2). Key usages follow the expectation
// of §1.5, which is not confirmed on a real card.
package cpstest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"time"
)

// OIDCardType is the card-type extension (same value as cpsid.OIDCardType;
// cpstest does not import cpsid so that cpsid's own tests can use it).
var OIDCardType = asn1.ObjectIdentifier{1, 2, 250, 1, 71, 1, 2, 2}

var (
	oidC     = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidO     = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU    = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidCN    = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidSN    = asn1.ObjectIdentifier{2, 5, 4, 4}
	oidGN    = asn1.ObjectIdentifier{2, 5, 4, 42}
	oidTitle = asn1.ObjectIdentifier{2, 5, 4, 12}
)

// CA names (identity.md §1.1). The test FORT PERSONNES name is inferred
// by analogy with the observed test ELEMENTAIRE CA names.
const (
	TestRootCN         = "TEST AC RACINE IGC-SANTE FORT"
	TestIntermediateCN = "TEST AC IGC-SANTE FORT PERSONNES"
	ProdRootCN         = "AC RACINE IGC-SANTE FORT"
	ProdIntermediateCN = "AC IGC-SANTE FORT PERSONNES"
)

// CardTypeEncoding selects how Holder.CardType is written in the extension.
type CardTypeEncoding int

const (
	// CardTypeInteger writes a DER INTEGER (02 01 0n).
	CardTypeInteger CardTypeEncoding = iota
	// CardTypeEnumerated writes a DER ENUMERATED (0A 01 0n).
	CardTypeEnumerated
	// CardTypeOctetString writes an OCTET STRING of one byte (04 01 0n).
	CardTypeOctetString
)

// Holder describes a card holder and how to shape the certificates.
type Holder struct {
	Name       string // short key, e.g. "medecin"
	FamilyName string // SN
	GivenName  string // GN
	NationalID string // CN, identity.md §1.4
	Title      string // profession label; "" for no title attribute
	// OU lists subject OU values placed before the title (structure id with
	// its TRE_G07 prefix for staff cards).
	OU []string
	// CardType is CPS, CPF, CPE or CPA; "" leaves the extension out.
	CardType         string
	CardTypeEncoding CardTypeEncoding
	// Policies are added as certificatePolicies to both certificates.
	Policies []asn1.ObjectIdentifier
	// OCSPServers are added to both certificates as OCSP responder URLs
	// (authority information access), e.g. an OCSPResponder's URL.
	OCSPServers []string
}

var cardTypeCodes = map[string]byte{"CPS": 0, "CPF": 1, "CPE": 2, "CPA": 3}

// Holders returns ready-made test identities keyed by Holder.Name:
//   - "medecin": CPS, Médecin, RPPS 99700367917 (valid Luhn);
//   - "infirmier": CPS, Infirmier, ADELI 759912348;
//   - "cpe": staff card of FINESS 990000010 (CN 3<FINESS>/<internal id>,
//     OU 1<FINESS>, title "Carte de service santé ou social").
//
// All identifiers are fictitious (RPPS test range 997…, FINESS department 99).
func Holders() map[string]Holder {
	return map[string]Holder{
		"medecin": {
			Name: "medecin", FamilyName: "DOC0036791", GivenName: "KIT",
			NationalID: "899700367917", Title: "Médecin", CardType: "CPS",
		},
		"infirmier": {
			Name: "infirmier", FamilyName: "INF0091234", GivenName: "ANNE",
			NationalID: "0759912348", Title: "Infirmier", CardType: "CPS",
		},
		"cpe": {
			Name: "cpe", FamilyName: "EMPLOYE0000001", GivenName: "LUC",
			NationalID: "3990000010/CPET00001", Title: "Carte de service santé ou social",
			OU: []string{"1990000010"}, CardType: "CPE",
		},
	}
}

// Options configures New.
type Options struct {
	// Rand provides serial numbers (and CA keys when Go honours it); nil
	// means crypto/rand.
	Rand io.Reader
	// RootKey and IntermediateKey are used when set instead of generating
	// RSA-2048 keys (about 0.1 s each).
	RootKey, IntermediateKey *rsa.PrivateKey
	// Production drops the test markers (TEST prefix, OU=IGC-SANTE TEST)
	// from the CA names, to exercise test-card policies.
	Production bool
	// NotBefore and NotAfter bound the CA validity; zero values mean
	// 2020-01-01 and 2049-12-31.
	NotBefore, NotAfter time.Time
}

// PKI is a root and one intermediate ("FORT PERSONNES") CA.
type PKI struct {
	Root, Intermediate       *x509.Certificate
	RootKey, IntermediateKey *rsa.PrivateKey
	rand                     io.Reader
}

// NewPKI creates a test PKI with fresh CA keys. rnd may be nil.
func NewPKI(rnd io.Reader) (*PKI, error) { return New(Options{Rand: rnd}) }

// New creates a PKI as configured by o.
func New(o Options) (*PKI, error) {
	rnd := o.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	nb, na := o.NotBefore, o.NotAfter
	if nb.IsZero() {
		nb = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if na.IsZero() {
		na = time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC)
	}
	var err error
	p := &PKI{RootKey: o.RootKey, IntermediateKey: o.IntermediateKey, rand: rnd}
	if p.RootKey == nil {
		if p.RootKey, err = rsa.GenerateKey(rnd, 2048); err != nil {
			return nil, fmt.Errorf("generating root key: %w", err)
		}
	}
	if p.IntermediateKey == nil {
		if p.IntermediateKey, err = rsa.GenerateKey(rnd, 2048); err != nil {
			return nil, fmt.Errorf("generating intermediate key: %w", err)
		}
	}
	rootCN, interCN, ou := TestRootCN, TestIntermediateCN, "IGC-SANTE TEST"
	if o.Production {
		rootCN, interCN, ou = ProdRootCN, ProdIntermediateCN, "IGC-SANTE"
	}

	rootTmpl, err := p.caTemplate(rootCN, ou, nb, na)
	if err != nil {
		return nil, err
	}
	rootTmpl.MaxPathLen = 1
	if p.Root, err = create(rootTmpl, rootTmpl, &p.RootKey.PublicKey, p.RootKey, rnd); err != nil {
		return nil, fmt.Errorf("creating root: %w", err)
	}
	interTmpl, err := p.caTemplate(interCN, ou, nb, na)
	if err != nil {
		return nil, err
	}
	interTmpl.MaxPathLenZero = true
	if p.Intermediate, err = create(interTmpl, p.Root, &p.IntermediateKey.PublicKey, p.RootKey, rnd); err != nil {
		return nil, fmt.Errorf("creating intermediate: %w", err)
	}
	return p, nil
}

func (p *PKI) caTemplate(cn, ou string, nb, na time.Time) (*x509.Certificate, error) {
	// Separate RDNs: pkix.Name would merge the two OUs into one
	// multi-valued RDN.
	subject, err := asn1.Marshal(pkix.RDNSequence{
		{{Type: oidC, Value: "FR"}},
		{{Type: oidO, Value: utf8("ASIP-SANTE")}},
		{{Type: oidOU, Value: utf8("0002 187512751")}},
		{{Type: oidOU, Value: utf8(ou)}},
		{{Type: oidCN, Value: utf8(cn)}},
	})
	if err != nil {
		return nil, err
	}
	serial, err := p.serial()
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		RawSubject:            subject,
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil
}

func utf8(s string) asn1.RawValue {
	return asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte(s)}
}

func (p *PKI) serial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(p.rand, b); err != nil {
		return nil, fmt.Errorf("reading serial number: %w", err)
	}
	b[0] &= 0x7f
	b[0] |= 0x01 // never zero, never negative
	return new(big.Int).SetBytes(b), nil
}

func create(tmpl, parent *x509.Certificate, pub *rsa.PublicKey, priv *rsa.PrivateKey, rnd io.Reader) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rnd, tmpl, parent, pub, priv)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// HolderSubject returns the DER subject of h: C=FR, [OU…], [title], and one
// multi-valued RDN {SN+GN+CN}. Strings are UTF8String, C is PrintableString.
func HolderSubject(h Holder) ([]byte, error) {
	if h.NationalID == "" {
		return nil, errors.New("cpstest: holder has no national id")
	}
	seq := pkix.RDNSequence{{{Type: oidC, Value: "FR"}}}
	for _, ou := range h.OU {
		seq = append(seq, pkix.RelativeDistinguishedNameSET{{Type: oidOU, Value: utf8(ou)}})
	}
	if h.Title != "" {
		seq = append(seq, pkix.RelativeDistinguishedNameSET{{Type: oidTitle, Value: utf8(h.Title)}})
	}
	var multi pkix.RelativeDistinguishedNameSET
	if h.FamilyName != "" {
		multi = append(multi, pkix.AttributeTypeAndValue{Type: oidSN, Value: utf8(h.FamilyName)})
	}
	if h.GivenName != "" {
		multi = append(multi, pkix.AttributeTypeAndValue{Type: oidGN, Value: utf8(h.GivenName)})
	}
	multi = append(multi, pkix.AttributeTypeAndValue{Type: oidCN, Value: utf8(h.NationalID)})
	seq = append(seq, multi)
	return asn1.Marshal(seq) // encoding/asn1 sorts the SET OF (DER)
}

// CardTypeExtension returns the card-type extension for h, or false when
// h.CardType is empty.
func CardTypeExtension(h Holder) (pkix.Extension, bool, error) {
	if h.CardType == "" {
		return pkix.Extension{}, false, nil
	}
	code, ok := cardTypeCodes[h.CardType]
	if !ok {
		return pkix.Extension{}, false, fmt.Errorf("cpstest: unknown card type %q", h.CardType)
	}
	tag := map[CardTypeEncoding]byte{CardTypeInteger: 0x02, CardTypeEnumerated: 0x0a, CardTypeOctetString: 0x04}[h.CardTypeEncoding]
	if tag == 0 {
		return pkix.Extension{}, false, fmt.Errorf("cpstest: unknown card type encoding %d", h.CardTypeEncoding)
	}
	return pkix.Extension{Id: OIDCardType, Value: []byte{tag, 1, code}}, true, nil
}

// Issue creates the authentication and signature certificates of h, issued
// by the intermediate CA:
//   - authentication: keyUsage digitalSignature|keyEncipherment, EKU clientAuth;
//   - signature: keyUsage nonRepudiation (contentCommitment), no EKU.
//
// Both carry the card-type extension (unless h.CardType is empty), and
// h.Policies and h.OCSPServers when set.
func (p *PKI) Issue(h Holder, authKey, signKey *rsa.PublicKey, notBefore, notAfter time.Time) (authCert, signCert *x509.Certificate, err error) {
	if authKey == nil || signKey == nil {
		return nil, nil, errors.New("cpstest: Issue needs both public keys")
	}
	subject, err := HolderSubject(h)
	if err != nil {
		return nil, nil, err
	}
	var exts []pkix.Extension
	if ext, ok, err := CardTypeExtension(h); err != nil {
		return nil, nil, err
	} else if ok {
		exts = append(exts, ext)
	}
	var policies []x509.OID
	for _, o := range h.Policies {
		ints := make([]uint64, len(o))
		for i, v := range o {
			ints[i] = uint64(v)
		}
		oid, err := x509.OIDFromInts(ints)
		if err != nil {
			return nil, nil, fmt.Errorf("cpstest: policy %v: %w", o, err)
		}
		policies = append(policies, oid)
	}
	tmpl := func(ku x509.KeyUsage, eku []x509.ExtKeyUsage) (*x509.Certificate, error) {
		serial, err := p.serial()
		if err != nil {
			return nil, err
		}
		return &x509.Certificate{
			SerialNumber:          serial,
			RawSubject:            subject,
			NotBefore:             notBefore,
			NotAfter:              notAfter,
			KeyUsage:              ku,
			ExtKeyUsage:           eku,
			BasicConstraintsValid: true,
			ExtraExtensions:       exts,
			Policies:              policies,
			OCSPServer:            h.OCSPServers,
		}, nil
	}
	at, err := tmpl(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	if err != nil {
		return nil, nil, err
	}
	if authCert, err = create(at, p.Intermediate, authKey, p.IntermediateKey, p.rand); err != nil {
		return nil, nil, fmt.Errorf("creating authentication certificate: %w", err)
	}
	st, err := tmpl(x509.KeyUsageContentCommitment, nil)
	if err != nil {
		return nil, nil, err
	}
	if signCert, err = create(st, p.Intermediate, signKey, p.IntermediateKey, p.rand); err != nil {
		return nil, nil, fmt.Errorf("creating signature certificate: %w", err)
	}
	return authCert, signCert, nil
}

// Chain returns the CA certificates, intermediate first.
func (p *PKI) Chain() []*x509.Certificate { return []*x509.Certificate{p.Intermediate, p.Root} }

// Roots returns a pool holding the root.
func (p *PKI) Roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.Root)
	return pool
}

// Intermediates returns a pool holding the intermediate.
func (p *PKI) Intermediates() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.Intermediate)
	return pool
}

// ChainPEM returns root then intermediate as PEM, the shape of a CAfile.
func (p *PKI) ChainPEM() []byte {
	var b bytes.Buffer
	for _, c := range []*x509.Certificate{p.Root, p.Intermediate} {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// WriteChainPEM writes ChainPEM to path (mode 0644).
func (p *PKI) WriteChainPEM(path string) error {
	return os.WriteFile(path, p.ChainPEM(), 0o644)
}

// CertPEM encodes certificates as PEM.
func CertPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}
