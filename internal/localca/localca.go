// Package localca keeps the per-install certificate authority and the TLS
// server certificate of the agent's HTTPS API on 127.0.0.1 / [::1].
//
// On first use [Load] (or [Ensure]) creates, with crypto/rand, in a
// directory of its own (mode 0700):
//
//   - ca.pem, ca-key.pem: a CA, ECDSA P-256, random 128-bit serial, subject
//     "cpsagent local CA <host> <random id>", valid 825 days, basic constraints
//     CA with path length 0, key usage certSign|cRLSign, extended key usage
//     serverAuth, and critical Name Constraints permitting only DNS
//     "localhost" and the IP ranges 127.0.0.1/32 and ::1/128;
//   - cert.pem, key.pem: the server certificate, ECDSA P-256, SANs exactly
//     DNS:localhost, IP:127.0.0.1, IP:::1, extended key usage serverAuth,
//     ECDSA-SHA256, valid 397 days (never beyond the CA).
//
// Keys are written 0600, certificates 0644, each file atomically (temporary
// file, then rename). No key is ever shared between installs (security.md
// §2.3–2.4): everything is generated at runtime.
//
// # Keeping the CA key
//
// Fortify deletes its CA key once the server certificate is issued; renewing
// then means a new CA and a new trust prompt at least every 825 days, and
// after any server certificate problem. cpsagent keeps ca-key.pem (0600, in
// the agent's own directory) so that the server certificate can be renewed
// silently for the whole life of the CA. The blast radius of a stolen CA key is
// limited by the Name Constraints (enforced by Chrome since 112, always since
// 126, by Firefox, by Go and by OpenSSL; tested here): it can only mint
// certificates for localhost, 127.0.0.1 and ::1, which an attacker able to
// read the agent's files could attack anyway, and only for TLS servers (the
// CA's extended key usage). Protecting the key with DPAPI or the Keychain is
// left for the platform work.
//
// # Renewal
//
// The server certificate is reissued when less than a third of its lifetime
// or less than 30 days remain, or when it is invalid, unreadable, not signed
// by the current CA, has other names, or its key does not match. The CA is
// recreated when less than 60 days remain (or when it is invalid);
// [Changes.CARenewed] / [Changes.CACreated] then tell the caller that the new
// CA must be installed in the trust stores (OS, NSS, Firefox) — until then
// browsers reject the new server certificate. [Authority.Renew] is meant to
// be called from a timer (see [Authority.NextRenewal]); [Authority.TLSConfig]
// serves the current certificate through GetCertificate, so a renewal needs
// no restart, and GetCertificate also reissues a due server certificate by
// itself (never the CA, which needs the trust store).
//
// # Damaged files
//
// A file that cannot be parsed, does not match its pair, does not have the
// expected profile, or a key file readable by group or others (on Unix: the
// key may have been copied) is not an error: the CA or server certificate is
// regenerated and [Changes.Reason] says why. Errors are returned only for
// I/O failures (directory not creatable, file unreadable, disk full), which
// regeneration would not fix. Two processes must not run Load on the same
// directory at the same time.
package localca

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File names in the Authority's directory.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
	CertFile  = "cert.pem"
	KeyFile   = "key.pem"
)

// Lifetimes and renewal thresholds.
const (
	CAValidity       = 825 * 24 * time.Hour
	LeafValidity     = 397 * 24 * time.Hour
	CARenewBefore    = 60 * 24 * time.Hour // the CA is recreated when less remains
	LeafMinRemaining = 30 * 24 * time.Hour // the leaf is reissued when less remains (or less than 1/3 of its lifetime)
	backdate         = time.Hour           // NotBefore is set this much in the past (clock skew)
	lazyRetry        = time.Minute         // GetCertificate retries a failed renewal at most this often
)

