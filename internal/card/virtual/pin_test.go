package virtual

import (
	"bytes"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

func TestPINCounters(t *testing.T) {
	tests := []struct {
		name       string
		behave     Behaviour
		thirdWrong uint16
	}{
		{"default 63C0", Behaviour{}, 0x63C0},
		{"6983 on the third failure", Behaviour{ThirdWrongPIN: "6983"}, apdu.SWAuthBlocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCard(t, func(cfg *Config) { cfg.Behaviour = tt.behave })
			wantSW(t, "status", rawHex(t, c, "00 20 00 01"), 0x63C3)
			wantSW(t, "status again (no try used)", rawHex(t, c, "00 20 00 01"), 0x63C3)
			wantSW(t, "wrong 1", verifyPIN(t, c, "0000"), 0x63C2)
			wantSW(t, "right resets", verifyPIN(t, c, "1234"), apdu.SWSuccess)
			wantSW(t, "verified status", rawHex(t, c, "00 20 00 01"), apdu.SWSuccess)
			wantSW(t, "T=0 header status", rawHex(t, c, "00 20 00 01 00"), apdu.SWSuccess)
			wantSW(t, "wrong 1 again", verifyPIN(t, c, "0000"), 0x63C2)
			wantSW(t, "wrong clears verified", rawHex(t, c, "00 20 00 01"), 0x63C2)
			wantSW(t, "wrong 2", verifyPIN(t, c, "1111"), 0x63C1)
			wantSW(t, "wrong 3", verifyPIN(t, c, "2222"), tt.thirdWrong)
			wantSW(t, "blocked status", rawHex(t, c, "00 20 00 01"), apdu.SWAuthBlocked)
			wantSW(t, "right PIN while blocked", verifyPIN(t, c, "1234"), apdu.SWAuthBlocked)
			if st := c.PINStatus(); st.PINTriesLeft != 0 || st.PINVerified {
				t.Errorf("status %+v", st)
			}
			// The PIN DOCP shows the counter.
			d, sw := doHex(t, c, "00 CB 3F FF 0A 4D 08 70 06 BF 81 01 02 A0 80")
			wantSW(t, "DOCP", sw, apdu.SWSuccess)
			if !bytes.Equal(d, h(t, "70 16 BF 81 01 12 A0 10 9A 01 03 9B 01 00 A1 08 8C 06 F3 00 00 13 FF 00")) {
				t.Errorf("DOCP %s", apdu.Hex(d))
			}

			// Unblock with the PUK: VERIFY PUK, RESET RETRY COUNTER with a new PIN.
			wantSW(t, "PUK status", rawHex(t, c, "00 20 00 02"), 0x63CA)
			wantSW(t, "wrong PUK", rawHex(t, c, "00 20 00 02 08 30 30 30 30 30 30 30 30"), 0x63C9)
			wantSW(t, "RRC without PUK", rawHex(t, c, "00 2C 02 01 04 35 36 37 38"), apdu.SWSecurityStatus)
			wantSW(t, "PUK", rawHex(t, c, "00 20 00 02 08 31 32 33 34 35 36 37 38"), apdu.SWSuccess)
			wantSW(t, "RRC bad new PIN", rawHex(t, c, "00 2C 02 01 03 35 36 37"), apdu.SWWrongData)
			wantSW(t, "RRC", rawHex(t, c, "00 2C 02 01 04 35 36 37 38"), apdu.SWSuccess)
			wantSW(t, "PIN counter reset, not verified", rawHex(t, c, "00 20 00 01"), 0x63C3)
			wantSW(t, "PUK verification consumed", rawHex(t, c, "00 2C 03 01"), apdu.SWSecurityStatus)
			wantSW(t, "old PIN", verifyPIN(t, c, "1234"), 0x63C2)
			wantSW(t, "new PIN", verifyPIN(t, c, "5678"), apdu.SWSuccess)
			st := c.PINStatus()
			if st.PUKUsesLeft != 99 || st.PUKTriesLeft != 10 {
				t.Errorf("PUK after unblock %+v", st)
			}
			d, _ = doHex(t, c, "00 CB 3F FF 0A 4D 08 70 06 BF 81 02 02 A0 80")
			if !bytes.Equal(d, h(t, "70 1A BF 81 02 16 A0 14 9A 01 0A 9B 01 0A 9D 02 00 63 A1 08 8C 06 F3 FF 00 FF FF 00")) {
				t.Errorf("PUK DOCP %s", apdu.Hex(d))
			}
		})
	}
}

