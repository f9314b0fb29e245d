// Package fuzzhttp fuzzes the agent at the HTTP level: raw malformed
// requests (request line, headers, framing), JSON bodies on the card
// operations, and WebSocket frames on the event stream (oversized,
// fragmented, invalid UTF-8, unmasked, reserved bits and opcodes, lying
// lengths). The agent must stay up and answer each request with a
// well-formed problem+json (or a valid success), or, for bytes that are not
// HTTP at all, net/http's own plain-text rejection; on the event stream it
// must only send valid frames and close with a valid code.
//
// The fuzz targets run against the agent's API, card engine and an
// in-memory virtual card in this process (fast, and under -race); the
// deterministic corpus also runs against the real binary
// (`cpsagent serve --virtual-card`). scripts/test.sh fuzzes every target
// for FUZZTIME; the seeds run in every `go test`.
package fuzzhttp

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/bench/harness"
)

// inprocHeaderWait is the in-process agent's ReadHeaderTimeout: short, so
// that truncated requests end quickly, but not so short that a request
// delayed by a loaded CI machine (every package's tests at once, -race, 2
// cores) is cut before its headers arrive (CI saw "0 answers" at 1 s).
const inprocHeaderWait = 3 * time.Second

var (
	inprocOnce sync.Once
	inproc     *harness.InProc
	inprocDir  string
	inprocErr  error
)

// inProcess returns the in-process agent shared by the tests of this
// process (a fuzz worker included).
func inProcess(t testing.TB) *target {
	t.Helper()
	inprocOnce.Do(func() {
		inprocDir, inprocErr = os.MkdirTemp("", "cpsagent-fuzzhttp-")
		if inprocErr != nil {
			return
		}
		inproc, inprocErr = harness.StartInProcess(harness.InProcOptions{Dir: inprocDir, ReadHeaderTimeout: inprocHeaderWait})
	})
	if inprocErr != nil {
		t.Fatal(inprocErr)
	}
	return &target{addr: inproc.Addr, tls: inproc.TLS, client: inproc.Client, origin: harness.DefaultOrigin, headerWait: inprocHeaderWait}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if inproc != nil {
		if err := inproc.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "fuzzhttp:", err)
			code = 1
		}
	}
	if inprocDir != "" {
		_ = os.RemoveAll(inprocDir)
	}
	os.Exit(code)
}

