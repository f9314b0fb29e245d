package cpsid

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strings"
)

// dnShortNames are the attribute type names used when printing a DN. They
// follow OpenSSL's short names so a DN printed here can be compared with
// `openssl x509 -nameopt RFC2253`.
var dnShortNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.4":                    "SN",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.9":                    "street",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.12":                   "title",
	"2.5.4.17":                   "postalCode",
	"2.5.4.42":                   "GN",
	"2.5.4.65":                   "pseudonym",
	"2.5.4.97":                   "organizationIdentifier",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"0.9.2342.19200300.100.1.1":  "UID",
	"0.9.2342.19200300.100.1.25": "DC",
}

// FormatDN renders a DER-encoded Name in RFC 4514 order (last RDN first),
// keeping multi-valued RDNs together with "+", their values also in reverse
// encoded order, e.g. "CN=899700367917+SN=DOC0036791+GN=KIT,title=Médecin,C=FR".
// This is exactly what `openssl x509 -nameopt RFC2253,-esc_msb` prints. Unlike
// pkix.Name.String it names SN, GN and title instead of printing them as
// "2.5.4.4=#…". String values are printed as UTF-8; other values as #hex.
func FormatDN(der []byte) (string, error) {
	var seq pkix.RDNSequence
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil {
		return "", fmt.Errorf("parsing distinguished name: %w", err)
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("parsing distinguished name: %d trailing bytes", len(rest))
	}
	var b strings.Builder
	for i := len(seq) - 1; i >= 0; i-- {
		if i != len(seq)-1 {
			b.WriteByte(',')
		}
		rdn := seq[i]
		for j := len(rdn) - 1; j >= 0; j-- {
			atv := rdn[j]
			if j != len(rdn)-1 {
				b.WriteByte('+')
			}
			oid := atv.Type.String()
			if name, ok := dnShortNames[oid]; ok {
				b.WriteString(name)
			} else {
				b.WriteString(oid)
			}
			b.WriteByte('=')
			if s, ok := atv.Value.(string); ok {
				b.WriteString(escapeDNValue(s))
				continue
			}
			enc, err := asn1.Marshal(atv.Value)
			if err != nil {
				return "", fmt.Errorf("re-encoding attribute %s: %w", oid, err)
			}
			b.WriteByte('#')
			b.WriteString(hex.EncodeToString(enc))
		}
	}
	return b.String(), nil
}

// escapeDNValue escapes a value per RFC 4514 §2.4.
func escapeDNValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ',' || c == '+' || c == '"' || c == '\\' || c == '<' || c == '>' || c == ';' || c == '=':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '#' && i == 0, c == ' ' && (i == 0 || i == len(s)-1):
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
