package virtual

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/cpsagent/cpsagent/internal/atomicfile"
)

// The state file keeps a card across runs: its identity (serial, keys,
// certificates) and its secrets and counters, so a card blocked in one run
// is still blocked in the next, and `cpsagent vcard --state FILE` does not
// generate keys again. It holds private keys and codes of a *test* card and
// is written with mode 0600, atomically (temporary file, fsync, rename).

const stateVersion = 1

var errNoState = errors.New("virtual: no state file")

// ErrState reports an unreadable or inconsistent state file.
var ErrState = errors.New("virtual: bad state file")

type savedCHV struct {
	Value     string `json:"value"`
	TriesLeft int    `json:"triesLeft"`
	UsesLeft  *int   `json:"usesLeft,omitempty"`
}

type savedState struct {
	Version      int      `json:"version"`
	Holder       string   `json:"holder,omitempty"`
	Serial       string   `json:"serial"`
	Label        string   `json:"label,omitempty"`
	Manufacturer string   `json:"manufacturer,omitempty"`
	PIN          savedCHV `json:"pin"`
	PUK          savedCHV `json:"puk"`
	SignKey      []byte   `json:"signKeyPkcs8,omitempty"`
	AuthKey      []byte   `json:"authKeyPkcs8,omitempty"`
	SignCert     []byte   `json:"signCert,omitempty"`
	AuthCert     []byte   `json:"authCert,omitempty"`
}

type stateFile struct{ path string }

func loadState(path string) (*savedState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoState
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrState, err)
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrState, path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%w: %s: version %d (want %d)", ErrState, path, st.Version, stateVersion)
	}
	return &st, nil
}

// StateHasIdentity reports whether path is a state file that already holds
// a card identity (keys and certificates), so no identity needs generating.
func StateHasIdentity(path string) bool {
	st, err := loadState(path)
	return err == nil && len(st.SignKey) > 0 && len(st.AuthKey) > 0 && len(st.SignCert) > 0 && len(st.AuthCert) > 0
}

// apply overrides cfg with what the file holds.
func (st *savedState) apply(cfg Config) (Config, error) {
	parse := func(der []byte) (*rsa.PrivateKey, error) {
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrState, err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: key is not RSA", ErrState)
		}
		return rk, nil
	}
	var err error
	if len(st.SignKey) > 0 {
		if cfg.SignKey, err = parse(st.SignKey); err != nil {
			return cfg, err
		}
	}
	if len(st.AuthKey) > 0 {
		if cfg.AuthKey, err = parse(st.AuthKey); err != nil {
			return cfg, err
		}
	}
	if len(st.SignCert) > 0 {
		cfg.SignCert = st.SignCert
	}
	if len(st.AuthCert) > 0 {
		cfg.AuthCert = st.AuthCert
	}
	if st.Serial != "" {
		cfg.Serial = st.Serial
	}
	if st.Label != "" {
		cfg.Label = st.Label
	}
	if st.Manufacturer != "" {
		cfg.Manufacturer = st.Manufacturer
	}
	if st.Holder != "" {
		cfg.Holder = st.Holder
	}
	if st.PIN.Value != "" {
		cfg.PIN = st.PIN.Value
	}
	if st.PUK.Value != "" {
		cfg.PUK = st.PUK.Value
	}
	return cfg, nil
}

func (st *savedState) applyCounters(pin, puk *chv) {
	clamp := func(v, hi int) int { return min(max(v, 0), hi) }
	pin.tries = clamp(st.PIN.TriesLeft, pin.maxTries)
	puk.tries = clamp(st.PUK.TriesLeft, puk.maxTries)
	if st.PUK.UsesLeft != nil {
		puk.uses = clamp(*st.PUK.UsesLeft, puk.maxUses)
	}
}

// persist writes the card's state; the caller holds c.mu (or owns c).
func (c *Card) persist() error {
	if c.state == nil {
		return nil
	}
	signKey, err := x509.MarshalPKCS8PrivateKey(c.cfg.SignKey)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	authKey, err := x509.MarshalPKCS8PrivateKey(c.cfg.AuthKey)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	uses := c.puk.uses
	st := savedState{
		Version: stateVersion, Holder: c.cfg.Holder, Serial: c.cfg.Serial,
		Label: c.cfg.Label, Manufacturer: c.cfg.Manufacturer,
		PIN:     savedCHV{Value: c.pin.value, TriesLeft: c.pin.tries},
		PUK:     savedCHV{Value: c.puk.value, TriesLeft: c.puk.tries, UsesLeft: &uses},
		SignKey: signKey, AuthKey: authKey, SignCert: c.cfg.SignCert, AuthCert: c.cfg.AuthCert,
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	if err := atomicfile.WriteFile(c.state.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	return nil
}

// persistQuiet persists after a counter change. A write failure does not
// change the card's answer (the counters stay right in memory); it is
// recorded for StateError and the trace.
func (c *Card) persistQuiet() {
	if err := c.persist(); err != nil {
		c.stateError = err
		c.traceEvent("state file write failed")
	}
}

// StateError returns the last failure to write the state file, if any.
func (c *Card) StateError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stateError
}
