package cpsverify

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"crypto/x509"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// A minimal, DER-strict CMS SignedData parser (RFC 5652) written with
// cryptobyte. It keeps the exact bytes of the signed attributes, which is
// what the signature covers.

var (
	oidSignedData           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidData                 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidContentType          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSigningTime          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidSigningCertificate   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 12}
	oidSigningCertificateV2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}
	oidSHA1                 = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256               = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384               = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512               = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	oidRSAEncryption        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256WithRSA        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidECDSAWithSHA256      = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384      = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512      = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
)

var (
	tagCtx0Cons = casn1.Tag(0).ContextSpecific().Constructed()
	tagCtx1Cons = casn1.Tag(1).ContextSpecific().Constructed()
	tagCtx0Prim = casn1.Tag(0).ContextSpecific()
	tagCtx4Cons = casn1.Tag(4).ContextSpecific().Constructed()
)

// maxCMSCertificates bounds the certificates accepted in one SignedData.
const maxCMSCertificates = 100

type signedData struct {
	version      int64
	digestAlgs   []asn1.ObjectIdentifier
	eContentType asn1.ObjectIdentifier
	hasEContent  bool
	certs        []*x509.Certificate
	signers      []signerInfo
}

type signerInfo struct {
	version     int64
	issuer      []byte   // full DER Name (version 1)
	serial      *big.Int // version 1
	ski         []byte   // version 3
	digestAlg   asn1.ObjectIdentifier
	signedAttrs []byte // DER SET (tag 0x31): the signed bytes; nil if absent
	attrs       []cmsAttribute
	sigAlg      asn1.ObjectIdentifier
	signature   []byte
}

type cmsAttribute struct {
	oid    asn1.ObjectIdentifier
	values []cryptobyte.String // each a full TLV
}

var errCMS = errors.New("malformed CMS")

func cmsErr(what string) error { return fmt.Errorf("%w: %w: %s", ErrFormat, errCMS, what) }

// parseSignedData parses a DER ContentInfo holding a SignedData.
func parseSignedData(der []byte) (*signedData, error) {
	in := cryptobyte.String(der)
	var ci, explicit, sd cryptobyte.String
	var ct asn1.ObjectIdentifier
	if !in.ReadASN1(&ci, casn1.SEQUENCE) || !in.Empty() {
		return nil, cmsErr("ContentInfo")
	}
	if !ci.ReadASN1ObjectIdentifier(&ct) || !ct.Equal(oidSignedData) {
		return nil, cmsErr("content type is not signedData")
	}
	if !ci.ReadASN1(&explicit, tagCtx0Cons) || !ci.Empty() || !explicit.ReadASN1(&sd, casn1.SEQUENCE) || !explicit.Empty() {
		return nil, cmsErr("SignedData")
	}
	out := &signedData{}
	var algs, encap cryptobyte.String
	if !sd.ReadASN1Integer(&out.version) || !sd.ReadASN1(&algs, casn1.SET) {
		return nil, cmsErr("SignedData version/digestAlgorithms")
	}
	for !algs.Empty() {
		oid, err := readAlgorithm(&algs)
		if err != nil {
			return nil, err
		}
		out.digestAlgs = append(out.digestAlgs, oid)
	}
	if !sd.ReadASN1(&encap, casn1.SEQUENCE) || !encap.ReadASN1ObjectIdentifier(&out.eContentType) {
		return nil, cmsErr("encapContentInfo")
	}
	if !encap.Empty() {
		var content cryptobyte.String
		if !encap.ReadASN1(&content, tagCtx0Cons) || !encap.Empty() {
			return nil, cmsErr("eContent")
		}
		out.hasEContent = true
	}
	var certs cryptobyte.String
	var hasCerts bool
	if !sd.ReadOptionalASN1(&certs, &hasCerts, tagCtx0Cons) {
		return nil, cmsErr("certificates")
	}
	for !certs.Empty() {
		var elem cryptobyte.String
		var tag casn1.Tag
		if !certs.ReadAnyASN1Element(&elem, &tag) {
			return nil, cmsErr("certificate element")
		}
		if tag != casn1.SEQUENCE { // other CertificateChoices are ignored
			continue
		}
		if len(out.certs) == maxCMSCertificates {
			return nil, cmsErr("too many certificates")
		}
		c, err := x509.ParseCertificate(elem)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCertificateMalformed, err)
		}
		out.certs = append(out.certs, c)
	}
	if !sd.SkipOptionalASN1(tagCtx1Cons) { // crls
		return nil, cmsErr("crls")
	}
	var signers cryptobyte.String
	if !sd.ReadASN1(&signers, casn1.SET) || !sd.Empty() {
		return nil, cmsErr("signerInfos")
	}
	for !signers.Empty() {
		var si cryptobyte.String
		if !signers.ReadASN1(&si, casn1.SEQUENCE) {
			return nil, cmsErr("SignerInfo")
		}
		s, err := parseSignerInfo(si)
		if err != nil {
			return nil, err
		}
		out.signers = append(out.signers, s)
	}
	return out, nil
}

