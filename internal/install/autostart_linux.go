package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

// Linux autostart, in two layers that never both run the agent:
//   - a systemd user unit, WantedBy=graphical-session.target (GNOME and KDE
//     Plasma start that target); enabled with "systemctl --user enable" when
//     the user manager answers, or with the same symlink made by hand when it
//     does not (an install from a text console, a container, CI);
//   - an XDG autostart entry with X-GNOME-HiddenUnderSystemd=true: desktops
//     that start autostart entries themselves (Xfce, MATE, Cinnamon, LXQt)
//     run it; systemd-managed sessions skip it in favour of the unit.
// A second start finds the instance lock taken and exits (status 3).

// packagedUnitDirs are where a package puts user units.
var packagedUnitDirs = []string{"/usr/lib/systemd/user", "/usr/local/lib/systemd/user", "/etc/systemd/user"}

const (
	wantsDir   = "graphical-session.target.wants"
	optOutMark = "X-cpsagent-OptOut=true"
)

// configHome is $XDG_CONFIG_HOME, or ~/.config (always ~/.config when a
// home was given explicitly, so tests never touch the real one).
func (e *env) configHome() string {
	if v := os.Getenv("XDG_CONFIG_HOME"); v != "" && filepath.IsAbs(v) && e.Options.Home == "" {
		return v
	}
	return filepath.Join(e.home, ".config")
}

func (e *env) userUnitDir() string { return filepath.Join(e.configHome(), "systemd", "user") }

func (e *env) packagedUnit() string {
	for _, d := range packagedUnitDirs {
		if p := e.sys(filepath.Join(d, UnitName)); exists(p) {
			return p
		}
	}
	return ""
}

// globallyEnabled: "systemctl --global enable cpsagent" (the package's
// postinst) made the unit start for every user.
func (e *env) globallyEnabled() bool {
	_, err := os.Lstat(e.sys(filepath.Join("/etc/systemd/user", wantsDir, UnitName)))
	return err == nil
}

func (e *env) packagedDesktop() string {
	if p := e.sys("/etc/xdg/autostart/" + DesktopName); exists(p) {
		return p
	}
	return ""
}

// userManager reports whether "systemctl --user" reaches a running user
// manager.
func userManager(ctx context.Context) bool {
	if _, err := exec.LookPath("systemctl"); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "systemctl", "--user", "show-environment").Run() == nil
}

func (e *env) installAutostart(ctx context.Context, existing []AutostartEntry) ([]AutostartEntry, error) {
	if isGoRunBinary(e.exe) {
		e.skipped("autostart: %s is a temporary build (go run); install the agent binary first", e.exe)
		return existing, nil
	}
	var want []AutostartEntry
	var errs []error

	unitPath := e.packagedUnit()
	if unitPath == "" {
		unitPath = filepath.Join(e.userUnitDir(), UnitName)
		ent, err := e.ensureFile(existing, unitPath, RenderUnit(e.exe), 0o644)
		if err != nil {
			errs = append(errs, err)
		} else {
			want = append(want, ent)
		}
	}
	if !e.globallyEnabled() {
		ent, err := e.enableUnit(ctx, existing, unitPath)
		if err != nil {
			errs = append(errs, err)
		} else {
			want = append(want, ent)
		}
	}
	if e.packagedDesktop() == "" {
		ent, err := e.ensureFile(existing, filepath.Join(e.configHome(), "autostart", DesktopName), RenderDesktop(e.exe), 0o644)
		if err != nil {
			errs = append(errs, err)
		} else {
			want = append(want, ent)
		}
	}

	// Entries recorded before but not wanted now (a package took over).
	var stale []AutostartEntry
	for _, old := range existing {
		if !slices.ContainsFunc(want, func(w AutostartEntry) bool { return w.Kind == old.Kind && w.Path == old.Path }) {
			stale = append(stale, old)
		}
	}
	left, err := e.removeAutostart(ctx, stale)
	if err != nil {
		errs = append(errs, err)
	}
	return append(want, left...), errors.Join(errs...)
}

// ensureFile writes content at path unless it is already there; a file
// that exists but was not written by Install is left alone.
func (e *env) ensureFile(existing []AutostartEntry, path string, content []byte, perm os.FileMode) (AutostartEntry, error) {
	sum := sha256Hex(content)
	prev := slices.IndexFunc(existing, func(a AutostartEntry) bool { return a.Kind == AutostartFile && a.Path == path })
	cur, err := os.ReadFile(path)
	if err == nil && bytes.Equal(cur, content) {
		ent := AutostartEntry{Kind: AutostartFile, Path: path, SHA256: sum}
		if prev >= 0 {
			ent.Created = existing[prev].Created
			e.kept("autostart %s", path)
		} else {
			e.added("autostart %s (already there, identical)", path)
		}
		return ent, nil
	}
	if err == nil && prev < 0 {
		return AutostartEntry{}, fmt.Errorf("install: %s exists and was not written by cpsagent: left as is (remove it and run \"cpsagent install\" again)", path)
	}
	var created []string
	if prev >= 0 {
		created = existing[prev].Created
	}
	dirs, err := mkdirAllRecord(filepath.Dir(path), 0o755)
	if err != nil {
		return AutostartEntry{}, fmt.Errorf("install: %w", err)
	}
	created = append(created, dirs...)
	if err := writeFileAtomic(path, content, perm); err != nil {
		return AutostartEntry{}, fmt.Errorf("install: writing %s: %w", path, err)
	}
	e.added("autostart %s", path)
	return AutostartEntry{Kind: AutostartFile, Path: path, SHA256: sum, Created: created}, nil
}

