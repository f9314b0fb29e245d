package iasecc

import (
	"errors"
	"fmt"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// ErrFormat is returned for card answers whose structure is not what the
// IAS-ECC profile describes (FCP, DOCP, ...).
var ErrFormat = errors.New("iasecc: malformed card data")

// FCP is the File Control Parameters template a SELECT with P2=04 returns
// (card-cpx.md §2.3): 62 L | 80 size | 82 descriptor | 83 FID | 84 DF name |
// 88 SFI | 8A LCS | A1 { 8C contact rules, 9C contactless rules }.
type FCP struct {
	Size       int    // tag 80 (or 81): data size in bytes; -1 when absent
	Descriptor byte   // tag 82 first byte: 01 = transparent EF, 38 = DF
	FID        uint16 // tag 83
	HasFID     bool
	DFName     []byte // tag 84 (AID of an application DF)
	SFI        byte   // tag 88 >> 3; 0 when absent
	LCS        byte   // tag 8A: 05 = operational, activated
	// ContactACL and ContactlessACL are the 8C / 9C compact access rules:
	// AMB byte then one SCB per set AMB bit from 0x40 down (card-cpx.md §2.3).
	ContactACL     []byte
	ContactlessACL []byte
}

// IsDF reports whether the descriptor byte names a DF.
func (f *FCP) IsDF() bool { return f.Descriptor&0x38 == 0x38 }

// ParseFCP decodes an FCP (tag 62) or FCI (tag 6F) template. Unknown tags
// are ignored, as ISO 7816-4 allows proprietary ones.
func ParseFCP(b []byte) (*FCP, error) {
	ts, err := apdu.ParseTLV(b)
	if err != nil {
		return nil, fmt.Errorf("%w: FCP: %w", ErrFormat, err)
	}
	if len(ts) == 0 || (ts[0].Tag != 0x62 && ts[0].Tag != 0x6F) {
		return nil, fmt.Errorf("%w: FCP: no 62/6F template", ErrFormat)
	}
	inner, err := ts[0].Children()
	if err != nil {
		return nil, fmt.Errorf("%w: FCP: %w", ErrFormat, err)
	}
	f := &FCP{Size: -1}
	for _, t := range inner {
		switch t.Tag {
		case 0x80, 0x81:
			if t.Tag == 0x81 && f.Size >= 0 {
				continue // 80 (data size) wins over 81 (total size)
			}
			if len(t.Value) == 0 || len(t.Value) > 4 {
				return nil, fmt.Errorf("%w: FCP: size of %d bytes", ErrFormat, len(t.Value))
			}
			n := 0
			for _, c := range t.Value {
				n = n<<8 | int(c)
			}
			if n < 0 {
				return nil, fmt.Errorf("%w: FCP: negative size", ErrFormat)
			}
			f.Size = n
		case 0x82:
			if len(t.Value) == 0 {
				return nil, fmt.Errorf("%w: FCP: empty descriptor", ErrFormat)
			}
			f.Descriptor = t.Value[0]
		case 0x83:
			if len(t.Value) != 2 {
				return nil, fmt.Errorf("%w: FCP: FID of %d bytes", ErrFormat, len(t.Value))
			}
			f.FID = uint16(t.Value[0])<<8 | uint16(t.Value[1])
			f.HasFID = true
		case 0x84:
			f.DFName = append([]byte(nil), t.Value...)
		case 0x88:
			if len(t.Value) == 1 {
				f.SFI = t.Value[0] >> 3
			}
		case 0x8A:
			if len(t.Value) == 1 {
				f.LCS = t.Value[0]
			}
		case 0xA1:
			rules, err := t.Children()
			if err != nil {
				return nil, fmt.Errorf("%w: FCP security attributes: %w", ErrFormat, err)
			}
			if r, ok := apdu.FindTLV(rules, 0x8C); ok {
				f.ContactACL = append([]byte(nil), r.Value...)
			}
			if r, ok := apdu.FindTLV(rules, 0x9C); ok {
				f.ContactlessACL = append([]byte(nil), r.Value...)
			}
		}
	}
	return f, nil
}
