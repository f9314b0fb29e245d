package cps

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strings"
)

// The quirks file: every Quirks field as JSON, so a field report can change
// a card fact without a rebuild (docs/field-test.md).
//
//   - The shipped defaults are quirks.json, embedded in the binary; a test
//     keeps it equal to DefaultQuirks().
//   - A file of the same format in the machine policy directory
//     (config.QuirksFile(): /etc/cpsagent/quirks.json on Linux) overrides
//     them, key by key: a file holding only {"pinEncoding": "bcd"} changes
//     that fact and keeps every other default.
//
// Decoding is strict: unknown keys (with a hint for a near miss), duplicate
// keys, null values, a wrong JSON type and trailing data are errors, and
// every value is validated (Quirks.Validate). Bytes are written as two hex
// digits ("01", "FF"), file paths as hex from the MF ("3F000001A001"). The
// "cps4" object overrides rows of the CPS4 table (quirksfile_cps4.go).

// QuirksFileName is the quirks file's name in the policy directory.
const QuirksFileName = "quirks.json"

// QuirksFileVersion is the "version" a quirks file may carry (optional).
const QuirksFileVersion = 1

// maxQuirksFile bounds the size of a quirks file.
const maxQuirksFile = 64 << 10

// ErrQuirksFile reports an unreadable or invalid quirks file or value.
var ErrQuirksFile = errors.New("cps: invalid quirks")

//go:embed quirks.json
var shippedQuirksJSON []byte

// ShippedQuirksJSON returns the embedded quirks.json (the defaults).
func ShippedQuirksJSON() []byte { return bytes.Clone(shippedQuirksJSON) }

// ShippedQuirks decodes the embedded quirks.json. It equals DefaultQuirks()
// (TestShippedQuirksAreDefaults).
func ShippedQuirks() (Quirks, error) {
	q, err := DecodeQuirks(shippedQuirksJSON, Quirks{})
	if err != nil {
		return Quirks{}, fmt.Errorf("shipped quirks.json: %w", err)
	}
	return q, nil
}

// hexByte is a byte written as two hex digits.
type hexByte byte

func (b hexByte) MarshalJSON() ([]byte, error) {
	return json.Marshal(fmt.Sprintf("%02X", byte(b)))
}

func (b *hexByte) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("want a byte as two hex digits in a string, such as \"01\"")
	}
	v, err := hex.DecodeString(s)
	if err != nil || len(v) != 1 {
		return fmt.Errorf("%q is not a byte as two hex digits, such as \"01\"", s)
	}
	*b = hexByte(v[0])
	return nil
}

// quirksFile is the JSON form of Quirks. Field names are Quirks' JSON tags.
type quirksFile struct {
	// Version is optional; when present it must be QuirksFileVersion.
	Version int `json:"version,omitempty"`
	// Comment is free text for maintainers (where a change came from); the
	// agent ignores it.
	Comment string `json:"comment,omitempty"`

	PINEncoding         string  `json:"pinEncoding"`
	PINPadLength        int     `json:"pinPadLength"`
	PINPadByte          hexByte `json:"pinPadByte"`
	VerifyP2PIN         hexByte `json:"verifyP2Pin"`
	VerifyP2PUK         hexByte `json:"verifyP2Puk"`
	BlockedOn63C0       bool    `json:"blockedOn63C0"`
	AuthCertPath        string  `json:"authCertPath"`
	SignCertPath        string  `json:"signCertPath"`
	ResetRetryCounterP1 hexByte `json:"resetRetryCounterP1"`
	AppDFPath           string  `json:"appDfPath"`
	VerifyInMF          bool    `json:"verifyInMf"`
	ChangeReferenceP1   hexByte `json:"changeReferenceP1"`
	SelectClearsPIN     bool    `json:"selectClearsPin"`
	EmptyHashTail       string  `json:"emptyHashTail"`
	// CPS4 overrides rows of CPS4Facts (quirksfile_cps4.go).
	CPS4 json.RawMessage `json:"cps4,omitempty"`
}

