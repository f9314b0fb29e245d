package cps

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

func cps4(t *testing.T) *CPS4 {
	t.Helper()
	p, err := NewProfile(CPS4Facts.ATRs[0], DefaultQuirks())
	if err != nil {
		t.Fatal(err)
	}
	return p.(*CPS4)
}

const selectApplet = "01 A4 04 0C 08 80 25 00 00 01 FF 01 00"

func TestCPS4FactsTable(t *testing.T) {
	f := CPS4Facts
	for _, atr := range f.ATRs {
		if ct := Recognise(atr); ct.Generation != GenerationCPS4 || !ct.Supported || ct.Contactless {
			t.Errorf("%s: %+v", apdu.Hex(atr), ct)
		}
		// The ATRs offering T=1 carry a TCK: T0..TCK XOR to zero.
		if atr[0] == 0x3B && atr[1] == 0x9B {
			var x byte
			for _, b := range atr[1:] {
				x ^= b
			}
			if x != 0 {
				t.Errorf("%s: bad TCK", apdu.Hex(atr))
			}
		}
	}
	if f.CLA&0x03 != 1 || f.CLA&0xFC != 0 {
		t.Errorf("CLA %02X is not plain logical channel 1", f.CLA)
	}
	if !bytes.Equal(f.AppletAID, AIDIASECCRoot) {
		t.Errorf("applet AID % X", f.AppletAID)
	}
	if f.AuthKeyRef != 0x20 || f.SignKeyRef == f.AuthKeyRef || f.SignAlgSHA256 != 0x28 {
		t.Errorf("keys %+v", f)
	}
	for _, p := range []string{f.AppDFPath, f.AuthCertPath, f.SignCertPath} {
		if _, err := relPath(p, "path"); err != nil {
			t.Error(err)
		}
	}
	if f.PINRef == f.PUKRef || f.PINMaxTries != 3 || f.ReadChunk < 1 || f.ReadChunk > 256 || f.SerialSize != 12 {
		t.Errorf("PIN/file facts %+v", f)
	}
}

func TestPKCS1Type1Block(t *testing.T) {
	b, err := PKCS1Type1Block([]byte{0xCA, 0xFE}, 16)
	if err != nil || apdu.Hex(b) != "00 01 FF FF FF FF FF FF FF FF FF FF FF 00 CA FE" {
		t.Fatalf("%s, %v", apdu.Hex(b), err)
	}
	if _, err := PKCS1Type1Block(make([]byte, 6), 16); !errors.Is(err, ErrFormat) {
		t.Fatalf("fewer than 8 bytes of padding: %v", err)
	}
	if _, err := PKCS1Type1Block(nil, 256); !errors.Is(err, ErrFormat) {
		t.Fatalf("empty: %v", err)
	}
	if b, err := PKCS1Type1Block(make([]byte, 245), 256); err != nil || len(b) != 256 || b[10] != 0 || b[9] != 0xFF {
		t.Fatalf("245 bytes: %v", err)
	}
}

func FuzzPKCS1Type1Block(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint16(256))
	f.Add(make([]byte, 245), uint16(256))
	f.Add([]byte{}, uint16(11))
	f.Fuzz(func(t *testing.T, data []byte, k uint16) {
		n := int(k % 600)
		em, err := PKCS1Type1Block(data, n)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if len(em) != n || em[0] != 0 || em[1] != 1 || !bytes.Equal(em[n-len(data):], data) || em[n-len(data)-1] != 0 {
			t.Fatalf("block % X for % X", em, data)
		}
		ps := em[2 : n-len(data)-1]
		if len(ps) < 8 || bytes.Count(ps, []byte{0xFF}) != len(ps) {
			t.Fatalf("padding % X", ps)
		}
	})
}

