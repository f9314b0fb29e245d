package cpsid

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/pkg/cpsid/cpstest"
)

var update = flag.Bool("update", false, "rewrite golden files")

var readAt = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// TestGoldenJSON pins the exact JSON of identity.md §8 for each ready-made
// holder. Values that change with every generated certificate (der, sha256,
// serialNumber) are replaced by placeholders after being checked against
// the certificate.
func TestGoldenJSON(t *testing.T) {
	pki, _, _, _ := testPKI(t)
	for name, h := range cpstest.Holders() {
		t.Run(name, func(t *testing.T) {
			auth, sign := issue(t, pki, h)
			id, err := FromCertificates(auth, sign, CardInfo{SerialNumber: "80250000013100345668", Generation: "CPS4", ReadAt: readAt.Add(300 * time.Millisecond)})
			if err != nil {
				t.Fatal(err)
			}
			for role, pair := range map[string]struct {
				ci   *CertInfo
				cert *x509.Certificate
			}{"auth": {id.Certificates.Authentication, auth}, "sign": {id.Certificates.Signature, sign}} {
				der, err := base64.StdEncoding.DecodeString(pair.ci.DER)
				if err != nil || !bytes.Equal(der, pair.cert.Raw) {
					t.Errorf("%s: der does not round-trip (%v)", role, err)
				}
				sum := sha256.Sum256(pair.cert.Raw)
				if pair.ci.SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("%s: sha256 = %s", role, pair.ci.SHA256)
				}
				if pair.ci.SerialNumber != hex.EncodeToString(pair.cert.SerialNumber.Bytes()) {
					t.Errorf("%s: serialNumber = %s, want %x", role, pair.ci.SerialNumber, pair.cert.SerialNumber.Bytes())
				}
				pair.ci.DER, pair.ci.SHA256, pair.ci.SerialNumber = "*der*", "*sha256*", "*serial*"
			}
			got, err := json.MarshalIndent(id, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "identity_"+name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update once)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("JSON differs from %s:\n%s", path, got)
			}
		})
	}
}

// TestJSONFieldNames checks the top-level and nested key sets against
// identity.md §8 independently of the golden files.
func TestJSONFieldNames(t *testing.T) {
	pki, _, _, _ := testPKI(t)
	auth, sign := issue(t, pki, cpstest.Holders()["medecin"])
	id, err := FromCertificates(auth, sign, CardInfo{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(id)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]json.RawMessage) []string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		slices.Sort(k)
		return k
	}
	wantTop := []string{"adeli", "card", "certificates", "familyName", "givenName", "internalId", "nationalId", "nationalIdType", "profession", "psc", "readAt", "rpps", "source", "structureId", "version"}
	if got := keys(m); !slices.Equal(got, wantTop) {
		t.Errorf("top-level keys = %v, want %v", got, wantTop)
	}
	var card, certs, cert map[string]json.RawMessage
	json.Unmarshal(m["card"], &card)
	json.Unmarshal(m["certificates"], &certs)
	json.Unmarshal(certs["authentication"], &cert)
	if got, want := keys(card), []string{"generation", "serialNumber", "test", "type", "typeCode", "typeSource"}; !slices.Equal(got, want) {
		t.Errorf("card keys = %v, want %v", got, want)
	}
	if got, want := keys(cert), []string{"der", "extKeyUsage", "issuerDN", "issuerLevel", "keyUsage", "notAfter", "notBefore", "policyOids", "serialNumber", "sha256", "subjectDN"}; !slices.Equal(got, want) {
		t.Errorf("certificate keys = %v, want %v", got, want)
	}
	if string(m["readAt"]) != "null" || string(m["adeli"]) != "null" {
		t.Errorf("absent values must be null: readAt=%s adeli=%s", m["readAt"], m["adeli"])
	}
}

func strp(s string) *string { return &s }

