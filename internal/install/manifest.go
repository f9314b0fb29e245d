package install

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cpsagent/cpsagent/internal/atomicfile"
)

// ManifestFile is the name of the manifest inside the state directory.
const ManifestFile = "install-manifest.json"

const manifestVersion = 1

// Manifest records exactly what Install added, so that Uninstall removes
// that and nothing else. It is JSON, user-only (0600), in the state
// directory.
type Manifest struct {
	Version int       `json:"version"`
	Updated time.Time `json:"updated"`
	// CA is the certificate the trust entries were made for.
	CA CAInfo `json:"ca"`
	// Trust lists the stores holding the CA.
	Trust []TrustEntry `json:"trust,omitempty"`
	// Autostart lists files, links, registry values and registrations.
	Autostart []AutostartEntry `json:"autostart,omitempty"`
}

// CAInfo identifies a CA certificate.
type CAInfo struct {
	SHA256   string    `json:"sha256"` // hex of SHA-256(DER)
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"notAfter"`
}

// TrustEntry is one trust store that holds the CA because of Install.
type TrustEntry struct {
	// Store is the kind of store (the Store* constants).
	Store string `json:"store"`
	// Location is the NSS DB directory, the anchor file, the keychain or
	// the Windows store name.
	Location string `json:"location"`
	// Nickname is the NSS nickname (NSS stores only).
	Nickname string `json:"nickname,omitempty"`
	// SHA256 is the fingerprint of the certificate that was added.
	SHA256 string `json:"sha256"`
	// Created lists the directories and files Install created for this
	// entry (a new NSS DB), deepest last; Uninstall deletes them when
	// nothing else was added to them since.
	Created []string `json:"created,omitempty"`
}

// AutostartEntry is one autostart registration made by Install.
type AutostartEntry struct {
	// Kind is one of the Autostart* constants.
	Kind string `json:"kind"`
	// Path is the file or link written, or the registry key.
	Path string `json:"path"`
	// Value is the unit name, registry value name or launchd label.
	Value string `json:"value,omitempty"`
	// SHA256 is the hash of the content written (files).
	SHA256 string `json:"sha256,omitempty"`
	// Created lists directories created for it, deepest last.
	Created []string `json:"created,omitempty"`
}

// Store kinds.
const (
	StoreNSS          = "nss"             // Chromium and Firefox NSS databases (Linux)
	StoreSystemDebian = "system-debian"   // /usr/local/share/ca-certificates + update-ca-certificates
	StoreSystemFedora = "system-fedora"   // /etc/pki/ca-trust/source/anchors + update-ca-trust
	StoreSystemTrust  = "system-p11kit"   // trust anchor (Arch, openSUSE)
	StoreWindowsUser  = "windows-user"    // CurrentUser\ROOT
	StoreWindowsLM    = "windows-machine" // LocalMachine\ROOT
	StoreMacLogin     = "macos-login"     // login keychain, user trust settings
	StoreMacSystem    = "macos-system"    // System keychain, admin trust settings
)

// Autostart kinds.
const (
	AutostartFile      = "file"           // a file written (unit, .desktop, plist)
	AutostartLink      = "link"           // a symlink made (offline systemd enable)
	AutostartSystemd   = "systemd-enable" // systemctl --user enable
	AutostartOptOut    = "opt-out"        // a mask written by Uninstall (not recorded after it)
	AutostartRegistry  = "registry-run"   // HKCU\…\Run value
	AutostartLaunchctl = "launchctl"      // launchctl bootstrap gui/UID
)

// ErrNoManifest is returned by ReadManifest when nothing was installed.
var ErrNoManifest = errors.New("install: no install manifest (nothing installed for this user)")

// ReadManifest reads the manifest of stateDir.
func ReadManifest(stateDir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoManifest
	}
	if err != nil {
		return nil, fmt.Errorf("install: reading the manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("install: %s is damaged: %w", ManifestFile, err)
	}
	if m.Version != manifestVersion {
		return nil, fmt.Errorf("install: %s has version %d, this agent reads %d", ManifestFile, m.Version, manifestVersion)
	}
	return &m, nil
}

// write saves m atomically, user-only.
func (m *Manifest) write(stateDir string, now time.Time) error {
	m.Version = manifestVersion
	m.Updated = now.UTC().Truncate(time.Second)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(stateDir, ManifestFile), append(b, '\n'), 0o600)
}

func removeManifest(stateDir string) error {
	err := os.Remove(filepath.Join(stateDir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// writeFileAtomic writes through a temporary file and a rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, perm)
}

// mkdirAllRecord is os.MkdirAll that returns the directories it created,
// outermost first.
func mkdirAllRecord(dir string, perm os.FileMode) ([]string, error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	created := make([]string, 0, len(missing))
	for i := len(missing) - 1; i >= 0; i-- {
		created = append(created, missing[i])
	}
	return created, nil
}

// removeCreated deletes paths recorded in Created lists, deepest first
// across all of them (two entries may share a parent they created), leaving
// any directory that is not empty (someone else put something there).
func removeCreated(lists ...[]string) {
	var all []string
	for _, l := range lists {
		all = append(all, l...)
	}
	slices.SortStableFunc(all, func(a, b string) int {
		return strings.Count(b, string(filepath.Separator)) - strings.Count(a, string(filepath.Separator))
	})
	for _, p := range all {
		_ = os.Remove(p) // fails on a non-empty directory: kept on purpose
	}
}
