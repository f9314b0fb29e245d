package cpsverify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// MaxOCSPSize bounds an OCSP response read by HTTPOCSPQuery by default (a
// response is a few kilobytes, with the responder's certificate).
const MaxOCSPSize = 64 << 10

// DefaultOCSPTimeout bounds one OCSP query when OCSPChecker.Timeout is
// zero, and is the timeout of HTTPOCSPQuery's default client.
const DefaultOCSPTimeout = 5 * time.Second

// DefaultOCSPClockSkew is the clock difference with the responder that
// OCSPChecker tolerates when ClockSkew is zero (OpenSSL's default too).
const DefaultOCSPClockSkew = 5 * time.Minute

// DefaultOCSPMaxAge bounds the age (now − thisUpdate) of a response
// without nextUpdate when OCSPChecker.MaxAge is zero: such a response
// says the responder always has newer information.
const DefaultOCSPMaxAge = time.Hour

// maxOCSPGetURL is the longest URL sent with GET; longer requests are
// POSTed (RFC 5019 §5).
const maxOCSPGetURL = 255

// maxOCSPCache bounds the responses OCSPChecker keeps.
const maxOCSPCache = 10000

// oidOCSPNonce is id-pkix-ocsp-nonce (RFC 8954).
var oidOCSPNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}

// HTTPOCSPQuery returns an OCSPChecker.Query function that sends a DER
// OCSP request to an http:// or https:// responder (RFC 6960 appendix A):
// with GET when the URL, with the base64 request appended, is at most 255
// bytes (answers a cache can serve, RFC 5019), else with POST. It uses
// client (nil: a client with a DefaultOCSPTimeout timeout), requires a
// 200 answer and refuses bodies over maxSize bytes (0 or less:
// MaxOCSPSize).
func HTTPOCSPQuery(client *http.Client, maxSize int64) func(ctx context.Context, url string, request []byte) ([]byte, error) {
	if client == nil {
		client = &http.Client{Timeout: DefaultOCSPTimeout}
	}
	if maxSize <= 0 {
		maxSize = MaxOCSPSize
	}
	return func(ctx context.Context, responder string, request []byte) ([]byte, error) {
		if lower := strings.ToLower(responder); !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
			return nil, errors.New("cpsverify: only http and https OCSP responders are asked")
		}
		var req *http.Request
		var err error
		get := strings.TrimSuffix(responder, "/") + "/" + url.QueryEscape(base64.StdEncoding.EncodeToString(request))
		if len(get) <= maxOCSPGetURL {
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, get, nil)
		} else {
			req, err = http.NewRequestWithContext(ctx, http.MethodPost, responder, bytes.NewReader(request))
			if err == nil {
				req.Header.Set("Content-Type", "application/ocsp-request")
			}
		}
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/ocsp-response")
		return readHTTP(client, req, maxSize, "OCSP response")
	}
}

// OCSPChecker is a RevocationChecker asking OCSP responders (RFC 6960).
// For a certificate it asks the responders named in the certificate's
// authority information access extension in turn (or ResponderURL), for
// the certificate identified by the SHA-1 hashes of its issuer's name and
// key and its serial number, and accepts an answer that:
//
//   - is a successful basic OCSP response (an error answer such as
//     tryLater or unauthorized is not);
//   - is signed by the issuer itself, or by a delegated responder whose
//     certificate, sent in the response, is issued by the issuer, carries
//     the id-kp-OCSPSigning extended key usage and is valid at now; the
//     responder ID names that signer;
//   - is about this certificate: same serial number and issuer hashes;
//   - is current: thisUpdate not after now (+ ClockSkew), nextUpdate not
//     before now (− ClockSkew), thisUpdate not older than MaxAge when set
//     (DefaultOCSPMaxAge when the response has no nextUpdate);
//   - carries back the nonce sent, when Nonce is set;
//   - has no critical extension it cannot process.
//
// "good" then means not revoked; "revoked" gives a *RevokedError with the
// revocation time and reason (certificateHold included); "unknown", or no
// acceptable answer, gives ErrRevocationUnknown (fail closed unless
// Verifier.RevocationSoftFail). A certificate without responder gives
// ErrOCSPNoResponder, which leaves an intermediate CA unchecked.
//
// Nothing is asked unless Query is set (HTTPOCSPQuery): network access
// is opt-in. Answers are kept until their nextUpdate, so a login does not
// wait for the responder each time. The responder's own certificate is
// not checked for revocation (RFC 6960 id-pkix-ocsp-nocheck).
//
// The zero value checks nothing (ErrOCSPNoResponder). Set the fields
// before first use; do not copy after use.
type OCSPChecker struct {
	// Query sends a DER OCSP request to a responder URL and returns its
	// DER answer; HTTPOCSPQuery makes one. Nil: no responder is asked.
	// It must bound the answer's size; its time is bounded by Timeout.
	Query func(ctx context.Context, url string, request []byte) ([]byte, error)
	// ResponderURL, when set, is asked about end-entity certificates
	// instead of the responders they name (a local OCSP relay, or a
	// responder when card certificates name none). CA certificates are
	// still asked about at the responders they name, if any: a responder
	// for card certificates does not answer for its CA.
	ResponderURL string
	// Timeout bounds one query (0: DefaultOCSPTimeout).
	Timeout time.Duration
	// ClockSkew is the tolerated clock difference with the responder
	// (0: DefaultOCSPClockSkew).
	ClockSkew time.Duration
	// MaxAge, when positive, refuses answers whose thisUpdate is older,
	// even before their nextUpdate (0: no bound but nextUpdate, and
	// DefaultOCSPMaxAge for answers without nextUpdate).
	MaxAge time.Duration
	// Nonce sends a random nonce in each request (RFC 8954) and refuses
	// an answer that does not carry it back: a replayed answer is then
	// refused, but so are the pre-signed answers of responders following
	// RFC 5019, which ignore nonces. Answers are then not reused either.
	Nonce bool

	mu    sync.Mutex
	cache map[ocspKey]*ocspAnswer
}

