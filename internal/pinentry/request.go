package pinentry

import (
	"context"
	"time"
)

// A Prompter asks the card holder for a code or for consent. [Client]
// implements it with a pinentry program; tests of other packages may provide
// their own.
type Prompter interface {
	// GetPIN asks for the code described by r. The returned Secret has the
	// format of r.Kind (see Kind.Validate); the caller wipes it.
	GetPIN(ctx context.Context, r Request) (*Secret, error)
	// Confirm asks whether the site may use the card. The Decision is Refuse
	// whenever the error is not nil.
	Confirm(ctx context.Context, c ConfirmRequest) (Decision, error)
}

// Kind is the kind of code asked for.
type Kind int

// Kinds of code.
const (
	PIN           Kind = iota // the 4-digit code porteur
	PUK                       // the 8-digit code de déblocage
	NewPIN                    // a new code porteur (PIN change or unblock)
	ConfirmNewPIN             // the new code porteur, typed a second time
)

func (k Kind) String() string {
	switch k {
	case PIN:
		return "PIN"
	case PUK:
		return "PUK"
	case NewPIN:
		return "NewPIN"
	case ConfirmNewPIN:
		return "ConfirmNewPIN"
	default:
		return "Kind(?)"
	}
}

// Validate checks the format of a code of this kind: [ValidatePUK] for PUK,
// [ValidatePIN] otherwise.
func (k Kind) Validate(b []byte) error {
	if k == PUK {
		return ValidatePUK(b)
	}
	return ValidatePIN(b)
}

// A Request describes a PIN dialog. Only Description comes from the web
// request; the other fields are filled by the agent.
type Request struct {
	Kind Kind
	// Origin is the validated Origin header of the web request, e.g.
	// "https://portail.example.fr" (punycode allowed).
	Origin string
	// Operation names what the code unlocks, in the dialog's language, e.g.
	// "signature d'un document".
	Operation string
	// Description is free text supplied by the web request. It is shown
	// sanitised (no control or format characters, at most
	// MaxDescriptionRunes), on one line and quoted as the site's message.
	Description string
	// Holder is the card holder's name as read from the card.
	Holder string
	// Reader is the PC/SC reader name.
	Reader string
	// TriesLeft is the number of tries left on the card, -1 when unknown
	// (0 is not shown either: a blocked card must not be prompted for).
	TriesLeft int
	// LastTry asks for an explicit warning that a wrong code blocks the card.
	LastTry bool
	// Error is shown as the dialog's error line, e.g. the previous wrong-PIN
	// message.
	Error string
	// Timeout closes the dialog when nobody answers. 0 means
	// Config.DefaultTimeout.
	Timeout time.Duration
	// Lang is the dialog language: "" or "fr…" is French, anything else
	// English.
	Lang string
}

// A ConfirmRequest describes the consent dialog shown before a site uses the
// card for the first time.
type ConfirmRequest struct {
	Origin      string
	Operation   string
	Description string // from the web request: sanitised and quoted like Request.Description
	Holder      string
	Timeout     time.Duration
	Lang        string
}

// Decision is the answer to a consent dialog. The zero value is Refuse.
type Decision int

// Decisions.
const (
	Refuse      Decision = iota // the Cancel button, closing the dialog, a timeout or any error
	AllowOnce                   // the OK button
	AllowAlways                 // the NotOK button, labelled "always allow this site"
)

func (d Decision) String() string {
	switch d {
	case Refuse:
		return "Refuse"
	case AllowOnce:
		return "AllowOnce"
	case AllowAlways:
		return "AllowAlways"
	default:
		return "Decision(?)"
	}
}
