package cps

import (
	"bytes"
	"encoding/hex"
	"errors"
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

// script expects an exact sequence of (redacted) commands.
type script struct {
	t     *testing.T
	steps [][2]string
	i     int
}

func (s *script) Transmit(cmd []byte) ([]byte, error) {
	s.t.Helper()
	if s.i >= len(s.steps) {
		s.t.Fatalf("unexpected APDU %s", apdu.Redact(cmd))
	}
	want := s.steps[s.i]
	s.i++
	got := apdu.Hex(cmd)
	if strings.Contains(want[0], "**") {
		got = apdu.Redact(cmd)
	}
	if got != want[0] {
		s.t.Fatalf("APDU %d = %s, want %s", s.i, got, want[0])
	}
	return h(want[1]), nil
}

func run(t *testing.T, steps ...[2]string) (*apdu.Channel, func()) {
	s := &script{t: t, steps: steps}
	return &apdu.Channel{T: s}, func() {
		t.Helper()
		if s.i != len(s.steps) {
			t.Fatalf("%d APDUs sent, script has %d", s.i, len(s.steps))
		}
	}
}

func TestRecognise(t *testing.T) {
	tests := []struct {
		atr  string
		gen  string
		ok   bool
		cl   bool
		desc string
	}{
		{"3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 00", GenerationCPS3, true, false, "CPS3 contact"},
		{"3B AC 11 22 33 00 12 25 00 64 80 AA BB CC 00 90 00", GenerationCPS3, true, false, "CPS3 contact, masked bytes differ"},
		{"3B 8F 80 01 00 31 B8 64 04 B0 EC C1 73 94 01 80 82 90 00 0E", GenerationCPS3CL, true, true, "CPS3 contactless"},
		{"3B 8F 80 01 00 31 B8 64 FF FF EC FF 73 94 01 80 82 90 00 0E", GenerationCPS3CL, true, true, "CPS3 CL masked"},
		{"2B 8F 80 01 00 31 B8 64 04 B0 EC C1 73 94 01 80 82 90 00 0E", GenerationUnknown, false, false, "OpenSC's 2B typo"},
		{"3B 9B 18 80 01 00 12 25 00 64 80 04 01 00 00 90 44", GenerationCPS4, true, false, "CPS4"},
		{"3B 9B 18 80 01 00 12 25 00 64 80 00 04 01 00 90 44", GenerationCPS4, true, false, "CPS4 RC"},
		{"3B DC 18 FF 00 00 12 25 00 64 80 00 04 01 00 90 00", GenerationCPS4, true, false, "CPS4 RC T=0 (also fits the CPS3 mask)"},
		{"3B 9B 18 80 01 00 12 25 00 64 80 04 01 00 00 90 45", GenerationUnknown, false, false, "CPS4 with one byte off (exact match)"},
		{"3B 88 80 01 00 47 45 4E 45 52 49 43 58", GenerationUnknown, false, false, "generic ISO card"},
		{"3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90", GenerationUnknown, false, false, "short"},
		{"3B 95 13 81 01 80 73 FF 01 00 0B", GenerationUnknown, false, false, "vicc"},
		{"", GenerationUnknown, false, false, "empty"},
	}
	for _, tt := range tests {
		ct := Recognise(h(tt.atr))
		if ct.Generation != tt.gen || ct.Supported != tt.ok || ct.Contactless != tt.cl {
			t.Errorf("%s: %+v", tt.desc, ct)
		}
		p, err := NewProfile(h(tt.atr), DefaultQuirks())
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrUnsupported)) {
			t.Errorf("%s: NewProfile err = %v", tt.desc, err)
		}
		if err == nil && p.Type() != ct {
			t.Errorf("%s: profile type %+v, Recognise %+v", tt.desc, p.Type(), ct)
		}
		if _, isCPS4 := p.(*CPS4); err == nil && isCPS4 != (tt.gen == GenerationCPS4) {
			t.Errorf("%s: profile %T", tt.desc, p)
		}
	}
}

