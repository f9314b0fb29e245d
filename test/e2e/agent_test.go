package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cpsagent/cpsagent/internal/api"
	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
)

const (
	portalOrigin = "https://portal.test"
	vpcdAddr     = "127.0.0.1:35963"
	vpcdReader   = "Virtual PCD 00 00"
)

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a child process with its output and exit.
type proc struct {
	cmd    *exec.Cmd
	out    *lockedBuffer // stdout and stderr
	lines  chan string   // stdout lines
	exited chan struct{}
	err    error
}

// startProc starts the agent binary. The process is killed when owner
// ends (owner may be a parent of t, so that a process started in a subtest
// outlives it).
func startProc(t, owner testing.TB, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{out: &lockedBuffer{}, lines: make(chan string, 256), exited: make(chan struct{})}
	p.cmd = exec.Command(agentBin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.out
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.out.Write([]byte(line + "\n"))
			select {
			case p.lines <- line:
			default:
			}
		}
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	owner.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitLine waits for a stdout line containing s.
func (p *proc) waitLine(t testing.TB, s string, d time.Duration) string {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, s) {
				return l
			}
		case <-p.exited:
			t.Fatalf("process exited (%v) before printing %q:\n%s", p.err, s, p.out)
		case <-timeout:
			t.Fatalf("no %q after %v:\n%s", s, d, p.out)
		}
	}
}

// stop sends SIGTERM and waits for the exit.
func (p *proc) stop(t testing.TB) error {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("process ignored SIGTERM:\n%s", p.out)
		return nil
	}
}

// vcard runs `cpsagent vcard` on vpcd slot 0 with a copy of the pristine
// card state. args are added to the command line (e.g. --model cps4, or
// --vpcd for another slot) and kept for a restart with the same state.
type vcard struct {
	*proc
	state string
	args  []string
}

func startVCard(t, owner testing.TB, state string, args ...string) *vcard {
	t.Helper()
	p := startProc(t, owner, nil, append([]string{"vcard", "--vpcd", vpcdAddr, "--state", state}, args...)...)
	p.waitLine(t, "card inserted", 30*time.Second)
	return &vcard{proc: p, state: state, args: args}
}

// agent is a running `cpsagent serve`.
type agent struct {
	*proc
	stateDir string
	bases    []string // https://127.0.0.1:P and https://[::1]:P
	client   *http.Client
	roots    *x509.CertPool
	ctl      string // sourced by the pinentry wrapper before each dialog
	pinLog   string // FAKE_PINENTRY_LOG
	pinState string
}

type agentOpts struct {
	virtual string // --virtual-card=IDENTITY; "" = PC/SC
	args    []string
}

