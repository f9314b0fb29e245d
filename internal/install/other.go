//go:build !linux && !darwin && !windows

package install

import (
	"context"
	"crypto/x509"
	"errors"
)

// Other systems (the BSDs): not supported yet. The Linux NSS code would
// mostly apply; it is not enabled without a machine to test it on.

var errUnsupportedOS = errors.New("install: not supported on this operating system")

func (e *env) trustTargets() []trustTarget { return nil }
func (e *env) addTrust(context.Context, trustTarget, *x509.Certificate) (*TrustEntry, error) {
	return nil, errUnsupportedOS
}
func (e *env) trustPresent(context.Context, TrustEntry) (bool, error) { return false, errUnsupportedOS }
func (e *env) removeTrust(context.Context, TrustEntry) error          { return errUnsupportedOS }
func (e *env) installAutostart(_ context.Context, ex []AutostartEntry) ([]AutostartEntry, error) {
	return ex, errUnsupportedOS
}
func (e *env) removeAutostart(_ context.Context, ex []AutostartEntry) ([]AutostartEntry, error) {
	return ex, errUnsupportedOS
}
func (e *env) optOut() error { return nil }
func (e *env) clearOptOut()  {}
