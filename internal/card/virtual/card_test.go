package virtual

import (
	"bytes"
	"crypto/x509"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
	"github.com/cpsagent/cpsagent/internal/card/cps"
)

func TestATRAndFixedFiles(t *testing.T) {
	c := newTestCard(t)
	if !bytes.Equal(c.ATR(), cps.ATRCPS3Contact) {
		t.Errorf("ATR %s", apdu.Hex(c.ATR()))
	}
	atr := readFile(t, c, cps.FIDEFATR)
	want := h(t, "80 43 01 B8 46 04 04 B0 EC C1 47 03 94 01 80 4F 08 80 25 00 00 01 FF 01 00 E0 10 02 02 01 04 02 02 01 04 02 02 01 00 02 02 01 00 78 08 06 06 2B 81 22 F8 78 02 82 02 90 00")
	if len(atr) != 57 || !bytes.Equal(atr, want) {
		t.Errorf("EF.ATR (%d bytes) %s", len(atr), apdu.Hex(atr))
	}
	dir := readFile(t, c, cps.FIDEFDIR)
	if len(dir) != 101 {
		t.Errorf("EF.DIR is %d bytes, want 101", len(dir))
	}
	apps, err := apdu.ParseTLV(dir)
	if err != nil || len(apps) != 2 {
		t.Fatalf("EF.DIR records: %v (%d)", err, len(apps))
	}
	var labels []string
	for _, a := range apps {
		l, _ := apdu.FindPath(a.Value, 0x50)
		labels = append(labels, string(l))
	}
	if strings.Join(labels, ",") != "CPX IAS CL,CPX IAS" {
		t.Errorf("EF.DIR labels %q", labels)
	}
	sn := readFile(t, c, cps.FIDEFSNICC)
	if !bytes.Equal(sn, h(t, "5A 0A 80 25 00 00 01 99 21 38 45 01")) {
		t.Errorf("EF.SN.ICC %s", apdu.Hex(sn))
	}
	if c.Serial() != "9921384501" {
		t.Errorf("serial %s", c.Serial())
	}
}

func TestSelect(t *testing.T) {
	c := newTestCard(t)
	tests := []struct {
		name string
		cmd  string
		sw   uint16
		fcp  string // expected FCP prefix (after 61xx/GET RESPONSE), "" for none
	}{
		{"MF by FID no FCP", "00 A4 00 0C 02 3F 00", apdu.SWSuccess, ""},
		{"MF with P1 00 and no data", "00 A4 00 0C", apdu.SWSuccess, ""},
		{"EF.SN by path with 3F00", "00 A4 09 04 04 3F 00 D0 03", apdu.SWSuccess,
			"62 25 80 02 00 0C 82 01 01 83 02 D0 03 88 01 E0 A1 12 8C 07 7B FF FF FF FF FF 00 9C 07 7B FF FF FF FF FF 00 8A 01 05"},
		{"EF.ATR relative to MF", "00 A4 09 04 02 2F 01", apdu.SWSuccess,
			"62 25 80 02 00 39 82 01 01 83 02 2F 01 88 01 E8 A1 12 8C 07 7B 45 FF FF FF 45 00 9C 07 7B FF FF FF FF FF 00 8A 01 05"},
		{"EF.DIR FCP", "00 A4 09 04 04 3F 00 2F 00", apdu.SWSuccess,
			"62 25 80 02 00 65 82 01 01 83 02 2F 00 88 01 F0 A1 12 8C 07 7B 45 FF FF FF 45 00 9C 07 7B FF FF FF FF FF 00 8A 01 05"},
		{"absent EF_ACTUA", "00 A4 09 04 04 3F 00 D0 10", apdu.SWFileNotFound, ""},
		{"app DF by path", "00 A4 09 0C 04 3F 00 00 01", apdu.SWSuccess, ""},
		{"path from MF P1 08", "00 A4 08 04 04 00 01 50 31", apdu.SWSuccess, "62 22 80 02"},
		{"P1 08 does not take 3F00", "00 A4 08 04 06 3F 00 00 01 50 31", apdu.SWFileNotFound, ""},
		{"app by AID", "00 A4 04 04 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10", apdu.SWSuccess,
			"62 2D 82 01 38 83 02 00 01 84 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10"},
		{"root AID", "00 A4 04 04 08 80 25 00 00 01 FF 01 00", apdu.SWSuccess, "62 28 82 01 38 83 02 3F 00"},
		{"root AID P2 00 bare 9000", "00 A4 04 00 08 80 25 00 00 01 FF 01 00", apdu.SWSuccess, ""},
		{"app AID P2 00", "00 A4 04 00 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10", apdu.SWIncorrectP1P2, ""},
		{"FID P2 00", "00 A4 02 00 02 A0 01", apdu.SWIncorrectP1P2, ""},
		{"contactless AID", "00 A4 04 04 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 20", apdu.SWFileNotFound, ""},
		{"unknown AID", "00 A4 04 0C 05 A0 00 00 00 01", apdu.SWFileNotFound, ""},
		{"P2 02", "00 A4 00 02 02 3F 00", apdu.SWIncorrectP1P2, ""},
		{"bad P1", "00 A4 05 0C 02 3F 00", apdu.SWIncorrectP1P2, ""},
		{"odd path", "00 A4 09 0C 03 3F 00 00", swLcInconsistent, ""},
		{"FID of 3 bytes", "00 A4 02 0C 03 3F 00 00", swLcInconsistent, ""},
		{"EF through an EF", "00 A4 09 0C 06 3F 00 D0 03 00 01", apdu.SWFileNotFound, ""},
		{"MF with P1 02 (OpenSC)", "00 A4 02 04 02 3F 00", apdu.SWSuccess, "62 28 82 01 38 83 02 3F 00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.Reset()
			data, sw := doHex(t, c, tt.cmd)
			wantSW(t, tt.cmd, sw, tt.sw)
			switch {
			case tt.fcp == "" && len(data) != 0:
				t.Errorf("unexpected data %s", apdu.Hex(data))
			case tt.fcp != "" && !bytes.HasPrefix(data, h(t, tt.fcp)):
				t.Errorf("FCP %s, want prefix %s", apdu.Hex(data), tt.fcp)
			}
		})
	}
}

