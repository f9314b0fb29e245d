package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
)

func TestSec01_LoopbackOnly(t *testing.T) {
	for _, a := range []string{"0.0.0.0:0", "[::]:0", "192.168.1.20:0", "10.0.0.1:0", "[fe80::1]:0", "8.8.8.8:0"} {
		if ln, err := Listen(context.Background(), netip.MustParseAddrPort(a)); err == nil {
			ln.Close()
			t.Errorf("Listen(%s) accepted", a)
		}
	}
	ln, err := Listen(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	// The port is not reachable through another address of the host.
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ipn.IP.String(), itoa(port)), time.Second)
		if err == nil {
			c.Close()
			t.Errorf("agent reachable on %s", ipn.IP)
		}
	}
}

func TestSec02_NoPlainHTTP(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	l := h.live(t)
	for _, target := range []string{"/v1/status", "/v1/events"} {
		c, err := net.Dial("tcp", "127.0.0.1:"+itoa(l.port))
		if err != nil {
			t.Fatal(err)
		}
		req := "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + itoa(l.port) + "\r\nOrigin: " + testOrigin +
			"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, req)
		b, _ := io.ReadAll(c)
		c.Close()
		s := string(b)
		if strings.Contains(s, "apiVersion") || strings.Contains(s, "101 Switching") || strings.Contains(s, "Location:") {
			t.Fatalf("plain HTTP served: %q", s)
		}
		if s != "" && !strings.HasPrefix(s, "HTTP/1.0 400") {
			t.Fatalf("plain HTTP answer %q", s)
		}
	}
}

func TestSec03_TLSVersions(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	l := h.live(t)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		c, err := tls.Dial("tcp", "127.0.0.1:"+itoa(l.port), &tls.Config{RootCAs: l.roots, ServerName: "localhost", MinVersion: v, MaxVersion: v})
		if err == nil {
			c.Close()
			t.Fatalf("TLS %x accepted", v)
		}
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c, err := tls.Dial("tcp", "127.0.0.1:"+itoa(l.port), &tls.Config{RootCAs: l.roots, ServerName: "localhost", MinVersion: v, MaxVersion: v,
			NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatalf("TLS %x: %v", v, err)
		}
		st := c.ConnectionState()
		if st.NegotiatedProtocol == "h2" {
			t.Fatal("HTTP/2 negotiated")
		}
		leaf := st.PeerCertificates[0]
		if strings.Join(leaf.DNSNames, ",") != "localhost" || len(leaf.IPAddresses) != 2 {
			t.Fatalf("leaf SANs %v %v", leaf.DNSNames, leaf.IPAddresses)
		}
		c.Close()
	}
	// A rebinding name in SNI never gets a certificate.
	if c, err := tls.Dial("tcp", "127.0.0.1:"+itoa(l.port), &tls.Config{RootCAs: l.roots, ServerName: "attacker.example"}); err == nil {
		c.Close()
		t.Fatal("handshake for attacker.example")
	}
}

