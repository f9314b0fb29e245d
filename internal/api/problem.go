package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/pinentry"
)

// ProblemTypeBase prefixes the "type" URI of every problem.
const ProblemTypeBase = "https://cpsagent.github.io/problems/"

// Problem is an RFC 9457 problem detail with the agent's extensions: a
// stable machine code, a French detail, and per-code extras.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Code      string `json:"code"`
	Detail    string `json:"detail"`
	DetailFr  string `json:"detailFr"`
	Field     string `json:"field,omitempty"`     // bad_request: the offending field or parameter
	TriesLeft *int   `json:"triesLeft,omitempty"` // pin_incorrect
	// RetryAfter (seconds) for rate_limited; also sent as Retry-After.
	RetryAfter int `json:"retryAfter,omitempty"`
}

// Error makes a Problem usable as an error inside the package.
func (p *Problem) Error() string { return "api: " + p.Code + ": " + p.Detail }

// Problem codes. The list is part of the API contract (docs/api.md); codes
// are never renamed or reused.
const (
	CodeBadRequest            = "bad_request"
	CodeHostNotAllowed        = "host_not_allowed"
	CodeOriginNotAllowed      = "origin_not_allowed"
	CodeNotFound              = "not_found"
	CodeMethodNotAllowed      = "method_not_allowed"
	CodeUnsupportedMediaType  = "unsupported_media_type"
	CodePayloadTooLarge       = "payload_too_large"
	CodeRateLimited           = "rate_limited"
	CodeAgentBusy             = "agent_busy"
	CodeReaderAbsent          = "reader_absent"
	CodeReaderAmbiguous       = "reader_ambiguous"
	CodeCardAbsent            = "card_absent"
	CodeCardRemoved           = "card_removed"
	CodeCardChanged           = "card_changed"
	CodeCardReset             = "card_reset"
	CodeCardUnsupported       = "card_unsupported"
	CodeOperationNotSupported = "operation_not_supported"
	CodePCSCUnavailable       = "pcsc_unavailable"
	CodePINCancelled          = "pin_cancelled"
	CodePINIncorrect          = "pin_incorrect"
	CodePINBlocked            = "pin_blocked"
	CodePINFormat             = "pin_format"
	CodePINUnavailable        = "pin_unavailable"
	CodeCardError             = "card_error"
	CodeShuttingDown          = "agent_shutting_down"
	CodeInternal              = "internal"
)

type problemDef struct {
	status           int
	title            string
	detail, detailFr string
}

