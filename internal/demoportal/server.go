// Package demoportal is the demo portal that `cpsagent demo-portal` serves:
// a web site on its own HTTPS origin that logs a health professional in
// with the CPS card through the local agent (nonce from this server, Web eID
// token verified with pkg/cpsverify), follows card insertion and removal,
// and has an uploaded document signed (CAdES) by the card, then verifies the
// .p7s and offers it for download.
//
// It is also the reference for portal developers: docs/integration.md
// quotes its handlers. Everything is kept in memory.
package demoportal

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/install"
	"github.com/cpsagent/cpsagent/pkg/cpsid"
	"github.com/cpsagent/cpsagent/pkg/cpsverify"
	"github.com/cpsagent/cpsagent/web"
)

// defaultAgentEndpoints are the addresses the page's Content-Security-Policy
// lets it reach when no endpoint is configured: every port of the agent's
// range (47180–47199) on 127.0.0.1 and [::1], which the JavaScript client
// probes itself (a second session on a shared host has its agent on 47181).
func defaultAgentEndpoints() []string {
	var es []string
	for p := install.PortFirst; p <= install.PortLast; p++ {
		es = append(es, fmt.Sprintf("https://127.0.0.1:%d", p), fmt.Sprintf("https://[::1]:%d", p))
	}
	return es
}

// Config configures a Server.
type Config struct {
	// Origin is the portal's origin as browsers see it, for example
	// "https://127.0.0.1:47190". Tokens are verified against this value,
	// never against a request header.
	Origin string
	// AgentEndpoints are the agent base URLs the page tries (and the only
	// ones its Content-Security-Policy lets it reach). Default: none given
	// to the page, which then finds the agent in its port range like any
	// portal using the client library.
	AgentEndpoints []string
	// Verifier checks tokens and signatures. Its AllowedOrigins is set to
	// {Origin} when empty, its Nonces to a MemoryNonceStore when nil.
	Verifier *cpsverify.Verifier
	// TrustFiles, when set, hold the trust anchors (PEM, DER, .p7b): they
	// replace Verifier.Roots/Intermediates and are reloaded when the files
	// change (the virtual card's chain is rewritten at each agent start).
	TrustFiles []string
	// MaxDocumentSize bounds an upload (default 10 MiB).
	MaxDocumentSize int64
	// Logger receives one line per portal action; nil: none. Documents,
	// tokens and identities are never logged.
	Logger *zap.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Server is the demo portal.
type Server struct {
	cfg      Config
	origin   *url.URL
	trust    *trustSource
	sessions *sessionStore
	log      *zap.Logger
	now      func() time.Time
	csp      string
	mux      *http.ServeMux
}

// New checks cfg and builds a Server.
func New(cfg Config) (*Server, error) {
	u, err := url.Parse(cfg.Origin)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("demoportal: origin %q must be https://host[:port] (tokens are only verified for https origins)", cfg.Origin)
	}
	if cfg.Verifier == nil {
		return nil, errors.New("demoportal: a verifier is required")
	}
	if cfg.Verifier.Roots == nil && len(cfg.TrustFiles) == 0 {
		return nil, errors.New("demoportal: the verifier has no trust anchors (give --ca)")
	}
	if len(cfg.Verifier.AllowedOrigins) == 0 {
		cfg.Verifier.AllowedOrigins = []string{cfg.Origin}
	}
	if cfg.Verifier.Nonces == nil {
		cfg.Verifier.Nonces = &cpsverify.MemoryNonceStore{Now: cfg.Verifier.Now}
	}
	reachable := cfg.AgentEndpoints
	if len(reachable) == 0 {
		reachable = defaultAgentEndpoints()
	}
	connect := []string{"'self'"}
	for _, e := range reachable {
		eu, err := url.Parse(e)
		if err != nil || (eu.Scheme != "https" && eu.Scheme != "http") || eu.Host == "" || (eu.Path != "" && eu.Path != "/") {
			return nil, fmt.Errorf("demoportal: bad agent endpoint %q", e)
		}
		ws := "wss"
		if eu.Scheme == "http" {
			ws = "ws"
		}
		connect = append(connect, eu.Scheme+"://"+eu.Host, ws+"://"+eu.Host)
	}
	if cfg.MaxDocumentSize <= 0 {
		cfg.MaxDocumentSize = defaultMaxDocument
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	trust, err := newTrustSource(cfg.Verifier, cfg.TrustFiles, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("demoportal: trust anchors: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		origin:   u,
		trust:    trust,
		sessions: newSessionStore(cfg.Now, defaultDocumentPool),
		log:      cfg.Logger,
		now:      cfg.Now,
		csp: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
			"connect-src " + strings.Join(connect, " ") + "; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	}
	s.routes()
	return s, nil
}

// Origin returns the portal origin tokens are verified for.
func (s *Server) Origin() string { return s.cfg.Origin }

// Handler returns the portal's HTTP handler. Unsafe cross-origin requests
// (CSRF) are refused by http.CrossOriginProtection.
func (s *Server) Handler() http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, http.StatusForbidden, "cross_origin", "Requête d'un autre site refusée.", "Cross-origin request refused.")
	}))
	return s.headers(cop.Handler(s.mux))
}

