package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cpsagent/cpsagent/internal/api"
)

// DefaultOrigin is the portal origin the harness allows and sends.
const DefaultOrigin = "https://portal.test"

// ErrAgentExited: the agent process ended before it was asked to.
var ErrAgentExited = errors.New("harness: agent exited")

// AgentOptions configure StartAgent.
type AgentOptions struct {
	Bin string // the cpsagent binary
	// Dir holds the state directory and the config file (created).
	Dir string
	// StateDir overrides Dir/state (reuse a CA between starts).
	StateDir string
	// Origins are allowed (default DefaultOrigin).
	Origins []string
	// Pinentry is the pinentry program (see Pinentry.Program).
	Pinentry string
	// PINTimeout is the prompt timeout (default 30 s).
	PINTimeout time.Duration
	// LogLevel is the agent's log level (default info).
	LogLevel string
	// DebugMetrics sets CPSAGENT_DEBUG_METRICS=1 (GET /v1/debug/metrics).
	DebugMetrics bool
	// Env is added to the agent's environment (the harness removes
	// DISPLAY and WAYLAND_DISPLAY: the agent runs headless).
	Env []string
	// Args are extra `serve` arguments (e.g. --virtual-card=medecin).
	Args []string
	// Output receives the agent's stdout and stderr (optional).
	Output io.Writer
}

// Agent is a running `cpsagent serve`.
type Agent struct {
	Cmd      *exec.Cmd
	Base     string // https://127.0.0.1:PORT
	Client   *http.Client
	Roots    *x509.CertPool
	StateDir string
	LogFile  string
	Started  time.Time // when the process was started
	Listened time.Time // when it printed its address

	out    *LockedBuffer
	exited chan struct{}
	err    error
}

// LockedBuffer collects a process's output.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartAgent starts the agent on 127.0.0.1 (a free port) and waits until
// it listens (60 s at most: a -race build on a loaded machine is slow).
func StartAgent(ctx context.Context, o AgentOptions) (*Agent, error) {
	if o.Bin == "" || o.Dir == "" {
		return nil, errors.New("harness: AgentOptions.Bin and Dir are required")
	}
	if len(o.Origins) == 0 {
		o.Origins = []string{DefaultOrigin}
	}
	if o.PINTimeout <= 0 {
		o.PINTimeout = 30 * time.Second
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	a := &Agent{StateDir: o.StateDir, out: &LockedBuffer{}, exited: make(chan struct{})}
	if a.StateDir == "" {
		a.StateDir = filepath.Join(o.Dir, "state")
	}
	a.LogFile = filepath.Join(a.StateDir, "logs", "cpsagent.log")
	cfg := filepath.Join(o.Dir, "config.json")
	cfgJSON := fmt.Sprintf(`{"rateLimit":{"burst":100000,"perMinute":6000000},"pinTimeout":%q}`, o.PINTimeout.String())
	if err := os.WriteFile(cfg, []byte(cfgJSON), 0o600); err != nil {
		return nil, err
	}
	args := []string{"serve", "--config", cfg, "--listen", "127.0.0.1:0", "--state-dir", a.StateDir, "--log-level", o.LogLevel}
	if o.Pinentry != "" {
		args = append(args, "--pinentry", o.Pinentry)
	}
	for _, or := range o.Origins {
		args = append(args, "--allow-origin", or)
	}
	args = append(args, o.Args...)
	a.Cmd = exec.Command(o.Bin, args...)
	env := make([]string, 0, len(os.Environ())+len(o.Env)+1)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k == "DISPLAY" || k == "WAYLAND_DISPLAY" || k == "CPSAGENT_DEBUG_METRICS" {
			continue
		}
		env = append(env, kv)
	}
	if o.DebugMetrics {
		env = append(env, "CPSAGENT_DEBUG_METRICS=1")
	}
	a.Cmd.Env = append(env, o.Env...)
	a.Cmd.SysProcAttr = childAttr()
	var sink io.Writer = a.out
	if o.Output != nil {
		sink = io.MultiWriter(a.out, o.Output)
	}
	a.Cmd.Stderr = sink
	stdout, err := a.Cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	a.Started = time.Now()
	if err := a.Cmd.Start(); err != nil {
		return nil, err
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			_, _ = sink.Write([]byte(line + "\n"))
			if rest, ok := strings.CutPrefix(line, "cpsagent listening on "); ok {
				select {
				case listening <- rest:
				default:
				}
			}
		}
		a.err = a.Cmd.Wait()
		close(a.exited)
	}()
	select {
	case base := <-listening:
		a.Listened = time.Now()
		a.Base = base
	case <-a.exited:
		return nil, fmt.Errorf("%w before listening (%v):\n%s", ErrAgentExited, a.err, a.out)
	case <-time.After(60 * time.Second):
		a.Kill()
		return nil, fmt.Errorf("harness: agent not listening after 60 s:\n%s", a.out)
	case <-ctx.Done():
		a.Kill()
		return nil, ctx.Err()
	}
	pem, err := os.ReadFile(filepath.Join(a.StateDir, "tls", "ca.pem"))
	if err != nil {
		a.Kill()
		return nil, err
	}
	a.Roots = x509.NewCertPool()
	if !a.Roots.AppendCertsFromPEM(pem) {
		a.Kill()
		return nil, errors.New("harness: ca.pem holds no certificate")
	}
	a.Client = &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: a.Roots}, MaxIdleConnsPerHost: 64,
			ForceAttemptHTTP2: false},
		Timeout: 5 * time.Minute,
	}
	return a, nil
}

