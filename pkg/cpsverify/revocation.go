package cpsverify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// RevocationChecker tells whether cert, issued by issuer, is revoked at
// now (the Verifier's clock). Check returns nil when the certificate is
// known not to be revoked, an error matching ErrRevoked when it is, and an
// error matching ErrRevocationUnknown otherwise: ErrCRLNotFound or
// ErrOCSPNoResponder when the checker has nothing at all for this
// certificate (an intermediate CA is then not checked), any other ErrRevocationUnknown (stale CRL, CRL of another
// key, download failure …) refuses the certificate unless
// Verifier.RevocationSoftFail is set. Other errors count as unknown.
//
// CRLChecker is the implementation for CRLs, OCSPChecker the one for
// OCSP, FallbackChecker combines them (OCSP, then CRLs). A revoked
// certificate is best reported as a *RevokedError. Check is called
// concurrently.
type RevocationChecker interface {
	Check(ctx context.Context, cert, issuer *x509.Certificate, now time.Time) error
}

// MaxCRLSize bounds a CRL read by HTTPFetcher by default (a CA's CRL of
// card certificates lists every revoked card certificate still valid and
// can be large).
const MaxCRLSize = 64 << 20

// DefaultCRLFetchTimeout bounds one download by HTTPFetcher's default
// client.
const DefaultCRLFetchTimeout = 30 * time.Second

var (
	oidExtAuthorityKeyID      = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtCRLNumber           = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidExtDeltaCRLIndicator   = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidExtIssuingDistPoint    = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidExtReasonCode          = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidExtInvalidityDate      = asn1.ObjectIdentifier{2, 5, 29, 24}
	oidExtCertificateIssuer   = asn1.ObjectIdentifier{2, 5, 29, 29}
	oidExtHoldInstructionCode = asn1.ObjectIdentifier{2, 5, 29, 23}
)

// ParseCRLs parses X.509 v2 CRLs from PEM ("X509 CRL" blocks, several per
// file; other blocks are ignored) or DER (one CRL). Delta CRLs are refused:
// only complete CRLs tell that a certificate is not revoked.
func ParseCRLs(data []byte) ([]*x509.RevocationList, error) {
	var ders [][]byte
	if bytes.Contains(data, []byte("-----BEGIN ")) {
		for _, block := range pemBlocks(data) {
			if block.Type == "X509 CRL" || block.Type == "CRL" {
				ders = append(ders, block.Bytes)
			}
		}
		if len(ders) == 0 {
			return nil, fmt.Errorf("%w: no X509 CRL PEM block", ErrCRLMalformed)
		}
	} else {
		ders = [][]byte{data}
	}
	out := make([]*x509.RevocationList, 0, len(ders))
	for _, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCRLMalformed, err)
		}
		if hasExtension(crl, oidExtDeltaCRLIndicator) {
			return nil, fmt.Errorf("%w: delta CRL of %q not supported, give the complete CRL", ErrCRLMalformed, crl.Issuer.String())
		}
		out = append(out, crl)
	}
	return out, nil
}

// LoadCRLs reads CRLs from files in PEM or DER form (see ParseCRLs), such
// as the .crl files of the IGC-Santé CAs.
func LoadCRLs(paths ...string) ([]*x509.RevocationList, error) {
	return loadFiles(paths, ParseCRLs)
}

// HTTPFetcher returns a CRLChecker.Fetch function that downloads http://
// and https:// URLs with client (nil: a client with a
// DefaultCRLFetchTimeout timeout), requires a 200 answer and refuses
// bodies over maxSize bytes (0 or less: MaxCRLSize). Other schemes, such as
// the ldap:// distribution points of IGC-Santé certificates, are refused;
// the checker then tries the next distribution point. It can also feed a
// background refresh (ParseCRLs, then CRLChecker.SetCRLs).
func HTTPFetcher(client *http.Client, maxSize int64) func(ctx context.Context, url string) ([]byte, error) {
	if client == nil {
		client = &http.Client{Timeout: DefaultCRLFetchTimeout}
	}
	if maxSize <= 0 {
		maxSize = MaxCRLSize
	}
	return func(ctx context.Context, url string) ([]byte, error) {
		if lower := strings.ToLower(url); !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
			return nil, errors.New("cpsverify: only http and https CRL distribution points are fetched")
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		return readHTTP(client, req, maxSize, "CRL")
	}
}

