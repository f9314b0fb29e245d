// Package cades builds detached CAdES-BES signatures (CMS SignedData,
// RFC 5652 + ETSI EN 319 122-1 baseline B attributes) whose signature value
// is computed by an external signer: the CPS card.
//
// # Why not a CMS library
//
// The Go CMS/PKCS#7 libraries (smallstep/pkcs7 and its forks, digitorus/pkcs7,
// github.com/github/smimesign/ietf-cms) sign through a crypto.Signer, which
// receives a *digest*. The CPS signature key is used through IAS-ECC
// "PSO: COMPUTE DIGITAL SIGNATURE" with the card finishing the hash itself:
// the host must send the last bytes of the message (or an intermediate hash
// state), never a finished digest. The card layer therefore needs the full
// bytes to be signed, i.e. the DER encoding of the SignedAttributes SET. This
// package produces exactly those bytes (SignedAttributes), hands them to a
// SignFunc, and assembles the SignedData around the returned value; the
// ASN.1 is written by hand with golang.org/x/crypto/cryptobyte so that the
// signed bytes are DER by construction (SET OF sorted) and byte-identical to
// what is embedded.
//
// # Choices
//
//   - SignerInfo version 1 with issuerAndSerialNumber; SignedData version 1.
//   - digestAlgorithm sha256 with absent parameters (RFC 5754 §2).
//   - signatureAlgorithm rsaEncryption with NULL parameters for RSA keys: RFC
//     3370 §3.2 makes it the identifier every CMS implementation MUST accept
//     (sha256WithRSAEncryption is only MAY). It is what `openssl cms -sign`
//     emits, and EU DSS, BouncyCastle and smallstep/pkcs7 accept both.
//     ECDSA keys get ecdsa-with-SHA256.
//   - Signed attributes: content-type (id-data), message-digest, signing-time
//     (UTCTime for 1950–2049, GeneralizedTime otherwise, as RFC 5652 §11.3
//     requires), signing-certificate-v2 (RFC 5035; ESSCertIDv2 with the
//     default SHA-256 algorithm omitted, as DER requires, and issuerSerial).
//   - certificates [0]: the signer certificate plus the given chain, without
//     duplicates, sorted as a DER SET OF.
//   - Detached: encapContentInfo has no eContent.
package cades

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// SignFunc signs toBeSigned (the DER SignedAttributes SET) with the card
// signature key: RSA PKCS#1 v1.5 over SHA-256(toBeSigned). It returns the
// raw signature value.
type SignFunc func(ctx context.Context, toBeSigned []byte) ([]byte, error)

// Errors.
var (
	ErrDigest            = errors.New("cades: document digest must be a 32-byte SHA-256")
	ErrCertificate       = errors.New("cades: missing or unsupported signer certificate")
	ErrSigningTime       = errors.New("cades: signing time cannot be encoded")
	ErrSignedAttributes  = errors.New("cades: malformed signed attributes")
	ErrSigner            = errors.New("cades: signer failed")
	ErrSignatureMismatch = errors.New("cades: signature does not verify with the signer certificate")
)

// OIDs used in the structure.
var (
	OIDData                 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	OIDSignedData           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	OIDContentType          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	OIDMessageDigest        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	OIDSigningTime          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	OIDSigningCertificateV2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}
	OIDSHA256               = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	OIDRSAEncryption        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	OIDECDSAWithSHA256      = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
)

var tagContext0 = casn1.Tag(0).ContextSpecific().Constructed()

// SignedAttributes returns the DER SignedAttributes SET (tag 0x31) for a
// document whose SHA-256 is digest: exactly the bytes the card must sign.
func SignedAttributes(digest []byte, cert *x509.Certificate, signingTime time.Time) ([]byte, error) {
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("%w: got %d bytes", ErrDigest, len(digest))
	}
	if cert == nil || len(cert.Raw) == 0 || len(cert.RawIssuer) == 0 || cert.SerialNumber == nil {
		return nil, ErrCertificate
	}
	t := signingTime.UTC().Truncate(time.Second)
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("%w: year %d", ErrSigningTime, y)
	}
	certHash := sha256.Sum256(cert.Raw)

	attrs := [][]byte{
		attribute(OIDContentType, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(OIDData)
		}),
		attribute(OIDMessageDigest, func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(digest)
		}),
		attribute(OIDSigningTime, func(b *cryptobyte.Builder) {
			if y := t.Year(); y >= 1950 && y < 2050 {
				b.AddASN1UTCTime(t)
			} else {
				b.AddASN1GeneralizedTime(t)
			}
		}),
		// SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies OPTIONAL }
		// ESSCertIDv2 ::= SEQUENCE { hashAlgorithm DEFAULT sha256, certHash OCTET STRING, issuerSerial IssuerSerial OPTIONAL }
		// IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber INTEGER }
		attribute(OIDSigningCertificateV2, func(b *cryptobyte.Builder) {
			b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1OctetString(certHash[:])
						b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // GeneralNames
								// directoryName [4] EXPLICIT Name
								b.AddASN1(casn1.Tag(4).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
									b.AddBytes(cert.RawIssuer)
								})
							})
							b.AddASN1BigInt(cert.SerialNumber)
						})
					})
				})
			})
		}),
	}
	for _, a := range attrs {
		if a == nil {
			return nil, fmt.Errorf("%w: encoding failed", ErrSigningTime)
		}
	}
	return derSet(attrs)
}