func TestSelectKeepsCurrentFileOnError(t *testing.T) {
	c := newTestCard(t)
	doHex(t, c, "00 A4 09 0C 06 3F 00 00 01 50 32")
	wantSW(t, "bad select", rawHex(t, c, "00 A4 09 0C 04 3F 00 D0 10"), apdu.SWFileNotFound)
	d, sw := raw(t, c, h(t, "00 B0 00 00 02"))
	wantSW(t, "read after failed select", sw, apdu.SWSuccess)
	if !bytes.Equal(d, []byte{0x30, 0x81}) {
		t.Errorf("TokenInfo starts %s", apdu.Hex(d))
	}
	// Parent selection and relative FIDs.
	wantSW(t, "parent", rawHex(t, c, "00 A4 03 0C"), apdu.SWSuccess)
	wantSW(t, "EF.SN from MF", rawHex(t, c, "00 A4 02 0C 02 D0 03"), apdu.SWSuccess)
	wantSW(t, "parent of MF", rawHex(t, c, "00 A4 03 0C"), apdu.SWFileNotFound)
	wantSW(t, "child DF", rawHex(t, c, "00 A4 01 0C 02 00 01"), apdu.SWSuccess)
	wantSW(t, "EF of the app", rawHex(t, c, "00 A4 02 0C 02 A0 01"), apdu.SWSuccess)
	wantSW(t, "DF with P1 02", rawHex(t, c, "00 A4 02 0C 02 00 01"), apdu.SWFileNotFound)
}

