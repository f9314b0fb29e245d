package apdu

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Transmitter sends one raw command APDU and returns the raw response. It has
// the signature of (*scard.Card).Transmit, so a PC/SC card, the in-process
// virtual card and a trace recorder all satisfy it.
type Transmitter interface {
	Transmit(cmd []byte) ([]byte, error)
}

// TransmitFunc adapts a function to Transmitter.
type TransmitFunc func(cmd []byte) ([]byte, error)

// Transmit calls f.
func (f TransmitFunc) Transmit(cmd []byte) ([]byte, error) { return f(cmd) }

// ErrTransport wraps failures below the APDU layer (reader, PC/SC service).
var ErrTransport = errors.New("apdu: transport failure")

// maxGetResponseRounds bounds the GET RESPONSE loop against a card that
// answers 61xx forever.
const maxGetResponseRounds = 64

// Channel runs the agent's single transmit loop over a Transmitter:
//   - command chaining (CLA bit 0x10) for data fields over 255 bytes;
//   - T=0 "61 xx": GET RESPONSE with the same logical channel until 90 00 or
//     another final status, concatenating the data;
//   - "6C xx": the command is sent again once with Le = xx.
//
// It also counts APDUs and reports each exchange to an optional trace hook.
type Channel struct {
	T Transmitter
	// GetResponseMax caps the Le of each GET RESPONSE (0 means as the card
	// asks). The CPS vendor driver uses 0xE7 (card-cpx.md §5.2).
	GetResponseMax int
	// Trace, when set, receives each raw exchange. Commands that carry a PIN
	// must be formatted with Redact before anything is written.
	Trace func(cmd, resp []byte, err error)

	count atomic.Int64
}

// Count returns the number of APDUs exchanged so far.
func (ch *Channel) Count() int64 { return ch.count.Load() }

func (ch *Channel) raw(cmd []byte) (Response, error) {
	ch.count.Add(1)
	resp, err := ch.T.Transmit(cmd)
	if ch.Trace != nil {
		ch.Trace(cmd, resp, err)
	}
	if len(cmd) > 1 && CarriesSecret(cmd[1]) {
		clear(cmd) // the encoded APDU holds the PIN: do not leave it to the GC
	}
	if err != nil {
		return Response{}, fmt.Errorf("%w: %w", ErrTransport, err)
	}
	r, perr := ParseResponse(resp)
	if perr != nil {
		return Response{}, fmt.Errorf("%w: %w", ErrTransport, perr)
	}
	return r, nil
}

// Do sends c and returns the final response. A non-9000 status is not an
// error here; use Response.Err or Send. Errors are transport failures only.
func (ch *Channel) Do(c Command) (Response, error) {
	// Command chaining for long data fields.
	for len(c.Data) > MaxShortData {
		part := c
		part.CLA |= ClaChaining
		part.Data = c.Data[:MaxShortData]
		part.Le = NoLe
		b, err := part.Bytes()
		if err != nil {
			return Response{}, err
		}
		r, err := ch.raw(b)
		if err != nil {
			return Response{}, err
		}
		if r.SW != SWSuccess {
			return r, nil
		}
		c.Data = c.Data[MaxShortData:]
	}
	b, err := c.Bytes()
	if err != nil {
		return Response{}, err
	}
	r, err := ch.raw(b)
	if err != nil {
		return Response{}, err
	}
	if r.SW1() == 0x6C {
		c.Le = int(r.SW2())
		if c.Le == 0 {
			c.Le = MaxShortLe
		}
		if b, err = c.Bytes(); err != nil {
			return Response{}, err
		}
		if r, err = ch.raw(b); err != nil {
			return Response{}, err
		}
	}
	data := r.Data
	for round := 0; r.SW1() == 0x61; round++ {
		if round == maxGetResponseRounds {
			return Response{}, fmt.Errorf("%w: card keeps answering 61xx", ErrTransport)
		}
		le := int(r.SW2())
		if le == 0 {
			le = MaxShortLe
		}
		if ch.GetResponseMax > 0 && le > ch.GetResponseMax {
			le = ch.GetResponseMax
		}
		gr := Command{CLA: c.CLA & 0x03, INS: InsGetResponse, Le: le}
		gb, _ := gr.Bytes()
		if r, err = ch.raw(gb); err != nil {
			return Response{}, err
		}
		data = append(data, r.Data...)
	}
	r.Data = data
	return r, nil
}

// Send is Do followed by Response.Err: it returns the data of a 90 00
// answer, or a *StatusError.
func (ch *Channel) Send(c Command) ([]byte, error) {
	r, err := ch.Do(c)
	if err != nil {
		return nil, err
	}
	if err := r.Err(); err != nil {
		return r.Data, err
	}
	return r.Data, nil
}
