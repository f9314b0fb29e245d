package probe

import (
	"errors"
	"fmt"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// ErrFormat reports card data the probe cannot decode. The probe records
// it in the report and goes on.
var ErrFormat = errors.New("probe: unexpected card data")

// EFATR is the decoded EF.ATR (3F00/2F01, card-cpx.md §5.3).
type EFATR struct {
	// CategoryPrefix is true when the file starts with the non-standard 80
	// byte that OpenSC skips on a CPx.
	CategoryPrefix bool `json:"categoryPrefix"`
	// Capabilities is tag 47 (card capabilities, 3 bytes).
	Capabilities string `json:"capabilities,omitempty"`
	// ExtendedLength and Chaining decode the third capability byte.
	ExtendedLength bool `json:"extendedLength"`
	Chaining       bool `json:"chaining"`
	// RootAID is tag 4F.
	RootAID string `json:"rootAid,omitempty"`
	// Buffers is tag E0: send, send with SM, receive, receive with SM.
	Buffers []int `json:"buffers,omitempty"`
	// PreIssuing is tag 46 (IC maker, IC type, OS version, IAS-ECC version).
	PreIssuing string `json:"preIssuing,omitempty"`
	// Tags lists every top-level tag, in order.
	Tags []string `json:"tags"`
}

// ParseEFATR decodes EF.ATR, skipping the CPx leading 80 byte.
func ParseEFATR(b []byte) (*EFATR, error) {
	e := &EFATR{Tags: []string{}}
	if len(b) > 0 && b[0] == 0x80 {
		e.CategoryPrefix = true
		b = b[1:]
	}
	ts, err := decodeTLV(b, "EF.ATR")
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		e.Tags = append(e.Tags, fmt.Sprintf("%X", t.Tag))
		switch t.Tag {
		case 0x47:
			e.Capabilities = apdu.Hex(t.Value)
			if len(t.Value) >= 3 {
				e.Chaining = t.Value[2]&0x80 != 0
				e.ExtendedLength = t.Value[2]&0x40 != 0
			}
		case 0x4F:
			e.RootAID = apdu.Hex(t.Value)
		case 0x46:
			e.PreIssuing = apdu.Hex(t.Value)
		case 0xE0:
			inner, err := decodeTLV(t.Value, "EF.ATR buffer sizes")
			if err != nil {
				return nil, err
			}
			for _, n := range inner {
				v, err := smallUint(n.Value)
				if err != nil {
					return nil, fmt.Errorf("%w: EF.ATR buffer size: %w", ErrFormat, err)
				}
				e.Buffers = append(e.Buffers, v)
			}
		}
	}
	return e, nil
}

// decodeTLV parses b as BER-TLV elements; what names the data in the
// ErrFormat error.
func decodeTLV(b []byte, what string) ([]apdu.TLV, error) {
	ts, err := apdu.ParseTLV(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFormat, what, err)
	}
	return ts, nil
}

// eachTemplate parses b (what names it in errors) and calls fn with the
// children of each top-level element tagged tag, in order, stopping at the
// first error; other elements are skipped. item names an element whose
// value does not parse.
func eachTemplate(b []byte, tag uint32, what, item string, fn func(children []apdu.TLV) error) error {
	ts, err := decodeTLV(b, what)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.Tag != tag {
			continue
		}
		children, err := decodeTLV(t.Value, item)
		if err != nil {
			return err
		}
		if err := fn(children); err != nil {
			return err
		}
	}
	return nil
}

// findValue parses v as BER-TLV elements and returns the value of the first
// one tagged tag; ok is false when there is none or v does not parse.
func findValue(v []byte, tag uint32) (value []byte, ok bool) {
	ts, err := apdu.ParseTLV(v)
	if err != nil {
		return nil, false
	}
	t, ok := apdu.FindTLV(ts, tag)
	return t.Value, ok
}

