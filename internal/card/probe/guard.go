package probe

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// ErrRefused is returned by Guard.Transmit for a command the probe must
// never send. Nothing reaches the card.
var ErrRefused = errors.New("probe: command refused by the read-only guard")

// DeniedINS names the instructions the guard refuses whatever their
// parameters: everything that presents or changes a secret, moves a
// counter, uses a key or the security environment, or writes. The guard
// also refuses every instruction that is not in AllowedINS, so this list
// is the explanation, not the only barrier.
var DeniedINS = map[byte]string{
	0x04: "DEACTIVATE FILE",
	0x0C: "ERASE RECORD",
	0x0E: "ERASE BINARY",
	0x0F: "ERASE BINARY",
	0x10: "PERFORM SCQL OPERATION",
	0x12: "PERFORM TRANSACTION OPERATION",
	0x14: "PERFORM USER OPERATION",
	0x21: "VERIFY (BER-TLV data)",
	0x22: "MANAGE SECURITY ENVIRONMENT",
	0x24: "CHANGE REFERENCE DATA",
	0x25: "CHANGE REFERENCE DATA",
	0x26: "DISABLE VERIFICATION REQUIREMENT",
	0x28: "ENABLE VERIFICATION REQUIREMENT",
	0x2A: "PERFORM SECURITY OPERATION",
	0x2B: "PERFORM SECURITY OPERATION",
	0x2C: "RESET RETRY COUNTER",
	0x2D: "RESET RETRY COUNTER",
	0x44: "ACTIVATE FILE",
	0x46: "GENERATE ASYMMETRIC KEY PAIR",
	0x47: "GENERATE ASYMMETRIC KEY PAIR",
	0x82: "EXTERNAL / MUTUAL AUTHENTICATE",
	0x84: "GET CHALLENGE",
	0x86: "GENERAL AUTHENTICATE",
	0x87: "GENERAL AUTHENTICATE",
	0x88: "INTERNAL AUTHENTICATE",
	0xC2: "ENVELOPE",
	0xC3: "ENVELOPE",
	0xD0: "WRITE BINARY",
	0xD1: "WRITE BINARY",
	0xD2: "WRITE RECORD",
	0xD6: "UPDATE BINARY",
	0xD7: "UPDATE BINARY",
	0xDA: "PUT DATA",
	0xDB: "PUT DATA",
	0xDC: "UPDATE RECORD",
	0xDD: "UPDATE RECORD",
	0xE0: "CREATE FILE",
	0xE2: "APPEND RECORD",
	0xE4: "DELETE FILE",
	0xE6: "TERMINATE DF",
	0xE8: "TERMINATE EF",
	0xFE: "TERMINATE CARD USAGE",
}

// AllowedINS names the only instructions the guard lets through, each with
// its restriction.
var AllowedINS = map[byte]string{
	apdu.InsSelect:      "SELECT",
	apdu.InsReadBinary:  "READ BINARY",
	0xB1:                "READ BINARY (odd INS)",
	0xB2:                "READ RECORD",
	0xB3:                "READ RECORD (odd INS)",
	apdu.InsGetResponse: "GET RESPONSE",
	0xCA:                "GET DATA",
	apdu.InsGetData:     "GET DATA (odd INS)",
	apdu.InsVerify:      "VERIFY without data only (reads the tries left; at most 4 per reference)",
	0x70:                "MANAGE CHANNEL, open only (P1 00; the CPS4 applet's logical channel)",
}

// maxStatusQueries bounds the VERIFY-without-data commands per reference
// (CLA channel and P2): the probe needs at most four (MF, application
// DF, then the agent's own status read with the quirks in use and with the
// suggested ones); a loop in the probe can never become a stream of VERIFYs.
const maxStatusQueries = 4