func toFile(q Quirks) quirksFile {
	var cps4 json.RawMessage
	if q.CPS4 != nil {
		cps4 = encodeCPS4(*q.CPS4, false)
	}
	return quirksFile{
		CPS4:                cps4,
		Version:             QuirksFileVersion,
		PINEncoding:         q.PINEncoding,
		PINPadLength:        q.PINPadLength,
		PINPadByte:          hexByte(q.PINPadByte),
		VerifyP2PIN:         hexByte(q.VerifyP2PIN),
		VerifyP2PUK:         hexByte(q.VerifyP2PUK),
		BlockedOn63C0:       q.BlockedOn63C0,
		AuthCertPath:        q.AuthCertPath,
		SignCertPath:        q.SignCertPath,
		ResetRetryCounterP1: hexByte(q.ResetRetryCounterP1),
		AppDFPath:           q.AppDFPath,
		VerifyInMF:          q.VerifyInMF,
		ChangeReferenceP1:   hexByte(q.ChangeReferenceP1),
		SelectClearsPIN:     q.SelectClearsPIN,
		EmptyHashTail:       q.EmptyHashTail,
	}
}

func (f quirksFile) quirks() Quirks {
	return Quirks{
		PINEncoding:         f.PINEncoding,
		PINPadLength:        f.PINPadLength,
		PINPadByte:          byte(f.PINPadByte),
		VerifyP2PIN:         byte(f.VerifyP2PIN),
		VerifyP2PUK:         byte(f.VerifyP2PUK),
		BlockedOn63C0:       f.BlockedOn63C0,
		AuthCertPath:        strings.ToUpper(f.AuthCertPath),
		SignCertPath:        strings.ToUpper(f.SignCertPath),
		ResetRetryCounterP1: byte(f.ResetRetryCounterP1),
		AppDFPath:           strings.ToUpper(f.AppDFPath),
		VerifyInMF:          f.VerifyInMF,
		ChangeReferenceP1:   byte(f.ChangeReferenceP1),
		SelectClearsPIN:     f.SelectClearsPIN,
		EmptyHashTail:       f.EmptyHashTail,
	}
}

// quirksKeys maps each JSON key of quirksFile to its field index.
var quirksKeys = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[quirksFile]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		m[name] = i
	}
	return m
}()

// QuirksKeys lists the keys a quirks file may hold, sorted.
func QuirksKeys() []string {
	out := make([]string, 0, len(quirksKeys))
	for k := range quirksKeys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DecodeQuirks strictly decodes a quirks file over base (the values of the
// keys the file does not name) and validates the result.
func DecodeQuirks(data []byte, base Quirks) (Quirks, error) {
	if err := checkQuirksSyntax(data); err != nil {
		return Quirks{}, fmt.Errorf("%w: %w", ErrQuirksFile, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Quirks{}, fmt.Errorf("%w: the file must hold one JSON object: %w", ErrQuirksFile, err)
	}
	f := toFile(base)
	f.Version = 0
	v := reflect.ValueOf(&f).Elem()
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		i, ok := quirksKeys[k]
		if !ok {
			return Quirks{}, fmt.Errorf("%w: unknown key %q%s", ErrQuirksFile, k, nearKey(k))
		}
		if err := json.Unmarshal(raw[k], v.Field(i).Addr().Interface()); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				err = fmt.Errorf("want a JSON %s, not a %s", v.Field(i).Kind(), te.Value)
			}
			return Quirks{}, fmt.Errorf("%w: %s: %w", ErrQuirksFile, k, err)
		}
	}
	if _, ok := raw["version"]; ok && f.Version != QuirksFileVersion {
		return Quirks{}, fmt.Errorf("%w: version %d (this agent reads version %d)", ErrQuirksFile, f.Version, QuirksFileVersion)
	}
	q := f.quirks()
	q.CPS4 = base.CPS4
	if c, ok := raw["cps4"]; ok {
		t, err := decodeCPS4(c, base.CPS4Table())
		if err != nil {
			return Quirks{}, err
		}
		q.CPS4 = &t
		if CPS4Diff(t, CPS4Facts) == nil {
			q.CPS4 = nil // the built-in table: keep Quirks comparable with ==
		}
	}
	if err := q.Validate(); err != nil {
		return Quirks{}, err
	}
	return q, nil
}

