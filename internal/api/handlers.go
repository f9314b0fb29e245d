package api

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"time"

	"github.com/cpsagent/cpsagent/internal/cades"
	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/ledger"
	"github.com/cpsagent/cpsagent/internal/logging"
	"github.com/cpsagent/cpsagent/pkg/cpsid"
)

// Capabilities lists what this agent can do (GET /v1/status).
var Capabilities = []string{"authenticate", "sign-raw", "sign-cades-document", "sign-cades-digest", "events"}

// TokenFormat is the Web eID authentication token format produced.
const TokenFormat = "web-eid:1.0"

// cardMargin is added to the PIN timeout for the whole card operation.
const cardMargin = 60 * time.Second

// readTimeout bounds the engine's cached reads.
const readTimeout = 10 * time.Second

// digestInfoSHA256 is the DER DigestInfo prefix for SHA-256 (RFC 8017
// §9.2 note 1): the card pads it with PKCS#1 v1.5.
var digestInfoSHA256 = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// SignatureAlgorithm describes a signature the way Web eID does.
type SignatureAlgorithm struct {
	CryptoAlgorithm string `json:"cryptoAlgorithm"`
	HashFunction    string `json:"hashFunction"`
	PaddingScheme   string `json:"paddingScheme"`
}

var rsaPKCS1SHA256 = SignatureAlgorithm{CryptoAlgorithm: "RSA", HashFunction: "SHA-256", PaddingScheme: "PKCS1.5"}

// StatusResponse is the body of GET /v1/status.
type StatusResponse struct {
	Agent        string        `json:"agent"`
	Version      string        `json:"version"`
	APIVersion   string        `json:"apiVersion"`
	Capabilities []string      `json:"capabilities"`
	PCSC         PCSCStatus    `json:"pcsc"`
	Readers      []card.Reader `json:"readers"`
	CardPresent  bool          `json:"cardPresent"`
}

// PCSCStatus tells whether the smart-card service answers.
type PCSCStatus struct {
	Available bool `json:"available"`
}

// ReadersResponse is the body of GET /v1/readers.
type ReadersResponse struct {
	Readers []card.Reader `json:"readers"`
}

// AuthToken is the Web eID "web-eid:1.0" authentication token.
type AuthToken struct {
	UnverifiedCertificate string `json:"unverifiedCertificate"`
	Algorithm             string `json:"algorithm"`
	Signature             string `json:"signature"`
	Format                string `json:"format"`
	AppVersion            string `json:"appVersion"`
}

// SignResponse is the body of a successful POST /v1/sign.
type SignResponse struct {
	Signature          string             `json:"signature"`
	Format             string             `json:"format"` // raw | cades
	SignatureAlgorithm SignatureAlgorithm `json:"signatureAlgorithm"`
	Certificate        string             `json:"certificate"`
}

func (s *Server) status() StatusResponse {
	avail, readers := statusOf(s.cards.Status())
	if readers == nil {
		readers = []card.Reader{}
	}
	st := StatusResponse{
		Agent:        AgentName,
		Version:      s.opts.Version,
		APIVersion:   APIVersion,
		Capabilities: Capabilities,
		PCSC:         PCSCStatus{Available: avail},
		Readers:      readers,
	}
	for _, r := range readers {
		st.CardPresent = st.CardPresent || r.CardPresent
	}
	return st
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request, _ string) {
	s.sendJSON(w, r, "status", s.status())
}

func (s *Server) handleReaders(w http.ResponseWriter, r *http.Request, _ string) {
	s.sendJSON(w, r, "readers", ReadersResponse{Readers: s.status().Readers})
}

