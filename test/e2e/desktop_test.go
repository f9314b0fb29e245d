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
	d := startTrayDesktop(t)
	menu := d.openMenu(t)
	time.Sleep(500 * time.Millisecond) // let GTK draw the menu before the screenshot
	shot := xvfb.Screenshot(t, d.display, "tray-screen.png")
	crop := filepath.Join(filepath.Dir(shot), "tray-menu.png")
	geom := strconv.Itoa(menu.W+d.icon.W) + "x" + strconv.Itoa(menu.H+menu.Y) + "+" + strconv.Itoa(menu.X) + "+0"
	if out, err := exec.Command("convert", shot, "-crop", geom, "+repage", crop).CombinedOutput(); err != nil {
		t.Fatalf("convert: %v\n%s", err, out)
	}
	t.Logf("tray menu: %s (%dx%d at %d,%d)", crop, menu.W, menu.H, menu.X, menu.Y)

	d.keys(t, "Up", "Return") // from no selection, Up selects the last item: Quit
	d.a.waitExit(t, "Quit in the tray menu")
}

// TestE2E_TrayChangePIN: "Change PIN" chosen in the real tray menu runs the
// PIN change through the pinentry program (old PIN, new PIN, confirmation)
// on the card; the portal's next signature then needs the new PIN.
func TestE2E_TrayChangePIN(t *testing.T) {
	dir := t.TempDir()
	pins := pinentrytest.Options{PINs: []string{"1234", "5678", "5678", "5678"},
		StateFile: filepath.Join(dir, "pinentry-state"), LogFile: filepath.Join(dir, "pinentry.log")}
	d := startTrayDesktop(t, pins.Env()...)
	d.openMenu(t)
	// Down skips the two insensitive status lines: allowed sites, recent
	// activity, then Change PIN.
	d.keys(t, "Down", "Down", "Down", "Return")
	result := d.waitPINManagement(t)
	if !strings.Contains(result, `"op": "change-pin"`) || !strings.Contains(result, `"result": "ok"`) {
		t.Fatalf("PIN change from the tray: %s\n%s", result, d.a.out)
	}
	log, err := pinentrytest.ReadLog(pins.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(log, "GETPIN"); n != 3 {
		t.Fatalf("%d PIN dialogs for a PIN change, want 3 (old, new, confirmation): %q", n, log)
	}
	// The last scripted answer, 5678, must now open the card.
	code, body, err := d.a.post("/v1/sign", `{"dataToSign":"`+b64([]byte("attributs signes"))+`"}`)
	if err != nil || code != http.StatusOK {
		t.Fatalf("sign with the new PIN: %d %v %s\n%s", code, err, body, d.a.out)
	}
	for _, secret := range []string{"1234", "5678"} {
		if strings.Contains(d.a.out.String(), secret) {
			t.Errorf("the agent's log holds a PIN (%s)", secret)
		}
	}
	d.keysToQuit(t)
}

// TestE2E_TrayUnblockPIN: a PIN blocked by three wrong codes at the portal
// is unblocked from the real tray menu with the PUK and a new PIN (through
// the pinentry program); the portal's next signature needs the new PIN.
func TestE2E_TrayUnblockPIN(t *testing.T) {
	dir := t.TempDir()
	pins := pinentrytest.Options{PINs: []string{"0000", "0000", "0000", "12345678", "4321", "4321", "4321"},
		StateFile: filepath.Join(dir, "pinentry-state"), LogFile: filepath.Join(dir, "pinentry.log")}
	d := startTrayDesktop(t, pins.Env()...)
	sign := `{"dataToSign":"` + b64([]byte("attributs signes")) + `"}`
	for i, want := range []string{"pin_incorrect", "pin_incorrect", "pin_blocked"} {
		code, body, err := d.a.post("/v1/sign", sign)
		if err != nil || !strings.Contains(string(body), `"code":"`+want+`"`) {
			t.Fatalf("wrong PIN %d: %d %v %s, want %s", i+1, code, err, body, want)
		}
	}
	d.openMenu(t)
	// Counted from the end, Unblock PIN is fifth (diagnostics, log
	// folder, about and quit follow it, always enabled); Change PIN, above
	// it, is disabled while the PIN is blocked.
	d.keys(t, "Up", "Up", "Up", "Up", "Up", "Return")
	result := d.waitPINManagement(t)
	if !strings.Contains(result, `"op": "unblock-pin"`) || !strings.Contains(result, `"result": "ok"`) {
		t.Fatalf("PIN unblock from the tray: %s\n%s", result, d.a.out)
	}
	if code, body, err := d.a.post("/v1/sign", sign); err != nil || code != http.StatusOK {
		t.Fatalf("sign with the new PIN: %d %v %s\n%s", code, err, body, d.a.out)
	}
	for _, secret := range []string{"12345678", "4321"} {
		if strings.Contains(d.a.out.String(), secret) {
			t.Errorf("the agent's log holds a secret (%s)", secret)
		}
	}
	d.keysToQuit(t)
}

// countPrefix counts the lines that start with prefix.
func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// trayDesktop is a private Xvfb with a system tray (trayer) in which the
// agent's tray icon sits.
type trayDesktop struct {
	display string
	a       *trayAgent
	icon    geometry
}

// startTrayDesktop starts Xvfb, trayer and the agent (env is added to its
// environment), and waits for the icon and the card's identity.
func startTrayDesktop(t *testing.T, env ...string) *trayDesktop {
	t.Helper()
	xvfb.Require(t, "trayer", "xdotool", "import", "convert")
	d := &trayDesktop{display: xvfb.Start(t)}
	holdDisplay(t, d.display)
	tray := exec.Command("trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", "200",
		"--height", "32", "--transparent", "false", "--tint", "0xcccccc")
	tray.Env = append(os.Environ(), "DISPLAY="+d.display)
	if err := tray.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tray.Process.Kill(); _ = tray.Wait() })
	d.a = startTrayAgent(t, d.display, env...)
	d.a.status(t)
	// The icon: the agent's window of at most 64×64 inside the 32-pixel panel.
	d.a.poll(t, 30*time.Second, "the tray icon", func() bool {
		for _, g := range windows(t, d.display, filepath.Base(agentBin)) {
			if g.W > 0 && g.W <= 64 && g.H <= 64 && g.Y >= 0 && g.Y < 32 && g.X >= 1280-200 {
				d.icon = g
				return true
			}
		}
		return false
	})
	// The menu names the holder once the card is read.
	d.a.poll(t, 30*time.Second, "the card's identity", func() bool {
		code, err := d.a.get("/v1/card")
		return err == nil && code == http.StatusOK
	})
	return d
}

