package config

import (
	"errors"
	"os"
	"path/filepath"
)

// AppName names the agent's directories.
const AppName = "cpsagent"

// ConfigDir is the per-user directory holding config.json:
//
//	Linux, BSD: $XDG_CONFIG_HOME/cpsagent (default ~/.config/cpsagent)
//	macOS:      ~/Library/Application Support/cpsagent
//	Windows:    %AppData%\cpsagent
func ConfigDir() (string, error) { return configDir() }

// StateDir is the per-user directory holding the agent's state: the local
// CA and TLS leaf (tls/), and the logs (logs/). It is created 0700.
//
//	Linux, BSD: $XDG_STATE_HOME/cpsagent (default ~/.local/state/cpsagent)
//	macOS:      ~/Library/Application Support/cpsagent/state
//	Windows:    %LocalAppData%\cpsagent (not %AppData%: private keys and logs
//	            must not roam to other machines with the profile)
func StateDir() (string, error) { return stateDir() }

// PolicyDir is the machine-wide directory an administrator controls (a
// placeholder: the agent does not read it yet). A later version reads
// policy.json there (locked allow-list of origins, pinentry program, log
// level), which wins over the user's config:
//
//	Linux, BSD: /etc/cpsagent
//	macOS:      /Library/Application Support/cpsagent
//	Windows:    %ProgramData%\cpsagent
func PolicyDir() string { return policyDir() }

// xdgDir returns $env, or $HOME/fallback, joined with AppName. Relative XDG
// values are ignored, as the XDG Base Directory spec requires.
func xdgDir(env, fallback string) (string, error) {
	if v := os.Getenv(env); v != "" && filepath.IsAbs(v) {
		return filepath.Join(v, AppName), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	if home == "" {
		return "", errors.New("config: no home directory")
	}
	return filepath.Join(home, fallback, AppName), nil
}