func (s *Server) routes() {
	m := http.NewServeMux()
	demo := web.Demo()
	m.HandleFunc("GET /{$}", s.static(demo, "index.html", "text/html; charset=utf-8"))
	m.HandleFunc("GET /app.js", s.static(demo, "app.js", "text/javascript; charset=utf-8"))
	m.HandleFunc("GET /style.css", s.static(demo, "style.css", "text/css; charset=utf-8"))
	m.HandleFunc("GET /cpsagent.js", s.bytes(web.ClientJS(), "text/javascript; charset=utf-8"))
	m.HandleFunc("GET /cpsagent.d.ts", s.bytes(web.ClientTypes(), "text/plain; charset=utf-8"))
	m.HandleFunc("GET /api/config", s.handleConfig)
	m.HandleFunc("GET /api/session", s.handleSession)
	m.HandleFunc("POST /api/nonce", s.handleNonce)
	m.HandleFunc("POST /api/login", s.handleLogin)
	m.HandleFunc("POST /api/logout", s.handleLogout)
	m.HandleFunc("POST /api/documents", s.handleUpload)
	m.HandleFunc("POST /api/documents/{id}/signature", s.handleSignature)
	m.HandleFunc("GET /api/documents/{id}/signature.p7s", s.handleDownload)
	s.mux = m
}

func (s *Server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", s.csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Strict-Transport-Security", "max-age=300")
		if strings.HasPrefix(r.URL.Path, "/api/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) static(fsys fs.FS, name, ctype string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		s.bytes(b, ctype)(w, r)
	}
}

func (s *Server) bytes(b []byte, ctype string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	}
}

// apiError is the portal's own error document (not the agent's).
type apiError struct {
	Code    string            `json:"code"`
	Message map[string]string `json:"message"`
	Detail  string            `json:"detail,omitempty"`
}

func (s *Server) fail(w http.ResponseWriter, status int, code, fr, en string) {
	s.failDetail(w, status, code, fr, en, "")
}

