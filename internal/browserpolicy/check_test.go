package browserpolicy

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func mkfile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func status(r Report, id string) Status {
	for _, s := range r.Browsers {
		if s.Browser.ID == id {
			return s
		}
	}
	return Status{}
}

func TestWriteThenCheck(t *testing.T) {
	root := t.TempDir()
	origins := []string{"https://www.dmp.fr", "https://portail.exemple-ght.fr:8443"}
	// Chrome installed, no policy directory yet; Edge with a directory and
	// another administrator file; Firefox with a policies.json holding
	// other policies; Chromium absent.
	if err := os.MkdirAll(filepath.Join(root, "opt/google/chrome"), 0o755); err != nil {
		t.Fatal(err)
	}
	mkfile(t, filepath.Join(root, "etc/opt/edge/policies/managed/admin.json"), `{"HomepageLocation": "https://intranet"}`)
	const ffOld = `{"policies": {"Certificates": {"ImportEnterpriseRoots": true}, "LocalNetworkAccess": {"SkipDomains": ["nas.local"]}}}`
	ffPath := filepath.Join(root, "etc/firefox/policies/policies.json")
	mkfile(t, ffPath, ffOld)

	before, err := Check(root, origins)
	if err != nil {
		t.Fatal(err)
	}
	if !before.Missing() || before.Checked() != 3 || status(before, "chromium").Checked {
		t.Fatalf("before: %v", before.Facts())
	}
	if s := status(before, "chrome"); len(s.Missing) != 2 {
		t.Fatalf("chrome before: %+v", s)
	}

	changes, err := Write(root, origins)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]string{}
	for _, c := range changes {
		actions[c.Browser.ID] = c.Action
	}
	if actions["chrome"] != "written" || actions["edge"] != "written" || actions["firefox"] != "written" || actions["chromium"] != "not installed" {
		t.Fatalf("actions %v", actions)
	}
	for _, p := range []string{"etc/opt/chrome/policies/managed/cpsagent.json", "etc/opt/edge/policies/managed/cpsagent.json", "etc/firefox/policies/policies.json"} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil || fi.Mode().Perm() != 0o644 {
			t.Fatalf("%s: %v %v", p, fi, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/chromium")); !os.IsNotExist(err) {
		t.Fatal("Chromium is not installed: nothing must be created for it")
	}
	if b, _ := os.ReadFile(ffPath + ".bak"); string(b) != ffOld {
		t.Fatalf("Firefox backup: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/opt/edge/policies/managed/admin.json")); !strings.Contains(string(b), "HomepageLocation") {
		t.Fatal("another managed file was touched")
	}
	ff, _ := os.ReadFile(ffPath)
	if lna := lnaOf(t, ff); len(lna["SkipDomains"].([]any)) != 3 || decode(t, ff)["policies"].(map[string]any)["Certificates"] == nil {
		t.Fatalf("merged Firefox file: %s", ff)
	}
	noTemp(t, root)

	after, err := Check(root, origins)
	if err != nil {
		t.Fatal(err)
	}
	if after.Missing() || after.Checked() != 3 {
		t.Fatalf("after: %v", after.Facts())
	}
	for _, s := range after.Browsers {
		if s.Checked && len(s.Allowed) != 2 {
			t.Errorf("%s allows %q", s.Browser.Name, s.Allowed)
		}
	}

	// Second run: nothing to do, no backup rewritten.
	os.Remove(ffPath + ".bak")
	changes, err = Write(root, origins)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Action == "written" {
			t.Errorf("second run rewrote %s", c.Path)
		}
	}
	if _, err := os.Stat(ffPath + ".bak"); !os.IsNotExist(err) {
		t.Error("second run made a backup")
	}

	// New origins: our Chrome file changes and its backup goes beside the
	// managed directory (Chrome reads every file inside it).
	if _, err := Write(root, append(origins, "https://new.fr")); err != nil {
		t.Fatal(err)
	}
	bak := filepath.Join(root, "etc/opt/chrome/policies/cpsagent.json.bak")
	if b, err := os.ReadFile(bak); err != nil || strings.Contains(string(b), "new.fr") {
		t.Fatalf("chrome backup: %q %v", b, err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "etc/opt/chrome/policies/managed"))
	if len(entries) != 1 {
		t.Fatalf("managed dir holds %d files", len(entries))
	}
}

