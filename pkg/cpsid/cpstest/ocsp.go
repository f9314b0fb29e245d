package cpstest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSP certificate statuses (RFC 6960), for OCSPStatus.Status.
const (
	OCSPGood    = ocsp.Good
	OCSPRevoked = ocsp.Revoked
	OCSPUnknown = ocsp.Unknown
)

var (
	oidOCSPNonce   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}
)

// ResponderCertOptions configures IssueOCSPResponder.
type ResponderCertOptions struct {
	// ByRoot makes the root issue the certificate (a responder for the
	// status of the intermediate); by default the intermediate issues it
	// (a responder for card certificates).
	ByRoot bool
	// NoOCSPSigning gives the certificate the clientAuth extended key
	// usage instead of id-kp-OCSPSigning: a relying party must not accept
	// its signature on OCSP responses.
	NoOCSPSigning bool
	// NotBefore and NotAfter bound the validity; zero values mean
	// 2020-01-01 and 2049-12-31.
	NotBefore, NotAfter time.Time
	// CommonName defaults to "TEST OCSP IGC-SANTE FORT PERSONNES".
	CommonName string
}

// IssueOCSPResponder returns a delegated OCSP responder certificate for
// pub (RFC 6960 §4.2.2.2): issued by the intermediate (or the root),
// keyUsage digitalSignature, EKU id-kp-OCSPSigning (unless
// o.NoOCSPSigning) and id-pkix-ocsp-nocheck.
func (p *PKI) IssueOCSPResponder(pub crypto.PublicKey, o ResponderCertOptions) (*x509.Certificate, error) {
	issuer, key := p.Intermediate, p.IntermediateKey
	if o.ByRoot {
		issuer, key = p.Root, p.RootKey
	}
	if issuer == nil || key == nil || pub == nil {
		return nil, errors.New("cpstest: IssueOCSPResponder needs a CA and a public key")
	}
	nb, na := o.NotBefore, o.NotAfter
	if nb.IsZero() {
		nb = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if na.IsZero() {
		na = time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC)
	}
	cn := o.CommonName
	if cn == "" {
		cn = "TEST OCSP IGC-SANTE FORT PERSONNES"
	}
	subject, err := asn1.Marshal(pkix.RDNSequence{
		{{Type: oidC, Value: "FR"}},
		{{Type: oidO, Value: utf8("ASIP-SANTE")}},
		{{Type: oidCN, Value: utf8(cn)}},
	})
	if err != nil {
		return nil, err
	}
	serial, err := p.serial()
	if err != nil {
		return nil, err
	}
	eku := x509.ExtKeyUsageOCSPSigning
	if o.NoOCSPSigning {
		eku = x509.ExtKeyUsageClientAuth
	}
	der, err := x509.CreateCertificate(p.random(), &x509.Certificate{
		SerialNumber:          serial,
		RawSubject:            subject,
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{eku},
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: oidOCSPNoCheck, Value: []byte{0x05, 0x00}}},
	}, issuer, pub, key)
	if err != nil {
		return nil, fmt.Errorf("cpstest: creating OCSP responder certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

func (p *PKI) random() io.Reader {
	if p.rand != nil {
		return p.rand
	}
	return rand.Reader
}

// OCSPStatus is what an OCSPResponder says of a serial number.
type OCSPStatus struct {
	// Status is OCSPGood, OCSPRevoked or OCSPUnknown.
	Status int
	// RevokedAt and Reason (ReasonKeyCompromise …) describe a revocation.
	RevokedAt time.Time
	Reason    int
}

// OCSPFault makes an OCSPResponder misbehave.
type OCSPFault int

const (
	// OCSPFaultNone: well-formed answers.
	OCSPFaultNone OCSPFault = iota
	// OCSPFaultWrongSigner signs with another CA's key (the root's for a
	// responder of the intermediate) while naming the usual signer.
	OCSPFaultWrongSigner
	// OCSPFaultStale answers with thisUpdate 8 days and nextUpdate one
	// day before the responder's clock.
	OCSPFaultStale
	// OCSPFaultFuture answers with thisUpdate one day after the
	// responder's clock.
	OCSPFaultFuture
	// OCSPFaultWrongSerial answers about the serial number after the
	// requested one.
	OCSPFaultWrongSerial
	// OCSPFaultWrongIssuer answers about the requested serial number of
	// another CA (issuer name and key hashes of the root for a responder
	// of the intermediate).
	OCSPFaultWrongIssuer
	// OCSPFaultNoNonce leaves the request's nonce out of the answer.
	OCSPFaultNoNonce
	// OCSPFaultWrongNonce answers with another nonce than the request's.
	OCSPFaultWrongNonce
	// OCSPFaultGarbage answers 200 with bytes that are not an OCSP
	// response.
	OCSPFaultGarbage
	// OCSPFaultTryLater answers with the tryLater error response.
	OCSPFaultTryLater
	// OCSPFaultHTTP500 answers with HTTP status 500.
	OCSPFaultHTTP500
	// OCSPFaultSlow answers after OCSPResponderOptions.Delay, or never
	// when the client gives up first.
	OCSPFaultSlow
	// OCSPFaultOversized answers 200 with a 1 MiB body.
	OCSPFaultOversized
)

// OCSPResponderOptions configures StartOCSPResponder.
type OCSPResponderOptions struct {
	// ByRoot answers for the certificates the root issued (the
	// intermediate); by default for those the intermediate issued (card
	// certificates). Requests about other issuers get the unauthorized
	// error response.
	ByRoot bool
	// ResponderCert and ResponderKey sign as a delegated responder (see
	// IssueOCSPResponder); the certificate is sent in each answer. Nil:
	// the CA signs with its own key.
	ResponderCert *x509.Certificate
	ResponderKey  crypto.Signer
	// Now is the responder's clock: thisUpdate is Now minus a minute.
	// Nil: time.Now.
	Now func() time.Time
	// Validity is nextUpdate − thisUpdate; zero means 24 hours, negative
	// no nextUpdate.
	Validity time.Duration
	// Default is the status of serial numbers not given to SetStatus
	// (the zero value: good).
	Default OCSPStatus
	// Fault is the initial misbehaviour (see SetFault).
	Fault OCSPFault
	// Delay is how long OCSPFaultSlow waits; zero means a minute.
	Delay time.Duration
}

// OCSPRequest records a request an OCSPResponder received.
type OCSPRequest struct {
	Method string   // GET or POST
	Serial *big.Int // nil when the request did not parse
	Nonce  []byte   // the nonce extension's value, or nil
}

// OCSPResponder is an OCSP responder for tests on the loopback
// interface: answers built with golang.org/x/crypto/ocsp.CreateResponse,
// signed by the CA or a delegated responder, echoing the request's nonce,
// per-serial statuses, and faults on demand. It serves GET
// (URL/base64-request) and POST at any path.
type OCSPResponder struct {
	// URL is the responder's address, to put in certificates
	// (Holder.OCSPServers) or give to a client.
	URL string

	issuer, hashIssuer, other *x509.Certificate
	caKey, otherKey           crypto.Signer
	o                         OCSPResponderOptions
	srv                       *http.Server

	mu       sync.Mutex
	statuses map[string]OCSPStatus
	fault    OCSPFault
	requests []OCSPRequest
}

// StartOCSPResponder starts a responder for p's intermediate (or root)
// on 127.0.0.1. Close it when done.
func (p *PKI) StartOCSPResponder(o OCSPResponderOptions) (*OCSPResponder, error) {
	r := &OCSPResponder{o: o, fault: o.Fault, statuses: map[string]OCSPStatus{},
		issuer: p.Intermediate, caKey: p.IntermediateKey, other: p.Root, otherKey: p.RootKey}
	if o.ByRoot {
		r.issuer, r.caKey, r.other, r.otherKey = p.Root, p.RootKey, p.Intermediate, p.IntermediateKey
	}
	if r.issuer == nil || r.caKey == nil || r.other == nil || r.otherKey == nil {
		return nil, errors.New("cpstest: PKI has no CA to answer for")
	}
	if (o.ResponderCert == nil) != (o.ResponderKey == nil) {
		return nil, errors.New("cpstest: give both ResponderCert and ResponderKey, or neither")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cpstest: OCSP responder: %w", err)
	}
	r.URL = "http://" + ln.Addr().String() + "/ocsp"
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 30 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

// Close stops the responder at once (requests in progress are cut).
func (r *OCSPResponder) Close() { _ = r.srv.Close() }

// SetStatus sets what the responder says of serial.
func (r *OCSPResponder) SetStatus(serial *big.Int, s OCSPStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses[serial.String()] = s
}

// Revoke makes the responder say c is revoked since at, for reason.
func (r *OCSPResponder) Revoke(c *x509.Certificate, at time.Time, reason int) {
	r.SetStatus(c.SerialNumber, OCSPStatus{Status: OCSPRevoked, RevokedAt: at, Reason: reason})
}

// SetFault changes the misbehaviour of the next answers.
func (r *OCSPResponder) SetFault(f OCSPFault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fault = f
}

// Requests returns the requests received so far.
func (r *OCSPResponder) Requests() []OCSPRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]OCSPRequest(nil), r.requests...)
}