func TestCPS4APDUs(t *testing.T) {
	sig := apdu.Hex(bytes.Repeat([]byte{0x5A}, 256))
	t.Run("serial", func(t *testing.T) {
		ch, done := run(t,
			[2]string{selectApplet, "90 00"},
			[2]string{"01 A4 00 0C 02 D0 03", "90 00"},
			[2]string{"01 B0 00 00 0C", "5A 0A 80 25 00 00 01 99 21 38 45 0F 90 00"},
		)
		p := cps4(t)
		s, err := p.ReadSerial(ch)
		if err != nil || s != "99213845" {
			t.Fatalf("%q, %v", s, err)
		}
		done()
	})
	t.Run("channel closed: MANAGE CHANNEL then SELECT", func(t *testing.T) {
		ch, done := run(t,
			[2]string{selectApplet, "68 81"},
			[2]string{"00 70 00 01", "90 00"},
			[2]string{selectApplet, "90 00"},
			[2]string{"01 20 00 01", "63 C3"},
		)
		st, err := cps4(t).PINStatus(ch)
		if err != nil || st.TriesLeft != 3 || st.MaxTries != 3 || st.Blocked {
			t.Fatalf("%+v, %v", st, err)
		}
		done()
	})
	t.Run("channel lost mid-transaction: reselect and resend", func(t *testing.T) {
		ch, done := run(t,
			[2]string{selectApplet, "90 00"},
			[2]string{"01 20 00 01", "68 81"},
			[2]string{selectApplet, "90 00"},
			[2]string{"01 20 00 01", "63 C2"},
			[2]string{"01 20 00 02", "63 CA"},
		)
		p := cps4(t)
		st, err := p.PINStatus(ch)
		if err != nil || st.TriesLeft != 2 {
			t.Fatalf("%+v, %v", st, err)
		}
		st, err = p.PUKStatus(ch) // same transaction: no second SELECT
		if err != nil || st.TriesLeft != 10 || st.MaxTries != 10 || st.UsesLeft != -1 {
			t.Fatalf("PUK %+v, %v", st, err)
		}
		done()
	})
	t.Run("PIN status words", func(t *testing.T) {
		for _, tt := range []struct {
			sw       string
			tries    int
			blocked  bool
			verified bool
			fails    bool
		}{
			{"63 C1", 1, false, false, false},
			{"63 C0", 0, true, false, false},
			{"69 83", 0, true, false, false},
			{"90 00", -1, false, true, false},
			{"6A 88", 0, false, false, true},
		} {
			ch, done := run(t, [2]string{selectApplet, "90 00"}, [2]string{"01 20 00 01", tt.sw})
			st, err := cps4(t).PINStatus(ch)
			if (err != nil) != tt.fails || (!tt.fails && (st.TriesLeft != tt.tries || st.Blocked != tt.blocked || st.Verified != tt.verified)) {
				t.Errorf("%s: %+v, %v", tt.sw, st, err)
			}
			done()
		}
	})
	t.Run("authenticate", func(t *testing.T) {
		data := []byte{0xCA, 0xFE}
		block, _ := PKCS1Type1Block(data, 256)
		ch, done := run(t,
			[2]string{selectApplet, "90 00"},
			[2]string{"01 20 00 01 04 ** ** ** **", "90 00"},
			[2]string{"01 22 41 B8 03 83 01 20", "90 00"},
			[2]string{"11 2A 80 86 FF " + apdu.Hex(block[:255]), "90 00"},
			[2]string{"01 2A 80 86 01 " + apdu.Hex(block[255:]) + " 00", "61 00"},
			[2]string{"01 C0 00 00 00", sig + " 90 00"},
		)
		got, err := cps4(t).Authenticate(ch, []byte("1234"), data)
		if err != nil || len(got) != 256 {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
		done()
	})
	t.Run("authenticate with a 1024-bit key", func(t *testing.T) {
		data := []byte{1}
		block, _ := PKCS1Type1Block(data, 128)
		short := apdu.Hex(bytes.Repeat([]byte{1}, 128))
		ch, done := run(t,
			[2]string{selectApplet, "90 00"},
			[2]string{"01 20 00 01 04 ** ** ** **", "90 00"},
			[2]string{"01 22 41 B8 03 83 01 20", "90 00"},
			[2]string{"01 2A 80 86 80 " + apdu.Hex(block) + " 00", short + " 90 00"},
		)
		p := cps4(t)
		p.SetAuthKeyBits(1024)
		if got, err := p.Authenticate(ch, []byte("1234"), data); err != nil || len(got) != 128 {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
		done()
	})
	t.Run("sign", func(t *testing.T) {
		h := sha256.Sum256([]byte("abc"))
		ch, done := run(t,
			[2]string{selectApplet, "90 00"},
			[2]string{"01 20 00 01 04 ** ** ** **", "90 00"},
			[2]string{"01 22 81 B6 04 91 02 28 A1", "90 00"},
			[2]string{"01 2A 9E 9A 20 " + apdu.Hex(h[:]) + " 00", sig + " 90 00"},
		)
		if got, err := cps4(t).Sign(ch, []byte("1234"), []byte("abc")); err != nil || len(got) != 256 {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
		done()
	})
	t.Run("wrong and blocked PIN", func(t *testing.T) {
		for _, tt := range []struct {
			sw      string
			blocked bool
		}{{"63 C1", false}, {"63 C0", true}, {"69 83", true}} {
			ch, done := run(t, [2]string{selectApplet, "90 00"}, [2]string{"01 20 00 01 04 ** ** ** **", tt.sw})
			_, err := cps4(t).Sign(ch, []byte("0000"), []byte("abc"))
			var w *WrongPINError
			switch {
			case tt.blocked && !errors.Is(err, ErrPINBlocked):
				t.Fatalf("%s: %v, want blocked", tt.sw, err)
			case !tt.blocked && (!errors.As(err, &w) || w.TriesLeft != 1 || w.PUK):
				t.Fatalf("%s: %v, want 1 try left", tt.sw, err)
			}
			done()
		}
	})
	t.Run("change", func(t *testing.T) {
		ch, done := run(t,
			[2]string{selectApplet, "90 00"},
			[2]string{"01 20 00 01 04 ** ** ** **", "90 00"},
			[2]string{"01 24 01 01 04 ** ** ** **", "90 00"},
		)
		if err := cps4(t).ChangePIN(ch, []byte("1234"), []byte("5678")); err != nil {
			t.Fatal(err)
		}
		done()
	})
	t.Run("unblock", func(t *testing.T) {
		ch, done := run(t,
			[2]string{selectApplet, "90 00"},
			[2]string{"01 20 00 02 08 ** ** ** ** ** ** ** **", "90 00"},
			[2]string{"01 2C 03 81", "90 00"},
			[2]string{"01 24 01 01 04 ** ** ** **", "90 00"},
		)
		if err := cps4(t).Unblock(ch, []byte("12345678"), []byte("5678")); err != nil {
			t.Fatal(err)
		}
		done()
		ch, done = run(t, [2]string{selectApplet, "90 00"}, [2]string{"01 20 00 02 08 ** ** ** ** ** ** ** **", "63 C9"})
		var w *WrongPINError
		if err := cps4(t).Unblock(ch, []byte("12345678"), []byte("5678")); !errors.As(err, &w) || !w.PUK || w.TriesLeft != 9 {
			t.Fatalf("wrong PUK: %v", err)
		}
		done()
	})
	t.Run("bad PIN or input sends nothing", func(t *testing.T) {
		ch, done := run(t)
		p := cps4(t)
		if _, err := p.Sign(ch, []byte("12a4"), nil); !errors.Is(err, ErrPINFormat) {
			t.Fatal(err)
		}
		if _, err := p.Authenticate(ch, []byte("1234"), make([]byte, MaxAuthInput+1)); !errors.Is(err, ErrFormat) {
			t.Fatal(err)
		}
		if err := p.Unblock(ch, []byte("1234"), []byte("1234")); !errors.Is(err, ErrPINFormat) {
			t.Fatal(err)
		}
		if err := p.ChangePIN(ch, []byte("1234"), []byte("123")); !errors.Is(err, ErrPINFormat) {
			t.Fatal(err)
		}
		done()
	})
	t.Run("certificates", func(t *testing.T) {
		cert := append([]byte{0x30, 0x82, 0x01, 0x00}, bytes.Repeat([]byte{7}, 256)...)
		ch, done := run(t,
			[2]string{selectApplet, "90 00"},
			[2]string{"01 A4 08 0C 04 00 01 A0 01", "90 00"},
			[2]string{"01 B0 00 00 E7", apdu.Hex(cert[:231]) + " 90 00"},
			[2]string{"01 B0 00 E7 1D", apdu.Hex(cert[231:]) + " 90 00"},
			[2]string{"01 A4 08 0C 04 00 01 A0 02", "90 00"},
			[2]string{"01 B0 00 00 E7", apdu.Hex(cert[:231]) + " 90 00"},
			[2]string{"01 B0 00 E7 1D", apdu.Hex(cert[231:]) + " 90 00"},
		)
		a, s, err := cps4(t).ReadCertificates(ch)
		if err != nil || !bytes.Equal(a, cert) || !bytes.Equal(s, cert) {
			t.Fatalf("%d/%d bytes, %v", len(a), len(s), err)
		}
		done()
	})
	t.Run("certificates through PKCS#15 when the paths are absent", func(t *testing.T) {
		ch, done := run(t,
			[2]string{selectApplet, "90 00"},
			[2]string{"01 A4 08 0C 04 00 01 A0 01", "6A 82"},
			[2]string{"01 A4 08 0C 04 00 01 50 31", "90 00"},
			[2]string{"01 B0 00 00 E7", "A4 06 30 04 04 02 44 04 90 00"},
			[2]string{"01 A4 08 0C 04 00 01 44 04", "90 00"},
			[2]string{"01 B0 00 00 E7", "00 90 00"},
		)
		_, _, err := cps4(t).ReadCertificates(ch)
		if !errors.Is(err, ErrNoCertificate) {
			t.Fatalf("empty CDF: %v", err)
		}
		done()
	})
}

func TestContactlessRefusesBeforeAnyAPDU(t *testing.T) {
	p, err := NewProfile(ATRCPS3CL, DefaultQuirks())
	if err != nil {
		t.Fatal(err)
	}
	ch, done := run(t)
	if _, err := p.Authenticate(ch, []byte("1234"), []byte{1}); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("authenticate: %v", err)
	}
	if _, err := p.Sign(ch, []byte("1234"), []byte{1}); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("sign: %v", err)
	}
	if err := p.ChangePIN(ch, []byte("1234"), []byte("5678")); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("change: %v", err)
	}
	if err := p.Unblock(ch, []byte("12345678"), []byte("5678")); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("unblock: %v", err)
	}
	if _, err := p.PINStatus(ch); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("PIN status: %v", err)
	}
	if _, err := p.PUKStatus(ch); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("PUK status: %v", err)
	}
	done()
	// Identity: the certificates of the contactless application's DF.
	cert := append([]byte{0x30, 0x03}, 1, 2, 3)
	ch, done = run(t,
		[2]string{"00 A4 09 0C 06 3F 00 00 02 A0 01", "90 00"},
		[2]string{"00 B0 00 00 E7", apdu.Hex(cert) + " 90 00"},
		[2]string{"00 A4 09 0C 06 3F 00 00 02 A0 02", "90 00"},
		[2]string{"00 B0 00 00 E7", apdu.Hex(cert) + " 90 00"},
	)
	if _, _, err := p.ReadCertificates(ch); err != nil {
		t.Fatal(err)
	}
	done()
}

