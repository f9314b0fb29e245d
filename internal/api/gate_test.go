package api

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

// A valid sign request: if any gate let it through, the card would be used.
var validSign = `{"dataToSign":"` + base64.StdEncoding.EncodeToString([]byte("attributes")) + `"}`

// assertUntouched checks that nothing reached the card or the prompt.
func (h *harness) assertUntouched(t *testing.T) {
	t.Helper()
	if n := h.prompts(); n != 0 {
		t.Fatalf("%d PIN prompt(s) shown", n)
	}
	if n := h.verifies(); n != 0 {
		t.Fatalf("%d VERIFY sent", n)
	}
}

func TestSec08_HostRebinding(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	hosts := []string{
		"attacker.example:47180",
		"127.0.0.1.nip.io:47180",
		"localhost.:47180",
		"127.1:47180",
		"127.1",
		"2130706433:47180",
		"0.0.0.0:47180",
		"0.0.0.0",
		"[::]:47180",
		"",
		"127.0.0.1",        // no port
		"127.0.0.1:47181",  // other port
		"127.0.0.1:047180", // non-canonical port
		"localhost:47180.", // trailing junk
		"127.0.0.2:47180",  // loopback, but not the agent's name
		"[::ffff:127.0.0.1]:47180",
		"localhost:47180 ",
		"evil.example",
	}
	for _, host := range hosts {
		for _, m := range []struct{ method, path, body string }{
			{http.MethodPost, "/v1/sign", validSign},
			{http.MethodGet, "/v1/status", ""},
			{http.MethodOptions, "/v1/sign", ""},
		} {
			r := req(m.method, m.path, m.body, "Host", host, "Access-Control-Request-Method", "POST")
			w := h.serve(r)
			problemOf(t, w, 421, CodeHostNotAllowed)
			noCORS(t, w.Header())
			securityHeaders(t, w.Header())
			if bytes.Contains(w.Body.Bytes(), []byte("test")) { // version
				t.Fatalf("421 body leaks the version: %s", w.Body)
			}
		}
	}
	// Accepted names, case-insensitively.
	for _, host := range []string{"127.0.0.1:47180", "[::1]:47180", "localhost:47180", "LOCALHOST:47180"} {
		if w := h.do(http.MethodGet, "/v1/status", "", "Host", host); w.Code != 200 {
			t.Errorf("Host %q refused: %d %s", host, w.Code, w.Body)
		}
	}
	h.assertUntouched(t)
}

func TestSec09_OriginNotAllowed(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, path := range []string{"/v1/sign", "/v1/authenticate"} {
		w := h.do(http.MethodPost, path, validSign, "Origin", "https://evil.example")
		problemOf(t, w, 403, CodeOriginNotAllowed)
		noCORS(t, w.Header())
		securityHeaders(t, w.Header())
	}
	h.assertUntouched(t)
}

func TestSec10_LookAlikeOrigins(t *testing.T) {
	h := newHarness(t, harnessOpts{options: func(o *Options) { o.AllowedOrigins = []string{"https://portal.fr"} }})
	tests := []struct {
		origin string
		ok     bool
	}{
		{"https://portal.fr", true},
		{"https://PORTAL.fr", true},     // compared normalised
		{"https://portal.fr:443", true}, // default port
		{"https://portal.fr.evil.com", false},
		{"https://evilportal.fr", false},
		{"https://evil-portal.fr", false},
		{"http://portal.fr", false},
		{"https://portal.fr:8443", false},
		{"https://portal.fr.", false},
		{"https://xn--prtal-esa.fr", false}, // punycode homograph (pοrtal with a Greek omicron)
		{"https://pοrtal.fr", false},        // the raw Unicode form
		{"https://portal.fr/", false},
		{"https://portal.fr/path", false},
		{"https://sub.portal.fr", false},
		{"https://portal.f", false},
		{"wss://portal.fr", false},
		{"https://portal.fr@evil.com", false},
		{"https://evil.com#https://portal.fr", false},
	}
	for _, tc := range tests {
		w := h.do(http.MethodGet, "/v1/status", "", "Origin", tc.origin)
		if tc.ok {
			if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "https://portal.fr" {
				t.Errorf("%q: %d, ACAO %q", tc.origin, w.Code, w.Header().Get("Access-Control-Allow-Origin"))
			}
			continue
		}
		problemOf(t, w, 403, CodeOriginNotAllowed)
		noCORS(t, w.Header())
	}
}