func TestReadBinary(t *testing.T) {
	tests := []struct {
		name     string
		behave   Behaviour
		cmds     []string
		wantData string
		sw       uint16
	}{
		{"SFI like OpenSC", Behaviour{}, []string{"00 B0 9C 00 C0"}, "5A 0A 80 25 00 00 01 99 21 38 45 01", apdu.SWEndOfFile},
		{"SFI exact", Behaviour{}, []string{"00 B0 9C 00 0C"}, "5A 0A 80 25 00 00 01 99 21 38 45 01", apdu.SWSuccess},
		{"SFI with offset", Behaviour{}, []string{"00 B0 9C 0A 02"}, "45 01", apdu.SWSuccess},
		{"past EOF 6C", Behaviour{ReadPastEOF: "6C"}, []string{"00 B0 9C 00 C0"}, "", 0x6C0C},
		{"offset at end", Behaviour{}, []string{"00 B0 9C 0C 01"}, "", apdu.SWWrongP1P2},
		{"offset beyond", Behaviour{}, []string{"00 A4 09 0C 04 3F 00 D0 03", "00 B0 00 20 01"}, "", apdu.SWWrongP1P2},
		{"unknown SFI", Behaviour{}, []string{"00 B0 85 00 01"}, "", apdu.SWFileNotFound},
		{"SFI bits 6-7", Behaviour{}, []string{"00 B0 FC 00 01"}, "", apdu.SWIncorrectP1P2},
		{"no current EF", Behaviour{}, []string{"00 B0 00 00 01"}, "", swNoCurrentEF},
		{"no Le", Behaviour{}, []string{"00 A4 09 0C 04 3F 00 D0 03", "00 B0 00 00"}, "", apdu.SWWrongLength},
		{"with data", Behaviour{}, []string{"00 A4 09 0C 04 3F 00 D0 03", "00 B0 00 00 01 00"}, "", apdu.SWWrongLength},
		{"offset read", Behaviour{}, []string{"00 A4 09 0C 04 3F 00 D0 03", "00 B0 00 02 05"}, "80 25 00 00 01", apdu.SWSuccess},
		{"Le 00 reads 256", Behaviour{}, []string{"00 A4 09 0C 06 3F 00 00 01 A0 01", "00 B0 00 00 00"}, "", apdu.SWSuccess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCard(t, func(cfg *Config) { cfg.Behaviour = tt.behave })
			var data []byte
			var sw uint16
			for _, s := range tt.cmds {
				data, sw = raw(t, c, h(t, s))
			}
			wantSW(t, tt.name, sw, tt.sw)
			if tt.name == "Le 00 reads 256" {
				if len(data) != 256 {
					t.Errorf("read %d bytes, want 256", len(data))
				}
				return
			}
			if !bytes.Equal(data, h(t, tt.wantData)) {
				t.Errorf("data %s, want %s", apdu.Hex(data), tt.wantData)
			}
		})
	}
}