// requireTLV parses b (what names it in errors) and returns its first
// element tagged tag; name names that element when it is missing.
func requireTLV(b []byte, tag uint32, what, name string) (apdu.TLV, error) {
	ts, err := decodeTLV(b, what)
	if err != nil {
		return apdu.TLV{}, err
	}
	t, ok := apdu.FindTLV(ts, tag)
	if !ok {
		return apdu.TLV{}, fmt.Errorf("%w: %s: no %s", ErrFormat, what, name)
	}
	return t, nil
}

func smallUint(v []byte) (int, error) {
	if len(v) == 0 || len(v) > 3 {
		return 0, fmt.Errorf("%w: integer of %d bytes", ErrFormat, len(v))
	}
	n := 0
	for _, c := range v {
		n = n<<8 | int(c)
	}
	return n, nil
}

// DirApp is one application template of EF.DIR (tag 61).
type DirApp struct {
	AID   string `json:"aid"`
	Label string `json:"label,omitempty"`
}

// ParseEFDIR decodes EF.DIR (3F00/2F00): its application templates; zero
// padding after them is allowed.
func ParseEFDIR(b []byte) ([]DirApp, error) {
	out := []DirApp{}
	err := eachTemplate(b, 0x61, "EF.DIR", "EF.DIR record", func(inner []apdu.TLV) error {
		var a DirApp
		if v, ok := apdu.FindTLV(inner, 0x4F); ok {
			a.AID = apdu.Hex(v.Value)
		}
		if v, ok := apdu.FindTLV(inner, 0x50); ok {
			a.Label = printable(v.Value)
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// printable keeps printable ASCII and replaces the rest with '.'.
func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7E {
			c = '.'
		}
		out[i] = c
	}
	return string(out)
}

// ODFEntry is one entry of EF.ODF: the kind of directory and its path.
type ODFEntry struct {
	Kind string `json:"kind"` // privateKeys, certificates, authObjects, ...
	Tag  string `json:"tag"`
	Path string `json:"path"` // hex, as written in the ODF
}

var odfKinds = map[uint32]string{
	0xA0: "privateKeys", 0xA1: "publicKeys", 0xA2: "trustedPublicKeys", 0xA3: "secretKeys",
	0xA4: "certificates", 0xA5: "trustedCertificates", 0xA6: "usefulCertificates",
	0xA7: "dataObjects", 0xA8: "authObjects",
}

// ParseODF decodes every entry of EF.ODF (ISO 7816-15 PKCS15Objects).
func ParseODF(b []byte) ([]ODFEntry, error) {
	ts, err := decodeTLV(b, "ODF")
	if err != nil {
		return nil, err
	}
	out := []ODFEntry{}
	for _, t := range ts {
		kind, ok := odfKinds[t.Tag]
		if !ok {
			continue
		}
		p, err := pathIn(t.Value)
		if err != nil {
			return nil, fmt.Errorf("%w: ODF %s: %w", ErrFormat, kind, err)
		}
		out = append(out, ODFEntry{Kind: kind, Tag: fmt.Sprintf("%X", t.Tag), Path: p})
	}
	return out, nil
}

// pathIn finds "30 { 04 path ... }" in v and returns the path in hex.
func pathIn(v []byte) (string, error) {
	inner, err := apdu.ParseTLV(v)
	if err != nil {
		return "", err
	}
	seq, ok := apdu.FindTLV(inner, 0x30)
	if !ok {
		return "", fmt.Errorf("no Path")
	}
	parts, err := seq.Children()
	if err != nil {
		return "", err
	}
	p, ok := apdu.FindTLV(parts, 0x04)
	if !ok || len(p.Value) == 0 {
		return "", fmt.Errorf("no path OCTET STRING")
	}
	return fmt.Sprintf("%X", p.Value), nil
}

// PINObject is one PIN object of the AODF (ISO 7816-15 PinAttributes).
type PINObject struct {
	Label string `json:"label,omitempty"`
	// AuthID is the object's authId (links keys to their PIN).
	AuthID string `json:"authId,omitempty"`
	// Flags are the set pinFlags names (unblockingPin, needsPadding, ...).
	Flags []string `json:"flags"`
	// Type is the pinType: bcd, ascii-numeric, utf8, half-nibble-bcd,
	// iso9564-1.
	Type         string `json:"type"`
	MinLength    int    `json:"minLength"`
	StoredLength int    `json:"storedLength"`
	MaxLength    int    `json:"maxLength,omitempty"`
	// Reference is pinReference (the VERIFY P2); -1 when absent (0).
	Reference int `json:"reference"`
	// PadChar is the pad byte in hex, "" when absent.
	PadChar string `json:"padChar,omitempty"`
	Path    string `json:"path,omitempty"`
}

var pinFlagNames = []string{"case-sensitive", "local", "change-disabled", "unblock-disabled", "initialized",
	"needs-padding", "unblockingPin", "soPin", "disable-allowed", "integrity-protected", "confidentiality-protected", "exchangeRefData"}

var pinTypes = []string{"bcd", "ascii-numeric", "utf8", "half-nibble-bcd", "iso9564-1"}

// HasFlag reports whether a pinFlags name is set.
func (p PINObject) HasFlag(name string) bool {
	for _, f := range p.Flags {
		if f == name {
			return true
		}
	}
	return false
}

// ParseAODF decodes the PIN objects of an AODF:
//
//	30 { 30 common{0C label, 03 flags, 04 authId},
//	     30 commonAuth{04 authId},
//	     A1 { 30 PinAttributes{03 flags, 0A type, 02 min, 02 stored, 02 max,
//	                          80 ref, 04 padChar, 18 lastChange, 30 path} } }
//
// Other authentication object types are skipped.
func ParseAODF(b []byte) ([]PINObject, error) {
	out := []PINObject{}
	err := eachTemplate(b, 0x30, "AODF", "AODF", func(parts []apdu.TLV) error {
		obj := splitObject(parts)
		var o PINObject
		if l, ok := findValue(obj.common.Value, 0x0C); ok {
			o.Label = string(l)
		}
		if id, ok := findValue(obj.class.Value, 0x04); ok {
			o.AuthID = fmt.Sprintf("%X", id)
		}
		if len(obj.typed) == 0 {
			return nil
		}
		// The last [1] holds the type attributes.
		in, err := apdu.ParseTLV(obj.typed[len(obj.typed)-1].Value)
		if err != nil || len(in) == 0 || in[0].Tag != 0x30 {
			return nil // not PinAttributes
		}
		fields, err := decodeTLV(in[0].Value, "AODF PinAttributes")
		if err != nil {
			return err
		}
		if err := setPINAttributes(&o, fields); err != nil {
			return err
		}
		out = append(out, o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// setPINAttributes decodes the fields of PinAttributes into o.
func setPINAttributes(o *PINObject, fields []apdu.TLV) error {
	o.Reference = -1
	o.Flags = []string{}
	ints := 0
	for _, f := range fields {
		switch f.Tag {
		case 0x03:
			o.Flags = bitNames(f.Value, pinFlagNames)
		case 0x0A:
			n, err := derIntOf(f.Value, "AODF pinType")
			if err != nil {
				return err
			}
			if n >= 0 && n < len(pinTypes) {
				o.Type = pinTypes[n]
			} else {
				o.Type = fmt.Sprintf("unknown(%d)", n)
			}
		case 0x02:
			n, err := derIntOf(f.Value, "AODF length")
			if err != nil {
				return err
			}
			switch ints {
			case 0:
				o.MinLength = n
			case 1:
				o.StoredLength = n
			case 2:
				o.MaxLength = n
			}
			ints++
		case 0x80:
			if err := setDERInt(&o.Reference, f.Value, "AODF pinReference"); err != nil {
				return err
			}
		case 0x04:
			if len(f.Value) == 1 {
				o.PadChar = fmt.Sprintf("%02X", f.Value[0])
			}
		case 0x30:
			if p, ok := findValue(f.Value, 0x04); ok {
				o.Path = fmt.Sprintf("%X", p)
			}
		}
	}
	return nil
}

// pkcs15Object is a PKCS#15 object (ISO 7816-15 PKCS15Object) split into
// its parts: common is the first SEQUENCE (CommonObjectAttributes), class
// the second (CommonAuthenticationObjectAttributes, CommonKeyAttributes),
// typed the [1] elements (the type attributes), in order. An absent
// SEQUENCE is the zero TLV, which has no children.
type pkcs15Object struct {
	common, class apdu.TLV
	typed         []apdu.TLV
}

func splitObject(parts []apdu.TLV) pkcs15Object {
	var o pkcs15Object
	seqs := 0
	for _, p := range parts {
		switch {
		case p.Tag == 0x30 && seqs == 0:
			seqs++
			o.common = p
		case p.Tag == 0x30 && seqs == 1:
			seqs++
			o.class = p
		case p.Tag == 0xA1:
			o.typed = append(o.typed, p)
		}
	}
	return o
}

// derIntOf is derInt with an ErrFormat error naming the field what.
func derIntOf(v []byte, what string) (int, error) {
	n, err := derInt(v)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", ErrFormat, what, err)
	}
	return n, nil
}

// setDERInt decodes the DER INTEGER v into *dst, which it leaves alone on
// an ErrFormat error naming the field what.
func setDERInt(dst *int, v []byte, what string) error {
	n, err := derIntOf(v, what)
	if err != nil {
		return err
	}
	*dst = n
	return nil
}

// derInt decodes a DER INTEGER value (two's complement) of up to 4 bytes.
func derInt(v []byte) (int, error) {
	if len(v) == 0 || len(v) > 4 {
		return 0, fmt.Errorf("integer of %d bytes", len(v))
	}
	n := 0
	for _, c := range v {
		n = n<<8 | int(c)
	}
	if v[0]&0x80 != 0 {
		n -= 1 << (8 * len(v))
	}
	return n, nil
}

// bitNames decodes a DER BIT STRING value (unused-bits byte first) into the
// names of the set bits (bit 0 = most significant bit of the first byte).
func bitNames(v []byte, names []string) []string {
	out := []string{}
	if len(v) < 2 {
		return out
	}
	for i, c := range v[1:] {
		for j := 0; j < 8; j++ {
			if c&(0x80>>j) == 0 {
				continue
			}
			n := i*8 + j
			if n < len(names) {
				out = append(out, names[n])
			} else {
				out = append(out, fmt.Sprintf("bit%d", n))
			}
		}
	}
	return out
}

// KeyObject is one private key of the PrKDF.
type KeyObject struct {
	Label  string   `json:"label,omitempty"`
	ID     string   `json:"id,omitempty"`
	Usage  []string `json:"usage"`
	KeyRef int      `json:"keyReference"` // -1 when absent
	AuthID string   `json:"authId,omitempty"`
	Bits   int      `json:"modulusBits,omitempty"`
}

var keyUsageNames = []string{"encrypt", "decrypt", "sign", "signRecover", "wrap", "unwrap", "verify",
	"verifyRecover", "derive", "nonRepudiation"}

// ParsePrKDF decodes the RSA private keys of a PrKDF:
//
//	30 { 30 common{0C label, 03 flags, 04 authId, ...},
//	     30 commonKey{04 id, 03 usage, 03 access, 02 keyReference},
//	     A1 { 30 { 30 path, 02 modulusLength } } }
func ParsePrKDF(b []byte) ([]KeyObject, error) {
	out := []KeyObject{}
	// RSA keys only ([n] for other key types).
	err := eachTemplate(b, 0x30, "PrKDF", "PrKDF", func(parts []apdu.TLV) error {
		obj := splitObject(parts)
		k := KeyObject{KeyRef: -1, Usage: []string{}}
		if l, ok := findValue(obj.common.Value, 0x0C); ok {
			k.Label = string(l)
		}
		if a, ok := findValue(obj.common.Value, 0x04); ok {
			k.AuthID = fmt.Sprintf("%X", a)
		}
		in, err := decodeTLV(obj.class.Value, "PrKDF key attributes")
		if err != nil {
			return err
		}
		bits := 0
		for _, f := range in {
			switch f.Tag {
			case 0x04:
				k.ID = fmt.Sprintf("%X", f.Value)
			case 0x03:
				if bits == 0 {
					k.Usage = bitNames(f.Value, keyUsageNames)
				}
				bits++
			case 0x02:
				if err := setDERInt(&k.KeyRef, f.Value, "PrKDF keyReference"); err != nil {
					return err
				}
			}
		}
		for _, t := range obj.typed {
			if s, ok := findValue(t.Value, 0x30); ok {
				if n, ok := findValue(s, 0x02); ok {
					if v, err := derInt(n); err == nil {
						k.Bits = v
					}
				}
			}
		}
		out = append(out, k)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SE is a security environment read by GET DATA (IAS-ECC SE SDO, tag 7B):
// its authentication templates name the CHV to verify for a usage.
type SE struct {
	Ref  int      `json:"ref"`
	CRTs []SECRT  `json:"crts"`
	Raw  []string `json:"tags,omitempty"`
}

// SECRT is one control reference template of an SE.
type SECRT struct {
	Tag   string `json:"tag"`             // A4 = AT
	CHV   string `json:"chv,omitempty"`   // tag 83: the key or CHV reference
	Usage string `json:"usage,omitempty"` // tag 95: usage qualifier (08 = user authentication)
}

// ParseSE decodes the answer to GET DATA of an SE:
// 70 { BF FB <ref> { 7B { A4 { 83 ref, 95 usage } ... } } }.
func ParseSE(b []byte) (*SE, error) {
	t70, err := requireTLV(b, 0x70, "SE", "70 template")
	if err != nil {
		return nil, err
	}
	in, err := decodeTLV(t70.Value, "SE")
	if err != nil {
		return nil, err
	}
	var sdo apdu.TLV
	found := false
	for _, t := range in {
		if t.Tag&0xFFFF00 == 0xBFFB00 {
			sdo, found = t, true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: SE: no BF FB xx", ErrFormat)
	}
	se := &SE{Ref: int(sdo.Tag & 0xFF), CRTs: []SECRT{}}
	t7b, err := requireTLV(sdo.Value, 0x7B, "SE", "7B")
	if err != nil {
		return nil, err
	}
	crts, err := decodeTLV(t7b.Value, "SE")
	if err != nil {
		return nil, err
	}
	for _, c := range crts {
		crt := SECRT{Tag: fmt.Sprintf("%X", c.Tag)}
		if v, ok := findValue(c.Value, 0x83); ok {
			crt.CHV = apdu.Hex(v)
		}
		if v, ok := findValue(c.Value, 0x95); ok {
			crt.Usage = apdu.Hex(v)
		}
		se.CRTs = append(se.CRTs, crt)
	}
	return se, nil
}

// CHVSizes is the public data of a CHV SDO (tag 7F41): 80 max, 81 min.
type CHVSizes struct {
	Max int `json:"max"`
	Min int `json:"min"`
}

// ParseCHVSizes decodes GET DATA of 7F41: 70 { BF 81 ref { 7F41 { 80 max, 81 min } } }.
func ParseCHVSizes(b []byte) (*CHVSizes, error) {
	v, err := apdu.FindPath(b, 0x70)
	if err != nil {
		return nil, fmt.Errorf("%w: CHV public data: %w", ErrFormat, err)
	}
	in, err := apdu.ParseTLV(v)
	if err != nil || len(in) == 0 {
		return nil, fmt.Errorf("%w: CHV public data: no SDO", ErrFormat)
	}
	pub, err := apdu.FindPath(in[0].Value, 0x7F41)
	if err != nil {
		return nil, fmt.Errorf("%w: CHV public data: %w", ErrFormat, err)
	}
	f, err := decodeTLV(pub, "CHV public data")
	if err != nil {
		return nil, err
	}
	s := &CHVSizes{Max: -1, Min: -1}
	for _, t := range f {
		n, err := smallUint(t.Value)
		if err != nil {
			continue
		}
		switch t.Tag {
		case 0x80:
			s.Max = n
		case 0x81:
			s.Min = n
		}
	}
	if s.Max < 0 {
		return nil, fmt.Errorf("%w: CHV public data without a maximum size (80)", ErrFormat)
	}
	return s, nil
}