func ipv6Loopback() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func startAgent(t testing.TB, o agentOpts) *agent {
	t.Helper()
	dir := t.TempDir()
	a := &agent{
		stateDir: filepath.Join(dir, "state"),
		ctl:      filepath.Join(dir, "pinentry.env"),
		pinLog:   filepath.Join(dir, "pinentry.log"),
		pinState: filepath.Join(dir, "pinentry.state"),
	}
	a.setPIN(t, pinentrytest.Options{PIN: "0000"})
	wrapper := filepath.Join(dir, "pinentry-wrapper")
	script := "#!/bin/sh\n. '" + a.ctl + "'\nexec '" + pinentrytest.Path() + "' \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// The config file sets what the flags do not (flags win over it).
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(`{"rateLimit":{"burst":1000,"perMinute":60000},"logLevel":"info","pinTimeout":"30s"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--config", cfg, "--listen", "127.0.0.1:0", "--pinentry", wrapper,
		"--allow-origin", portalOrigin, "--state-dir", a.stateDir, "--log-level", "debug"}
	if ipv6Loopback() {
		args = append(args, "--listen", "[::1]:0")
	}
	if o.virtual != "" {
		args = append(args, "--virtual-card="+o.virtual)
	}
	args = append(args, o.args...)
	a.proc = startProc(t, t, []string{"CPSAGENT_DEBUG_METRICS=1"}, args...)
	want := strings.Count(strings.Join(args, " "), "--listen")
	for i := 0; i < want; i++ {
		l := a.waitLine(t, "cpsagent listening on https://", 60*time.Second)
		a.bases = append(a.bases, strings.TrimPrefix(l, "cpsagent listening on "))
	}
	pem, err := os.ReadFile(filepath.Join(a.stateDir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	a.roots = x509.NewCertPool()
	if !a.roots.AppendCertsFromPEM(pem) {
		t.Fatal("ca.pem holds no certificate")
	}
	a.client = &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: a.roots}, MaxIdleConnsPerHost: 64},
		Timeout:   90 * time.Second,
	}
	t.Cleanup(func() {
		select {
		case <-a.exited:
		default:
			_ = a.stop(t)
		}
	})
	return a
}

// setPIN writes the fake pinentry's behaviour for the next dialogs.
func (a *agent) setPIN(t testing.TB, o pinentrytest.Options) {
	t.Helper()
	o.LogFile = a.pinLog
	if len(o.PINs) > 0 {
		o.StateFile = a.pinState
		_ = os.Remove(a.pinState)
	}
	var b strings.Builder
	for _, kv := range o.Env() {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s='%s'\n", k, v)
	}
	if err := os.WriteFile(a.ctl, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitGETPIN waits until the fake pinentry received more than before
// GETPIN commands (a dialog is open).
func (a *agent) waitGETPIN(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for a.getPINs(t) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("no PIN dialog:\n%s", a.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// getPINs counts the GETPIN commands the fake pinentry received so far.
func (a *agent) getPINs(t testing.TB) int {
	lines, err := pinentrytest.ReadLog(a.pinLog)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "GETPIN") {
			n++
		}
	}
	return n
}

type result struct {
	status int
	hdr    http.Header
	body   []byte
	err    error
}

func (r result) code() string {
	var p api.Problem
	_ = json.Unmarshal(r.body, &p)
	return p.Code
}

// do sends a request as the portal page: Origin, and JSON for POST.
func (a *agent) do(ctx context.Context, method, path, body string, hdr ...string) result {
	return a.doBase(ctx, a.bases[0], method, path, body, hdr...)
}

func (a *agent) doBase(ctx context.Context, base, method, path, body string, hdr ...string) result {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return result{err: err}
	}
	r.Header.Set("Origin", portalOrigin)
	if method == http.MethodPost {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.client.Do(r)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, hdr: resp.Header, body: b, err: err}
}

// must checks a 200 answer and decodes it.
func must(t testing.TB, r result, v any) {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if v != nil {
		dec := json.NewDecoder(bytes.NewReader(r.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%s: %v", r.body, err)
		}
	}
}

// problem checks a well-formed problem answer with one of codes.
func problem(t testing.TB, r result, codes ...string) *api.Problem {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	var p api.Problem
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("status %d, not a problem: %s (%v)", r.status, r.body, err)
	}
	if r.hdr.Get("Content-Type") != "application/problem+json" || p.Status != r.status || api.Codes()[p.Code] != r.status ||
		p.DetailFr == "" || p.Type != api.ProblemTypeBase+p.Code {
		t.Fatalf("malformed problem %d %+v", r.status, p)
	}
	for _, c := range codes {
		if p.Code == c {
			return &p
		}
	}
	t.Fatalf("problem %s (%d), want one of %v: %s", p.Code, r.status, codes, r.body)
	return nil
}

// status reads /v1/status.
func (a *agent) status(t testing.TB) api.StatusResponse {
	t.Helper()
	var st api.StatusResponse
	must(t, a.do(context.Background(), http.MethodGet, "/v1/status", ""), &st)
	return st
}

// waitCard waits until the agent sees a card whose identity was read in
// reader (present=true) or no card there (present=false).
func (a *agent) waitCard(t testing.TB, reader string, present bool, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := a.status(t)
		ok := !present
		for _, r := range st.Readers {
			if r.Name != reader {
				continue
			}
			if present {
				ok = r.CardPresent && r.Card != nil && r.Card.Serial != ""
			} else {
				ok = !r.CardPresent
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader %q: card present=%v not reached in %v: %+v\n%s", reader, present, d, st, a.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metrics reads the debug goroutine count and the agent's open file
// descriptors (/proc).
func (a *agent) metrics(t testing.TB) (goroutines, fds int) {
	t.Helper()
	var m map[string]int
	must(t, a.do(context.Background(), http.MethodGet, "/v1/debug/metrics", ""), &m)
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(a.cmd.Process.Pid) + "/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	return m["goroutines"], len(ents)
}

// events opens the agent's event stream as the portal origin, checks its
// hello message and returns a function that reads the next message (the
// stream closes when t ends; reads fail the test after d).
func (a *agent) events(t *testing.T, ctx context.Context, d time.Duration) (next func() map[string]any) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, d)
	t.Cleanup(cancel)
	c, _, err := websocket.Dial(wctx, strings.Replace(a.bases[0], "https://", "wss://", 1)+"/v1/events",
		&websocket.DialOptions{HTTPClient: a.client, HTTPHeader: http.Header{"Origin": {portalOrigin}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	next = func() map[string]any {
		t.Helper()
		_, b, err := c.Read(wctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
	if m := next(); m["type"] != "hello" {
		t.Fatalf("first message %v", m)
	}
	return next
}
