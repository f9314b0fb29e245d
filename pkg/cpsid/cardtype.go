package cpsid

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
)

// Card type sources reported in Card.TypeSource.
const (
	TypeSourceExtension = "cert-extension"
	TypeSourceHeuristic = "heuristic"
)

var errCardTypeEncoding = errors.New("unrecognised card-type extension encoding")

// DecodeCardTypeExtension decodes the value of extension OIDCardType into its
// TRE_G02 numeric code (0 CPS, 1 CPF, 2 CPE, 3 CPA, other values are
// returned as is). It accepts, because the exact encoding is unverified:
//   - a DER INTEGER or ENUMERATED (02/0A, length 1 or 2);
//   - any 3-byte TLV with length 1, using its last byte (the GIE SESAM-Vitale
//     reading: "3 raw bytes, last byte is the code");
//   - a single raw byte;
//   - a PrintableString/UTF8String/IA5String/NumericString/OCTET STRING of
//     one or two ASCII digits ("0", "02").
func DecodeCardTypeExtension(v []byte) (int, error) {
	switch {
	case len(v) == 1:
		return int(v[0]), nil
	case len(v) >= 2 && int(v[1]) == len(v)-2 && v[1] < 0x80:
		tag, body := v[0], v[2:]
		if code, ok := decimalASCII(body); ok && (tag == 0x04 || tag == 0x0c || tag == 0x12 || tag == 0x13 || tag == 0x16) {
			return code, nil
		}
		switch {
		case (tag == 0x02 || tag == 0x0a) && (len(body) == 1 || len(body) == 2):
			n := 0
			for _, b := range body {
				n = n<<8 | int(b)
			}
			if body[0]&0x80 != 0 {
				return 0, fmt.Errorf("%w: negative value", errCardTypeEncoding)
			}
			return n, nil
		case len(body) == 1:
			return int(body[0]), nil
		}
	}
	if len(v) == 3 {
		return int(v[2]), nil
	}
	return 0, fmt.Errorf("%w: % x", errCardTypeEncoding, truncate(v, 16))
}

func decimalASCII(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 2 {
		return 0, false
	}
	n, err := strconv.Atoi(string(b))
	return n, err == nil && n >= 0
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// cardTypeFromExtension looks for OIDCardType in cert. found is false when
// the extension is absent; err is set when it is present but undecodable.
func cardTypeFromExtension(cert *x509.Certificate) (code int, found bool, err error) {
	if cert == nil {
		return 0, false, nil
	}
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(OIDCardType) {
			code, err := DecodeCardTypeExtension(ext.Value)
			return code, true, err
		}
	}
	return 0, false, nil
}
