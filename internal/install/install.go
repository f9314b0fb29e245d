// Package install makes the agent reachable and started for one user, and
// undoes exactly that:
//
//   - trust: the per-install local CA (internal/localca) goes into every
//     store the user's browsers read. Linux: the NSS databases of Chromium
//     (~/.pki/nssdb and ~/.local/share/pki/nssdb, snap and Flatpak copies)
//     and of every Firefox profile; with System, also the distribution's
//     anchor directory. Windows: CurrentUser\ROOT (LocalMachine\ROOT with
//     System). macOS: the login keychain (System keychain with System).
//   - autostart: a systemd user unit bound to graphical-session.target plus
//     an XDG autostart entry (Linux), a HKCU Run value (Windows), a
//     LaunchAgent (macOS). Nothing is written where a package already
//     provides it (/usr/lib/systemd/user, /etc/xdg/autostart).
//   - a manifest (install-manifest.json in the state directory) that lists
//     exactly what was added. Uninstall removes those entries, and only
//     those, and keeps the user's state (CA, ledger, logs) unless purged.
//
// Install is idempotent: run again, it checks each recorded entry, adds what
// is missing (a Firefox profile created since, a renewed CA) and removes
// the entries of a previous CA.
//
// The package also holds the single-instance lock (AcquireInstance) and the
// port range of the multi-user discovery scheme (ports.go).
package install

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Options configures Install and Uninstall.
type Options struct {
	// StateDir is the agent's per-user state directory (config.StateDir):
	// the manifest and the instance lock live there. Required.
	StateDir string
	// Home is the user's home directory ("" = os.UserHomeDir).
	Home string
	// Executable is the agent binary that autostart runs
	// ("" = os.Executable, symlinks resolved).
	Executable string
	// CA is the local CA certificate to trust. Required by Install.
	CA *x509.Certificate
	// System also uses the machine-wide store. Needs root or an
	// administrator.
	System bool
	// TrustOnly skips autostart (the agent's own start runs this to pick
	// up new browser profiles).
	TrustOnly bool
	// Purge (Uninstall) also deletes the state directory: CA, ledger, logs.
	Purge bool
	// NoOptOut (Uninstall) does not write the per-user opt-out of a
	// package-wide autostart: the package scripts use it while the package
	// itself is being removed.
	NoOptOut bool
	// Out receives one line per action ("" = io.Discard).
	Out io.Writer

	// sysRoot prefixes machine-wide paths (tests).
	sysRoot string
	// now is time.Now (tests).
	now func() time.Time
}

// Report says what Install or Uninstall did.
type Report struct {
	Added, Kept, Removed []string
	// Skipped lists stores that could not be used, with the reason
	// (a Firefox profile never started, a DB with a master password, …).
	Skipped []string
}

// env is Options made concrete.
type env struct {
	Options
	home string
	exe  string
	out  io.Writer
	rep  *Report
}

func newEnv(o Options) (*env, error) {
	if o.StateDir == "" {
		return nil, errors.New("install: no state directory")
	}
	e := &env{Options: o, home: o.Home, exe: o.Executable, out: o.Out, rep: &Report{}}
	if e.out == nil {
		e.out = io.Discard
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("install: finding the home directory: %w", err)
		}
		e.home = h
	}
	if e.exe == "" {
		x, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("install: finding the agent binary: %w", err)
		}
		if r, err := filepath.EvalSymlinks(x); err == nil {
			x = r
		}
		e.exe = x
	}
	return e, nil
}

// sys returns a machine-wide path (under sysRoot in tests).
func (e *env) sys(p string) string {
	if e.sysRoot == "" {
		return p
	}
	return filepath.Join(e.sysRoot, p)
}

func (e *env) logf(format string, args ...any) { fmt.Fprintf(e.out, format+"\n", args...) }

func (e *env) added(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	e.rep.Added = append(e.rep.Added, s)
	e.logf("added: %s", s)
}

func (e *env) kept(format string, args ...any) {
	e.rep.Kept = append(e.rep.Kept, fmt.Sprintf(format, args...))
}

func (e *env) removed(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	e.rep.Removed = append(e.rep.Removed, s)
	e.logf("removed: %s", s)
}

func (e *env) skipped(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	e.rep.Skipped = append(e.rep.Skipped, s)
	e.logf("skipped: %s", s)
}

// Fingerprint is the hex SHA-256 of a certificate's DER, the identity used
// in the manifest.
func Fingerprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

// Nickname is the NSS nickname and the file name stem used for the CA:
// the fingerprint prefix makes a renewed CA a different entry.
func Nickname(c *x509.Certificate) string {
	return "cpsagent local CA " + Fingerprint(c)[:16]
}

// ErrPartial wraps the per-store errors of an Install or Uninstall that did
// not complete everywhere; the manifest still records what was done.
var ErrPartial = errors.New("install: not every store could be updated")

