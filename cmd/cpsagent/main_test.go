package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// isolate keeps the tests away from the machine's config and state.
func isolate(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	t.Setenv("HOME", d)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(d, "config"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(d, "state"))
	// In-process serve runs on a test goroutine: never the tray (systray
	// needs the main thread), whatever the developer's session has.
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	return d
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb syncBuffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersionAndHelp(t *testing.T) {
	isolate(t)
	code, out, _ := runCmd(t, "version")
	if code != 0 || !strings.HasPrefix(out, "cpsagent ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, _ := runCmd(t, "version", "extra"); code != exitUsage {
		t.Fatalf("version extra: %d", code)
	}
	code, out, _ = runCmd(t, "help")
	for _, c := range []string{"serve", "vcard", "version", "help", "(default)"} {
		if code != 0 || !strings.Contains(out, c) {
			t.Fatalf("help lacks %q: %q", c, out)
		}
	}
	if code, _, errs := runCmd(t, "frobnicate"); code != exitUsage || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errs)
	}
	if code, _, errs := runCmd(t, "serve", "-h"); code != 0 || !strings.Contains(errs, "-allow-origin") {
		t.Fatalf("serve -h: %d %q", code, errs)
	}
	if code, _, errs := runCmd(t, "vcard", "-h"); code != 0 || !strings.Contains(errs, "-vpcd") {
		t.Fatalf("vcard -h: %d %q", code, errs)
	}
}

func TestServeUsageErrors(t *testing.T) {
	dir := isolate(t)
	for _, args := range [][]string{
		{"--listen", "0.0.0.0:47180"},
		{"--listen", "192.168.0.2:47180"},
		{"--listen", "localhost:47180"},
		{"--bogus"},
		{"--allow-origin", "http://portal.example"},
		{"--allow-origin", "*"},
		{"--log-level", "chatty"},
		{"--virtual-card=nobody"},
	} {
		args = append([]string{"--state-dir", filepath.Join(dir, "s"), "--listen", "127.0.0.1:0"}, args...)
		code, _, errs := runCmd(t, append([]string{"serve"}, args...)...)
		if code != exitUsage {
			t.Errorf("serve %v: exit %d, want %d\n%s", args, code, exitUsage, errs)
		}
	}
}

// agentRun is an in-process `cpsagent serve`.
type agentRun struct {
	cancel context.CancelFunc
	done   chan int
	base   string
	stderr *syncBuffer
	client *http.Client
}

func startServe(t *testing.T, stateDir string, extra ...string) *agentRun {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	a := &agentRun{cancel: cancel, done: make(chan int, 1), stderr: &syncBuffer{}}
	args := append([]string{"serve", "--virtual-card", "--listen", "127.0.0.1:0", "--state-dir", stateDir,
		"--allow-origin", "https://portal.test", "--pinentry", pinentrytest.Path()}, extra...)
	go func() {
		a.done <- run(ctx, args, pw, a.stderr)
		pw.Close()
	}()
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l, ok := <-lines:
		if !ok || !strings.HasPrefix(l, "cpsagent listening on https://") {
			t.Fatalf("first line %q\n%s", l, a.stderr)
		}
		a.base = strings.TrimPrefix(l, "cpsagent listening on ")
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not start:\n%s", a.stderr)
	}
	go func() {
		for range lines {
		}
	}()
	pem, err := os.ReadFile(filepath.Join(stateDir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	a.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 30 * time.Second}
	t.Cleanup(func() { a.stop(t) })
	return a
}

func (a *agentRun) stop(t *testing.T) int {
	a.cancel()
	select {
	case code := <-a.done:
		a.done <- code
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
		return -1
	}
}

func (a *agentRun) get(t *testing.T, path string) *http.Response {
	t.Helper()
	r, _ := http.NewRequest(http.MethodGet, a.base+path, nil)
	r.Header.Set("Origin", "https://portal.test")
	resp, err := a.client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestServeVirtualCard(t *testing.T) {
	dir := isolate(t)
	a := startServe(t, filepath.Join(dir, "state"))
	if resp := a.get(t, "/v1/status"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if code := a.stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, a.stderr)
	}
	for _, want := range []string{"VIRTUAL card", "listening", "shutting down", "card released"} {
		if !strings.Contains(a.stderr.String(), want) {
			t.Errorf("console lacks %q:\n%s", want, a.stderr)
		}
	}
	logf := filepath.Join(dir, "state", "logs", "cpsagent.log")
	if fi, err := os.Stat(logf); err != nil || fi.Size() == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("log file: %v %v", fi, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "state")); fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v", fi.Mode().Perm())
	}
}

func TestSec05_KeysPerInstall(t *testing.T) {
	dir := isolate(t)
	fp := func(state string) []byte {
		a := startServe(t, state)
		a.stop(t)
		b, err := os.ReadFile(filepath.Join(state, "tls", "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	one := fp(filepath.Join(dir, "one"))
	two := fp(filepath.Join(dir, "two"))
	if bytes.Equal(one, two) {
		t.Fatal("two installs share a CA")
	}
	if again := fp(filepath.Join(dir, "one")); !bytes.Equal(one, again) {
		t.Fatal("a restart replaced the CA (trust stores would break)")
	}
}

func TestSec06_PortTakenFailsLoudly(t *testing.T) {
	dir := isolate(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, errs := runCmd(t, "serve", "--virtual-card", "--listen", ln.Addr().String(), "--state-dir", filepath.Join(dir, "s"),
		"--allow-origin", "https://portal.test")
	if code != exitError || !strings.Contains(errs, "address already in use") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}
