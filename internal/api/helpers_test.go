package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/memreader"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
	"github.com/cpsagent/cpsagent/internal/localca"
	"github.com/cpsagent/cpsagent/internal/logging"
	"github.com/cpsagent/cpsagent/internal/pinentry"
	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
)

const (
	testOrigin  = "https://portal.test"
	otherOrigin = "https://other.test"
	testHost    = "127.0.0.1:47180"
	readerName  = "Test Reader 0"
	goodPIN     = "7391" // the harness card's PIN (not the virtual default, so that a leak is findable)
	wrongPIN    = "5862"
)

// recordingPrompter wraps the real pinentry client and keeps the requests
// (never a secret: a Request holds no PIN) so tests can check what the
// holder was shown and how many dialogs opened.
type recordingPrompter struct {
	inner pinentry.Prompter
	mu    sync.Mutex
	reqs  []pinentry.Request
	// started is signalled when a GetPIN call begins (buffered).
	started chan pinentry.Request
	// before, when set, runs when a GetPIN call begins, before the dialog
	// (tests act "while the holder types", e.g. swap the card).
	before func(pinentry.Request)
}

func (p *recordingPrompter) GetPIN(ctx context.Context, r pinentry.Request) (*pinentry.Secret, error) {
	p.mu.Lock()
	p.reqs = append(p.reqs, r)
	before := p.before
	p.mu.Unlock()
	if before != nil {
		before(r)
	}
	select {
	case p.started <- r:
	default:
	}
	return p.inner.GetPIN(ctx, r)
}

func (p *recordingPrompter) Confirm(ctx context.Context, c pinentry.ConfirmRequest) (pinentry.Decision, error) {
	return p.inner.Confirm(ctx, c)
}

func (p *recordingPrompter) requests() []pinentry.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]pinentry.Request(nil), p.reqs...)
}

type harnessOpts struct {
	pin     pinentrytest.Options
	options func(*Options)
	noCard  bool
}

// harness is the real API over the real card engine, an in-process reader
// (memreader) holding a virtual CPS3 card, and the real pinentry client
// running the scripted fake pinentry.
type harness struct {
	t        testing.TB
	srv      *Server
	handler  http.Handler
	eng      *card.Engine
	mr       *memreader.Transport
	vc       *virtual.Card
	prompter *recordingPrompter
	pinLog   string // commands received by the fake pinentry
	logPath  string // the agent's log file
}

func newVirtualCard(t testing.TB) *virtual.Card {
	t.Helper()
	cfg, err := virtual.Identity("medecin")
	if err != nil {
		t.Fatal(err)
	}
	cfg.PIN = goodPIN
	vc, err := virtual.NewCard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return vc
}

func newHarness(t testing.TB, ho harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t}
	dir := t.TempDir()
	h.pinLog = filepath.Join(dir, "pinentry.log")
	if ho.pin.LogFile == "" {
		ho.pin.LogFile = h.pinLog
	}
	h.pinLog = ho.pin.LogFile
	if ho.pin.PIN == "" && ho.pin.PINs == nil {
		ho.pin.PIN = goodPIN
	}
	if ho.pin.PINs != nil && ho.pin.StateFile == "" {
		ho.pin.StateFile = filepath.Join(dir, "pinentry.state")
	}

	h.mr = memreader.New(readerName)
	if !ho.noCard {
		h.vc = newVirtualCard(t)
		if err := h.mr.Insert(readerName, h.vc); err != nil {
			t.Fatal(err)
		}
	}
	h.eng = card.New(h.mr, card.Options{})
	events, unsub := h.eng.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// Wait until the engine reported the card's identity (or the reader).
	want := card.EventIdentityReady
	if ho.noCard {
		want = card.EventReaderAdded
	}
	waitEvent(t, events, want)
	unsub()

	log, err := logging.New(logging.Options{Level: "debug", Dir: filepath.Join(dir, "logs")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	h.logPath = log.Path

	h.prompter = &recordingPrompter{
		inner:   pinentry.New(pinentry.Config{Program: pinentrytest.Path(), Env: ho.pin.Env(), KillGrace: time.Second, Logger: log.Logger}),
		started: make(chan pinentry.Request, 16),
	}
	opts := Options{
		AllowedOrigins: []string{testOrigin, otherOrigin},
		Ports:          []int{47180},
		Version:        "test",
		Logger:         log.Logger,
		PINTimeout:     20 * time.Second,
	}
	if ho.options != nil {
		ho.options(&opts)
	}
	h.srv, err = New(opts, h.eng, h.prompter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.srv.Close)
	h.handler = h.srv.Handler()
	return h
}

func waitEvent(t testing.TB, events <-chan card.Event, want card.EventType) card.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Type == want {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event", want)
		}
	}
}