// readAlgorithm reads an AlgorithmIdentifier and returns its OID; the
// parameters are skipped.
func readAlgorithm(s *cryptobyte.String) (asn1.ObjectIdentifier, error) {
	var alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&alg, casn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return nil, cmsErr("AlgorithmIdentifier")
	}
	if !alg.Empty() {
		var tag casn1.Tag
		var params cryptobyte.String
		if !alg.ReadAnyASN1Element(&params, &tag) || !alg.Empty() {
			return nil, cmsErr("AlgorithmIdentifier parameters")
		}
	}
	return oid, nil
}

func parseSignerInfo(si cryptobyte.String) (signerInfo, error) {
	var s signerInfo
	if !si.ReadASN1Integer(&s.version) {
		return s, cmsErr("SignerInfo version")
	}
	switch {
	case si.PeekASN1Tag(casn1.SEQUENCE):
		var ias, issuer cryptobyte.String
		s.serial = new(big.Int)
		if !si.ReadASN1(&ias, casn1.SEQUENCE) || !ias.ReadASN1Element(&issuer, casn1.SEQUENCE) ||
			!ias.ReadASN1Integer(s.serial) || !ias.Empty() {
			return s, cmsErr("issuerAndSerialNumber")
		}
		s.issuer = issuer
	case si.PeekASN1Tag(tagCtx0Prim):
		var ski cryptobyte.String
		if !si.ReadASN1(&ski, tagCtx0Prim) {
			return s, cmsErr("subjectKeyIdentifier")
		}
		s.ski = ski
	default:
		return s, cmsErr("SignerIdentifier")
	}
	var err error
	if s.digestAlg, err = readAlgorithm(&si); err != nil {
		return s, err
	}
	var attrs cryptobyte.String
	var hasAttrs bool
	if !si.ReadOptionalASN1(&attrs, &hasAttrs, tagCtx0Cons) {
		return s, cmsErr("signedAttrs")
	}
	if hasAttrs {
		// The signature covers the attributes with a SET tag (RFC 5652
		// §5.4). cryptobyte only accepts minimal DER lengths, so
		// re-adding the header reproduces the received bytes.
		var b cryptobyte.Builder
		b.AddASN1(casn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(attrs) })
		if s.signedAttrs, err = b.Bytes(); err != nil {
			return s, cmsErr("signedAttrs")
		}
		for !attrs.Empty() {
			var attr, vals cryptobyte.String
			var a cmsAttribute
			if !attrs.ReadASN1(&attr, casn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&a.oid) ||
				!attr.ReadASN1(&vals, casn1.SET) || !attr.Empty() {
				return s, cmsErr("Attribute")
			}
			for !vals.Empty() {
				var v cryptobyte.String
				var tag casn1.Tag
				if !vals.ReadAnyASN1Element(&v, &tag) {
					return s, cmsErr("AttributeValue")
				}
				a.values = append(a.values, v)
			}
			s.attrs = append(s.attrs, a)
		}
	}
	if s.sigAlg, err = readAlgorithm(&si); err != nil {
		return s, err
	}
	var sig cryptobyte.String
	if !si.ReadASN1(&sig, casn1.OCTET_STRING) {
		return s, cmsErr("signature")
	}
	s.signature = sig
	if !si.SkipOptionalASN1(tagCtx1Cons) || !si.Empty() { // unsignedAttrs
		return s, cmsErr("unsignedAttrs")
	}
	return s, nil
}