func TestFromCertificatesVariants(t *testing.T) {
	pki, prod, _, _ := testPKI(t)
	hs := cpstest.Holders()
	med := hs["medecin"]
	with := func(h cpstest.Holder, f func(*cpstest.Holder)) cpstest.Holder { f(&h); return h }

	tests := []struct {
		name   string
		pki    *cpstest.PKI
		holder cpstest.Holder
		check  func(t *testing.T, id *Identity)
	}{
		{"medecin", pki, med, func(t *testing.T, id *Identity) {
			eqp(t, "rpps", id.RPPS, strp("99700367917"))
			eqp(t, "profession.code", id.Profession.Code, strp("10"))
			eqp(t, "card.type", id.Card.Type, strp("CPS"))
			eq(t, "typeSource", id.Card.TypeSource, TypeSourceExtension)
			eq(t, "test", id.Card.Test, true)
			eq(t, "warnings", len(id.Warnings), 0)
			eq(t, "subjectDN", id.Certificates.Authentication.SubjectDN, "CN=899700367917+SN=DOC0036791+GN=KIT,title=Médecin,C=FR")
			eq(t, "issuerDN", id.Certificates.Authentication.IssuerDN, "CN=TEST AC IGC-SANTE FORT PERSONNES,OU=IGC-SANTE TEST,OU=0002 187512751,O=ASIP-SANTE,C=FR")
			eqp(t, "issuerLevel", id.Certificates.Signature.IssuerLevel, strp("FORT"))
			eq(t, "auth keyUsage", strings.Join(id.Certificates.Authentication.KeyUsage, ","), "digitalSignature,keyEncipherment")
			eq(t, "auth eku", strings.Join(id.Certificates.Authentication.ExtKeyUsage, ","), "clientAuth")
			eq(t, "sign keyUsage", strings.Join(id.Certificates.Signature.KeyUsage, ","), "nonRepudiation")
		}},
		{"production PKI is not test", prod, med, func(t *testing.T, id *Identity) {
			eq(t, "test", id.Card.Test, false)
			eqp(t, "issuerLevel", id.Certificates.Authentication.IssuerLevel, strp("FORT"))
		}},
		{"infirmier ADELI", pki, hs["infirmier"], func(t *testing.T, id *Identity) {
			eqp(t, "adeli", id.ADELI, strp("759912348"))
			eq(t, "rpps nil", id.RPPS == nil, true)
			eq(t, "nationalIdType", id.NationalIDType, Code{"0", "N° ADELI"})
			eqp(t, "profession.code", id.Profession.Code, strp("60"))
		}},
		{"cpe staff card", pki, hs["cpe"], func(t *testing.T, id *Identity) {
			eq(t, "nationalIdType", id.NationalIDType, Code{"3", "FINESS / N° de registre"})
			eqp(t, "structureId", id.StructureID, strp("990000010"))
			eqp(t, "internalId", id.InternalID, strp("CPET00001"))
			eq(t, "profession.code nil", id.Profession.Code == nil && id.Profession.System == nil, true)
			eq(t, "profession.label", id.Profession.Label, "Carte de service santé ou social")
			eqp(t, "card.type", id.Card.Type, strp("CPE"))
			eqp(t, "card.typeCode", id.Card.TypeCode, strp("02"))
			eq(t, "psc.SubjectRefPro nil", id.PSC.SubjectRefPro == nil, true)
			eq(t, "warnings", len(id.Warnings), 0)
		}},
		{"enumerated card type", pki, with(med, func(h *cpstest.Holder) { h.CardType, h.CardTypeEncoding = "CPF", cpstest.CardTypeEnumerated }), func(t *testing.T, id *Identity) {
			eqp(t, "card.type", id.Card.Type, strp("CPF"))
			eqp(t, "card.typeCode", id.Card.TypeCode, strp("01"))
			eq(t, "typeSource", id.Card.TypeSource, TypeSourceExtension)
		}},
		{"octet string card type", pki, with(hs["cpe"], func(h *cpstest.Holder) { h.CardType, h.CardTypeEncoding = "CPA", cpstest.CardTypeOctetString }), func(t *testing.T, id *Identity) {
			eqp(t, "card.type", id.Card.Type, strp("CPA"))
		}},
		{"no extension, PS id: CPS heuristic", pki, with(med, func(h *cpstest.Holder) { h.CardType = "" }), func(t *testing.T, id *Identity) {
			eqp(t, "card.type", id.Card.Type, strp("CPS"))
			eq(t, "typeSource", id.Card.TypeSource, TypeSourceHeuristic)
			hasWarning(t, id, "CPS assumed")
		}},
		{"no extension, staff id with CPE prefix", pki, with(hs["cpe"], func(h *cpstest.Holder) { h.CardType = "" }), func(t *testing.T, id *Identity) {
			eqp(t, "card.type", id.Card.Type, strp("CPE"))
			eq(t, "typeSource", id.Card.TypeSource, TypeSourceHeuristic)
		}},
		{"no extension, staff id undecidable", pki, with(hs["cpe"], func(h *cpstest.Holder) { h.CardType, h.NationalID = "", "5000000000297510/000018" }), func(t *testing.T, id *Identity) {
			eq(t, "card.type nil", id.Card.Type == nil && id.Card.TypeCode == nil, true)
			eq(t, "typeSource", id.Card.TypeSource, TypeSourceHeuristic)
			hasWarning(t, id, "cannot tell which")
			hasWarning(t, id, "structureId: CN gives")
		}},
		{"card type contradicts id type", pki, with(med, func(h *cpstest.Holder) { h.CardType = "CPE" }), func(t *testing.T, id *Identity) {
			eqp(t, "card.type", id.Card.Type, strp("CPE"))
			hasWarning(t, id, "does not match identifier type")
		}},
		{"bad RPPS check digit", pki, with(med, func(h *cpstest.Holder) { h.NationalID = "899700367918" }), func(t *testing.T, id *Identity) {
			eqp(t, "rpps", id.RPPS, strp("99700367918"))
			hasWarning(t, id, "Luhn")
		}},
		{"short RPPS", pki, with(med, func(h *cpstest.Holder) { h.NationalID = "81234" }), func(t *testing.T, id *Identity) {
			hasWarning(t, id, "expected 11 digits")
		}},
		{"legacy ADELI with a letter", pki, with(hs["infirmier"], func(h *cpstest.Holder) { h.NationalID = "00B7010446" }), func(t *testing.T, id *Identity) {
			eqp(t, "adeli", id.ADELI, strp("0B7010446"))
			eq(t, "warnings", len(id.Warnings), 0)
		}},
		{"bad ADELI", pki, with(hs["infirmier"], func(h *cpstest.Holder) { h.NationalID = "0abc" }), func(t *testing.T, id *Identity) {
			hasWarning(t, id, "adeli")
		}},
		{"case and accent insensitive title", pki, with(med, func(h *cpstest.Holder) { h.Title = "MASSEUR KINESITHERAPEUTE" }), func(t *testing.T, id *Identity) {
			eqp(t, "profession.code", id.Profession.Code, strp("70"))
			eq(t, "label kept verbatim", id.Profession.Label, "MASSEUR KINESITHERAPEUTE")
		}},
		{"unknown title for a PS", pki, with(med, func(h *cpstest.Holder) { h.Title = "Sorcier" }), func(t *testing.T, id *Identity) {
			eq(t, "code nil", id.Profession.Code == nil, true)
			hasWarning(t, id, "not found in TRE_G15")
		}},
		{"staff card with a health profession title", pki, with(hs["cpe"], func(h *cpstest.Holder) { h.Title = "Infirmier" }), func(t *testing.T, id *Identity) {
			eq(t, "code nil", id.Profession.Code == nil, true)
			eq(t, "label", id.Profession.Label, "Infirmier")
			hasWarning(t, id, "staff card")
		}},
		{"no title", pki, with(hs["cpe"], func(h *cpstest.Holder) { h.Title = "" }), func(t *testing.T, id *Identity) {
			eq(t, "profession nil", id.Profession == nil, true)
		}},
		{"legacy profession in OU", pki, with(med, func(h *cpstest.Holder) { h.Title, h.OU = "", []string{"Masseur-Kinésithérapeute"} }), func(t *testing.T, id *Identity) {
			eqp(t, "profession.code", id.Profession.Code, strp("70"))
			eq(t, "structureId nil", id.StructureID == nil, true)
		}},
		{"deprecated id type", pki, with(med, func(h *cpstest.Holder) { h.NationalID = "2123456789" }), func(t *testing.T, id *Identity) {
			eq(t, "nationalIdType", id.NationalIDType, Code{"2", "N° DRASS"})
			hasWarning(t, id, "deprecated")
		}},
		{"policies", pki, with(med, func(h *cpstest.Holder) { h.Policies = []asn1OID{{1, 2, 250, 1, 213, 1, 7, 1, 1, 1, 5, 1}} }), func(t *testing.T, id *Identity) {
			eq(t, "policyOids", strings.Join(id.Certificates.Authentication.PolicyOIDs, ","), "1.2.250.1.213.1.7.1.1.1.5.1")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth, sign := issue(t, tt.pki, tt.holder)
			id, err := FromCertificates(auth, sign, CardInfo{})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, id)
		})
	}
}

