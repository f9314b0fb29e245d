// Package api is the agent's local HTTPS REST + WebSocket API (docs/api.md,
// docs/openapi.yaml): the request gate that defends a localhost server
// against web pages (Host allow-list, Origin allow-list, CORS and Private
// Network Access, method and Content-Type rules, body limits, strict JSON),
// the problem+json error vocabulary, the handlers for status, identity,
// origin-bound authentication and signatures, and the event stream.
//
// The package never talks to PC/SC: it uses the card engine through the
// small CardService interface declared here (the consumer side), and asks
// for the PIN through a pinentry.Prompter. The adapter between the engine's
// PIN callback and the prompter is in pin.go.
package api

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/ledger"
	"github.com/cpsagent/cpsagent/internal/pinentry"
)

// APIVersion is the version of this contract (path prefix /v1).
const APIVersion = "1.0"

// AgentName is the "agent" field of /v1/status.
const AgentName = "cpsagent"

// CardService is what the API needs from the card engine (*card.Engine
// satisfies it). Status must never block: /v1/status and the event hello
// read it while a signature is in progress.
type CardService interface {
	// Status is the engine's cached view of readers and cards.
	Status() Snapshot
	// Card returns the public content of the card (cached per card).
	Card(ctx context.Context, reader string) (*card.CardData, error)
	// Authenticate signs data (a DigestInfo) with the authentication key.
	Authenticate(ctx context.Context, reader string, data []byte, pin card.PINFunc) (*card.Signature, error)
	// Sign signs SHA-256(toBeSigned) with the signature key.
	Sign(ctx context.Context, reader string, toBeSigned []byte, pin card.PINFunc) (*card.Signature, error)
	// Subscribe returns reader and card events until cancel is called.
	Subscribe() (<-chan card.Event, func())
}

// Consent decides whether a web origin may use the agent (step 2 of the
// request gate). Decide may ask the card holder (a dialog) and block until
// the answer or ctx ends; it reports (true, nil) when the origin is allowed.
// *consent.Manager implements it.
type Consent interface {
	Decide(ctx context.Context, origin string) (bool, error)
}

// ConsentLookup may be implemented by a Consent that can also tell, without
// ever asking anybody, whether an origin is allowed now. The gate uses it
// for requests that would fail anyway (unknown path, a method the route
// does not offer, a bad query, media type or size, a plain GET on the
// WebSocket route): those never open a consent dialog. A Consent without
// it is asked with Decide for every request.
type ConsentLookup interface {
	Allowed(origin string) bool
}

// Recorder keeps the activity ledger; *ledger.Ledger implements it.
type Recorder interface {
	Record(e ledger.Entry) error
}

// Options configures a Server.
type Options struct {
	// AllowedOrigins lists the web origins allowed to use the agent
	// (validated with ParseAllowedOrigin). With Consent nil, it is the
	// whole decision; with Consent set, it is only validated (the
	// Consent holds the same list and more).
	AllowedOrigins []string
	// Consent decides which origins may use the agent, asked for every
	// request that passed the Host check (preflights and WebSocket
	// upgrades included). Nil: exactly AllowedOrigins, never a dialog.
	Consent Consent
	// Ledger receives one entry per authentication, signature and card
	// read (origin, operation, certificate serial, digest, result); nil:
	// none.
	Ledger Recorder
	// Ports are the TCP ports the agent listens on; the Host allow-list is
	// 127.0.0.1:P, [::1]:P and localhost:P for each. Run adds the ports of
	// its listeners.
	Ports []int
	// Version is the agent version reported by /v1/status and in tokens.
	Version string
	// PINTimeout is how long the PIN prompt waits (0: 2 minutes).
	PINTimeout time.Duration
	// RateBurst and RatePerMinute bound the card operations one origin may
	// start (token bucket). Both 0: no limit.
	RateBurst, RatePerMinute int
	// Chain is added to CAdES signatures after the signer certificate
	// (intermediate CAs); optional.
	Chain []*x509.Certificate
	// Logger receives the access log and errors; nil: no logging.
	Logger *zap.Logger
	// DebugMetrics exposes GET /v1/debug/metrics (goroutine count, open
	// connections) for leak tests. Never on in normal runs.
	DebugMetrics bool
	// Now is the clock for CAdES signing-time (nil: time.Now).
	Now func() time.Time
	// ReadHeaderTimeout overrides the server's (0: ReadHeaderTimeout);
	// tests use a short one.
	ReadHeaderTimeout time.Duration
}