type ocspKey struct {
	issuer [32]byte // SHA-256 of the issuer certificate
	serial string
}

// ocspAnswer is what an acceptable response says of a certificate.
type ocspAnswer struct {
	status                 int // ocsp.Good, ocsp.Revoked or ocsp.Unknown
	revokedAt              time.Time
	reason                 int
	thisUpdate, nextUpdate time.Time
	responder              string // URL asked
}

// ocspCertID identifies a certificate in requests and responses.
type ocspCertID struct {
	hash              crypto.Hash
	nameHash, keyHash []byte
	serial            *big.Int
}

// newOCSPCertID hashes issuer's name and key with h.
func newOCSPCertID(h crypto.Hash, cert, issuer *x509.Certificate) (*ocspCertID, error) {
	key, err := subjectPublicKeyBits(issuer)
	if err != nil {
		return nil, err
	}
	if !h.Available() {
		return nil, fmt.Errorf("hash %v not available", h)
	}
	d := h.New()
	d.Write(issuer.RawSubject)
	nameHash := d.Sum(nil)
	d.Reset()
	d.Write(key)
	return &ocspCertID{hash: h, nameHash: nameHash, keyHash: d.Sum(nil), serial: cert.SerialNumber}, nil
}

// subjectPublicKeyBits is the content of the subjectPublicKey BIT STRING,
// what OCSP key hashes cover.
func subjectPublicKeyBits(c *x509.Certificate) ([]byte, error) {
	in, spki := cryptobyte.String(c.RawSubjectPublicKeyInfo), cryptobyte.String(nil)
	var bits asn1.BitString
	if !in.ReadASN1(&spki, casn1.SEQUENCE) || !spki.SkipASN1(casn1.SEQUENCE) || !spki.ReadASN1BitString(&bits) {
		return nil, errors.New("malformed subject public key info")
	}
	return bits.RightAlign(), nil
}

func (c *OCSPChecker) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultOCSPTimeout
}

func (c *OCSPChecker) clockSkew() time.Duration {
	if c.ClockSkew > 0 {
		return c.ClockSkew
	}
	return DefaultOCSPClockSkew
}

// responders lists the URLs to ask about cert.
func (c *OCSPChecker) responders(cert *x509.Certificate) []string {
	if c.ResponderURL != "" && !(cert.BasicConstraintsValid && cert.IsCA) {
		return []string{c.ResponderURL}
	}
	return cert.OCSPServer
}