func (r *OCSPResponder) now() time.Time {
	if r.o.Now != nil {
		return r.o.Now()
	}
	return time.Now()
}

// ServeHTTP answers an OCSP request (RFC 6960 appendix A).
func (r *OCSPResponder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var body []byte
	var err error
	switch req.Method {
	case http.MethodGet:
		p := req.URL.EscapedPath()
		var s string
		if s, err = url.PathUnescape(p[strings.LastIndexByte(p, '/')+1:]); err == nil {
			body, err = base64.StdEncoding.DecodeString(s)
		}
	case http.MethodPost:
		body, err = io.ReadAll(io.LimitReader(req.Body, 64<<10))
	default:
		http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		return
	}
	if err != nil {
		body = nil
	}
	rec := OCSPRequest{Method: req.Method, Nonce: requestNonce(body)}
	if parsed, err := ocsp.ParseRequest(body); err == nil {
		rec.Serial = parsed.SerialNumber
	}
	r.mu.Lock()
	r.requests = append(r.requests, rec)
	fault := r.fault
	r.mu.Unlock()
	switch fault {
	case OCSPFaultHTTP500:
		http.Error(w, "responder failure", http.StatusInternalServerError)
		return
	case OCSPFaultSlow:
		d := r.o.Delay
		if d <= 0 {
			d = time.Minute
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-req.Context().Done():
			return
		case <-t.C:
		}
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(r.Answer(body))
}

// Answer returns the DER answer to a DER OCSP request, with the current
// fault (the HTTP ones aside).
func (r *OCSPResponder) Answer(request []byte) []byte {
	r.mu.Lock()
	fault := r.fault
	r.mu.Unlock()
	switch fault {
	case OCSPFaultGarbage:
		return []byte("<html><body>Service Unavailable</body></html>")
	case OCSPFaultTryLater:
		return ocsp.TryLaterErrorResponse
	case OCSPFaultOversized:
		return bytes.Repeat([]byte{0x30}, 1<<20)
	}
	req, err := ocsp.ParseRequest(request)
	if err != nil {
		return ocsp.MalformedRequestErrorResponse
	}
	if !r.answersFor(req) {
		return ocsp.UnauthorizedErrorResponse
	}
	r.mu.Lock()
	st, ok := r.statuses[req.SerialNumber.String()]
	r.mu.Unlock()
	if !ok {
		st = r.o.Default
	}
	now := r.now()
	tmpl := ocsp.Response{
		Status:           st.Status,
		SerialNumber:     req.SerialNumber,
		ThisUpdate:       now.Add(-time.Minute),
		RevokedAt:        st.RevokedAt,
		RevocationReason: st.Reason,
		IssuerHash:       req.HashAlgorithm,
	}
	switch v := r.o.Validity; {
	case v == 0:
		tmpl.NextUpdate = tmpl.ThisUpdate.Add(24 * time.Hour)
	case v > 0:
		tmpl.NextUpdate = tmpl.ThisUpdate.Add(v)
	}
	signerCert, key, hashIssuer := r.issuer, r.caKey, r.issuer
	if r.o.ResponderCert != nil {
		signerCert, key = r.o.ResponderCert, r.o.ResponderKey
		tmpl.Certificate = r.o.ResponderCert
	}
	nonce := requestNonceExtension(request)
	switch fault {
	case OCSPFaultWrongSigner:
		key = r.otherKey
	case OCSPFaultStale:
		tmpl.ThisUpdate, tmpl.NextUpdate = now.Add(-8*24*time.Hour), now.Add(-24*time.Hour)
	case OCSPFaultFuture:
		tmpl.ThisUpdate, tmpl.NextUpdate = now.Add(24*time.Hour), now.Add(48*time.Hour)
	case OCSPFaultWrongSerial:
		tmpl.SerialNumber = new(big.Int).Add(req.SerialNumber, big.NewInt(1))
	case OCSPFaultWrongIssuer:
		hashIssuer = r.other
	case OCSPFaultNoNonce:
		nonce = nil
	case OCSPFaultWrongNonce:
		nonce = &pkix.Extension{Id: oidOCSPNonce, Value: []byte{0x04, 0x05, 'o', 't', 'h', 'e', 'r'}}
	}
	der, err := ocsp.CreateResponse(hashIssuer, signerCert, tmpl, key)
	if err == nil && nonce != nil {
		der, err = withResponseExtensions(der, []pkix.Extension{*nonce}, key)
	}
	if err != nil {
		return ocsp.InternalErrorErrorResponse
	}
	return der
}

// answersFor tells whether req is about a certificate of r's CA.
func (r *OCSPResponder) answersFor(req *ocsp.Request) bool {
	if !req.HashAlgorithm.Available() {
		return false
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(r.issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		return false
	}
	h := req.HashAlgorithm.New()
	h.Write(r.issuer.RawSubject)
	name := h.Sum(nil)
	h.Reset()
	h.Write(spki.PublicKey.RightAlign())
	return bytes.Equal(name, req.IssuerNameHash) && bytes.Equal(h.Sum(nil), req.IssuerKeyHash)
}

// ocspRequestASN1 is an OCSPRequest, for its extensions (which
// golang.org/x/crypto/ocsp does not read).
type ocspRequestASN1 struct {
	TBSRequest struct {
		Version       int           `asn1:"explicit,tag:0,default:0,optional"`
		RequestorName asn1.RawValue `asn1:"explicit,tag:1,optional"`
		RequestList   asn1.RawValue
		Extensions    []pkix.Extension `asn1:"explicit,tag:2,optional"`
	}
	Signature asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

// requestNonceExtension returns the nonce extension of a DER OCSP
// request, or nil.
func requestNonceExtension(der []byte) *pkix.Extension {
	var req ocspRequestASN1
	if _, err := asn1.Unmarshal(der, &req); err != nil {
		return nil
	}
	for _, ext := range req.TBSRequest.Extensions {
		if ext.Id.Equal(oidOCSPNonce) {
			return &pkix.Extension{Id: ext.Id, Value: ext.Value}
		}
	}
	return nil
}

// requestNonce returns the nonce of a DER OCSP request (the OCTET STRING
// inside the extension), or nil.
func requestNonce(der []byte) []byte {
	ext := requestNonceExtension(der)
	if ext == nil {
		return nil
	}
	var nonce []byte
	if rest, err := asn1.Unmarshal(ext.Value, &nonce); err != nil || len(rest) > 0 {
		return ext.Value
	}
	return nonce
}

type ocspResponseASN1 struct {
	Status asn1.Enumerated
	Bytes  struct {
		Type     asn1.ObjectIdentifier
		Response []byte
	} `asn1:"explicit,tag:0,optional"`
}

type basicResponseASN1 struct {
	TBSResponseData    asn1.RawValue
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          asn1.BitString
	Certificates       []asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

type responseDataASN1 struct {
	Version     int `asn1:"optional,default:0,explicit,tag:0"`
	ResponderID asn1.RawValue
	ProducedAt  asn1.RawValue
	Responses   asn1.RawValue
	Extensions  []pkix.Extension `asn1:"explicit,tag:1,optional"`
}

var signatureHashes = map[string]crypto.Hash{
	"1.2.840.113549.1.1.11": crypto.SHA256, // sha256WithRSAEncryption
	"1.2.840.113549.1.1.12": crypto.SHA384,
	"1.2.840.113549.1.1.13": crypto.SHA512,
	"1.2.840.10045.4.3.2":   crypto.SHA256, // ecdsa-with-SHA256
	"1.2.840.10045.4.3.3":   crypto.SHA384,
	"1.2.840.10045.4.3.4":   crypto.SHA512,
}

// withResponseExtensions adds responseExtensions to a DER OCSP response
// made by ocsp.CreateResponse (which cannot) and signs it again with key.
func withResponseExtensions(der []byte, exts []pkix.Extension, key crypto.Signer) ([]byte, error) {
	var resp ocspResponseASN1
	if _, err := asn1.Unmarshal(der, &resp); err != nil {
		return nil, err
	}
	var basic basicResponseASN1
	if _, err := asn1.Unmarshal(resp.Bytes.Response, &basic); err != nil {
		return nil, err
	}
	var tbs responseDataASN1
	if _, err := asn1.Unmarshal(basic.TBSResponseData.FullBytes, &tbs); err != nil {
		return nil, err
	}
	tbs.Extensions = append(tbs.Extensions, exts...)
	tbsDER, err := asn1.Marshal(tbs)
	if err != nil {
		return nil, err
	}
	h, ok := signatureHashes[basic.SignatureAlgorithm.Algorithm.String()]
	if !ok {
		return nil, fmt.Errorf("cpstest: signature algorithm %v", basic.SignatureAlgorithm.Algorithm)
	}
	d := h.New()
	d.Write(tbsDER)
	sig, err := key.Sign(rand.Reader, d.Sum(nil), h)
	if err != nil {
		return nil, err
	}
	basic.TBSResponseData = asn1.RawValue{FullBytes: tbsDER}
	basic.Signature = asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}
	if resp.Bytes.Response, err = asn1.Marshal(basic); err != nil {
		return nil, err
	}
	return asn1.Marshal(resp)
}
