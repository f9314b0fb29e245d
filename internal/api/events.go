package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	// github.com/coder/websocket rather than gorilla/websocket: it is
	// context-aware (every read and write takes a ctx, so shutdown and
	// client loss end a stream without extra goroutines), safe for
	// concurrent writers, bounds message size by default (we lower it to
	// 1 KiB), and closes with the right status codes by itself (1009 too
	// big). Its Origin check is disabled here only because the gate in
	// front of every route already did a stricter one (exact allow-list,
	// missing Origin refused), whereas gorilla's default CheckOrigin
	// accepts a missing Origin (security.md §3.3).
	"github.com/coder/websocket"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/logging"
)

// WebSocket limits.
const (
	wsReadLimit    = 1024
	wsWriteTimeout = 5 * time.Second
)

// forwardedEvents are the event types sent to web pages (docs/api.md).
// Operation start/end events stay inside the agent: they would tell one
// site about another site's activity.
var forwardedEvents = map[card.EventType]bool{
	card.EventReaderAdded:     true,
	card.EventReaderRemoved:   true,
	card.EventCardInserted:    true,
	card.EventCardRemoved:     true,
	card.EventIdentityReady:   true,
	card.EventServiceLost:     true,
	card.EventServiceRestored: true,
}

// HelloMessage is the first message of the event stream.
type HelloMessage struct {
	Type       string         `json:"type"` // "hello"
	APIVersion string         `json:"apiVersion"`
	Status     StatusResponse `json:"status"`
}

// checkHandshake validates the RFC 6455 §4.2.1 request fields the upgrade
// needs; it returns a short reason, or "" when the handshake is well formed.
func checkHandshake(r *http.Request) string {
	if r.Method != http.MethodGet {
		return "method must be GET"
	}
	if v := r.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || v[0] != "13" {
		return "Sec-WebSocket-Version must be 13"
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return "exactly one Sec-WebSocket-Key is required"
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0]))
	if err != nil || len(k) != 16 {
		return "Sec-WebSocket-Key must be 16 bytes in base64"
	}
	return ""
}

func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header.Values("Connection"), "upgrade") && headerHasToken(r.Header.Values("Upgrade"), "websocket")
}

func headerHasToken(vals []string, tok string) bool {
	for _, v := range vals {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), tok) {
				return true
			}
		}
	}
	return false
}

// handleEvents streams reader and card events over a WebSocket. The
// request already passed the gate (Host and Origin), before any upgrade.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, origin string) {
	if !isUpgrade(r) {
		s.writeProblem(w, badRequest("", "This endpoint is a WebSocket (wss://).", "Ce point d'accès est une WebSocket (wss://)."))
		return
	}
	if err := checkHandshake(r); err != "" {
		// Refuse here, as problem+json, what the WebSocket library would
		// otherwise refuse with a text/plain body.
		if r.Header.Get("Sec-WebSocket-Version") != "13" {
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		s.writeProblem(w, badRequest("", "Invalid WebSocket handshake: "+err+".", "Poignée de main WebSocket invalide : "+err+"."))
		return
	}
	// The server's read and write timeouts are for HTTP exchanges; a
	// stream lives longer. Per-message deadlines take over below.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})

	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // Origin checked by the gate (see import comment)
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		s.log.Debug("websocket accept failed", logging.Err(err))
		return
	}
	s.nWS.Add(1)
	defer s.nWS.Add(-1)
	defer c.CloseNow()
	c.SetReadLimit(wsReadLimit)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.baseCtx, cancel)
	defer stop()

	events, unsubscribe := s.cards.Subscribe()
	defer unsubscribe()

	s.log.Debug("websocket opened", logging.Origin(origin))
	if err := s.wsWrite(c, HelloMessage{Type: "hello", APIVersion: APIVersion, Status: s.status()}); err != nil {
		return
	}

	// The reader gets its own context, ended only when this handler
	// returns: coder/websocket drops the connection when a Read's context
	// ends, which would race with the 1001 close frame at shutdown.
	readCtx, stopReading := context.WithCancel(context.Background())
	defer stopReading()
	pongs := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	go func() { readErr <- s.wsReadLoop(readCtx, c, pongs) }()

	for {
		select {
		case ev, ok := <-events:
			if !ok {
				c.Close(websocket.StatusGoingAway, "event stream ended")
				return
			}
			if !forwardedEvents[ev.Type] {
				continue
			}
			if err := s.wsWrite(c, ev); err != nil {
				return
			}
		case <-pongs:
			if err := s.wsWrite(c, map[string]any{"type": "pong", "time": time.Now().UTC()}); err != nil {
				return
			}
		case err := <-readErr:
			var ce *closeErr
			if errors.As(err, &ce) {
				c.Close(ce.code, ce.reason)
			}
			s.log.Debug("websocket closed", logging.Origin(origin), logging.Err(err))
			return
		case <-ctx.Done():
			c.Close(websocket.StatusGoingAway, "agent shutting down")
			return
		}
	}
}

type closeErr struct {
	code   websocket.StatusCode
	reason string
}

func (e *closeErr) Error() string { return "websocket: " + e.reason }

// wsReadLoop reads client messages. The only one accepted is the text
// message {"type":"ping"}, answered with a pong; anything else closes the
// socket: binary (1003), invalid UTF-8 (1007), other JSON or unknown type
// or extra fields (1008), more than 1 KiB (1009, by the library).
func (s *Server) wsReadLoop(ctx context.Context, c *websocket.Conn, pongs chan<- struct{}) error {
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			return &closeErr{websocket.StatusUnsupportedData, "only text messages"}
		}
		if !utf8.Valid(data) {
			return &closeErr{websocket.StatusInvalidFramePayloadData, "invalid UTF-8"}
		}
		m, p := flatObject(data, "type")
		if p != nil || m["type"] != "ping" {
			return &closeErr{websocket.StatusPolicyViolation, `only {"type":"ping"} is accepted`}
		}
		select {
		case pongs <- struct{}{}:
		default: // a pong is already pending
		}
	}
}

// wsWrite sends one message within wsWriteTimeout. Its context is not
// derived from the request's: coder/websocket closes the connection when
// the context of a write ends, and a cancellation from the shutdown must
// reach the main loop (which sends the 1001 close frame), not a write.
func (s *Server) wsWrite(c *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), wsWriteTimeout)
	defer cancel()
	return c.Write(ctx, websocket.MessageText, b)
}
