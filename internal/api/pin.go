package api

import (
	"context"
	"strings"
	"time"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/pinentry"
)

// pinPrompt bridges the card engine's PIN callback to the pinentry
// Prompter for one web request. The engine says what it knows (kind,
// holder, tries left, last try); the request adds the validated origin, the
// operation and the site's description.
//
// Rules enforced here, whatever the engine does:
//   - a blocked PIN (0 tries left) gets no prompt at all;
//   - the prompt runs under the request's context, so a client that goes
//     away (or an agent shutting down) kills the pinentry process and the
//     engine receives an error instead of a PIN: no VERIFY is sent;
//   - the Secret is copied once into the slice the engine zeroes after
//     VERIFY, and wiped here at once.
type pinPrompt struct {
	prompter    pinentry.Prompter
	origin      string
	op          string // "authenticate" or "sign"
	description string
	lang        string
	holder      string        // fallback when the engine gives none
	timeout     time.Duration // 0 = prompter default
	prompted    bool          // for tests and the access log
}

func (p *pinPrompt) fn(ctx context.Context, req card.PINRequest) ([]byte, error) {
	if req.TriesLeft == 0 {
		return nil, card.ErrPINBlocked
	}
	holder := req.Holder
	if holder == "" {
		holder = p.holder
	}
	r := pinentry.Request{
		Kind:        pinKind(req.Kind),
		Origin:      p.origin,
		Operation:   operationText(p.op, p.lang),
		Description: p.description,
		Holder:      holder,
		Reader:      req.Reader,
		TriesLeft:   req.TriesLeft,
		LastTry:     req.LastTry || req.TriesLeft == 1,
		Timeout:     p.timeout,
		Lang:        p.lang,
	}
	p.prompted = true
	secret, err := p.prompter.GetPIN(ctx, r)
	if err != nil {
		return nil, &promptError{err}
	}
	defer secret.Wipe()
	if err := ctx.Err(); err != nil {
		return nil, &promptError{err}
	}
	return append(make([]byte, 0, secret.Len()), secret.Bytes()...), nil
}

func pinKind(k card.PINKind) pinentry.Kind {
	switch k {
	case card.KindPUK:
		return pinentry.PUK
	case card.KindNewPIN:
		return pinentry.NewPIN
	}
	return pinentry.PIN
}

// operationText names what the PIN unlocks, in the dialog's language
// (pinentry treats "" and "fr…" as French).
func operationText(op, lang string) string {
	en := lang != "" && !strings.HasPrefix(lang, "fr")
	switch {
	case op == "authenticate" && en:
		return "sign in to the web site (authentication)"
	case op == "authenticate":
		return "connexion au site (authentification)"
	case en:
		return "signature of a document"
	default:
		return "signature d'un document"
	}
}