func TestStatusWordsForMisuse(t *testing.T) {
	tests := []struct {
		name  string
		setup []string
		cmd   string
		sw    uint16
	}{
		{"truncated APDU", nil, "00 A4 00", apdu.SWWrongLength},
		{"empty APDU", nil, "", apdu.SWWrongLength},
		{"Lc beyond data", nil, "00 A4 09 0C 04 3F 00", apdu.SWWrongLength},
		{"extended length", nil, "00 B0 00 00 00 01 00", apdu.SWWrongLength},
		{"unknown INS", nil, "00 12 00 00", apdu.SWINSNotSupported},
		{"INS 6x", nil, "00 60 00 00", apdu.SWINSNotSupported},
		{"proprietary CLA", nil, "80 A4 00 0C 02 3F 00", apdu.SWCLANotSupported},
		{"CLA FF", nil, "FF CA 00 00 00", apdu.SWCLANotSupported},
		{"logical channel", nil, "01 A4 00 0C 02 3F 00", apdu.SWLogicalChannelNotSupp},
		{"secure messaging", nil, "0C A4 00 0C 02 3F 00", swSMNotSupported},
		{"chaining on SELECT", nil, "10 A4 00 0C 02 3F 00", swChainingNotSupp},
		{"GET RESPONSE nothing pending", nil, "00 C0 00 00 10", apdu.SWConditionsNotSatisfied},
		{"GET RESPONSE bad P1", []string{"00 A4 00 04 02 3F 00"}, "00 C0 01 00 10", apdu.SWIncorrectP1P2},
		{"GET RESPONSE after other command", []string{"00 A4 00 04 02 3F 00", "00 A4 00 0C 02 3F 00"}, "00 C0 00 00 10", apdu.SWConditionsNotSatisfied},
		{"GET CHALLENGE", nil, "00 84 00 00 08", apdu.SWSuccess},
		{"GET CHALLENGE wrong Le", nil, "00 84 00 00 10", 0x6C08},
		{"GET CHALLENGE P1", nil, "00 84 01 00 08", apdu.SWIncorrectP1P2},
		{"UPDATE BINARY", []string{"00 A4 09 0C 04 3F 00 2F 01"}, "00 D6 00 00 01 00", apdu.SWSecurityStatus},
		{"GET DATA bad P1P2", nil, "00 CB 00 00 04 4D 02 70 00", apdu.SWIncorrectP1P2},
		{"GET DATA garbage", nil, "00 CB 3F FF 02 01 02", apdu.SWWrongData},
		{"GET DATA CHV in app DF", []string{"00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10"}, "00 CB 3F FF 0A 4D 08 70 06 BF 81 01 02 A0 80", apdu.SWReferencedDataNotFound},
		{"GET DATA key in MF", nil, "00 CB 3F FF 0A 4D 08 70 06 BF 90 01 02 A0 80", apdu.SWReferencedDataNotFound},
		{"GET DATA unknown CHV", nil, "00 CB 3F FF 0A 4D 08 70 06 BF 81 05 02 A0 80", apdu.SWReferencedDataNotFound},
		{"GET DATA SE 5", nil, "00 CB 3F FF 0A 4D 08 70 06 BF FB 05 02 7B 80", apdu.SWReferencedDataNotFound},
		{"GET DATA key public part", []string{"00 A4 09 0C 04 3F 00 00 01"}, "00 CB 3F FF 0B 4D 09 70 07 BF 90 02 03 7F 48 80", apdu.SWIncorrectP1P2},
		{"VERIFY bad P1", nil, "00 20 01 01 04 31 32 33 34", apdu.SWIncorrectP1P2},
		{"VERIFY unknown ref", nil, "00 20 00 03", apdu.SWReferencedDataNotFound},
		{"VERIFY local ref", nil, "00 20 00 81 04 31 32 33 34", apdu.SWReferencedDataNotFound},
		{"VERIFY with Le", nil, "00 20 00 01 04 31 32 33 34 00", apdu.SWWrongLength},
		{"CHANGE PUK", nil, "00 24 00 02 10 31 32 33 34 35 36 37 38 31 32 33 34 35 36 37 38", apdu.SWSecurityStatus},
		{"CHANGE without VERIFY", nil, "00 24 00 01 08 31 32 33 34 34 33 32 31", apdu.SWSecurityStatus},
		{"CHANGE P1 01", nil, "00 24 01 01 04 31 32 33 34", apdu.SWIncorrectP1P2},
		{"RRC without PUK", nil, "00 2C 02 01 04 31 32 33 34", apdu.SWSecurityStatus},
		{"RRC P1 00", nil, "00 2C 00 01 0C 31 32 33 34 35 36 37 38 31 32 33 34", apdu.SWIncorrectP1P2},
		{"RRC on PUK", nil, "00 2C 03 02", apdu.SWSecurityStatus},
		{"RRC P1 03 with data", []string{"00 20 00 02 08 31 32 33 34 35 36 37 38"}, "00 2C 03 01 01 00", apdu.SWWrongLength},
		{"RRC with Le", []string{"00 20 00 02 08 31 32 33 34 35 36 37 38"}, "00 2C 02 01 04 31 32 33 34 00", apdu.SWWrongLength},
		{"MSE bad P1", nil, "00 22 81 B6 06 84 01 81 80 01 42", apdu.SWIncorrectP1P2},
		{"MSE bad P2", nil, "00 22 41 B4 06 84 01 81 80 01 42", apdu.SWIncorrectP1P2},
		{"MSE DST in MF", nil, "00 22 41 B6 06 84 01 81 80 01 42", apdu.SWReferencedDataNotFound},
		{"MSE DST unknown key", []string{"00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10"}, "00 22 41 B6 06 84 01 83 80 01 42", apdu.SWReferencedDataNotFound},
		{"MSE DST global key ref", []string{"00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10"}, "00 22 41 B6 06 84 01 01 80 01 42", apdu.SWReferencedDataNotFound},
		{"MSE DST bad alg", []string{"00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10"}, "00 22 41 B6 06 84 01 81 80 01 02", apdu.SWWrongData},
		{"MSE DST no alg", []string{"00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10"}, "00 22 41 B6 03 84 01 81", apdu.SWWrongData},
		{"MSE DST unknown tag", []string{"00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10"}, "00 22 41 B6 09 84 01 81 80 01 42 83 01 01", apdu.SWWrongData},
		{"MSE HT with key", nil, "00 22 41 AA 06 84 01 81 80 01 40", apdu.SWWrongData},
		{"MSE HT bad alg", nil, "00 22 41 AA 03 80 01 42", apdu.SWWrongData},
		{"MSE HT empty", nil, "00 22 41 AA", apdu.SWWrongData},
		{"MSE malformed TLV", nil, "00 22 41 AA 03 80 05 40", apdu.SWWrongData},
		{"MSE restore", nil, "00 22 F3 01", apdu.SWSuccess},
		{"PSO HASH without HT", nil, "00 2A 90 A0 05 90 00 80 01 61", apdu.SWConditionsNotSatisfied},
		{"PSO HASH bad layout", []string{"00 22 41 AA 03 80 01 40"}, "00 2A 90 A0 04 80 01 61 00", apdu.SWWrongData},
		{"PSO HASH tail too long", []string{"00 22 41 AA 03 80 01 40"}, "00 2A 90 A0 45 90 00 80 41" + strings.Repeat(" 61", 65), apdu.SWWrongData},
		{"PSO HASH bad state length", []string{"00 22 41 AA 03 80 01 40"}, "00 2A 90 A0 08 90 02 01 02 80 02 61 62", apdu.SWWrongData},
		{"PSO HASH bit count not whole blocks", []string{"00 22 41 AA 03 80 01 40"}, "00 2A 90 A0 2E 90 28" + strings.Repeat(" 00", 32) + " 00 00 00 00 00 00 00 07 80 02 61 62", apdu.SWWrongData},
		{"PSO CDS without MSE", nil, "00 2A 9E 9A 00", apdu.SWConditionsNotSatisfied},
		{"PSO bad P1P2", nil, "00 2A 9E 9B 00", apdu.SWIncorrectP1P2},
		{"CDS with the auth key", []string{"00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10", "00 22 41 B6 06 84 01 82 80 01 42"}, "00 2A 9E 9A 00", apdu.SWConditionsNotSatisfied},
		{"CDS without PIN", []string{"00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10", "00 22 41 B6 06 84 01 81 80 01 42"}, "00 2A 9E 9A 00", apdu.SWSecurityStatus},
		{"INT AUTH without MSE", []string{"00 20 00 01 04 31 32 33 34"}, "00 88 00 00 04 01 02 03 04 00", apdu.SWConditionsNotSatisfied},
		{"INT AUTH with the sign key", []string{"00 20 00 01 04 31 32 33 34", "00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10", "00 22 41 A4 06 84 01 81 80 01 02"}, "00 88 00 00 04 01 02 03 04 00", apdu.SWConditionsNotSatisfied},
		{"INT AUTH without PIN", []string{"00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10", "00 22 41 A4 06 80 01 02 84 01 82"}, "00 88 00 00 04 01 02 03 04 00", apdu.SWSecurityStatus},
		{"INT AUTH bad P1", nil, "00 88 01 00 04 01 02 03 04 00", apdu.SWIncorrectP1P2},
		{"INT AUTH 103 bytes", []string{"00 20 00 01 04 31 32 33 34", "00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10", "00 22 41 A4 06 80 01 02 84 01 82"}, "00 88 00 00 67" + strings.Repeat(" 01", 103) + " 00", apdu.SWWrongData},
		{"INT AUTH no data", []string{"00 20 00 01 04 31 32 33 34", "00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10", "00 22 41 A4 06 80 01 02 84 01 82"}, "00 88 00 00 00", apdu.SWWrongLength},
		{"INT AUTH wrong Le", []string{"00 20 00 01 04 31 32 33 34", "00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10", "00 22 41 A4 06 80 01 02 84 01 82"}, "00 88 00 00 04 01 02 03 04 80", 0x6C00},
		{"MSE keys dropped on DF change", []string{"00 20 00 01 04 31 32 33 34", "00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10", "00 22 41 A4 06 80 01 02 84 01 82", "00 A4 00 0C 02 3F 00", "00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10"}, "00 88 00 00 04 01 02 03 04 00", apdu.SWConditionsNotSatisfied},
		{"DECIPHER without MSE", []string{"00 20 00 01 04 31 32 33 34"}, "00 2A 80 86 02 81 00 00", apdu.SWConditionsNotSatisfied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCard(t)
			for _, s := range tt.setup {
				if sw := rawHex(t, c, s); sw != apdu.SWSuccess && sw>>8 != 0x61 {
					t.Fatalf("setup %s: SW %04X", s, sw)
				}
			}
			wantSW(t, tt.cmd, rawHex(t, c, tt.cmd), tt.sw)
			// Whatever the misuse, the card still answers normally.
			wantSW(t, "select MF afterwards", rawHex(t, c, "00 A4 00 0C 02 3F 00"), apdu.SWSuccess)
		})
	}
}

