package config

import (
	"errors"
	"os"
	"path/filepath"
)

func envDir(name string) (string, error) {
	v := os.Getenv(name)
	if v == "" || !filepath.IsAbs(v) {
		return "", errors.New("config: %" + name + "% is not set")
	}
	return filepath.Join(v, AppName), nil
}

func configDir() (string, error) { return envDir("AppData") }
func stateDir() (string, error)  { return envDir("LocalAppData") }

func policyDir() string {
	if d, err := envDir("ProgramData"); err == nil {
		return d
	}
	return `C:\ProgramData\` + AppName
}