func TestSec11_NullMissingDuplicateOrigin(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	cases := []struct {
		name string
		mod  func(r *http.Request)
	}{
		{"null", func(r *http.Request) { r.Header.Set("Origin", "null") }},
		{"missing", func(r *http.Request) { r.Header.Del("Origin") }},
		{"empty", func(r *http.Request) { r.Header.Set("Origin", "") }},
		{"two headers", func(r *http.Request) { r.Header.Add("Origin", testOrigin) }},
		{"two headers, one foreign", func(r *http.Request) { r.Header.Add("Origin", "https://evil.example") }},
		{"list", func(r *http.Request) { r.Header.Set("Origin", testOrigin+", https://evil.example") }},
		{"list space", func(r *http.Request) { r.Header.Set("Origin", testOrigin+" "+testOrigin) }},
		{"file", func(r *http.Request) { r.Header.Set("Origin", "file://") }},
	}
	for _, c := range cases {
		for _, path := range []string{"/v1/sign", "/v1/authenticate", "/v1/status", "/v1/card", "/v1/events"} {
			method, body := http.MethodGet, ""
			if path == "/v1/sign" || path == "/v1/authenticate" {
				method, body = http.MethodPost, validSign
			}
			r := req(method, path, body)
			c.mod(r)
			w := h.serve(r)
			problemOf(t, w, 403, CodeOriginNotAllowed)
			noCORS(t, w.Header())
			// CORP is left out only when there is no Origin at all
			// (TestOriginRefusalProbe).
			wantCORP := "same-origin"
			if c.name == "missing" {
				wantCORP = ""
			}
			if got := w.Header().Get("Cross-Origin-Resource-Policy"); got != wantCORP {
				t.Errorf("%s %s: CORP = %q, want %q", c.name, path, got, wantCORP)
			}
		}
	}
	h.assertUntouched(t)
}

