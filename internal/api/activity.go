package api

import (
	"crypto/x509"
	"sync"
	"time"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/ledger"
	"github.com/cpsagent/cpsagent/internal/logging"
)

// readLedgerWindow: a card read by one origin is recorded once per card
// and result in this window. A page that polls GET /v1/card (or polls it
// with no card) would otherwise fill the bounded ledger and push the
// signatures out of it.
const readLedgerWindow = 10 * time.Minute

// record writes one ledger entry: e's operation, certificate serial and
// digest (filled by the handler), origin and result. A failure to write is
// logged; it never changes the answer.
func (s *Server) record(e *ledger.Entry, origin string, sig *card.Signature, result string) {
	if s.ledger == nil || e == nil {
		return
	}
	e.Origin, e.Result = origin, result
	if e.CertSerial == "" && sig != nil {
		e.CertSerial = certSerial(sig.Certificate)
	}
	if err := s.ledger.Record(*e); err != nil {
		s.log.Warn("activity ledger not written", logging.Op(string(e.Operation)), logging.Code(result), logging.Err(err))
	}
}

// recordRead records a card read, at most once per origin, certificate and
// result within readLedgerWindow.
func (s *Server) recordRead(origin string, cert *x509.Certificate, result string) {
	if s.ledger == nil {
		return
	}
	serial := certSerial(cert)
	if !s.reads.first(origin+"\x00"+serial+"\x00"+result, s.now()) {
		return
	}
	s.record(&ledger.Entry{Operation: ledger.OpReadCard, CertSerial: serial}, origin, nil, result)
}

// certSerial is the ledger form of a certificate serial number
// (hexadecimal, as x509.Certificate.SerialNumber.Text(16)); "" when there
// is none usable.
func certSerial(c *x509.Certificate) string {
	if c == nil || c.SerialNumber == nil || c.SerialNumber.Sign() < 0 {
		return ""
	}
	return c.SerialNumber.Text(16)
}

// readDedupe remembers which card reads were recorded recently.
type readDedupe struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// first reports whether key was not seen within readLedgerWindow before
// now, and marks it seen.
func (d *readDedupe) first(key string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[string]time.Time{}
	}
	if t, ok := d.seen[key]; ok && now.Sub(t) < readLedgerWindow && !now.Before(t) {
		return false
	}
	if len(d.seen) >= 256 {
		for k, t := range d.seen {
			if now.Sub(t) >= readLedgerWindow || now.Before(t) {
				delete(d.seen, k)
			}
		}
		if len(d.seen) >= 256 { // all recent: forget them rather than grow
			clear(d.seen)
		}
	}
	d.seen[key] = now
	return true
}