// attribute encodes Attribute ::= SEQUENCE { attrType OID, attrValues SET OF value }
// with a single value. It returns nil if the builder failed.
func attribute(oid asn1.ObjectIdentifier, value cryptobyte.BuilderContinuation) []byte {
	var b cryptobyte.Builder
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(casn1.SET, value)
	})
	out, err := b.Bytes()
	if err != nil {
		return nil
	}
	return out
}

// derSet encodes a SET OF from already encoded elements, sorted as X.690
// §11.6 requires for DER.
func derSet(elems [][]byte) ([]byte, error) {
	sorted := slices.Clone(elems)
	slices.SortFunc(sorted, bytes.Compare)
	var b cryptobyte.Builder
	b.AddASN1(casn1.SET, func(b *cryptobyte.Builder) {
		for _, e := range sorted {
			b.AddBytes(e)
		}
	})
	return b.Bytes()
}

// BuildDetached builds a detached CAdES-BES SignedData for the document
// whose SHA-256 is digest. sign receives SignedAttributes(digest, cert,
// signingTime) and must return the signature value; the value is checked
// against cert before the ContentInfo (DER) is returned. chain may hold the
// intermediate and root certificates; it is optional.
func BuildDetached(ctx context.Context, digest []byte, cert *x509.Certificate, chain []*x509.Certificate, signingTime time.Time, sign SignFunc) ([]byte, error) {
	tbs, err := SignedAttributes(digest, cert, signingTime)
	if err != nil {
		return nil, err
	}
	if sign == nil {
		return nil, fmt.Errorf("%w: no SignFunc", ErrSigner)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sig, err := sign(ctx, tbs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSigner, err)
	}
	return AssembleDetached(tbs, sig, cert, chain)
}

// AssembleDetached wraps a signature made elsewhere over signedAttrs (the
// output of SignedAttributes) into a detached SignedData ContentInfo. The
// signature is verified against cert first.
func AssembleDetached(signedAttrs, signature []byte, cert *x509.Certificate, chain []*x509.Certificate) ([]byte, error) {
	if cert == nil || len(cert.Raw) == 0 {
		return nil, ErrCertificate
	}
	s := cryptobyte.String(signedAttrs)
	var attrContents cryptobyte.String
	if !s.ReadASN1(&attrContents, casn1.SET) || !s.Empty() {
		return nil, ErrSignedAttributes
	}
	var sigAlg x509.SignatureAlgorithm
	var sigAlgOID asn1.ObjectIdentifier
	rsaNull := false
	switch cert.PublicKey.(type) {
	case *rsa.PublicKey:
		sigAlg, sigAlgOID, rsaNull = x509.SHA256WithRSA, OIDRSAEncryption, true
	case *ecdsa.PublicKey:
		sigAlg, sigAlgOID = x509.ECDSAWithSHA256, OIDECDSAWithSHA256
	default:
		return nil, fmt.Errorf("%w: public key type %T", ErrCertificate, cert.PublicKey)
	}
	if err := cert.CheckSignature(sigAlg, signedAttrs, signature); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignatureMismatch, err)
	}

	certs := [][]byte{cert.Raw}
	for _, c := range chain {
		if c != nil && !slices.ContainsFunc(certs, func(d []byte) bool { return bytes.Equal(d, c.Raw) }) {
			certs = append(certs, c.Raw)
		}
	}
	slices.SortFunc(certs, bytes.Compare)

	var b cryptobyte.Builder
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		b.AddASN1ObjectIdentifier(OIDSignedData)
		b.AddASN1(tagContext0, func(b *cryptobyte.Builder) {
			b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
				b.AddASN1Int64(1)
				b.AddASN1(casn1.SET, func(b *cryptobyte.Builder) {
					addAlgorithm(b, OIDSHA256, false)
				})
				b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // EncapsulatedContentInfo, detached
					b.AddASN1ObjectIdentifier(OIDData)
				})
				b.AddASN1(tagContext0, func(b *cryptobyte.Builder) { // certificates [0] IMPLICIT SET OF
					for _, c := range certs {
						b.AddBytes(c)
					}
				})
				b.AddASN1(casn1.SET, func(b *cryptobyte.Builder) { // signerInfos
					b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
						b.AddASN1Int64(1)
						b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // IssuerAndSerialNumber
							b.AddBytes(cert.RawIssuer)
							b.AddASN1BigInt(cert.SerialNumber)
						})
						addAlgorithm(b, OIDSHA256, false)
						b.AddASN1(tagContext0, func(b *cryptobyte.Builder) { // signedAttrs [0] IMPLICIT
							b.AddBytes(attrContents)
						})
						addAlgorithm(b, sigAlgOID, rsaNull)
						b.AddASN1OctetString(signature)
					})
				})
			})
		})
	})
	return b.Bytes()
}

func addAlgorithm(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, withNull bool) {
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if withNull {
			b.AddASN1NULL()
		}
	})
}
