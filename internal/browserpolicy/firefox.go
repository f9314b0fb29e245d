package browserpolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrMalformed is returned for an existing Firefox policies.json that
// cannot be merged safely (not JSON, or a policy of an unexpected type);
// the file must then be left as it is.
var ErrMalformed = errors.New("browserpolicy: malformed Firefox policies.json")

// MergeFirefox adds the hosts of origins to the LocalNetworkAccess →
// SkipDomains policy of an existing Firefox policies.json (existing may be
// empty: no file yet). Every other policy, every other key of
// LocalNetworkAccess and every SkipDomains entry already there is kept
// (existing entries first, in their order, then the new hosts sorted);
// "Enabled" is set to true only when absent (an administrator's false is
// kept). A host already covered (same name, or a "*.parent" entry) is not
// added again. When nothing needs to change, MergeFirefox returns existing
// unchanged and changed == false, so a second run never rewrites the file.
// A file it cannot understand gives an error wrapping ErrMalformed.
func MergeFirefox(existing []byte, origins []string) (out []byte, changed bool, err error) {
	o, err := prepare(origins)
	if err != nil {
		return nil, false, err
	}
	body := bytes.TrimPrefix(existing, []byte("\xef\xbb\xbf"))
	top := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeObject(body, &top); err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	policies := map[string]json.RawMessage{}
	if raw, ok := top["policies"]; ok {
		if err := decodeObject(raw, &policies); err != nil {
			return nil, false, fmt.Errorf("%w: \"policies\": %w", ErrMalformed, err)
		}
	}
	lna := map[string]json.RawMessage{}
	if raw, ok := policies["LocalNetworkAccess"]; ok {
		if err := decodeObject(raw, &lna); err != nil {
			return nil, false, fmt.Errorf("%w: \"LocalNetworkAccess\": %w", ErrMalformed, err)
		}
	}
	var skip []string
	if raw, ok := lna["SkipDomains"]; ok {
		if !startsWith(raw, '[') || json.Unmarshal(raw, &skip) != nil {
			return nil, false, fmt.Errorf("%w: \"SkipDomains\" is not a list of strings", ErrMalformed)
		}
	}
	if raw, ok := lna["Enabled"]; ok {
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			return nil, false, fmt.Errorf("%w: \"LocalNetworkAccess\".\"Enabled\" is not true or false", ErrMalformed)
		}
	}
	var missing []string
	for _, h := range Hosts(o) {
		if !firefoxCovers(skip, h) {
			missing = append(missing, h)
		}
	}
	_, hasEnabled := lna["Enabled"]
	if len(missing) == 0 && hasEnabled {
		return existing, false, nil
	}
	if !hasEnabled {
		lna["Enabled"] = json.RawMessage("true")
	}
	if skip == nil {
		skip = []string{}
	}
	if lna["SkipDomains"], err = json.Marshal(append(skip, missing...)); err != nil {
		return nil, false, err
	}
	if policies["LocalNetworkAccess"], err = json.Marshal(lna); err != nil {
		return nil, false, err
	}
	if top["policies"], err = json.Marshal(policies); err != nil {
		return nil, false, err
	}
	out, err = marshal(top)
	return out, err == nil, err
}

// decodeObject decodes one JSON object (and nothing after it) into m.
func decodeObject(data []byte, m *map[string]json.RawMessage) error {
	if !startsWith(data, '{') {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(m); err != nil {
		return err
	}
	if len(bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")) > 0 {
		return errors.New("data after the JSON object")
	}
	return nil
}

func startsWith(data []byte, c byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && t[0] == c
}

// firefoxCovers reports whether a SkipDomains list covers host: the same
// name (case-insensitive, a final dot ignored), or a "*.parent" entry with
// host under parent.
func firefoxCovers(skip []string, host string) bool {
	for _, s := range skip {
		s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
		if s == host || s == "*" {
			return true
		}
		if parent, ok := strings.CutPrefix(s, "*."); ok && strings.HasSuffix(host, "."+parent) {
			return true
		}
	}
	return false
}

// firefoxAllowed returns the origins of want that policies.json data
// pre-allows. With "Enabled": false, Local Network Access is off and every
// origin passes. Keys are matched exactly, as Firefox reads them (JSON
// objects in JavaScript): "Policies" is not "policies".
func firefoxAllowed(data []byte, want []string) ([]string, error) {
	top := map[string]json.RawMessage{}
	if err := decodeObject(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), &top); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	policies := map[string]json.RawMessage{}
	if raw, ok := top["policies"]; ok {
		if err := decodeObject(raw, &policies); err != nil {
			return nil, fmt.Errorf("%w: \"policies\": %w", ErrMalformed, err)
		}
	}
	raw, ok := policies["LocalNetworkAccess"]
	if !ok {
		return nil, nil
	}
	lna := map[string]json.RawMessage{}
	if err := decodeObject(raw, &lna); err != nil {
		return nil, fmt.Errorf("%w: \"LocalNetworkAccess\": %w", ErrMalformed, err)
	}
	if raw, ok := lna["Enabled"]; ok {
		var enabled bool
		if json.Unmarshal(raw, &enabled) != nil {
			return nil, fmt.Errorf("%w: \"LocalNetworkAccess\".\"Enabled\" is not true or false", ErrMalformed)
		}
		if !enabled {
			return slices.Clone(want), nil
		}
	}
	var skip []string
	if raw, ok := lna["SkipDomains"]; ok {
		if !startsWith(raw, '[') || json.Unmarshal(raw, &skip) != nil {
			return nil, fmt.Errorf("%w: \"SkipDomains\" is not a list of strings", ErrMalformed)
		}
	}
	var allowed []string
	for _, o := range want {
		if firefoxCovers(skip, host(o)) {
			allowed = append(allowed, o)
		}
	}
	return allowed, nil
}
