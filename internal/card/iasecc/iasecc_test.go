package iasecc

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// script is a Transmitter that expects an exact sequence of commands.
type script struct {
	t     *testing.T
	steps [][2]string // command, response (spaced hex)
	i     int
}

func (s *script) Transmit(cmd []byte) ([]byte, error) {
	s.t.Helper()
	if s.i >= len(s.steps) {
		s.t.Fatalf("unexpected APDU %s", apdu.Hex(cmd))
	}
	want := s.steps[s.i]
	s.i++
	if got := apdu.Hex(cmd); got != want[0] {
		s.t.Fatalf("APDU %d = %s, want %s", s.i, got, want[0])
	}
	return h(want[1]), nil
}

func (s *script) done() {
	s.t.Helper()
	if s.i != len(s.steps) {
		s.t.Fatalf("%d APDUs sent, script has %d", s.i, len(s.steps))
	}
}

func newScript(t *testing.T, steps ...[2]string) (*apdu.Channel, *script) {
	s := &script{t: t, steps: steps}
	return &apdu.Channel{T: s}, s
}

const fcpSN = "62 25 80 02 00 0C 82 01 01 83 02 D0 03 88 01 E0 A1 12 8C 07 7B FF FF FF FF FF 00 9C 07 7B FF FF FF FF FF 00 8A 01 05"

func TestSelect(t *testing.T) {
	ch, s := newScript(t,
		[2]string{"00 A4 00 0C 02 3F 00", "90 00"},
		[2]string{"00 A4 09 0C 04 3F 00 00 01", "90 00"},
		[2]string{"00 A4 09 04 04 3F 00 D0 03", "61 27"},
		[2]string{"00 C0 00 00 27", fcpSN + " 90 00"},
		[2]string{"00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10", "90 00"},
		[2]string{"00 A4 09 0C 04 3F 00 D0 10", "6A 82"},
	)
	if err := SelectMF(ch); err != nil {
		t.Fatal(err)
	}
	if f, err := SelectPath(ch, h("3F000001"), false); err != nil || f != nil {
		t.Fatalf("SelectPath = %v, %v", f, err)
	}
	f, err := SelectPath(ch, h("3F00D003"), true)
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != 12 || f.FID != 0xD003 || f.SFI != 0x1C || f.LCS != 5 || f.IsDF() {
		t.Fatalf("FCP = %+v", f)
	}
	if _, err := SelectAID(ch, h("E828BD080F8025000001FF0010"), false); err != nil {
		t.Fatal(err)
	}
	_, err = SelectPath(ch, h("3F00D010"), false)
	if !IsNotFound(err) {
		t.Fatalf("absent file: %v", err)
	}
	s.done()
	for _, bad := range []string{"", "3F", "D003", "3F00", "3F00D0"} {
		if _, err := SelectPath(ch, h(bad), false); !errors.Is(err, ErrFormat) {
			t.Errorf("SelectPath(%q) = %v, want ErrFormat", bad, err)
		}
	}
}

