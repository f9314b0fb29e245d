package config

func configDir() (string, error) { return xdgDir("XDG_CONFIG_HOME", ".config") }
func stateDir() (string, error)  { return xdgDir("XDG_STATE_HOME", ".local/state") }
func policyDir() string          { return "/etc/" + AppName }
