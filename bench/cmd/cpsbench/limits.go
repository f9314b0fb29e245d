package main

import (
	"fmt"
	"time"

	"github.com/cpsagent/cpsagent/internal/card/virtual"
)

// exchange is one APDU of a minimal card dialogue.
type exchange struct {
	name     string
	cmdData  int  // Lc bytes
	respData int  // response data bytes (before SW1 SW2)
	caseFour bool // short case-4 command: a Le byte follows the data in the APDU (not sent over T=0)
}

// wireChars is the number of T=0 characters exchanged: the 5-byte header,
// one procedure byte (the INS acknowledgement) before any data transfer,
// the data both ways and the 2 status bytes (ISO 7816-3 §10.3).
func (e exchange) wireChars() int64 {
	n := 5 + e.cmdData + e.respData + 2
	if e.cmdData > 0 || e.respData > 0 {
		n++
	}
	return int64(n)
}

// modelBytes is what the virtual card's latency model charges for: the
// command APDU as sent through PC/SC and the response APDU.
func (e exchange) modelBytes() int64 {
	n := 5 + e.cmdData + e.respData + 2
	if e.caseFour {
		n++
	}
	return int64(n)
}

// hashLc is the PSO HASH data length for a message of n bytes: the host
// hashes all complete 64-byte blocks but the last 1..64 bytes and sends
// "90 L <state> <count>" (or "90 00") and "80 t <tail>".
func hashLc(n int) int {
	pre := 0
	if n > 64 {
		pre = (n - 1) / 64 * 64
	}
	tail := n - pre
	if pre == 0 {
		return 2 + 2 + tail
	}
	return 2 + 32 + 8 + 2 + tail
}

// minimalSign is the shortest dialogue a CPS3 needs for a signature with
// the PIN (card-cpx.md §4.2): VERIFY, MSE SET HT, MSE SET DST, PSO HASH,
// PSO CDS (61 00) and GET RESPONSE of the 256-byte signature.
func minimalSign(dataLen int) []exchange {
	return []exchange{
		{name: "VERIFY (PIN)", cmdData: 4},
		{name: "MSE SET HT", cmdData: 3},
		{name: "MSE SET DST", cmdData: 6},
		{name: "PSO HASH", cmdData: hashLc(dataLen)},
		{name: "PSO CDS (61 00)"},
		{name: "GET RESPONSE", respData: 256},
	}
}

// minimalAuth is the shortest authentication (card-cpx.md §4.1): VERIFY,
// MSE SET AT, INTERNAL AUTHENTICATE of a 51-byte DigestInfo (61 00) and
// GET RESPONSE.
func minimalAuth() []exchange {
	return []exchange{
		{name: "VERIFY (PIN)", cmdData: 4},
		{name: "MSE SET AT", cmdData: 6},
		{name: "INTERNAL AUTHENTICATE (61 00)", cmdData: 51, caseFour: true},
		{name: "GET RESPONSE", respData: 256},
	}
}

// computeLimit prices a minimal dialogue: the physical floor (RSA + T=0
// transfer at the model's per-byte rate) and the whole model's price.
func computeLimit(op string, ex []exchange, lat virtual.Latency) Limit {
	l := Limit{Op: op, RSA: lat.RSA, PerAPDU: lat.PerAPDU}
	var modelBytes int64
	for _, e := range ex {
		l.Exchange = append(l.Exchange, fmt.Sprintf("%s: %d chars", e.name, e.wireChars()))
		l.Bytes += e.wireChars()
		modelBytes += e.modelBytes()
	}
	l.Transfer = time.Duration(l.Bytes) * lat.PerByte
	l.Total = l.Transfer + l.RSA
	l.ModelMin = time.Duration(len(ex))*lat.PerAPDU + time.Duration(modelBytes)*lat.PerByte + lat.RSA
	return l
}

// projectSignCompletion prices what OpenSC would still have sent after
// stopping before PSO HASH: PSO HASH, PSO CDS and GET RESPONSE.
func projectSignCompletion(dataLen int, lat virtual.Latency) *Projection {
	ex := minimalSign(dataLen)[3:]
	p := &Projection{APDUs: int64(len(ex))}
	for _, e := range ex {
		p.Bytes += e.modelBytes()
	}
	p.Modelled = time.Duration(p.APDUs)*lat.PerAPDU + time.Duration(p.Bytes)*lat.PerByte + lat.RSA
	return p
}
