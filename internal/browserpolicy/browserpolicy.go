// Package browserpolicy turns the agent's allowed portal origins into the
// browser policies that let those portals reach the agent on 127.0.0.1
// without the Local Network Access prompt (docs/admin.md §4):
//
//   - Chrome, Chromium, Edge: LoopbackNetworkAllowedForUrls (146+) and
//     LocalNetworkAccessAllowedForUrls (139+/140+), the portal origins;
//   - Firefox: LocalNetworkAccess → SkipDomains, the portal hosts.
//
// It writes them as Linux managed-policy JSON, a Firefox policies.json
// (merged into the existing one), a Windows .reg file and a macOS
// configuration profile, and checks which origins the Linux policy files
// already pre-allow (Check). Origins are validated and normalised with the
// API's own parser (api.ParseAllowedOrigin): what is pre-allowed is exactly
// what the agent lets in.
package browserpolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cpsagent/cpsagent/internal/api"
	"github.com/cpsagent/cpsagent/internal/consent"
)

// Policy names (Chrome, Chromium and Edge share them).
const (
	LoopbackPolicy = "LoopbackNetworkAllowedForUrls"
	LNAPolicy      = "LocalNetworkAccessAllowedForUrls"
)

// Normalize validates origins with api.ParseAllowedOrigin and returns the
// valid ones in canonical form, without duplicates, sorted. err joins the
// errors of the invalid ones (nil when all are valid).
func Normalize(origins []string) ([]string, error) {
	var out []string
	var errs []error
	for _, o := range origins {
		n, err := api.ParseAllowedOrigin(o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), errors.Join(errs...)
}

// Enforced returns the origins the agent allows without asking, as it
// enforces them: the machine policy's allowOrigins, plus the
// configuration's allowOrigins unless the policy forbids user additions
// ("allowUserOrigins": false), minus the policy's denyOrigins. Origins a
// user allowed from the consent dialog are not included: they are per user
// and the dialog already involved the user.
func Enforced(p consent.Policy, config []string) ([]string, error) {
	all := append([]string(nil), p.AllowedOrigins...)
	if p.UserAdditionsAllowed() {
		all = append(all, config...)
	}
	out, err := Normalize(all)
	denied, _ := Normalize(p.DeniedOrigins)
	out = slices.DeleteFunc(out, func(o string) bool { _, found := slices.BinarySearch(denied, o); return found })
	return out, err
}

// host returns the host of a canonical origin, without the port (and
// without the brackets of an IPv6 literal).
func host(origin string) string {
	_, rest, _ := strings.Cut(origin, "://")
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		return rest[1:end]
	}
	h, _, _ := strings.Cut(rest, ":")
	return h
}

// Hosts returns the hosts of origins (Firefox's SkipDomains), without
// duplicates, sorted. Firefox matches a host whatever the scheme and port.
func Hosts(origins []string) []string {
	out := make([]string, 0, len(origins))
	for _, o := range origins {
		out = append(out, host(o))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// prepare normalises origins for an output format: at least one, all valid.
func prepare(origins []string) ([]string, error) {
	out, err := Normalize(origins)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, ErrNoOrigin
	}
	return out, nil
}

// ErrNoOrigin: there is no origin to pre-allow.
var ErrNoOrigin = errors.New("browserpolicy: no allowed origin")

// chromePolicy is the managed-policy file, keys in the documented order.
type chromePolicy struct {
	Loopback []string `json:"LoopbackNetworkAllowedForUrls"`
	LNA      []string `json:"LocalNetworkAccessAllowedForUrls"`
}

// ChromeJSON returns the managed-policy JSON for Chrome, Chromium and Edge
// on Linux (/etc/opt/chrome/policies/managed/cpsagent.json and the like).
func ChromeJSON(origins []string) ([]byte, error) {
	o, err := prepare(origins)
	if err != nil {
		return nil, err
	}
	return marshal(chromePolicy{Loopback: o, LNA: o})
}

type firefoxLNA struct {
	Enabled     bool     `json:"Enabled"`
	SkipDomains []string `json:"SkipDomains"`
}

// FirefoxJSON returns a complete Firefox policies.json with only the
// LocalNetworkAccess policy: {"policies": {"LocalNetworkAccess":
// {"Enabled": true, "SkipDomains": [hosts]}}}. Firefox reads a single
// policies.json: to add it to an existing one, use MergeFirefox.
func FirefoxJSON(origins []string) ([]byte, error) {
	o, err := prepare(origins)
	if err != nil {
		return nil, err
	}
	v := map[string]map[string]firefoxLNA{"policies": {"LocalNetworkAccess": {Enabled: true, SkipDomains: Hosts(o)}}}
	return marshal(v)
}

// marshal is json.MarshalIndent with two spaces, no HTML escaping and a
// final newline.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("browserpolicy: %w", err)
	}
	return b.Bytes(), nil
}