// problems is the one table of codes: HTTP status, English title, and the
// default English and French details.
var problems = map[string]problemDef{
	CodeBadRequest: {400, "Bad request",
		"The request is malformed.",
		"La requête est mal formée."},
	CodeHostNotAllowed: {421, "Host not allowed",
		"The Host header must name the agent (127.0.0.1, [::1] or localhost with the agent's port).",
		"L'en-tête Host doit désigner l'agent (127.0.0.1, [::1] ou localhost avec le port de l'agent)."},
	CodeOriginNotAllowed: {403, "Origin not allowed",
		"This web site is not allowed to use the card agent.",
		"Ce site n'est pas autorisé à utiliser l'agent de carte."},
	CodeNotFound: {404, "Not found",
		"There is no such endpoint.",
		"Ce point d'accès n'existe pas."},
	CodeMethodNotAllowed: {405, "Method not allowed",
		"This endpoint does not accept this HTTP method.",
		"Ce point d'accès n'accepte pas cette méthode HTTP."},
	CodeUnsupportedMediaType: {415, "Unsupported media type",
		"The body must be JSON (Content-Type: application/json).",
		"Le corps doit être du JSON (Content-Type: application/json)."},
	CodePayloadTooLarge: {413, "Payload too large",
		"The request body is too large.",
		"Le corps de la requête est trop volumineux."},
	CodeRateLimited: {429, "Too many requests",
		"Too many card operations from this site; try again later.",
		"Trop d'opérations de carte demandées par ce site ; réessayez plus tard."},
	CodeAgentBusy: {409, "Agent busy",
		"Another card operation or PIN prompt is in progress.",
		"Une autre opération de carte ou saisie de code est en cours."},
	CodeReaderAbsent: {409, "No reader",
		"No smart-card reader is connected, or the named reader does not exist.",
		"Aucun lecteur de carte n'est branché, ou le lecteur demandé n'existe pas."},
	CodeReaderAmbiguous: {409, "Several cards",
		"Several readers hold a card; name the reader (\"reader\").",
		"Plusieurs lecteurs contiennent une carte ; précisez le lecteur (\"reader\")."},
	CodeCardAbsent: {409, "No card",
		"No card is inserted in the reader.",
		"Aucune carte n'est insérée dans le lecteur."},
	CodeCardRemoved: {409, "Card removed",
		"The card was removed during the operation.",
		"La carte a été retirée pendant l'opération."},
	CodeCardChanged: {409, "Card changed",
		"The card in the reader changed during the operation.",
		"La carte du lecteur a changé pendant l'opération."},
	CodeCardReset: {409, "Card reset",
		"Another application reset the card during the operation; try again.",
		"Une autre application a réinitialisé la carte pendant l'opération ; réessayez."},
	CodeCardUnsupported: {409, "Card not supported",
		"The card is not a supported CPx card.",
		"La carte n'est pas une carte CPx prise en charge."},
	CodeOperationNotSupported: {409, "Operation not supported",
		"This operation is not possible with this card or card interface.",
		"Cette opération n'est pas possible avec cette carte ou cette interface."},
	CodePCSCUnavailable: {503, "Smart-card service unavailable",
		"The smart-card service (PC/SC) is not running.",
		"Le service de carte à puce (PC/SC) ne fonctionne pas."},
	CodePINCancelled: {409, "PIN entry cancelled",
		"The PIN entry was cancelled or timed out; nothing was sent to the card.",
		"La saisie du code a été annulée ou a expiré ; rien n'a été envoyé à la carte."},
	CodePINIncorrect: {409, "Incorrect PIN",
		"The PIN is incorrect.",
		"Le code porteur est incorrect."},
	CodePINBlocked: {409, "PIN blocked",
		"The card's PIN is blocked; unblock it with the unblocking code (PUK).",
		"Le code porteur de la carte est bloqué ; débloquez-le avec le code de déblocage."},
	CodePINFormat: {409, "Malformed PIN",
		"No PIN of the right format (4 digits) was entered; nothing was sent to the card.",
		"Aucun code au bon format (4 chiffres) n'a été saisi ; rien n'a été envoyé à la carte."},
	CodePINUnavailable: {503, "PIN prompt unavailable",
		"No PIN prompt program could be run.",
		"Aucun programme de saisie du code n'a pu être lancé."},
	CodeCardError: {502, "Card error",
		"The card gave an unexpected answer.",
		"La carte a donné une réponse inattendue."},
	CodeShuttingDown: {503, "Agent shutting down",
		"The agent is shutting down; the operation was stopped.",
		"L'agent s'arrête ; l'opération a été interrompue."},
	CodeInternal: {500, "Internal error",
		"An internal error occurred.",
		"Une erreur interne est survenue."},
}

// Codes returns every problem code with its HTTP status (for docs and tests).
func Codes() map[string]int {
	m := make(map[string]int, len(problems))
	for c, d := range problems {
		m[c] = d.status
	}
	return m
}

// newProblem returns the problem for code with its default texts.
func newProblem(code string) *Problem {
	d, ok := problems[code]
	if !ok {
		code, d = CodeInternal, problems[CodeInternal]
	}
	return &Problem{
		Type:     ProblemTypeBase + code,
		Title:    d.title,
		Status:   d.status,
		Code:     code,
		Detail:   d.detail,
		DetailFr: d.detailFr,
	}
}

// badRequest returns a bad_request problem naming field, with details.
func badRequest(field, detail, detailFr string) *Problem {
	p := newProblem(CodeBadRequest)
	p.Field = field
	if detail != "" {
		p.Detail, p.DetailFr = detail, detailFr
	}
	return p
}

