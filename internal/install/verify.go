package install

import (
	"context"
	"errors"
)

// TrustStatus is the state of one manifest entry, for "cpsagent doctor".
type TrustStatus struct {
	Entry TrustEntry
	// Present: the store still holds the certificate.
	Present bool
	// Current: it is the CA given to VerifyTrust (false after a renewal
	// that was not installed yet).
	Current bool
	// Err is why the store could not be checked.
	Err error
}

// VerifyTrust checks, without changing anything, every trust entry of the
// manifest in o.StateDir against the stores and against o.CA (may be nil).
// It returns ErrNoManifest when "cpsagent install" never ran.
func VerifyTrust(ctx context.Context, o Options) ([]TrustStatus, error) {
	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	m, err := ReadManifest(e.StateDir)
	if err != nil {
		return nil, err
	}
	fp := ""
	if o.CA != nil {
		fp = Fingerprint(o.CA)
	}
	out := make([]TrustStatus, 0, len(m.Trust))
	for _, t := range m.Trust {
		ok, err := e.trustPresent(ctx, t)
		out = append(out, TrustStatus{Entry: t, Present: ok && err == nil, Current: fp == "" || t.SHA256 == fp, Err: err})
	}
	if len(out) == 0 {
		return out, errors.New("install: the manifest lists no trust store")
	}
	return out, nil
}
