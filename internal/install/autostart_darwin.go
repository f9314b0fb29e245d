package install

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// macOS autostart: a LaunchAgent in ~/Library/LaunchAgents, loaded into the
// user's GUI domain with launchctl bootstrap. The .pkg installs the same
// plist in /Library/LaunchAgents for every user instead (packaging/macos).

func (e *env) plistPath() string {
	return filepath.Join(e.home, "Library", "LaunchAgents", LaunchdLabel+".plist")
}

func (e *env) installAutostart(ctx context.Context, existing []AutostartEntry) ([]AutostartEntry, error) {
	if isGoRunBinary(e.exe) {
		e.skipped("autostart: %s is a temporary build (go run); install the agent first", e.exe)
		return existing, nil
	}
	if exists(e.sys("/Library/LaunchAgents/" + LaunchdLabel + ".plist")) {
		e.kept("autostart /Library/LaunchAgents/%s.plist (installed by the package)", LaunchdLabel)
		left, err := e.removeAutostart(ctx, existing)
		return left, err
	}
	ent, err := e.ensurePlist(existing)
	if err != nil {
		return existing, err
	}
	out := []AutostartEntry{ent}
	domain := "gui/" + strconv.Itoa(os.Getuid())
	if !slices.ContainsFunc(existing, func(a AutostartEntry) bool { return a.Kind == AutostartLaunchctl }) {
		// Fails when already loaded; the plist alone starts it at next login.
		if _, err := run(ctx, "launchctl", "bootstrap", domain, ent.Path); err != nil {
			e.skipped("launchctl bootstrap: %v (the agent starts at the next login)", err)
		}
	}
	out = append(out, AutostartEntry{Kind: AutostartLaunchctl, Path: domain, Value: LaunchdLabel})
	return out, nil
}

func (e *env) ensurePlist(existing []AutostartEntry) (AutostartEntry, error) {
	path := e.plistPath()
	content := RenderPlist(e.exe)
	if cur, err := os.ReadFile(path); err == nil && string(cur) == string(content) {
		e.kept("autostart %s", path)
		i := slices.IndexFunc(existing, func(a AutostartEntry) bool { return a.Kind == AutostartFile && a.Path == path })
		ent := AutostartEntry{Kind: AutostartFile, Path: path, SHA256: sha256Hex(content)}
		if i >= 0 {
			ent.Created = existing[i].Created
		}
		return ent, nil
	}
	dirs, err := mkdirAllRecord(filepath.Dir(path), 0o755)
	if err != nil {
		return AutostartEntry{}, err
	}
	if err := writeFileAtomic(path, content, 0o644); err != nil {
		return AutostartEntry{}, fmt.Errorf("install: writing %s: %w", path, err)
	}
	e.added("autostart %s", path)
	return AutostartEntry{Kind: AutostartFile, Path: path, SHA256: sha256Hex(content), Created: dirs}, nil
}

func (e *env) removeAutostart(ctx context.Context, entries []AutostartEntry) ([]AutostartEntry, error) {
	var left []AutostartEntry
	var errs []error
	// bootout first, then the file.
	order := slices.Clone(entries)
	slices.SortStableFunc(order, func(a, b AutostartEntry) int {
		if a.Kind == AutostartLaunchctl {
			return -1
		}
		if b.Kind == AutostartLaunchctl {
			return 1
		}
		return 0
	})
	for _, a := range order {
		switch a.Kind {
		case AutostartLaunchctl:
			_, _ = run(ctx, "launchctl", "bootout", a.Path+"/"+a.Value) // not loaded: fine
			e.removed("launchd job %s", a.Value)
		case AutostartFile:
			if err := os.Remove(a.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				left = append(left, a)
				errs = append(errs, err)
				continue
			}
			removeCreated(a.Created)
			e.removed("autostart %s", a.Path)
		default:
			left = append(left, a)
			errs = append(errs, fmt.Errorf("install: unknown autostart kind %q", a.Kind))
		}
	}
	return left, errors.Join(errs...)
}

// A package-wide LaunchAgent is disabled for one user with
// "launchctl disable gui/UID/io.github.cpsagent" (kept by launchd across
// logins); install enables it again.
func (e *env) optOut() error {
	if !exists(e.sys("/Library/LaunchAgents/" + LaunchdLabel + ".plist")) {
		return nil
	}
	target := "gui/" + strconv.Itoa(os.Getuid()) + "/" + LaunchdLabel
	_, _ = run(context.Background(), "launchctl", "bootout", target)
	if _, err := run(context.Background(), "launchctl", "disable", target); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	e.added("opt-out: launchctl disable %s", target)
	return nil
}

func (e *env) clearOptOut() {
	if exists(e.sys("/Library/LaunchAgents/" + LaunchdLabel + ".plist")) {
		_, _ = run(context.Background(), "launchctl", "enable", "gui/"+strconv.Itoa(os.Getuid())+"/"+LaunchdLabel)
	}
}
