package install

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/localca"
)

// fakeBin makes a directory of fake commands (systemctl, update-ca-*)
// that log their arguments to calls.log, and puts it first in PATH.
// systemctlOK chooses whether "systemctl --user" reaches a manager.
func fakeBin(t *testing.T, systemctlOK bool) (logFile string) {
	t.Helper()
	dir := t.TempDir()
	logFile = filepath.Join(dir, "calls.log")
	status := "1"
	if systemctlOK {
		status = "0"
	}
	script := func(name, exit string) {
		body := "#!/bin/sh\necho \"" + name + " $*\" >> " + logFile + "\nexit " + exit + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script("systemctl", status)
	script("update-ca-certificates", "0")
	script("update-ca-trust", "0")
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return logFile
}

func calls(t *testing.T, logFile string) string {
	b, _ := os.ReadFile(logFile)
	return string(b)
}

// testHome is a home directory with the browser profiles a clinic PC has.
type testHome struct {
	home, state, exe string
}

func newTestHome(t *testing.T) *testHome {
	t.Helper()
	root := t.TempDir()
	h := &testHome{home: filepath.Join(root, "home"), state: filepath.Join(root, "state"), exe: "/usr/bin/cpsagent"}
	if err := os.MkdirAll(h.home, 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

// firefoxProfile creates a profile; withDB makes its cert9.db as Firefox
// does at first start.
func (h *testHome) firefoxProfile(t *testing.T, root, name string, withDB bool) string {
	t.Helper()
	d := filepath.Join(h.home, root, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "prefs.js"), []byte("// prefs\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if withDB {
		nssCreate(t, d)
	}
	return d
}

func nssCreate(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("certutil", "-N", "-d", "sql:"+dir, "--empty-password").CombinedOutput(); err != nil {
		t.Fatalf("certutil -N: %v: %s", err, out)
	}
}

func (h *testHome) opts(ca *testCA) Options {
	return Options{StateDir: h.state, Home: h.home, Executable: h.exe, CA: ca.Cert}
}

// certutilList is "certutil -L" for a DB ("" when there is no DB).
func certutilList(t *testing.T, dir string) string {
	t.Helper()
	if !nssHasDB(dir) {
		return ""
	}
	out, err := exec.Command("certutil", "-L", "-d", "sql:"+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("certutil -L %s: %v: %s", dir, err, out)
	}
	return string(out)
}

func trustOf(t *testing.T, dir, nick string) string {
	t.Helper()
	for _, e := range parseCertutilList([]byte(certutilList(t, dir))) {
		if e.Nickname == nick {
			return e.Trust
		}
	}
	return ""
}

// tree lists every path under root with its type (files and dirs).
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, fmt.Sprintf("%s %v", rel, d.Type()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// nssDirs lists every NSS DB under home.
func nssDirs(t *testing.T, home string) []string {
	var dirs []string
	_ = filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "cert9.db" {
			dirs = append(dirs, filepath.Dir(p))
		}
		return nil
	})
	return dirs
}

type snapshot struct {
	tree  []string
	lists map[string]string
}

func takeSnapshot(t *testing.T, home string) snapshot {
	s := snapshot{tree: tree(t, home), lists: map[string]string{}}
	for _, d := range nssDirs(t, home) {
		s.lists[d] = certutilList(t, d)
	}
	return s
}

func (s snapshot) diff(o snapshot) string {
	var b strings.Builder
	if !slices.Equal(s.tree, o.tree) {
		fmt.Fprintf(&b, "file tree differs:\nbefore: %v\nafter:  %v\n", s.tree, o.tree)
	}
	for d, l := range s.lists {
		if o.lists[d] != l {
			fmt.Fprintf(&b, "certutil -L %s differs:\nbefore:\n%s\nafter:\n%s\n", d, l, o.lists[d])
		}
	}
	if len(s.lists) != len(o.lists) {
		fmt.Fprintf(&b, "NSS DBs: %d before, %d after\n", len(s.lists), len(o.lists))
	}
	return b.String()
}

func TestInstallUninstallFreshHome(t *testing.T) {
	needTool(t, "certutil")
	callLog := fakeBin(t, false)
	h := newTestHome(t)
	ff := h.firefoxProfile(t, ".mozilla/firefox", "abcd1234.default-release", true)
	snapFF := h.firefoxProfile(t, "snap/firefox/common/.mozilla/firefox", "snap5678.default", true)
	neverStarted := h.firefoxProfile(t, ".mozilla/firefox", "zzzz.unused", false)
	if err := os.MkdirAll(filepath.Join(h.home, ".mozilla/firefox/Crash Reports"), 0o700); err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "cpsagent test CA 1")
	before := takeSnapshot(t, h.home)

	ctx := context.Background()
	var out bytes.Buffer
	o := h.opts(ca)
	o.Out = &out
	rep, err := Install(ctx, o)
	if err != nil {
		t.Fatalf("Install: %v\n%s", err, out.String())
	}
	nick := Nickname(ca.Cert)
	legacy := filepath.Join(h.home, ".pki/nssdb")
	modern := filepath.Join(h.home, ".local/share/pki/nssdb")
	for _, d := range []string{legacy, modern, ff, snapFF} {
		if got := trustOf(t, d, nick); got != "C,," {
			t.Errorf("%s: trust of %q = %q, want C,,\n%s", d, nick, got, certutilList(t, d))
		}
	}
	if nssHasDB(neverStarted) {
		t.Error("a DB was created in a Firefox profile that was never started")
	}
	if !slices.ContainsFunc(rep.Skipped, func(s string) bool { return strings.Contains(s, neverStarted) }) {
		t.Errorf("the never-started profile is not reported: %v", rep.Skipped)
	}
	// Autostart: unit, offline enable link, XDG entry.
	unit := filepath.Join(h.home, ".config/systemd/user", UnitName)
	if b, err := os.ReadFile(unit); err != nil || !bytes.Equal(b, RenderUnit(h.exe)) {
		t.Errorf("unit: %v\n%s", err, b)
	}
	if l, err := os.Readlink(filepath.Join(h.home, ".config/systemd/user/graphical-session.target.wants", UnitName)); err != nil || l != unit {
		t.Errorf("wants link = %q, %v", l, err)
	}
	if b, err := os.ReadFile(filepath.Join(h.home, ".config/autostart", DesktopName)); err != nil || !bytes.Equal(b, RenderDesktop(h.exe)) {
		t.Errorf("desktop entry: %v\n%s", err, b)
	}
	if c := calls(t, callLog); strings.Contains(c, "enable") {
		t.Errorf("systemctl enable called without a user manager: %s", c)
	}
	m, err := ReadManifest(h.state)
	if err != nil {
		t.Fatal(err)
	}
	if m.CA.SHA256 != Fingerprint(ca.Cert) || len(m.Trust) != 4 || len(m.Autostart) != 3 {
		t.Fatalf("manifest: %+v", m)
	}
	if fi, _ := os.Stat(filepath.Join(h.state, ManifestFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("manifest mode %v", fi.Mode())
	}

	// Idempotent: a second run adds nothing and keeps everything.
	rep2, err := Install(ctx, h.opts(ca))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep2.Added) != 0 || len(rep2.Removed) != 0 || len(rep2.Kept) != 7 {
		t.Errorf("second install: %+v", rep2)
	}
	m2, _ := ReadManifest(h.state)
	if len(m2.Trust) != 4 || len(m2.Autostart) != 3 {
		t.Errorf("second manifest: %+v", m2)
	}
	for _, d := range []string{legacy, ff} {
		if n := strings.Count(certutilList(t, d), nick); n != 1 {
			t.Errorf("%s lists the CA %d times", d, n)
		}
	}

	// Uninstall leaves the home exactly as it was.
	if _, err := Uninstall(ctx, h.opts(ca)); err != nil {
		t.Fatal(err)
	}
	if d := before.diff(takeSnapshot(t, h.home)); d != "" {
		t.Error(d)
	}
	if _, err := ReadManifest(h.state); !errors.Is(err, ErrNoManifest) {
		t.Errorf("manifest after uninstall: %v", err)
	}
	if _, err := os.Stat(h.state); err != nil {
		t.Errorf("state dir removed without --purge: %v", err)
	}
	// Uninstall again: nothing to do, no error.
	if rep, err := Uninstall(ctx, h.opts(ca)); err != nil || len(rep.Removed) != 0 {
		t.Errorf("second uninstall: %+v, %v", rep, err)
	}
}

func TestInstallKeepsUserData(t *testing.T) {
	needTool(t, "certutil")
	fakeBin(t, false)
	h := newTestHome(t)
	modern := filepath.Join(h.home, ".local/share/pki/nssdb")
	nssCreate(t, modern)
	// The user's own certificate in the DB stays through install/uninstall.
	other := newTestCA(t, "someone else's CA")
	pemFile := filepath.Join(t.TempDir(), "other.pem")
	e := &env{Options: Options{StateDir: t.TempDir()}}
	src, cleanup, err := e.tempPEM(other.Cert)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(src)
	cleanup()
	os.WriteFile(pemFile, b, 0o600)
	if out, err := exec.Command("certutil", "-A", "-d", "sql:"+modern, "-t", "C,,", "-n", "Hospital Root", "-i", pemFile).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	before := takeSnapshot(t, h.home)
	ca := newTestCA(t, "cpsagent test CA")
	o := h.opts(ca)
	o.TrustOnly = true
	if _, err := Install(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	// Only the modern DB exists: the legacy path must not be created (it
	// would hide this DB from Chromium 146+).
	if exists(filepath.Join(h.home, ".pki")) {
		t.Error("~/.pki created next to an existing ~/.local/share/pki/nssdb")
	}
	if trustOf(t, modern, Nickname(ca.Cert)) != "C,," || trustOf(t, modern, "Hospital Root") != "C,," {
		t.Errorf("DB after install:\n%s", certutilList(t, modern))
	}
	if exists(filepath.Join(h.home, ".config")) {
		t.Error("TrustOnly wrote autostart files")
	}
	if _, err := Uninstall(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if d := before.diff(takeSnapshot(t, h.home)); d != "" {
		t.Error(d)
	}
}

func TestInstallRenewedCA(t *testing.T) {
	needTool(t, "certutil")
	fakeBin(t, false)
	h := newTestHome(t)
	ctx := context.Background()
	ca1, ca2 := newTestCA(t, "CA one"), newTestCA(t, "CA two")
	o := h.opts(ca1)
	o.TrustOnly = true
	if _, err := Install(ctx, o); err != nil {
		t.Fatal(err)
	}
	// The user deletes the CA by hand: install puts it back.
	legacy := filepath.Join(h.home, ".pki/nssdb")
	if out, err := exec.Command("certutil", "-D", "-d", "sql:"+legacy, "-n", Nickname(ca1.Cert)).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	rep, err := Install(ctx, o)
	if err != nil || len(rep.Added) != 1 {
		t.Fatalf("re-install after a manual delete: %+v %v", rep, err)
	}
	// Renewal: CA two replaces CA one everywhere.
	o.CA = ca2.Cert
	rep, err = Install(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 2 || len(rep.Added) != 2 {
		t.Errorf("renewal report: %+v", rep)
	}
	for _, d := range []string{legacy, filepath.Join(h.home, ".local/share/pki/nssdb")} {
		l := certutilList(t, d)
		if strings.Contains(l, Nickname(ca1.Cert)) || !strings.Contains(l, Nickname(ca2.Cert)) {
			t.Errorf("%s after renewal:\n%s", d, l)
		}
	}
	m, _ := ReadManifest(h.state)
	if m.CA.SHA256 != Fingerprint(ca2.Cert) {
		t.Errorf("manifest CA %s", m.CA.SHA256)
	}
	for _, e := range m.Trust {
		if e.SHA256 != Fingerprint(ca2.Cert) || len(e.Created) == 0 {
			t.Errorf("entry %+v", e)
		}
	}
	// Purge: everything goes, including the state directory.
	o.Purge = true
	if _, err := Uninstall(ctx, o); err != nil {
		t.Fatal(err)
	}
	if exists(h.state) || exists(legacy) || exists(filepath.Join(h.home, ".local")) {
		t.Errorf("left after purge: state %v, legacy %v, .local %v", exists(h.state), exists(legacy), exists(filepath.Join(h.home, ".local")))
	}
}

func TestInstallSystemStore(t *testing.T) {
	needTool(t, "certutil")
	if os.Geteuid() != 0 {
		t.Skip("the system store is written as root here (sudo otherwise)")
	}
	log := fakeBin(t, false)
	h := newTestHome(t)
	root := t.TempDir()
	anchors := filepath.Join(root, "usr/local/share/ca-certificates")
	os.MkdirAll(anchors, 0o755)
	ca := newTestCA(t, "system CA")
	o := h.opts(ca)
	o.TrustOnly, o.System, o.sysRoot = true, true, root
	if _, err := Install(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(anchors, "cpsagent-"+Fingerprint(ca.Cert)[:16]+".crt")
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("anchor %s: %v", file, err)
	}
	if !strings.Contains(calls(t, log), "update-ca-certificates") {
		t.Error("update-ca-certificates not run")
	}
	os.Truncate(log, 0)
	if _, err := Uninstall(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if exists(file) || !strings.Contains(calls(t, log), "update-ca-certificates") {
		t.Errorf("after uninstall: file %v, calls %q", exists(file), calls(t, log))
	}
}

func TestAutostartWithUserManager(t *testing.T) {
	log := fakeBin(t, true)
	h := newTestHome(t)
	ca := newTestCA(t, "CA")
	e, _ := newEnv(h.opts(ca))
	entries, err := e.installAutostart(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := calls(t, log); !strings.Contains(c, "systemctl --user daemon-reload") || !strings.Contains(c, "systemctl --user enable cpsagent.service") {
		t.Errorf("calls: %s", c)
	}
	if !slices.ContainsFunc(entries, func(a AutostartEntry) bool { return a.Kind == AutostartSystemd }) {
		t.Errorf("entries %+v", entries)
	}
	if _, err := e.removeAutostart(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	if c := calls(t, log); !strings.Contains(c, "systemctl --user disable --now cpsagent.service") {
		t.Errorf("calls: %s", c)
	}
	if exists(filepath.Join(h.home, ".config")) {
		t.Errorf("left: %v", tree(t, h.home))
	}
}

func TestAutostartPackaged(t *testing.T) {
	fakeBin(t, false)
	h := newTestHome(t)
	root := t.TempDir()
	for _, p := range []string{"usr/lib/systemd/user/cpsagent.service", "etc/xdg/autostart/cpsagent.desktop"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte("packaged\n"), 0o644)
	}
	os.MkdirAll(filepath.Join(root, "etc/systemd/user", wantsDir), 0o755)
	os.Symlink("/usr/lib/systemd/user/cpsagent.service", filepath.Join(root, "etc/systemd/user", wantsDir, UnitName))
	ca := newTestCA(t, "CA")
	o := h.opts(ca)
	o.sysRoot = root
	e, _ := newEnv(o)
	entries, err := e.installAutostart(context.Background(), nil)
	if err != nil || len(entries) != 0 {
		t.Fatalf("with a package: %+v %v", entries, err)
	}
	if exists(filepath.Join(h.home, ".config")) {
		t.Fatalf("per-user files written next to a package: %v", tree(t, h.home))
	}
	// Uninstall for this user: the package's autostart is masked for him.
	if err := e.optOut(); err != nil {
		t.Fatal(err)
	}
	mask := filepath.Join(h.home, ".config/systemd/user", UnitName)
	if l, err := os.Readlink(mask); err != nil || l != "/dev/null" {
		t.Errorf("mask = %q %v", l, err)
	}
	hide := filepath.Join(h.home, ".config/autostart", DesktopName)
	if b, err := os.ReadFile(hide); err != nil || !bytes.Contains(b, []byte("Hidden=true")) {
		t.Errorf("hidden entry: %s %v", b, err)
	}
	// Install again: the opt-out goes away.
	e.clearOptOut()
	if _, err := os.Lstat(mask); err == nil {
		t.Error("mask kept")
	}
	if exists(hide) {
		t.Error("hidden entry kept")
	}
}

func TestAutostartForeignFileKept(t *testing.T) {
	fakeBin(t, false)
	h := newTestHome(t)
	p := filepath.Join(h.home, ".config/autostart", DesktopName)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte("[Desktop Entry]\nExec=something-else\n"), 0o644)
	e, _ := newEnv(h.opts(newTestCA(t, "CA")))
	_, err := e.installAutostart(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "was not written by cpsagent") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "[Desktop Entry]\nExec=something-else\n" {
		t.Fatalf("foreign file changed: %s", b)
	}
}

func TestRootOnUserHomeRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	h := newTestHome(t)
	if err := os.Chown(h.home, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	_, err := Install(context.Background(), h.opts(newTestCA(t, "CA")))
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 4242") {
		t.Fatalf("err = %v", err)
	}
}

// TestChromiumTrustsAfterInstall is the end-to-end check: headless
// Chromium, with HOME pointing at the test home and no certificate flag,
// fails on the agent's TLS before install, succeeds after, fails again
// after uninstall.
func TestChromiumTrustsAfterInstall(t *testing.T) {
	needTool(t, "certutil")
	chromium := needTool(t, "chromium")
	if testing.Short() {
		t.Skip("slow: starts Chromium three times per CA")
	}
	fakeBin(t, false)
	sources := []struct {
		name string
		ca   func(t *testing.T) (*x509.Certificate, *tls.Config)
	}{
		{"test CA", func(t *testing.T) (*x509.Certificate, *tls.Config) {
			ca := newTestCA(t, "cpsagent e2e CA")
			return ca.Cert, &tls.Config{Certificates: []tls.Certificate{ca.Leaf}, MinVersion: tls.VersionTLS12}
		}},
		// The agent's own CA and server certificate (internal/localca).
		{"localca", func(t *testing.T) (*x509.Certificate, *tls.Config) {
			a, _, err := localca.Ensure(filepath.Join(t.TempDir(), TLSDir))
			if err != nil {
				t.Fatal(err)
			}
			return a.CACert(), a.TLSConfig()
		}},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			h := newTestHome(t)
			caCert, tlsConf := src.ca(t)
			url, stop := serveStatus(t, tlsConf)
			defer stop()
			o := Options{StateDir: h.state, Home: h.home, Executable: h.exe, CA: caCert}

			ok, stderr := runChromium(t, chromium, h.home, url)
			if ok {
				t.Fatal("Chromium reached the agent before install")
			}
			if !strings.Contains(stderr, "ERR_CERT_AUTHORITY_INVALID") {
				t.Fatalf("before install: no ERR_CERT_AUTHORITY_INVALID in Chromium's output:\n%s", tail(stderr))
			}
			// Chromium 146+ created ~/.local/share/pki/nssdb on that first start.
			before := takeSnapshot(t, h.home)

			if _, err := Install(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			if ok, stderr := runChromium(t, chromium, h.home, url); !ok {
				t.Fatalf("Chromium did not reach the agent after install:\n%s", tail(stderr))
			}
			if _, err := Uninstall(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			if d := before.diff(takeSnapshot(t, h.home)); d != "" {
				t.Error(d)
			}
			if ok, _ := runChromium(t, chromium, h.home, url); ok {
				t.Fatal("Chromium still trusts the agent after uninstall")
			}
		})
	}
}

const statusMarker = "cpsagent-test-status-7f3e"

// serveStatus serves GET /v1/status over TLS on 127.0.0.1.
func serveStatus(t *testing.T, conf *tls.Config) (string, func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/status" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"agent":"cpsagent","marker":%q}`, statusMarker)
		}),
		TLSConfig:         conf,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // the refused handshakes are expected
	}
	go srv.ServeTLS(l, "", "")
	return "https://" + l.Addr().String() + "/v1/status", func() { srv.Close() }
}

// runChromium loads url headless with HOME=home and reports whether the
// page body was the agent's status.
func runChromium(t *testing.T, chromium, home, url string) (bool, string) {
	t.Helper()
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+filepath.Join(tmp, "profile"),
		"--dump-dom", url)
	cmd.Env = append(os.Environ(), "HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(tmp, "config"), "XDG_CACHE_HOME="+filepath.Join(tmp, "cache"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Logf("chromium: %v", err)
	}
	return strings.Contains(stdout.String(), statusMarker), stderr.String()
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}