func TestT0Transport(t *testing.T) {
	c := newTestCard(t)
	// SELECT with FCP: 61 27, then GET RESPONSE in pieces.
	wantSW(t, "select", rawHex(t, c, "00 A4 09 04 04 3F 00 D0 03"), 0x6127)
	d, sw := raw(t, c, h(t, "00 C0 00 00 10"))
	wantSW(t, "first piece", sw, 0x6117)
	if len(d) != 0x10 || d[0] != 0x62 {
		t.Errorf("first piece %s", apdu.Hex(d))
	}
	_, sw = raw(t, c, h(t, "00 C0 00 00 20"))
	wantSW(t, "Le too large", sw, 0x6C17)
	d2, sw := raw(t, c, h(t, "00 C0 00 00 17"))
	wantSW(t, "last piece", sw, apdu.SWSuccess)
	if len(d2) != 0x17 || d2[len(d2)-1] != 0x05 {
		t.Errorf("last piece %s", apdu.Hex(d2))
	}
	wantSW(t, "nothing left", rawHex(t, c, "00 C0 00 00 01"), apdu.SWConditionsNotSatisfied)

	// A signature (256 bytes) is announced as 61 00 and fetched like the
	// vendor driver does: E7 then 19.
	if sw := verifyPIN(t, c, "1234"); sw != apdu.SWSuccess {
		t.Fatalf("VERIFY: %04X", sw)
	}
	selectApp(t, c)
	for _, s := range []string{"00 22 41 AA 03 80 01 40", "00 22 41 B6 06 84 01 81 80 01 42"} {
		wantSW(t, s, rawHex(t, c, s), apdu.SWSuccess)
	}
	wantSW(t, "CDS hash", rawHex(t, c, "00 2A 9E 9A 20"+strings.Repeat(" AB", 32)+" 00"), 0x6100)
	d, sw = raw(t, c, h(t, "00 C0 00 00 E7"))
	wantSW(t, "E7 piece", sw, 0x6119)
	d2, sw = raw(t, c, h(t, "00 C0 00 00 19"))
	wantSW(t, "19 piece", sw, apdu.SWSuccess)
	if len(d)+len(d2) != 256 {
		t.Errorf("signature of %d bytes", len(d)+len(d2))
	}
	// CDS with a wrong Le: 6C 00 and nothing consumed.
	wantSW(t, "CDS Le 80", rawHex(t, c, "00 2A 9E 9A 20"+strings.Repeat(" AB", 32)+" 80"), 0x6C00)
	// Lead's channel handles it.
	sig, sw := doHex(t, c, "00 2A 9E 9A 20"+strings.Repeat(" AB", 32)+" 00")
	wantSW(t, "CDS via channel", sw, apdu.SWSuccess)
	if len(sig) != 256 {
		t.Errorf("channel signature %d bytes", len(sig))
	}
}