// nearKey suggests a known key for a misspelt one (case or one edit away).
func nearKey(k string) string {
	for known := range quirksKeys {
		if strings.EqualFold(known, k) || editDistance1(strings.ToLower(known), strings.ToLower(k)) {
			return fmt.Sprintf(" (did you mean %q?)", known)
		}
	}
	return fmt.Sprintf(" (known keys: %s)", strings.Join(QuirksKeys(), ", "))
}

// editDistance1 reports whether a and b differ by one insertion, deletion
// or substitution.
func editDistance1(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	if len(b)-len(a) > 1 {
		return false
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	if len(a) == len(b) {
		return i < len(a) && a[i+1:] == b[i+1:]
	}
	return a[i:] == b[i+1:]
}

// checkQuirksSyntax walks the JSON tokens: one object, no duplicate key, no
// null, no trailing data, bounded nesting.
func checkQuirksSyntax(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		obj  bool
		keys map[string]bool
		key  bool // the next string token is a key
	}
	var stack []*frame
	lastKey := ""
	started := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if !started {
				return errors.New("empty file: want a JSON object")
			}
			if len(stack) > 0 {
				return errors.New("truncated JSON")
			}
			return nil
		}
		if err != nil {
			return err
		}
		if len(stack) == 0 && started {
			return errors.New("trailing data after the JSON object")
		}
		if !started {
			started = true
			if tok != json.Delim('{') {
				return errors.New("want a JSON object")
			}
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, isKey := tok.(string); isKey && top != nil && top.obj && top.key {
			if top.keys[k] {
				return fmt.Errorf("duplicate key %q", k)
			}
			top.keys[k] = true
			top.key = false
			lastKey = k
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, keys: map[string]bool{}, key: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		case nil:
			return fmt.Errorf("%s: null is not a value; leave the key out to keep the default", lastKey)
		}
		if len(stack) > 8 {
			return errors.New("JSON nested too deeply")
		}
		if tok != json.Delim('{') && tok != json.Delim('[') && len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].key = true
		}
	}
}

