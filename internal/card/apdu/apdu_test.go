package apdu

import (
	"bytes"
	"errors"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
		raw  string
	}{
		{"case1", Command{0x00, 0x20, 0x00, 0x01, nil, NoLe}, "00 20 00 01"},
		{"case2", Command{0x00, 0xB0, 0x00, 0x00, nil, 0xE7}, "00 B0 00 00 E7"},
		{"case2 256", Command{0x00, 0x2A, 0x9E, 0x9A, nil, 256}, "00 2A 9E 9A 00"},
		{"case3", Command{0x00, 0xA4, 0x09, 0x0C, []byte{0x3F, 0x00}, NoLe}, "00 A4 09 0C 02 3F 00"},
		{"case4", Command{0x00, 0x88, 0x00, 0x00, []byte{1, 2, 3}, 256}, "00 88 00 00 03 01 02 03 00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.cmd.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if got := Hex(b); got != tt.raw {
				t.Fatalf("Bytes = %s, want %s", got, tt.raw)
			}
			back, err := ParseCommand(b)
			if err != nil {
				t.Fatal(err)
			}
			if back.CLA != tt.cmd.CLA || back.INS != tt.cmd.INS || back.P1 != tt.cmd.P1 || back.P2 != tt.cmd.P2 ||
				!bytes.Equal(back.Data, tt.cmd.Data) || back.Le != tt.cmd.Le {
				t.Fatalf("round trip = %+v, want %+v", back, tt.cmd)
			}
		})
	}
}

func TestParseCommandRejects(t *testing.T) {
	for _, raw := range [][]byte{nil, {0}, {0, 1, 2}, {0, 0xA4, 0, 0, 3, 1}, {0, 0xA4, 0, 0, 0, 0, 1}} {
		if _, err := ParseCommand(raw); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseCommand(% X) err = %v, want ErrMalformed", raw, err)
		}
	}
	if _, err := (Command{Data: make([]byte, 256), Le: NoLe}).Bytes(); !errors.Is(err, ErrMalformed) {
		t.Errorf("256-byte data must need chaining")
	}
}

func TestStatusErrors(t *testing.T) {
	tests := []struct {
		sw    uint16
		want  error
		tries int
	}{
		{0x6982, ErrSecurityStatus, -1},
		{0x6983, ErrAuthBlocked, -1},
		{0x6985, ErrConditionsNotSatisfied, -1},
		{0x6A82, ErrFileNotFound, -1},
		{0x6A86, ErrIncorrectParameters, -1},
		{0x6A88, ErrReferencedDataNotFound, -1},
		{0x6700, ErrWrongLength, -1},
		{0x6D00, ErrNotSupported, -1},
		{0x63C2, ErrVerificationFailed, 2},
		{0x63C0, ErrVerificationFailed, 0},
		{0x6F00, ErrCardError, -1},
	}
	for _, tt := range tests {
		err := Response{SW: tt.sw}.Err()
		if !errors.Is(err, tt.want) {
			t.Errorf("%04X: errors.Is(%v, %v) = false", tt.sw, err, tt.want)
		}
		var se *StatusError
		if !errors.As(err, &se) {
			t.Fatalf("%04X: not a StatusError", tt.sw)
		}
		n, ok := se.TriesLeft()
		if ok != (tt.tries >= 0) || (ok && n != tt.tries) {
			t.Errorf("%04X: TriesLeft = %d,%v want %d", tt.sw, n, ok, tt.tries)
		}
	}
	if (Response{SW: 0x9000}).Err() != nil {
		t.Error("9000 must be success")
	}
}

func TestRedactHidesPIN(t *testing.T) {
	cmd := []byte{0x00, 0x20, 0x00, 0x01, 0x04, '1', '2', '3', '4'}
	got := Redact(cmd)
	if want := "00 20 00 01 04 ** ** ** **"; got != want {
		t.Fatalf("Redact = %q, want %q", got, want)
	}
	if got := Redact([]byte{0x00, 0x20, 0x00, 0x01}); got != "00 20 00 01" {
		t.Fatalf("empty VERIFY = %q", got)
	}
	if got := Redact([]byte{0x00, 0x2A, 0x90, 0xA0, 0x04, 0x90, 0x00, 0x80, 0x00}); got != "00 2A 90 A0 04 ** ** ** **" {
		t.Fatalf("PSO HASH = %q", got)
	}
	for _, tt := range []struct {
		cmd  []byte
		want string
	}{
		{[]byte{0x00, 0x2A, 0x9E, 0x9A, 0x02, 0xAB, 0xCD, 0x00}, "00 2A 9E 9A 02 ** ** **"}, // PSO CDS, hash as data (CPS4)
		{[]byte{0x01, 0x2A, 0x80, 0x86, 0x02, 0x00, 0x01}, "01 2A 80 86 02 ** **"},          // PSO DECIPHER (CPS4 authentication)
		{[]byte{0x00, 0x88, 0x00, 0x00, 0x02, 0x30, 0x31, 0x00}, "00 88 00 00 02 ** ** **"}, // INTERNAL AUTHENTICATE
		{[]byte{0x00, 0x2A, 0x9E, 0x9A, 0x00}, "00 2A 9E 9A 00"},                            // no data: nothing to hide
	} {
		if got := Redact(tt.cmd); got != tt.want {
			t.Errorf("Redact(% X) = %q, want %q", tt.cmd, got, tt.want)
		}
	}
	if got := Redact([]byte{0x00, 0xA4, 0x09, 0x0C, 0x02, 0x3F, 0x00}); got != "00 A4 09 0C 02 3F 00" {
		t.Fatalf("SELECT = %q", got)
	}
}