func (s *Server) failDetail(w http.ResponseWriter, status int, code, fr, en, detail string) {
	writeJSON(w, status, apiError{Code: code, Message: map[string]string{"fr": fr, "en": en}, Detail: detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// readJSON decodes a small JSON body strictly.
func readJSON(r *http.Request, limit int64, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return errors.New("Content-Type must be application/json")
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

type configResponse struct {
	Origin          string   `json:"origin"`
	AgentEndpoints  []string `json:"agentEndpoints"`
	MaxDocumentSize int64    `json:"maxDocumentSize"`
}

func (s *Server) handleConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, configResponse{Origin: s.cfg.Origin, AgentEndpoints: s.cfg.AgentEndpoints, MaxDocumentSize: s.cfg.MaxDocumentSize})
}

type sessionResponse struct {
	LoggedIn   bool            `json:"loggedIn"`
	Identity   *cpsid.Identity `json:"identity"`
	LoggedInAt *time.Time      `json:"loggedInAt"`
}

func (s *Server) handleSession(w http.ResponseWriter, r *http.Request) {
	resp := sessionResponse{}
	if ss := s.sessions.get(r); ss != nil {
		_ = s.sessions.with(ss, func(ss *session) error {
			if ss.identity != nil {
				resp.LoggedIn, resp.Identity = true, ss.identity
				t := ss.loggedInAt
				resp.LoggedInAt = &t
			}
			return nil
		})
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleNonce issues a challenge nonce from the verifier's NonceStore and
// binds it to the session: a later login of this session is verified
// against this nonce only.
func (s *Server) handleNonce(w http.ResponseWriter, r *http.Request) {
	ss, err := s.sessions.getOrCreate(w, r, true)
	if err != nil {
		s.fail(w, http.StatusServiceUnavailable, "busy", "Portail surchargé, réessayez plus tard.", "Portal overloaded, try again later.")
		return
	}
	nonce, err := s.trust.verifier().IssueNonce(r.Context())
	if err != nil {
		s.log.Warn("nonce issue failed", zap.Error(err))
		s.fail(w, http.StatusServiceUnavailable, "busy", "Portail surchargé, réessayez plus tard.", "Portal overloaded, try again later.")
		return
	}
	_ = s.sessions.with(ss, func(ss *session) error { ss.nonce = nonce; return nil })
	s.log.Info("nonce issued")
	writeJSON(w, http.StatusOK, map[string]string{"nonce": nonce})
}

type loginRequest struct {
	Token json.RawMessage `json:"token"`
}

// certificateView is what the page shows of a verified certificate.
type certificateView struct {
	Subject          string    `json:"subject"`
	Issuer           string    `json:"issuer"`
	IssuerCommonName string    `json:"issuerCommonName"`
	SerialNumber     string    `json:"serialNumber"`
	NotBefore        time.Time `json:"notBefore"`
	NotAfter         time.Time `json:"notAfter"`
	SHA256           string    `json:"sha256"`
}

func viewOf(c *x509.Certificate) *certificateView {
	if c == nil {
		return nil
	}
	sum := sha256.Sum256(c.Raw)
	return &certificateView{
		Subject: c.Subject.String(), Issuer: c.Issuer.String(), IssuerCommonName: c.Issuer.CommonName, SerialNumber: c.SerialNumber.Text(16),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), SHA256: hex.EncodeToString(sum[:]),
	}
}

type loginResponse struct {
	Identity     *cpsid.Identity  `json:"identity"`
	Origin       string           `json:"origin"`
	Certificate  *certificateView `json:"certificate"`
	Checks       []string         `json:"checks"`
	TokenFormat  string           `json:"tokenFormat"`
	AgentVersion string           `json:"agentVersion"`
}

// verifiedChecks names, in order, what cpsverify.VerifyAuthToken checked
// (the page shows them in its language).
var verifiedChecks = []string{
	"format", "algorithm", "origin", "nonce", "validity", "keyUsage", "chain", "testCards", "signature",
}

// handleLogin verifies the token the page got from the agent for the
// nonce of this session and this portal's configured origin.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	ss := s.sessions.get(r)
	if ss == nil {
		s.fail(w, http.StatusUnauthorized, "no_session", "Session expirée : rechargez la page.", "Session expired: reload the page.")
		return
	}
	var req loginRequest
	if err := readJSON(r, cpsverify.MaxTokenSize+1024, &req); err != nil || len(req.Token) == 0 {
		s.fail(w, http.StatusBadRequest, "bad_request", "Requête invalide.", "Invalid request.")
		return
	}
	var nonce string
	_ = s.sessions.with(ss, func(ss *session) error {
		nonce, ss.nonce = ss.nonce, "" // one attempt per nonce, whatever the outcome
		return nil
	})
	if nonce == "" {
		s.fail(w, http.StatusUnauthorized, "nonce_missing", "Aucun défi en cours pour cette session : recommencez la connexion.", "No challenge pending for this session: start the login again.")
		return
	}
	token, err := cpsverify.ParseAuthToken(req.Token)
	var id *cpsid.Identity
	if err == nil {
		id, err = s.trust.verifier().VerifyAuthToken(r.Context(), token, s.cfg.Origin, nonce)
	}
	if err != nil {
		code, fr, en := describeVerifyError(err)
		s.log.Info("login refused", zap.String("reason", code))
		s.failDetail(w, http.StatusUnauthorized, code, fr, en, err.Error())
		return
	}
	cert := parseCertB64(token.UnverifiedCertificate)
	now := s.now()
	_ = s.sessions.with(ss, func(ss *session) error {
		ss.identity, ss.loggedInAt = id, now
		return nil
	})
	s.log.Info("login verified")
	writeJSON(w, http.StatusOK, loginResponse{
		Identity: id, Origin: s.cfg.Origin, Certificate: viewOf(cert), Checks: verifiedChecks,
		TokenFormat: token.Format, AgentVersion: token.AppVersion,
	})
}

func parseCertB64(s string) *x509.Certificate {
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil
	}
	return c
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if ss := s.sessions.get(r); ss != nil {
		_ = s.sessions.with(ss, func(ss *session) error {
			ss.identity, ss.nonce = nil, ""
			return nil
		})
	}
	writeJSON(w, http.StatusOK, map[string]bool{"loggedIn": false})
}

// describeVerifyError turns a cpsverify error into a code and texts for the
// user. Details stay in the "detail" member for the developer console.
func describeVerifyError(err error) (code, fr, en string) {
	switch {
	case errors.Is(err, cpsverify.ErrNonceReplayed):
		return "nonce_replayed", "Ce jeton a déjà été utilisé : recommencez la connexion.", "This token was already used: start the login again."
	case errors.Is(err, cpsverify.ErrNonceExpired):
		return "nonce_expired", "Le défi de connexion a expiré : recommencez la connexion.", "The login challenge expired: start the login again."
	case errors.Is(err, cpsverify.ErrNonce):
		return "nonce_invalid", "Défi de connexion inconnu : recommencez la connexion.", "Unknown login challenge: start the login again."
	case errors.Is(err, cpsverify.ErrOriginMismatch):
		return "origin_mismatch", "Le jeton a été signé pour un autre site : connexion refusée.", "The token was signed for another site: login refused."
	case errors.Is(err, cpsverify.ErrCertificateValidity):
		return "certificate_expired", "Le certificat de la carte n'est pas (ou plus) valide.", "The card certificate is not (or no longer) valid."
	case errors.Is(err, cpsverify.ErrCertificateUntrusted):
		return "certificate_untrusted", "La carte n'a pas été émise par une autorité reconnue par ce portail.", "The card was not issued by an authority this portal trusts."
	case errors.Is(err, cpsverify.ErrTestCard):
		return "test_card", "Les cartes de test ne sont pas acceptées ici.", "Test cards are not accepted here."
	case errors.Is(err, cpsverify.ErrProductionCard):
		return "production_card", "Ce portail de test n'accepte que les cartes de test.", "This test portal only accepts test cards."
	case errors.Is(err, cpsverify.ErrKeyUsage):
		return "key_usage", "Ce certificat ne peut pas servir à l'authentification.", "This certificate cannot be used for authentication."
	case errors.Is(err, cpsverify.ErrSignature):
		return "signature_invalid", "La signature du jeton est invalide : connexion refusée.", "The token signature is invalid: login refused."
	case errors.Is(err, cpsverify.ErrUnsupportedAlgorithm), errors.Is(err, cpsverify.ErrFormat):
		return "token_malformed", "Jeton d'authentification mal formé.", "Malformed authentication token."
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled", "Vérification interrompue.", "Verification interrupted."
	}
	return "verification_failed", "La vérification a échoué.", "Verification failed."
}

type uploadResponse struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Size      int    `json:"size"`
	SHA256    string `json:"sha256"` // base64, the documentDigest for the agent
	SHA256Hex string `json:"sha256Hex"`
}