// EncodeQuirks writes q as a complete quirks file (every key, version 1,
// two-space indent, final newline). comment may be empty.
func EncodeQuirks(q Quirks, comment string) ([]byte, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	f := toFile(q)
	f.Comment = comment
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// LoadQuirksFile reads a quirks file over the shipped defaults. A missing
// file gives an error matching fs.ErrNotExist.
func LoadQuirksFile(path string) (Quirks, error) {
	base, err := ShippedQuirks()
	if err != nil {
		return Quirks{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return Quirks{}, fmt.Errorf("quirks file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxQuirksFile+1))
	if err != nil {
		return Quirks{}, fmt.Errorf("quirks file %s: %w", path, err)
	}
	if len(data) > maxQuirksFile {
		return Quirks{}, fmt.Errorf("%w: %s is larger than %d bytes", ErrQuirksFile, path, maxQuirksFile)
	}
	q, err := DecodeQuirks(data, base)
	if err != nil {
		return Quirks{}, fmt.Errorf("%s: %w", path, err)
	}
	return q, nil
}

// LoadQuirks returns the quirks the agent runs with: the shipped defaults,
// overridden by the file at policyPath when it exists (policyPath "" means
// none). source names what was used: the file's path, or "built-in".
func LoadQuirks(policyPath string) (q Quirks, source string, err error) {
	if policyPath != "" {
		q, err = LoadQuirksFile(policyPath)
		if err == nil {
			return q, policyPath, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return Quirks{}, "", err
		}
	}
	q, err = ShippedQuirks()
	return q, "built-in", err
}

// DiffQuirks lists the quirks-file keys whose values differ between a and b.
func DiffQuirks(a, b Quirks) []string {
	fa, fb := toFile(a), toFile(b)
	va, vb := reflect.ValueOf(fa), reflect.ValueOf(fb)
	var out []string
	for _, k := range QuirksKeys() {
		switch k {
		case "version", "comment":
			continue
		case "cps4":
			if CPS4Diff(a.CPS4Table(), b.CPS4Table()) != nil {
				out = append(out, k)
			}
			continue
		}
		i := quirksKeys[k]
		if va.Field(i).Interface() != vb.Field(i).Interface() {
			out = append(out, k)
		}
	}
	return out
}

// QuirkValue returns the quirks-file JSON value of key in q ("" for an
// unknown key), for reports.
func QuirkValue(q Quirks, key string) string {
	i, ok := quirksKeys[key]
	if !ok {
		return ""
	}
	if key == "cps4" {
		return string(encodeCPS4(q.CPS4Table(), false))
	}
	b, err := json.Marshal(reflect.ValueOf(toFile(q)).Field(i).Interface())
	if err != nil {
		return ""
	}
	return string(b)
}

// Validate checks every value. Programmatic Quirks go through it at load
// time; NewProfile does not call it (tests build odd quirks on purpose).
func (q Quirks) Validate() error {
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrQuirksFile, key, fmt.Sprintf(format, a...))
	}
	switch q.PINEncoding {
	case "ascii", "bcd":
	default:
		return bad("pinEncoding", "%q (want \"ascii\" or \"bcd\")", q.PINEncoding)
	}
	minEnc := PINLength
	if q.PINEncoding == "bcd" {
		minEnc = (PINLength + 1) / 2
	}
	if q.PINPadLength != 0 && (q.PINPadLength < minEnc || q.PINPadLength > 16) {
		return bad("pinPadLength", "%d (want 0 for no padding, or %d..16)", q.PINPadLength, minEnc)
	}
	for _, r := range []struct {
		key string
		v   byte
	}{{"verifyP2Pin", q.VerifyP2PIN}, {"verifyP2Puk", q.VerifyP2PUK}} {
		if n := r.v & 0x7F; n == 0 || n > 0x1F || r.v&0x60 != 0 {
			return bad(r.key, "%02X (want a CHV reference 01..1F, or 81..9F for a specific one)", r.v)
		}
	}
	if q.VerifyP2PIN == q.VerifyP2PUK {
		return bad("verifyP2Puk", "%02X is also the PIN's reference", q.VerifyP2PUK)
	}
	for _, r := range []struct{ key, v string }{{"authCertPath", q.AuthCertPath}, {"signCertPath", q.SignCertPath}, {"appDfPath", q.AppDFPath}} {
		if err := checkQuirkPath(r.v); err != nil {
			return bad(r.key, "%v", err)
		}
	}
	if strings.EqualFold(q.AuthCertPath, q.SignCertPath) {
		return bad("signCertPath", "%s is also authCertPath", q.SignCertPath)
	}
	if q.ResetRetryCounterP1 != 0x02 {
		return bad("resetRetryCounterP1", "%02X (only 02 is implemented: the new PIN in the RESET RETRY COUNTER data)", q.ResetRetryCounterP1)
	}
	if q.ChangeReferenceP1 > 0x01 {
		return bad("changeReferenceP1", "%02X (want 00: old and new PIN, or 01: new PIN only)", q.ChangeReferenceP1)
	}
	switch q.EmptyHashTail {
	case "", EmptyTailFallback, EmptyTailPSOHash, EmptyTailCDS:
	default:
		return bad("emptyHashTail", "%q (want %q, %q or %q)", q.EmptyHashTail, EmptyTailFallback, EmptyTailPSOHash, EmptyTailCDS)
	}
	if q.CPS4 != nil {
		return validateCPS4(*q.CPS4)
	}
	return nil
}

// checkQuirkPath accepts a hex file path from the MF: 3F00 then 1 to 7
// file identifiers, none of them 3F00 or FFFF.
func checkQuirkPath(s string) error {
	b, err := hex.DecodeString(s)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not hex", s)
	case len(b) < 4 || len(b)%2 != 0 || len(b) > 16:
		return fmt.Errorf("%q: want 3F00 followed by 1 to 7 file identifiers of 4 hex digits", s)
	case b[0] != 0x3F || b[1] != 0x00:
		return fmt.Errorf("%q does not start at the MF (3F00)", s)
	}
	for i := 2; i < len(b); i += 2 {
		if fid := uint16(b[i])<<8 | uint16(b[i+1]); fid == 0x3F00 || fid == 0xFFFF {
			return fmt.Errorf("%q: file identifier %04X cannot appear inside a path", s, fid)
		}
	}
	return nil
}