func TestFromCertificatesErrors(t *testing.T) {
	pki, _, _, _ := testPKI(t)
	hs := cpstest.Holders()
	medA, medS := issue(t, pki, hs["medecin"])
	infA, _ := issue(t, pki, hs["infirmier"])

	if _, err := FromCertificates(nil, nil, CardInfo{}); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("nil, nil: %v", err)
	}
	if _, err := FromCertificate(nil); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("FromCertificate(nil): %v", err)
	}
	if _, err := FromCertificates(infA, medS, CardInfo{}); !errors.Is(err, ErrHolderMismatch) {
		t.Errorf("mismatched holders: %v", err)
	}
	// A certificate without CN.
	noCN := *medA
	noCN.Subject.Names = nil
	if _, err := FromCertificates(&noCN, nil, CardInfo{}); !errors.Is(err, ErrNoNationalID) {
		t.Errorf("no CN: %v", err)
	}
	// Swapped certificates are accepted with warnings.
	id, err := FromCertificates(medS, medA, CardInfo{})
	if err != nil {
		t.Fatal(err)
	}
	hasWarning(t, id, "signature-only key usage")
	hasWarning(t, id, "lacks nonRepudiation")
}

func TestFromCertificateRole(t *testing.T) {
	pki, _, _, _ := testPKI(t)
	a, s := issue(t, pki, cpstest.Holders()["medecin"])
	id, err := FromCertificate(s)
	if err != nil {
		t.Fatal(err)
	}
	if id.Certificates.Signature == nil || id.Certificates.Authentication != nil {
		t.Error("signature certificate not placed under certificates.signature")
	}
	id, err = FromCertificate(a)
	if err != nil {
		t.Fatal(err)
	}
	if id.Certificates.Authentication == nil || id.Certificates.Signature != nil {
		t.Error("authentication certificate not placed under certificates.authentication")
	}
	if id.Card.SerialNumber != nil || id.ReadAt != nil || id.Card.Generation != nil {
		t.Error("card info must be null without CardInfo")
	}
}

