package consent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// Policy is the machine-wide policy an administrator ships, read-only for
// users. Its location per OS is given by DefaultPolicyPath (and documented
// in docs/admin.md):
//
//	Linux, BSD  /etc/cpsagent/policy.json
//	Windows     %ProgramData%\cpsagent\policy.json
//	macOS       /Library/Application Support/cpsagent/policy.json
//
// Example:
//
//	{
//	  "allowOrigins": ["https://portail.example.fr"],
//	  "denyOrigins": ["https://ancien-portail.example.fr"],
//	  "allowUserOrigins": false
//	}
//
// (the key names follow config.json's "allowOrigins"). The policy beats the
// user: a denied origin is refused without a dialog even if the user or the
// user's configuration allowed it; with "allowUserOrigins": false only the
// policy's allowOrigins may use the agent: the user's configuration
// allow-list and "always" list are ignored and no consent dialog is ever
// shown. Unknown keys make the file unusable (fail-closed), so that a typo
// never opens the machine.
type Policy struct {
	AllowedOrigins []string `json:"allowOrigins,omitempty"`
	DeniedOrigins  []string `json:"denyOrigins,omitempty"`
	// AllowUserAdditions ("allowUserOrigins"): absent or true lets the user
	// (consent dialog, configuration file, --allow-origin) allow more
	// origins.
	AllowUserAdditions *bool `json:"allowUserOrigins,omitempty"`

	// Path is the file it was read from ("" when there is none).
	Path string `json:"-"`
	// Present tells whether a policy file was found.
	Present bool `json:"-"`
}

// UserAdditionsAllowed reports whether users may allow origins themselves.
func (p Policy) UserAdditionsAllowed() bool {
	return p.AllowUserAdditions == nil || *p.AllowUserAdditions
}

// ErrBadPolicy is returned by LoadPolicy for a policy file that exists but
// cannot be used.
var ErrBadPolicy = errors.New("consent: machine policy unusable")

// maxPolicySize bounds the policy file.
const maxPolicySize = 1 << 20

// LoadPolicy reads the machine policy at path. A missing file is no policy
// (zero Policy, nil error). A file that exists but is unreadable, too large,
// not valid JSON, has unknown fields (a typo must not silently open the
// machine) or an invalid origin gives ErrBadPolicy together with a
// fail-closed Policy (no origin allowed, no user additions): callers should
// use the returned Policy anyway and report the error (cpsagent doctor does).
func LoadPolicy(path string) (Policy, error) {
	p := Policy{Path: path}
	if path == "" {
		return p, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	failClosed := Policy{Path: path, Present: true, AllowUserAdditions: new(bool)}
	if err != nil {
		return failClosed, fmt.Errorf("%w: %w", ErrBadPolicy, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPolicySize+1))
	if err != nil {
		return failClosed, fmt.Errorf("%w: %w", ErrBadPolicy, err)
	}
	if len(data) > maxPolicySize {
		return failClosed, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadPolicy, path, maxPolicySize)
	}
	parsed, err := ParsePolicy(data)
	if err != nil {
		return failClosed, fmt.Errorf("%w: %s: %w", ErrBadPolicy, path, err)
	}
	parsed.Path, parsed.Present = path, true
	return parsed, nil
}

// ParsePolicy parses the JSON of a policy file strictly and normalises its
// origins.
func ParsePolicy(data []byte) (Policy, error) {
	var p Policy
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Policy{}, err
	}
	if dec.More() {
		return Policy{}, errors.New("trailing data after the JSON object")
	}
	var err error
	if p.AllowedOrigins, err = normalizeAll(p.AllowedOrigins); err != nil {
		return Policy{}, fmt.Errorf("allowOrigins: %w", err)
	}
	if p.DeniedOrigins, err = normalizeAll(p.DeniedOrigins); err != nil {
		return Policy{}, fmt.Errorf("denyOrigins: %w", err)
	}
	return p, nil
}

func normalizeAll(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	for _, s := range in {
		n, err := NormalizeOrigin(s)
		if err != nil {
			return nil, err
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}