// TestOriginRefusalProbe: a browser's no-cors GET carries no Origin. The
// refusal it gets has no Cross-Origin-Resource-Policy, so that the page
// sees an opaque answer (an agent is there and refused it) rather than a
// network error (no agent), and still reads nothing: no CORS header, a
// problem body with nothing about the agent. With any Origin header, and
// for a wrong Host, CORP stays.
func TestOriginRefusalProbe(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, path := range []string{"/v1/status", "/v1/card", "/v1/readers", "/v1/events", "/v1/nope", "/"} {
		w := h.do(http.MethodGet, path, "", "Origin", "-", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Site", "cross-site")
		problemOf(t, w, 403, CodeOriginNotAllowed)
		noCORS(t, w.Header())
		securityHeaders(t, w.Header())
		if got := w.Header().Get("Cross-Origin-Resource-Policy"); got != "" {
			t.Errorf("%s without Origin: CORP %q", path, got)
		}
		for _, leak := range []string{"test", "apiVersion", "readers", "medecin", "Virtual"} {
			if strings.Contains(w.Body.String(), leak) {
				t.Errorf("%s: body leaks %q: %s", path, leak, w.Body)
			}
		}
	}
	for _, hdr := range [][]string{
		{"Origin", "https://evil.example"},
		{"Origin", "null"},
		{"Origin", ""},
		{"Origin", "-", "Host", "evil.example:47180"},
	} {
		w := h.do(http.MethodGet, "/v1/status", "", hdr...)
		if got := w.Header().Get("Cross-Origin-Resource-Policy"); got != "same-origin" {
			t.Errorf("%v: CORP %q, want same-origin", hdr, got)
		}
	}
	h.assertUntouched(t)
}

func TestSec12_Preflight(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	tests := []struct {
		path, methods string
	}{
		{"/v1/sign", "POST"},
		{"/v1/authenticate", "POST"},
		{"/v1/status", "GET"},
		{"/v1/card", "GET"},
	}
	for _, tc := range tests {
		w := h.do(http.MethodOptions, tc.path, "", "Access-Control-Request-Method", tc.methods, "Access-Control-Request-Headers", "content-type")
		if w.Code != http.StatusNoContent {
			t.Fatalf("%s: %d %s", tc.path, w.Code, w.Body)
		}
		hd := w.Header()
		for k, v := range map[string]string{
			"Access-Control-Allow-Origin":  testOrigin,
			"Access-Control-Allow-Methods": tc.methods,
			"Access-Control-Allow-Headers": "Content-Type",
			"Access-Control-Max-Age":       "600",
			"Vary":                         "Origin",
		} {
			if hd.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", tc.path, k, hd.Get(k), v)
			}
		}
		if hd.Get("Access-Control-Allow-Credentials") != "" || hd.Get("Access-Control-Allow-Private-Network") != "" {
			t.Errorf("%s: unexpected headers %v", tc.path, hd)
		}
		if w.Body.Len() != 0 {
			t.Errorf("preflight body %q", w.Body)
		}
	}
	// From a refused origin: no CORS headers at all.
	w := h.do(http.MethodOptions, "/v1/sign", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	problemOf(t, w, 403, CodeOriginNotAllowed)
	noCORS(t, w.Header())
	// Never "*", whatever the request.
	for _, o := range []string{testOrigin, "*", "null"} {
		w := h.do(http.MethodOptions, "/v1/sign", "", "Origin", o, "Access-Control-Request-Method", "POST")
		if w.Header().Get("Access-Control-Allow-Origin") == "*" {
			t.Fatal("ACAO *")
		}
	}
	// Unknown path: 404 even for a preflight.
	problemOf(t, h.do(http.MethodOptions, "/v1/apdu", "", "Access-Control-Request-Method", "POST"), 404, CodeNotFound)
}

func TestSec13_PrivateNetworkPreflight(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	w := h.do(http.MethodOptions, "/v1/sign", "", "Access-Control-Request-Method", "POST", "Access-Control-Request-Private-Network", "true")
	if w.Code != 204 || w.Header().Get("Access-Control-Allow-Private-Network") != "true" {
		t.Fatalf("allowed origin: %d %v", w.Code, w.Header())
	}
	w = h.do(http.MethodOptions, "/v1/sign", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Private-Network", "true")
	if w.Header().Get("Access-Control-Allow-Private-Network") != "" {
		t.Fatal("PNA granted to a refused origin")
	}
	noCORS(t, w.Header())
	w = h.do(http.MethodOptions, "/v1/sign", "", "Host", "evil.example:47180", "Access-Control-Request-Method", "POST", "Access-Control-Request-Private-Network", "true")
	noCORS(t, w.Header())
}

func TestSec14_SimpleCSRFContentTypes(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, ct := range []string{
		"-",
		"text/plain",
		"text/plain;charset=UTF-8",
		"application/x-www-form-urlencoded",
		"multipart/form-data; boundary=x",
		"application/json; charset=latin1",
		"application/json; foo=bar",
		"application/jsonx",
		"application/json-patch+json",
		"text/json",
		"application/json, text/plain",
	} {
		for _, path := range []string{"/v1/sign", "/v1/authenticate"} {
			w := h.do(http.MethodPost, path, validSign, "Content-Type", ct)
			problemOf(t, w, 415, CodeUnsupportedMediaType)
		}
	}
	// Accepted spellings.
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"} {
		w := h.do(http.MethodPost, "/v1/authenticate", `{}`, "Content-Type", ct)
		problemOf(t, w, 400, CodeBadRequest) // past the media-type gate
	}
	h.assertUntouched(t)
}

func TestSec15_FormPostNavigation(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	form := "dataToSign=" + base64.StdEncoding.EncodeToString([]byte("x"))
	// A top-level form POST from a foreign page carries that page's Origin
	// (or null from a sandboxed or opaque context).
	for _, o := range []string{"https://evil.example", "null", "-"} {
		w := h.do(http.MethodPost, "/v1/sign", form, "Origin", o, "Content-Type", "application/x-www-form-urlencoded",
			"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document")
		problemOf(t, w, 403, CodeOriginNotAllowed)
	}
	h.assertUntouched(t)
}

func TestSec16_MethodsJSONPAndOverrides(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, path := range []string{"/v1/sign", "/v1/authenticate"} {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPatch, "TRACE"} {
			w := h.do(m, path, "")
			problemOf(t, w, 405, CodeMethodNotAllowed)
			if a := w.Header().Get("Allow"); a != "POST, OPTIONS" {
				t.Errorf("%s %s: Allow = %q", m, path, a)
			}
		}
	}
	for _, path := range []string{"/v1/status", "/v1/card", "/v1/readers"} {
		for _, m := range []string{http.MethodPost, http.MethodHead, http.MethodDelete} {
			w := h.do(m, path, validSign)
			problemOf(t, w, 405, CodeMethodNotAllowed)
			if a := w.Header().Get("Allow"); a != "GET, OPTIONS" {
				t.Errorf("%s %s: Allow = %q", m, path, a)
			}
		}
	}
	// JSONP and unknown query parameters.
	for _, q := range []string{"/v1/status?callback=f", "/v1/card?callback=f", "/v1/card?reader=a&reader=b", "/v1/sign?x=1", "/v1/readers?jsonp=x", "/v1/card?%zz"} {
		method, body := http.MethodGet, ""
		if strings.HasPrefix(q, "/v1/sign") {
			method, body = http.MethodPost, validSign
		}
		w := h.do(method, q, body)
		problemOf(t, w, 400, CodeBadRequest)
		if ct := w.Header().Get("Content-Type"); strings.Contains(ct, "javascript") {
			t.Fatal("JSONP answer")
		}
	}
	// Method override headers: never change a method, refused.
	for _, hd := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"} {
		w := h.do(http.MethodPost, "/v1/sign", validSign, hd, "GET")
		problemOf(t, w, 400, CodeBadRequest)
		w = h.do(http.MethodGet, "/v1/status", "", hd, "POST")
		problemOf(t, w, 400, CodeBadRequest)
	}
	h.assertUntouched(t)
}

