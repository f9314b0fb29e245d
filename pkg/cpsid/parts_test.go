package cpsid

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"testing"
)

type asn1OID = asn1.ObjectIdentifier

func TestLuhn(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"99700367917", true}, {"99700075122", true}, {"99700218896", true},
		{"99700870589", true}, {"99700771191", true},
		{"899700367917", false}, // the 12-char idNat does not pass
		{"99700367918", false}, {"", false}, {"9970036791a", false}, {"0", true},
	} {
		if got := Luhn(tt.in); got != tt.want {
			t.Errorf("Luhn(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDecodeCardTypeExtension(t *testing.T) {
	for _, tt := range []struct {
		in   []byte
		want int
		err  bool
	}{
		{[]byte{0x02, 0x01, 0x00}, 0, false},
		{[]byte{0x0a, 0x01, 0x03}, 3, false},
		{[]byte{0x04, 0x01, 0x02}, 2, false},
		{[]byte{0x03, 0x01, 0x01}, 1, false}, // any 3-byte TLV: last byte
		{[]byte{0x99, 0x98, 0x02}, 2, false}, // raw 3 bytes
		{[]byte{0x01}, 1, false},
		{[]byte{0x13, 0x02, '0', '2'}, 2, false},
		{[]byte{0x0c, 0x01, '3'}, 3, false},
		{[]byte{0x02, 0x02, 0x01, 0x00}, 256, false},
		{[]byte{0x02, 0x01, 0x80}, 0, true},
		{[]byte{}, 0, true},
		{[]byte{0x30, 0x03, 0x02, 0x01, 0x00}, 0, true},
	} {
		got, err := DecodeCardTypeExtension(tt.in)
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("Decode(% x) = %d, %v; want %d, err=%v", tt.in, got, err, tt.want, tt.err)
		}
		if err != nil && !errors.Is(err, errCardTypeEncoding) {
			t.Errorf("Decode(% x): error %v does not wrap errCardTypeEncoding", tt.in, err)
		}
	}
}

func TestIssuerLevel(t *testing.T) {
	for in, want := range map[string]string{
		"TEST AC IGC-SANTE FORT PERSONNES":        "FORT",
		"AC IGC-SANTE STANDARD PERSONNES":         "STANDARD",
		"TEST AC IGC-SANTE ELEMENTAIRE PERSONNES": "ELEMENTAIRE",
		"AC IGC-SANTÉ ÉLÉMENTAIRE ORGANISATIONS":  "ELEMENTAIRE",
		"AC RACINE IGC-SANTE FORTE":               "FORT",
		"GIP-CPS CLASSE-1":                        "",
		"Some FORT CA":                            "",
	} {
		if got := IssuerLevel(in); got != want {
			t.Errorf("IssuerLevel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestProfessionCode(t *testing.T) {
	for in, want := range map[string]string{
		"Médecin": "10", "MEDECIN": "10", "médecin ": "10", "Sage-Femme": "50", "sage femme": "50",
		"Technicien de laboratoire médical": "86", "Pédicure-Podologue": "80", "PEDICURE PODOLOGUE": "80",
		"Préparateur en pharmacie (officine)": "39", "Manipulateur ERM": "98",
		"Carte de service santé ou social": "", "": "",
	} {
		got, ok := ProfessionCode(in)
		if got != want || ok != (want != "") {
			t.Errorf("ProfessionCode(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestFormatDN(t *testing.T) {
	der, err := asn1.Marshal(pkix.RDNSequence{
		{{Type: asn1OID{2, 5, 4, 6}, Value: "FR"}},
		{{Type: asn1OID{2, 5, 4, 10}, Value: "A, B+C"}},
		{{Type: asn1OID{2, 5, 4, 11}, Value: " lead#"}},
		{{Type: asn1OID{2, 5, 4, 11}, Value: "#x"}},
		{{Type: asn1OID{1, 2, 3}, Value: 5}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := FormatDN(der)
	if err != nil {
		t.Fatal(err)
	}
	if want := `1.2.3=#020105,OU=\#x,OU=\ lead#,O=A\, B\+C,C=FR`; got != want {
		t.Errorf("FormatDN = %q, want %q", got, want)
	}
	if _, err := FormatDN([]byte{0x30, 0x05}); err == nil {
		t.Error("truncated DN accepted")
	}
	if _, err := FormatDN(append(der, 0)); err == nil {
		t.Error("trailing bytes accepted")
	}
}

func TestNormaliseCardSerial(t *testing.T) {
	for in, want := range map[string]string{"80250000013100345668": "3100345668", "3100345668": "3100345668", "8025000001": "8025000001", " 42 ": "42"} {
		if got := normaliseCardSerial(in); got != want {
			t.Errorf("normaliseCardSerial(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{"": "", "ab": "ab", "abc": "abc", "abcd": "*bcd", "Médecin": "****cin"} {
		if got := mask(in); got != want {
			t.Errorf("mask(%q) = %q, want %q", in, got, want)
		}
	}
}