// req builds a request with the defaults of a browser page on testOrigin:
// Host 127.0.0.1:47180, Origin, and Content-Type for POST. hdr is a list
// of name, value pairs; a value of "-" removes the header.
func req(method, path, body string, hdr ...string) *http.Request {
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, "https://"+testHost+path, strings.NewReader(body))
	} else {
		r = httptest.NewRequest(method, "https://"+testHost+path, nil)
	}
	r.Host = testHost
	r.Header.Set("Origin", testOrigin)
	if method == http.MethodPost {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		switch {
		case hdr[i] == "Host":
			r.Host = hdr[i+1]
		case hdr[i+1] == "-":
			r.Header.Del(hdr[i])
		default:
			r.Header.Set(hdr[i], hdr[i+1])
		}
	}
	return r
}

func (h *harness) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.handler.ServeHTTP(w, r)
	return w
}

func (h *harness) do(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	return h.serve(req(method, path, body, hdr...))
}

// problemOf checks that w is a well-formed problem with status and code.
func problemOf(t testing.TB, w *httptest.ResponseRecorder, status int, code string) *Problem {
	t.Helper()
	return checkProblem(t, w.Code, w.Header(), w.Body.Bytes(), status, code)
}

func checkProblem(t testing.TB, gotStatus int, hdr http.Header, body []byte, status int, code string) *Problem {
	t.Helper()
	if gotStatus != status {
		t.Fatalf("status %d, want %d (%s): %s", gotStatus, status, code, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q: %s", ct, body)
	}
	var p Problem
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	if p.Code != code || p.Status != status || p.Type != ProblemTypeBase+code || p.Title == "" || p.Detail == "" || p.DetailFr == "" {
		t.Fatalf("problem %+v, want %d %s", p, status, code)
	}
	checkGeneric(t, body)
	return &p
}

// checkGeneric fails if a body leaks implementation details.
func checkGeneric(t testing.TB, body []byte) {
	t.Helper()
	for _, leak := range []string{".go", "goroutine", "/work/", "/home/", "panic", "card:", "pinentry:", "runtime."} {
		if bytes.Contains(body, []byte(leak)) {
			t.Fatalf("body leaks %q: %s", leak, body)
		}
	}
}

func noCORS(t testing.TB, hdr http.Header) {
	t.Helper()
	for k := range hdr {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			t.Fatalf("CORS header %s: %v on a refused request", k, hdr[k])
		}
	}
}

func securityHeaders(t testing.TB, hdr http.Header) {
	t.Helper()
	for k, v := range map[string]string{
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "frame-ancestors 'none'; default-src 'none'",
		"X-Frame-Options":         "DENY",
		"Vary":                    "Origin",
	} {
		if got := hdr.Get(k); got != v {
			t.Fatalf("%s = %q, want %q", k, got, v)
		}
	}
}

func (h *harness) verifies() int64 {
	if h.vc == nil {
		return 0
	}
	return h.vc.Stats().Verifies
}

func (h *harness) prompts() int { return len(h.prompter.requests()) }

func decodeJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// live is the API served by Run on a real loopback listener with the real
// local CA, for tests that need TLS, timeouts, disconnections or
// WebSockets.
type live struct {
	base   string // https://127.0.0.1:PORT
	port   int
	client *http.Client
	roots  *x509.CertPool
	stop   func() error
}

func (h *harness) live(t *testing.T) *live {
	t.Helper()
	ln, err := Listen(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	ca, _, err := localca.Ensure(filepath.Join(t.TempDir(), "tls"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.CACert())
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- h.srv.Run(ctx, []net.Listener{ln}, ca.TLSConfig()) }()
	port := ln.Addr().(*net.TCPAddr).Port
	l := &live{
		base:  "https://127.0.0.1:" + itoa(port),
		port:  port,
		roots: roots,
		client: &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"},
		}, Timeout: 60 * time.Second},
	}
	var once sync.Once
	var stopErr error
	l.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-errc:
			case <-time.After(30 * time.Second):
				t.Error("Run did not return")
			}
			l.client.CloseIdleConnections()
		})
		return stopErr
	}
	t.Cleanup(func() { _ = l.stop() })
	return l
}

func itoa(n int) string { return strconv.Itoa(n) }

// liveReq sends a request to the live server as a browser page on origin.
func (l *live) do(t testing.TB, ctx context.Context, method, path, body string, hdr ...string) (*http.Response, []byte, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequestWithContext(ctx, method, l.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Origin", testOrigin)
	if method == http.MethodPost {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			r.Host = hdr[i+1]
			continue
		}
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := l.client.Do(r)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

type pinentryRequest = pinentry.Request

// newMissingPrompter is the real client with a program that does not exist.
func newMissingPrompter() pinentry.Prompter {
	return pinentry.New(pinentry.Config{Program: "/nonexistent/pinentry-none"})
}

// newOKPrompter is the real client answering the right PIN.
func newOKPrompter(t *testing.T) pinentry.Prompter {
	return pinentry.New(pinentry.Config{Program: pinentrytest.Path(), Env: pinentrytest.Options{PIN: goodPIN}.Env()})
}

type (
	cardPINFunc   = card.PINFunc
	cardSignature = card.Signature
)