// readHTTP sends req with client and returns the body of a 200 answer,
// refusing one over maxSize bytes; what names the object in errors.
func readHTTP(client *http.Client, req *http.Request, maxSize int64, what string) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cpsverify: HTTP status %s", resp.Status)
	}
	if resp.ContentLength > maxSize {
		return nil, fmt.Errorf("cpsverify: %s of %d bytes, more than %d", what, resp.ContentLength, maxSize)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("cpsverify: reading the %s: %w", what, err)
	}
	if int64(len(data)) > maxSize {
		return nil, fmt.Errorf("cpsverify: %s larger than %d bytes", what, maxSize)
	}
	return data, nil
}

// CRLChecker is a RevocationChecker using X.509 v2 CRLs: the ones given
// to NewCRLChecker or SetCRLs (e.g. the IGC-Santé CRLs, downloaded and
// refreshed by the portal) and, when Fetch is set, the ones it downloads
// from a certificate's CRL distribution points when none of those is
// current for its issuer (downloads are kept until their NextUpdate).
//
// A CRL is used for a certificate when it names the certificate's issuer,
// is signed by the issuer's key (the issuer having the cRLSign key usage
// if it has key usages), is current (ThisUpdate ≤ now < NextUpdate; a CRL
// without NextUpdate never is), is complete (not a delta CRL), direct (not
// indirect), covers all reasons and the certificate's kind (issuing
// distribution point) and has no critical extension it cannot process.
// A serial listed in a usable CRL is revoked, also when only suspended
// (certificateHold), unless a newer CRL (higher cRLNumber) lifted the
// suspension.
//
// The zero value is ready to use, with no CRL. Do not copy after use.
type CRLChecker struct {
	// Fetch downloads a CRL distribution point URL (nil: nothing is
	// downloaded). HTTPFetcher makes one; it must bound time and size.
	// A download is kept until its CRL's NextUpdate; one that failed or
	// gave no current CRL is tried again after FetchRetryDelay only.
	// Set it before first use.
	Fetch func(ctx context.Context, url string) ([]byte, error)

	mu       sync.RWMutex
	crls     []*crlIndex
	fetched  map[string]*fetchCall // last download, by URL
	inflight map[string]*fetchCall // downloads in progress
}

// FetchRetryDelay is how long CRLChecker waits before downloading again a
// distribution point whose last download failed or gave no current CRL,
// so that logins do not each wait for a server that is down.
const FetchRetryDelay = time.Minute

type fetchCall struct {
	done   chan struct{}
	crls   []*crlIndex
	err    error
	at     time.Time // wall clock, for FetchRetryDelay
	useful bool      // a CRL was current when downloaded
}

// NewCRLChecker returns a checker using crls (see LoadCRLs).
func NewCRLChecker(crls ...*x509.RevocationList) *CRLChecker {
	c := &CRLChecker{}
	c.SetCRLs(crls...)
	return c
}

// SetCRLs replaces the CRLs given so far, e.g. after a periodic download;
// checks in progress finish with the previous set.
func (c *CRLChecker) SetCRLs(crls ...*x509.RevocationList) {
	idx := make([]*crlIndex, 0, len(crls))
	for _, crl := range crls {
		if crl != nil {
			idx = append(idx, newCRLIndex(crl))
		}
	}
	c.mu.Lock()
	c.crls = idx
	c.mu.Unlock()
}