// handleUpload stores a document (raw body) in the session.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	ss := s.loggedIn(w, r)
	if ss == nil {
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/octet-stream" {
		s.fail(w, http.StatusUnsupportedMediaType, "bad_request", "Envoyez le fichier en application/octet-stream.", "Send the file as application/octet-stream.")
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxDocumentSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.fail(w, http.StatusRequestEntityTooLarge, "too_large",
				fmt.Sprintf("Document trop volumineux (%d Mio au plus).", s.cfg.MaxDocumentSize>>20),
				fmt.Sprintf("Document too large (%d MiB at most).", s.cfg.MaxDocumentSize>>20))
			return
		}
		s.fail(w, http.StatusBadRequest, "bad_request", "Envoi interrompu.", "Upload interrupted.")
		return
	}
	if len(data) == 0 {
		s.fail(w, http.StatusBadRequest, "empty_document", "Le document est vide.", "The document is empty.")
		return
	}
	sum := sha256.Sum256(data)
	d := &document{
		id: randomID(), name: cleanFilename(r.Header.Get("X-Filename")), data: data, sha256: sum[:], createdAt: s.now(),
	}
	if err := s.sessions.addDocument(ss, d); err != nil {
		s.fail(w, http.StatusServiceUnavailable, "busy", "Portail plein, réessayez plus tard.", "Portal full, try again later.")
		return
	}
	s.log.Info("document uploaded", zap.Int("size", len(data)))
	writeJSON(w, http.StatusOK, uploadResponse{
		ID: d.id, Name: d.name, Size: len(data),
		SHA256: base64.StdEncoding.EncodeToString(sum[:]), SHA256Hex: hex.EncodeToString(sum[:]),
	})
}