// scriptedCard answers by a table of command hex -> response bytes.
type scriptedCard struct {
	t     *testing.T
	steps []struct{ cmd, resp string }
	i     int
}

func (s *scriptedCard) Transmit(cmd []byte) ([]byte, error) {
	if s.i >= len(s.steps) {
		s.t.Fatalf("unexpected command %s", Hex(cmd))
	}
	st := s.steps[s.i]
	s.i++
	if got := Hex(cmd); got != st.cmd {
		s.t.Fatalf("step %d: command %s, want %s", s.i, got, st.cmd)
	}
	return unhex(s.t, st.resp), nil
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	var out []byte
	var cur byte
	n := 0
	for _, r := range s {
		var v byte
		switch {
		case r >= '0' && r <= '9':
			v = byte(r - '0')
		case r >= 'A' && r <= 'F':
			v = byte(r-'A') + 10
		case r == ' ':
			continue
		default:
			t.Fatalf("bad hex %q", s)
		}
		cur = cur<<4 | v
		n++
		if n == 2 {
			out = append(out, cur)
			cur, n = 0, 0
		}
	}
	return out
}

func TestChannelGetResponseAndChaining(t *testing.T) {
	// The vendor trace for PSO CDS: 61 00, GET RESPONSE E7, 61 19, GET RESPONSE 19.
	sc := &scriptedCard{t: t, steps: []struct{ cmd, resp string }{
		{"00 2A 9E 9A 00", "61 00"},
		{"00 C0 00 00 E7", string(bytes.Repeat([]byte("AB"), 231)) + "61 19"},
		{"00 C0 00 00 19", string(bytes.Repeat([]byte("CD"), 25)) + "90 00"},
	}}
	ch := &Channel{T: sc, GetResponseMax: 0xE7}
	data, err := ch.Send(Command{CLA: 0, INS: 0x2A, P1: 0x9E, P2: 0x9A, Le: 256})
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 256 || data[0] != 0xAB || data[255] != 0xCD {
		t.Fatalf("got %d bytes", len(data))
	}
	if ch.Count() != 3 {
		t.Fatalf("Count = %d, want 3", ch.Count())
	}

	long := bytes.Repeat([]byte{0x11}, 300)
	sc2 := &scriptedCard{t: t, steps: []struct{ cmd, resp string }{
		{"10 2A 80 86 FF " + Hex(long[:255]), "90 00"},
		{"00 2A 80 86 2D " + Hex(long[255:]) + " 00", "61 02"},
		{"00 C0 00 00 02", "01 02 90 00"},
	}}
	ch2 := &Channel{T: sc2}
	data, err = ch2.Send(Command{CLA: 0, INS: 0x2A, P1: 0x80, P2: 0x86, Data: long, Le: 256})
	if err != nil || !bytes.Equal(data, []byte{1, 2}) {
		t.Fatalf("chained: %X %v", data, err)
	}
}