// Check implements RevocationChecker.
func (c *OCSPChecker) Check(ctx context.Context, cert, issuer *x509.Certificate, now time.Time) error {
	if cert == nil || issuer == nil {
		return fmt.Errorf("%w: no certificate or issuer", ErrRevocationUnknown)
	}
	if !bytes.Equal(cert.RawIssuer, issuer.RawSubject) {
		return fmt.Errorf("%w: %q is not the issuer of the certificate", ErrRevocationUnknown, issuer.Subject.String())
	}
	urls := c.responders(cert)
	switch {
	case len(urls) == 0:
		return fmt.Errorf("%w: %q names no OCSP responder (authority information access)", ErrOCSPNoResponder, certName(cert))
	case c.Query == nil:
		return fmt.Errorf("%w: OCSP queries not enabled (OCSPChecker.Query is nil), for %q", ErrOCSPNoResponder, certName(cert))
	}
	key := ocspKey{issuer: sha256.Sum256(issuer.Raw), serial: string(cert.SerialNumber.Bytes())}
	if a := c.cached(key, now); a != nil {
		return a.verdict(cert)
	}
	id, err := newOCSPCertID(crypto.SHA1, cert, issuer)
	if err != nil {
		return fmt.Errorf("%w: OCSP request for %q: %w", ErrRevocationUnknown, certName(cert), err)
	}
	var reasons []string
	for _, u := range urls {
		if err := ctx.Err(); err != nil {
			return err
		}
		a, err := c.ask(ctx, u, id, cert, issuer, now)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			reasons = append(reasons, err.Error())
			continue
		}
		if a.status == ocsp.Unknown {
			reasons = append(reasons, fmt.Sprintf("%s: the responder does not know the certificate (status unknown)", u))
			continue
		}
		c.store(key, a, now)
		return a.verdict(cert)
	}
	return fmt.Errorf("%w: no usable OCSP answer for %q (serial %s): %s", ErrRevocationUnknown,
		certName(cert), cert.SerialNumber.Text(16), strings.Join(reasons, "; "))
}

// verdict is what a good or revoked answer means for cert.
func (a *ocspAnswer) verdict(cert *x509.Certificate) error {
	if a.status == ocsp.Good {
		return nil
	}
	return &RevokedError{Certificate: cert, RevokedAt: a.revokedAt, Reason: a.reason,
		Source: fmt.Sprintf("OCSP responder %s, %s", a.responder, a.thisUpdate.UTC().Format(time.RFC3339))}
}

// ask queries one responder and returns its acceptable answer.
func (c *OCSPChecker) ask(ctx context.Context, responder string, id *ocspCertID, cert, issuer *x509.Certificate, now time.Time) (*ocspAnswer, error) {
	var nonce []byte
	if c.Nonce {
		nonce = make([]byte, 32)
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
	}
	req, err := marshalOCSPRequest(id, nonce)
	if err != nil {
		return nil, fmt.Errorf("OCSP request: %w", err)
	}
	qctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	der, err := c.Query(qctx, responder, req)
	if err != nil {
		if qctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			return nil, fmt.Errorf("%s: no answer within %s", responder, c.timeout())
		}
		return nil, fmt.Errorf("asking %s: %w", responder, err)
	}
	a, err := c.parseResponse(der, id, cert, issuer, nonce, now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", responder, err)
	}
	a.responder = responder
	return a, nil
}

// marshalOCSPRequest encodes an OCSP request for id, with a nonce
// extension when nonce is not nil.
func marshalOCSPRequest(id *ocspCertID, nonce []byte) ([]byte, error) {
	der, err := (&ocsp.Request{HashAlgorithm: id.hash, IssuerNameHash: id.nameHash, IssuerKeyHash: id.keyHash,
		SerialNumber: id.serial}).Marshal()
	if err != nil || nonce == nil {
		return der, err
	}
	// OCSPRequest ::= SEQUENCE { tbsRequest SEQUENCE { …, requestList,
	//   requestExtensions [2] EXPLICIT Extensions OPTIONAL } }
	in, outer, tbs := cryptobyte.String(der), cryptobyte.String(nil), cryptobyte.String(nil)
	if !in.ReadASN1(&outer, casn1.SEQUENCE) || !outer.ReadASN1(&tbs, casn1.SEQUENCE) || !outer.Empty() {
		return nil, errors.New("unexpected OCSP request encoding")
	}
	var b cryptobyte.Builder
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(tbs)
			b.AddASN1(casn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidOCSPNonce)
						b.AddASN1(casn1.OCTET_STRING, func(b *cryptobyte.Builder) { b.AddASN1OctetString(nonce) })
					})
				})
			})
		})
	})
	return b.Bytes()
}

