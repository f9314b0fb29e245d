package cps

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// The quirks file's "cps4" object overrides rows of the CPS4 table
// (CPS4Facts, cps4facts.go) key by key, with the table's JSON names:
//
//	"cps4": {"signKeyRef": "81", "authCertPath": "0001C001"}
//
// Bytes are two hex digits, 16-bit values four ("6881"), byte strings hex
// ("8025000001FF0100"); numbers, booleans and strings as in JSON. The ATR
// list cannot be changed here: a card is recognised before any quirk
// applies.

// CPS4Table returns the CPS4 facts the agent uses: q.CPS4, or CPS4Facts.
func (q Quirks) CPS4Table() CPS4Table {
	if q.CPS4 != nil {
		return *q.CPS4
	}
	return CPS4Facts
}

// cps4Fixed lists the CPS4 table keys a quirks file cannot change.
var cps4Fixed = map[string]string{"atrs": "a card is recognised by its ATR before any quirk applies"}

// cps4Field is one overridable row of CPS4Table.
type cps4Field struct {
	key   string
	index int
}

var cps4Fields = func() []cps4Field {
	var out []cps4Field
	t := reflect.TypeFor[CPS4Table]()
	for i := range t.NumField() {
		k, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if k == "" || k == "-" {
			continue
		}
		out = append(out, cps4Field{key: k, index: i})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].key < out[b].key })
	return out
}()

// CPS4Keys lists the keys of the quirks file's "cps4" object.
func CPS4Keys() []string {
	var out []string
	for _, f := range cps4Fields {
		if _, fixed := cps4Fixed[f.key]; !fixed {
			out = append(out, f.key)
		}
	}
	return out
}

func cps4Field1(key string) (cps4Field, bool) {
	for _, f := range cps4Fields {
		if f.key == key {
			return f, true
		}
	}
	return cps4Field{}, false
}

// decodeCPS4 decodes the "cps4" object over base.
func decodeCPS4(data []byte, base CPS4Table) (CPS4Table, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return CPS4Table{}, fmt.Errorf("%w: cps4: want a JSON object", ErrQuirksFile)
	}
	t := cloneCPS4(base)
	v := reflect.ValueOf(&t).Elem()
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if why, fixed := cps4Fixed[k]; fixed {
			return CPS4Table{}, fmt.Errorf("%w: cps4.%s cannot be changed by a quirks file: %s", ErrQuirksFile, k, why)
		}
		f, ok := cps4Field1(k)
		if !ok {
			return CPS4Table{}, fmt.Errorf("%w: cps4: unknown key %q (known keys: %s)", ErrQuirksFile, k, strings.Join(CPS4Keys(), ", "))
		}
		if err := decodeCPS4Value(raw[k], v.Field(f.index)); err != nil {
			return CPS4Table{}, fmt.Errorf("%w: cps4.%s: %w", ErrQuirksFile, k, err)
		}
	}
	if err := validateCPS4(t); err != nil {
		return CPS4Table{}, err
	}
	return t, nil
}

var errCPS4Value = errors.New("bad value")

func decodeCPS4Value(raw json.RawMessage, f reflect.Value) error {
	hexString := func(digits int) ([]byte, error) {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%w: want a hex string", errCPS4Value)
		}
		b, err := hex.DecodeString(s)
		if err != nil || digits > 0 && len(s) != digits {
			if digits > 0 {
				return nil, fmt.Errorf("%w: %q is not %d hex digits", errCPS4Value, s, digits)
			}
			return nil, fmt.Errorf("%w: %q is not hex", errCPS4Value, s)
		}
		return b, nil
	}
	switch {
	case f.Kind() == reflect.Uint8:
		b, err := hexString(2)
		if err != nil {
			return err
		}
		f.SetUint(uint64(b[0]))
	case f.Kind() == reflect.Uint16:
		b, err := hexString(4)
		if err != nil {
			return err
		}
		f.SetUint(uint64(b[0])<<8 | uint64(b[1]))
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Uint8:
		b, err := hexString(0)
		if err != nil {
			return err
		}
		f.SetBytes(b)
	case f.Kind() == reflect.Int, f.Kind() == reflect.Bool, f.Kind() == reflect.String:
		p := reflect.New(f.Type())
		if err := json.Unmarshal(raw, p.Interface()); err != nil {
			return fmt.Errorf("%w: want a JSON %s", errCPS4Value, f.Kind())
		}
		f.Set(p.Elem())
	default:
		return fmt.Errorf("%w: this row has no quirks-file form", errCPS4Value)
	}
	return nil
}