func TestPUKBlockingAndUses(t *testing.T) {
	c := newTestCard(t)
	for i := 9; i >= 1; i-- {
		wantSW(t, "wrong PUK", rawHex(t, c, "00 20 00 02 08 30 30 30 30 30 30 30 30"), 0x63C0|uint16(i))
	}
	wantSW(t, "last wrong PUK", rawHex(t, c, "00 20 00 02 08 30 30 30 30 30 30 30 30"), 0x63C0)
	wantSW(t, "PUK blocked", rawHex(t, c, "00 20 00 02 08 31 32 33 34 35 36 37 38"), apdu.SWAuthBlocked)
	wantSW(t, "PUK status", rawHex(t, c, "00 20 00 02"), apdu.SWAuthBlocked)

	// Uses: a card with 1 use left blocks the PUK after one unblock.
	c2 := newTestCard(t, func(cfg *Config) { cfg.Behaviour.KeepPUKAfterUnblock = true })
	c2.puk.uses = 1
	wantSW(t, "PUK", rawHex(t, c2, "00 20 00 02 08 31 32 33 34 35 36 37 38"), apdu.SWSuccess)
	wantSW(t, "RRC reset only", rawHex(t, c2, "00 2C 03 01"), apdu.SWSuccess)
	wantSW(t, "no uses left", rawHex(t, c2, "00 2C 03 01"), apdu.SWAuthBlocked)
	wantSW(t, "PUK status with no uses", rawHex(t, c2, "00 20 00 02"), apdu.SWAuthBlocked)
	wantSW(t, "RRC with a blocked PUK", rawHex(t, c2, "00 2C 03 01 01 00"), apdu.SWAuthBlocked)
}

func TestWrongLengthPIN(t *testing.T) {
	tests := []struct {
		mode  string
		sw    uint16
		tries uint16
	}{
		{"", apdu.SWWrongData, 0x63C3},
		{"6700", apdu.SWWrongLength, 0x63C3},
		{"consume", 0x63C2, 0x63C2},
	}
	for _, tt := range tests {
		t.Run("mode "+tt.mode, func(t *testing.T) {
			c := newTestCard(t, func(cfg *Config) { cfg.Behaviour.WrongLengthPIN = tt.mode })
			wantSW(t, "5 digits", verifyPIN(t, c, "12345"), tt.sw)
			wantSW(t, "counter", rawHex(t, c, "00 20 00 01"), tt.tries)
		})
	}
}

func TestChangePIN(t *testing.T) {
	c := newTestCard(t)
	wantSW(t, "change without VERIFY", rawHex(t, c, "00 24 00 01 08 31 32 33 34 34 33 32 31"), apdu.SWSecurityStatus)
	verifyPIN(t, c, "1234")
	wantSW(t, "wrong old PIN", rawHex(t, c, "00 24 00 01 08 39 39 39 39 34 33 32 31"), 0x63C2)
	wantSW(t, "verified state lost", rawHex(t, c, "00 24 00 01 08 31 32 33 34 34 33 32 31"), apdu.SWSecurityStatus)
	verifyPIN(t, c, "1234")
	wantSW(t, "new PIN with letters", rawHex(t, c, "00 24 00 01 08 31 32 33 34 34 33 32 41"), apdu.SWWrongData)
	wantSW(t, "only the old PIN", rawHex(t, c, "00 24 00 01 04 31 32 33 34"), apdu.SWWrongData)
	wantSW(t, "change", rawHex(t, c, "00 24 00 01 08 31 32 33 34 34 33 32 31"), apdu.SWSuccess)
	wantSW(t, "still verified", rawHex(t, c, "00 20 00 01"), apdu.SWSuccess)
	c.Reset()
	wantSW(t, "old PIN", verifyPIN(t, c, "1234"), 0x63C2)
	wantSW(t, "new PIN", verifyPIN(t, c, "4321"), apdu.SWSuccess)
	if c.Config().PIN != "4321" || c.Stats().PINChanges != 1 {
		t.Errorf("config PIN %q, stats %+v", c.Config().PIN, c.Stats())
	}
	// ChangeWithoutVerify: the old PIN in the data suffices.
	c2 := newTestCard(t, func(cfg *Config) { cfg.Behaviour.ChangeWithoutVerify = true })
	wantSW(t, "change without VERIFY allowed", rawHex(t, c2, "00 24 00 01 08 31 32 33 34 34 33 32 31"), apdu.SWSuccess)
}