// loggedIn returns the session of a logged-in user, or writes 401.
func (s *Server) loggedIn(w http.ResponseWriter, r *http.Request) *session {
	ss := s.sessions.get(r)
	ok := false
	if ss != nil {
		_ = s.sessions.with(ss, func(ss *session) error { ok = ss.identity != nil; return nil })
	}
	if !ok {
		s.fail(w, http.StatusUnauthorized, "login_required", "Connectez-vous d'abord avec votre carte CPS.", "Log in with your CPS card first.")
		return nil
	}
	return ss
}

// cleanFilename keeps a safe display name from the X-Filename header
// (percent-encoded UTF-8).
func cleanFilename(raw string) string {
	name, err := url.PathUnescape(raw)
	if err != nil {
		name = raw
	}
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '"' || r == '/' || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if rs := []rune(name); len(rs) > 120 {
		name = string(rs[:120])
	}
	if name == "" || name == "." || name == ".." {
		name = "document"
	}
	return name
}

type signatureRequest struct {
	Signature string `json:"signature"`
}

// signatureResult is the verification of a .p7s as the page shows it.
type signatureResult struct {
	Valid                       bool              `json:"valid"`
	Signer                      *cpsid.Identity   `json:"signer,omitempty"`
	SignerIsLoggedInUser        bool              `json:"signerIsLoggedInUser"`
	SigningTime                 *time.Time        `json:"signingTime,omitempty"`
	DigestAlgorithm             string            `json:"digestAlgorithm,omitempty"`
	SignatureAlgorithm          string            `json:"signatureAlgorithm,omitempty"`
	SigningCertificateAttribute string            `json:"signingCertificateAttribute,omitempty"`
	Certificate                 *certificateView  `json:"certificate,omitempty"`
	Chain                       []string          `json:"chain,omitempty"`
	Error                       *apiError         `json:"error,omitempty"`
	Document                    map[string]string `json:"document"`
	Download                    string            `json:"download"`
}