// enableUnit enables the unit with systemctl, or makes the same symlink
// when no user manager answers.
func (e *env) enableUnit(ctx context.Context, existing []AutostartEntry, unitPath string) (AutostartEntry, error) {
	link := filepath.Join(e.userUnitDir(), wantsDir, UnitName)
	if userManager(ctx) {
		if _, err := run(ctx, "systemctl", "--user", "daemon-reload"); err != nil {
			return AutostartEntry{}, fmt.Errorf("install: %w", err)
		}
		if _, err := run(ctx, "systemctl", "--user", "enable", UnitName); err != nil {
			return AutostartEntry{}, fmt.Errorf("install: %w", err)
		}
		if !slices.ContainsFunc(existing, func(a AutostartEntry) bool { return a.Kind == AutostartSystemd }) {
			e.added("systemd user unit enabled (starts with your next graphical session; now: systemctl --user start %s)", UnitName)
		}
		return AutostartEntry{Kind: AutostartSystemd, Path: link, Value: UnitName}, nil
	}
	prev := slices.IndexFunc(existing, func(a AutostartEntry) bool { return a.Kind == AutostartLink && a.Path == link })
	if t, err := os.Readlink(link); err == nil && t == unitPath {
		ent := AutostartEntry{Kind: AutostartLink, Path: link, Value: unitPath}
		if prev >= 0 {
			ent.Created = existing[prev].Created
			e.kept("autostart %s", link)
			return ent, nil
		}
		e.added("autostart %s (already there)", link)
		return ent, nil
	}
	dirs, err := mkdirAllRecord(filepath.Dir(link), 0o755)
	if err != nil {
		return AutostartEntry{}, fmt.Errorf("install: %w", err)
	}
	if prev >= 0 {
		dirs = append(existing[prev].Created, dirs...)
	}
	_ = os.Remove(link)
	if err := os.Symlink(unitPath, link); err != nil {
		return AutostartEntry{}, fmt.Errorf("install: enabling %s: %w", UnitName, err)
	}
	e.added("autostart %s (systemd user manager not reachable: enabled offline)", link)
	return AutostartEntry{Kind: AutostartLink, Path: link, Value: unitPath, Created: dirs}, nil
}

// removeAutostart undoes entries, the enabling first; it returns the
// entries it could not remove.
func (e *env) removeAutostart(ctx context.Context, entries []AutostartEntry) ([]AutostartEntry, error) {
	order := slices.Clone(entries)
	rank := func(a AutostartEntry) int {
		switch a.Kind {
		case AutostartSystemd:
			return 0
		case AutostartLink:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(order, func(a, b AutostartEntry) int { return rank(a) - rank(b) })
	var left []AutostartEntry
	var errs []error
	var created [][]string
	defer func() { removeCreated(created...) }()
	for _, a := range order {
		var err error
		switch a.Kind {
		case AutostartSystemd:
			if userManager(ctx) {
				_, err = run(ctx, "systemctl", "--user", "disable", "--now", a.Value)
			} else if t, lerr := os.Readlink(a.Path); lerr == nil && filepath.Base(t) == UnitName {
				err = os.Remove(a.Path)
			}
		case AutostartLink:
			if t, lerr := os.Readlink(a.Path); lerr == nil && t == a.Value {
				err = os.Remove(a.Path)
			}
		case AutostartFile:
			if err = os.Remove(a.Path); errors.Is(err, os.ErrNotExist) {
				err = nil
			}
		default:
			err = fmt.Errorf("unknown autostart kind %q", a.Kind)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("install: removing autostart %s: %w", a.Path, err))
			left = append(left, a)
			continue
		}
		created = append(created, a.Created)
		e.removed("autostart %s", a.Path)
	}
	return left, errors.Join(errs...)
}

// optOut stops a package-wide autostart for this user: a masked unit and a
// hidden autostart entry in the user's own directories (what "systemctl
// --user mask" and the XDG spec's Hidden=true do). "cpsagent install"
// removes them again.
func (e *env) optOut() error {
	var errs []error
	if e.packagedUnit() != "" && e.globallyEnabled() {
		mask := filepath.Join(e.userUnitDir(), UnitName)
		if _, err := os.Lstat(mask); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(mask), 0o755); err != nil {
				errs = append(errs, err)
			} else if err := os.Symlink("/dev/null", mask); err != nil {
				errs = append(errs, err)
			} else {
				e.added("opt-out %s → /dev/null (the package starts the agent for every user)", mask)
			}
		}
	}
	if e.packagedDesktop() != "" {
		hide := filepath.Join(e.configHome(), "autostart", DesktopName)
		if _, err := os.Lstat(hide); errors.Is(err, os.ErrNotExist) {
			content := "[Desktop Entry]\nType=Application\nName=cpsagent\nHidden=true\n" + optOutMark + "\n"
			if err := writeFileAtomic(hide, []byte(content), 0o644); err != nil {
				errs = append(errs, err)
			} else {
				e.added("opt-out %s (Hidden=true)", hide)
			}
		}
	}
	return errors.Join(errs...)
}

// clearOptOut removes what optOut wrote, and only that.
func (e *env) clearOptOut() {
	mask := filepath.Join(e.userUnitDir(), UnitName)
	if t, err := os.Readlink(mask); err == nil && t == "/dev/null" {
		if os.Remove(mask) == nil {
			e.removed("opt-out %s", mask)
		}
	}
	hide := filepath.Join(e.configHome(), "autostart", DesktopName)
	if b, err := os.ReadFile(hide); err == nil && bytes.Contains(b, []byte(optOutMark)) {
		if os.Remove(hide) == nil {
			e.removed("opt-out %s", hide)
		}
	}
}
