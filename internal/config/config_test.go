package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// isolate points the per-OS default directories at an empty temp dir, so
// that no real config file of the machine is read.
func isolate(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	t.Setenv("HOME", d)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(d, "config"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(d, "state"))
	t.Setenv("AppData", filepath.Join(d, "appdata"))
	t.Setenv("LocalAppData", filepath.Join(d, "localappdata"))
	return d
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDefaults(t *testing.T) {
	home := isolate(t)
	cfg, err := Load(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:47180", "[::1]:47180"}; !slices.Equal(cfg.Listen, want) {
		t.Errorf("Listen = %v, want %v", cfg.Listen, want)
	}
	if cfg.VirtualCard != "" || cfg.Pinentry != "" || len(cfg.AllowOrigins) != 0 || cfg.LogLevel != "info" {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
	if cfg.ConfigFile != "" {
		t.Errorf("ConfigFile = %q with no file", cfg.ConfigFile)
	}
	sd, _ := StateDir()
	if cfg.StateDir != sd || !strings.HasPrefix(sd, home) {
		t.Errorf("StateDir = %q, want %q under %q", cfg.StateDir, sd, home)
	}
}

func TestFlagsWinOverFile(t *testing.T) {
	isolate(t)
	file := writeFile(t, "c.json", `{
		"listen": ["127.0.0.1:1111"],
		"virtualCard": "pharmacien",
		"pinentry": "/usr/bin/pinentry-file",
		"allowOrigins": ["https://file.example"],
		"stateDir": "/tmp/file-state",
		"logLevel": "warn",
		"pinTimeout": "30s",
		"rateLimit": {"burst": 2, "perMinute": 3}
	}`)
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, c *Config)
	}{
		{"file only", []string{"--config", file}, func(t *testing.T, c *Config) {
			if !slices.Equal(c.Listen, []string{"127.0.0.1:1111"}) || c.VirtualCard != "pharmacien" ||
				c.Pinentry != "/usr/bin/pinentry-file" || !slices.Equal(c.AllowOrigins, []string{"https://file.example"}) ||
				c.StateDir != "/tmp/file-state" || c.LogLevel != "warn" || c.PINTimeout != Duration(30*time.Second) ||
				c.RateLimit.Burst != 2 || c.RateLimit.PerMinute != 3 || c.ConfigFile != file {
				t.Errorf("file not applied: %+v", c)
			}
		}},
		{"flags win", []string{"--config", file, "--listen", "127.0.0.1:2222", "--listen", "[::1]:2222",
			"--virtual-card", "--pinentry", "/bin/flag", "--allow-origin", "https://a.example", "--allow-origin", "https://b.example",
			"--state-dir", "/tmp/flag-state", "--log-level", "debug", "--pin-timeout", "45s"}, func(t *testing.T, c *Config) {
			if !slices.Equal(c.Listen, []string{"127.0.0.1:2222", "[::1]:2222"}) {
				t.Errorf("Listen = %v", c.Listen)
			}
			if c.VirtualCard != DefaultVirtualIdentity {
				t.Errorf("bare --virtual-card = %q, want %q", c.VirtualCard, DefaultVirtualIdentity)
			}
			if c.Pinentry != "/bin/flag" || c.StateDir != "/tmp/flag-state" || c.LogLevel != "debug" || c.PINTimeout != Duration(45*time.Second) {
				t.Errorf("flags not applied: %+v", c)
			}
			if !slices.Equal(c.AllowOrigins, []string{"https://a.example", "https://b.example"}) {
				t.Errorf("AllowOrigins = %v (flags replace the file's list)", c.AllowOrigins)
			}
		}},
		{"virtual card identity", []string{"--config", file, "--virtual-card=infirmier"}, func(t *testing.T, c *Config) {
			if c.VirtualCard != "infirmier" {
				t.Errorf("VirtualCard = %q", c.VirtualCard)
			}
		}},
		{"virtual card off", []string{"--config", file, "--virtual-card=false"}, func(t *testing.T, c *Config) {
			if c.VirtualCard != "" {
				t.Errorf("VirtualCard = %q", c.VirtualCard)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestHeadless(t *testing.T) {
	isolate(t)
	withFile := writeFile(t, "h.json", `{"headless": true}`)
	without := writeFile(t, "n.json", `{"logLevel": "info"}`)
	tests := []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"--headless"}, true},
		{[]string{"--headless=false"}, false},
		{[]string{"--config", withFile}, true},
		{[]string{"--config", withFile, "--headless=false"}, false}, // the flag wins
		{[]string{"--config", without}, false},
		{[]string{"--config", without, "--headless"}, true},
	}
	for _, tc := range tests {
		c, err := Load(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if c.Headless != tc.want {
			t.Errorf("%v: Headless = %v, want %v", tc.args, c.Headless, tc.want)
		}
	}
	if _, err := Load([]string{"--config", writeFile(t, "bad.json", `{"headless": "yes"}`)}, io.Discard); !errors.Is(err, ErrInvalid) {
		t.Errorf("headless as a string: %v", err)
	}
}

func TestDefaultConfigFileIsRead(t *testing.T) {
	isolate(t)
	dir, err := ConfigDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(`{"allowOrigins":["https://default.example"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.AllowOrigins, []string{"https://default.example"}) {
		t.Errorf("AllowOrigins = %v", c.AllowOrigins)
	}
}

func TestLoadErrors(t *testing.T) {
	isolate(t)
	tests := []struct {
		name string
		args []string
		file string
		want error
	}{
		{"unknown flag", []string{"--nope"}, "", ErrUsage},
		{"extra argument", []string{"extra"}, "", ErrUsage},
		{"missing explicit file", []string{"--config", "/nonexistent/cpsagent.json"}, "", os.ErrNotExist},
		{"LAN address", []string{"--listen", "192.168.1.10:47180"}, "", ErrInvalid},
		{"any address v4", []string{"--listen", "0.0.0.0:47180"}, "", ErrInvalid},
		{"any address v6", []string{"--listen", "[::]:47180"}, "", ErrInvalid},
		{"host name", []string{"--listen", "localhost:47180"}, "", ErrInvalid},
		{"no port", []string{"--listen", "127.0.0.1"}, "", ErrInvalid},
		{"bad port", []string{"--listen", "127.0.0.1:70000"}, "", ErrInvalid},
		{"zone", []string{"--listen", "[::1%lo]:47180"}, "", ErrInvalid},
		{"twice", []string{"--listen", "127.0.0.1:1", "--listen", "127.0.0.1:1"}, "", ErrInvalid},
		{"log level", []string{"--log-level", "loud"}, "", ErrInvalid},
		{"identity", []string{"--virtual-card=../../etc"}, "", ErrInvalid},
		{"pin timeout", []string{"--pin-timeout", "1s"}, "", ErrInvalid},
		{"unknown field", nil, `{"allowOrigin": ["https://typo.example"]}`, ErrInvalid},
		{"duplicate key", nil, `{"logLevel":"info","logLevel":"debug"}`, ErrInvalid},
		{"trailing data", nil, `{"logLevel":"info"} {}`, ErrInvalid},
		{"wrong type", nil, `{"listen":"127.0.0.1:1"}`, ErrInvalid},
		{"bad duration", nil, `{"pinTimeout": 30}`, ErrInvalid},
		{"half rate limit", nil, `{"rateLimit": {"burst": 5}}`, ErrInvalid},
		{"file LAN address", nil, `{"listen":["10.0.0.1:47180"]}`, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeFile(t, "c.json", tc.file)}, args...)
			}
			_, err := Load(args, io.Discard)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Load(%v) error = %v, want %v", args, err, tc.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	isolate(t)
	var b strings.Builder
	_, err := Load([]string{"-h"}, &b)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, f := range []string{"-listen", "-virtual-card", "-pinentry", "-allow-origin", "-config", "-state-dir", "-log-level"} {
		if !strings.Contains(b.String(), f) {
			t.Errorf("help lacks %s:\n%s", f, b.String())
		}
	}
}

func TestParseListen(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:47180", "[::1]:47180", "127.0.0.2:1", "127.0.0.1:0", "[::ffff:127.0.0.1]:5"} {
		if _, err := ParseListen(ok); err != nil {
			t.Errorf("ParseListen(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ":47180", "0.0.0.0:1", "[::]:1", "8.8.8.8:1", "[fe80::1]:1", "localhost:1", "127.0.0.1:x", "127.0.0.1:-1"} {
		if _, err := ParseListen(bad); err == nil {
			t.Errorf("ParseListen(%q) accepted", bad)
		}
	}
}

func TestDirs(t *testing.T) {
	home := isolate(t)
	c, err := ConfigDir()
	if err != nil || !strings.HasPrefix(c, home) || filepath.Base(c) != AppName {
		t.Errorf("ConfigDir = %q, %v", c, err)
	}
	s, err := StateDir()
	if err != nil || !strings.HasPrefix(s, home) || c == s {
		t.Errorf("StateDir = %q, %v", s, err)
	}
	if p := PolicyDir(); p == "" || !filepath.IsAbs(p) {
		t.Errorf("PolicyDir = %q", p)
	}
	// Relative XDG values are ignored (XDG Base Directory spec).
	t.Setenv("XDG_CONFIG_HOME", "relative/dir")
	if c2, _ := ConfigDir(); strings.Contains(c2, "relative") {
		t.Errorf("relative XDG_CONFIG_HOME used: %q", c2)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"listen":["127.0.0.1:1"],"rateLimit":{"burst":1,"perMinute":1}}`))
	f.Add([]byte(`{"a":{"b":{"a":1,"a":2}}}`))
	f.Add([]byte(`[[[[[[]]]]]]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
	})
}
