package cps

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

// TestShippedQuirksAreDefaults: the embedded quirks.json is DefaultQuirks(),
// names every key, and is what EncodeQuirks writes for the defaults.
func TestShippedQuirksAreDefaults(t *testing.T) {
	q, err := ShippedQuirks()
	if err != nil {
		t.Fatal(err)
	}
	if q != DefaultQuirks() {
		t.Fatalf("quirks.json differs from DefaultQuirks() in %v", DiffQuirks(q, DefaultQuirks()))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(ShippedQuirksJSON(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range QuirksKeys() {
		if _, ok := raw[k]; !ok && k != "cps4" {
			t.Errorf("quirks.json does not name %q", k)
		}
	}
	var comment string
	_ = json.Unmarshal(raw["comment"], &comment)
	enc, err := EncodeQuirks(DefaultQuirks(), comment)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, ShippedQuirksJSON()) {
		t.Fatalf("EncodeQuirks(DefaultQuirks()) is not quirks.json:\n%s\nwant\n%s", enc, ShippedQuirksJSON())
	}
}

// TestQuirksFileCoversQuirks: every Quirks field has a quirks-file key of
// the same name, and changing one key changes exactly that field.
func TestQuirksFileCoversQuirks(t *testing.T) {
	var fields []string
	rt := reflect.TypeFor[Quirks]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		fields = append(fields, name)
	}
	var keys []string
	for _, k := range QuirksKeys() {
		if k != "version" && k != "comment" {
			keys = append(keys, k)
		}
	}
	sort.Strings(fields)
	if !reflect.DeepEqual(fields, keys) {
		t.Fatalf("Quirks fields %v, quirks-file keys %v", fields, keys)
	}
	alt := map[string]string{
		"pinEncoding":         `"bcd"`,
		"pinPadLength":        `8`,
		"pinPadByte":          `"FF"`,
		"verifyP2Pin":         `"81"`,
		"verifyP2Puk":         `"03"`,
		"blockedOn63C0":       `false`,
		"authCertPath":        `"3F000001C001"`,
		"signCertPath":        `"3F000001C002"`,
		"appDfPath":           `"3F000002"`,
		"verifyInMf":          `true`,
		"changeReferenceP1":   `"01"`,
		"selectClearsPin":     `true`,
		"emptyHashTail":       `"cds"`,
		"cps4":                `{"signKeyRef": "81"}`,
		"resetRetryCounterP1": ``, // only 02 is implemented
	}
	for _, k := range keys {
		v, ok := alt[k]
		if !ok {
			t.Errorf("no alternative value for %q in this test", k)
			continue
		}
		if v == "" {
			continue
		}
		q, err := DecodeQuirks([]byte(`{"`+k+`": `+v+`}`), DefaultQuirks())
		if err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		if d := DiffQuirks(DefaultQuirks(), q); !reflect.DeepEqual(d, []string{k}) {
			t.Errorf("%s = %s changes %v", k, v, d)
		}
		// Round trip through the complete file.
		enc, err := EncodeQuirks(q, "")
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeQuirks(enc, Quirks{})
		if err != nil {
			t.Fatalf("%s: %v\n%s", k, err, enc)
		}
		if DiffQuirks(back, q) != nil {
			t.Errorf("%s: round trip changes %v", k, DiffQuirks(back, q))
		}
	}
}

func TestDecodeQuirksStrict(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"unknown key, near miss", `{"pinEncodng": "bcd"}`, `unknown key "pinEncodng" (did you mean "pinEncoding"?)`},
		{"unknown key, case", `{"PINEncoding": "bcd"}`, `did you mean "pinEncoding"`},
		{"unknown key", `{"speed": 1}`, `known keys:`},
		{"duplicate key", `{"pinEncoding": "bcd", "pinEncoding": "ascii"}`, `duplicate key "pinEncoding"`},
		{"null", `{"pinPadByte": null}`, `pinPadByte: null is not a value`},
		{"trailing data", `{"pinEncoding": "bcd"} {}`, `trailing data`},
		{"array", `["pinEncoding"]`, `want a JSON object`},
		{"empty", ``, `empty file`},
		{"truncated", `{"pinEncoding": "bcd"`, `truncated`},
		{"number for a byte", `{"verifyP2Pin": 1}`, `verifyP2Pin: want a byte as two hex digits`},
		{"one hex digit", `{"verifyP2Pin": "1"}`, `"1" is not a byte`},
		{"string for a bool", `{"verifyInMf": "yes"}`, `verifyInMf: want a JSON bool, not a string`},
		{"float length", `{"pinPadLength": 4.5}`, `pinPadLength: want a JSON int`},
		{"version 2", `{"version": 2}`, `version 2`},
		{"encoding", `{"pinEncoding": "utf8"}`, `pinEncoding: "utf8"`},
		{"pad too short", `{"pinPadLength": 3}`, `pinPadLength: 3`},
		{"pad too long", `{"pinPadLength": 17}`, `pinPadLength: 17`},
		{"P2 with class bits", `{"verifyP2Pin": "21"}`, `verifyP2Pin: 21`},
		{"P2 zero", `{"verifyP2Puk": "00"}`, `verifyP2Puk: 00`},
		{"same P2", `{"verifyP2Puk": "01"}`, `also the PIN's reference`},
		{"path not hex", `{"authCertPath": "3F00A0G1"}`, `authCertPath: "3F00A0G1" is not hex`},
		{"path not from MF", `{"signCertPath": "0001A002"}`, `does not start at the MF`},
		{"path MF only", `{"appDfPath": "3F00"}`, `appDfPath`},
		{"path with 3F00 inside", `{"authCertPath": "3F003F00A001"}`, `cannot appear inside a path`},
		{"same certificate paths", `{"signCertPath": "3F000001A001"}`, `also authCertPath`},
		{"reset P1 03", `{"resetRetryCounterP1": "03"}`, `only 02 is implemented`},
		{"change P1 02", `{"changeReferenceP1": "02"}`, `changeReferenceP1: 02`},
		{"empty tail", `{"emptyHashTail": "skip"}`, `emptyHashTail: "skip"`},
		{"cps4 not an object", `{"cps4": "x"}`, `cps4: want a JSON object`},
		{"cps4 unknown", `{"cps4": {"signKey": "81"}}`, `cps4: unknown key "signKey"`},
		{"cps4 atrs", `{"cps4": {"atrs": []}}`, `cps4.atrs cannot be changed`},
		{"cps4 bad byte", `{"cps4": {"signKeyRef": "8"}}`, `cps4.signKeyRef`},
		{"cps4 bad uint16", `{"cps4": {"channelNotSupportedSw": "68"}}`, `4 hex digits`},
		{"cps4 same keys", `{"cps4": {"signKeyRef": "20"}}`, `also authKeyRef`},
		{"cps4 path with MF", `{"cps4": {"authCertPath": "3F000001A001"}}`, `without 3F00`},
		{"cps4 int", `{"cps4": {"readChunk": "E7"}}`, `want a JSON int`},
		{"cps4 null", `{"cps4": {"pinRef": null}}`, `null is not a value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeQuirks([]byte(tc.file), DefaultQuirks())
			if err == nil || !errors.Is(err, ErrQuirksFile) {
				t.Fatalf("accepted, or not a quirks error: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestDecodeQuirksPartial(t *testing.T) {
	base := DefaultQuirks()
	base.VerifyInMF = true
	q, err := DecodeQuirks([]byte(`{"version": 1, "comment": "field report 2026-11, CPS3v3", "pinEncoding": "bcd", "authCertPath": "3f000001c001"}`), base)
	if err != nil {
		t.Fatal(err)
	}
	want := base
	want.PINEncoding, want.AuthCertPath = "bcd", "3F000001C001"
	if q != want {
		t.Fatalf("got %+v, want %+v", q, want)
	}
	// An empty "cps4" object keeps the built-in table (and Quirks comparable).
	q, err = DecodeQuirks([]byte(`{"cps4": {}}`), DefaultQuirks())
	if err != nil || q != DefaultQuirks() {
		t.Fatalf("empty cps4: %+v, %v", q, err)
	}
}

func TestLoadQuirks(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.json")
	q, src, err := LoadQuirks(missing)
	if err != nil || src != "built-in" || q != DefaultQuirks() {
		t.Fatalf("no policy file: %v %q %v", q, src, err)
	}
	if _, err := LoadQuirksFile(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if _, src, err := LoadQuirks(""); err != nil || src != "built-in" {
		t.Fatalf("no path: %q %v", src, err)
	}
	good := filepath.Join(dir, "quirks.json")
	if err := os.WriteFile(good, []byte(`{"pinEncoding": "bcd"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	q, src, err = LoadQuirks(good)
	if err != nil || src != good || q.PINEncoding != "bcd" || q.VerifyP2PIN != 0x01 {
		t.Fatalf("policy file: %+v %q %v", q, src, err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"pinEncoding": "ebcdic"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadQuirks(bad); err == nil || !strings.Contains(err.Error(), bad) || !errors.Is(err, ErrQuirksFile) {
		t.Fatalf("invalid policy file: %v", err)
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, append([]byte(`{"comment": "`), bytes.Repeat([]byte("x"), maxQuirksFile)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadQuirksFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("big file: %v", err)
	}
	if err := os.WriteFile(bad, []byte(`{"version": 1}`), 0o000); err == nil && os.Geteuid() != 0 {
		if _, _, err := LoadQuirks(bad); err == nil {
			t.Fatal("unreadable file accepted")
		}
	}
}

func TestQuirkHints(t *testing.T) {
	st := func(sw uint16) error { return &apdu.StatusError{SW: sw} }
	err := hintPINFormat(st(apdu.SWWrongData), "VERIFY")
	var qe *QuirkError
	if !errors.As(err, &qe) || !errors.Is(err, ErrQuirkMismatch) || !errors.Is(err, apdu.ErrWrongData) ||
		!reflect.DeepEqual(qe.Keys, keysPINFormat) || !strings.Contains(err.Error(), "6A 80 to VERIFY") {
		t.Fatalf("hint: %v", err)
	}
	if err := quirkHint(st(apdu.SWSecurityStatus), "X", []string{"k"}, apdu.SWWrongData); errors.Is(err, ErrQuirkMismatch) {
		t.Fatalf("other status hinted: %v", err)
	}
	if err := quirkHint(errors.New("reader gone"), "X", []string{"k"}, apdu.SWWrongData); errors.Is(err, ErrQuirkMismatch) {
		t.Fatalf("transport error hinted: %v", err)
	}
	var again *QuirkError
	if err := quirkHint(hintPINFormat(st(apdu.SWWrongData), "VERIFY"), "Y", []string{"other"}, apdu.SWWrongData); !errors.As(err, &again) ||
		!reflect.DeepEqual(again.Keys, keysPINFormat) || strings.Count(err.Error(), "may not match") != 1 {
		t.Fatalf("hinted twice: %v", err)
	}
	if checkCertRole([]byte("not DER"), RoleAuthentication, "3F00", nil) != nil {
		t.Fatal("a non-certificate is left to the caller")
	}
}

func FuzzDecodeQuirks(f *testing.F) {
	f.Add(ShippedQuirksJSON())
	f.Add([]byte(`{"pinEncoding": "bcd", "pinPadLength": 8, "pinPadByte": "FF"}`))
	f.Add([]byte(`{"cps4": {"signKeyRef": "81", "appletAid": "8025000001FF0100"}}`))
	f.Add([]byte(`{"a": {"b": [1, {"c": null}]}}`))
	f.Add([]byte(`{"verifyP2Pin": "81", "verifyP2Puk": "82", "version": 1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := DecodeQuirks(data, DefaultQuirks())
		if err != nil {
			return
		}
		if err := q.Validate(); err != nil {
			t.Fatalf("decoded quirks do not validate: %v", err)
		}
		enc, err := EncodeQuirks(q, "")
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeQuirks(enc, Quirks{})
		if err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if d := DiffQuirks(q, back); d != nil {
			t.Fatalf("round trip changes %v", d)
		}
	})
}