// openMenu clicks the icon until the menu shows (a click that lands while
// the tray is still embedding the icon is lost; at most four clicks) and
// returns the menu window's geometry.
func (d *trayDesktop) openMenu(t *testing.T) geometry {
	t.Helper()
	for try := 1; ; try++ {
		xvfb.Run(t, d.display, "xdotool", "mousemove", strconv.Itoa(d.icon.X+d.icon.W/2), strconv.Itoa(d.icon.Y+d.icon.H/2), "click", "1")
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			for _, g := range windows(t, d.display, filepath.Base(agentBin)) {
				if g.H >= 150 && g.Y >= 20 && g.Y < 80 {
					return g
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		if try == 4 {
			t.Fatalf("no tray menu after %d clicks on the icon at %+v:\n%s", try, d.icon, d.a.out)
		}
	}
}

// waitPINManagement waits for the agent's "PIN management" log line (the
// end of a PIN change or unblock) and returns it.
func (d *trayDesktop) waitPINManagement(t *testing.T) string {
	t.Helper()
	var result string
	d.a.poll(t, 30*time.Second, "the PIN flow's result in the log", func() bool {
		for _, line := range strings.Split(d.a.out.String(), "\n") {
			if strings.Contains(line, "PIN management") {
				result = line
				return true
			}
		}
		return false
	})
	t.Logf("agent: %s", result)
	return result
}

// keys types keys into the open menu, a moment apart.
func (d *trayDesktop) keys(t *testing.T, keys ...string) {
	t.Helper()
	for _, k := range keys {
		xvfb.Run(t, d.display, "xdotool", "key", k)
		time.Sleep(300 * time.Millisecond)
	}
}

// keysToQuit opens the menu, chooses Quit and waits for a clean exit.
func (d *trayDesktop) keysToQuit(t *testing.T) {
	t.Helper()
	d.openMenu(t)
	d.keys(t, "Up", "Return")
	d.a.waitExit(t, "Quit in the tray menu")
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
func startTrayAgent(t *testing.T, display string, extraEnv ...string) *trayAgent {
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
	env = append(env, extraEnv...)

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

// post sends a JSON POST from the allowed portal origin.
func (a *trayAgent) post(path, body string) (int, []byte, error) {
	r, _ := http.NewRequest(http.MethodPost, "https://127.0.0.1:"+strconv.Itoa(a.info.Port)+path, strings.NewReader(body))
	r.Header.Set("Origin", portalOrigin)
	r.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(r)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
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