// Check implements RevocationChecker.
func (c *CRLChecker) Check(ctx context.Context, cert, issuer *x509.Certificate, now time.Time) error {
	if cert == nil || issuer == nil {
		return fmt.Errorf("%w: no certificate or issuer", ErrRevocationUnknown)
	}
	if !bytes.Equal(cert.RawIssuer, issuer.RawSubject) {
		return fmt.Errorf("%w: %q is not the issuer of the certificate", ErrRevocationUnknown, issuer.Subject.String())
	}
	c.mu.RLock()
	given := c.crls
	c.mu.RUnlock()
	var st crlSearch
	if done, err := st.look(given, cert, issuer, now); done {
		return err
	}
	if c.Fetch != nil {
		if done, err := c.fetchAndLook(ctx, &st, cert, issuer, now); done {
			return err
		}
	}
	return st.unknown(cert, issuer)
}

// fetchAndLook tries cert's distribution points: downloads still current
// first, then new downloads.
func (c *CRLChecker) fetchAndLook(ctx context.Context, st *crlSearch, cert, issuer *x509.Certificate, now time.Time) (bool, error) {
	var cached []*crlIndex
	c.mu.RLock()
	for _, url := range cert.CRLDistributionPoints {
		if last := c.fetched[url]; last != nil && currentAny(last.crls, now) {
			cached = append(cached, last.crls...)
		}
	}
	c.mu.RUnlock()
	if done, err := st.look(cached, cert, issuer, now); done {
		return true, err
	}
	for _, url := range cert.CRLDistributionPoints {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		crls, err := c.download(ctx, url, now)
		if err != nil {
			st.note(err.Error())
			continue
		}
		if done, err := st.look(crls, cert, issuer, now); done {
			return true, err
		}
	}
	return false, nil
}

func currentAny(crls []*crlIndex, now time.Time) bool {
	return slices.ContainsFunc(crls, func(ix *crlIndex) bool { return ix.current(now) })
}

