package apdu

import (
	"errors"
	"fmt"
)

// ErrTLV is returned for malformed BER-TLV data.
var ErrTLV = errors.New("apdu: malformed BER-TLV")

// TLV is one BER-TLV element. Tag holds the tag bytes big-endian
// (0x7F41, 0xBF8101, ...). Value aliases the parsed buffer.
type TLV struct {
	Tag   uint32
	Value []byte
}

// Constructed reports whether the tag's first byte has the constructed bit.
func (t TLV) Constructed() bool { return firstTagByte(t.Tag)&0x20 != 0 }

// Children parses the value of a constructed element.
func (t TLV) Children() ([]TLV, error) { return ParseTLV(t.Value) }

func firstTagByte(tag uint32) byte {
	for tag > 0xFF {
		tag >>= 8
	}
	return byte(tag)
}

// maxTagBytes bounds tag length; IAS-ECC uses at most three bytes (BF 81 01).
const maxTagBytes = 4

// ParseTLV decodes a sequence of BER-TLV elements. Padding bytes 00 and FF
// between elements are skipped as ISO 7816-4 allows.
func ParseTLV(b []byte) ([]TLV, error) {
	var out []TLV
	for len(b) > 0 {
		if b[0] == 0x00 || b[0] == 0xFF {
			b = b[1:]
			continue
		}
		t, rest, err := parseOne(b)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
		b = rest
	}
	return out, nil
}

func parseOne(b []byte) (TLV, []byte, error) {
	tag := uint32(b[0])
	i := 1
	if b[0]&0x1F == 0x1F {
		for {
			if i >= len(b) {
				return TLV{}, nil, fmt.Errorf("%w: truncated tag", ErrTLV)
			}
			if i >= maxTagBytes {
				return TLV{}, nil, fmt.Errorf("%w: tag longer than %d bytes", ErrTLV, maxTagBytes)
			}
			tag = tag<<8 | uint32(b[i])
			i++
			if b[i-1]&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return TLV{}, nil, fmt.Errorf("%w: missing length", ErrTLV)
	}
	l := int(b[i])
	i++
	if l&0x80 != 0 {
		n := l & 0x7F
		if n == 0 || n > 3 {
			return TLV{}, nil, fmt.Errorf("%w: unsupported length form %02X", ErrTLV, byte(l))
		}
		if i+n > len(b) {
			return TLV{}, nil, fmt.Errorf("%w: truncated length", ErrTLV)
		}
		l = 0
		for _, c := range b[i : i+n] {
			l = l<<8 | int(c)
		}
		i += n
	}
	if l > len(b)-i {
		return TLV{}, nil, fmt.Errorf("%w: value of %d bytes, %d left", ErrTLV, l, len(b)-i)
	}
	return TLV{Tag: tag, Value: b[i : i+l]}, b[i+l:], nil
}

// FindTLV returns the first element with the given tag at this level.
func FindTLV(ts []TLV, tag uint32) (TLV, bool) {
	for _, t := range ts {
		if t.Tag == tag {
			return t, true
		}
	}
	return TLV{}, false
}

// FindPath descends through constructed elements following tags.
func FindPath(b []byte, tags ...uint32) ([]byte, error) {
	cur := b
	for _, tag := range tags {
		ts, err := ParseTLV(cur)
		if err != nil {
			return nil, err
		}
		t, ok := FindTLV(ts, tag)
		if !ok {
			return nil, fmt.Errorf("%w: tag %X not found", ErrTLV, tag)
		}
		cur = t.Value
	}
	return cur, nil
}

// EncodeTLV encodes one element with a definite length.
func EncodeTLV(tag uint32, value []byte) []byte {
	var tb []byte
	switch {
	case tag > 0xFFFFFF:
		tb = []byte{byte(tag >> 24), byte(tag >> 16), byte(tag >> 8), byte(tag)}
	case tag > 0xFFFF:
		tb = []byte{byte(tag >> 16), byte(tag >> 8), byte(tag)}
	case tag > 0xFF:
		tb = []byte{byte(tag >> 8), byte(tag)}
	default:
		tb = []byte{byte(tag)}
	}
	out := append(tb, encodeLength(len(value))...)
	return append(out, value...)
}

func encodeLength(n int) []byte {
	switch {
	case n < 0x80:
		return []byte{byte(n)}
	case n <= 0xFF:
		return []byte{0x81, byte(n)}
	case n <= 0xFFFF:
		return []byte{0x82, byte(n >> 8), byte(n)}
	default:
		return []byte{0x83, byte(n >> 16), byte(n >> 8), byte(n)}
	}
}
