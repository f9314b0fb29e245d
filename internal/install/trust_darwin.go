package install

import (
	"context"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"strings"
)

// macOS (not tested here: building and testing the macOS agent needs a
// Mac). The CA goes in the login keychain with a user trust setting
// ("security add-trusted-cert -r trustRoot", which asks for the user's
// password in a dialog), or in the System keychain with an admin trust
// setting (-d) with System, through sudo as mkcert does. Safari, Chrome and
// Edge use these; Firefox 120+ trusts roots added there.

func (e *env) loginKeychain() string {
	return filepath.Join(e.home, "Library", "Keychains", "login.keychain-db")
}

const systemKeychain = "/Library/Keychains/System.keychain"

func (e *env) trustTargets() []trustTarget {
	t := []trustTarget{{store: StoreMacLogin, location: e.loginKeychain()}}
	if e.System {
		t = append(t, trustTarget{store: StoreMacSystem, location: systemKeychain})
	}
	return t
}

func (e *env) addTrust(ctx context.Context, tg trustTarget, ca *x509.Certificate) (*TrustEntry, error) {
	pemFile, cleanup, err := e.tempPEM(ca)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	switch tg.store {
	case StoreMacLogin:
		_, err = run(ctx, "security", "add-trusted-cert", "-r", "trustRoot", "-k", tg.location, pemFile)
	case StoreMacSystem:
		err = e.privileged(ctx, "security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", tg.location, pemFile)
	default:
		return nil, fmt.Errorf("install: unknown store %q", tg.store)
	}
	if err != nil {
		return nil, fmt.Errorf("install: adding the CA to %s: %w", tg.location, err)
	}
	return &TrustEntry{Store: tg.store, Location: tg.location, SHA256: Fingerprint(ca)}, nil
}

// trustPresent looks the certificate up by its SHA-256 hash
// ("security find-certificate -a -Z" prints SHA-256 and SHA-1 hashes).
func (e *env) trustPresent(ctx context.Context, t TrustEntry) (bool, error) {
	out, err := run(ctx, "security", "find-certificate", "-a", "-Z", t.Location)
	if err != nil {
		return false, nil
	}
	return strings.Contains(strings.ToUpper(string(out)), strings.ToUpper(t.SHA256)), nil
}

// removeTrust deletes the certificate and its trust setting (-t) by hash.
func (e *env) removeTrust(ctx context.Context, t TrustEntry) error {
	sha1hash, err := e.sha1Of(ctx, t)
	if err != nil || sha1hash == "" {
		return err
	}
	switch t.Store {
	case StoreMacLogin:
		_, err = run(ctx, "security", "delete-certificate", "-Z", sha1hash, "-t", t.Location)
	case StoreMacSystem:
		err = e.privileged(ctx, "security", "delete-certificate", "-Z", sha1hash, "-t", t.Location)
	default:
		return fmt.Errorf("install: unknown store %q in the manifest", t.Store)
	}
	if err != nil {
		return fmt.Errorf("install: removing the CA from %s: %w", t.Location, err)
	}
	return nil
}

// sha1Of finds the SHA-1 hash "security" wants for the certificate whose
// SHA-256 hash the manifest holds ("" when it is gone).
func (e *env) sha1Of(ctx context.Context, t TrustEntry) (string, error) {
	out, err := run(ctx, "security", "find-certificate", "-a", "-Z", t.Location)
	if err != nil {
		return "", nil
	}
	// Each certificate is a block starting with "SHA-256 hash: …" then
	// "SHA-1 hash: …" (either order is accepted).
	var sha256hash, sha1hash string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "SHA-256 hash: "); ok {
			sha256hash = v
		} else if v, ok := strings.CutPrefix(line, "SHA-1 hash: "); ok {
			sha1hash = v
		} else if strings.HasPrefix(line, "keychain: ") {
			sha256hash, sha1hash = "", ""
		}
		if sha1hash != "" && strings.EqualFold(sha256hash, t.SHA256) {
			return sha1hash, nil
		}
	}
	return "", nil
}