// download returns the CRLs served at url: the last download while one
// of them is current (or within FetchRetryDelay of a useless one), else a
// new one. Concurrent checks needing the same URL (logins arriving
// together when a CRL expires) share one download.
func (c *CRLChecker) download(ctx context.Context, url string, now time.Time) ([]*crlIndex, error) {
	c.mu.Lock()
	if last := c.fetched[url]; last != nil &&
		(last.err == nil && currentAny(last.crls, now) || !last.useful && time.Since(last.at) < FetchRetryDelay) {
		c.mu.Unlock()
		return last.crls, last.err
	}
	call, ok := c.inflight[url]
	if !ok {
		call = &fetchCall{done: make(chan struct{})}
		if c.inflight == nil {
			c.inflight = map[string]*fetchCall{}
		}
		c.inflight[url] = call
	}
	c.mu.Unlock()
	if !ok {
		data, err := c.Fetch(ctx, url)
		if err != nil {
			call.err = fmt.Errorf("downloading %s: %w", url, err)
		} else if crls, err := ParseCRLs(data); err != nil {
			call.err = fmt.Errorf("%s: %w", url, err)
		} else {
			for _, crl := range crls {
				call.crls = append(call.crls, newCRLIndex(crl))
			}
		}
		call.at, call.useful = time.Now(), call.err == nil && currentAny(call.crls, now)
		c.mu.Lock()
		if c.fetched == nil {
			c.fetched = map[string]*fetchCall{}
		}
		c.fetched[url] = call
		delete(c.inflight, url)
		c.mu.Unlock()
		close(call.done)
	}
	select {
	case <-call.done:
		return call.crls, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// crlSearch gathers why no CRL could be used, for the error message.
type crlSearch struct {
	named   bool // some CRL named the issuer
	reasons []string
}

func (s *crlSearch) note(r string) {
	if !slices.Contains(s.reasons, r) {
		s.reasons = append(s.reasons, r)
	}
}

// look decides with the usable CRLs among crls and returns true with the
// verdict, or false when none is usable. A certificate listed in any of
// them is revoked, except when only suspended (certificateHold) in a CRL
// older than the newest one: a newer CRL can lift a suspension, never a
// revocation (RFC 5280 §5.3.1).
func (s *crlSearch) look(crls []*crlIndex, cert, issuer *x509.Certificate, now time.Time) (bool, error) {
	var usable []*crlIndex
	var newest *crlIndex
	for _, ix := range crls {
		if !bytes.Equal(ix.crl.RawIssuer, issuer.RawSubject) {
			continue
		}
		s.named = true
		if r := ix.unusableFor(cert, issuer, now); r != "" {
			s.note(r)
			continue
		}
		usable = append(usable, ix)
		if newest == nil || ix.newerThan(newest) {
			newest = ix
		}
	}
	if newest == nil {
		return false, nil
	}
	for _, ix := range usable {
		e := ix.find(cert)
		if e == nil || e.ReasonCode == reasonCertificateHold && newest.newerThan(ix) {
			continue
		}
		return true, &RevokedError{Certificate: cert, RevokedAt: e.RevocationTime, Reason: e.ReasonCode,
			Source: fmt.Sprintf("CRL of %q, %s", certName(issuer), ix.crl.ThisUpdate.UTC().Format(time.RFC3339))}
	}
	return true, nil
}

func (s *crlSearch) unknown(cert, issuer *x509.Certificate) error {
	if !s.named && len(s.reasons) == 0 {
		return fmt.Errorf("%w: %q (for %q)", ErrCRLNotFound, certName(issuer), certName(cert))
	}
	return fmt.Errorf("%w: no usable CRL of %q for %q: %s", ErrRevocationUnknown,
		certName(issuer), certName(cert), strings.Join(s.reasons, "; "))
}

// certName is the certificate's common name (the national identifier for
// a card), or its whole subject.
func certName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

// crlIndex is a CRL with its serials sorted for lookup and its
// signature checks remembered (hashing a large CRL costs milliseconds).
type crlIndex struct {
	crl      *x509.RevocationList
	order    []int32 // RevokedCertificateEntries indexes, by serial
	scope    idpScope
	problem  string // why the CRL can never be used, or ""
	mu       sync.Mutex
	verified map[[32]byte]error // by issuer certificate hash
}

type idpScope struct {
	userOnly, caOnly, attrOnly bool
	uris                       []string // full names of the distribution point
	otherName                  bool     // a distribution point name other than URIs
}

func newCRLIndex(crl *x509.RevocationList) *crlIndex {
	ix := &crlIndex{crl: crl}
	entries := crl.RevokedCertificateEntries
	if len(entries) > 1<<31-1 {
		ix.problem = "CRL with too many entries"
		return ix
	}
	ix.order = make([]int32, len(entries))
	for i := range ix.order {
		ix.order[i] = int32(i)
	}
	slices.SortFunc(ix.order, func(a, b int32) int { return entries[a].SerialNumber.Cmp(entries[b].SerialNumber) })
	for _, ext := range crl.Extensions {
		switch {
		case ext.Id.Equal(oidExtDeltaCRLIndicator):
			ix.problem = "delta CRL, not a complete CRL"
		case ext.Id.Equal(oidExtIssuingDistPoint):
			var err error
			if ix.scope, err = parseIDP(ext.Value); err != nil {
				ix.problem = "CRL issuing distribution point: " + err.Error()
			}
		case ext.Id.Equal(oidExtAuthorityKeyID), ext.Id.Equal(oidExtCRLNumber):
		case ext.Critical:
			ix.problem = fmt.Sprintf("CRL with unsupported critical extension %v", ext.Id)
		}
		if ix.problem != "" {
			return ix
		}
	}
	for _, e := range entries {
		for _, ext := range e.Extensions {
			switch {
			case ext.Id.Equal(oidExtCertificateIssuer):
				ix.problem = "indirect CRL (certificateIssuer entry extension)"
			case ext.Id.Equal(oidExtReasonCode), ext.Id.Equal(oidExtInvalidityDate), ext.Id.Equal(oidExtHoldInstructionCode):
			case ext.Critical:
				ix.problem = fmt.Sprintf("CRL with unsupported critical entry extension %v", ext.Id)
			}
			if ix.problem != "" {
				return ix
			}
		}
	}
	return ix
}

// parseIDP reads an issuingDistributionPoint extension (RFC 5280 §5.2.5,
// implicit tags). Partial-reason and indirect CRLs are refused.
func parseIDP(der []byte) (idpScope, error) {
	var sc idpScope
	in, seq := cryptobyte.String(der), cryptobyte.String(nil)
	if !in.ReadASN1(&seq, casn1.SEQUENCE) || !in.Empty() {
		return sc, errors.New("malformed issuing distribution point")
	}
	var dp cryptobyte.String
	var has bool
	if !seq.ReadOptionalASN1(&dp, &has, casn1.Tag(0).Constructed().ContextSpecific()) {
		return sc, errors.New("malformed issuing distribution point")
	}
	if has {
		var full cryptobyte.String
		var hasFull bool
		if !dp.ReadOptionalASN1(&full, &hasFull, casn1.Tag(0).Constructed().ContextSpecific()) {
			return sc, errors.New("malformed issuing distribution point name")
		}
		if !hasFull {
			sc.otherName = true
		}
		for !full.Empty() {
			var name cryptobyte.String
			var tag casn1.Tag
			if !full.ReadAnyASN1(&name, &tag) {
				return sc, errors.New("malformed issuing distribution point name")
			}
			if tag == casn1.Tag(6).ContextSpecific() {
				sc.uris = append(sc.uris, string(name))
			} else {
				sc.otherName = true
			}
		}
	}
	flag := func(n uint8) (bool, error) {
		var v cryptobyte.String
		var present bool
		if !seq.ReadOptionalASN1(&v, &present, casn1.Tag(n).ContextSpecific()) {
			return false, errors.New("malformed issuing distribution point")
		}
		if !present {
			return false, nil
		}
		if len(v) != 1 || (v[0] != 0 && v[0] != 0xff) {
			return false, errors.New("malformed issuing distribution point flag")
		}
		return v[0] == 0xff, nil
	}
	var err error
	if sc.userOnly, err = flag(1); err != nil {
		return sc, err
	}
	if sc.caOnly, err = flag(2); err != nil {
		return sc, err
	}
	if seq.PeekASN1Tag(casn1.Tag(3).ContextSpecific()) {
		return sc, errors.New("CRL limited to some revocation reasons (onlySomeReasons) not supported")
	}
	indirect, err := flag(4)
	if err != nil {
		return sc, err
	}
	if indirect {
		return sc, errors.New("indirect CRL not supported")
	}
	if sc.attrOnly, err = flag(5); err != nil {
		return sc, err
	}
	if !seq.Empty() {
		return sc, errors.New("malformed issuing distribution point")
	}
	return sc, nil
}

func (ix *crlIndex) current(now time.Time) bool {
	return !now.Before(ix.crl.ThisUpdate) && !ix.crl.NextUpdate.IsZero() && now.Before(ix.crl.NextUpdate)
}

func (ix *crlIndex) newerThan(o *crlIndex) bool {
	a, b := ix.crl.Number, o.crl.Number
	if a != nil && b != nil && a.Cmp(b) != 0 {
		return a.Cmp(b) > 0
	}
	return ix.crl.ThisUpdate.After(o.crl.ThisUpdate)
}

// unusableFor returns why ix cannot tell cert's status, or "".
func (ix *crlIndex) unusableFor(cert, issuer *x509.Certificate, now time.Time) string {
	if ix.problem != "" {
		return ix.problem
	}
	sc := ix.scope
	isCA := cert.BasicConstraintsValid && cert.IsCA
	switch {
	case sc.attrOnly, sc.userOnly && isCA, sc.caOnly && !isCA:
		return "CRL does not cover this kind of certificate"
	case sc.otherName:
		return "CRL of a distribution point named otherwise than by URI"
	case len(sc.uris) > 0 && !slices.ContainsFunc(sc.uris, func(u string) bool { return slices.Contains(cert.CRLDistributionPoints, u) }):
		return fmt.Sprintf("CRL of distribution point %s, not one of the certificate's", strings.Join(sc.uris, ", "))
	}
	switch {
	case now.Before(ix.crl.ThisUpdate):
		return fmt.Sprintf("CRL published %s, after the verification time", ix.crl.ThisUpdate.UTC().Format(time.RFC3339))
	case ix.crl.NextUpdate.IsZero():
		return "CRL without next update"
	case !now.Before(ix.crl.NextUpdate):
		return fmt.Sprintf("CRL out of date (next update %s)", ix.crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	if err := ix.checkSignature(issuer); err != nil {
		return fmt.Sprintf("CRL not signed by the issuer's key (%v)", err)
	}
	return ""
}

func (ix *crlIndex) checkSignature(issuer *x509.Certificate) error {
	if len(ix.crl.AuthorityKeyId) > 0 && len(issuer.SubjectKeyId) > 0 && !bytes.Equal(ix.crl.AuthorityKeyId, issuer.SubjectKeyId) {
		return errors.New("authority key identifier differs")
	}
	key := sha256.Sum256(issuer.Raw)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err, ok := ix.verified[key]; ok {
		return err
	}
	err := ix.crl.CheckSignatureFrom(issuer)
	if ix.verified == nil {
		ix.verified = map[[32]byte]error{}
	}
	ix.verified[key] = err
	return err
}

func (ix *crlIndex) find(cert *x509.Certificate) *x509.RevocationListEntry {
	entries := ix.crl.RevokedCertificateEntries
	i, ok := slices.BinarySearchFunc(ix.order, cert.SerialNumber, func(e int32, serial *big.Int) int {
		return entries[e].SerialNumber.Cmp(serial)
	})
	if !ok {
		return nil
	}
	return &entries[ix.order[i]]
}

const reasonCertificateHold = 6

var reasonNames = []string{"unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
	"cessationOfOperation", "certificateHold", "", "removeFromCRL", "privilegeWithdrawn", "aACompromise"}

func reasonName(code int) string {
	if code >= 0 && code < len(reasonNames) && reasonNames[code] != "" {
		return "reason " + reasonNames[code]
	}
	return fmt.Sprintf("reason %d", code)
}

func hasExtension(crl *x509.RevocationList, oid asn1.ObjectIdentifier) bool {
	return slices.ContainsFunc(crl.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(oid) })
}

// checkRevocation checks the certificates of the verified chains with
// v.Revocation and returns the first chain that passes (all of them share
// the end-entity certificate; they may differ in intermediates).
func (v *Verifier) checkRevocation(ctx context.Context, chains [][]*x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	if v.Revocation == nil {
		return chains[0], nil
	}
	var first error
	for _, chain := range chains {
		err := v.checkChainRevocation(ctx, chain, now)
		if err == nil {
			return chain, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// checkChainRevocation checks every certificate of chain but the trust
// anchor against its issuer: the end-entity certificate always, an
// intermediate CA when the checker has something for it (a CRL of its
// issuer, an OCSP responder).
func (v *Verifier) checkChainRevocation(ctx context.Context, chain []*x509.Certificate, now time.Time) error {
	for i := 0; i+1 < len(chain); i++ {
		err := v.Revocation.Check(ctx, chain[i], chain[i+1], now)
		switch {
		case err == nil:
		case errors.Is(err, ErrRevoked):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		case i > 0 && noRevocationSource(err):
		case v.RevocationSoftFail:
		case errors.Is(err, ErrRevocationUnknown):
			return err
		default:
			return fmt.Errorf("%w: %w", ErrRevocationUnknown, err)
		}
	}
	return nil
}

// noRevocationSource tells the errors of a checker that has nothing at
// all for a certificate (no CRL of its issuer, no OCSP responder): an
// intermediate CA is then not checked.
func noRevocationSource(err error) bool {
	return errors.Is(err, ErrCRLNotFound) || errors.Is(err, ErrOCSPNoResponder)
}