func TestParseSNICC(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"5A 0A 80 25 00 00 01 99 21 38 45 0F", "99213845"},
		{"5A 0A 80 25 00 00 01 12 34 56 78 9F", "12345678"},
		{"5A 07 80 25 00 00 01 01 0F", "01"},
		{"5A 0A 80 25 00 00 01 99 21 38 45 0F FF FF", "99213845"}, // padding after the TLV
		{"5A 0A 80 25 00 00 02 99 21 38 45 0F", ""},               // not ANS
		{"5A 06 80 25 00 00 01 0F", ""},                           // nothing left once the last byte dropped
		{"4F 0A 80 25 00 00 01 99 21 38 45 0F", ""},
		{"5A 0B 80 25 00 00 01 99 21 38 45 0F", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := ParseSNICC(h(tt.in))
		if tt.want == "" {
			if !errors.Is(err, ErrFormat) {
				t.Errorf("%s: (%q, %v), want ErrFormat", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: (%q, %v), want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzIdentitySerial(f *testing.F) {
	f.Add(h("5A 0A 80 25 00 00 01 99 21 38 45 0F"))
	f.Add(h("5A 07 80 25 00 00 01 01 0F"))
	f.Add(h("5A 81 0A 80 25 00 00 01 99 21 38 45 0F"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSNICC(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		if s == "" || len(s)%2 != 0 || strings.ToUpper(s) != s {
			t.Fatalf("serial %q", s)
		}
		if _, err := hex.DecodeString(s); err != nil {
			t.Fatalf("serial %q is not hex", s)
		}
	})
}

func TestEncodePIN(t *testing.T) {
	ascii := DefaultQuirks()
	bcd := DefaultQuirks()
	bcd.PINEncoding = "bcd"
	padded := DefaultQuirks()
	padded.PINPadLength, padded.PINPadByte = 8, 0xFF
	bcdPadded := bcd
	bcdPadded.PINPadLength, bcdPadded.PINPadByte = 8, 0xFF
	tests := []struct {
		q      Quirks
		pin    string
		digits int
		want   string // "" = ErrPINFormat
	}{
		{ascii, "1234", 4, "31 32 33 34"},
		{ascii, "12345678", 8, "31 32 33 34 35 36 37 38"},
		{bcd, "1234", 4, "12 34"},
		{bcd, "12345", 5, "12 34 5F"},
		{padded, "1234", 4, "31 32 33 34 FF FF FF FF"},
		{padded, "12345678", 8, "31 32 33 34 35 36 37 38"},
		{bcdPadded, "1234", 4, "12 34 FF FF FF FF FF FF"},
		{ascii, "123", 4, ""},
		{ascii, "12345", 4, ""},
		{ascii, "12a4", 4, ""},
		{ascii, "12 4", 4, ""},
		{ascii, "", 4, ""},
		{ascii, "١٢٣٤", 4, ""}, // Arabic-Indic digits are not ASCII
		{ascii, "1234567", 8, ""},
	}
	for _, tt := range tests {
		got, err := EncodePIN(tt.q, []byte(tt.pin), tt.digits)
		if tt.want == "" {
			if !errors.Is(err, ErrPINFormat) {
				t.Errorf("EncodePIN(%q) = % X, %v; want ErrPINFormat", tt.pin, got, err)
			}
			if err != nil && strings.Contains(err.Error(), tt.pin) && tt.pin != "" {
				t.Errorf("error message quotes the PIN: %v", err)
			}
			continue
		}
		if err != nil || apdu.Hex(got) != tt.want {
			t.Errorf("EncodePIN(%q, %+v) = %s, %v; want %s", tt.pin, tt.q.PINEncoding, apdu.Hex(got), err, tt.want)
		}
	}
	bad := DefaultQuirks()
	bad.PINEncoding = "utf16"
	if _, err := EncodePIN(bad, []byte("1234"), 4); !errors.Is(err, ErrPINFormat) {
		t.Errorf("unknown encoding: %v", err)
	}
}

func cps3(q Quirks) *CPS3 {
	p, err := NewProfile(ATRCPS3Contact, q)
	if err != nil {
		panic(err)
	}
	return p.(*CPS3)
}

func TestReadSerialAPDUs(t *testing.T) {
	ch, done := run(t,
		[2]string{"00 A4 09 0C 04 3F 00 D0 03", "90 00"},
		[2]string{"00 B0 00 00 0C", "5A 0A 80 25 00 00 01 99 21 38 45 0F 90 00"},
	)
	s, err := cps3(DefaultQuirks()).ReadSerial(ch)
	if err != nil || s != "99213845" {
		t.Fatalf("ReadSerial = %q, %v", s, err)
	}
	done()
}

func TestPINFlowsAPDUs(t *testing.T) {
	sig := apdu.Hex(bytes.Repeat([]byte{0x5A}, 256))
	q := DefaultQuirks()
	t.Run("status", func(t *testing.T) {
		tests := []struct {
			sw      string
			q       func(*Quirks)
			tries   int
			blocked bool
		}{
			{"63 C3", nil, 3, false},
			{"63 C1", nil, 1, false},
			{"69 83", nil, 0, true},
			{"63 C0", nil, 0, true},
			{"63 C0", func(q *Quirks) { q.BlockedOn63C0 = false }, 0, false},
		}
		for _, tt := range tests {
			qq := q
			if tt.q != nil {
				tt.q(&qq)
			}
			ch, done := run(t, [2]string{"00 20 00 01", tt.sw})
			st, err := cps3(qq).PINStatus(ch)
			if err != nil || st.TriesLeft != tt.tries || st.Blocked != tt.blocked || st.MaxTries != 3 {
				t.Errorf("%s: %+v, %v", tt.sw, st, err)
			}
			done()
		}
	})
	t.Run("authenticate", func(t *testing.T) {
		ch, done := run(t,
			[2]string{"00 A4 09 0C 04 3F 00 00 01", "90 00"},
			[2]string{"00 20 00 01 04 ** ** ** **", "90 00"},
			[2]string{"00 22 41 A4 06 84 01 82 80 01 02", "90 00"},
			[2]string{"00 88 00 00 02 CA FE 00", "61 00"},
			[2]string{"00 C0 00 00 00", sig + " 90 00"},
		)
		got, err := cps3(q).Authenticate(ch, []byte("1234"), []byte{0xCA, 0xFE})
		if err != nil || len(got) != 256 {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
		done()
	})
	t.Run("authenticate in MF quirk", func(t *testing.T) {
		qq := q
		qq.VerifyInMF = true
		ch, done := run(t,
			[2]string{"00 A4 00 0C 02 3F 00", "90 00"},
			[2]string{"00 20 00 01 04 ** ** ** **", "90 00"},
			[2]string{"00 A4 09 0C 04 3F 00 00 01", "90 00"},
			[2]string{"00 22 41 A4 06 84 01 82 80 01 02", "90 00"},
			[2]string{"00 88 00 00 01 01 00", sig + " 90 00"},
		)
		if _, err := cps3(qq).Authenticate(ch, []byte("1234"), []byte{1}); err != nil {
			t.Fatal(err)
		}
		done()
	})
	t.Run("sign", func(t *testing.T) {
		ch, done := run(t,
			[2]string{"00 A4 09 0C 04 3F 00 00 01", "90 00"},
			[2]string{"00 20 00 01 04 ** ** ** **", "90 00"},
			[2]string{"00 22 41 AA 03 80 01 40", "90 00"},
			[2]string{"00 22 41 B6 06 84 01 81 80 01 42", "90 00"},
			[2]string{"00 2A 90 A0 07 90 00 80 03 61 62 63", "90 00"},
			[2]string{"00 2A 9E 9A 00", "61 00"},
			[2]string{"00 C0 00 00 00", sig + " 90 00"},
		)
		if _, err := cps3(q).Sign(ch, []byte("1234"), []byte("abc")); err != nil {
			t.Fatal(err)
		}
		done()
	})
	t.Run("wrong PIN", func(t *testing.T) {
		ch, done := run(t,
			[2]string{"00 A4 09 0C 04 3F 00 00 01", "90 00"},
			[2]string{"00 20 00 01 04 ** ** ** **", "63 C2"},
		)
		_, err := cps3(q).Sign(ch, []byte("0000"), []byte("abc"))
		var w *WrongPINError
		if !errors.As(err, &w) || w.TriesLeft != 2 || w.PUK {
			t.Fatalf("err = %v", err)
		}
		done()
	})
	t.Run("last try fails", func(t *testing.T) {
		for _, sw := range []string{"63 C0", "69 83"} {
			ch, done := run(t,
				[2]string{"00 A4 09 0C 04 3F 00 00 01", "90 00"},
				[2]string{"00 20 00 01 04 ** ** ** **", sw},
			)
			_, err := cps3(q).Authenticate(ch, []byte("0000"), []byte{1})
			if !errors.Is(err, ErrPINBlocked) {
				t.Fatalf("%s: err = %v", sw, err)
			}
			done()
		}
	})
	t.Run("bad PIN sends nothing", func(t *testing.T) {
		ch, done := run(t)
		for _, pin := range []string{"123", "12345", "abcd", ""} {
			if _, err := cps3(q).Sign(ch, []byte(pin), []byte("abc")); !errors.Is(err, ErrPINFormat) {
				t.Fatalf("%q: %v", pin, err)
			}
			if err := cps3(q).ChangePIN(ch, []byte("1234"), []byte(pin)); !errors.Is(err, ErrPINFormat) {
				t.Fatalf("new %q: %v", pin, err)
			}
			if err := cps3(q).Unblock(ch, []byte("1234"), []byte("1234")); !errors.Is(err, ErrPINFormat) {
				t.Fatalf("4-digit PUK: %v", err)
			}
		}
		if _, err := cps3(q).Authenticate(ch, []byte("1234"), make([]byte, MaxAuthInput+1)); !errors.Is(err, ErrFormat) {
			t.Fatalf("103 bytes: %v", err)
		}
		done()
	})
	t.Run("change", func(t *testing.T) {
		ch, done := run(t,
			[2]string{"00 20 00 01 04 ** ** ** **", "90 00"},
			[2]string{"00 24 00 01 08 ** ** ** ** ** ** ** **", "90 00"},
		)
		if err := cps3(q).ChangePIN(ch, []byte("1234"), []byte("5678")); err != nil {
			t.Fatal(err)
		}
		done()
	})
	t.Run("unblock", func(t *testing.T) {
		ch, done := run(t,
			[2]string{"00 20 00 02 08 ** ** ** ** ** ** ** **", "90 00"},
			[2]string{"00 2C 02 01 04 ** ** ** **", "90 00"},
		)
		if err := cps3(q).Unblock(ch, []byte("12345678"), []byte("5678")); err != nil {
			t.Fatal(err)
		}
		done()
		ch, done = run(t, [2]string{"00 20 00 02 08 ** ** ** ** ** ** ** **", "63 C9"})
		err := cps3(q).Unblock(ch, []byte("12345678"), []byte("5678"))
		var w *WrongPINError
		if !errors.As(err, &w) || !w.PUK || w.TriesLeft != 9 {
			t.Fatalf("wrong PUK: %v", err)
		}
		done()
		ch, done = run(t, [2]string{"00 20 00 02 08 ** ** ** ** ** ** ** **", "69 83"})
		if err := cps3(q).Unblock(ch, []byte("12345678"), []byte("5678")); !errors.Is(err, ErrPUKBlocked) {
			t.Fatalf("blocked PUK: %v", err)
		}
		done()
	})
	t.Run("PUK status", func(t *testing.T) {
		ch, done := run(t,
			[2]string{"00 A4 00 0C 02 3F 00", "90 00"},
			[2]string{"00 CB 3F FF 0A 4D 08 70 06 BF 81 02 02 A0 80", "61 1C"},
			[2]string{"00 C0 00 00 1C", "70 1A BF 81 02 16 A0 14 9A 01 0A 9B 01 0A 9D 02 00 00 A1 08 8C 06 F3 FF 00 FF FF 00 90 00"},
			[2]string{"00 A4 00 0C 02 3F 00", "90 00"},
			[2]string{"00 CB 3F FF 0A 4D 08 70 06 BF 81 02 02 A0 80", "6D 00"},
			[2]string{"00 20 00 02", "63 C7"},
		)
		st, err := cps3(q).PUKStatus(ch)
		if err != nil || !st.Blocked || st.UsesLeft != 0 || st.TriesLeft != 10 || st.MaxTries != 10 {
			t.Fatalf("no uses left: %+v, %v", st, err)
		}
		st, err = cps3(q).PUKStatus(ch)
		if err != nil || st.Blocked || st.TriesLeft != 7 || st.UsesLeft != -1 {
			t.Fatalf("fallback: %+v, %v", st, err)
		}
		done()
	})
	t.Run("contactless", func(t *testing.T) {
		p, err := NewProfile(ATRCPS3CL, q)
		if err != nil {
			t.Fatal(err)
		}
		ch, done := run(t)
		if _, err := p.Sign(ch, []byte("1234"), nil); !errors.Is(err, ErrNotPermitted) {
			t.Fatalf("CL sign: %v", err)
		}
		done()
	})
}

func TestDERLength(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"30 03 01 02 03", 5},
		{"30 81 80", 131},
		{"30 82 06 1F", 0x61F + 4},
		{"30 83 01 00 00", 0x10000 + 5},
		{"31 03", -1},
		{"30 80", -1},
		{"30 84 00 00 00 01", -1},
		{"30", -1},
	}
	for _, tt := range tests {
		n, err := derLength(h(tt.in))
		if tt.want < 0 {
			if !errors.Is(err, ErrFormat) {
				t.Errorf("%s: %d, %v", tt.in, n, err)
			}
		} else if err != nil || n != tt.want {
			t.Errorf("%s: %d, %v; want %d", tt.in, n, err, tt.want)
		}
	}
}

func FuzzDERLength(f *testing.F) {
	f.Add(h("30 82 06 1F"))
	f.Add(h("30 81 80"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := derLength(b)
		if err == nil && n < 2 {
			t.Fatalf("length %d", n)
		}
	})
}

// A PKCS#15 directory as a real card would write it (relative paths from
// the application DF, one absolute path, one direct value).
var (
	testODF = h("A0 06 30 04 04 02 44 00" + // PrKDF (ignored)
		" A4 06 30 04 04 02 44 04" + // CDF, relative
		" A5 0A 30 08 04 06 3F 00 00 01 44 05") // trusted certificates, absolute
	testCDF = h("30 27 30 0C 0C 07 43 50 53 5F 41 55 54 03 01 00 30 06 04 01 02 01 01 00" + // CPS_AUT, iD 02
		" A1 0F 30 0D 30 0B 04 02 A0 01 02 01 00 80 02 06 00" + // relative path A001, length 0x600
		" 30 28 30 0C 0C 07 43 50 53 5F 53 49 47 03 01 00 30 03 04 01 01" + // CPS_SIG, iD 01
		" A1 13 30 11 30 0F 04 06 3F 00 00 01 A0 02 02 01 10 80 02 05 00" + // absolute path, offset 0x10
		" 30 12 30 03 0C 01 58 30 03 04 01 03 A1 06 30 04 A0 02 30 00") // direct value: skipped
)

func TestParsePKCS15(t *testing.T) {
	app := h("3F00 0001")
	cdfs, err := ParseODF(testODF, app)
	if err != nil {
		t.Fatal(err)
	}
	if len(cdfs) != 2 || apdu.Hex(cdfs[0].Path) != "3F 00 00 01 44 04" || apdu.Hex(cdfs[1].Path) != "3F 00 00 01 44 05" {
		t.Fatalf("CDF paths = %+v", cdfs)
	}
	es, err := ParseCDF(testCDF, app)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 {
		t.Fatalf("%d entries: %+v", len(es), es)
	}
	if es[0].Label != "CPS_AUT" || apdu.Hex(es[0].ID) != "02" || apdu.Hex(es[0].Path.Path) != "3F 00 00 01 A0 01" ||
		es[0].Path.Offset != 0 || es[0].Path.Length != 0x600 {
		t.Errorf("entry 0 = %+v", es[0])
	}
	if es[1].Label != "CPS_SIG" || apdu.Hex(es[1].Path.Path) != "3F 00 00 01 A0 02" || es[1].Path.Offset != 0x10 || es[1].Path.Length != 0x500 {
		t.Errorf("entry 1 = %+v", es[1])
	}
	if _, err := ParseODF(h("A0 06 30 04 04 02 44 00"), app); !errors.Is(err, ErrFormat) {
		t.Errorf("ODF without CDF: %v", err)
	}
	if _, err := ParseODF(h("A4 06 30 04 04 01 44"), app); !errors.Is(err, ErrFormat) {
		t.Errorf("odd path: %v", err)
	}
}

func FuzzParseODF(f *testing.F) {
	f.Add(testODF)
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ParseODF(b, h("3F000001"))
		if err != nil {
			return
		}
		for _, p := range ps {
			if len(p.Path) < 4 || p.Path[0] != 0x3F || p.Path[1] != 0 {
				t.Fatalf("path % X is not absolute", p.Path)
			}
		}
	})
}

func FuzzParseCDF(f *testing.F) {
	f.Add(testCDF)
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := ParseCDF(b, h("3F000001"))
		if err != nil {
			return
		}
		for _, e := range es {
			if len(e.Path.Path) < 4 || e.Path.Offset < 0 {
				t.Fatalf("entry %+v", e)
			}
		}
	})
}

func FuzzEncodePIN(f *testing.F) {
	f.Add([]byte("1234"), uint8(4), false, uint8(0))
	f.Add([]byte("12345678"), uint8(8), true, uint8(8))
	f.Add([]byte("12a4"), uint8(4), false, uint8(0))
	f.Fuzz(func(t *testing.T, pin []byte, digits uint8, bcd bool, pad uint8) {
		q := DefaultQuirks()
		if bcd {
			q.PINEncoding = "bcd"
		}
		q.PINPadLength, q.PINPadByte = int(pad%17), 0xFF
		out, err := EncodePIN(q, pin, int(digits%17))
		if err != nil {
			if !errors.Is(err, ErrPINFormat) {
				t.Fatalf("error %v is not ErrPINFormat", err)
			}
			return
		}
		if err := CheckPIN(pin, int(digits%17)); err != nil {
			t.Fatalf("encoded a PIN CheckPIN refuses: %v", err)
		}
		if len(out) < q.PINPadLength {
			t.Fatalf("not padded: %d < %d", len(out), q.PINPadLength)
		}
		if !bcd && !bytes.Equal(out[:len(pin)], pin) {
			t.Fatalf("ASCII encoding changed the digits")
		}
	})
}