func TestSec17_NoFingerprinting(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, path := range []string{"/v1/status", "/v1/readers", "/v1/card", "/v1/nope", "/"} {
		w := h.do(http.MethodGet, path, "", "Origin", "https://evil.example")
		problemOf(t, w, 403, CodeOriginNotAllowed)
		noCORS(t, w.Header())
		for _, leak := range []string{"cpsagent\"", "test", "apiVersion", "Virtual", "readers", "medecin", "DOC"} {
			if strings.Contains(w.Body.String(), leak) && leak != "cpsagent\"" {
				t.Errorf("%s: body leaks %q: %s", path, leak, w.Body)
			}
		}
		if w.Header().Get("Server") != "" {
			t.Errorf("Server header %q", w.Header().Get("Server"))
		}
		// Not embeddable as a no-cors subresource (the Zoom image trick).
		if w.Header().Get("Cross-Origin-Resource-Policy") != "same-origin" {
			t.Errorf("CORP = %q", w.Header().Get("Cross-Origin-Resource-Policy"))
		}
	}
}

func TestNotFoundAndHeaders(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, p := range []string{"/", "/v1", "/v1/", "/v1/status/", "/V1/status", "/v1/apdu", "/v1/pin", "/apdu", "/v1/debug/metrics", "/v1/sign/../status"} {
		problemOf(t, h.do(http.MethodGet, p, ""), 404, CodeNotFound)
	}
	w := h.do(http.MethodGet, "/v1/status", "")
	if w.Code != 200 {
		t.Fatal(w.Code)
	}
	securityHeaders(t, w.Header())
	if w.Header().Get("Access-Control-Allow-Origin") != testOrigin || w.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("CORS: %v", w.Header())
	}
	if w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("Content-Type %q", w.Header().Get("Content-Type"))
	}
}

func TestSec21_NonceBoundsNoDialog(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, n := range []string{"", "YQ==", strings.Repeat("A", 43), strings.Repeat("A", 132), strings.Repeat("*", 44), strings.Repeat("A", 40) + "A=A="} {
		w := h.do(http.MethodPost, "/v1/authenticate", `{"challengeNonce":"`+n+`"}`)
		p := problemOf(t, w, 400, CodeBadRequest)
		if p.Field != "challengeNonce" {
			t.Errorf("nonce %q: field %q", n, p.Field)
		}
	}
	problemOf(t, h.do(http.MethodPost, "/v1/authenticate", `{"challengeNonce":5}`), 400, CodeBadRequest)
	h.assertUntouched(t)
}

func TestSec22_SignHashAlgorithmNoDialog(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	b := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	for _, body := range []string{
		`{"documentDigest":"` + b(20) + `","digestAlgorithm":"SHA-256","format":"cades"}`,
		`{"documentDigest":"` + b(48) + `","digestAlgorithm":"SHA-256","format":"cades"}`,
		`{"documentDigest":"` + b(16) + `","digestAlgorithm":"MD5","format":"cades"}`,
		`{"documentDigest":"` + b(20) + `","digestAlgorithm":"SHA-1","format":"cades"}`,
		`{"documentDigest":"` + b(32) + `","digestAlgorithm":"SHA3-256","format":"cades"}`,
		`{"documentDigest":"` + b(32) + `","format":"cades"}`,
	} {
		problemOf(t, h.do(http.MethodPost, "/v1/sign", body), 400, CodeBadRequest)
	}
	h.assertUntouched(t)
}

