// Package xvfb helps tests that need a real X display or other external
// programs: it starts a private Xvfb, runs X clients (xdotool, import)
// against it and stores screenshots where CI keeps them. It is imported by
// tests only.
//
// With CI=true a missing program is a test failure; otherwise the test is
// skipped with a loud reason.
package xvfb

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Require skips (or, with CI=true, fails) the test when a program is missing.
func Require(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required when CI=true: %v", n, err)
			}
			t.Skipf("SKIPPED: %s is not installed (%v). Debian: apt-get install xvfb xdotool trayer imagemagick pinentry-gtk2 pinentry-tty dbus libayatana-appindicator3-dev", n, err)
		}
	}
}

// Start starts a private Xvfb on a free display (Xvfb picks the number and
// reports it once it accepts connections) and returns its DISPLAY value.
// The server is stopped when the test ends.
func Start(t testing.TB) string {
	t.Helper()
	Require(t, "Xvfb")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-noreset", "-screen", "0", "1280x800x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		w.Close()
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // lets Xvfb remove its lock file and socket
		kill := time.AfterFunc(5*time.Second, func() { _ = cmd.Process.Kill() })
		_ = cmd.Wait()
		kill.Stop()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case n := <-line:
		if n == "" {
			t.Fatal("Xvfb exited without a display number")
		}
		return ":" + n
	case <-time.After(20 * time.Second):
		t.Fatal("Xvfb did not start in 20 s")
	}
	return ""
}

// Run runs an X client against display and returns its trimmed output.
func Run(t testing.TB, display, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// ArtifactsDir is $CPSAGENT_ARTIFACTS, or build/artifacts at the top of the
// source tree (git-ignored), created if needed.
func ArtifactsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("CPSAGENT_ARTIFACTS")
	if dir == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok || !filepath.IsAbs(file) {
			dir = filepath.Join(os.TempDir(), "cpsagent-artifacts")
		} else {
			dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "build", "artifacts")
		}
	}
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Screenshot saves the whole screen of display as a PNG in ArtifactsDir and
// returns its path.
func Screenshot(t testing.TB, display, name string) string {
	t.Helper()
	Require(t, "import")
	p := filepath.Join(ArtifactsDir(t), name)
	Run(t, display, "import", "-window", "root", p)
	if st, err := os.Stat(p); err != nil || st.Size() == 0 {
		t.Fatalf("screenshot %s: %v", p, err)
	}
	t.Logf("screenshot: %s", p)
	return p
}
