package install

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// Chromium's NSS shared DB: ~/.pki/nssdb until M145; from M146 the
// default is ~/.local/share/pki/nssdb, but an existing ~/.pki/nssdb still
// wins (chromium docs/linux/cert_management.md). Rules:
//   - both exist: the CA goes in both;
//   - one exists: only there (creating ~/.pki/nssdb next to a new-style DB
//     would hide that DB, and the user's client certificates, from Chromium);
//   - none: both are created, so that old and new Chromium both find it.
func (e *env) chromiumTargets() []trustTarget {
	legacy := filepath.Join(e.home, ".pki", "nssdb")
	modern := filepath.Join(e.home, ".local", "share", "pki", "nssdb")
	hasL, hasM := nssHasDB(legacy), nssHasDB(modern)
	var t []trustTarget
	switch {
	case hasL && hasM:
		t = append(t, trustTarget{StoreNSS, legacy, false}, trustTarget{StoreNSS, modern, false})
	case hasL:
		t = append(t, trustTarget{StoreNSS, legacy, false})
	case hasM:
		t = append(t, trustTarget{StoreNSS, modern, false})
	default:
		t = append(t, trustTarget{StoreNSS, legacy, true}, trustTarget{StoreNSS, modern, true})
	}
	// Sandboxed Chromium builds keep their own copy; used when present.
	for _, p := range []string{
		"snap/chromium/current/.pki/nssdb",
		"snap/chromium/current/.local/share/pki/nssdb",
		".var/app/org.chromium.Chromium/.pki/nssdb",
		".var/app/org.chromium.Chromium/.local/share/pki/nssdb",
		".var/app/com.google.Chrome/.pki/nssdb",
		".var/app/com.google.Chrome/.local/share/pki/nssdb",
		".var/app/com.microsoft.Edge/.pki/nssdb",
		".var/app/com.microsoft.Edge/.local/share/pki/nssdb",
	} {
		if d := filepath.Join(e.home, p); nssHasDB(d) {
			t = append(t, trustTarget{StoreNSS, d, false})
		}
	}
	return t
}

// firefoxProfileRoots are the directories holding Firefox profiles
// (classic, snap, Flatpak, XDG layout).
var firefoxProfileRoots = []string{
	".mozilla/firefox",
	"snap/firefox/common/.mozilla/firefox",
	".var/app/org.mozilla.firefox/.mozilla/firefox",
	".config/mozilla/firefox",
}

// firefoxTargets lists every profile: one with cert9.db is a target; one
// without (never started) is reported as skipped by nssAdd.
func (e *env) firefoxTargets() []trustTarget {
	var t []trustTarget
	for _, root := range firefoxProfileRoots {
		for _, d := range globDirs(filepath.Join(e.home, root, "*")) {
			if nssHasDB(d) || exists(filepath.Join(d, "prefs.js")) || exists(filepath.Join(d, "times.json")) {
				t = append(t, trustTarget{StoreNSS, d, false})
			}
		}
	}
	return t
}

// systemTarget is the distribution's anchor directory.
func (e *env) systemTarget() (trustTarget, bool) {
	switch {
	case exists(e.sys("/usr/local/share/ca-certificates")):
		return trustTarget{store: StoreSystemDebian, location: e.sys("/usr/local/share/ca-certificates")}, true
	case exists(e.sys("/etc/pki/ca-trust/source/anchors")):
		return trustTarget{store: StoreSystemFedora, location: e.sys("/etc/pki/ca-trust/source/anchors")}, true
	case exists(e.sys("/etc/ca-certificates/trust-source/anchors")): // Arch
		return trustTarget{store: StoreSystemFedora, location: e.sys("/etc/ca-certificates/trust-source/anchors")}, true
	}
	return trustTarget{}, false
}

func (e *env) trustTargets() []trustTarget {
	t := append(e.chromiumTargets(), e.firefoxTargets()...)
	if e.System {
		if st, ok := e.systemTarget(); ok {
			t = append(t, st)
		} else {
			e.skipped("system store: no known anchor directory (update-ca-certificates or update-ca-trust)")
		}
	}
	return t
}

func (e *env) addTrust(ctx context.Context, tg trustTarget, ca *x509.Certificate) (*TrustEntry, error) {
	switch tg.store {
	case StoreNSS:
		return e.nssAdd(ctx, tg, ca)
	case StoreSystemDebian, StoreSystemFedora:
		return e.systemAdd(ctx, tg, ca)
	}
	return nil, fmt.Errorf("install: unknown store %q", tg.store)
}

func (e *env) trustPresent(ctx context.Context, t TrustEntry) (bool, error) {
	switch t.Store {
	case StoreNSS:
		return e.nssPresent(ctx, t)
	case StoreSystemDebian, StoreSystemFedora:
		b, err := os.ReadFile(t.Location)
		if err != nil {
			return false, nil
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return false, nil
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		return err == nil && Fingerprint(c) == t.SHA256, nil
	}
	return false, fmt.Errorf("install: unknown store %q", t.Store)
}

func (e *env) removeTrust(ctx context.Context, t TrustEntry) error {
	switch t.Store {
	case StoreNSS:
		return e.nssRemove(ctx, t)
	case StoreSystemDebian, StoreSystemFedora:
		return e.systemRemove(ctx, t)
	}
	return fmt.Errorf("install: unknown store %q in the manifest", t.Store)
}

// The system store is written as root: directly when running as root,
// through sudo otherwise (mkcert's pattern; sudo asks on the terminal).
func (e *env) systemAdd(ctx context.Context, tg trustTarget, ca *x509.Certificate) (*TrustEntry, error) {
	file := filepath.Join(tg.location, "cpsagent-"+Fingerprint(ca)[:16]+".crt")
	src, cleanup, err := e.tempPEM(ca)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if err := e.privileged(ctx, "install", "-m", "0644", src, file); err != nil {
		return nil, fmt.Errorf("install: adding the CA to the system store: %w", err)
	}
	if err := e.privileged(ctx, updateCommand(tg.store)...); err != nil {
		return nil, fmt.Errorf("install: updating the system store: %w", err)
	}
	return &TrustEntry{Store: tg.store, Location: file, SHA256: Fingerprint(ca)}, nil
}

func (e *env) systemRemove(ctx context.Context, t TrustEntry) error {
	if !exists(t.Location) {
		return nil
	}
	if ok, _ := e.trustPresent(ctx, t); !ok {
		return nil // replaced by someone else: not ours any more
	}
	if err := e.privileged(ctx, "rm", "-f", t.Location); err != nil {
		return fmt.Errorf("install: removing the CA from the system store: %w", err)
	}
	if err := e.privileged(ctx, updateCommand(t.Store)...); err != nil {
		return fmt.Errorf("install: updating the system store: %w", err)
	}
	return nil
}

func updateCommand(store string) []string {
	if store == StoreSystemDebian {
		return []string{"update-ca-certificates"}
	}
	return []string{"update-ca-trust", "extract"}
}
