package browserpolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
)

// decode is the generic form of a JSON document, to compare policies.
func decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return v
}

func lnaOf(t testing.TB, b []byte) map[string]any {
	t.Helper()
	return decode(t, b)["policies"].(map[string]any)["LocalNetworkAccess"].(map[string]any)
}

func TestMergeFirefox(t *testing.T) {
	origins := []string{"https://www.dmp.fr", "https://portail.exemple-ght.fr:8443", "https://portail.exemple-ght.fr"}
	for _, tt := range []struct {
		name, in string
		enabled  any
		skip     []any
		keep     []string // other policies that must come out identical
	}{
		{name: "no file", in: "", enabled: true, skip: []any{"portail.exemple-ght.fr", "www.dmp.fr"}},
		{name: "empty object", in: "{}", enabled: true, skip: []any{"portail.exemple-ght.fr", "www.dmp.fr"}},
		{name: "other policies", in: `{"policies": {"Certificates": {"ImportEnterpriseRoots": true},
			"DisableTelemetry": true, "Preferences": {"x": {"Value": 12345678901234567890, "Status": "locked"}}}}`,
			enabled: true, skip: []any{"portail.exemple-ght.fr", "www.dmp.fr"}, keep: []string{"Certificates", "DisableTelemetry", "Preferences"}},
		{name: "other SkipDomains kept first", in: `{"policies": {"LocalNetworkAccess": {"SkipDomains": ["nas.local", "www.dmp.fr"], "BlockTrackers": true}}}`,
			enabled: true, skip: []any{"nas.local", "www.dmp.fr", "portail.exemple-ght.fr"}},
		{name: "administrator's Enabled false kept", in: `{"policies": {"LocalNetworkAccess": {"Enabled": false}}}`,
			enabled: false, skip: []any{"portail.exemple-ght.fr", "www.dmp.fr"}},
		{name: "wildcard covers", in: `{"policies": {"LocalNetworkAccess": {"Enabled": true, "SkipDomains": ["*.exemple-ght.fr"]}}}`,
			enabled: true, skip: []any{"*.exemple-ght.fr", "www.dmp.fr"}},
		{name: "UTF-8 BOM", in: "\ufeff{\"policies\": {}}", enabled: true, skip: []any{"portail.exemple-ght.fr", "www.dmp.fr"}},
		{name: "top-level keys kept", in: `{"policies": {}, "comment": "managed by IT"}`, enabled: true, skip: []any{"portail.exemple-ght.fr", "www.dmp.fr"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, changed, err := MergeFirefox([]byte(tt.in), origins)
			if err != nil || !changed {
				t.Fatalf("changed=%v err=%v", changed, err)
			}
			lna := lnaOf(t, out)
			if lna["Enabled"] != tt.enabled || !reflect.DeepEqual(lna["SkipDomains"], tt.skip) {
				t.Fatalf("LocalNetworkAccess = %v, want Enabled %v SkipDomains %v", lna, tt.enabled, tt.skip)
			}
			if tt.in != "" && bytes.Contains([]byte(tt.in), []byte("BlockTrackers")) && lna["BlockTrackers"] != true {
				t.Error("BlockTrackers lost")
			}
			if bytes.Contains([]byte(tt.in), []byte(`"comment"`)) && decode(t, out)["comment"] != "managed by IT" {
				t.Error("top-level key lost")
			}
			if len(tt.keep) > 0 {
				inPol := decode(t, []byte(tt.in))["policies"].(map[string]any)
				outPol := decode(t, out)["policies"].(map[string]any)
				for _, k := range tt.keep {
					if !reflect.DeepEqual(inPol[k], outPol[k]) {
						t.Errorf("%s changed: %v → %v", k, inPol[k], outPol[k])
					}
				}
				if !bytes.Contains(out, []byte("12345678901234567890")) {
					t.Error("a large number was not kept as written")
				}
			}
			// idempotent: a second run changes nothing, byte for byte
			again, changed, err := MergeFirefox(out, origins)
			if err != nil || changed || !bytes.Equal(again, out) {
				t.Fatalf("second run: changed=%v err=%v\n%s", changed, err, again)
			}
		})
	}
}

func TestMergeFirefoxUnchangedKeepsBytes(t *testing.T) {
	in := []byte("{ \"policies\": { \"LocalNetworkAccess\": { \"Enabled\": true, \"SkipDomains\": [\"WWW.DMP.FR\"] } } }")
	out, changed, err := MergeFirefox(in, []string{"https://www.dmp.fr"})
	if err != nil || changed || !bytes.Equal(out, in) {
		t.Fatalf("changed=%v err=%v out=%s", changed, err, out)
	}
}