func TestSec06_PortTaken(t *testing.T) {
	ln, err := Listen(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ap := netip.MustParseAddrPort(ln.Addr().String())
	if ln2, err := Listen(context.Background(), ap); err == nil {
		ln2.Close()
		t.Fatal("second listener on the same port")
	}
	// A squatter that bound the port first makes the agent fail too.
	sq, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	if ln3, err := Listen(context.Background(), netip.MustParseAddrPort(sq.Addr().String())); err == nil {
		ln3.Close()
		t.Fatal("agent shares a squatted port")
	}
}

func TestSec25_SlowlorisHeaders(t *testing.T) {
	h := newHarness(t, harnessOpts{options: func(o *Options) { o.ReadHeaderTimeout = 300 * time.Millisecond }})
	l := h.live(t)
	c, err := tls.Dial("tcp", "127.0.0.1:"+itoa(l.port), &tls.Config{RootCAs: l.roots, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	b, _ := io.ReadAll(c) // the server closes the connection
	if time.Since(start) > 9*time.Second {
		t.Fatal("slow headers kept the connection open")
	}
	if strings.Contains(string(b), "apiVersion") {
		t.Fatal("answered an incomplete request")
	}
}

func TestTwoHostHeadersRefusedByServer(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	l := h.live(t)
	c, err := tls.Dial("tcp", "127.0.0.1:"+itoa(l.port), &tls.Config{RootCAs: l.roots, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:"+itoa(l.port)+"\r\nHost: evil.example\r\nOrigin: "+testOrigin+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("two Host headers: %d %v", resp.StatusCode, resp.Header)
	}
}

func (l *live) dialWS(ctx context.Context, origin, host string) (*websocket.Conn, *http.Response, error) {
	hd := http.Header{}
	if origin != "" {
		hd.Set("Origin", origin)
	}
	return websocket.Dial(ctx, "wss://127.0.0.1:"+itoa(l.port)+"/v1/events", &websocket.DialOptions{HTTPClient: l.client, HTTPHeader: hd, Host: host})
}

func readJSON(t *testing.T, ctx context.Context, c *websocket.Conn) map[string]any {
	t.Helper()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("type %v", typ)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEvents(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	l := h.live(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := l.dialWS(ctx, testOrigin, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	hello := readJSON(t, ctx, c)
	if hello["type"] != "hello" || hello["apiVersion"] != "1.0" || hello["status"].(map[string]any)["cardPresent"] != true {
		t.Fatalf("hello %v", hello)
	}
	h.mr.Remove(readerName)
	if m := readJSON(t, ctx, c); m["type"] != "card-removed" || m["reader"] != readerName {
		t.Fatalf("event %v", m)
	}
	_ = h.mr.Insert(readerName, h.vc)
	seen := map[string]bool{}
	for !seen["identity-available"] {
		m := readJSON(t, ctx, c)
		typ := m["type"].(string)
		if strings.HasPrefix(typ, "operation") {
			t.Fatalf("internal event forwarded: %v", m)
		}
		seen[typ] = true
		if typ == "identity-available" && m["serialNumber"] == "" {
			t.Fatalf("identity event without serial: %v", m)
		}
	}
	if !seen["card-inserted"] {
		t.Fatalf("events %v", seen)
	}
	// An operation does not leak operation events to the stream, and a
	// ping is answered.
	if w := h.do(http.MethodPost, "/v1/sign", validSign); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if m := readJSON(t, ctx, c); m["type"] != "pong" {
		t.Fatalf("got %v, want pong", m)
	}
	// Shutdown closes the stream with 1001.
	go l.stop()
	_, _, err = c.Read(ctx)
	if s := websocket.CloseStatus(err); s != websocket.StatusGoingAway {
		logb, _ := os.ReadFile(h.logPath)
		t.Fatalf("close status %v (%v)\n%s", s, err, logb)
	}
}

// noFraming fails unless hdr forbids framing the answer, and the answer is
// not HTML (JSON, a problem, or no body).
func noFraming(t testing.TB, what string, hdr http.Header, body []byte) {
	t.Helper()
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("%s: Content-Security-Policy %q", what, csp)
	}
	if xfo := hdr.Get("X-Frame-Options"); xfo != "DENY" {
		t.Errorf("%s: X-Frame-Options %q", what, xfo)
	}
	if nosniff := hdr.Get("X-Content-Type-Options"); nosniff != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", what, nosniff)
	}
	switch ct := hdr.Get("Content-Type"); ct {
	case "application/json", "application/problem+json":
	case "":
		if len(body) != 0 {
			t.Errorf("%s: a body without Content-Type: %q", what, body)
		}
	default:
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '<' {
		t.Errorf("%s: markup in the body: %q", what, body)
	}
}

// TestSec30_NoFramingNoHTML (security.md §6 item 30): the agent serves no
// HTML, and every answer of its handler, successes and refusals alike,
// carries Content-Security-Policy frame-ancestors 'none' and
// X-Frame-Options DENY, so that no page can frame it (even one asking for
// text/html as a frame or navigation would). The WebSocket upgrade and its
// refusals carry them too. The only answers written without them are the
// HTTP server's own plain-text refusals of malformed requests (below) and
// the TLS listener's to plain HTTP (TestSec02): text/plain, no markup,
// nothing to click.
func TestSec30_NoFramingNoHTML(t *testing.T) {
	h := newHarness(t, harnessOpts{pin: pinentrytest.Options{Mode: pinentrytest.ModeCancel}})
	html := []string{"Accept", "text/html,application/xhtml+xml", "Sec-Fetch-Dest", "iframe", "Sec-Fetch-Mode", "navigate"}
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
	}{
		{"status", http.MethodGet, "/v1/status", "", nil, 200},
		{"readers", http.MethodGet, "/v1/readers", "", nil, 200},
		{"identity", http.MethodGet, "/v1/card", "", nil, 200},
		{"preflight", http.MethodOptions, "/v1/sign", "", []string{"Access-Control-Request-Method", "POST"}, 204},
		{"PIN prompt cancelled", http.MethodPost, "/v1/sign", validSign, nil, 409},
		{"root as a frame", http.MethodGet, "/", "", html, 404},
		{"index.html as a frame", http.MethodGet, "/index.html", "", html, 404},
		{"status as a frame (no Origin)", http.MethodGet, "/v1/status", "", append([]string{"Origin", "-"}, html...), 403},
		{"status as a frame from a portal", http.MethodGet, "/v1/status", "", html, 200},
		{"foreign origin", http.MethodGet, "/v1/status", "", []string{"Origin", "https://evil.example"}, 403},
		{"foreign host", http.MethodGet, "/v1/status", "", []string{"Host", "evil.example:47180"}, 421},
		{"method", http.MethodDelete, "/v1/sign", "", nil, 405},
		{"media type", http.MethodPost, "/v1/sign", validSign, []string{"Content-Type", "text/html"}, 415},
		{"too large", http.MethodPost, "/v1/authenticate", `{"challengeNonce":"` + strings.Repeat("A", MaxSmallBody) + `"}`, nil, 413},
		{"bad body", http.MethodPost, "/v1/sign", `{"dataToSign":"<script>"}`, nil, 400},
		{"events without upgrade", http.MethodGet, "/v1/events", "", html, 400},
	}
	for _, tt := range tests {
		w := h.do(tt.method, tt.path, tt.body, tt.hdr...)
		if w.Code != tt.status {
			t.Errorf("%s: %d, want %d: %s", tt.name, w.Code, tt.status, w.Body)
		}
		noFraming(t, tt.name, w.Header(), w.Body.Bytes())
	}

	l := h.live(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		name, origin, host string
		status             int
	}{
		{"upgrade", testOrigin, "", http.StatusSwitchingProtocols},
		{"upgrade from a foreign origin", "https://evil.example", "", http.StatusForbidden},
		{"upgrade without Origin", "", "", http.StatusForbidden},
		{"upgrade with a foreign Host", testOrigin, "evil.example:" + itoa(l.port), http.StatusMisdirectedRequest},
	} {
		conn, resp, err := l.dialWS(ctx, c.origin, c.host)
		if conn != nil {
			conn.CloseNow()
		}
		if resp == nil || resp.StatusCode != c.status {
			t.Errorf("%s: %v, %v; want %d", c.name, resp, err, c.status)
			continue
		}
		var body []byte
		if resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ = io.ReadAll(resp.Body)
		}
		noFraming(t, c.name, resp.Header, body)
	}

	// The HTTP server's own refusal (two Host headers): plain text.
	conn, err := tls.Dial("tcp", "127.0.0.1:"+itoa(l.port), &tls.Config{RootCAs: l.roots, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:"+itoa(l.port)+"\r\nHost: localhost:"+itoa(l.port)+
		"\r\nOrigin: "+testOrigin+"\r\nAccept: text/html\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || bytes.Contains(body, []byte("<")) {
		t.Fatalf("server refusal: %d %v %q", resp.StatusCode, resp.Header, body)
	}
}

func TestSec18_WebSocketOriginBeforeUpgrade(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	l := h.live(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		origin, host string
		status       int
	}{
		{"https://evil.example", "", 403},
		{"null", "", 403},
		{"", "", 403},
		{"https://portal.test.evil.example", "", 403},
		{testOrigin, "evil.example:" + itoa(l.port), 421},
		{testOrigin, "localhost.:" + itoa(l.port), 421},
	} {
		conn, resp, err := l.dialWS(ctx, c.origin, c.host)
		if err == nil {
			conn.CloseNow()
			t.Fatalf("upgrade accepted for origin %q host %q", c.origin, c.host)
		}
		if resp == nil || resp.StatusCode != c.status {
			t.Fatalf("origin %q host %q: %v %v", c.origin, c.host, resp, err)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatal("CORS header on a refused upgrade")
		}
	}
	// A plain GET (no upgrade) from an allowed origin is a bad request.
	resp, body, err := l.do(t, ctx, http.MethodGet, "/v1/events", "")
	if err != nil {
		t.Fatal(err)
	}
	checkProblem(t, resp.StatusCode, resp.Header, body, 400, CodeBadRequest)
	if h.srv.nWS.Load() != 0 {
		t.Fatal("a refused socket is counted open")
	}
}

func TestSec19_WebSocketAbuse(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	l := h.live(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cases := []struct {
		name string
		send func(c *websocket.Conn) error
		want websocket.StatusCode
	}{
		{"oversized", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","x":"`+strings.Repeat("a", 2000)+`"}`))
		}, websocket.StatusMessageTooBig},
		{"fragmented flood", func(c *websocket.Conn) error {
			w, err := c.Writer(ctx, websocket.MessageText)
			if err != nil {
				return err
			}
			for i := 0; i < 200; i++ {
				if _, err := w.Write([]byte(strings.Repeat("x", 64))); err != nil {
					return nil // the server closed mid-flood: fine
				}
			}
			return w.Close()
		}, websocket.StatusMessageTooBig},
		{"binary", func(c *websocket.Conn) error { return c.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}) }, websocket.StatusUnsupportedData},
		{"invalid utf-8", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte("{\"type\":\"\xff\"}"))
		}, websocket.StatusInvalidFramePayloadData},
		{"unknown type", func(c *websocket.Conn) error { return c.Write(ctx, websocket.MessageText, []byte(`{"type":"sign"}`)) }, websocket.StatusPolicyViolation},
		{"extra field", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","pin":"1234"}`))
		}, websocket.StatusPolicyViolation},
		{"not json", func(c *websocket.Conn) error { return c.Write(ctx, websocket.MessageText, []byte(`ping`)) }, websocket.StatusPolicyViolation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := l.dialWS(ctx, testOrigin, "")
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 20)
			readJSON(t, ctx, c) // hello
			if err := tc.send(c); err != nil && websocket.CloseStatus(err) == -1 && !errors.Is(err, net.ErrClosed) {
				t.Logf("send: %v", err)
			}
			for {
				_, _, err = c.Read(ctx)
				if err != nil {
					break
				}
			}
			if s := websocket.CloseStatus(err); s != tc.want {
				t.Fatalf("close status %v, want %v (%v)", s, tc.want, err)
			}
		})
	}
	if h.verifies() != 0 || h.prompts() != 0 {
		t.Fatal("card touched through the socket")
	}
	// The agent stays up.
	resp, _, err := l.do(t, ctx, http.MethodGet, "/v1/status", "")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after abuse: %v %v", resp, err)
	}
	if !waitFor(10*time.Second, func() bool { return h.srv.nWS.Load() == 0 }) {
		t.Fatalf("%d sockets still open", h.srv.nWS.Load())
	}
}