// Exchange is one command through the guard, for the report's trace.
// Commands carry no secret (the guard refuses those); responses are
// summarised (status word and length), their data is not kept here.
type Exchange struct {
	Command string `json:"command"`          // spaced hex
	SW      string `json:"sw,omitempty"`     // "90 00"
	Length  int    `json:"length,omitempty"` // response data bytes
	Refused string `json:"refused,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Guard is the probe's only way to the card: an apdu.Transmitter that
// refuses every command that is not read-only and non-consuming, before
// it reaches the next transmitter.
type Guard struct {
	next apdu.Transmitter

	mu       sync.Mutex
	log      []Exchange
	queries  map[[2]byte]int
	refusals int
	sent     int
}

// NewGuard wraps next.
func NewGuard(next apdu.Transmitter) *Guard {
	return &Guard{next: next, queries: map[[2]byte]int{}}
}

// Check says why cmd would be refused ("" when it would be sent). It
// never changes the guard's counters.
func Check(cmd []byte) string {
	if len(cmd) < 4 {
		return "not a command APDU"
	}
	cla, ins, p1 := cmd[0], cmd[1], cmd[2]
	switch {
	case cla == 0xFF:
		return "CLA FF (reader pseudo-APDU)"
	case cla&0x80 != 0:
		return fmt.Sprintf("proprietary class %02X", cla)
	case cla&0x10 != 0:
		return "command chaining (the probe sends no long data)"
	case cla&0x0C != 0:
		return "secure messaging"
	}
	if name, denied := DeniedINS[ins]; denied {
		return fmt.Sprintf("INS %02X (%s) is never sent by the probe", ins, name)
	}
	if _, ok := AllowedINS[ins]; !ok {
		return fmt.Sprintf("INS %02X is not a read-only instruction the probe uses", ins)
	}
	switch ins {
	case apdu.InsVerify:
		// Case 1 (4 bytes) or the T=0 header with P3 = 00: no data field.
		if len(cmd) > 5 || len(cmd) == 5 && cmd[4] != 0x00 {
			return "VERIFY with data (a PIN or PUK presentation) is never sent by the probe"
		}
	case 0x70:
		if p1 != 0x00 || len(cmd) > 5 {
			return "MANAGE CHANNEL other than open"
		}
	}
	return ""
}

// Transmit implements apdu.Transmitter.
func (g *Guard) Transmit(cmd []byte) ([]byte, error) {
	why := Check(cmd)
	g.mu.Lock()
	if why == "" && len(cmd) >= 4 && cmd[1] == apdu.InsVerify {
		k := [2]byte{cmd[0] & 0x03, cmd[3]}
		if g.queries[k] >= maxStatusQueries {
			why = fmt.Sprintf("more than %d VERIFY without data for reference %02X", maxStatusQueries, cmd[3])
		} else {
			g.queries[k]++
		}
	}
	if why != "" {
		g.refusals++
		g.log = append(g.log, Exchange{Command: apdu.Hex(cmd[:min(len(cmd), 5)]), Refused: why})
		g.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrRefused, why)
	}
	g.sent++
	g.mu.Unlock()
	resp, err := g.next.Transmit(cmd)
	e := Exchange{Command: apdu.Hex(cmd)}
	switch {
	case err != nil:
		e.Error = err.Error()
	case len(resp) >= 2:
		e.SW = apdu.Hex(resp[len(resp)-2:])
		e.Length = len(resp) - 2
	}
	g.mu.Lock()
	g.log = append(g.log, e)
	g.mu.Unlock()
	return resp, err
}

// Log returns the exchanges so far.
func (g *Guard) Log() []Exchange {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Exchange(nil), g.log...)
}

// Counts returns the commands sent and refused.
func (g *Guard) Counts() (sent, refused int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sent, g.refusals
}

// AllowedList describes the allowed instructions, sorted, for the report.
func AllowedList() []string {
	out := make([]string, 0, len(AllowedINS))
	for ins, what := range AllowedINS {
		out = append(out, fmt.Sprintf("%02X %s", ins, what))
	}
	sort.Strings(out)
	return out
}