// handleCard answers the holder identity (pkg/cpsid, docs identity.md §8)
// with both certificates. It reads the engine's per-card cache and takes
// no operation slot: a signature in progress never delays it. The read is
// recorded in the activity ledger (the identity was shown to origin).
func (s *Server) handleCard(w http.ResponseWriter, r *http.Request, origin string) {
	ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
	defer cancel()
	cd, err := s.cards.Card(ctx, r.URL.Query().Get("reader"))
	if err != nil {
		s.recordRead(origin, nil, problemFor(ctx, err).Code)
		s.fail(w, ctx, "card", err)
		return
	}
	cert := cd.AuthCert
	if cert == nil {
		cert = cd.SignCert
	}
	id := cd.Identity
	if id == nil {
		id, err = cpsid.FromCertificates(cd.AuthCert, cd.SignCert, cpsid.CardInfo{SerialNumber: cd.Serial, Generation: cd.Generation, ReadAt: cd.ReadAt})
		if err != nil {
			err = fmt.Errorf("%w: %w", card.ErrUnsupportedCard, err)
			s.recordRead(origin, cert, problemFor(ctx, err).Code)
			s.fail(w, ctx, "card", err)
			return
		}
	}
	s.recordRead(origin, cert, ledger.ResultOK)
	s.sendJSON(w, r, "card", id)
}

func (s *Server) handleDebugMetrics(w http.ResponseWriter, r *http.Request, _ string) {
	s.sendJSON(w, r, "debug", map[string]int64{
		"goroutines": int64(runtime.NumGoroutine()),
		"websockets": s.nWS.Load(),
		"operations": s.nOps.Load(),
	})
}

func (s *Server) sendJSON(w http.ResponseWriter, r *http.Request, op string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.fail(w, r.Context(), op, err)
		return
	}
	writeJSON(w, body)
}

// readBody reads the (size-capped) body.
func readBody(r *http.Request) ([]byte, *Problem) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, newProblem(CodePayloadTooLarge)
		}
		return nil, badRequest("", "The body could not be read.", "Le corps n'a pas pu être lu.")
	}
	return body, nil
}

// cardOp runs one card operation for origin: the agent-wide slot first (a
// second operation, including one whose PIN prompt is open, gets agent_busy
// at once), then the body, then the per-origin rate limit, then fn under a
// context that ends with the client, the operation deadline, or shutdown.
// Once fn ran, its outcome goes to the activity ledger as ent (whose
// certificate serial and digest fn fills in); what is refused before
// (busy, bad request, rate limit) never touched the card and is not
// recorded.
func (s *Server) cardOp(w http.ResponseWriter, r *http.Request, origin, op string, ent *ledger.Entry,
	decode func([]byte) *Problem,
	fn func(ctx context.Context) (any, *card.Signature, error)) {
	rec, _ := w.(*recorder)
	if !s.tryAcquireOp() {
		s.writeProblem(w, newProblem(CodeAgentBusy))
		return
	}
	defer s.releaseOp()
	body, p := readBody(r)
	if p != nil {
		s.writeProblem(w, p)
		return
	}
	if p := decode(body); p != nil {
		s.writeProblem(w, p)
		return
	}
	if ok, wait := s.limiter.allow(origin); !ok {
		p := newProblem(CodeRateLimited)
		p.RetryAfter = wait
		s.writeProblem(w, p)
		return
	}

	s.nOps.Add(1)
	defer s.nOps.Add(-1)
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	stop := context.AfterFunc(s.baseCtx, func() { cancel(errShuttingDown) })
	defer stop()
	ctx, cancelT := context.WithTimeout(ctx, s.opts.PINTimeout+cardMargin)
	defer cancelT()

	start := time.Now()
	resp, sig, err := fn(ctx)
	var cardTime time.Duration
	if sig != nil {
		cardTime = sig.CardTime
	}
	if err != nil {
		s.record(ent, origin, sig, problemFor(ctx, err).Code)
		s.fail(w, ctx, op, err)
		if rec != nil {
			s.log.Info("card operation", logging.Op(op), logging.Origin(origin), logging.Code(rec.code), logging.Elapsed(time.Since(start)))
		}
		return
	}
	s.record(ent, origin, sig, ledger.ResultOK)
	s.log.Info("card operation", logging.Op(op), logging.Origin(origin), logging.Code("ok"),
		logging.Elapsed(time.Since(start)), logging.CardTime(cardTime))
	s.sendJSON(w, r, op, resp)
}

func (s *Server) writeProblem(w http.ResponseWriter, p *Problem) {
	if rec, ok := w.(*recorder); ok {
		rec.problem(p)
		return
	}
	writeProblem(w, p)
}