// parseResponse returns what der says of the certificate id names when
// it is an acceptable answer (see OCSPChecker), or why it is not.
func (c *OCSPChecker) parseResponse(der []byte, id *ocspCertID, cert, issuer *x509.Certificate, nonce []byte, now time.Time) (*ocspAnswer, error) {
	// With a nil issuer, ParseResponseForCert checks the signature only
	// when the response carries a certificate, and not that certificate's
	// authority: both are checked below.
	resp, err := ocsp.ParseResponseForCert(der, cert, nil)
	if err != nil {
		var re ocsp.ResponseError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("the responder answered %q", re.Status.String())
		}
		return nil, fmt.Errorf("unusable OCSP response: %w", err)
	}
	details, err := parseOCSPDetails(der)
	if err != nil {
		return nil, fmt.Errorf("unusable OCSP response: %w", err)
	}
	signer, err := c.responseSigner(resp, issuer, now)
	if err != nil {
		return nil, err
	}
	if err := checkResponderID(resp, signer); err != nil {
		return nil, err
	}
	if err := details.matches(id, cert, issuer); err != nil {
		return nil, err
	}
	for _, ext := range details.extensions {
		if ext.Critical && !ext.Id.Equal(oidOCSPNonce) {
			return nil, fmt.Errorf("OCSP response with unsupported critical extension %v", ext.Id)
		}
	}
	if nonce != nil {
		if err := details.checkNonce(nonce); err != nil {
			return nil, err
		}
	}
	if err := c.checkTimes(resp.ThisUpdate, resp.NextUpdate, now); err != nil {
		return nil, err
	}
	switch resp.Status {
	case ocsp.Good, ocsp.Revoked, ocsp.Unknown:
	default:
		return nil, fmt.Errorf("OCSP status %d", resp.Status)
	}
	return &ocspAnswer{status: resp.Status, revokedAt: resp.RevokedAt, reason: resp.RevocationReason,
		thisUpdate: resp.ThisUpdate, nextUpdate: resp.NextUpdate}, nil
}

// responseSigner returns the certificate whose key signed resp: the
// issuer, or a delegated responder certificate the issuer issued for
// OCSP signing.
func (c *OCSPChecker) responseSigner(resp *ocsp.Response, issuer *x509.Certificate, now time.Time) (*x509.Certificate, error) {
	rc := resp.Certificate
	if rc == nil || rc.Equal(issuer) {
		if err := resp.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("OCSP response not signed by %q (%v)", certName(issuer), err)
		}
		return issuer, nil
	}
	// The response signature by rc was checked by ParseResponseForCert.
	switch {
	case !bytes.Equal(rc.RawIssuer, issuer.RawSubject):
		return nil, fmt.Errorf("OCSP responder certificate %q not issued by %q", certName(rc), certName(issuer))
	case !slices.Contains(rc.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning):
		return nil, fmt.Errorf("OCSP responder certificate %q lacks the OCSPSigning extended key usage", certName(rc))
	case rc.KeyUsage != 0 && rc.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return nil, fmt.Errorf("OCSP responder certificate %q lacks the digitalSignature key usage", certName(rc))
	case now.Before(rc.NotBefore) || now.After(rc.NotAfter):
		return nil, fmt.Errorf("OCSP responder certificate %q not valid at %s", certName(rc), now.UTC().Format(time.RFC3339))
	}
	if err := rc.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("OCSP responder certificate %q not signed by %q (%v)", certName(rc), certName(issuer), err)
	}
	return rc, nil
}

// checkResponderID requires the response's responder ID to name signer.
func checkResponderID(resp *ocsp.Response, signer *x509.Certificate) error {
	if resp.RawResponderName != nil {
		if !bytes.Equal(resp.RawResponderName, signer.RawSubject) {
			return fmt.Errorf("OCSP responder ID names another signer than %q", certName(signer))
		}
		return nil
	}
	key, err := subjectPublicKeyBits(signer)
	if err != nil {
		return err
	}
	if h := sha1.Sum(key); !bytes.Equal(resp.ResponderKeyHash, h[:]) {
		return fmt.Errorf("OCSP responder key hash is not that of %q", certName(signer))
	}
	return nil
}

// checkTimes applies the freshness rules to a response's thisUpdate and
// nextUpdate (zero: none).
func (c *OCSPChecker) checkTimes(thisUpdate, nextUpdate, now time.Time) error {
	skew := c.clockSkew()
	maxAge := c.MaxAge
	if maxAge <= 0 && nextUpdate.IsZero() {
		maxAge = DefaultOCSPMaxAge
	}
	switch {
	case thisUpdate.After(now.Add(skew)):
		return fmt.Errorf("OCSP response of %s, after the verification time", thisUpdate.UTC().Format(time.RFC3339))
	case !nextUpdate.IsZero() && !now.Before(nextUpdate.Add(skew)):
		return fmt.Errorf("OCSP response out of date (next update %s)", nextUpdate.UTC().Format(time.RFC3339))
	case maxAge > 0 && now.Sub(thisUpdate) > maxAge+skew:
		return fmt.Errorf("OCSP response of %s, older than %s", thisUpdate.UTC().Format(time.RFC3339), maxAge)
	}
	return nil
}