// cps4Value is the quirks-file JSON of one row.
func cps4Value(f reflect.Value) json.RawMessage {
	var v any
	switch {
	case f.Kind() == reflect.Uint8:
		v = fmt.Sprintf("%02X", f.Uint())
	case f.Kind() == reflect.Uint16:
		v = fmt.Sprintf("%04X", f.Uint())
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Uint8:
		v = strings.ToUpper(hex.EncodeToString(f.Bytes()))
	default:
		v = f.Interface()
	}
	b, _ := json.Marshal(v)
	return b
}

// encodeCPS4 writes the overridable rows of t that differ from CPS4Facts
// (all of them with full) as a JSON object, keys sorted.
func encodeCPS4(t CPS4Table, full bool) json.RawMessage {
	var buf bytes.Buffer
	buf.WriteByte('{')
	v, d := reflect.ValueOf(t), reflect.ValueOf(CPS4Facts)
	n := 0
	for _, f := range cps4Fields {
		if _, fixed := cps4Fixed[f.key]; fixed {
			continue
		}
		val := cps4Value(v.Field(f.index))
		if !full && bytes.Equal(val, cps4Value(d.Field(f.index))) {
			continue
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		k, _ := json.Marshal(f.key)
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(val)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// CPS4Diff lists the "cps4" keys whose values differ between a and b.
func CPS4Diff(a, b CPS4Table) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for _, f := range cps4Fields {
		if _, fixed := cps4Fixed[f.key]; fixed {
			continue
		}
		if !bytes.Equal(cps4Value(va.Field(f.index)), cps4Value(vb.Field(f.index))) {
			out = append(out, f.key)
		}
	}
	return out
}

func cloneCPS4(t CPS4Table) CPS4Table {
	t.AppletAID = bytes.Clone(t.AppletAID)
	atrs := make([][]byte, len(t.ATRs))
	for i, a := range t.ATRs {
		atrs[i] = bytes.Clone(a)
	}
	t.ATRs = atrs
	return t
}

// validateCPS4 checks the rows a quirks file can change.
func validateCPS4(t CPS4Table) error {
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: cps4.%s: %s", ErrQuirksFile, key, fmt.Sprintf(format, a...))
	}
	switch {
	case t.CLA&0x80 != 0 || t.CLA&0x1C != 0:
		return bad("cla", "%02X (want an interindustry class without chaining or secure messaging, 00..03)", t.CLA)
	case len(t.AppletAID) < 5 || len(t.AppletAID) > 16:
		return bad("appletAid", "%d bytes (5..16)", len(t.AppletAID))
	case t.SerialSize < 4 || t.SerialSize > 64:
		return bad("serialSize", "%d (4..64)", t.SerialSize)
	case t.ReadChunk < 1 || t.ReadChunk > 256:
		return bad("readChunk", "%d (1..256)", t.ReadChunk)
	case t.PINRef == t.PUKRef:
		return bad("pukRef", "%02X is also the PIN's reference", t.PUKRef)
	case t.PINMaxTries < 1 || t.PINMaxTries > 15 || t.PUKMaxTries < 1 || t.PUKMaxTries > 15:
		return bad("pinMaxTries", "PIN %d, PUK %d (1..15)", t.PINMaxTries, t.PUKMaxTries)
	case t.ModulusBits < 1024 || t.ModulusBits > 4096 || t.ModulusBits%8 != 0:
		return bad("modulusBits", "%d (1024..4096, a multiple of 8)", t.ModulusBits)
	case t.SignKeyRef == t.AuthKeyRef:
		return bad("signKeyRef", "%02X is also authKeyRef", t.SignKeyRef)
	}
	for _, r := range []struct{ key, v string }{{"appDfPath", t.AppDFPath}, {"authCertPath", t.AuthCertPath}, {"signCertPath", t.SignCertPath}} {
		b, err := hex.DecodeString(r.v)
		if err != nil || len(b) < 2 || len(b)%2 != 0 || len(b) > 14 || (b[0] == 0x3F && b[1] == 0x00) {
			return bad(r.key, "%q (want hex file identifiers from the applet root, without 3F00)", r.v)
		}
	}
	return nil
}