func TestMergeFirefoxRefusesMalformed(t *testing.T) {
	for _, in := range []string{
		`{"policies": {`,
		`[]`,
		`null`,
		`"policies"`,
		`{"policies": []}`,
		`{"policies": null}`,
		`{"policies": {"LocalNetworkAccess": true}}`,
		`{"policies": {"LocalNetworkAccess": {"SkipDomains": "www.dmp.fr"}}}`,
		`{"policies": {"LocalNetworkAccess": {"SkipDomains": [1, 2]}}}`,
		`{"policies": {"LocalNetworkAccess": {"SkipDomains": null}}}`,
		`{"policies": {"LocalNetworkAccess": {"Enabled": "yes"}}}`,
		`{"policies": {}} {"policies": {}}`,
		`{"policies": {},}`,
		`{}A`,
		"\xff\xfe{\x00}\x00",
	} {
		out, changed, err := MergeFirefox([]byte(in), []string{"https://www.dmp.fr"})
		if !errors.Is(err, ErrMalformed) || changed || out != nil {
			t.Errorf("MergeFirefox(%q) = %q, %v, %v: want ErrMalformed", in, out, changed, err)
		}
	}
	if _, _, err := MergeFirefox(nil, nil); !errors.Is(err, ErrNoOrigin) {
		t.Errorf("no origin: %v", err)
	}
}

// FuzzMergeFirefox: whatever the existing file, MergeFirefox either refuses
// it or returns valid JSON that keeps every other top-level key and policy,
// pre-allows every host, and is a fixed point (a second run changes
// nothing).
func FuzzMergeFirefox(f *testing.F) {
	for _, s := range []string{
		"", "{}", `{"policies":{}}`, `{"policies":{"LocalNetworkAccess":{"Enabled":false,"SkipDomains":["a.fr","*.b.fr"]}}}`,
		`{"policies":{"Certificates":{"ImportEnterpriseRoots":true}},"x":[1,2,{"y":null}]}`,
		`{"policies":{"LocalNetworkAccess":{"SkipDomains":[]}}}`, `{"policies":{"LocalNetworkAccess":{"SkipDomains":["WWW.DMP.FR."]}}}`,
		`[1]`, `{"policies":{"policies":{}}}`, "\ufeff{}",
	} {
		f.Add([]byte(s))
	}
	origins := []string{"https://www.dmp.fr", "https://portail.exemple-ght.fr:8443", "https://x.b.fr"}
	hosts := Hosts(mustNormalize(f, origins))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, changed, err := MergeFirefox(in, origins)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || out != nil || changed {
				t.Fatalf("error %v with output %q changed=%v", err, out, changed)
			}
			return
		}
		if !changed && !bytes.Equal(out, in) {
			t.Fatal("unchanged but different bytes")
		}
		var before, after map[string]any
		if !json.Valid(out) || decodeNumbers(out, &after) != nil {
			t.Fatalf("output is not a JSON object: %q", out)
		}
		if len(bytes.TrimSpace(bytes.TrimPrefix(in, []byte("\ufeff")))) > 0 {
			if err := decodeNumbers(bytes.TrimPrefix(in, []byte("\ufeff")), &before); err != nil {
				t.Fatalf("accepted input Go cannot decode: %v", err)
			}
		}
		for k, v := range before {
			if k == "policies" {
				continue
			}
			if !reflect.DeepEqual(after[k], v) {
				t.Fatalf("top-level %q changed", k)
			}
		}
		if bp, ok := before["policies"].(map[string]any); ok {
			ap := after["policies"].(map[string]any)
			for k, v := range bp {
				if k != "LocalNetworkAccess" && !reflect.DeepEqual(ap[k], v) {
					t.Fatalf("policy %q changed", k)
				}
			}
		}
		allowed, err := firefoxAllowed(out, mustNormalize(t, origins))
		if err != nil {
			t.Fatalf("merged file unreadable: %v", err)
		}
		if len(allowed) != len(origins) {
			t.Fatalf("merged file pre-allows %q only (hosts %q)", allowed, hosts)
		}
		again, changed2, err := MergeFirefox(out, origins)
		if err != nil || changed2 || !bytes.Equal(again, out) {
			t.Fatalf("not a fixed point: changed=%v err=%v", changed2, err)
		}
		if prev, ok := lnaSkip(before); ok {
			now, _ := lnaSkip(after)
			if !slices.Equal(now[:len(prev)], prev) {
				t.Fatalf("existing SkipDomains reordered or lost: %q → %q", prev, now)
			}
		}
	})
}

func mustNormalize(t testing.TB, o []string) []string {
	n, err := Normalize(o)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// lnaSkip returns policies.LocalNetworkAccess.SkipDomains of a decoded file.
func lnaSkip(v map[string]any) ([]any, bool) {
	p, _ := v["policies"].(map[string]any)
	l, _ := p["LocalNetworkAccess"].(map[string]any)
	s, ok := l["SkipDomains"].([]any)
	return s, ok
}

// decodeNumbers decodes JSON keeping numbers as written (json.Number): an
// administrator's 1E1000 is valid JSON that float64 cannot hold, and the
// merge must keep it as it is.
func decodeNumbers(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}
