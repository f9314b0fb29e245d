package fuzzhttp

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/cpsagent/cpsagent/bench/harness"
	"github.com/cpsagent/cpsagent/internal/api"
)

// target is a running agent: its address and a TLS configuration that
// trusts it.
type target struct {
	addr   string // 127.0.0.1:PORT
	tls    *tls.Config
	client *http.Client
	origin string
	// headerWait is how long the agent waits for a request's headers
	// (its ReadHeaderTimeout) before it drops the connection.
	headerWait time.Duration
}

// Placeholders of the corpus, replaced before sending: the agent's own
// Host and an allowed Origin (the fuzzer mutates around them).
const (
	phHost   = "{{HOST}}"
	phOrigin = "{{ORIGIN}}"
)

func (tg *target) expand(raw []byte) []byte {
	raw = bytes.ReplaceAll(raw, []byte(phHost), []byte(tg.addr))
	return bytes.ReplaceAll(raw, []byte(phOrigin), []byte(tg.origin))
}

// response is one HTTP response read off the wire.
type response struct {
	status int
	header http.Header
	body   []byte
	close  bool // Connection: close
}

// exchange writes raw bytes on a fresh TLS connection and reads every
// response the agent sends back, until it closes the connection or stays
// silent for a moment after an answer. closed reports a connection closed
// (or left silent) with no answer at all.
func (tg *target) exchange(raw []byte) (resps []response, err error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(&d, "tcp", tg.addr, tg.tls)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(raw); err != nil && !isClosed(err) {
		return nil, fmt.Errorf("write: %w", err)
	}
	br := bufio.NewReader(conn)
	// The first answer may take a card operation (instant card) or the
	// header timeout. A request whose body is shorter than announced makes
	// the agent wait for the rest (up to its read timeout): after a while
	// without an answer, the client closes its sending side, as a browser
	// that gave up would, and the agent must answer or close.
	wait := tg.headerWait + 2*time.Second
	halfClosed := false
	for {
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			switch {
			case isTimeout(err) && len(resps) == 0 && !halfClosed:
				_ = conn.CloseWrite()
				halfClosed, wait = true, 15*time.Second
				continue
			case isTimeout(err) && len(resps) == 0:
				return nil, fmt.Errorf("no answer and no close %v after the client stopped sending", wait)
			case isClosed(err), errors.Is(err, io.ErrUnexpectedEOF), isTimeout(err):
				return resps, nil
			}
			return resps, fmt.Errorf("unreadable response: %w", err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil && !isClosed(err) && !isTimeout(err) {
			return resps, fmt.Errorf("response body: %w", err)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue // 100 Continue: the real answer follows
		}
		resps = append(resps, response{status: resp.StatusCode, header: resp.Header, body: body, close: resp.Close})
		// Stop at the last request line written (pipelining), or after a
		// short silence.
		if resp.StatusCode == http.StatusSwitchingProtocols || resp.Close || len(resps) >= requestLines(raw) {
			return resps, nil
		}
		wait = 300 * time.Millisecond
	}
}

// requestLines counts what looks like request lines (" HTTP/"): at most
// that many answers can come back.
func requestLines(raw []byte) int {
	return max(1, bytes.Count(raw, []byte(" HTTP/")))
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection reset") ||
		strings.Contains(err.Error(), "broken pipe")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// netHTTPRejections are the answers net/http itself gives, before the
// agent's handler runs, to requests it cannot parse: plain text, and the
// connection is closed. They are not the agent's problem+json, and cannot
// be (the request never reached the handler).
var netHTTPRejections = map[int]bool{
	http.StatusBadRequest:                  true,
	http.StatusRequestHeaderFieldsTooLarge: true,
	http.StatusHTTPVersionNotSupported:     true,
	http.StatusNotImplemented:              true,
	http.StatusExpectationFailed:           true,
	http.StatusRequestEntityTooLarge:       true,
	http.StatusLengthRequired:              true,
}

// checkResponse: every answer is one of
//   - a well-formed problem+json with a known code (never "internal": a
//     malformed request is the client's fault, 400-class);
//   - a 2xx with a JSON body (a request that happened to be valid), a
//     204 preflight or a 101 WebSocket upgrade;
//   - one of net/http's own plain-text rejections of an unparsable request
//     (Connection: close).
func checkResponse(r response) error {
	ct := r.header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/problem+json"):
		code, err := harness.ProblemCode(harness.Result{Status: r.status, Header: r.header, Body: r.body})
		if err != nil {
			return err
		}
		if code == api.CodeInternal || r.status >= 500 && code != api.CodePCSCUnavailable && code != api.CodePINUnavailable {
			return fmt.Errorf("server error %d %s for a client's malformed request: %s", r.status, code, r.body)
		}
		return nil
	case r.status == http.StatusSwitchingProtocols, r.status == http.StatusNoContent:
		return nil
	case r.status >= 200 && r.status < 300:
		if !strings.HasPrefix(ct, "application/json") || !json.Valid(r.body) {
			return fmt.Errorf("%d with %q and a non-JSON body %.200q", r.status, ct, r.body)
		}
		return nil
	case netHTTPRejections[r.status]:
		if !r.close || !(strings.HasPrefix(ct, "text/plain") || ct == "" && len(r.body) == 0) || r.header.Get("Access-Control-Allow-Origin") != "" {
			return fmt.Errorf("%d is neither a problem nor net/http's rejection: %q %v %.200q", r.status, ct, r.header, r.body)
		}
		return nil
	}
	return fmt.Errorf("unexpected answer %d %q: %.300q", r.status, ct, r.body)
}

// alive checks that the agent still answers GET /v1/status.
func (tg *target) alive() error {
	req, _ := http.NewRequest(http.MethodGet, "https://"+tg.addr+"/v1/status", nil)
	req.Header.Set("Origin", tg.origin)
	resp, err := tg.client.Do(req)
	if err != nil {
		// A pooled keep-alive connection may have been closed meanwhile (a
		// stale connection is the client's problem, not the agent's): one
		// more try on a new connection.
		tg.client.CloseIdleConnections()
		req, _ = http.NewRequest(http.MethodGet, "https://"+tg.addr+"/v1/status", nil)
		req.Header.Set("Origin", tg.origin)
		resp, err = tg.client.Do(req)
	}
	if err != nil {
		return fmt.Errorf("the agent stopped answering: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/status: %d", resp.StatusCode)
	}
	return nil
}
