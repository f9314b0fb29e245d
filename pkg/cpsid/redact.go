package cpsid

import (
	"strings"
)

// Summary is a one-line display name: "GIVEN FAMILY — profession". The
// profession part is left out when unknown; the national id stands in for
// an empty name.
func (id *Identity) Summary() string {
	name := strings.TrimSpace(id.GivenName + " " + id.FamilyName)
	if name == "" {
		name = id.NationalID
	}
	if id.Profession != nil && id.Profession.Label != "" {
		return name + " — " + id.Profession.Label
	}
	return name
}

// Redacted returns a deep copy fit for support bundles: national
// identifiers, card and certificate serial numbers and certificate
// fingerprints are masked except for their last 3 characters, identifiers
// inside DNs are masked the same way and the certificate DER is removed.
// Names and the profession are kept.
func (id *Identity) Redacted() *Identity {
	r := *id
	ids := []string{id.NationalID}
	for _, p := range []*string{id.RPPS, id.ADELI, id.StructureID, id.InternalID} {
		if p != nil {
			ids = append(ids, *p)
		}
	}
	r.NationalID = mask(id.NationalID)
	r.RPPS = maskPtr(id.RPPS)
	r.ADELI = maskPtr(id.ADELI)
	r.StructureID = maskPtr(id.StructureID)
	r.InternalID = maskPtr(id.InternalID)
	r.Card.SerialNumber = maskPtr(id.Card.SerialNumber)
	r.Certificates.Authentication = redactCert(id.Certificates.Authentication, ids)
	r.Certificates.Signature = redactCert(id.Certificates.Signature, ids)
	r.PSC.SubjectNameID = mask(id.PSC.SubjectNameID)
	r.PSC.PreferredUsername = mask(id.PSC.PreferredUsername)
	if id.PSC.SubjectRefPro != nil {
		p := *id.PSC.SubjectRefPro
		p.Exercices = append([]PSCExercice(nil), p.Exercices...)
		r.PSC.SubjectRefPro = &p
	}
	if id.Profession != nil {
		p := *id.Profession
		r.Profession = &p
	}
	if id.ReadAt != nil {
		t := *id.ReadAt
		r.ReadAt = &t
	}
	r.Card.Type = clonePtr(id.Card.Type)
	r.Card.TypeCode = clonePtr(id.Card.TypeCode)
	r.Card.Generation = clonePtr(id.Card.Generation)
	r.Warnings = append([]string(nil), id.Warnings...)
	return &r
}

func redactCert(c *CertInfo, ids []string) *CertInfo {
	if c == nil {
		return nil
	}
	r := *c
	r.SubjectDN = maskAll(c.SubjectDN, ids)
	r.SerialNumber = mask(c.SerialNumber)
	r.SHA256 = mask(c.SHA256)
	r.DER = ""
	r.KeyUsage = append([]string{}, c.KeyUsage...)
	r.ExtKeyUsage = append([]string{}, c.ExtKeyUsage...)
	r.PolicyOIDs = append([]string{}, c.PolicyOIDs...)
	return &r
}

// maskAll masks every occurrence of the given identifiers in s, longest
// first so that an RPPS inside its national id is not masked twice.
func maskAll(s string, ids []string) string {
	sorted := append([]string(nil), ids...)
	for i := 1; i < len(sorted); i++ {
		for j := i; j > 0 && len(sorted[j]) > len(sorted[j-1]); j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	for _, v := range sorted {
		if len(v) > 3 {
			s = strings.ReplaceAll(s, v, mask(v))
		}
	}
	return s
}

// mask replaces every character but the last 3 with '*'.
func mask(s string) string {
	rs := []rune(s)
	for i := 0; i < len(rs)-3; i++ {
		rs[i] = '*'
	}
	return string(rs)
}

func maskPtr(p *string) *string {
	if p == nil {
		return nil
	}
	m := mask(*p)
	return &m
}

func clonePtr(p *string) *string {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