// AuthenticationData returns what the authentication key signs for a
// login from origin with challengeNonce: the SHA-256 DigestInfo of
// SHA-256(origin) ‖ SHA-256(challengeNonce) (Web eID web-eid:1.0), and the
// hash inside it.
func AuthenticationData(origin, challengeNonce string) (digestInfo, hash []byte) {
	ho := sha256.Sum256([]byte(origin))
	hn := sha256.Sum256([]byte(challengeNonce))
	h := sha256.Sum256(append(ho[:], hn[:]...))
	return append(append([]byte{}, digestInfoSHA256...), h[:]...), h[:]
}

func (s *Server) handleAuthenticate(w http.ResponseWriter, r *http.Request, origin string) {
	var req *AuthRequest
	pp := &pinPrompt{prompter: s.prompter, origin: origin, op: "authenticate", timeout: s.opts.PINTimeout}
	ent := &ledger.Entry{Operation: ledger.OpAuthenticate}
	s.cardOp(w, r, origin, "authenticate", ent,
		func(b []byte) *Problem {
			var p *Problem
			req, p = DecodeAuthRequest(b)
			if p == nil {
				pp.lang = req.Lang
			}
			return p
		},
		func(ctx context.Context) (any, *card.Signature, error) {
			data, hash := AuthenticationData(origin, req.ChallengeNonce)
			ent.SHA256 = ledger.Digest(data) // the DigestInfo the card signs
			sig, err := waitEngine(ctx, pp, func() (*card.Signature, error) {
				return s.cards.Authenticate(ctx, req.Reader, data, pp.fn)
			})
			if err != nil {
				return nil, sig, err
			}
			if err := checkSignature(sig, hash); err != nil {
				return nil, sig, err
			}
			// The key signed a SHA-256 DigestInfo: RS256 in JWA terms,
			// whatever name the engine gives its raw operation.
			alg := "RS256"
			if _, ok := sig.Certificate.PublicKey.(*ecdsa.PublicKey); ok {
				alg = "ES256"
			}
			return AuthToken{
				UnverifiedCertificate: base64.StdEncoding.EncodeToString(sig.Certificate.Raw),
				Algorithm:             alg,
				Signature:             base64.StdEncoding.EncodeToString(sig.Value),
				Format:                TokenFormat,
				AppVersion:            s.appVersion(),
			}, sig, nil
		})
}

// appVersion is the token's "appVersion": a URL naming the application
// and its version, as Web eID does.
func (s *Server) appVersion() string {
	return "https://github.com/cpsagent/cpsagent/releases/" + s.opts.Version
}

func (s *Server) handleSign(w http.ResponseWriter, r *http.Request, origin string) {
	var req *SignRequest
	pp := &pinPrompt{prompter: s.prompter, origin: origin, op: "sign", timeout: s.opts.PINTimeout}
	op := "sign"
	ent := &ledger.Entry{Operation: ledger.OpSign}
	s.cardOp(w, r, origin, op, ent,
		func(b []byte) *Problem {
			var p *Problem
			req, p = DecodeSignRequest(b)
			if p == nil {
				pp.lang, pp.description = req.Lang, req.Description
			}
			return p
		},
		func(ctx context.Context) (any, *card.Signature, error) {
			if req.Mode == SignRaw {
				ent.SHA256 = ledger.Digest(req.Data) // the data to sign, sent to the card
				return s.signRaw(ctx, req, pp)
			}
			return s.signCAdES(ctx, req, pp, ent)
		})
}

func (s *Server) signRaw(ctx context.Context, req *SignRequest, pp *pinPrompt) (any, *card.Signature, error) {
	sig, err := waitEngine(ctx, pp, func() (*card.Signature, error) {
		return s.cards.Sign(ctx, req.Reader, req.Data, pp.fn)
	})
	if err != nil {
		return nil, sig, err
	}
	h := sha256.Sum256(req.Data)
	if err := checkSignature(sig, h[:]); err != nil {
		return nil, sig, err
	}
	return SignResponse{
		Signature:          base64.StdEncoding.EncodeToString(sig.Value),
		Format:             "raw",
		SignatureAlgorithm: rsaPKCS1SHA256,
		Certificate:        base64.StdEncoding.EncodeToString(sig.Certificate.Raw),
	}, sig, nil
}