// errShuttingDown is the cause of the base context cancelled at shutdown.
var errShuttingDown = errors.New("api: agent shutting down")

// promptError marks an error of the PIN prompt (see pin.go) so that a
// context error there reads as a cancelled prompt, not as an internal error.
type promptError struct{ err error }

func (e *promptError) Error() string { return "PIN prompt: " + e.err.Error() }
func (e *promptError) Unwrap() error { return e.err }

// problemFor maps an error of a handler (card engine, prompter, cades, or
// our own) to its problem. ctx is the request's context: when the agent is
// shutting down, that wins.
func problemFor(ctx context.Context, err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	if errors.Is(context.Cause(ctx), errShuttingDown) {
		return newProblem(CodeShuttingDown)
	}
	var wrong *card.WrongPINError
	if errors.As(err, &wrong) {
		p := newProblem(CodePINIncorrect)
		n := wrong.TriesLeft
		p.TriesLeft = &n
		p.Detail = "The PIN is incorrect; " + strconv.Itoa(n) + " tries left."
		p.DetailFr = "Le code porteur est incorrect ; il reste " + strconv.Itoa(n) + " essai(s)."
		if n == 1 {
			p.Detail += " One more wrong PIN blocks the card."
			p.DetailFr += " Un nouveau code faux bloquera la carte."
		}
		return p
	}
	var pe *promptError
	inPrompt := errors.As(err, &pe)
	switch {
	case errors.Is(err, card.ErrBusy), errors.Is(err, pinentry.ErrBusy):
		return newProblem(CodeAgentBusy)
	case errors.Is(err, card.ErrPINBlocked), errors.Is(err, card.ErrPUKBlocked):
		return newProblem(CodePINBlocked)
	case errors.Is(err, card.ErrPINFormat), errors.Is(err, pinentry.ErrPINFormat), errors.Is(err, pinentry.ErrPUKFormat):
		return newProblem(CodePINFormat)
	case errors.Is(err, pinentry.ErrUnavailable):
		return newProblem(CodePINUnavailable)
	case errors.Is(err, pinentry.ErrCancelled), errors.Is(err, pinentry.ErrTimeout):
		return newProblem(CodePINCancelled)
	case errors.Is(err, card.ErrPCSCUnavailable):
		return newProblem(CodePCSCUnavailable)
	case errors.Is(err, card.ErrNoReader):
		return newProblem(CodeReaderAbsent)
	case errors.Is(err, card.ErrSeveralCards):
		return newProblem(CodeReaderAmbiguous)
	case errors.Is(err, card.ErrCardReset):
		return newProblem(CodeCardReset)
	case errors.Is(err, card.ErrInvalidInput):
		return newProblem(CodeBadRequest)
	case errors.Is(err, card.ErrCardRemoved):
		return newProblem(CodeCardRemoved)
	case errors.Is(err, card.ErrNoCard):
		return newProblem(CodeCardAbsent)
	case errors.Is(err, card.ErrCardMismatch):
		return newProblem(CodeCardChanged)
	case errors.Is(err, card.ErrUnsupportedCard):
		return newProblem(CodeCardUnsupported)
	case errors.Is(err, card.ErrNotPermitted):
		return newProblem(CodeOperationNotSupported)
	case errors.Is(err, card.ErrCardFailure):
		return newProblem(CodeCardError)
	case inPrompt && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return newProblem(CodePINCancelled)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		// The client went away (nobody reads the answer) or the operation
		// deadline passed before or after the prompt.
		return newProblem(CodePINCancelled)
	}
	return newProblem(CodeInternal)
}

// writeProblem sends p as application/problem+json. The security headers
// and, for allowed origins, the CORS headers were set by the gate.
func writeProblem(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	if p.Code == CodeRateLimited && p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	body, err := json.Marshal(p)
	if err != nil { // cannot happen: only strings and ints
		body = []byte(`{"code":"internal","status":500}`)
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}
