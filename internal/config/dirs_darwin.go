package config

import (
	"os"
	"path/filepath"
)

func appSupport() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, "Library", "Application Support", AppName), nil
}

func configDir() (string, error) { return appSupport() }

func stateDir() (string, error) {
	d, err := appSupport()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "state"), nil
}

func policyDir() string { return "/Library/Application Support/" + AppName }