func TestSummaryAndRedacted(t *testing.T) {
	pki, _, _, _ := testPKI(t)
	auth, sign := issue(t, pki, cpstest.Holders()["medecin"])
	id, err := FromCertificates(auth, sign, CardInfo{SerialNumber: "3100345668", ReadAt: readAt})
	if err != nil {
		t.Fatal(err)
	}
	if got := id.Summary(); got != "KIT DOC0036791 — Médecin" {
		t.Errorf("Summary = %q", got)
	}
	before, _ := json.Marshal(id)
	r := id.Redacted()
	after, _ := json.Marshal(id)
	if !bytes.Equal(before, after) {
		t.Fatal("Redacted modified its receiver")
	}
	red, _ := json.Marshal(r)
	for _, secret := range []string{"899700367917", "99700367917", "3100345668", id.Certificates.Authentication.SerialNumber, id.Certificates.Authentication.SHA256, id.Certificates.Authentication.DER[:40]} {
		if bytes.Contains(red, []byte(secret)) {
			t.Errorf("redacted JSON still contains %q", secret)
		}
	}
	eq(t, "nationalId", r.NationalID, "*********917")
	eqp(t, "rpps", r.RPPS, strp("********917"))
	eqp(t, "card serial", r.Card.SerialNumber, strp("*******668"))
	eq(t, "subjectDN", r.Certificates.Signature.SubjectDN, "CN=*********917+SN=DOC0036791+GN=KIT,title=Médecin,C=FR")
	if !regexp.MustCompile(`^\*+[0-9a-f]{3}$`).MatchString(r.Certificates.Authentication.SerialNumber) {
		t.Errorf("serial not masked: %q", r.Certificates.Authentication.SerialNumber)
	}
	eq(t, "name kept", r.Summary(), id.Summary())

	noProf := &Identity{NationalID: "3123/45", GivenName: "", FamilyName: ""}
	if got := noProf.Summary(); got != "3123/45" {
		t.Errorf("Summary without name = %q", got)
	}
}

func hasWarning(t *testing.T, id *Identity, substr string) {
	t.Helper()
	for _, w := range id.Warnings {
		if strings.Contains(w, substr) {
			return
		}
	}
	t.Errorf("no warning containing %q in %q", substr, id.Warnings)
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func eqp(t *testing.T, what string, got, want *string) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s = %v, want %v", what, deref(got), deref(want))
	case *got != *want:
		t.Errorf("%s = %q, want %q", what, *got, *want)
	}
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
