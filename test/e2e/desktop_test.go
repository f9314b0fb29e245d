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
	a := startTrayAgent(t, display)
	a.status(t)
	if err := syscall.Kill(a.info.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	a.waitExit(t, "SIGTERM")
}

// TestE2E_TrayMenu: the real tray in a real system tray. trayer (an XEmbed
// tray: no StatusNotifier host is packaged for Debian 12, and the ayatana
// indicator falls back to an XEmbed icon without one) shows the agent's
// icon; a click opens the menu of a ready card (screenshot
// build/artifacts/tray-menu.png), and choosing its last item, Quit, with
// the keyboard ends the agent with status 0.
func TestE2E_TrayMenu(t *testing.T) {
	xvfb.Require(t, "trayer", "xdotool", "import", "convert")
	display := xvfb.Start(t)
	holdDisplay(t, display)
	tray := exec.Command("trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", "200",
		"--height", "32", "--transparent", "false", "--tint", "0xcccccc")
	tray.Env = append(os.Environ(), "DISPLAY="+display)
	if err := tray.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tray.Process.Kill(); _ = tray.Wait() })
	a := startTrayAgent(t, display)
	a.status(t)

	// The icon: the agent's window of at most 64×64 inside the 32-pixel panel.
	var icon geometry
	a.poll(t, 30*time.Second, "the tray icon", func() bool {
		for _, g := range windows(t, display, filepath.Base(agentBin)) {
			if g.W > 0 && g.W <= 64 && g.H <= 64 && g.Y >= 0 && g.Y < 32 && g.X >= 1280-200 {
				icon = g
				return true
			}
		}
		return false
	})
	// The menu names the holder once the card is read.
	a.poll(t, 30*time.Second, "the card's identity", func() bool {
		resp, err := a.get("/v1/card")
		return err == nil && resp == http.StatusOK
	})
	// A click that lands while the tray is still embedding the icon is
	// lost: click again while no menu shows (at most four times).
	var menu geometry
	findMenu := func() bool {
		for _, g := range windows(t, display, filepath.Base(agentBin)) {
			if g.H >= 150 && g.Y >= 20 && g.Y < 80 {
				menu = g
				return true
			}
		}
		return false
	}
	for try := 1; ; try++ {
		xvfb.Run(t, display, "xdotool", "mousemove", strconv.Itoa(icon.X+icon.W/2), strconv.Itoa(icon.Y+icon.H/2), "click", "1")
		deadline := time.Now().Add(5 * time.Second)
		for !findMenu() && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if menu.H > 0 {
			break
		}
		if try == 4 {
			t.Fatalf("no tray menu after %d clicks on the icon at %+v:\n%s", try, icon, a.out)
		}
	}
	time.Sleep(500 * time.Millisecond) // let GTK draw the menu before the screenshot
	shot := xvfb.Screenshot(t, display, "tray-screen.png")
	crop := filepath.Join(filepath.Dir(shot), "tray-menu.png")
	geom := strconv.Itoa(menu.W+icon.W) + "x" + strconv.Itoa(menu.H+menu.Y) + "+" + strconv.Itoa(menu.X) + "+0"
	if out, err := exec.Command("convert", shot, "-crop", geom, "+repage", crop).CombinedOutput(); err != nil {
		t.Fatalf("convert: %v\n%s", err, out)
	}
	t.Logf("tray menu: %s (%dx%d at %d,%d)", crop, menu.W, menu.H, menu.X, menu.Y)

	// Up from no selection selects the last item, Quit.
	xvfb.Run(t, display, "xdotool", "key", "Up")
	time.Sleep(300 * time.Millisecond)
	xvfb.Run(t, display, "xdotool", "key", "Return")
	a.waitExit(t, "Quit in the tray menu")
}

// geometry is an X window's position and size.
type geometry struct{ X, Y, W, H int }