func TestSec24_NoPINOrAPDUInTheAPI(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, body := range []string{
		`{"dataToSign":"YWJj","pin":"1234"}`,
		`{"pin":"1234","dataToSign":"YWJj"}`,
		`{"dataToSign":"YWJj","PIN":"1234"}`,
		`{"dataToSign":"YWJj","puk":"12345678"}`,
		`{"dataToSign":"YWJj","newPin":"1234"}`,
		`{"dataToSign":"YWJj","pin":1234}`,
	} {
		p := problemOf(t, h.do(http.MethodPost, "/v1/sign", body), 400, CodeBadRequest)
		if !strings.Contains(strings.ToLower(p.Field), "pin") && !strings.Contains(strings.ToLower(p.Field), "puk") {
			t.Errorf("field %q", p.Field)
		}
	}
	problemOf(t, h.do(http.MethodPost, "/v1/authenticate", `{"challengeNonce":"`+goodNonce+`","pin":"1234"}`), 400, CodeBadRequest)
	for _, path := range []string{"/v1/apdu", "/v1/pin", "/v1/verify", "/v1/transmit", "/apdu", "/v1/card/apdu"} {
		problemOf(t, h.do(http.MethodPost, path, `{"apdu":"00200001043132333"}`), 404, CodeNotFound)
	}
	h.assertUntouched(t)
}

func TestSec25_BodyLimitsAndStrictJSON(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	// Content-Length over the limit: refused before reading.
	big := `{"challengeNonce":"` + strings.Repeat("A", MaxSmallBody) + `"}`
	problemOf(t, h.do(http.MethodPost, "/v1/authenticate", big), 413, CodePayloadTooLarge)
	// Unknown length (chunked): refused while reading.
	r := req(http.MethodPost, "/v1/authenticate", big)
	r.ContentLength = -1
	problemOf(t, h.serve(r), 413, CodePayloadTooLarge)
	// /v1/sign takes 16 MiB, not more.
	doc := base64.StdEncoding.EncodeToString(make([]byte, MaxSignBody))
	problemOf(t, h.do(http.MethodPost, "/v1/sign", `{"document":"`+doc+`","format":"cades"}`), 413, CodePayloadTooLarge)
	r = req(http.MethodPost, "/v1/sign", `{"document":"`+doc+`","format":"cades"}`)
	r.ContentLength = -1
	problemOf(t, h.serve(r), 413, CodePayloadTooLarge)
	// Deep nesting, duplicate keys, trailing data, wrong types.
	for _, body := range []string{
		`{"challengeNonce":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`,
		`{"challengeNonce":"` + goodNonce + `","challengeNonce":"` + goodNonce + `"}`,
		`{"challengeNonce":"` + goodNonce + `"}{}`,
		`{"challengeNonce":"` + goodNonce + `"}]`,
		`{"challengeNonce":["` + goodNonce + `"]}`,
		`{"challengeNonce":"` + goodNonce + `","extra":"x"}`,
		"\xef\xbb\xbf{}", // BOM
	} {
		problemOf(t, h.do(http.MethodPost, "/v1/authenticate", body), 400, CodeBadRequest)
	}
	h.assertUntouched(t)
}

func TestProblemTable(t *testing.T) {
	seen := map[string]bool{}
	for code, d := range problems {
		if d.status < 400 || d.status > 599 || d.title == "" || d.detail == "" || d.detailFr == "" {
			t.Errorf("%s: incomplete %+v", code, d)
		}
		if strings.ContainsAny(code, " -ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			t.Errorf("code %q is not snake_case", code)
		}
		if seen[d.detail] {
			t.Errorf("%s: detail reused", code)
		}
		seen[d.detail] = true
	}
	for _, c := range []string{"agent_busy", "reader_absent", "card_absent", "card_removed", "pcsc_unavailable", "pin_cancelled",
		"pin_incorrect", "pin_blocked", "origin_not_allowed", "host_not_allowed", "bad_request", "unsupported_media_type",
		"payload_too_large", "method_not_allowed", "internal"} {
		if _, ok := problems[c]; !ok {
			t.Errorf("code %s (required by the issue) missing", c)
		}
	}
	if p := newProblem("no_such_code"); p.Code != CodeInternal {
		t.Errorf("unknown code -> %+v", p)
	}
}
