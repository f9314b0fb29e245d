package virtual

import (
	"bytes"
	"encoding/asn1"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card/cps"
)

// der walks DER with encoding/asn1 (strict about lengths and nesting).
func der(t *testing.T, b []byte) []asn1.RawValue {
	t.Helper()
	var out []asn1.RawValue
	for len(b) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(b, &v)
		if err != nil {
			t.Fatalf("DER: %v at %x", err, b)
		}
		out = append(out, v)
		b = rest
	}
	return out
}

func children(t *testing.T, v asn1.RawValue) []asn1.RawValue {
	t.Helper()
	if !v.IsCompound {
		t.Fatalf("tag %d is primitive", v.Tag)
	}
	return der(t, v.Bytes)
}

func TestPKCS15Structures(t *testing.T) {
	c := newTestCard(t)
	app := uint16(cps.FIDAppDF)

	odf := der(t, readFile(t, c, app, cps.FIDODF))
	var paths []string
	for _, e := range odf {
		if e.Class != asn1.ClassContextSpecific {
			t.Errorf("ODF entry class %d", e.Class)
		}
		path := children(t, children(t, e)[0])[0]
		paths = append(paths, hex.EncodeToString(path.Bytes))
	}
	if strings.Join(paths, ",") != "3f0000014402,3f0000014404,3f0000014401" {
		t.Errorf("ODF paths %v", paths)
	}

	ti := der(t, readFile(t, c, app, cps.FIDTokenInf))
	if len(ti) != 1 {
		t.Fatal("TokenInfo is not one SEQUENCE")
	}
	fields := children(t, ti[0])
	if !bytes.Equal(fields[1].Bytes, h(t, "00 00 01 99 21 38 45 01")) || string(fields[2].Bytes) != "ANS" || string(fields[3].Bytes) != "CPS3v3-9921384501" {
		t.Errorf("TokenInfo serial %x manufacturer %q label %q", fields[1].Bytes, fields[2].Bytes, fields[3].Bytes)
	}
	if algos := children(t, fields[5]); len(algos) != 6 {
		t.Errorf("%d supported algorithms", len(algos))
	}

	// CDF: two certificates whose paths are the cps.DefaultQuirks paths and
	// whose IDs match the keys.
	q := cps.DefaultQuirks()
	cdf := der(t, readFile(t, c, app, fidCDF))
	if len(cdf) != 2 {
		t.Fatalf("%d certificates", len(cdf))
	}
	var certPaths, certIDs, labels []string
	for _, cert := range cdf {
		parts := children(t, cert)
		labels = append(labels, string(children(t, parts[0])[0].Bytes))
		certIDs = append(certIDs, hex.EncodeToString(children(t, parts[1])[0].Bytes))
		x509Attrs := children(t, children(t, parts[2])[0])
		certPaths = append(certPaths, strings.ToUpper(hex.EncodeToString(children(t, x509Attrs[0])[0].Bytes)))
	}
	if certPaths[0] != q.AuthCertPath || certPaths[1] != q.SignCertPath {
		t.Errorf("certificate paths %v, quirks %s %s", certPaths, q.AuthCertPath, q.SignCertPath)
	}
	if labels[0] != "Certificat d'Authentification CPS" || labels[1] != "Certificat de Signature CPS" {
		t.Errorf("labels %q", labels)
	}
	if certIDs[0] != "e828bd080f8025000001ff001002" || certIDs[1] != "e828bd080f8025000001ff001001" {
		t.Errorf("certificate IDs %v", certIDs)
	}

	// PrKDF: key references 0x81 / 0x82, IDs as on a real CPx.
	prkdf := der(t, readFile(t, c, app, fidPrKDF))
	if len(prkdf) != 2 {
		t.Fatalf("%d keys", len(prkdf))
	}
	for i, want := range []struct {
		label, id string
		ref       int
	}{{"CPS_PRIV_SIG", "e828bd080f8025000001ff001001", 0x81}, {"CPS_PRIV_AUT", "e828bd080f8025000001ff001002", 0x82}} {
		parts := children(t, prkdf[i])
		common := children(t, parts[0])
		key := children(t, parts[1])
		var ref int
		if _, err := asn1.Unmarshal(key[3].FullBytes, &ref); err != nil {
			t.Fatal(err)
		}
		if string(common[0].Bytes) != want.label || hex.EncodeToString(key[0].Bytes) != want.id || ref != want.ref {
			t.Errorf("key %d: %q %x %#x", i, common[0].Bytes, key[0].Bytes, ref)
		}
		var bits int
		rsaAttrs := children(t, children(t, parts[2])[0])
		if _, err := asn1.Unmarshal(rsaAttrs[1].FullBytes, &bits); err != nil || bits != 2048 {
			t.Errorf("modulus length %d %v", bits, err)
		}
	}

	aodf := der(t, readFile(t, c, app, fidAODF))
	if len(aodf) != 2 {
		t.Fatalf("%d auth objects", len(aodf))
	}
}

func TestDERBits(t *testing.T) {
	tests := []struct {
		bits []int
		want string
	}{
		{nil, "030100"},
		{[]int{0}, "03020780"},
		{[]int{0, 1}, "030206c0"},
		{[]int{9}, "0303060040"},
		{[]int{1, 2}, "03020560"},
		{[]int{6}, "03020102"},
	}
	for _, tt := range tests {
		if got := hex.EncodeToString(derBits(tt.bits...)); got != tt.want {
			t.Errorf("derBits(%v) = %s, want %s", tt.bits, got, tt.want)
		}
	}
}
