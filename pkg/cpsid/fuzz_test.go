package cpsid

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzDecodeCardTypeExtension(f *testing.F) {
	for _, s := range [][]byte{{0x02, 0x01, 0x00}, {0x0a, 0x01, 0x03}, {0x04, 0x01, 0x02}, {0x13, 0x02, '0', '1'}, {0x01}, {}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		code, err := DecodeCardTypeExtension(b)
		if err == nil && code < 0 {
			t.Fatalf("negative code %d", code)
		}
	})
}

func FuzzFormatDN(f *testing.F) {
	seed, _ := asn1.Marshal(pkix.RDNSequence{
		{{Type: oidCN, Value: "x"}},
		{{Type: oidSN, Value: "DOC"}, {Type: oidGN, Value: "KIT"}, {Type: oidCN, Value: "899700367917"}},
	})
	f.Add(seed)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := FormatDN(b)
		if err == nil && !utf8.ValidString(s) && utf8.Valid(b) {
			t.Fatalf("invalid UTF-8 output %q", s)
		}
	})
}

// FuzzHolderFields drives the subject parsing (CN split, id checks,
// profession lookup, card-type heuristics) with arbitrary attribute values.
func FuzzHolderFields(f *testing.F) {
	f.Add("899700367917", "Médecin", "", "DOC", "KIT")
	f.Add("3990000010/CPET00001", "Carte de service santé ou social", "1990000010", "E", "L")
	f.Add("00B7010446", "", "Masseur-Kinésithérapeute", "", "")
	f.Add("5/", "", "3", "", "")
	f.Fuzz(func(t *testing.T, cn, title, ou, sn, gn string) {
		if cn == "" {
			return
		}
		names := []pkix.AttributeTypeAndValue{
			{Type: oidCN, Value: cn}, {Type: oidTitle, Value: title},
			{Type: oidOU, Value: ou}, {Type: oidSN, Value: sn}, {Type: oidGN, Value: gn},
		}
		cert := &x509.Certificate{Subject: pkix.Name{Names: names}}
		b := &builder{}
		f := b.subject(cert)
		if f.cn == "" {
			return
		}
		id := &Identity{NationalID: f.cn}
		b.nationalID(id, f)
		b.profession(id, f)
		b.cardType(id, nil, nil)
		if id.NationalIDType.Code == "" {
			t.Fatal("empty nationalIdType code")
		}
		if id.RPPS != nil && !strings.HasSuffix(f.cn, *id.RPPS) {
			t.Fatalf("rpps %q not taken from CN %q", *id.RPPS, f.cn)
		}
		if id.Card.TypeSource != TypeSourceHeuristic {
			t.Fatalf("typeSource %q", id.Card.TypeSource)
		}
		_ = id.Redacted().Summary()
	})
}