func TestT1Transport(t *testing.T) {
	c := newTestCard(t, func(cfg *Config) { cfg.Behaviour.Transport = "t1" })
	d, sw := raw(t, c, h(t, "00 A4 09 04 04 3F 00 D0 03 00"))
	wantSW(t, "select with Le", sw, apdu.SWSuccess)
	if len(d) != 0x27 {
		t.Errorf("FCP of %d bytes", len(d))
	}
	// Without Le the data still waits for GET RESPONSE.
	wantSW(t, "select without Le", rawHex(t, c, "00 A4 09 04 04 3F 00 D0 03"), 0x6127)
}

func TestCommandChaining(t *testing.T) {
	c := newTestCard(t)
	cfg := c.Config()
	verifyPIN(t, c, "1234")
	selectApp(t, c)
	wantSW(t, "MSE CT", rawHex(t, c, "00 22 41 B8 06 84 01 82 80 01 1A"), apdu.SWSuccess)
	msg := []byte("session key 0123456789abcdef")
	ct, err := rsaEncryptPKCS1(cfg.AuthKey.Public(), msg)
	if err != nil {
		t.Fatal(err)
	}
	body := append([]byte{0x81}, ct...)
	// The lead's channel splits the 257 bytes with CLA 10.
	plain, sw := do(t, c, apdu.Command{INS: 0x2A, P1: 0x80, P2: 0x86, Data: body, Le: apdu.MaxShortLe})
	wantSW(t, "decipher", sw, apdu.SWSuccess)
	if !bytes.Equal(plain, msg) {
		t.Errorf("deciphered %q", plain)
	}
	if c.Stats().Deciphers != 1 {
		t.Errorf("stats %+v", c.Stats())
	}
	// A chain interrupted by another command is dropped.
	wantSW(t, "first part", rawHex(t, c, "10 2A 80 86 02 81 00"), apdu.SWSuccess)
	wantSW(t, "interrupting select", rawHex(t, c, "00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10"), apdu.SWSuccess)
	wantSW(t, "MSE CT", rawHex(t, c, "00 22 41 B8 06 84 01 82 80 01 1A"), apdu.SWSuccess)
	wantSW(t, "last part alone", rawHex(t, c, "00 2A 80 86 01 00 00"), apdu.SWWrongData)
	// Chained data beyond the limit.
	for i := 0; i < 4; i++ {
		wantSW(t, "chain", rawHex(t, c, "10 2A 80 86 FF"+strings.Repeat(" 00", 255)), apdu.SWSuccess)
	}
	wantSW(t, "chain overflow", rawHex(t, c, "10 2A 80 86 FF"+strings.Repeat(" 00", 255)), apdu.SWWrongLength)
}