// ocspDetails are the parts of a response golang.org/x/crypto/ocsp does
// not return: the certificate IDs and the response extensions.
type ocspDetails struct {
	ids        []ocspCertID
	extensions []pkix.Extension
}

// parseOCSPDetails reads der, an OCSP response ParseResponseForCert
// accepted:
//
//	OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED,
//	  responseBytes [0] EXPLICIT SEQUENCE { responseType OID, response OCTET STRING } }
//	BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, … }
//	ResponseData ::= SEQUENCE { version [0] EXPLICIT OPTIONAL, responderID, producedAt,
//	  responses SEQUENCE OF SingleResponse, responseExtensions [1] EXPLICIT Extensions OPTIONAL }
//	SingleResponse ::= SEQUENCE { certID SEQUENCE { hashAlgorithm, issuerNameHash,
//	  issuerKeyHash, serialNumber }, … }
func parseOCSPDetails(der []byte) (*ocspDetails, error) {
	malformed := errors.New("unexpected structure")
	in := cryptobyte.String(der)
	var resp, wrapped, rb, basicDER, basic, tbs, responses cryptobyte.String
	var status int
	if !in.ReadASN1(&resp, casn1.SEQUENCE) || !resp.ReadASN1Enum(&status) ||
		!resp.ReadASN1(&wrapped, casn1.Tag(0).Constructed().ContextSpecific()) || !wrapped.ReadASN1(&rb, casn1.SEQUENCE) ||
		!rb.SkipASN1(casn1.OBJECT_IDENTIFIER) || !rb.ReadASN1(&basicDER, casn1.OCTET_STRING) ||
		!basicDER.ReadASN1(&basic, casn1.SEQUENCE) || !basic.ReadASN1(&tbs, casn1.SEQUENCE) ||
		!tbs.SkipOptionalASN1(casn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, malformed
	}
	var responderID cryptobyte.String
	var tag casn1.Tag
	if !tbs.ReadAnyASN1(&responderID, &tag) || !tbs.SkipASN1(casn1.GeneralizedTime) || !tbs.ReadASN1(&responses, casn1.SEQUENCE) {
		return nil, malformed
	}
	d := &ocspDetails{}
	for !responses.Empty() {
		var single, certID, alg cryptobyte.String
		var oid asn1.ObjectIdentifier
		var id ocspCertID
		id.serial = new(big.Int)
		if !responses.ReadASN1(&single, casn1.SEQUENCE) || !single.ReadASN1(&certID, casn1.SEQUENCE) ||
			!certID.ReadASN1(&alg, casn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) ||
			!certID.ReadASN1Bytes(&id.nameHash, casn1.OCTET_STRING) || !certID.ReadASN1Bytes(&id.keyHash, casn1.OCTET_STRING) ||
			!certID.ReadASN1Integer(id.serial) {
			return nil, malformed
		}
		id.hash = ocspHashes[oid.String()]
		d.ids = append(d.ids, id)
	}
	var exts cryptobyte.String
	var hasExts bool
	if !tbs.ReadOptionalASN1(&exts, &hasExts, casn1.Tag(1).Constructed().ContextSpecific()) {
		return nil, malformed
	}
	if hasExts {
		var seq cryptobyte.String
		if !exts.ReadASN1(&seq, casn1.SEQUENCE) {
			return nil, malformed
		}
		for !seq.Empty() {
			var ext cryptobyte.String
			var e pkix.Extension
			if !seq.ReadASN1(&ext, casn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&e.Id) ||
				!ext.ReadOptionalASN1Boolean(&e.Critical, casn1.BOOLEAN, false) || !ext.ReadASN1Bytes(&e.Value, casn1.OCTET_STRING) {
				return nil, malformed
			}
			d.extensions = append(d.extensions, e)
		}
	}
	return d, nil
}