func TestChannelWipesPINCommands(t *testing.T) {
	var seen []byte
	ch := &Channel{T: TransmitFunc(func(cmd []byte) ([]byte, error) {
		seen = cmd
		return []byte{0x90, 0x00}, nil
	})}
	if _, err := ch.Send(Command{INS: InsVerify, P2: 0x01, Data: []byte("1234"), Le: NoLe}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(seen, make([]byte, len(seen))) {
		t.Fatalf("VERIFY buffer not wiped after sending: % X", seen)
	}
}

func TestChannelWrongLe(t *testing.T) {
	sc := &scriptedCard{t: t, steps: []struct{ cmd, resp string }{
		{"00 B0 00 00 E7", "6C 39"},
		{"00 B0 00 00 39", string(bytes.Repeat([]byte("00"), 0x39)) + "90 00"},
	}}
	ch := &Channel{T: sc}
	data, err := ch.Send(Command{INS: 0xB0, Le: 0xE7})
	if err != nil || len(data) != 0x39 {
		t.Fatalf("got %d bytes, %v", len(data), err)
	}
}

func TestChannelLogicalChannelGetResponse(t *testing.T) {
	sc := &scriptedCard{t: t, steps: []struct{ cmd, resp string }{
		{"01 2A 9E 9A 00", "61 02"},
		{"01 C0 00 00 02", "AA BB 90 00"},
	}}
	ch := &Channel{T: sc}
	if _, err := ch.Send(Command{CLA: 0x01, INS: 0x2A, P1: 0x9E, P2: 0x9A, Le: 256}); err != nil {
		t.Fatal(err)
	}
}

func TestChannelEndlessGetResponse(t *testing.T) {
	ch := &Channel{T: TransmitFunc(func([]byte) ([]byte, error) { return []byte{0x00, 0x61, 0x01}, nil })}
	if _, err := ch.Do(Command{INS: 0xB0, Le: 1}); !errors.Is(err, ErrTransport) {
		t.Fatalf("err = %v, want ErrTransport", err)
	}
}

func TestTLV(t *testing.T) {
	// DOCP answer from a real CPx (card-cpx.md §3).
	raw := unhex(t, "70 16 BF 81 01 12 A0 10 9A 01 03 9B 01 03 A1 08 8C 06 F3 00 00 13 FF 00")
	v, err := FindPath(raw, 0x70, 0xBF8101, 0xA0, 0x9B)
	if err != nil || len(v) != 1 || v[0] != 3 {
		t.Fatalf("FindPath = %X, %v", v, err)
	}
	ts, err := ParseTLV(raw)
	if err != nil || len(ts) != 1 || !ts[0].Constructed() {
		t.Fatalf("ParseTLV = %+v, %v", ts, err)
	}
	long := bytes.Repeat([]byte{7}, 300)
	enc := EncodeTLV(0x5F20, long)
	back, err := ParseTLV(enc)
	if err != nil || back[0].Tag != 0x5F20 || !bytes.Equal(back[0].Value, long) {
		t.Fatalf("long round trip failed: %v", err)
	}
	for _, bad := range [][]byte{{0x5F}, {0x80}, {0x80, 0x05, 1}, {0x80, 0x84, 0, 0, 0, 1}, {0xBF, 0x81, 0x81, 0x81, 0x81, 0x01, 0x00}} {
		if _, err := ParseTLV(bad); !errors.Is(err, ErrTLV) {
			t.Errorf("ParseTLV(% X) err = %v, want ErrTLV", bad, err)
		}
	}
}

func FuzzParseTLV(f *testing.F) {
	f.Add([]byte{0x70, 0x03, 0x80, 0x01, 0x02})
	f.Add([]byte{0xBF, 0x81, 0x01, 0x02, 0xA0, 0x00})
	f.Add([]byte{0x62, 0x81, 0x02, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := ParseTLV(b)
		if err != nil {
			return
		}
		for _, e := range ts {
			if e.Constructed() {
				_, _ = e.Children()
			}
			re := EncodeTLV(e.Tag, e.Value)
			back, err := ParseTLV(re)
			if err != nil || len(back) != 1 || back[0].Tag != e.Tag || !bytes.Equal(back[0].Value, e.Value) {
				t.Fatalf("re-encode of %X/%X failed: %v", e.Tag, e.Value, err)
			}
		}
	})
}

func FuzzParseCommand(f *testing.F) {
	f.Add([]byte{0x00, 0xA4, 0x09, 0x0C, 0x02, 0x3F, 0x00})
	f.Add([]byte{0x00, 0x2A, 0x9E, 0x9A, 0x00})
	f.Add([]byte{0x00, 0x88, 0x00, 0x00, 0x01, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCommand(b)
		if err != nil {
			return
		}
		enc, err := c.Bytes()
		if err != nil {
			t.Fatalf("parsed command does not encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("round trip % X -> % X", b, enc)
		}
		_ = Redact(b)
	})
}

func FuzzChannel(f *testing.F) {
	f.Add([]byte{0x61, 0x02, 0x01, 0x02, 0x90, 0x00})
	f.Add([]byte{0x6C, 0x10})
	f.Fuzz(func(t *testing.T, script []byte) {
		// The card answers with successive slices of the script.
		pos := 0
		ch := &Channel{T: TransmitFunc(func([]byte) ([]byte, error) {
			if pos >= len(script) {
				return []byte{0x90, 0x00}, nil
			}
			n := int(script[pos])%8 + 2
			end := min(pos+1+n, len(script))
			out := script[pos+1 : end]
			pos = end
			return out, nil
		})}
		_, _ = ch.Do(Command{INS: 0xB0, Le: 0x10})
	})
}