func TestShutdownStopsOperationsInFlight(t *testing.T) {
	h := newHarness(t, harnessOpts{pin: pinentrytest.Options{Mode: pinentrytest.ModeHang}})
	l := h.live(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type result struct {
		resp *http.Response
		body []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, body, err := l.do(t, ctx, http.MethodPost, "/v1/sign", validSign)
		done <- result{resp, body, err}
	}()
	h.waitPrompt(t)
	if err := l.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("in-flight request got no answer: %v", r.err)
	}
	checkProblem(t, r.resp.StatusCode, r.resp.Header, r.body, 503, CodeShuttingDown)
	if h.verifies() != 0 {
		t.Fatal("VERIFY during shutdown")
	}
	if !waitFor(10*time.Second, func() bool { return !pinentryAlive(t, h.pinLog) }) {
		t.Fatal("pinentry survived the shutdown")
	}
}

func TestDebugMetricsOnlyWhenEnabled(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	problemOf(t, h.do(http.MethodGet, "/v1/debug/metrics", ""), 404, CodeNotFound)
	h2 := newHarness(t, harnessOpts{options: func(o *Options) { o.DebugMetrics = true }})
	w := h2.do(http.MethodGet, "/v1/debug/metrics", "")
	var m map[string]int64
	decodeJSON(t, w.Body.Bytes(), &m)
	if m["goroutines"] <= 0 {
		t.Fatalf("%v", m)
	}
	problemOf(t, h2.do(http.MethodGet, "/v1/debug/metrics", "", "Origin", "https://evil.example"), 403, CodeOriginNotAllowed)
}

// Closed sockets are released: the open-socket count returns to zero.
func TestEventStreamCountsAndUnsubscribes(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	l := h.live(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var conns []*websocket.Conn
	for i := 0; i < 5; i++ {
		c, _, err := l.dialWS(ctx, testOrigin, "")
		if err != nil {
			t.Fatal(err)
		}
		readJSON(t, ctx, c)
		conns = append(conns, c)
	}
	if n := h.srv.nWS.Load(); n != 5 {
		t.Fatalf("%d sockets", n)
	}
	for _, c := range conns {
		c.Close(websocket.StatusNormalClosure, "")
	}
	if !waitFor(10*time.Second, func() bool { return h.srv.nWS.Load() == 0 }) {
		t.Fatalf("%d sockets still counted", h.srv.nWS.Load())
	}
}
