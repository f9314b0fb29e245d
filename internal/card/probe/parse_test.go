package probe_test

import (
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/card/probe"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeATR(t *testing.T) {
	for _, tc := range []struct {
		name  string
		atr   []byte
		proto []int
		hist  string
		tck   string
		fi    int
	}{
		// card-cpx.md §1: TB1, TD1 → TC2, T=0 only, no TCK, 12 historical bytes.
		{"CPS3 contact", cps.ATRCPS3Contact, []int{0}, "00 12 25 00 64 80 00 03 10 00 90 00", "", 0},
		// TA1 18 (Fi 372, Di 12), T=0 and T=1, TCK 44.
		{"CPS4", cps.CPS4Facts.ATRs[0], []int{0, 1}, "00 12 25 00 64 80 04 01 00 00 90", "44", 372},
		// TD1 80 (T=0), TD2 01 (T=1), 15 historical bytes, TCK 0E.
		{"CPS3 contactless", cps.ATRCPS3CL, []int{0, 1}, "00 31 B8 64 04 B0 EC C1 73 94 01 80 82 90 00", "0E", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := probe.DecodeATR(tc.atr)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a.Protocols, tc.proto) || a.Historical != tc.hist || a.TCK != tc.tck || a.Fi != tc.fi {
				t.Fatalf("%+v", a)
			}
			if a.TCKValid != nil && !*a.TCKValid {
				t.Fatalf("TCK invalid: %+v", a)
			}
		})
	}
	for name, atr := range map[string]string{
		"short":              "3B",
		"bad TS":             "3C 00",
		"missing TD1":        "3B 80",
		"missing historical": "3B 02 41",
		"missing TCK":        "3B 80 01",
		"extra byte":         "3B 00 00",
	} {
		if _, err := probe.DecodeATR(unhex(t, atr)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseEFATR(t *testing.T) {
	// card-cpx.md §5.3, verbatim.
	b := unhex(t, "80 43 01 B8 46 04 04 B0 EC C1 47 03 94 01 80 4F 08 80 25 00 00 01 FF 01 00 E0 10 02 02 01 04 02 02 01 04 02 02 01 00 02 02 01 00 78 08 06 06 2B 81 22 F8 78 02 82 02 90 00")
	e, err := probe.ParseEFATR(b)
	if err != nil {
		t.Fatal(err)
	}
	if !e.CategoryPrefix || e.ExtendedLength || !e.Chaining || e.RootAID != "80 25 00 00 01 FF 01 00" ||
		!reflect.DeepEqual(e.Buffers, []int{260, 260, 256, 256}) || e.PreIssuing != "04 B0 EC C1" {
		t.Fatalf("%+v", e)
	}
	if _, err := probe.ParseEFATR(unhex(t, "80 47 05 01")); err == nil {
		t.Fatal("truncated TLV accepted")
	}
}

func TestParsePKCS15(t *testing.T) {
	// ODF: PrKDF, CDF, AODF, as the virtual card writes them.
	odf := unhex(t, "A0 0A 30 08 04 06 3F 00 00 01 44 02 A4 0A 30 08 04 06 3F 00 00 01 44 04 A8 06 30 04 04 02 44 01")
	es, err := probe.ParseODF(odf)
	if err != nil {
		t.Fatal(err)
	}
	want := []probe.ODFEntry{{Kind: "privateKeys", Tag: "A0", Path: "3F0000014402"}, {Kind: "certificates", Tag: "A4", Path: "3F0000014404"}, {Kind: "authObjects", Tag: "A8", Path: "4401"}}
	if !reflect.DeepEqual(es, want) {
		t.Fatalf("%+v", es)
	}
	// AODF PIN object: flags case-sensitive|initialized|needs-padding,
	// bcd, min 4, stored 8, max 8, reference 81 (two bytes), pad FF, path 3F00.
	aodf := unhex(t, "30 34 30 12 0C 0C 43 6F 64 65 20 70 6F 72 74 65 75 72 03 02 06 C0 30 03 04 01 01 A1 19 30 17 03 02 02 8C 0A 01 00 02 01 04 02 01 08 02 01 08 80 02 00 81 04 01 FF")
	ps, err := probe.ParseAODF(aodf)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Type != "bcd" || ps[0].MinLength != 4 || ps[0].StoredLength != 8 || ps[0].MaxLength != 8 ||
		ps[0].Reference != 0x81 || ps[0].PadChar != "FF" || !ps[0].HasFlag("needs-padding") || ps[0].HasFlag("unblockingPin") ||
		ps[0].Label != "Code porteur" || ps[0].AuthID != "01" {
		t.Fatalf("%+v", ps)
	}
	// SE #3 as the virtual card answers it.
	se, err := probe.ParseSE(unhex(t, "70 0E BF FB 03 0A 7B 08 A4 06 83 01 02 95 01 08"))
	if err != nil || se.Ref != 3 || len(se.CRTs) != 1 || se.CRTs[0].CHV != "02" || se.CRTs[0].Usage != "08" {
		t.Fatalf("%+v %v", se, err)
	}
	s, err := probe.ParseCHVSizes(unhex(t, "70 0D BF 81 01 09 7F 41 06 80 01 08 81 01 04"))
	if err != nil || s.Max != 8 || s.Min != 4 {
		t.Fatalf("%+v %v", s, err)
	}
	dir, err := probe.ParseEFDIR(unhex(t, "61 12 4F 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10 50 01 41 00 00"))
	if err != nil || len(dir) != 1 || dir[0].Label != "A" {
		t.Fatalf("%+v %v", dir, err)
	}
}

func FuzzDecodeATR(f *testing.F) {
	f.Add(cps.ATRCPS3Contact)
	f.Add(cps.ATRCPS3CL)
	for _, a := range cps.CPS4Facts.ATRs {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := probe.DecodeATR(b)
		if err == nil && (len(a.Protocols) == 0 || a.TCK != "" && a.TCKValid == nil) {
			t.Fatalf("%+v", a)
		}
	})
}

// FuzzParsers feeds the same bytes to every card-data parser of the probe:
// none may panic.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{
		"80 43 01 B8 47 03 94 01 80 4F 08 80 25 00 00 01 FF 01 00 E0 10 02 02 01 04 02 02 01 04 02 02 01 00 02 02 01 00",
		"61 12 4F 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10 50 01 41",
		"A0 0A 30 08 04 06 3F 00 00 01 44 02 A8 06 30 04 04 02 44 01",
		"30 34 30 12 0C 0C 43 6F 64 65 20 70 6F 72 74 65 75 72 03 02 06 C0 30 03 04 01 01 A1 19 30 17 03 02 02 8C 0A 01 00 02 01 04 02 01 08 02 01 08 80 02 00 81 04 01 FF",
		"70 0E BF FB 03 0A 7B 08 A4 06 83 01 02 95 01 08",
		"70 0D BF 81 01 09 7F 41 06 80 01 08 81 01 04",
		"30 1A 30 0B 0C 03 53 49 47 03 02 07 80 30 07 04 01 01 03 02 06 40 02 01 81 A1 04 30 02 02 00",
	} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = probe.ParseEFATR(b)
		_, _ = probe.ParseEFDIR(b)
		_, _ = probe.ParseODF(b)
		_, _ = probe.ParseAODF(b)
		_, _ = probe.ParsePrKDF(b)
		_, _ = probe.ParseSE(b)
		_, _ = probe.ParseCHVSizes(b)
	})
}

func FuzzGuardCheck(f *testing.F) {
	f.Add([]byte{0x00, 0x20, 0x00, 0x01})
	f.Add([]byte{0x00, 0x20, 0x00, 0x01, 0x04, '1', '2', '3', '4'})
	f.Add([]byte{0x01, 0xA4, 0x04, 0x0C, 0x02, 0x3F, 0x00})
	f.Fuzz(func(t *testing.T, cmd []byte) {
		if probe.Check(cmd) != "" {
			return
		}
		ins := cmd[1]
		if _, ok := probe.AllowedINS[ins]; !ok {
			t.Fatalf("INS %02X passes", ins)
		}
		if _, ok := probe.DeniedINS[ins]; ok {
			t.Fatalf("denied INS %02X passes", ins)
		}
		if ins == 0x20 && len(cmd) > 4 && !(len(cmd) == 5 && cmd[4] == 0) {
			t.Fatalf("VERIFY with data passes: % X", cmd)
		}
		if cmd[0]&0x80 != 0 || cmd[0]&0x1C != 0 {
			t.Fatalf("class %02X passes", cmd[0])
		}
	})
}
