package install

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"

	"golang.org/x/sys/windows/registry"
)

// Windows autostart: a value in HKCU\Software\Microsoft\Windows\
// CurrentVersion\Run (per user, no administrator). The MSI writes the same
// value itself; Install then finds it in place and records nothing, so that
// uninstalling the agent's manifest never removes what the MSI owns.

const runKey = `Software\Microsoft\Windows\CurrentVersion\Run`

func runCommand(exe string) string { return `"` + exe + `" serve` }

func (e *env) installAutostart(ctx context.Context, existing []AutostartEntry) ([]AutostartEntry, error) {
	if isGoRunBinary(e.exe) {
		e.skipped("autostart: %s is a temporary build (go run); install the agent first", e.exe)
		return existing, nil
	}
	k, _, err := registry.CreateKey(registry.CURRENT_USER, runKey, registry.QUERY_VALUE|registry.SET_VALUE)
	if err != nil {
		return existing, fmt.Errorf("install: opening HKCU\\%s: %w", runKey, err)
	}
	defer k.Close()
	want := runCommand(e.exe)
	ours := slices.ContainsFunc(existing, func(a AutostartEntry) bool { return a.Kind == AutostartRegistry })
	cur, _, err := k.GetStringValue(RunValueName)
	switch {
	case err == nil && cur == want:
		if ours {
			e.kept(`autostart HKCU\%s\%s`, runKey, RunValueName)
			return existing, nil
		}
		e.kept(`autostart HKCU\%s\%s (written by the installer)`, runKey, RunValueName)
		return nil, nil
	case err == nil && !ours:
		e.skipped(`autostart: HKCU\%s\%s already runs %s (left as is)`, runKey, RunValueName, cur)
		return nil, nil
	case err != nil && !errors.Is(err, registry.ErrNotExist) && !errors.Is(err, syscall.ERROR_FILE_NOT_FOUND):
		return existing, fmt.Errorf("install: reading the Run value: %w", err)
	}
	if err := k.SetStringValue(RunValueName, want); err != nil {
		return existing, fmt.Errorf("install: writing the Run value: %w", err)
	}
	e.added(`autostart HKCU\%s\%s = %s`, runKey, RunValueName, want)
	return []AutostartEntry{{Kind: AutostartRegistry, Path: `HKCU\` + runKey, Value: RunValueName}}, nil
}

func (e *env) removeAutostart(ctx context.Context, entries []AutostartEntry) ([]AutostartEntry, error) {
	var left []AutostartEntry
	var errs []error
	for _, a := range entries {
		if a.Kind != AutostartRegistry {
			left = append(left, a)
			errs = append(errs, fmt.Errorf("install: unknown autostart kind %q", a.Kind))
			continue
		}
		k, err := registry.OpenKey(registry.CURRENT_USER, runKey, registry.SET_VALUE)
		if err == nil {
			err = k.DeleteValue(a.Value)
			k.Close()
		}
		if err != nil && !errors.Is(err, registry.ErrNotExist) && !errors.Is(err, syscall.ERROR_FILE_NOT_FOUND) {
			left = append(left, a)
			errs = append(errs, fmt.Errorf("install: removing the Run value: %w", err))
			continue
		}
		e.removed(`autostart HKCU\%s\%s`, runKey, a.Value)
	}
	return left, errors.Join(errs...)
}

// The MSI owns the machine's copy; a per-user opt-out is not needed on
// Windows (removing the program removes its Run value).
func (e *env) optOut() error { return nil }
func (e *env) clearOptOut()  {}
