package virtual

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
)

var (
	fuzzCardOnce sync.Once
	fuzzCfg      Config
)

func fuzzConfig(t testing.TB) Config {
	fuzzCardOnce.Do(func() { fuzzCfg = testConfig(t) })
	return fuzzCfg
}

// FuzzCardTransmit feeds random APDU sequences (split on 0xFF 0xFF) to a card
// that has verified its PIN. The card must never panic, must always answer
// at least a status word, and must still work normally afterwards.
func FuzzCardTransmit(f *testing.F) {
	seeds := []string{
		"00 A4 09 04 04 3F 00 D0 03",
		"00 C0 00 00 27",
		"00 B0 9C 00 C0",
		"00 22 41 AA 03 80 01 40 FF FF 00 2A 90 A0 05 90 00 80 01 61 FF FF 00 2A 9E 9A 00",
		"00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10 FF FF 00 22 41 A4 06 84 01 82 80 01 02 FF FF 00 88 00 00 02 01 02 00",
		"10 2A 80 86 02 81 00 FF FF 00 2A 80 86 01 00 00",
		"00 CB 3F FF 0A 4D 08 70 06 BF 81 01 02 A0 80",
		"00 2C 02 01 04 31 32 33 34",
		"00 24 00 01 08 31 32 33 34 34 33 32 31",
		"00 20 00 02 08 31 32 33 34 35 36 37 38 FF FF 00 2C 03 01",
		"",
		"00",
		"00 A4",
	}
	for _, s := range seeds {
		f.Add(hexBytes(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := fuzzConfig(t)
		c, err := NewCard(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Transmit([]byte{0x00, 0x20, 0x00, 0x01, 0x04, '1', '2', '3', '4'})
		for _, cmd := range bytes.Split(in, []byte{0xFF, 0xFF}) {
			resp, err := c.Transmit(cmd)
			if err != nil {
				t.Fatalf("Transmit: %v", err)
			}
			if len(resp) < 2 {
				t.Fatalf("response %x without status word", resp)
			}
		}
		c.Reset()
		resp, _ := c.Transmit([]byte{0x00, 0xA4, 0x09, 0x0C, 0x04, 0x3F, 0x00, 0xD0, 0x03})
		if !bytes.Equal(resp, []byte{0x90, 0x00}) {
			t.Fatalf("card broken after fuzz input: %x", resp)
		}
		resp, _ = c.Transmit([]byte{0x00, 0xB0, 0x00, 0x00, 0x02})
		if !bytes.Equal(resp, []byte{0x5A, 0x0A, 0x90, 0x00}) {
			t.Fatalf("EF.SN after fuzz input: %x", resp)
		}
		if st := c.PINStatus(); st.PINTriesLeft < 0 || st.PINTriesLeft > 3 || st.PUKUsesLeft < 0 || st.PUKUsesLeft > 100 {
			t.Fatalf("counters out of range: %+v", st)
		}
	})
}

// FuzzVPCDFrame feeds a random byte stream from the "driver": the client
// must never panic, must answer only well-formed frames and must stop with
// ErrVPCDClosed at the end of the stream.
func FuzzVPCDFrame(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0x04})
	f.Add([]byte{0x00, 0x01, 0x01, 0x00, 0x01, 0x02, 0x00, 0x07, 0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00})
	f.Add([]byte{0x00, 0x05, 0x00, 0x20, 0x00, 0x01})
	f.Add([]byte{0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x02, 0x00, 0x20})
	f.Add([]byte{0xFF, 0xFF, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := NewCard(fuzzConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), &out}
		if err := serveStream(context.Background(), rw, c, nil); err == nil {
			t.Fatal("serveStream returned nil at end of stream")
		}
		b := out.Bytes()
		for len(b) > 0 {
			if len(b) < 2 {
				t.Fatalf("truncated frame header %x", b)
			}
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || len(b) < 2+n {
				t.Fatalf("bad frame %x", b)
			}
			b = b[2+n:]
		}
	})
}

func hexBytes(s string) []byte {
	b := make([]byte, 0, len(s)/3+1)
	for _, f := range bytes.Fields([]byte(s)) {
		var v byte
		for _, ch := range f {
			v <<= 4
			switch {
			case ch >= '0' && ch <= '9':
				v |= ch - '0'
			case ch >= 'A' && ch <= 'F':
				v |= ch - 'A' + 10
			}
		}
		b = append(b, v)
	}
	return b
}
