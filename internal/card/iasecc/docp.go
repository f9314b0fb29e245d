package iasecc

import (
	"fmt"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// CHVDOCP is the public part of a CHV SDO (PIN or PUK) returned by GET DATA
// (card-cpx.md §3, verbatim trace):
//
//	70 16 BF 81 01 12 A0 10 9A 01 03 9B 01 03 A1 08 8C 06 F3 00 00 13 FF 00
//
// 9A = max tries, 9B = tries left, 9D = uses left (PUK only), A1 = rules.
type CHVDOCP struct {
	Ref       byte // SDO reference (low byte of tag BF 81 xx)
	MaxTries  int  // -1 when absent
	TriesLeft int  // -1 when absent
	UsesLeft  int  // -1 when absent (PIN); 0 means the PUK can no longer unblock
	ACL       []byte
}

// ParseCHVDOCP decodes the answer to GET DATA of a CHV DOCP.
func ParseCHVDOCP(b []byte) (*CHVDOCP, error) {
	top, err := apdu.ParseTLV(b)
	if err != nil {
		return nil, fmt.Errorf("%w: DOCP: %w", ErrFormat, err)
	}
	t70, ok := apdu.FindTLV(top, 0x70)
	if !ok {
		return nil, fmt.Errorf("%w: DOCP: no 70 template", ErrFormat)
	}
	sdos, err := t70.Children()
	if err != nil {
		return nil, fmt.Errorf("%w: DOCP: %w", ErrFormat, err)
	}
	var sdo apdu.TLV
	found := false
	for _, s := range sdos {
		if s.Tag&0xFFFF00 == 0xBF8100 {
			sdo, found = s, true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: DOCP: no CHV SDO (BF 81 xx)", ErrFormat)
	}
	parts, err := sdo.Children()
	if err != nil {
		return nil, fmt.Errorf("%w: DOCP: %w", ErrFormat, err)
	}
	a0, ok := apdu.FindTLV(parts, 0xA0)
	if !ok {
		return nil, fmt.Errorf("%w: DOCP: no A0 template", ErrFormat)
	}
	fields, err := a0.Children()
	if err != nil {
		return nil, fmt.Errorf("%w: DOCP: %w", ErrFormat, err)
	}
	d := &CHVDOCP{Ref: byte(sdo.Tag), MaxTries: -1, TriesLeft: -1, UsesLeft: -1}
	for _, f := range fields {
		switch f.Tag {
		case 0x9A, 0x9B, 0x9D:
			if len(f.Value) == 0 || len(f.Value) > 2 {
				return nil, fmt.Errorf("%w: DOCP: counter %X of %d bytes", ErrFormat, f.Tag, len(f.Value))
			}
			n := 0
			for _, c := range f.Value {
				n = n<<8 | int(c)
			}
			switch f.Tag {
			case 0x9A:
				d.MaxTries = n
			case 0x9B:
				d.TriesLeft = n
			default:
				d.UsesLeft = n
			}
		case 0xA1:
			d.ACL = append([]byte(nil), f.Value...)
		}
	}
	if d.TriesLeft < 0 {
		return nil, fmt.Errorf("%w: DOCP: no tries-left counter (9B)", ErrFormat)
	}
	return d, nil
}