// req builds a raw request with the placeholders for Host and Origin.
func req(method, path string, hdr []string, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\n", method, path, phHost, phOrigin)
	for _, h := range hdr {
		b.WriteString(h + "\r\n")
	}
	if body != "" || method == http.MethodPost {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

const jsonCT = "Content-Type: application/json"

// corpusEntry is a request of the deterministic corpus and what the
// agent must answer (status 0: any well-formed answer; code "": any).
type corpusEntry struct {
	name   string
	raw    string
	status int
	code   string
	// slow entries make the agent wait for its header timeout (10 s for the
	// real binary); they run in-process only.
	slow bool
}

var validSign = `{"dataToSign":"YWJj"}`

var corpus = []corpusEntry{
	{name: "valid status", raw: req("GET", "/v1/status", nil, ""), status: 200},
	{name: "valid identity", raw: req("GET", "/v1/card", nil, ""), status: 200},
	{name: "valid signature", raw: req("POST", "/v1/sign", []string{jsonCT}, validSign), status: 200},
	{name: "valid authentication", raw: req("POST", "/v1/authenticate", []string{jsonCT},
		`{"challengeNonce":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ1"}`), status: 200},
	{name: "pipelined", raw: req("GET", "/v1/status", nil, "") + req("GET", "/v1/readers", nil, ""), status: 200},
	{name: "preflight", raw: req("OPTIONS", "/v1/sign", []string{"Access-Control-Request-Method: POST",
		"Access-Control-Request-Private-Network: true"}, ""), status: 204},

	// Host and Origin.
	{name: "foreign Host", raw: strings.Replace(req("GET", "/v1/status", nil, ""), phHost, "evil.example", 1), status: 421, code: "host_not_allowed"},
	{name: "Host with another port", raw: strings.Replace(req("GET", "/v1/status", nil, ""), phHost, "127.0.0.1:1", 1), status: 421, code: "host_not_allowed"},
	{name: "absolute URI naming another host", raw: req("GET", "https://evil.example/v1/status", nil, ""),
		status: 421, code: "host_not_allowed"},
	{name: "HTTP/1.0 without Host", raw: "GET /v1/status HTTP/1.0\r\nOrigin: " + phOrigin + "\r\n\r\n", status: 421, code: "host_not_allowed"},
	{name: "no Host", raw: "GET /v1/status HTTP/1.1\r\nOrigin: " + phOrigin + "\r\n\r\n", status: 400},
	{name: "two Hosts", raw: "GET /v1/status HTTP/1.1\r\nHost: " + phHost + "\r\nHost: " + phHost + "\r\nOrigin: " + phOrigin + "\r\n\r\n", status: 400},
	{name: "no Origin", raw: "GET /v1/status HTTP/1.1\r\nHost: " + phHost + "\r\n\r\n", status: 403, code: "origin_not_allowed"},
	{name: "Origin null", raw: strings.Replace(req("GET", "/v1/status", nil, ""), phOrigin, "null", 1), status: 403, code: "origin_not_allowed"},
	{name: "two Origins", raw: req("GET", "/v1/status", []string{"Origin: " + phOrigin}, ""), status: 403, code: "origin_not_allowed"},
	{name: "Origin with a path", raw: strings.Replace(req("GET", "/v1/status", nil, ""), phOrigin, phOrigin+"/x", 1), status: 403, code: "origin_not_allowed"},
	{name: "Origin with userinfo", raw: strings.Replace(req("GET", "/v1/status", nil, ""), phOrigin, "https://portal.test@evil.example", 1),
		status: 403, code: "origin_not_allowed"},
	{name: "Origin with invalid UTF-8", raw: strings.Replace(req("GET", "/v1/status", nil, ""), phOrigin, "https://portal\xff.test", 1), status: 0},
	{name: "Origin with a NUL", raw: strings.Replace(req("GET", "/v1/status", nil, ""), phOrigin, "https://portal.test\x00", 1), status: 0},

	// Routes, methods, queries.
	{name: "unknown path", raw: req("GET", "/v1/nothing", nil, ""), status: 404, code: "not_found"},
	{name: "dot segments", raw: req("GET", "/v1/../v1/status", nil, ""), status: 404, code: "not_found"},
	{name: "encoded path", raw: req("GET", "/v1/%73tatus", nil, ""), status: 0},
	{name: "TRACE", raw: req("TRACE", "/v1/status", nil, ""), status: 405, code: "method_not_allowed"},
	{name: "DELETE", raw: req("DELETE", "/v1/sign", nil, ""), status: 405, code: "method_not_allowed"},
	{name: "method override header", raw: req("POST", "/v1/sign", []string{jsonCT, "X-HTTP-Method-Override: GET"}, validSign), status: 400, code: "bad_request"},
	{name: "unknown query", raw: req("GET", "/v1/status?callback=x", nil, ""), status: 400, code: "bad_request"},
	{name: "reader twice", raw: req("GET", "/v1/card?reader=a&reader=b", nil, ""), status: 400, code: "bad_request"},
	{name: "malformed query", raw: req("GET", "/v1/card?reader=%zz", nil, ""), status: 400, code: "bad_request"},
	{name: "lowercase method", raw: req("get", "/v1/status", nil, ""), status: 0},

	// Content types and bodies.
	{name: "POST without Content-Type", raw: req("POST", "/v1/sign", nil, validSign), status: 415, code: "unsupported_media_type"},
	{name: "text/plain body", raw: req("POST", "/v1/sign", []string{"Content-Type: text/plain"}, validSign), status: 415, code: "unsupported_media_type"},
	{name: "two Content-Types", raw: req("POST", "/v1/sign", []string{jsonCT, jsonCT}, validSign), status: 415, code: "unsupported_media_type"},
	{name: "charset latin1", raw: req("POST", "/v1/sign", []string{"Content-Type: application/json; charset=latin1"}, validSign), status: 415},
	{name: "invalid JSON", raw: req("POST", "/v1/sign", []string{jsonCT}, `{"dataToSign":`), status: 400, code: "bad_request"},
	{name: "duplicate key", raw: req("POST", "/v1/sign", []string{jsonCT}, `{"dataToSign":"YWJj","dataToSign":"YWJj"}`), status: 400, code: "bad_request"},
	{name: "trailing data", raw: req("POST", "/v1/sign", []string{jsonCT}, validSign+`{}`), status: 400, code: "bad_request"},
	{name: "a PIN field", raw: req("POST", "/v1/sign", []string{jsonCT}, `{"dataToSign":"YWJj","pin":"1234"}`), status: 400, code: "bad_request"},
	{name: "unknown field", raw: req("POST", "/v1/authenticate", []string{jsonCT}, `{"challengeNonce":"x","x":1}`), status: 400, code: "bad_request"},
	{name: "wrong type", raw: req("POST", "/v1/sign", []string{jsonCT}, `{"dataToSign":12}`), status: 400, code: "bad_request"},
	{name: "bad base64", raw: req("POST", "/v1/sign", []string{jsonCT}, `{"dataToSign":"%%%"}`), status: 400, code: "bad_request"},
	{name: "short nonce", raw: req("POST", "/v1/authenticate", []string{jsonCT}, `{"challengeNonce":"YWJj"}`), status: 400, code: "bad_request"},
	{name: "invalid UTF-8 in JSON", raw: req("POST", "/v1/sign", []string{jsonCT}, "{\"dataToSign\":\"YWJj\",\"description\":\"\xff\xfe\"}"), status: 400, code: "bad_request"},
	{name: "lone surrogate escape", raw: req("POST", "/v1/sign", []string{jsonCT}, `{"dataToSign":"YWJj","description":"\ud800"}`), status: 0},
	{name: "deep nesting", raw: req("POST", "/v1/sign", []string{jsonCT}, strings.Repeat("[", 3000)+strings.Repeat("]", 3000)), status: 400, code: "bad_request"},
	{name: "BOM", raw: req("POST", "/v1/sign", []string{jsonCT}, "\xef\xbb\xbf"+validSign), status: 400, code: "bad_request"},
	{name: "body over 4 KiB", raw: req("POST", "/v1/authenticate", []string{jsonCT}, `{"challengeNonce":"`+strings.Repeat("A", 5000)+`"}`),
		status: 413, code: "payload_too_large"},
	{name: "declared 17 MiB", raw: "POST /v1/sign HTTP/1.1\r\nHost: " + phHost + "\r\nOrigin: " + phOrigin + "\r\n" + jsonCT +
		"\r\nContent-Length: 17825792\r\n\r\n{", status: 413, code: "payload_too_large"},
	{name: "chunked body", raw: "POST /v1/sign HTTP/1.1\r\nHost: " + phHost + "\r\nOrigin: " + phOrigin + "\r\n" + jsonCT +
		"\r\nTransfer-Encoding: chunked\r\n\r\n15\r\n" + validSign + "\r\n0\r\n\r\n", status: 200},
	{name: "chunked over 4 KiB", raw: "POST /v1/authenticate HTTP/1.1\r\nHost: " + phHost + "\r\nOrigin: " + phOrigin + "\r\n" + jsonCT +
		"\r\nTransfer-Encoding: chunked\r\n\r\n1400\r\n" + strings.Repeat("x", 0x1400) + "\r\n0\r\n\r\n", status: 413, code: "payload_too_large"},
	{name: "broken chunked", raw: "POST /v1/sign HTTP/1.1\r\nHost: " + phHost + "\r\nOrigin: " + phOrigin + "\r\n" + jsonCT +
		"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", status: 400},
	{name: "Content-Length and chunked (smuggling)", raw: "POST /v1/sign HTTP/1.1\r\nHost: " + phHost + "\r\nOrigin: " + phOrigin + "\r\n" +
		jsonCT + "\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/status HTTP/1.1\r\n\r\n", status: 400},
	{name: "two Content-Lengths", raw: "POST /v1/sign HTTP/1.1\r\nHost: " + phHost + "\r\nOrigin: " + phOrigin + "\r\n" + jsonCT +
		"\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", status: 400},
	{name: "gzip transfer coding", raw: "POST /v1/sign HTTP/1.1\r\nHost: " + phHost + "\r\nOrigin: " + phOrigin + "\r\n" + jsonCT +
		"\r\nTransfer-Encoding: gzip\r\n\r\n", status: 501},
	{name: "short body (client stops sending)", raw: "POST /v1/sign HTTP/1.1\r\nHost: " + phHost + "\r\nOrigin: " + phOrigin + "\r\n" + jsonCT +
		"\r\nContent-Length: 100\r\n\r\n{", status: 400, slow: true},
	{name: "Expect 100-continue", raw: req("POST", "/v1/sign", []string{jsonCT, "Expect: 100-continue"}, validSign), status: 200},
	{name: "Expect something else", raw: req("POST", "/v1/sign", []string{jsonCT, "Expect: 200-ok"}, validSign), status: 417},

	// Framing.
	{name: "garbage", raw: "GARBAGE\r\n\r\n", status: 400},
	{name: "HTTP/2 preface", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", status: 0},
	{name: "HTTP/0.9", raw: "GET /v1/status\r\n\r\n", status: 0},
	{name: "HTTP/9.9", raw: "GET /v1/status HTTP/9.9\r\nHost: " + phHost + "\r\n\r\n", status: 505},
	{name: "header without colon", raw: "GET /v1/status HTTP/1.1\r\nHost: " + phHost + "\r\nOrigin " + phOrigin + "\r\n\r\n", status: 400},
	{name: "obsolete line folding", raw: "GET /v1/status HTTP/1.1\r\nHost: " + phHost + "\r\nOrigin: " + phOrigin + "\r\n x\r\n\r\n", status: 403, code: "origin_not_allowed"},
	{name: "NUL in header", raw: req("GET", "/v1/status", []string{"X-A: a\x00b"}, ""), status: 400},
	{name: "bare LF line ends", raw: "GET /v1/status HTTP/1.1\nHost: " + phHost + "\nOrigin: " + phOrigin + "\n\n", status: 0},
	{name: "20 KiB header", raw: req("GET", "/v1/status", []string{"X-Big: " + strings.Repeat("a", 20<<10)}, ""), status: 431},
	{name: "10 KiB URL", raw: req("GET", "/v1/status?"+strings.Repeat("a", 10<<10), nil, ""), status: 0},
	{name: "incomplete headers", raw: "GET /v1/status HTTP/1.1\r\nHost: " + phHost + "\r\n", status: 0, slow: true},
	{name: "empty", raw: "", status: 0, slow: true},

	// The event stream over plain HTTP.
	{name: "events without upgrade", raw: req("GET", "/v1/events", nil, ""), status: 400, code: "bad_request"},
	{name: "events POST", raw: req("POST", "/v1/events", []string{jsonCT}, "{}"), status: 405, code: "method_not_allowed"},
	{name: "upgrade with a body", raw: req("GET", "/v1/events", []string{"Connection: Upgrade", "Upgrade: websocket",
		"Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Content-Length: 3"}, "abc"), status: 0},
}

// runEntry sends one corpus entry and checks every answer.
func runEntry(t *testing.T, tg *target, e corpusEntry) {
	t.Helper()
	resps, err := tg.exchange(tg.expand([]byte(e.raw)))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resps {
		if err := checkResponse(r); err != nil {
			t.Errorf("answer %d: %v", i, err)
		}
	}
	if e.status != 0 {
		if len(resps) == 0 {
			t.Fatalf("no answer, want %d", e.status)
		}
		r := resps[0]
		if r.status != e.status {
			t.Fatalf("status %d, want %d: %.300s", r.status, e.status, r.body)
		}
		if e.code != "" && !bytes.Contains(r.body, []byte(`"code":"`+e.code+`"`)) {
			t.Fatalf("want code %s: %.300s", e.code, r.body)
		}
	}
	if err := tg.alive(); err != nil {
		t.Fatal(err)
	}
}

// TestCorpus is the deterministic run of the malformed-request corpus
// against the in-process agent.
func TestCorpus(t *testing.T) {
	tg := inProcess(t)
	for _, e := range corpus {
		t.Run(e.name, func(t *testing.T) { runEntry(t, tg, e) })
	}
}

// FuzzRawRequest sends arbitrary bytes as an HTTP/1.1 request stream.
func FuzzRawRequest(f *testing.F) {
	for _, e := range corpus {
		if !e.slow {
			f.Add([]byte(e.raw))
		}
	}
	tg := inProcess(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 64<<10 {
			t.Skip()
		}
		resps, err := tg.exchange(tg.expand(raw))
		if err != nil {
			t.Fatalf("%v (input %q)", err, raw)
		}
		for i, r := range resps {
			if err := checkResponse(r); err != nil {
				t.Fatalf("answer %d: %v (input %q)", i, err, raw)
			}
		}
		if err := tg.alive(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzJSONBody sends well-framed POSTs with arbitrary JSON bodies to the
// card operations.
func FuzzJSONBody(f *testing.F) {
	for _, b := range []string{
		validSign, `{"document":"YWJj","format":"cades"}`,
		`{"documentDigest":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=","digestAlgorithm":"SHA-256","format":"cades"}`,
		`{"dataToSign":"YWJj","description":"ordonnance","lang":"en","reader":"` + harness.InProcReader + `"}`,
		`{"challengeNonce":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ1"}`,
		`{"dataToSign":null}`, `{"dataToSign":"YWJj","format":"raw"}`, `{"format":"cades"}`, `[]`, `null`, `"x"`, `1e999`,
		`{"dataToSign":"YWJj","description":"` + strings.Repeat("é", 300) + `"}`, `{"reader":"\u0000"}`, `{"PIN":"1234"}`,
		`{"dataToSign":"YWJj"` + strings.Repeat(" ", 5000) + `}`, `{"challengeNonce":"` + strings.Repeat("A", 129) + `"}`,
	} {
		f.Add(uint8(0), []byte(b))
		f.Add(uint8(1), []byte(b))
	}
	tg := inProcess(f)
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		if len(body) > 20<<10 {
			t.Skip()
		}
		path := []string{"/v1/sign", "/v1/authenticate"}[route%2]
		raw := req("POST", path, []string{jsonCT}, string(body))
		resps, err := tg.exchange(tg.expand([]byte(raw)))
		if err != nil {
			t.Fatalf("%v (body %q)", err, body)
		}
		if len(resps) != 1 {
			t.Fatalf("%d answers to one request (body %q)", len(resps), body)
		}
		if err := checkResponse(resps[0]); err != nil {
			t.Fatalf("%v (body %q)", err, body)
		}
		if s := resps[0].status; s != 200 && s != 400 && s != 413 && s != 409 {
			t.Fatalf("status %d for a JSON body: %s (body %q)", s, resps[0].body, body)
		}
		if err := tg.alive(); err != nil {
			t.Fatal(err)
		}
	})
}