func TestPINEncodings(t *testing.T) {
	tests := []struct {
		name   string
		behave Behaviour
		verify string
		public string // 7F41 answer
	}{
		{"ascii", Behaviour{}, "00 20 00 01 04 31 32 33 34", "70 0D BF 81 01 09 7F 41 06 80 01 04 81 01 04"},
		{"bcd", Behaviour{PINEncoding: "bcd"}, "00 20 00 01 02 12 34", "70 0D BF 81 01 09 7F 41 06 80 01 02 81 01 02"},
		{"ascii padded to 8 with FF", Behaviour{PINPadLength: 8}, "00 20 00 01 08 31 32 33 34 FF FF FF FF", "70 0D BF 81 01 09 7F 41 06 80 01 08 81 01 08"},
		{"bcd padded", Behaviour{PINEncoding: "bcd", PINPadLength: 8}, "00 20 00 01 08 12 34 FF FF FF FF FF FF", "70 0D BF 81 01 09 7F 41 06 80 01 08 81 01 08"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCard(t, func(cfg *Config) { cfg.Behaviour = tt.behave })
			d, sw := doHex(t, c, "00 CB 3F FF 0B 4D 09 70 07 BF 81 01 03 7F 41 80")
			wantSW(t, "7F41", sw, apdu.SWSuccess)
			if !bytes.Equal(d, h(t, tt.public)) {
				t.Errorf("7F41 %s", apdu.Hex(d))
			}
			wantSW(t, "verify", rawHex(t, c, tt.verify), apdu.SWSuccess)
		})
	}
	if _, ok := decodeSecret(Behaviour{PINEncoding: "bcd"}.withDefaults(), []byte{0x12, 0x3F}); ok {
		t.Error("3-digit BCD accepted")
	}
	if s, ok := decodeSecret(Behaviour{PINEncoding: "bcd"}.withDefaults(), []byte{0x12, 0x34, 0x5F}); !ok || s != "12345" {
		t.Errorf("odd BCD: %q %v", s, ok)
	}
	if _, ok := decodeSecret(Behaviour{PINEncoding: "bcd"}.withDefaults(), []byte{0x1F, 0x34}); ok {
		t.Error("F nibble inside accepted")
	}
}

func TestPINReferences(t *testing.T) {
	c := newTestCard(t, func(cfg *Config) { cfg.Behaviour.PINRef, cfg.Behaviour.PUKRef = 0x11, 0x12 })
	wantSW(t, "ref 01 unknown", rawHex(t, c, "00 20 00 01"), apdu.SWReferencedDataNotFound)
	wantSW(t, "ref 11", rawHex(t, c, "00 20 00 11 04 31 32 33 34"), apdu.SWSuccess)
	d, _ := doHex(t, c, "00 CB 3F FF 0A 4D 08 70 06 BF FB 03 02 7B 80")
	if !bytes.Equal(d, h(t, "70 0E BF FB 03 0A 7B 08 A4 06 83 01 12 95 01 08")) {
		t.Errorf("SE #3 %s", apdu.Hex(d))
	}
}

func TestSecurityEnvironments(t *testing.T) {
	c := newTestCard(t)
	d, sw := doHex(t, c, "00 CB 3F FF 0A 4D 08 70 06 BF FB 03 02 7B 80")
	wantSW(t, "SE #3", sw, apdu.SWSuccess)
	if !bytes.Equal(d, h(t, "70 0E BF FB 03 0A 7B 08 A4 06 83 01 02 95 01 08")) {
		t.Errorf("SE #3 %s", apdu.Hex(d))
	}
	d, _ = doHex(t, c, "00 CB 3F FF 0A 4D 08 70 06 BF FB 01 02 7B 80")
	if !bytes.Equal(d, h(t, "70 0E BF FB 01 0A 7B 08 A4 06 83 01 01 95 01 08")) {
		t.Errorf("SE #1 %s", apdu.Hex(d))
	}
	selectApp(t, c)
	_, sw = doHex(t, c, "00 CB 3F FF 0A 4D 08 70 06 BF FB 03 02 7B 80")
	wantSW(t, "SE in the app DF", sw, apdu.SWReferencedDataNotFound)
	// Key DOCPs: size 01 00, PSO CDS only for 0x81, INT AUTH + DECIPHER for 0x82.
	d, _ = doHex(t, c, "00 CB 3F FF 0A 4D 08 70 06 BF 90 01 02 A0 80")
	if !bytes.Equal(d, h(t, "70 15 BF 90 01 11 A0 0F 80 02 01 00 A1 09 8C 07 7B 11 FF FF FF FF 00")) {
		t.Errorf("sign key DOCP %s", apdu.Hex(d))
	}
	d, _ = doHex(t, c, "00 CB 3F FF 0A 4D 08 70 06 BF 90 02 02 A0 80")
	if !bytes.Equal(d, h(t, "70 15 BF 90 02 11 A0 0F 80 02 01 00 A1 09 8C 07 7B FF 11 11 FF FF 00")) {
		t.Errorf("auth key DOCP %s", apdu.Hex(d))
	}
	// Public key SDO: modulus and exponent.
	d, sw = doHex(t, c, "00 CB 3F FF 0B 4D 09 70 07 BF A0 02 03 7F 49 80")
	wantSW(t, "public key", sw, apdu.SWSuccess)
	n, err := apdu.FindPath(d, 0x70, 0xBFA002, 0x7F49, 0x81)
	if err != nil || !bytes.Equal(n, c.Config().AuthKey.N.Bytes()) {
		t.Errorf("modulus: %v", err)
	}
}
