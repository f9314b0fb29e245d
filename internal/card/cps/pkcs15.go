package cps

import (
	"bytes"
	"fmt"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// PKCS#15 (ISO 7816-15) objects needed to find the certificate files when
// the default paths from Quirks are absent: EF.ODF (5031 in the application
// DF, card-cpx.md §2.2) lists the directory files; its [4] entry points to
// the CDF, whose x509Certificate entries point to the certificate EFs.

// P15Path is a PKCS#15 Path: an absolute file path (starting with 3F00)
// and an optional byte range in that file.
type P15Path struct {
	Path   []byte
	Offset int // 0 when absent
	Length int // -1 when absent (whole file)
}

// ODF entry tags (ISO 7816-15 PKCS15Objects CHOICE).
const (
	odfPrivateKeys  = 0xA0
	odfCertificates = 0xA4
	odfTrustedCerts = 0xA5
	odfUsefulCerts  = 0xA6
)

// resolvePath makes a PKCS#15 path absolute: paths that do not start with
// 3F00 are relative to the application DF appDF.
func resolvePath(p, appDF []byte) ([]byte, error) {
	if len(p) < 2 || len(p)%2 != 0 || len(p) > 16 {
		return nil, fmt.Errorf("%w: PKCS#15 path of %d bytes", ErrFormat, len(p))
	}
	if p[0] == 0x3F && p[1] == 0x00 {
		if len(p) < 4 {
			return nil, fmt.Errorf("%w: PKCS#15 path names the MF", ErrFormat)
		}
		return append([]byte(nil), p...), nil
	}
	out := append([]byte(nil), appDF...)
	if bytes.HasPrefix(p, appDF[2:]) && len(p) > len(appDF)-2 {
		p = p[len(appDF)-2:] // written from the DF itself (0001 A001)
	}
	return append(out, p...), nil
}

// parsePath decodes Path ::= SEQUENCE { path OCTET STRING, index INTEGER
// OPTIONAL, length [0] INTEGER OPTIONAL } given the SEQUENCE's value.
func parsePath(v, appDF []byte) (P15Path, error) {
	ts, err := apdu.ParseTLV(v)
	if err != nil {
		return P15Path{}, fmt.Errorf("%w: PKCS#15 path: %w", ErrFormat, err)
	}
	raw, ok := apdu.FindTLV(ts, 0x04)
	if !ok {
		return P15Path{}, fmt.Errorf("%w: PKCS#15 path without OCTET STRING", ErrFormat)
	}
	abs, err := resolvePath(raw.Value, appDF)
	if err != nil {
		return P15Path{}, err
	}
	p := P15Path{Path: abs, Length: -1}
	if t, ok := apdu.FindTLV(ts, 0x02); ok {
		if p.Offset, err = smallInt(t.Value); err != nil {
			return P15Path{}, err
		}
	}
	if t, ok := apdu.FindTLV(ts, 0x80); ok {
		if p.Length, err = smallInt(t.Value); err != nil {
			return P15Path{}, err
		}
	}
	return p, nil
}

func smallInt(v []byte) (int, error) {
	if len(v) == 0 || len(v) > 3 || v[0]&0x80 != 0 {
		return 0, fmt.Errorf("%w: PKCS#15 integer of %d bytes", ErrFormat, len(v))
	}
	n := 0
	for _, c := range v {
		n = n<<8 | int(c)
	}
	return n, nil
}

// ParseODF returns the CDF paths listed in EF.ODF (certificates, trusted and
// useful certificates, in file order).
func ParseODF(b, appDF []byte) ([]P15Path, error) {
	ts, err := apdu.ParseTLV(b)
	if err != nil {
		return nil, fmt.Errorf("%w: ODF: %w", ErrFormat, err)
	}
	var out []P15Path
	for _, t := range ts {
		if t.Tag != odfCertificates && t.Tag != odfTrustedCerts && t.Tag != odfUsefulCerts {
			continue
		}
		inner, err := t.Children()
		if err != nil {
			return nil, fmt.Errorf("%w: ODF: %w", ErrFormat, err)
		}
		seq, ok := apdu.FindTLV(inner, 0x30)
		if !ok {
			return nil, fmt.Errorf("%w: ODF entry %X without path", ErrFormat, t.Tag)
		}
		p, err := parsePath(seq.Value, appDF)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: ODF lists no certificate directory", ErrFormat)
	}
	return out, nil
}

// CDFEntry is one x509Certificate object of a CDF.
type CDFEntry struct {
	Label string
	ID    []byte
	Path  P15Path
}

// ParseCDF decodes the x509Certificate entries of a CDF:
//
//	30 { 30 CommonObjectAttributes { 0C label ... }
//	     30 CommonCertificateAttributes { 04 iD ... }
//	     A1 { 30 X509CertificateAttributes { 30 Path ... } } }
//
// Entries with a direct value or another type are skipped.
func ParseCDF(b, appDF []byte) ([]CDFEntry, error) {
	ts, err := apdu.ParseTLV(b)
	if err != nil {
		return nil, fmt.Errorf("%w: CDF: %w", ErrFormat, err)
	}
	var out []CDFEntry
	for _, t := range ts {
		if t.Tag != 0x30 {
			continue
		}
		parts, err := t.Children()
		if err != nil {
			return nil, fmt.Errorf("%w: CDF: %w", ErrFormat, err)
		}
		var e CDFEntry
		seqs := 0
		var typeAttrs []byte
		for _, p := range parts {
			switch {
			case p.Tag == 0x30 && seqs == 0:
				seqs++
				if attrs, err := p.Children(); err == nil {
					if l, ok := apdu.FindTLV(attrs, 0x0C); ok {
						e.Label = string(l.Value)
					}
				}
			case p.Tag == 0x30 && seqs == 1:
				seqs++
				if attrs, err := p.Children(); err == nil {
					if id, ok := apdu.FindTLV(attrs, 0x04); ok {
						e.ID = append([]byte(nil), id.Value...)
					}
				}
			case p.Tag == 0xA1:
				typeAttrs = p.Value
			}
		}
		if typeAttrs == nil {
			continue
		}
		x509Attrs, err := apdu.FindPath(typeAttrs, 0x30)
		if err != nil {
			continue
		}
		inner, err := apdu.ParseTLV(x509Attrs)
		if err != nil || len(inner) == 0 || inner[0].Tag != 0x30 {
			continue // direct value or malformed: not a file reference
		}
		if e.Path, err = parsePath(inner[0].Value, appDF); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
