package fuzzhttp

import "testing"

// TestRegressionWebSocketHandshakeErrorsAreProblems: a request to
// /v1/events that asks for an upgrade but whose handshake is invalid (no
// Sec-WebSocket-Key, a version other than 13) passes the gate, and then
// github.com/coder/websocket's Accept answers it itself with a text/plain
// "400 Bad Request" (and the agent's CORS headers), not the problem+json
// of docs/api.md ("Errors": every error is application/problem+json with a
// code). Found by the HTTP fuzzer's corpus.
//
// Fix (internal/api/events.go, handleEvents): validate the handshake before
// websocket.Accept — method GET, Sec-WebSocket-Version exactly "13" (answer
// with the Sec-WebSocket-Version: 13 header), Sec-WebSocket-Key the base64
// of 16 bytes — and answer bad_request otherwise; or give Accept a
// ResponseWriter that turns its error into the problem.
func TestRegressionWebSocketHandshakeErrorsAreProblems(t *testing.T) {
	tg := inProcess(t)
	for _, e := range []corpusEntry{
		{name: "upgrade without key", raw: req("GET", "/v1/events", []string{"Connection: Upgrade", "Upgrade: websocket",
			"Sec-WebSocket-Version: 13"}, ""), status: 400, code: "bad_request"},
		{name: "upgrade with version 8", raw: req("GET", "/v1/events", []string{"Connection: Upgrade", "Upgrade: websocket",
			"Sec-WebSocket-Version: 8", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}, ""), status: 400, code: "bad_request"},
		{name: "upgrade with a short key", raw: req("GET", "/v1/events", []string{"Connection: Upgrade", "Upgrade: websocket",
			"Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: c2hvcnQ="}, ""), status: 400, code: "bad_request"},
	} {
		t.Run(e.name, func(t *testing.T) { runEntry(t, tg, e) })
	}
}