// Changes reports what Load or Renew did.
type Changes struct {
	// CACreated: there was no usable CA (first run, or the files were
	// missing or damaged, see Reason) and a new one was created. It must be
	// installed in the trust stores.
	CACreated bool
	// CARenewed: the CA had less than 60 days left (or had expired) and was
	// replaced. The trust stores must be updated (and the old CA removed).
	CARenewed bool
	// LeafIssued: a new server certificate was issued.
	LeafIssued bool
	// Reason explains the changes, for logs ("" when nothing changed).
	Reason string
	// ReplacedCA is the previous CA when a readable one was replaced (to be
	// removed from the trust stores), else nil.
	ReplacedCA *x509.Certificate
}

// TrustStoreUpdateNeeded reports whether the CA changed, so that the trust
// stores must be updated.
func (c Changes) TrustStoreUpdateNeeded() bool { return c.CACreated || c.CARenewed }

// An Authority is the loaded CA and server certificate of one directory. It
// is safe for concurrent use.
type Authority struct {
	dir string
	now func() time.Time

	mu        sync.Mutex // serialises renewals
	st        atomic.Pointer[state]
	lazyAfter atomic.Int64 // unix nanoseconds before which GetCertificate does not retry a renewal
}

// state is immutable once stored.
type state struct {
	ca          *x509.Certificate
	caKey       *ecdsa.PrivateKey
	caPEM       []byte
	leaf        *tls.Certificate // Leaf is set
	leafRenewAt time.Time
}

// Ensure is Load with the system clock.
func Ensure(dir string) (*Authority, Changes, error) {
	return Load(dir, time.Now)
}

// Load reads the CA and the server certificate from dir, creating the
// directory and whatever is missing, damaged or due for renewal at now(). now
// is also the clock of GetCertificate's own renewals; nil means time.Now.
func Load(dir string, now func() time.Time) (*Authority, Changes, error) {
	if now == nil {
		now = time.Now
	}
	if err := prepareDir(dir); err != nil {
		return nil, Changes{}, err
	}
	a := &Authority{dir: dir, now: now}
	a.mu.Lock()
	defer a.mu.Unlock()

	var reasons []string
	cur := &state{}
	ca, caKey, caPEM, problem, err := loadCA(dir)
	if err != nil {
		return nil, Changes{}, err
	}
	if problem != "" {
		reasons = append(reasons, problem)
	} else {
		cur.ca, cur.caKey, cur.caPEM = ca, caKey, caPEM
	}
	leaf, problem, err := loadLeaf(dir)
	if err != nil {
		return nil, Changes{}, err
	}
	if problem != "" {
		reasons = append(reasons, problem)
	} else {
		cur.leaf = leaf
	}
	ch, err := a.renewLocked(cur, now(), reasons, true)
	if err != nil {
		return nil, Changes{}, err
	}
	return a, ch, nil
}

// Renew recreates the CA and/or reissues the server certificate if they are
// due at now (see the package documentation), and makes GetCertificate serve
// the new certificate. Call it from a timer; act on
// Changes.TrustStoreUpdateNeeded.
func (a *Authority) Renew(now time.Time) (Changes, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.renewLocked(a.st.Load(), now, nil, true)
}

// NextRenewal is when the CA or the server certificate becomes due for
// renewal.
func (a *Authority) NextRenewal() time.Time {
	st := a.st.Load()
	caDue := st.ca.NotAfter.Add(-CARenewBefore)
	if st.leafRenewAt.Before(caDue) {
		return st.leafRenewAt
	}
	return caDue
}