// PID is the agent's process id.
func (a *Agent) PID() int { return a.Cmd.Process.Pid }

// Output is everything the agent printed so far.
func (a *Agent) Output() string { return a.out.String() }

// Exited is closed when the process has ended.
func (a *Agent) Exited() <-chan struct{} { return a.exited }

// Alive reports whether the process still runs.
func (a *Agent) Alive() bool {
	select {
	case <-a.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits (30 s, then SIGKILL).
func (a *Agent) Stop() error {
	if !a.Alive() {
		return a.err
	}
	_ = a.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
		return a.err
	case <-time.After(30 * time.Second):
		a.Kill()
		return fmt.Errorf("harness: agent ignored SIGTERM for 30 s")
	}
}

// Kill ends the process at once and waits for it.
func (a *Agent) Kill() {
	if a.Alive() {
		_ = a.Cmd.Process.Kill()
		<-a.exited
	}
}

// Result is one HTTP exchange.
type Result struct {
	Status int
	Header http.Header
	Body   []byte
	Err    error
	Took   time.Duration
}

// Do sends a request as the portal page does: Origin and, for POST, JSON.
// hdr are extra header name/value pairs.
func (a *Agent) Do(ctx context.Context, method, path, body string, hdr ...string) Result {
	return a.DoOrigin(ctx, DefaultOrigin, method, path, body, hdr...)
}

// DoOrigin is Do with another Origin.
func (a *Agent) DoOrigin(ctx context.Context, origin, method, path, body string, hdr ...string) Result {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	start := time.Now()
	r, err := http.NewRequestWithContext(ctx, method, a.Base+path, rd)
	if err != nil {
		return Result{Err: err}
	}
	r.Header.Set("Origin", origin)
	if method == http.MethodPost {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.Client.Do(r)
	if err != nil {
		return Result{Err: err, Took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return Result{Status: resp.StatusCode, Header: resp.Header, Body: b, Err: err, Took: time.Since(start)}
}

// ProblemCode checks that r is a well-formed problem+json answer with a
// known code (status, type URI, French detail, no unknown field) and
// returns the code.
func ProblemCode(r Result) (string, error) {
	var p api.Problem
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return "", fmt.Errorf("status %d, not a problem (%v): %.300q", r.Status, err, r.Body)
	}
	if dec.More() {
		return p.Code, fmt.Errorf("status %d: trailing data after the problem", r.Status)
	}
	status, known := api.Codes()[p.Code]
	switch {
	case !known:
		return p.Code, fmt.Errorf("unknown problem code %q (status %d)", p.Code, r.Status)
	case status != r.Status || p.Status != r.Status:
		return p.Code, fmt.Errorf("problem %s: HTTP %d, body status %d, contract %d", p.Code, r.Status, p.Status, status)
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json"):
		return p.Code, fmt.Errorf("problem %s with Content-Type %q", p.Code, r.Header.Get("Content-Type"))
	case p.Type != api.ProblemTypeBase+p.Code || p.Title == "" || p.Detail == "" || p.DetailFr == "":
		return p.Code, fmt.Errorf("problem %s lacks type/title/detail/detailFr: %s", p.Code, r.Body)
	case p.Code == api.CodePINIncorrect && p.TriesLeft == nil:
		return p.Code, fmt.Errorf("pin_incorrect without triesLeft")
	}
	return p.Code, nil
}

// Metrics reads GET /v1/debug/metrics (DebugMetrics).
func (a *Agent) Metrics(ctx context.Context) (map[string]int64, error) {
	r := a.Do(ctx, http.MethodGet, "/v1/debug/metrics", "")
	if r.Err != nil {
		return nil, r.Err
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("harness: debug metrics: status %d %s", r.Status, r.Body)
	}
	var m map[string]int64
	if err := json.Unmarshal(r.Body, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// Status reads /v1/status.
func (a *Agent) Status(ctx context.Context) (api.StatusResponse, error) {
	var st api.StatusResponse
	r := a.Do(ctx, http.MethodGet, "/v1/status", "")
	if r.Err != nil {
		return st, r.Err
	}
	if r.Status != http.StatusOK {
		return st, fmt.Errorf("harness: status %d %s", r.Status, r.Body)
	}
	return st, json.Unmarshal(r.Body, &st)
}

// WaitCard waits until the agent reports reader with a card whose
// identity was read (present), or without a card.
func (a *Agent) WaitCard(ctx context.Context, reader string, present bool, d time.Duration) error {
	deadline := time.Now().Add(d)
	last := ""
	for {
		st, err := a.Status(ctx)
		if err == nil {
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
				return nil
			}
			last = fmt.Sprintf("%+v", st.Readers)
		} else {
			last = err.Error()
		}
		if !a.Alive() {
			return fmt.Errorf("%w: %v", ErrAgentExited, a.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("harness: reader %q card present=%v not reached in %v (last %s)", reader, present, d, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// LogEntry is one JSON line of the agent's log file.
type LogEntry map[string]any

// Msg is the entry's message.
func (e LogEntry) Msg() string { s, _ := e["msg"].(string); return s }

// Str returns a string field.
func (e LogEntry) Str(k string) string { s, _ := e[k].(string); return s }

// Num returns a numeric field.
func (e LogEntry) Num(k string) (float64, bool) { f, ok := e[k].(float64); return f, ok }

// Duration returns a duration field: the log file writes them as float
// milliseconds (zapcore.MillisDurationEncoder); a string such as "1.2ms"
// is accepted too.
func (e LogEntry) Duration(k string) (time.Duration, bool) {
	switch v := e[k].(type) {
	case float64:
		return time.Duration(v * float64(time.Millisecond)), true
	case string:
		d, err := time.ParseDuration(v)
		return d, err == nil
	}
	return 0, false
}

// ReadLog parses the agent's JSON log file from byte offset from; it
// returns the entries and the offset after the last complete line.
func ReadLog(path string, from int64) ([]LogEntry, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, from, err
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return nil, from, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, from, err
	}
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return nil, from, nil
	}
	var out []LogEntry
	for _, line := range bytes.Split(b[:end], []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e LogEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return out, from, fmt.Errorf("harness: log line %.200q: %w", line, err)
		}
		out = append(out, e)
	}
	return out, from + int64(end) + 1, nil
}