// answers is a card that replays fuzzed responses, cycling.
type answers struct {
	resp [][]byte
	i    int
}

func (a *answers) Transmit([]byte) ([]byte, error) {
	if len(a.resp) == 0 {
		return []byte{0x6F, 0x00}, nil
	}
	r := a.resp[a.i%len(a.resp)]
	a.i++
	if a.i > 200 {
		return []byte{0x6F, 0x00}, nil
	}
	return r, nil
}

// FuzzCPS4CardAnswers runs every CPS4 flow against a card answering
// arbitrary bytes: the profile must return an error or a well-formed result,
// never panic or loop.
func FuzzCPS4CardAnswers(f *testing.F) {
	f.Add([]byte("\x90\x00|\x90\x00|\x5A\x0A\x80\x25\x00\x00\x01\x99\x21\x38\x45\x0F\x90\x00"))
	f.Add([]byte("\x68\x81|\x90\x00|\x63\xC2"))
	f.Add([]byte("\x90\x00|\x30\x82\x01\x00\x90\x00|\x62\x82"))
	f.Add([]byte("\x61\x00|\x6C\x05|\x90"))
	f.Fuzz(func(t *testing.T, script []byte) {
		var resp [][]byte
		for _, part := range bytes.Split(script, []byte("|")) {
			resp = append(resp, part)
		}
		for op := 0; op < 7; op++ {
			ch := &apdu.Channel{T: &answers{resp: resp}}
			p := NewCPS4(DefaultQuirks(), CPS4Facts)
			switch op {
			case 0:
				if s, err := p.ReadSerial(ch); err == nil && (s == "" || strings.ToUpper(s) != s) {
					t.Fatalf("serial %q", s)
				}
			case 1:
				_, _, _ = p.ReadCertificates(ch)
			case 2:
				if st, err := p.PINStatus(ch); err == nil && st.Blocked && st.TriesLeft != 0 {
					t.Fatalf("blocked with %d tries", st.TriesLeft)
				}
			case 3:
				_, _ = p.Authenticate(ch, []byte("1234"), []byte{1, 2})
			case 4:
				_, _ = p.Sign(ch, []byte("1234"), script)
			case 5:
				_ = p.ChangePIN(ch, []byte("1234"), []byte("5678"))
			case 6:
				_ = p.Unblock(ch, []byte("12345678"), []byte("5678"))
			}
		}
	})
}