// attribute returns the single value of the attribute oid. present is false
// when absent; err is set for duplicate attributes or several values.
func (s *signerInfo) attribute(oid asn1.ObjectIdentifier) (value cryptobyte.String, present bool, err error) {
	for _, a := range s.attrs {
		if !a.oid.Equal(oid) {
			continue
		}
		if present {
			return nil, true, cmsErr("duplicate attribute " + oid.String())
		}
		if len(a.values) != 1 {
			return nil, true, cmsErr("attribute " + oid.String() + " must have exactly one value")
		}
		value, present = a.values[0], true
	}
	return value, present, nil
}

// parseTime reads a UTCTime or GeneralizedTime.
func parseTime(v cryptobyte.String) (time.Time, error) {
	var t time.Time
	switch {
	case v.PeekASN1Tag(casn1.UTCTime):
		if !v.ReadASN1UTCTime(&t) || !v.Empty() {
			return t, cmsErr("signing-time UTCTime")
		}
	case v.PeekASN1Tag(casn1.GeneralizedTime):
		if !v.ReadASN1GeneralizedTime(&t) || !v.Empty() {
			return t, cmsErr("signing-time GeneralizedTime")
		}
	default:
		return t, cmsErr("signing-time type")
	}
	return t, nil
}

// essCertID is the first ESSCertID(v2) of a signing-certificate(-v2)
// attribute.
type essCertID struct {
	hashAlg      asn1.ObjectIdentifier
	certHash     []byte
	issuerNames  [][]byte // directoryName values (DER Name)
	serial       *big.Int // nil when issuerSerial is absent
	otherIssuers bool     // GeneralNames other than directoryName
}

// parseSigningCertificate parses SigningCertificate (v1, RFC 2634) or
// SigningCertificateV2 (RFC 5035) and returns the first certificate id.
func parseSigningCertificate(v cryptobyte.String, v2 bool) (essCertID, error) {
	var id essCertID
	var sc, ids, first cryptobyte.String
	if !v.ReadASN1(&sc, casn1.SEQUENCE) || !v.Empty() || !sc.ReadASN1(&ids, casn1.SEQUENCE) ||
		!ids.ReadASN1(&first, casn1.SEQUENCE) {
		return id, cmsErr("SigningCertificate")
	}
	// Remaining ESSCertIDs and policies are ignored: the first one must be
	// the signer's (RFC 5035 §3).
	id.hashAlg = oidSHA1
	if v2 {
		id.hashAlg = oidSHA256
		if first.PeekASN1Tag(casn1.SEQUENCE) {
			oid, err := readAlgorithm(&first)
			if err != nil {
				return id, err
			}
			id.hashAlg = oid
		}
	}
	var hash cryptobyte.String
	if !first.ReadASN1(&hash, casn1.OCTET_STRING) {
		return id, cmsErr("ESSCertID certHash")
	}
	id.certHash = hash
	if first.Empty() {
		return id, nil
	}
	var is, names cryptobyte.String
	id.serial = new(big.Int)
	if !first.ReadASN1(&is, casn1.SEQUENCE) || !first.Empty() || !is.ReadASN1(&names, casn1.SEQUENCE) ||
		!is.ReadASN1Integer(id.serial) || !is.Empty() {
		return id, cmsErr("ESSCertID issuerSerial")
	}
	for !names.Empty() {
		var gn cryptobyte.String
		var tag casn1.Tag
		if !names.ReadAnyASN1Element(&gn, &tag) {
			return id, cmsErr("GeneralName")
		}
		if tag != tagCtx4Cons {
			id.otherIssuers = true
			continue
		}
		var body, name cryptobyte.String
		if !gn.ReadASN1(&body, tagCtx4Cons) || !body.ReadASN1Element(&name, casn1.SEQUENCE) || !body.Empty() {
			return id, cmsErr("directoryName")
		}
		id.issuerNames = append(id.issuerNames, name)
	}
	return id, nil
}

func (id essCertID) matchesIssuer(cert *x509.Certificate) bool {
	if id.serial == nil {
		return true
	}
	if id.serial.Cmp(cert.SerialNumber) != 0 {
		return false
	}
	for _, n := range id.issuerNames {
		if bytes.Equal(n, cert.RawIssuer) {
			return true
		}
	}
	return false
}
