package install

import (
	"context"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Windows: the ROOT store of the current user (a confirmation dialog shows
// once: Windows asks the user before adding a root to CurrentUser\ROOT), or
// of the machine with System (needs an elevated process; no dialog).
// Firefox 120+ trusts roots added there ("third-party roots"), Chrome and
// Edge use the Windows store.

const friendlyName = "cpsagent local CA (this computer only)"

var (
	modcrypt32                            = windows.NewLazySystemDLL("crypt32.dll")
	procCertSetCertificateContextProperty = modcrypt32.NewProc("CertSetCertificateContextProperty")
)

const certFriendlyNamePropID = 11 // CERT_FRIENDLY_NAME_PROP_ID

func (e *env) checkOwner() error { return nil }

func (e *env) trustTargets() []trustTarget {
	if e.System {
		return []trustTarget{{store: StoreWindowsUser, location: `CurrentUser\ROOT`}, {store: StoreWindowsLM, location: `LocalMachine\ROOT`}}
	}
	return []trustTarget{{store: StoreWindowsUser, location: `CurrentUser\ROOT`}}
}

func openRoot(store string) (windows.Handle, error) {
	flags := uint32(windows.CERT_SYSTEM_STORE_CURRENT_USER)
	if store == StoreWindowsLM {
		flags = windows.CERT_SYSTEM_STORE_LOCAL_MACHINE
	}
	name, _ := windows.UTF16PtrFromString("ROOT")
	h, err := windows.CertOpenStore(windows.CERT_STORE_PROV_SYSTEM, 0, 0, flags, uintptr(unsafe.Pointer(name)))
	if err != nil {
		if store == StoreWindowsLM && errors.Is(err, windows.ERROR_ACCESS_DENIED) {
			return 0, fmt.Errorf("the machine store needs an administrator (\"Run as administrator\"): %w", err)
		}
		return 0, err
	}
	return h, nil
}

func (e *env) addTrust(ctx context.Context, tg trustTarget, ca *x509.Certificate) (*TrustEntry, error) {
	store, err := openRoot(tg.store)
	if err != nil {
		return nil, fmt.Errorf("install: opening %s: %w", tg.location, err)
	}
	defer windows.CertCloseStore(store, 0)
	cc, err := windows.CertCreateCertificateContext(windows.X509_ASN_ENCODING|windows.PKCS_7_ASN_ENCODING, &ca.Raw[0], uint32(len(ca.Raw)))
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	defer windows.CertFreeCertificateContext(cc)
	name, _ := windows.UTF16FromString(friendlyName)
	blob := windows.CryptDataBlob{Size: uint32(len(name) * 2), Data: (*byte)(unsafe.Pointer(&name[0]))}
	// The friendly name lets an administrator find the entry in certmgr.msc.
	procCertSetCertificateContextProperty.Call(uintptr(unsafe.Pointer(cc)), certFriendlyNamePropID, 0, uintptr(unsafe.Pointer(&blob)))
	// The user may answer "No" to Windows' dialog: that is ERROR_CANCELLED.
	if err := windows.CertAddCertificateContextToStore(store, cc, windows.CERT_STORE_ADD_REPLACE_EXISTING, nil); err != nil {
		if errors.Is(err, windows.ERROR_CANCELLED) || errors.Is(err, syscall.Errno(0x800704C7)) {
			return nil, fmt.Errorf("install: the certificate was refused in Windows' confirmation dialog: run \"cpsagent install\" again and answer Yes: %w", err)
		}
		return nil, fmt.Errorf("install: adding the CA to %s: %w", tg.location, err)
	}
	return &TrustEntry{Store: tg.store, Location: tg.location, SHA256: Fingerprint(ca)}, nil
}

// findInRoot returns the certificate context with the given SHA-256
// fingerprint (nil if absent); the caller frees it.
func findInRoot(store windows.Handle, fp string) (*windows.CertContext, error) {
	var prev *windows.CertContext
	for {
		cc, err := windows.CertEnumCertificatesInStore(store, prev)
		if err != nil {
			if errors.Is(err, windows.Errno(windows.CRYPT_E_NOT_FOUND)) || errors.Is(err, windows.ERROR_NO_MORE_FILES) {
				return nil, nil
			}
			return nil, err
		}
		der := unsafe.Slice(cc.EncodedCert, cc.Length)
		if sha256Hex(der) == fp {
			return cc, nil
		}
		prev = cc
	}
}

func (e *env) trustPresent(ctx context.Context, t TrustEntry) (bool, error) {
	store, err := openRoot(t.Store)
	if err != nil {
		return false, err
	}
	defer windows.CertCloseStore(store, 0)
	cc, err := findInRoot(store, t.SHA256)
	if cc != nil {
		windows.CertFreeCertificateContext(cc)
	}
	return cc != nil, err
}

func (e *env) removeTrust(ctx context.Context, t TrustEntry) error {
	if t.Store != StoreWindowsUser && t.Store != StoreWindowsLM {
		return fmt.Errorf("install: unknown store %q in the manifest", t.Store)
	}
	store, err := openRoot(t.Store)
	if err != nil {
		return fmt.Errorf("install: opening %s: %w", t.Location, err)
	}
	defer windows.CertCloseStore(store, 0)
	for {
		cc, err := findInRoot(store, t.SHA256)
		if err != nil {
			return fmt.Errorf("install: searching %s: %w", t.Location, err)
		}
		if cc == nil {
			return nil
		}
		// CertDeleteCertificateFromStore frees the context, even on error.
		if err := windows.CertDeleteCertificateFromStore(cc); err != nil {
			return fmt.Errorf("install: removing the CA from %s: %w", t.Location, err)
		}
	}
}

// sha1Hex is the thumbprint Windows tools show (certutil, certmgr).
func sha1Hex(der []byte) string {
	s := sha1.Sum(der)
	return hex.EncodeToString(s[:])
}
