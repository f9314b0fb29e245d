package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/install"
	"github.com/cpsagent/cpsagent/internal/ledger"
	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
	"github.com/cpsagent/cpsagent/internal/testutil/xvfb"
)

// TestE2E_LedgerAfterSign: the real agent records each card operation in
// <state>/ledger.jsonl (origin, operation, certificate serial, SHA-256,
// result), failures included, and never the PIN or the document.
func TestE2E_LedgerAfterSign(t *testing.T) {
	a := startAgent(t, agentOpts{virtual: "medecin"})
	ctx := context.Background()
	st := a.status(t)
	a.waitCard(t, st.Readers[0].Name, true, 30*time.Second)
	const pin = "1234" // the virtual card's default PIN
	a.setPIN(t, pinentrytest.Options{PIN: pin})
	data := []byte("attributs signes construits par le portail")
	must(t, a.do(ctx, http.MethodPost, "/v1/sign", `{"dataToSign":"`+b64(data)+`"}`), nil)
	doc := []byte("ORDONNANCE-CONFIDENTIELLE patient 2 84 05 75 112 233 41\n")
	must(t, a.do(ctx, http.MethodPost, "/v1/sign", `{"document":"`+b64(doc)+`","format":"cades"}`), nil)
	a.setPIN(t, pinentrytest.Options{Mode: pinentrytest.ModeCancel})
	problem(t, a.do(ctx, http.MethodPost, "/v1/sign", `{"dataToSign":"`+b64(data)+`"}`), "pin_cancelled")
	if err := a.stop(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, a.out)
	}

	raw, err := os.ReadFile(filepath.Join(a.stateDir, ledger.FileName))
	if err != nil {
		t.Fatal(err)
	}
	es, bad, err := ledger.Read(strings.NewReader(string(raw)))
	if err != nil || bad != 0 {
		t.Fatalf("ledger: %v, %d bad lines\n%s", err, bad, raw)
	}
	docSum := sha256.Sum256(doc)
	want := []struct{ sha, result string }{
		{ledger.Digest(data), "ok"},
		{hex.EncodeToString(docSum[:]), "ok"},
		{ledger.Digest(data), "pin_cancelled"},
	}
	if len(es) != len(want) {
		t.Fatalf("%d ledger entries, want %d:\n%s", len(es), len(want), raw)
	}
	for i, w := range want {
		e := es[i]
		if e.Origin != portalOrigin || e.Operation != ledger.OpSign || e.SHA256 != w.sha || e.Result != w.result {
			t.Errorf("entry %d: %+v, want sha %s result %s", i, e, w.sha, w.result)
		}
	}
	if es[0].CertSerial == "" || es[1].CertSerial != es[0].CertSerial {
		t.Errorf("certificate serials %q %q", es[0].CertSerial, es[1].CertSerial)
	}
	// grep: no PIN (as a number of its own), no document, raw or base64.
	if m := regexp.MustCompile(`(^|[^0-9A-Fa-f.])` + pin + `($|[^0-9A-Fa-f])`).Find(raw); m != nil {
		t.Errorf("the ledger holds the PIN: %q\n%s", m, raw)
	}
	for _, leak := range []string{"ORDONNANCE", b64(doc)[:24], b64(data)[:24], hex.EncodeToString(doc[:12])} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("the ledger holds %q", leak)
		}
	}
	if fi, err := os.Stat(filepath.Join(a.stateDir, ledger.FileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ledger file mode: %v %v", fi, err)
	}
}

// TestE2E_ServeWithTrayUnderXvfb: with a display (a private Xvfb, and a
// D-Bus session when dbus-run-session is installed) serve runs the tray on
// its main thread and the API beside it; /v1/status answers and SIGTERM
// ends both with status 0.
func TestE2E_ServeWithTrayUnderXvfb(t *testing.T) {
	display := xvfb.Start(t) // CI=true: Xvfb is required; elsewhere a loud skip
	holdDisplay(t, display)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	args := []string{agentBin, "serve", "--virtual-card", "--listen", "127.0.0.1:0", "--state-dir", state,
		"--allow-origin", portalOrigin, "--pinentry", pinentrytest.Path(), "--log-level", "debug"}
	wrapped := false
	if _, err := exec.LookPath("dbus-run-session"); err == nil {
		args = append([]string{"dbus-run-session", "--"}, args...)
		wrapped = true
	} else {
		t.Log("dbus-run-session not installed: the tray runs without a session bus")
	}
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "DISPLAY="+display, "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))

	out := &lockedBuffer{}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, out, out
	// Its own process group: a failing test kills dbus-run-session, the
	// bus and the agent together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})

	// instance.json names the agent's pid and port once it listens (the
	// pid is not cmd's under dbus-run-session).
	var info install.InstanceInfo
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(state, install.InstanceInfoFile)); err == nil && json.Unmarshal(b, &info) == nil && info.Port > 0 {
			break
		}
		select {
		case <-exited:
			t.Fatalf("agent exited (%v):\n%s", waitErr, out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not up after 60 s:\n%s", out)
		}
	}
	ca, err := os.ReadFile(filepath.Join(state, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		t.Fatal("ca.pem holds no certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 30 * time.Second}
	r, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1:"+strconv.Itoa(info.Port)+"/v1/status", nil)
	r.Header.Set("Origin", portalOrigin)
	resp, err := client.Do(r)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d\n%s", resp.StatusCode, out)
	}
	// The tray, not the headless mode, took the main thread.
	for !strings.Contains(out.String(), "tray ready") {
		select {
		case <-exited:
			t.Fatalf("agent exited (%v):\n%s", waitErr, out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"tray ready\" in the log:\n%s", out)
		}
	}

	if err := syscall.Kill(info.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("exit after SIGTERM: %v (dbus-run-session: %v)\n%s", waitErr, wrapped, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("agent ignored SIGTERM:\n%s", out)
	}
	for _, want := range []string{"tray closed", "stopped", "card released"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// holdDisplay keeps one X client connected for the whole test, as a desktop
// session always has (the window manager): an X server with no client left
// resets itself, and for that moment refuses connections. Without it, the
// agent's own display check (connect, close) would reset the bare Xvfb
// just before GTK connects.
func holdDisplay(t *testing.T, display string) {
	t.Helper()
	c, err := net.Dial("unix", "/tmp/.X11-unix/X"+strings.TrimPrefix(display, ":"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// X11 connection setup, little-endian, protocol 11.0, no authorisation.
	if _, err := c.Write([]byte{'l', 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply := make([]byte, 8)
	if _, err := io.ReadFull(c, reply); err != nil || reply[0] != 1 {
		t.Fatalf("X connection setup on %s: %v %v", display, reply, err)
	}
}
