package api

import (
	"context"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/logging"
)

// route is one endpoint: its methods, body limit, accepted query
// parameters and handler.
type route struct {
	methods []string // never HEAD or OPTIONS (preflight is answered by the gate)
	maxBody int64
	query   []string // accepted query parameters (each at most once)
	upgrade bool     // a WebSocket: only an upgrade request can succeed
	handle  func(w http.ResponseWriter, r *http.Request, origin string)
}

func (rt *route) allows(m string) bool { return slices.Contains(rt.methods, m) }

func (s *Server) buildRoutes() map[string]*route {
	get := []string{http.MethodGet}
	post := []string{http.MethodPost}
	m := map[string]*route{
		"/v1/status":       {methods: get, maxBody: MaxSmallBody, handle: s.handleStatus},
		"/v1/readers":      {methods: get, maxBody: MaxSmallBody, handle: s.handleReaders},
		"/v1/card":         {methods: get, maxBody: MaxSmallBody, query: []string{"reader"}, handle: s.handleCard},
		"/v1/authenticate": {methods: post, maxBody: MaxSmallBody, handle: s.handleAuthenticate},
		"/v1/sign":         {methods: post, maxBody: MaxSignBody, handle: s.handleSign},
		"/v1/events":       {methods: get, maxBody: MaxSmallBody, upgrade: true, handle: s.handleEvents},
	}
	if s.opts.DebugMetrics {
		m["/v1/debug/metrics"] = &route{methods: get, maxBody: MaxSmallBody, handle: s.handleDebugMetrics}
	}
	return m
}

// methodOverrideHeaders are refused outright: the agent never lets a
// header change the method the browser's CORS checks were made for.
var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// Handler returns the API's http.Handler: the gate in front of the routes.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// serveHTTP is the request gate (docs/api.md "Request gate"), in order:
// Host, Origin (+ consent, CORS, preflight), route, method, query,
// Content-Type, body size. The handlers then decode the body strictly.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// Run waits for every handler, hijacked WebSockets included, up to
	// the end of its access-log line.
	s.active.Add(1)
	defer s.active.Done()
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	w = rec
	origin := ""
	defer func() {
		lvl := s.log.Info
		if rec.status >= 500 {
			lvl = s.log.Warn
		}
		if r.URL.Path == "/v1/status" && rec.status == http.StatusOK {
			lvl = s.log.Debug
		}
		fields := []zap.Field{logging.Method(r.Method), logging.Path(r.URL.Path), logging.Origin(origin),
			logging.Status(rec.status), logging.Elapsed(time.Since(start))}
		if rec.code != "" {
			fields = append(fields, logging.Code(rec.code))
		}
		lvl("request", fields...)
	}()

	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "frame-ancestors 'none'; default-src 'none'")
	h.Set("X-Frame-Options", "DENY") // frame-ancestors for browsers without CSP level 2
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Vary", "Origin")

	// 1. Host: DNS rebinding. Nothing else happens for a foreign Host.
	if !(*s.hosts.Load())[strings.ToLower(r.Host)] {
		origin = r.Header.Get("Origin")
		rec.problem(newProblem(CodeHostNotAllowed))
		return
	}

	// 2. Origin: exactly one header, canonical, then allowed (the static
	// list, the machine policy, the user's answers, or a consent dialog).
	vals := r.Header.Values("Origin")
	if len(vals) == 1 {
		origin = vals[0]
	}
	norm, err := NormalizeOrigin(origin)
	rt := s.routes[r.URL.Path]
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if len(vals) != 1 || err != nil || !s.originAllowed(r, norm, rt, preflight) {
		if len(vals) == 0 {
			// No Origin at all: a browser's no-cors probe (or a local
			// program). Without CORP the page sees an opaque answer and
			// can tell "agent refused this origin" from "no agent"; it
			// reads nothing (docs/api.md, "Request gate").
			h.Del("Cross-Origin-Resource-Policy")
		}
		rec.problem(newProblem(CodeOriginNotAllowed))
		return
	}
	origin = norm
	h.Set("Access-Control-Allow-Origin", norm)
	h.Set("Access-Control-Expose-Headers", "Retry-After")

	if rt == nil {
		rec.problem(newProblem(CodeNotFound))
		return
	}

	if preflight {
		s.preflight(w, r, rt)
		return
	}

	// 3. Method and what could change its meaning, query, media type;
	// 4. body size (Content-Length).
	if p := requestProblem(r, rt); p != nil {
		if p.Code == CodeMethodNotAllowed {
			h.Set("Allow", strings.Join(append(slices.Clone(rt.methods), http.MethodOptions), ", "))
		}
		rec.problem(p)
		return
	}
	// 4. Body size while reading (chunked bodies).
	r.Body = http.MaxBytesReader(w, r.Body, rt.maxBody)

	rt.handle(w, r, norm)
}