// handleSignature verifies the .p7s the agent produced for a stored
// document with cpsverify.VerifyCAdES and keeps it for download.
func (s *Server) handleSignature(w http.ResponseWriter, r *http.Request) {
	ss := s.loggedIn(w, r)
	if ss == nil {
		return
	}
	d := s.sessions.document(ss, r.PathValue("id"))
	if d == nil {
		s.fail(w, http.StatusNotFound, "unknown_document", "Document inconnu.", "Unknown document.")
		return
	}
	var req signatureRequest
	if err := readJSON(r, 1<<20, &req); err != nil {
		s.fail(w, http.StatusBadRequest, "bad_request", "Requête invalide.", "Invalid request.")
		return
	}
	p7s, err := base64.StdEncoding.DecodeString(req.Signature)
	if err != nil || len(p7s) == 0 {
		s.fail(w, http.StatusBadRequest, "bad_request", "Signature absente ou mal encodée.", "Signature missing or badly encoded.")
		return
	}
	res := &signatureResult{
		Document: map[string]string{"name": d.name, "sha256Hex": hex.EncodeToString(d.sha256)},
		Download: "/api/documents/" + url.PathEscape(d.id) + "/signature.p7s",
	}
	report, verr := s.trust.verifier().VerifyCAdES(r.Context(), p7s, d.data)
	if verr != nil {
		code, fr, en := describeSignatureError(verr)
		res.Error = &apiError{Code: code, Message: map[string]string{"fr": fr, "en": en}, Detail: verr.Error()}
		s.log.Info("signature refused", zap.String("reason", code))
	} else {
		res.Valid = true
		res.Signer = report.Signer
		res.SigningTime = report.SigningTime
		res.DigestAlgorithm = report.DigestAlgorithm
		res.SignatureAlgorithm = report.SignatureAlgorithm
		res.SigningCertificateAttribute = report.SigningCertificateAttribute
		res.Certificate = viewOf(report.Certificate)
		for _, c := range report.Chain {
			res.Chain = append(res.Chain, c.Subject.CommonName)
		}
		_ = s.sessions.with(ss, func(ss *session) error {
			res.SignerIsLoggedInUser = ss.identity != nil && report.Signer != nil && ss.identity.NationalID == report.Signer.NationalID
			return nil
		})
		s.log.Info("signature verified")
	}
	s.sessions.setSignature(ss, d, p7s, res)
	writeJSON(w, http.StatusOK, res)
}

func describeSignatureError(err error) (code, fr, en string) {
	switch {
	case errors.Is(err, cpsverify.ErrDigestMismatch):
		return "digest_mismatch", "La signature ne correspond pas à ce document.", "The signature does not match this document."
	case errors.Is(err, cpsverify.ErrSigningCertificate):
		return "signing_certificate", "L'attribut signing-certificate ne désigne pas le signataire.", "The signing-certificate attribute does not name the signer."
	case errors.Is(err, cpsverify.ErrSigningTime):
		return "signing_time", "Date de signature invraisemblable.", "Implausible signing time."
	case errors.Is(err, cpsverify.ErrKeyUsage):
		return "key_usage", "Ce certificat ne peut pas servir à signer (non-répudiation).", "This certificate cannot be used to sign (non-repudiation)."
	}
	code, fr, en = describeVerifyError(err)
	return code, fr, en
}

// handleDownload offers the stored .p7s.
func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request) {
	ss := s.loggedIn(w, r)
	if ss == nil {
		return
	}
	d := s.sessions.document(ss, r.PathValue("id"))
	var p7s []byte
	var name string
	if d != nil {
		_ = s.sessions.with(ss, func(*session) error { p7s, name = d.p7s, d.name; return nil })
	}
	if len(p7s) == 0 {
		s.fail(w, http.StatusNotFound, "unknown_signature", "Aucune signature pour ce document.", "No signature for this document.")
		return
	}
	w.Header().Set("Content-Type", "application/pkcs7-signature")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name + ".p7s"}))
	_, _ = w.Write(p7s)
}