func noTemp(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

func TestWriteLeavesMalformedFirefox(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "opt/google/chrome"), 0o755)
	ffPath := filepath.Join(root, "etc/firefox/policies/policies.json")
	const bad = `{"policies": {"LocalNetworkAccess": {"SkipDomains": "nas.local"}}}`
	mkfile(t, ffPath, bad)
	changes, err := Write(root, []string{"https://www.dmp.fr"})
	if err == nil || !strings.Contains(err.Error(), "left unchanged") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(ffPath); string(b) != bad {
		t.Fatal("malformed policies.json was modified")
	}
	if _, err := os.Stat(ffPath + ".bak"); !os.IsNotExist(err) {
		t.Fatal("backup of a file left unchanged")
	}
	if !slices.ContainsFunc(changes, func(c Change) bool { return c.Browser.ID == "chrome" && c.Action == "written" }) {
		t.Fatalf("Chrome not written: %+v", changes)
	}
	r, _ := Check(root, []string{"https://www.dmp.fr"})
	if s := status(r, "firefox"); !s.Checked || len(s.Problems) != 1 || len(s.Missing) != 1 {
		t.Fatalf("firefox: %+v", s)
	}
}

func TestCheckLastFileWins(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc/opt/chrome/policies/managed")
	o := []string{"https://www.dmp.fr"}
	data, _ := ChromeJSON(o)
	mkfile(t, filepath.Join(dir, ChromeFileName), string(data))
	// A later file sets one of the policies: that one still allows.
	mkfile(t, filepath.Join(dir, "zz-site.json"), `{"LoopbackNetworkAllowedForUrls": ["https://other.fr"]}`)
	if r, _ := Check(root, o); r.Missing() {
		t.Fatalf("LocalNetworkAccessAllowedForUrls of cpsagent.json still applies: %v", r.Facts())
	}
	// A later file sets both: cpsagent.json is overridden.
	mkfile(t, filepath.Join(dir, "zz-site.json"), `{"LoopbackNetworkAllowedForUrls": ["https://other.fr"], "LocalNetworkAccessAllowedForUrls": []}`)
	if r, _ := Check(root, o); !r.Missing() {
		t.Fatalf("later file should win: %v", r.Facts())
	}
	// An earlier file does not override cpsagent.json; a wildcard pattern counts.
	mkfile(t, filepath.Join(dir, "zz-site.json"), `{"LocalNetworkAccessAllowedForUrls": ["[*.]dmp.fr"]}`)
	mkfile(t, filepath.Join(dir, "aa.json"), `{"LocalNetworkAccessAllowedForUrls": [], "LoopbackNetworkAllowedForUrls": []}`)
	os.Remove(filepath.Join(dir, ChromeFileName))
	if r, _ := Check(root, o); r.Missing() {
		t.Fatalf("wildcard in the last file: %v", r.Facts())
	}
	mkfile(t, filepath.Join(dir, "broken.json"), `{`)
	r, _ := Check(root, o)
	if s := status(r, "chrome"); len(s.Problems) != 1 || !bytes.Contains([]byte(strings.Join(r.Facts(), "\n")), []byte("broken.json")) {
		t.Fatalf("broken file not reported: %v", r.Facts())
	}
}

func TestCheckFirefoxDisabled(t *testing.T) {
	root := t.TempDir()
	mkfile(t, filepath.Join(root, "etc/firefox/policies/policies.json"), `{"policies": {"LocalNetworkAccess": {"Enabled": false}}}`)
	if r, _ := Check(root, []string{"https://www.dmp.fr"}); r.Missing() || r.Checked() != 1 {
		t.Fatalf("Local Network Access off: nothing to pre-allow: %v", r.Facts())
	}
}
