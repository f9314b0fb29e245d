package pinentry

import (
	"fmt"
	"path/filepath"
)

// defaultProgram looks for the pinentry.exe installed by Gpg4win (32-bit
// installs go to Program Files (x86), 64-bit ones to Program Files), then for
// the one of a plain GnuPG install, then in PATH.
func defaultProgram(getenv func(string) string, lookPath func(string) (string, error)) (string, []string, error) {
	var candidates []string
	for _, env := range []string{"ProgramFiles(x86)", "ProgramFiles"} {
		if dir := getenv(env); dir != "" {
			candidates = append(candidates,
				filepath.Join(dir, "Gpg4win", "bin", "pinentry.exe"),
				filepath.Join(dir, "GnuPG", "bin", "pinentry.exe"))
		}
	}
	candidates = append(candidates, "pinentry.exe")
	for _, name := range candidates {
		if path, err := lookPath(name); err == nil {
			return path, nil, nil
		}
	}
	return "", nil, fmt.Errorf("%w: Gpg4win's pinentry.exe was not found (install Gpg4win from https://gpg4win.org, or configure the program)", ErrUnavailable)
}
