// Package apdu encodes and decodes ISO/IEC 7816-4 command and response APDUs,
// maps status words to typed errors, parses BER-TLV, and runs the one
// transmit loop of the agent (T=0 GET RESPONSE, 6Cxx retry, command chaining).
//
// Only short APDUs exist here: CPx cards advertise no extended length in EF.ATR
// (card-cpx.md §5.2), so longer bodies are sent with command chaining.
package apdu

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Instruction bytes used by the agent and the virtual card.
const (
	InsVerify                    = 0x20
	InsChangeReferenceData       = 0x24
	InsResetRetryCounter         = 0x2C
	InsManageSecurityEnv         = 0x22
	InsPerformSecurityOp         = 0x2A
	InsInternalAuthenticate      = 0x88
	InsSelect                    = 0xA4
	InsReadBinary                = 0xB0
	InsGetResponse               = 0xC0
	InsGetData                   = 0xCB
	InsGetChallenge              = 0x84
	ClaChaining             byte = 0x10
)

// MaxShortData is the largest data field of a short command APDU.
const MaxShortData = 255

// MaxShortLe is the largest Le of a short APDU (encoded as 00).
const MaxShortLe = 256

// NoLe marks a command without an Le field.
const NoLe = -1

// ErrMalformed is returned for byte strings that are not a valid APDU.
var ErrMalformed = errors.New("apdu: malformed")

// Command is a short command APDU. Le is NoLe when absent, 1..256 otherwise
// (256 is encoded as 00).
type Command struct {
	CLA, INS, P1, P2 byte
	Data             []byte
	Le               int
}

// Bytes encodes c as a short APDU (ISO 7816-3 cases 1 to 4).
func (c Command) Bytes() ([]byte, error) {
	if len(c.Data) > MaxShortData {
		return nil, fmt.Errorf("%w: data field of %d bytes needs chaining", ErrMalformed, len(c.Data))
	}
	if c.Le != NoLe && (c.Le < 0 || c.Le > MaxShortLe) {
		return nil, fmt.Errorf("%w: Le %d out of range", ErrMalformed, c.Le)
	}
	b := make([]byte, 0, 5+len(c.Data)+1)
	b = append(b, c.CLA, c.INS, c.P1, c.P2)
	if len(c.Data) > 0 {
		b = append(b, byte(len(c.Data)))
		b = append(b, c.Data...)
	}
	if c.Le != NoLe {
		b = append(b, byte(c.Le)) // 256 -> 0x00
	}
	return b, nil
}

// ParseCommand decodes a short command APDU (cases 1 to 4). Extended-length
// encodings are rejected, as the CPx cards do not support them.
func ParseCommand(b []byte) (Command, error) {
	if len(b) < 4 {
		return Command{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	c := Command{CLA: b[0], INS: b[1], P1: b[2], P2: b[3], Le: NoLe}
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
	case len(body) == 1: // case 2
		c.Le = int(body[0])
		if c.Le == 0 {
			c.Le = MaxShortLe
		}
	default:
		lc := int(body[0])
		if lc == 0 {
			return Command{}, fmt.Errorf("%w: extended length not supported", ErrMalformed)
		}
		switch len(body) {
		case 1 + lc: // case 3
			c.Data = append([]byte(nil), body[1:]...)
		case 2 + lc: // case 4
			c.Data = append([]byte(nil), body[1:1+lc]...)
			c.Le = int(body[1+lc])
			if c.Le == 0 {
				c.Le = MaxShortLe
			}
		default:
			return Command{}, fmt.Errorf("%w: Lc %d does not match %d body bytes", ErrMalformed, lc, len(body))
		}
	}
	return c, nil
}

// Response is a response APDU.
type Response struct {
	Data []byte
	SW   uint16
}

// ParseResponse splits raw bytes into data and status word.
func ParseResponse(b []byte) (Response, error) {
	if len(b) < 2 {
		return Response{}, fmt.Errorf("%w: response of %d bytes", ErrMalformed, len(b))
	}
	n := len(b) - 2
	return Response{Data: append([]byte(nil), b[:n]...), SW: uint16(b[n])<<8 | uint16(b[n+1])}, nil
}

// Bytes encodes r as data followed by SW1 SW2.
func (r Response) Bytes() []byte {
	b := make([]byte, 0, len(r.Data)+2)
	b = append(b, r.Data...)
	return append(b, byte(r.SW>>8), byte(r.SW))
}

// SW1 returns the first status byte.
func (r Response) SW1() byte { return byte(r.SW >> 8) }

// SW2 returns the second status byte.
func (r Response) SW2() byte { return byte(r.SW) }

// Err returns nil for 90 00 and a *StatusError otherwise.
func (r Response) Err() error {
	if r.SW == SWSuccess {
		return nil
	}
	return &StatusError{SW: r.SW}
}

// secretINS lists the instructions whose data field carries a PIN or PUK.
var secretINS = map[byte]bool{InsVerify: true, InsChangeReferenceData: true, InsResetRetryCounter: true}

// CarriesSecret reports whether a command's data field holds a PIN or PUK.
func CarriesSecret(ins byte) bool { return secretINS[ins] }

// carriesDocument reports whether a command's data field holds bytes of the
// signed document: PSO HASH (00 2A 90 A0) carries the message tail.
func carriesDocument(cmd []byte) bool {
	return len(cmd) > 5 && (cmd[1] == InsPerformSecurityOp || cmd[1] == InsInternalAuthenticate)
}

// Redact formats a command APDU for a trace or log with the data of PIN
// commands and of every cryptographic operation (PSO HASH carries document
// bytes; PSO CDS, PSO DECIPHER and INTERNAL AUTHENTICATE carry hashes of
// what is signed) replaced by "**" per byte, so a trace can never leak a
// PIN or tell what was signed.
func Redact(cmd []byte) string {
	if len(cmd) > 5 && (CarriesSecret(cmd[1]) || carriesDocument(cmd)) {
		masked := strings.Repeat(" **", len(cmd)-5)
		return strings.ToUpper(spaced(cmd[:5])) + masked
	}
	return strings.ToUpper(spaced(cmd))
}

func spaced(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	h := hex.EncodeToString(b)
	var sb strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(h[i : i+2])
	}
	return sb.String()
}

// Hex formats bytes as spaced upper-case hex ("3B AC 00").
func Hex(b []byte) string { return strings.ToUpper(spaced(b)) }