// Server is the API. Its zero value is not usable: call New.
type Server struct {
	opts     Options
	log      *zap.Logger
	cards    CardService
	prompter pinentry.Prompter
	origins  map[string]bool
	consent  Consent
	ledger   Recorder
	reads    readDedupe // card reads already in the ledger
	hosts    atomic.Pointer[map[string]bool]
	routes   map[string]*route
	opSlot   chan struct{} // one card operation (and PIN prompt) at a time
	limiter  *rateLimiter
	now      func() time.Time

	baseCtx    context.Context
	baseCancel context.CancelCauseFunc

	mu     sync.Mutex
	active sync.WaitGroup // handlers running (WebSockets included)
	nWS    atomic.Int64
	nOps   atomic.Int64
}

// New validates opts and builds a Server.
func New(opts Options, cards CardService, prompter pinentry.Prompter) (*Server, error) {
	if cards == nil || prompter == nil {
		return nil, errors.New("api: a card service and a prompter are required")
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		cards:    cards,
		prompter: prompter,
		origins:  map[string]bool{},
		consent:  opts.Consent,
		ledger:   opts.Ledger,
		opSlot:   make(chan struct{}, 1),
		limiter:  newRateLimiter(opts.RateBurst, opts.RatePerMinute),
		now:      opts.Now,
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.opts.PINTimeout <= 0 {
		s.opts.PINTimeout = 2 * time.Minute
	}
	if s.opts.Version == "" {
		s.opts.Version = "devel"
	}
	for _, o := range opts.AllowedOrigins {
		n, err := ParseAllowedOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		s.origins[n] = true
	}
	if s.consent == nil {
		s.consent = staticConsent(s.origins)
	}
	empty := map[string]bool{}
	s.hosts.Store(&empty)
	for _, p := range opts.Ports {
		if err := s.AllowPort(p); err != nil {
			return nil, err
		}
	}
	s.baseCtx, s.baseCancel = context.WithCancelCause(context.Background())
	s.routes = s.buildRoutes()
	return s, nil
}

// AllowPort adds 127.0.0.1:port, [::1]:port and localhost:port to the Host
// allow-list (and the bare names when port is 443).
func (s *Server) AllowPort(port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("api: bad port %d", port)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.hosts.Load()
	m := make(map[string]bool, len(old)+3)
	for k := range old {
		m[k] = true
	}
	for _, h := range []string{"127.0.0.1", "[::1]", "localhost"} {
		m[fmt.Sprintf("%s:%d", h, port)] = true
		if port == 443 {
			m[h] = true
		}
	}
	s.hosts.Store(&m)
	return nil
}

// AllowedOrigins returns the normalised allow-list.
func (s *Server) AllowedOrigins() []string {
	out := make([]string, 0, len(s.origins))
	for o := range s.origins {
		out = append(out, o)
	}
	return out
}

// errOriginNotAllowed is staticConsent's refusal.
var errOriginNotAllowed = errors.New("api: origin not in the allow-list")

// staticConsent allows exactly the configured origins: no dialog, no state.
type staticConsent map[string]bool

func (c staticConsent) Decide(_ context.Context, origin string) (bool, error) {
	if c[origin] {
		return true, nil
	}
	return false, errOriginNotAllowed
}

func (c staticConsent) Allowed(origin string) bool { return c[origin] }
