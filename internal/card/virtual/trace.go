package virtual

import (
	"fmt"
	"strings"
	"time"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// Stats counts what a card did, so tests and benchmarks can count APDUs
// and cryptographic operations per operation.
type Stats struct {
	APDUs         int64         `json:"apdus"`        // commands processed, GET RESPONSE included
	GetResponses  int64         `json:"getResponses"` // GET RESPONSE commands
	BytesIn       int64         `json:"bytesIn"`
	BytesOut      int64         `json:"bytesOut"`
	Verifies      int64         `json:"verifies"`     // VERIFY with data
	WrongSecrets  int64         `json:"wrongSecrets"` // wrong PIN or PUK presentations
	PINChanges    int64         `json:"pinChanges"`
	Unblocks      int64         `json:"unblocks"`
	Hashes        int64         `json:"hashes"` // PSO HASH
	Signatures    int64         `json:"signatures"`
	InternalAuths int64         `json:"internalAuths"`
	Deciphers     int64         `json:"deciphers"`
	Resets        int64         `json:"resets"`
	PowerOns      int64         `json:"powerOns"`
	Latency       time.Duration `json:"latency"` // total modelled latency
}

func (s Stats) rsaOps() int64 { return s.Signatures + s.InternalAuths + s.Deciphers }

// CryptoOps is the number of private-key operations.
func (s Stats) CryptoOps() int64 { return s.rsaOps() }

// Sub returns s minus an earlier snapshot (per-operation counts).
func (s Stats) Sub(before Stats) Stats {
	return Stats{
		APDUs: s.APDUs - before.APDUs, GetResponses: s.GetResponses - before.GetResponses,
		BytesIn: s.BytesIn - before.BytesIn, BytesOut: s.BytesOut - before.BytesOut,
		Verifies: s.Verifies - before.Verifies, WrongSecrets: s.WrongSecrets - before.WrongSecrets,
		PINChanges: s.PINChanges - before.PINChanges, Unblocks: s.Unblocks - before.Unblocks,
		Hashes: s.Hashes - before.Hashes, Signatures: s.Signatures - before.Signatures,
		InternalAuths: s.InternalAuths - before.InternalAuths, Deciphers: s.Deciphers - before.Deciphers,
		Resets: s.Resets - before.Resets, PowerOns: s.PowerOns - before.PowerOns,
		Latency: s.Latency - before.Latency,
	}
}

// Stats returns a snapshot of the counters.
func (c *Card) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// ResetStats sets every counter to zero.
func (c *Card) ResetStats() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats = Stats{}
}

// PINStatus reports the PIN and PUK counters (for the vcard command and
// tests; a host reads them with VERIFY without data or GET DATA).
type PINStatus struct {
	PINTriesLeft int  `json:"pinTriesLeft"`
	PINVerified  bool `json:"pinVerified"`
	PUKTriesLeft int  `json:"pukTriesLeft"`
	PUKUsesLeft  int  `json:"pukUsesLeft"`
	PUKVerified  bool `json:"pukVerified"`
}

// PINStatus returns the current counters.
func (c *Card) PINStatus() PINStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return PINStatus{
		PINTriesLeft: c.pin.tries, PINVerified: c.pin.verified,
		PUKTriesLeft: c.puk.tries, PUKUsesLeft: c.puk.uses, PUKVerified: c.puk.verified,
	}
}

// traceExchange writes one line for the command and one for the response.
// PIN data is masked by apdu.Redact; document bytes (PSO HASH tail) and
// deciphered data are masked here.
func (c *Card) traceExchange(cmd, resp []byte) {
	w := c.cfg.Trace
	if w == nil {
		return
	}
	ts := c.now().UTC().Format("2006-01-02T15:04:05.000000Z")
	fmt.Fprintf(w, "%s > %s\n", ts, redactCommand(cmd))
	r := apdu.Hex(resp)
	if c.maskResp && len(resp) > 2 {
		r = strings.TrimSpace(strings.Repeat("** ", len(resp)-2)) + " " + apdu.Hex(resp[len(resp)-2:])
	}
	fmt.Fprintf(w, "%s < %s\n", ts, r)
}

// redactCommand masks the secrets and document bytes of a command: PIN
// data, and the data of every PSO (PSO HASH: document bytes; the CPS4's
// PSO CDS: the document's hash, and its PSO DECIPHER: the padded
// authentication input).
func redactCommand(cmd []byte) string {
	if len(cmd) > 5 && cmd[1] == apdu.InsPerformSecurityOp {
		return apdu.Hex(cmd[:5]) + strings.Repeat(" **", len(cmd)-5)
	}
	return apdu.Redact(cmd)
}

func (c *Card) traceEvent(what string) {
	if w := c.cfg.Trace; w != nil {
		fmt.Fprintf(w, "%s # %s\n", c.now().UTC().Format("2006-01-02T15:04:05.000000Z"), what)
	}
}

// TraceEvent writes a comment line to the card's trace (vpcd connection
// events, test markers).
func (c *Card) TraceEvent(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.traceEvent(what)
}