// windows lists the geometry of the windows whose name matches name.
func windows(t *testing.T, display, name string) []geometry {
	t.Helper()
	cmd := exec.Command("xdotool", "search", "--name", name)
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	out, _ := cmd.Output() // exit status 1 when none matches
	var gs []geometry
	for _, id := range strings.Fields(string(out)) {
		g := exec.Command("xdotool", "getwindowgeometry", "--shell", id)
		g.Env = cmd.Env
		b, err := g.Output()
		if err != nil {
			continue // the window went away
		}
		var w geometry
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, "=")
			n, _ := strconv.Atoi(v)
			switch k {
			case "X":
				w.X = n
			case "Y":
				w.Y = n
			case "WIDTH":
				w.W = n
			case "HEIGHT":
				w.H = n
			}
		}
		gs = append(gs, w)
	}
	return gs
}

// trayAgent is `cpsagent serve` with a display (the tray on its main
// thread), in a D-Bus session when dbus-run-session is installed.
type trayAgent struct {
	cmd     *exec.Cmd
	out     *lockedBuffer
	exited  chan struct{}
	waitErr error // valid once exited is closed
	wrapped bool  // under dbus-run-session
	info    install.InstanceInfo
	client  *http.Client
}

// startTrayAgent starts the agent on display with the virtual card and
// waits until it listens and its tray is up.
func startTrayAgent(t *testing.T, display string) *trayAgent {
	t.Helper()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	args := []string{agentBin, "serve", "--virtual-card", "--listen", "127.0.0.1:0", "--state-dir", state,
		"--allow-origin", portalOrigin, "--pinentry", pinentrytest.Path(), "--log-level", "debug"}
	a := &trayAgent{out: &lockedBuffer{}, exited: make(chan struct{})}
	if _, err := exec.LookPath("dbus-run-session"); err == nil {
		args = append([]string{"dbus-run-session", "--"}, args...)
		a.wrapped = true
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

	a.cmd = exec.Command(args[0], args[1:]...)
	a.cmd.Env, a.cmd.Stdout, a.cmd.Stderr = env, a.out, a.out
	// Its own process group: a failing test kills dbus-run-session, the
	// bus and the agent together.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	a.cmd.WaitDelay = 10 * time.Second
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.waitErr = a.cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() {
		select {
		case <-a.exited:
		default:
			_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
			<-a.exited
		}
	})

	// instance.json names the agent's pid and port once it listens (the
	// pid is not cmd's under dbus-run-session).
	a.poll(t, 60*time.Second, "the agent listening", func() bool {
		b, err := os.ReadFile(filepath.Join(state, install.InstanceInfoFile))
		return err == nil && json.Unmarshal(b, &a.info) == nil && a.info.Port > 0
	})
	ca, err := os.ReadFile(filepath.Join(state, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		t.Fatal("ca.pem holds no certificate")
	}
	a.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 30 * time.Second}
	// The tray, not the headless mode, took the main thread.
	a.poll(t, 60*time.Second, `"tray ready" in the log`, func() bool { return strings.Contains(a.out.String(), "tray ready") })
	return a
}

// poll calls cond every 50 ms until it holds, failing the test after
// limit or when the agent exits.
func (a *trayAgent) poll(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		select {
		case <-a.exited:
			t.Fatalf("agent exited (%v) while waiting for %s:\n%s", a.waitErr, what, a.out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s:\n%s", what, limit, a.out)
		}
	}
}

// get sends a GET from the allowed portal origin and returns the status.
func (a *trayAgent) get(path string) (int, error) {
	r, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1:"+strconv.Itoa(a.info.Port)+path, nil)
	r.Header.Set("Origin", portalOrigin)
	resp, err := a.client.Do(r)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// status requires GET /v1/status to answer 200.
func (a *trayAgent) status(t *testing.T) {
	t.Helper()
	code, err := a.get("/v1/status")
	if err != nil || code != http.StatusOK {
		t.Fatalf("status: %d %v\n%s", code, err, a.out)
	}
}

// waitExit requires the agent to end with status 0 within 30 s after
// cause, having closed its tray and released the card.
func (a *trayAgent) waitExit(t *testing.T, cause string) {
	t.Helper()
	select {
	case <-a.exited:
		if a.waitErr != nil {
			t.Fatalf("exit after %s: %v (dbus-run-session: %v)\n%s", cause, a.waitErr, a.wrapped, a.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("agent still running 30 s after %s:\n%s", cause, a.out)
	}
	for _, want := range []string{"tray closed", "stopped", "card released"} {
		if !strings.Contains(a.out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, a.out)
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