// Install adds the CA to the user's trust stores and registers autostart
// (unless TrustOnly). It returns what it did; on a partial failure the
// error wraps ErrPartial and every store error.
func Install(ctx context.Context, o Options) (*Report, error) {
	if o.CA == nil {
		return nil, errors.New("install: no CA certificate")
	}
	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	if err := e.checkOwner(); err != nil {
		return nil, err
	}
	m, err := ReadManifest(e.StateDir)
	if errors.Is(err, ErrNoManifest) {
		m = &Manifest{}
	} else if err != nil {
		return nil, err
	}
	fp := Fingerprint(o.CA)
	var errs []error

	// Entries of a previous CA (renewal) go first. A DB Install created
	// stays (the new CA goes into it) and keeps its Created list.
	var keep []TrustEntry
	created := map[string][]string{}
	for _, t := range m.Trust {
		if t.SHA256 == fp {
			keep = append(keep, t)
			continue
		}
		created[t.Store+"\x00"+t.Location] = t.Created
		t.Created = nil
		if err := e.removeTrust(ctx, t); err != nil {
			errs = append(errs, err)
			t.Created = created[t.Store+"\x00"+t.Location]
			keep = append(keep, t)
			continue
		}
		e.removed("previous CA %s from %s %s", t.SHA256[:16], t.Store, t.Location)
	}
	m.Trust = keep
	m.CA = CAInfo{SHA256: fp, Subject: o.CA.Subject.String(), NotAfter: o.CA.NotAfter.UTC()}

	for _, tg := range e.trustTargets() {
		if i := slices.IndexFunc(m.Trust, func(t TrustEntry) bool {
			return t.Store == tg.store && t.Location == tg.location && t.SHA256 == fp
		}); i >= 0 {
			ok, err := e.trustPresent(ctx, m.Trust[i])
			if err == nil && ok {
				e.kept("%s %s", tg.store, tg.location)
				continue
			}
			// Gone (the user removed it): add again, keeping what
			// Install created for it.
			created[tg.store+"\x00"+tg.location] = m.Trust[i].Created
			m.Trust = slices.Delete(m.Trust, i, i+1)
		}
		entry, err := e.addTrust(ctx, tg, o.CA)
		if errors.Is(err, errSkip) {
			e.skipped("%s %s: %v", tg.store, tg.location, err)
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(entry.Created) == 0 {
			entry.Created = created[entry.Store+"\x00"+entry.Location]
		}
		m.Trust = append(m.Trust, *entry)
		e.added("CA to %s %s", tg.store, tg.location)
	}

	if !o.TrustOnly {
		e.clearOptOut()
		entries, err := e.installAutostart(ctx, m.Autostart)
		if err != nil {
			errs = append(errs, err)
		}
		m.Autostart = entries
	}

	if err := m.write(e.StateDir, e.now()); err != nil {
		errs = append(errs, fmt.Errorf("install: writing the manifest: %w", err))
	}
	if len(errs) > 0 {
		return e.rep, fmt.Errorf("%w: %w", ErrPartial, errors.Join(errs...))
	}
	return e.rep, nil
}

// Uninstall removes what the manifest lists: the CA from every store it was
// added to, and the autostart entries. Where autostart comes from a package
// for all users, it also writes the per-user opt-out (a masked unit, a
// hidden autostart entry) so that nothing starts the agent again for this
// user. The state directory stays unless Purge.
func Uninstall(ctx context.Context, o Options) (*Report, error) {
	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	if err := e.checkOwner(); err != nil {
		return nil, err
	}
	m, err := ReadManifest(e.StateDir)
	if errors.Is(err, ErrNoManifest) {
		m = &Manifest{}
	} else if err != nil {
		return nil, err
	}
	var errs []error
	var left []TrustEntry
	for _, t := range m.Trust {
		if err := e.removeTrust(ctx, t); err != nil {
			errs = append(errs, err)
			left = append(left, t)
			continue
		}
		e.removed("CA from %s %s", t.Store, t.Location)
	}
	var sweep [][]string
	for _, t := range m.Trust {
		if !slices.ContainsFunc(left, func(l TrustEntry) bool { return l.Location == t.Location }) {
			sweep = append(sweep, t.Created)
		}
	}
	m.Trust = left
	for _, a := range m.Autostart {
		sweep = append(sweep, a.Created)
	}
	left2, err := e.removeAutostart(ctx, m.Autostart)
	if err != nil {
		errs = append(errs, err)
	}
	m.Autostart = left2
	for _, a := range left2 { // not removed: keep its directories
		sweep = slices.DeleteFunc(sweep, func(c []string) bool { return slices.Equal(c, a.Created) })
	}
	removeCreated(sweep...)
	if !o.NoOptOut {
		if err := e.optOut(); err != nil {
			errs = append(errs, err)
		}
	}

	switch {
	case len(m.Trust) > 0 || len(m.Autostart) > 0:
		if err := m.write(e.StateDir, e.now()); err != nil {
			errs = append(errs, err)
		}
	case o.Purge:
		if err := os.RemoveAll(e.StateDir); err != nil {
			errs = append(errs, fmt.Errorf("install: purging %s: %w", e.StateDir, err))
		} else {
			e.removed("state directory %s (CA, ledger, logs)", e.StateDir)
		}
	default:
		if err := removeManifest(e.StateDir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return e.rep, fmt.Errorf("%w: %w", ErrPartial, errors.Join(errs...))
	}
	return e.rep, nil
}

// errSkip marks a store that cannot be used and is reported, not failed
// (a Firefox profile without a certificate DB yet).
var errSkip = errors.New("skipped")

// trustTarget is a store location Install should hold the CA in.
type trustTarget struct {
	store    string
	location string
	// create: make the NSS DB when it does not exist.
	create bool
}

// run runs a command and returns its combined output; the error carries
// the output's first line.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		return out, fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// isGoRunBinary reports whether exe looks like a `go run` temporary.
func isGoRunBinary(exe string) bool {
	return strings.Contains(exe, string(filepath.Separator)+"go-build") ||
		(runtime.GOOS != "windows" && strings.HasPrefix(exe, os.TempDir()))
}