var ocspHashes = map[string]crypto.Hash{
	"1.3.14.3.2.26":          crypto.SHA1,
	"2.16.840.1.101.3.4.2.1": crypto.SHA256,
	"2.16.840.1.101.3.4.2.2": crypto.SHA384,
	"2.16.840.1.101.3.4.2.3": crypto.SHA512,
}

// matches requires the single response ParseResponseForCert picked (the
// first with cert's serial) to name cert's issuer.
func (d *ocspDetails) matches(id *ocspCertID, cert, issuer *x509.Certificate) error {
	for _, got := range d.ids {
		if got.serial.Cmp(id.serial) != 0 {
			continue
		}
		want := id
		if got.hash != id.hash {
			if got.hash == 0 {
				return errors.New("OCSP response with an unsupported certificate ID hash")
			}
			var err error
			if want, err = newOCSPCertID(got.hash, cert, issuer); err != nil {
				return err
			}
		}
		if !bytes.Equal(got.nameHash, want.nameHash) || !bytes.Equal(got.keyHash, want.keyHash) {
			return fmt.Errorf("OCSP response for serial %s of another issuer than %q", id.serial.Text(16), certName(issuer))
		}
		return nil
	}
	return fmt.Errorf("OCSP response not about serial %s", id.serial.Text(16))
}

// checkNonce requires the response's nonce extension to hold nonce.
func (d *ocspDetails) checkNonce(nonce []byte) error {
	for _, ext := range d.extensions {
		if !ext.Id.Equal(oidOCSPNonce) {
			continue
		}
		v, got := cryptobyte.String(ext.Value), []byte(nil)
		if !v.ReadASN1Bytes(&got, casn1.OCTET_STRING) || !v.Empty() {
			got = ext.Value // some responders put the bare nonce
		}
		if !bytes.Equal(got, nonce) {
			return errors.New("OCSP response nonce differs from the request's (replayed answer?)")
		}
		return nil
	}
	return errors.New("OCSP response without the request's nonce")
}

// cached returns a kept answer about key still current at now.
func (c *OCSPChecker) cached(key ocspKey, now time.Time) *ocspAnswer {
	if c.Nonce {
		return nil
	}
	c.mu.Lock()
	a := c.cache[key]
	c.mu.Unlock()
	if a == nil || c.checkTimes(a.thisUpdate, a.nextUpdate, now) != nil {
		return nil
	}
	return a
}

// store keeps a good or revoked answer that has a nextUpdate.
func (c *OCSPChecker) store(key ocspKey, a *ocspAnswer, now time.Time) {
	if c.Nonce || a.nextUpdate.IsZero() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cache == nil {
		c.cache = map[ocspKey]*ocspAnswer{}
	}
	if len(c.cache) >= maxOCSPCache {
		for k, old := range c.cache {
			if c.checkTimes(old.thisUpdate, old.nextUpdate, now) != nil {
				delete(c.cache, k)
			}
		}
		if len(c.cache) >= maxOCSPCache {
			clear(c.cache)
		}
	}
	c.cache[key] = a
}

// FallbackChecker asks its checkers in turn until one knows: the first
// that finds the certificate not revoked, or revoked, decides. When none
// knows, the status is unknown (ErrRevocationUnknown, with every
// checker's reason); when none has anything at all for the certificate
// (ErrCRLNotFound, ErrOCSPNoResponder), the error matches the first
// one's, so that an intermediate CA without source stays unchecked.
// Typically OCSP then CRLs:
//
//	v.Revocation = cpsverify.FallbackChecker{ocspChecker, crlChecker}
type FallbackChecker []RevocationChecker

// Check implements RevocationChecker.
func (f FallbackChecker) Check(ctx context.Context, cert, issuer *x509.Certificate, now time.Time) error {
	var errs []error
	lead := -1 // the error to wrap: the first that is not "no source"
	for _, c := range f {
		if c == nil {
			continue
		}
		err := c.Check(ctx, cert, issuer, now)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrRevoked):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		}
		if lead < 0 && !noRevocationSource(err) {
			lead = len(errs)
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return fmt.Errorf("%w: no revocation checker", ErrRevocationUnknown)
	}
	if lead < 0 {
		lead = 0
	}
	first := errs[lead]
	if !errors.Is(first, ErrRevocationUnknown) {
		first = fmt.Errorf("%w: %w", ErrRevocationUnknown, first)
	}
	var others []string
	for i, err := range errs {
		if i != lead {
			others = append(others, err.Error())
		}
	}
	if len(others) == 0 {
		return first
	}
	return fmt.Errorf("%w; also %s", first, strings.Join(others, "; "))
}