func TestReadAll(t *testing.T) {
	file := make([]byte, 500)
	for i := range file {
		file[i] = byte(i)
	}
	hx := func(b []byte) string { return apdu.Hex(b) }
	tests := []struct {
		name  string
		size  int
		steps [][2]string
	}{
		{"known size", 500, [][2]string{
			{"00 B0 00 00 E7", hx(file[:231]) + " 90 00"},
			{"00 B0 00 E7 E7", hx(file[231:462]) + " 90 00"},
			{"00 B0 01 CE 26", hx(file[462:]) + " 90 00"},
		}},
		{"until 6282", -1, [][2]string{
			{"00 B0 00 00 E7", hx(file[:231]) + " 90 00"},
			{"00 B0 00 E7 E7", hx(file[231:462]) + " 90 00"},
			{"00 B0 01 CE E7", hx(file[462:]) + " 62 82"},
		}},
		{"until 6B00", -1, [][2]string{
			{"00 B0 00 00 E7", hx(file[:231]) + " 90 00"},
			{"00 B0 00 E7 E7", hx(file[231:462]) + " 90 00"},
			{"00 B0 01 CE E7", "6C 26"},
			{"00 B0 01 CE 26", hx(file[462:]) + " 90 00"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, s := newScript(t, tt.steps...)
			got, err := ReadAll(ch, tt.size, 0xE7)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, file) {
				t.Fatalf("read %d bytes, want the 500-byte file", len(got))
			}
			s.done()
		})
	}
	t.Run("exact multiple then 6B00", func(t *testing.T) {
		ch, s := newScript(t,
			[2]string{"00 B0 00 00 E7", hx(file[:231]) + " 90 00"},
			[2]string{"00 B0 00 E7 E7", "6B 00"},
		)
		got, err := ReadAll(ch, -1, 0xE7)
		if err != nil || len(got) != 231 {
			t.Fatalf("got %d bytes, %v", len(got), err)
		}
		s.done()
	})
	t.Run("short file", func(t *testing.T) {
		ch, _ := newScript(t, [2]string{"00 B0 00 00 E7", hx(file[:10]) + " 62 82"})
		if _, err := ReadAll(ch, 300, 0xE7); !errors.Is(err, apdu.ErrEndOfFile) {
			t.Fatalf("err = %v, want ErrEndOfFile", err)
		}
	})
	t.Run("security status", func(t *testing.T) {
		ch, _ := newScript(t, [2]string{"00 B0 00 00 E7", "69 82"})
		if _, err := ReadAll(ch, -1, 0xE7); !errors.Is(err, apdu.ErrSecurityStatus) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestVerifyCommands(t *testing.T) {
	ch, s := newScript(t,
		[2]string{"00 20 00 01", "63 C3"},
		[2]string{"00 20 00 01", "90 00"},
		[2]string{"00 20 00 01", "69 83"},
		[2]string{"00 20 00 01", "6A 88"},
		[2]string{"00 20 00 01 04 ** ** ** **", "63 C2"},
		[2]string{"00 24 00 01 08 ** ** ** ** ** ** ** **", "90 00"},
		[2]string{"00 2C 02 01 04 ** ** ** **", "90 00"},
	)
	// The script compares redacted commands, so test data never shows.
	s2 := &redacting{s}
	ch.T = s2
	st, err := VerifyStatus(ch, 1)
	if err != nil || st.TriesLeft != 3 || st.Blocked || st.Verified {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if st, err = VerifyStatus(ch, 1); err != nil || !st.Verified {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if st, err = VerifyStatus(ch, 1); err != nil || !st.Blocked {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if _, err = VerifyStatus(ch, 1); !errors.Is(err, apdu.ErrReferencedDataNotFound) {
		t.Fatalf("6A88: %v", err)
	}
	err = Verify(ch, 1, []byte("1234"))
	if sw, _ := apdu.SW(err); sw != 0x63C2 {
		t.Fatalf("verify: %v", err)
	}
	if err := ChangeReferenceData(ch, 1, []byte("1234"), []byte("5678")); err != nil {
		t.Fatal(err)
	}
	if err := ResetRetryCounter(ch, 2, 1, []byte("4321")); err != nil {
		t.Fatal(err)
	}
	s.done()
}

type redacting struct{ s *script }

func (r *redacting) Transmit(cmd []byte) ([]byte, error) {
	r.s.t.Helper()
	if r.s.i >= len(r.s.steps) {
		r.s.t.Fatalf("unexpected APDU %s", apdu.Redact(cmd))
	}
	want := r.s.steps[r.s.i]
	r.s.i++
	if got := apdu.Redact(cmd); got != want[0] {
		r.s.t.Fatalf("APDU %d = %s, want %s", r.s.i, got, want[0])
	}
	return h(want[1]), nil
}

func TestSecurityOperations(t *testing.T) {
	sig := bytes.Repeat([]byte{0xAB}, 256)
	msg := []byte("twenty bytes message") // 20 bytes, as in the vendor trace
	ch, s := newScript(t,
		[2]string{"00 22 41 A4 06 84 01 82 80 01 02", "90 00"},
		[2]string{"00 88 00 00 03 01 02 03 00", "61 00"},
		[2]string{"00 C0 00 00 00", apdu.Hex(sig) + " 90 00"},
		[2]string{"00 22 41 AA 03 80 01 40", "90 00"},
		[2]string{"00 22 41 B6 06 84 01 81 80 01 42", "90 00"},
		[2]string{"00 2A 90 A0 18 90 00 80 14 " + apdu.Hex(msg), "90 00"},
		[2]string{"00 2A 9E 9A 00", "61 00"},
		[2]string{"00 C0 00 00 E7", apdu.Hex(sig[:0xE7]) + " 61 19"},
		[2]string{"00 C0 00 00 19", apdu.Hex(sig[0xE7:]) + " 90 00"},
		[2]string{"00 22 41 B8 06 84 01 82 80 01 1A", "90 00"},
	)
	if err := MSESetAT(ch, 0x82, 0x02); err != nil {
		t.Fatal(err)
	}
	got, err := InternalAuthenticate(ch, []byte{1, 2, 3})
	if err != nil || !bytes.Equal(got, sig) {
		t.Fatalf("internal authenticate: %d bytes, %v", len(got), err)
	}
	if err := MSESetHT(ch, 0x40); err != nil {
		t.Fatal(err)
	}
	if err := MSESetDST(ch, 0x81, 0x42); err != nil {
		t.Fatal(err)
	}
	if err := PSOHash(ch, SplitSHA256(msg)); err != nil {
		t.Fatal(err)
	}
	ch.GetResponseMax = 0xE7 // vendor-driver chunking (§4.2 trace)
	if got, err = PSOComputeDigitalSignature(ch); err != nil || !bytes.Equal(got, sig) {
		t.Fatalf("pso cds: %d bytes, %v", len(got), err)
	}
	if err := MSESetCT(ch, 0x82, 0x1A); err != nil {
		t.Fatal(err)
	}
	s.done()
	if _, err := InternalAuthenticate(ch, nil); !errors.Is(err, ErrFormat) {
		t.Fatalf("empty data: %v", err)
	}
}

func TestPSOHashData(t *testing.T) {
	msg := make([]byte, 130)
	for i := range msg {
		msg[i] = byte(i)
	}
	tests := []struct {
		n        int
		prehash  int
		tail     int
		wantHead string
	}{
		{0, 0, 0, "90 00 80 00"},
		{1, 0, 1, "90 00 80 01"},
		{63, 0, 63, "90 00 80 3F"},
		{64, 0, 64, "90 00 80 40"},
		{65, 64, 1, "90 28"},
		{128, 64, 64, "90 28"},
		{129, 128, 1, "90 28"},
	}
	for _, tt := range tests {
		s := SplitSHA256(msg[:tt.n])
		if len(s.Tail) != tt.tail || s.Bits != uint64(tt.prehash)*8 {
			t.Errorf("len %d: tail %d bits %d, want tail %d prehash %d", tt.n, len(s.Tail), s.Bits, tt.tail, tt.prehash)
		}
		d := PSOHashData(s)
		if !strings.HasPrefix(apdu.Hex(d), tt.wantHead) {
			t.Errorf("len %d: data starts %s, want %s", tt.n, apdu.Hex(d[:4]), tt.wantHead)
		}
		if s.Prehashed() {
			if binary.BigEndian.Uint64(d[34:42]) != uint64(tt.prehash)*8 || d[42] != 0x80 || int(d[43]) != tt.tail {
				t.Errorf("len %d: bad count/tail header % X", tt.n, d[34:44])
			}
		}
		if !bytes.Equal(d[len(d)-len(s.Tail):], msg[tt.prehash:tt.n]) {
			t.Errorf("len %d: tail is not the message end", tt.n)
		}
	}
}

func TestSHA256Split(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lengths := []int{0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4096, 4097}
	for i := 0; i < 50; i++ {
		lengths = append(lengths, rng.IntN(3000))
	}
	for _, n := range lengths {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(rng.Uint32())
		}
		s := SplitSHA256(msg)
		if n > 0 && (len(s.Tail) < 1 || len(s.Tail) > 64) {
			t.Fatalf("len %d: tail of %d bytes", n, len(s.Tail))
		}
		if int(s.Bits/8)+len(s.Tail) != n {
			t.Fatalf("len %d: split loses bytes", n)
		}
		if got, want := FinishSHA256(s), sha256.Sum256(msg); got != want {
			t.Fatalf("len %d: finish = %x, want %x", n, got, want)
		}
		// Second oracle: crypto/sha256's own chaining value, read from its
		// MarshalBinary encoding ("sha\x03" ‖ h[8] ‖ block ‖ len) when the
		// running Go release uses that layout.
		d := sha256.New()
		d.Write(msg[:s.Bits/8])
		st, err := d.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
		if err == nil && len(st) == 4+32+64+8 && string(st[:4]) == "sha\x03" {
			if !bytes.Equal(st[4:36], s.State[:]) {
				t.Fatalf("len %d: state %x, crypto/sha256 has %x", n, s.State, st[4:36])
			}
			if binary.BigEndian.Uint64(st[100:]) != s.Bits/8 {
				t.Fatalf("len %d: byte count differs from crypto/sha256", n)
			}
		}
	}
}

func TestParseFCP(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
		size int
		df   bool
	}{
		{"EF.SN.ICC", fcpSN, true, 12, false},
		{"DF with name", "62 16 82 01 38 83 02 00 01 84 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10", true, -1, true},
		{"FCI 6F", "6F 07 81 02 07 D0 82 01 01", true, 2000, false},
		{"no template", "80 02 00 0C", false, 0, false},
		{"truncated", "62 05 80 02 00", false, 0, false},
		{"bad FID", "62 03 83 01 D0", false, 0, false},
		{"empty", "", false, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFCP(h(tt.in))
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("err %v is not ErrFormat", err)
				}
				return
			}
			if f.Size != tt.size || f.IsDF() != tt.df {
				t.Fatalf("FCP = %+v", f)
			}
		})
	}
	f, _ := ParseFCP(h(fcpSN))
	if !bytes.Equal(f.ContactACL, h("7B FF FF FF FF FF 00")) || len(f.ContactlessACL) != 7 {
		t.Fatalf("ACLs = % X / % X", f.ContactACL, f.ContactlessACL)
	}
}

const docpPIN = "70 16 BF 81 01 12 A0 10 9A 01 03 9B 01 03 A1 08 8C 06 F3 00 00 13 FF 00"

func TestCHVDOCP(t *testing.T) {
	ch, s := newScript(t,
		[2]string{"00 CB 3F FF 0A 4D 08 70 06 BF 81 01 02 A0 80", "61 18"},
		[2]string{"00 C0 00 00 18", docpPIN + " 90 00"},
		[2]string{"00 CB 3F FF 0A 4D 08 70 06 BF 81 02 02 A0 80", "70 1A BF 81 02 16 A0 14 9A 01 0A 9B 01 07 9D 02 00 63 A1 08 8C 06 F3 FF 00 FF FF 00 90 00"},
		[2]string{"00 CB 3F FF 0A 4D 08 70 06 BF 81 01 02 A0 80", "6A 88"},
	)
	d, err := GetCHVDOCP(ch, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Ref != 1 || d.MaxTries != 3 || d.TriesLeft != 3 || d.UsesLeft != -1 || len(d.ACL) != 8 {
		t.Fatalf("PIN DOCP = %+v", d)
	}
	if d, err = GetCHVDOCP(ch, 2); err != nil || d.MaxTries != 10 || d.TriesLeft != 7 || d.UsesLeft != 99 {
		t.Fatalf("PUK DOCP = %+v, %v", d, err)
	}
	if _, err = GetCHVDOCP(ch, 1); !errors.Is(err, apdu.ErrReferencedDataNotFound) {
		t.Fatalf("app DF current: %v", err)
	}
	s.done()
	for _, bad := range []string{"", "70 00", "70 04 BF 81 01 00", "70 06 BF 81 01 02 A0 00", "70 09 BF 81 01 05 A0 03 9B 00 00", "6F 00"} {
		if _, err := ParseCHVDOCP(h(bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseCHVDOCP(%s) = %v, want ErrFormat", bad, err)
		}
	}
}

func FuzzParseFCP(f *testing.F) {
	for _, s := range []string{fcpSN, "62 16 82 01 38 83 02 00 01 84 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10", "6F 00", "62 81 00", ""} {
		f.Add(h(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fcp, err := ParseFCP(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		if fcp.Size < -1 {
			t.Fatalf("size %d", fcp.Size)
		}
	})
}

func FuzzParseCHVDOCP(f *testing.F) {
	for _, s := range []string{docpPIN, "70 1A BF 81 02 16 A0 14 9A 01 0A 9B 01 07 9D 02 00 63 A1 08 8C 06 F3 FF 00 FF FF 00", "70 00", ""} {
		f.Add(h(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseCHVDOCP(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		if d.TriesLeft < 0 || d.TriesLeft > 0xFFFF || d.MaxTries > 0xFFFF || d.UsesLeft > 0xFFFF {
			t.Fatalf("counters out of range: %+v", d)
		}
	})
}

func FuzzSHA256Split(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{1}, 64))
	f.Add(bytes.Repeat([]byte{2}, 65))
	f.Fuzz(func(t *testing.T, msg []byte) {
		s := SplitSHA256(msg)
		if FinishSHA256(s) != sha256.Sum256(msg) {
			t.Fatalf("split/finish differs from crypto/sha256 for %d bytes", len(msg))
		}
		if len(msg) > 0 && (len(s.Tail) == 0 || len(s.Tail) > 64) {
			t.Fatalf("tail of %d bytes", len(s.Tail))
		}
	})
}

func TestPSOCDSOfHash(t *testing.T) {
	sig := bytes.Repeat([]byte{0x11}, 256)
	hash := sha256.Sum256(nil)
	ch, s := newScript(t,
		[2]string{"00 2A 9E 9A 20 " + apdu.Hex(hash[:]) + " 00", "61 00"},
		[2]string{"00 C0 00 00 00", apdu.Hex(sig) + " 90 00"},
	)
	got, err := PSOComputeDigitalSignatureOfHash(ch, hash[:])
	if err != nil || !bytes.Equal(got, sig) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	s.done()
	if _, err := PSOComputeDigitalSignatureOfHash(ch, make([]byte, 31)); !errors.Is(err, ErrFormat) {
		t.Fatalf("31-byte hash: %v", err)
	}
}
