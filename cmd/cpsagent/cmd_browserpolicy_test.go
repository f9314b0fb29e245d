package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/cpsagent/cpsagent/internal/browserpolicy"
	"github.com/cpsagent/cpsagent/internal/consent"
)

// fakeSources sets the default origins (machine policy, configuration).
func fakeSources(t *testing.T, p consent.Policy, cfg []string, err error) {
	t.Helper()
	old := browserPolicySources
	browserPolicySources = func() (consent.Policy, []string, error) { return p, cfg, err }
	t.Cleanup(func() { browserPolicySources = old })
}

func TestBrowserPoliciesCommand(t *testing.T) {
	isolate(t)
	code, out, errb := runCmd(t, "browser-policies", "--allow-origin", "https://www.dmp.fr", "--allow-origin", "https://portail.exemple-ght.fr:8443")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errb)
	}
	var v map[string][]string
	if err := json.Unmarshal([]byte(out), &v); err != nil || !slices.Equal(v[browserpolicy.LoopbackPolicy], []string{"https://portail.exemple-ght.fr:8443", "https://www.dmp.fr"}) {
		t.Fatalf("chrome output %s (%v)", out, err)
	}

	// Default origins: the machine policy's and the configuration's.
	fakeSources(t, consent.Policy{AllowedOrigins: []string{"https://p.fr"}}, []string{"https://c.fr"}, nil)
	for format, want := range map[string]string{
		"firefox":      `"SkipDomains": [`,
		"mobileconfig": "<string>com.microsoft.Edge</string>",
		"chrome":       `"https://c.fr"`,
	} {
		code, out, errb := runCmd(t, "browser-policies", "--format", format)
		if code != exitOK || !strings.Contains(out, want) || !strings.Contains(out, "p.fr") {
			t.Errorf("--format %s: exit %d, %s %s", format, code, out, errb)
		}
	}
	if code, out, _ := runCmd(t, "browser-policies", "--format", "reg"); code != exitOK || !strings.HasPrefix(out, "\xff\xfe") {
		t.Errorf("--format reg: exit %d, % x", code, out[:min(len(out), 4)])
	}

	// Usage errors: exit status 2 and a message naming the problem.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "plist"}, "must be chrome, firefox, reg or mobileconfig"},
		{[]string{"--allow-origin", "http://portail.fr"}, "only https origins"},
		{[]string{"--allow-origin", "https://hôpital.fr"}, "non-ASCII"},
		{[]string{"--root", "/tmp"}, "--root only applies to --write"},
		{[]string{"--write", "--format", "chrome"}, "use one or the other"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--nope"}, "flag provided but not defined"},
	} {
		code, _, errb := runCmd(t, append([]string{"browser-policies"}, tt.args...)...)
		if code != exitUsage || !strings.Contains(errb, tt.want) {
			t.Errorf("%v: exit %d, %q", tt.args, code, errb)
		}
	}
	fakeSources(t, consent.Policy{}, nil, nil)
	if code, _, errb := runCmd(t, "browser-policies"); code != exitUsage || !strings.Contains(errb, "no allowed origin") {
		t.Errorf("no origin: exit %d, %q", code, errb)
	}
	if code, _, errb := runCmd(t, "browser-policies", "-h"); code != exitOK || !strings.Contains(errb, "usage: cpsagent browser-policies") {
		t.Errorf("-h: exit %d, %q", code, errb)
	}
	if code, out, _ := runCmd(t, "help"); code != exitOK || !strings.Contains(out, "browser-policies") {
		t.Errorf("help lacks the command: %s", out)
	}
}

func TestBrowserPoliciesWrite(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("--write is Linux only")
	}
	isolate(t)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "opt/google/chrome"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc/firefox/policies"), 0o755)
	f := false
	fakeSources(t, consent.Policy{AllowedOrigins: []string{"https://www.dmp.fr"}, AllowUserAdditions: &f}, []string{"https://ignored.fr"}, nil)
	code, out, errb := runCmd(t, "browser-policies", "--write", "--root", root)
	if code != exitOK || !strings.Contains(out, "1 origin(s) pre-allowed: https://www.dmp.fr") || !strings.Contains(out, "Microsoft Edge") {
		t.Fatalf("exit %d: %s %s", code, out, errb)
	}
	if r, _ := browserpolicy.Check(root, []string{"https://www.dmp.fr"}); r.Missing() || r.Checked() != 2 {
		t.Fatalf("check after --write: %v", r.Facts())
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/opt/chrome/policies/managed/cpsagent.json")); strings.Contains(string(b), "ignored.fr") {
		t.Fatal("a locked policy's origins only")
	}
	code, out, _ = runCmd(t, "browser-policies", "--write", "--root", root)
	if code != exitOK || strings.Contains(out, ": written") {
		t.Fatalf("second run: %d %s", code, out)
	}
	// A later managed file overriding cpsagent.json is reported.
	os.WriteFile(filepath.Join(root, "etc/opt/chrome/policies/managed/zz.json"),
		[]byte(`{"LoopbackNetworkAllowedForUrls": [], "LocalNetworkAccessAllowedForUrls": []}`), 0o644)
	if code, _, errb := runCmd(t, "browser-policies", "--write", "--root", root); code != exitError || !strings.Contains(errb, "overrides cpsagent.json") {
		t.Fatalf("override: %d %s", code, errb)
	}
}