// renewLocked checks cur at now and replaces what is missing, invalid or due.
// With allowCA false the CA is never recreated (the GetCertificate path).
func (a *Authority) renewLocked(cur *state, now time.Time, reasons []string, allowCA bool) (Changes, error) {
	var ch Changes
	next := *cur
	createdCA := false
	switch {
	case cur.ca == nil:
		ch.CACreated = true
	default:
		problem, nearExpiry := checkCA(cur.ca, cur.caKey, now)
		switch {
		case problem != "":
			reasons = append(reasons, CAFile+": "+problem)
			ch.CACreated = true
		case nearExpiry:
			reasons = append(reasons, fmt.Sprintf("%s: expires %s, less than %d days away", CAFile, cur.ca.NotAfter.UTC().Format(time.DateOnly), CARenewBefore/(24*time.Hour)))
			ch.CARenewed = true
		}
	}
	if ch.CACreated || ch.CARenewed {
		ch.ReplacedCA = cur.ca
		if !allowCA {
			return Changes{}, errors.New("localca: the CA must be renewed (call Renew)")
		}
		ca, caKey, caPEM, err := newCA(now)
		if err != nil {
			return Changes{}, err
		}
		next.ca, next.caKey, next.caPEM = ca, caKey, caPEM
		createdCA = true
	}

	leafDue := createdCA || cur.leaf == nil
	if cur.leaf == nil && !createdCA && len(reasons) == 0 {
		reasons = append(reasons, CertFile+" and "+KeyFile+": missing")
	}
	if !leafDue {
		problem, due := checkLeaf(cur.leaf, next.ca, now)
		switch {
		case problem != "":
			reasons = append(reasons, CertFile+": "+problem)
			leafDue = true
		case due:
			reasons = append(reasons, fmt.Sprintf("%s: expires %s, renewal due", CertFile, cur.leaf.Leaf.NotAfter.UTC().Format(time.DateOnly)))
			leafDue = true
		}
	}
	if leafDue {
		leaf, err := newLeaf(next.ca, next.caKey, now)
		if err != nil {
			return Changes{}, err
		}
		next.leaf = leaf
		ch.LeafIssued = true
	}
	next.leafRenewAt = leafRenewAt(next.leaf.Leaf)

	if createdCA {
		if err := writeCA(a.dir, next.caKey, next.caPEM); err != nil {
			return Changes{}, err
		}
	}
	if ch.LeafIssued {
		if err := writeLeaf(a.dir, next.leaf); err != nil {
			return Changes{}, err
		}
	}
	ch.Reason = strings.Join(reasons, "; ")
	if ch.CACreated && ch.Reason == "" {
		ch.Reason = "new CA"
	}
	a.st.Store(&next)
	return ch, nil
}

// TLSConfig returns a server configuration (TLS 1.2 minimum) whose
// GetCertificate serves the current server certificate, renewing it when due.
// Handshakes naming another server than localhost (SNI) are refused: the
// certificate would not match anyway, and a DNS-rebinding name never reaches
// the HTTP layer.
func (a *Authority) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: a.getCertificate,
	}
}

func (a *Authority) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if name := hello.ServerName; name != "" && !strings.EqualFold(name, "localhost") {
		return nil, fmt.Errorf("localca: server name %q is not served (only localhost, 127.0.0.1, ::1)", truncate(name, 64))
	}
	st := a.st.Load()
	now := a.now()
	if now.Before(st.leafRenewAt) || now.UnixNano() < a.lazyAfter.Load() {
		return st.leaf, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st = a.st.Load()
	if now.Before(st.leafRenewAt) { // renewed meanwhile
		return st.leaf, nil
	}
	if _, err := a.renewLocked(st, now, nil, false); err != nil {
		// keep serving the current certificate; Renew will report the problem
		a.lazyAfter.Store(now.Add(lazyRetry).UnixNano())
		return st.leaf, nil
	}
	return a.st.Load().leaf, nil
}

// CACert returns the CA certificate.
func (a *Authority) CACert() *x509.Certificate { return a.st.Load().ca }

// CACertPEM returns the CA certificate in PEM.
func (a *Authority) CACertPEM() []byte { return append([]byte(nil), a.st.Load().caPEM...) }

// CACertFile returns the path of ca.pem (for trust-store tools such as
// certutil).
func (a *Authority) CACertFile() string { return filepath.Join(a.dir, CAFile) }

// Fingerprint returns the SHA-256 of the CA certificate (DER), lowercase hex.
func (a *Authority) Fingerprint() string {
	sum := sha256.Sum256(a.st.Load().ca.Raw)
	return hex.EncodeToString(sum[:])
}

// Leaf returns the server certificate currently served.
func (a *Authority) Leaf() *x509.Certificate { return a.st.Load().leaf.Leaf }

// Dir returns the directory of the Authority.
func (a *Authority) Dir() string { return a.dir }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