// signCAdES builds a detached CAdES signature. The ledger entry gets the
// document's SHA-256 (what the holder can recompute from the file) and the
// signing certificate's serial, known before the card is asked.
func (s *Server) signCAdES(ctx context.Context, req *SignRequest, pp *pinPrompt, ent *ledger.Entry) (any, *card.Signature, error) {
	cctx, cancel := context.WithTimeout(ctx, readTimeout)
	cd, err := s.cards.Card(cctx, req.Reader)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	cert := cd.SignCert
	if cert == nil {
		return nil, nil, fmt.Errorf("%w: no signature certificate", card.ErrUnsupportedCard)
	}
	if cd.Identity != nil {
		pp.holder = cd.Identity.Summary()
	}
	reader := req.Reader
	if reader == "" {
		reader = cd.Reader
	}
	digest := req.Data
	if req.Mode == SignCAdESDoc {
		h := sha256.Sum256(req.Data)
		digest = h[:]
	}
	ent.SHA256, ent.CertSerial = hex.EncodeToString(digest), certSerial(cert)
	var used *card.Signature
	p7s, err := cades.BuildDetached(ctx, digest, cert, s.opts.Chain, s.now().UTC().Truncate(time.Second),
		func(ctx context.Context, tbs []byte) ([]byte, error) {
			sig, err := waitEngine(ctx, pp, func() (*card.Signature, error) {
				return s.cards.Sign(ctx, reader, tbs, pp.fn)
			})
			used = sig
			if err != nil {
				return nil, err
			}
			// The card in the reader must still be the one whose
			// certificate the signed attributes name.
			if sig.Certificate == nil || !sig.Certificate.Equal(cert) {
				return nil, card.ErrCardMismatch
			}
			return sig.Value, nil
		})
	switch {
	case errors.Is(err, cades.ErrSignatureMismatch):
		return nil, used, fmt.Errorf("%w: %w", card.ErrCardFailure, err)
	case errors.Is(err, cades.ErrCertificate):
		return nil, used, fmt.Errorf("%w: %w", card.ErrUnsupportedCard, err)
	case err != nil:
		return nil, used, err
	}
	return SignResponse{
		Signature:          base64.StdEncoding.EncodeToString(p7s),
		Format:             "cades",
		SignatureAlgorithm: rsaPKCS1SHA256,
		Certificate:        base64.StdEncoding.EncodeToString(cert.Raw),
	}, used, nil
}

// engineBusyWait bounds how long a web operation waits for the reader
// while the desktop side holds it as a full operation. Short reads (the
// identity, the PIN counter) are already waited for inside the engine;
// web operations never overlap one another (opSlot answers agent_busy at
// once); so this covers a desktop PIN flow (the tray's change or unblock
// dialog), which still gives agent_busy after this wait.
var engineBusyWait = 2 * time.Second

// waitEngine runs op again while the engine answers ErrBusy and no PIN
// prompt was shown yet: the engine takes the reader before anything else,
// so nothing was asked or sent. Once the holder was prompted, the error
// stands (one dialog, one VERIFY, no automatic retry).
func waitEngine[T any](ctx context.Context, pp *pinPrompt, op func() (T, error)) (T, error) {
	deadline := time.Now().Add(engineBusyWait)
	for {
		v, err := op()
		if !errors.Is(err, card.ErrBusy) || pp.prompted || !time.Now().Before(deadline) {
			return v, err
		}
		t := time.NewTimer(25 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
	}
}

// checkSignature verifies what the card returned against its certificate
// before anything leaves the agent: a wrong key or a corrupted answer is a
// card_error, never a token that fails later at the portal.
func checkSignature(sig *card.Signature, hash []byte) error {
	if sig == nil || sig.Certificate == nil || len(sig.Value) == 0 {
		return fmt.Errorf("%w: empty signature", card.ErrCardFailure)
	}
	switch pub := sig.Certificate.PublicKey.(type) {
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, hash, sig.Value); err != nil {
			return fmt.Errorf("%w: signature does not verify: %w", card.ErrCardFailure, err)
		}
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, hash, sig.Value) {
			return fmt.Errorf("%w: signature does not verify", card.ErrCardFailure)
		}
	default:
		return fmt.Errorf("%w: unsupported key type %s", card.ErrUnsupportedCard, x509.UnknownPublicKeyAlgorithm)
	}
	return nil
}