// requestProblem checks, before the body is read, what makes a request fail
// whatever its origin: the method (and method-override headers), the query,
// the media type of a POST and its Content-Length.
func requestProblem(r *http.Request, rt *route) *Problem {
	if !rt.allows(r.Method) {
		return newProblem(CodeMethodNotAllowed)
	}
	for _, mh := range methodOverrideHeaders {
		if _, ok := r.Header[mh]; ok {
			return badRequest(mh, "Method override headers are not accepted.", "Les en-têtes de substitution de méthode ne sont pas acceptés.")
		}
	}
	if p := checkQuery(r, rt); p != nil {
		return p
	}
	if r.Method == http.MethodPost && !isJSON(r.Header.Values("Content-Type")) {
		return newProblem(CodeUnsupportedMediaType)
	}
	if r.ContentLength > rt.maxBody {
		return newProblem(CodePayloadTooLarge)
	}
	return nil
}

// originAllowed is step 2's decision for a well-formed origin. Consent may
// open a dialog and wait for the holder's answer (bursts from one origin
// share one dialog); a request that cannot succeed anyway is answered from
// what is already decided and never opens one (see mayAsk).
func (s *Server) originAllowed(r *http.Request, origin string, rt *route, preflight bool) bool {
	if !mayAsk(r, rt, preflight) {
		if l, ok := s.consent.(ConsentLookup); ok {
			return l.Allowed(origin)
		}
	}
	ok, err := s.consent.Decide(r.Context(), origin)
	if err != nil {
		s.log.Debug("origin refused", logging.Origin(origin), logging.Err(err))
		return false
	}
	return ok
}

// mayAsk reports whether a request could succeed once its origin is
// allowed: a known route, and a preflight for one of its methods or a
// request that passes steps 3 and 4 (and is a well-formed WebSocket
// upgrade on the event route). Only such a request may open a consent dialog. A preflight
// may: the browser sends the real request only after it, so a dialog there
// is the one the real request would open.
func mayAsk(r *http.Request, rt *route, preflight bool) bool {
	switch {
	case rt == nil:
		return false
	case preflight:
		return rt.allows(r.Header.Get("Access-Control-Request-Method"))
	case requestProblem(r, rt) != nil:
		return false
	case rt.upgrade && (!isUpgrade(r) || checkHandshake(r) != ""):
		return false
	}
	return true
}

// preflight answers a CORS preflight from an allowed origin: only the
// route's methods, only Content-Type, cached 10 minutes, and the Private
// Network Access opt-in when asked for. Never "*", never credentials.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request, rt *route) {
	h := w.Header()
	h.Del("Access-Control-Expose-Headers")
	h.Set("Access-Control-Allow-Methods", strings.Join(rt.methods, ", "))
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	if strings.EqualFold(r.Header.Get("Access-Control-Request-Private-Network"), "true") {
		h.Set("Access-Control-Allow-Private-Network", "true")
	}
	w.WriteHeader(http.StatusNoContent)
}

// checkQuery accepts only the route's parameters, each at most once; so
// "?callback=" (JSONP) and any other query is a bad request.
func checkQuery(r *http.Request, rt *route) *Problem {
	if r.URL.RawQuery == "" {
		return nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return badRequest("", "Malformed query string.", "Chaîne de requête mal formée.")
	}
	for k, v := range q {
		if !slices.Contains(rt.query, k) {
			return badRequest(fieldName(k), "Unknown query parameter.", "Paramètre de requête inconnu.")
		}
		if len(v) != 1 {
			return badRequest(fieldName(k), "A query parameter appears twice.", "Un paramètre de requête apparaît deux fois.")
		}
	}
	return nil
}

// isJSON accepts exactly one Content-Type: application/json, optionally
// with charset=utf-8 and nothing else.
func isJSON(vals []string) bool {
	if len(vals) != 1 {
		return false
	}
	mt, params, err := mime.ParseMediaType(vals[0])
	if err != nil || mt != "application/json" {
		return false
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return false
		}
	}
	return true
}

// recorder keeps the status and problem code for the access log. It
// unwraps for http.ResponseController and the WebSocket hijack.
type recorder struct {
	http.ResponseWriter
	status int
	code   string
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) problem(p *Problem) {
	r.code = p.Code
	writeProblem(r, p)
}

// fail maps err to its problem, logs it when it is unexpected, and writes it.
func (s *Server) fail(w http.ResponseWriter, ctx context.Context, op string, err error) {
	p := problemFor(ctx, err)
	if p.Code == CodeInternal || p.Code == CodeCardError {
		s.log.Error("operation failed", logging.Op(op), logging.Code(p.Code), logging.Err(err))
	} else {
		s.log.Debug("operation refused", logging.Op(op), logging.Code(p.Code), logging.Err(err))
	}
	if rec, ok := w.(*recorder); ok {
		rec.problem(p)
		return
	}
	writeProblem(w, p)
}

// writeJSON sends v with status 200.
func writeJSON(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
}