func TestConcurrentTransmit(t *testing.T) {
	c := newTestCard(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				if _, err := c.Transmit(h(t, "00 A4 09 0C 04 3F 00 D0 03")); err != nil {
					t.Error(err)
				}
				_, _ = c.Transmit(h(t, "00 B0 00 00 0C"))
				_ = c.Stats()
			}
		}()
	}
	wg.Wait()
	if got := c.Stats().APDUs; got != 800 {
		t.Errorf("APDUs %d, want 800", got)
	}
}

func TestResetAndPower(t *testing.T) {
	c := newTestCard(t)
	verifyPIN(t, c, "1234")
	selectApp(t, c)
	wantSW(t, "verified", rawHex(t, c, "00 20 00 01"), apdu.SWSuccess)
	c.Reset()
	wantSW(t, "after reset", rawHex(t, c, "00 20 00 01"), 0x63C3)
	// Current DF is the MF again: a key DOCP is not reachable.
	wantSW(t, "DF after reset", rawHex(t, c, "00 CB 3F FF 0A 4D 08 70 06 BF 90 01 02 A0 80"), apdu.SWReferencedDataNotFound)
	verifyPIN(t, c, "1234")
	c.PowerOff()
	if _, err := c.Transmit(h(t, "00 20 00 01")); err != ErrPoweredOff {
		t.Errorf("powered off: %v", err)
	}
	c.PowerOn()
	wantSW(t, "after power cycle", rawHex(t, c, "00 20 00 01"), 0x63C3)
	// Re-selecting the application keeps the verified state by default.
	verifyPIN(t, c, "1234")
	selectApp(t, c)
	wantSW(t, "after app select", rawHex(t, c, "00 20 00 01"), apdu.SWSuccess)

	c2 := newTestCard(t, func(cfg *Config) { cfg.Behaviour.AppSelectClearsPIN = true })
	verifyPIN(t, c2, "1234")
	selectApp(t, c2)
	wantSW(t, "app select clears", rawHex(t, c2, "00 20 00 01"), 0x63C3)
	st := c2.Stats()
	if st.Resets != 0 || st.Verifies != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestTraceMasksSecrets(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	c := newTestCard(t, func(cfg *Config) {
		cfg.Trace = &buf
		cfg.Now = func() time.Time { return now }
	})
	verifyPIN(t, c, "1234")
	rawHex(t, c, "00 24 00 01 08 31 32 33 34 39 38 37 36")
	selectApp(t, c)
	rawHex(t, c, "00 22 41 AA 03 80 01 40")
	rawHex(t, c, "00 2A 90 A0 0D 90 00 80 09 73 65 63 72 65 74 64 6F 63") // "secretdoc"
	out := buf.String()
	for _, secret := range []string{"31 32 33 34", "39 38 37 36", "73 65 63 72 65 74"} {
		if strings.Contains(out, secret) {
			t.Errorf("trace leaks %s:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "2026-11-25T10:00:00.000000Z > 00 20 00 01 04 ** ** ** **") {
		t.Errorf("trace line missing:\n%s", out)
	}
	if !strings.Contains(out, "< 90 00") || !strings.Contains(out, "> 00 2A 90 A0 0D **") {
		t.Errorf("trace content:\n%s", out)
	}
	if n := strings.Count(out, "\n"); n != 2*int(c.Stats().APDUs) {
		t.Errorf("%d lines for %d APDUs", n, c.Stats().APDUs)
	}
}

func TestLatencyModel(t *testing.T) {
	var slept []time.Duration
	lat, err := LatencyPreset("cps3")
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCard(t, func(cfg *Config) {
		cfg.Latency = lat
		cfg.Sleep = func(d time.Duration) { slept = append(slept, d) }
	})
	rawHex(t, c, "00 A4 00 0C 02 3F 00") // 7 bytes in, 2 out
	want := 20*time.Millisecond + 9*1250*time.Microsecond
	if len(slept) != 1 || slept[0] != want {
		t.Errorf("slept %v, want [%v]", slept, want)
	}
	verifyPIN(t, c, "1234")
	selectApp(t, c)
	rawHex(t, c, "00 22 41 A4 06 84 01 82 80 01 02")
	slept = nil
	rawHex(t, c, "00 88 00 00 04 01 02 03 04 00")
	if len(slept) != 1 || slept[0] < 300*time.Millisecond {
		t.Errorf("RSA latency %v", slept)
	}
	if c.Stats().Latency <= 300*time.Millisecond {
		t.Errorf("total latency %v", c.Stats().Latency)
	}
	if _, err := LatencyPreset("warp"); err == nil {
		t.Error("unknown preset accepted")
	}
	for _, n := range LatencyPresets() {
		if _, err := LatencyPreset(n); err != nil {
			t.Error(err)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	base := testConfig(t)
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"short serial", func(c *Config) { c.Serial = "123" }},
		{"letters in serial", func(c *Config) { c.Serial = "99213845AB" }},
		{"PIN letters", func(c *Config) { c.PIN = "12a4" }},
		{"PIN too short", func(c *Config) { c.PIN = "123" }},
		{"no keys", func(c *Config) { c.SignKey = nil }},
		{"no certificate", func(c *Config) { c.AuthCert = nil }},
		{"bad third wrong PIN", func(c *Config) { c.Behaviour.ThirdWrongPIN = "6300" }},
		{"bad encoding", func(c *Config) { c.Behaviour.PINEncoding = "utf8" }},
		{"bad transport", func(c *Config) { c.Behaviour.Transport = "t2" }},
		{"same cert FIDs", func(c *Config) { c.Behaviour.AuthCertFID, c.Behaviour.SignCertFID = 0xA001, 0xA001 }},
		{"reserved FID", func(c *Config) { c.Behaviour.AuthCertFID = 0x5031 }},
		{"local PIN ref", func(c *Config) { c.Behaviour.PINRef = 0x81 }},
		{"pad shorter than PUK", func(c *Config) { c.Behaviour.PINPadLength = 6 }},
		{"bad wrong length", func(c *Config) { c.Behaviour.WrongLengthPIN = "9000" }},
		{"bad EOF", func(c *Config) { c.Behaviour.ReadPastEOF = "6B00" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mod(&cfg)
			if _, err := NewCard(cfg); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestCertificatesAndCustomFIDs(t *testing.T) {
	c := newTestCard(t, func(cfg *Config) { cfg.Behaviour.AuthCertFID, cfg.Behaviour.SignCertFID = 0xB001, 0xB002 })
	cfg := c.Config()
	auth := readFile(t, c, cps.FIDAppDF, 0xB001)
	sign := readFile(t, c, cps.FIDAppDF, 0xB002)
	if !bytes.Equal(auth, cfg.AuthCert) || !bytes.Equal(sign, cfg.SignCert) {
		t.Fatal("certificate EFs differ from the configuration")
	}
	if _, err := x509.ParseCertificate(auth); err != nil {
		t.Error(err)
	}
	q := cfg.Behaviour.AgentQuirks()
	if q.AuthCertPath != "3F000001B001" || q.SignCertPath != "3F000001B002" {
		t.Errorf("quirks %+v", q)
	}
	if d := (Behaviour{}).AgentQuirks(); d.AuthCertPath != cps.DefaultQuirks().AuthCertPath || d.VerifyP2PIN != 1 {
		t.Errorf("default quirks %+v", d)
	}
}
