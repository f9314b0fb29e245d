// Package card is the agent's card engine: it finds readers and CPx cards,
// follows them coming and going, reads the holder's certificates and
// identity, and performs authentication, signature and PIN management on the
// card, one operation per card at a time. It talks to cards only through a
// Transport (PC/SC in production, an in-process reader in fast tests) and
// never prompts for a PIN itself: callers pass a PINFunc.
package card

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/cpsagent/cpsagent/pkg/cpsid"
)

// PINKind says which secret a prompt asks for.
type PINKind int

const (
	KindPIN    PINKind = iota // the 4-digit "code porteur"
	KindPUK                   // the 8-digit "code de déblocage"
	KindNewPIN                // a new PIN (change or unblock); the prompter asks it twice
)

func (k PINKind) String() string {
	switch k {
	case KindPUK:
		return "PUK"
	case KindNewPIN:
		return "new PIN"
	default:
		return "PIN"
	}
}

// PINRequest tells the prompter what to ask and what to show.
type PINRequest struct {
	Kind      PINKind
	Reader    string
	Serial    string
	Holder    string // display name of the card holder, when known
	TriesLeft int    // -1 when unknown
	MaxTries  int
	LastTry   bool // TriesLeft == 1: the prompter must warn before the user submits
}

// PINFunc collects one secret from the user. The engine zeroes the returned
// slice after use, sends at most one VERIFY per call, and never calls it again
// on its own after a wrong PIN. Returning an error (cancel, timeout, client
// gone) aborts the operation before anything is sent to the card.
type PINFunc func(ctx context.Context, req PINRequest) ([]byte, error)

// Reader describes one reader slot.
type Reader struct {
	Name        string       `json:"name"`
	CardPresent bool         `json:"cardPresent"`
	ATR         string       `json:"atr,omitempty"` // spaced hex
	Card        *CardSummary `json:"card,omitempty"`
	// Busy is true while an operation (PIN prompt included) runs on the reader.
	Busy bool `json:"busy"`
}

// CardSummary is what is known about a card without reading its files.
type CardSummary struct {
	Generation string `json:"generation"` // CPS3, CPS3-CL, CPS4, or "unknown"
	Supported  bool   `json:"supported"`
	Serial     string `json:"serialNumber,omitempty"` // once read
}

// CardData is the public content of a CPx card: readable without the PIN.
type CardData struct {
	Reader     string
	Serial     string
	Generation string
	ATR        []byte
	AuthCert   *x509.Certificate
	SignCert   *x509.Certificate
	Identity   *cpsid.Identity
	ReadAt     time.Time
	FromCache  bool
}

// PINStatus is read without consuming a try (VERIFY with no data).
type PINStatus struct {
	TriesLeft    int  `json:"triesLeft"`
	MaxTries     int  `json:"maxTries"`
	Blocked      bool `json:"blocked"`
	PUKTriesLeft int  `json:"pukTriesLeft"` // -1 when the card does not tell
	PUKBlocked   bool `json:"pukBlocked"`
}

// Signature is the result of an authentication or a signature.
type Signature struct {
	Value       []byte            // RSA PKCS#1 v1.5 signature
	Algorithm   string            // "RS256"
	Certificate *x509.Certificate // the certificate of the key used
	Serial      string            // card serial number
	APDUs       int               // APDUs this operation exchanged (GET RESPONSE included)
	CardTime    time.Duration     // time spent inside the transport
}

// EventType names a reader/card event.
type EventType string

const (
	EventReaderAdded      EventType = "reader-added"
	EventReaderRemoved    EventType = "reader-removed"
	EventCardInserted     EventType = "card-inserted"
	EventCardRemoved      EventType = "card-removed"
	EventIdentityReady    EventType = "identity-available"
	EventServiceLost      EventType = "pcsc-unavailable"
	EventServiceRestored  EventType = "pcsc-available"
	EventOperationStarted EventType = "operation-started"
	EventOperationEnded   EventType = "operation-ended"
)

// Event is emitted to subscribers (API WebSocket, tray).
type Event struct {
	Type       EventType `json:"type"`
	Reader     string    `json:"reader,omitempty"`
	Serial     string    `json:"serialNumber,omitempty"`
	Generation string    `json:"generation,omitempty"`
	Time       time.Time `json:"time"`
	// Operation names the operation of EventOperationStarted/Ended
	// ("authenticate", "sign", "change-pin", "unblock").
	Operation string `json:"operation,omitempty"`
	// Outcome is "ok" or the error message, for EventOperationEnded only.
	Outcome string `json:"outcome,omitempty"`
	// PIN is the PIN counter as a PIN operation left it (EventOperationEnded),
	// when the operation knows it without asking the card again: the
	// counter it read before the prompt when no VERIFY followed, full after
	// a successful VERIFY, the tries the card reported after a wrong PIN.
	// Nil when unknown (e.g. the card left mid-operation). For the tray; not
	// sent to portals.
	PIN *PINCounter `json:"-"`
}

// PINCounter is the state of the PIN's retry counter.
type PINCounter struct {
	TriesLeft int
	MaxTries  int
	Blocked   bool
}

// Snapshot is the engine's cached view for /v1/status. Taking it never
// touches a card and never waits for an operation.
type Snapshot struct {
	// Monitoring is true while Run follows readers and cards; Readers is then
	// kept up to date by events. Otherwise Readers is empty.
	Monitoring bool `json:"monitoring"`
	// ServiceUp reports whether the smart-card service (pcscd) answers.
	ServiceUp bool     `json:"serviceUp"`
	Readers   []Reader `json:"readers"`
}

// Signature algorithms reported in Signature.Algorithm.
const (
	// AlgRS256 is RSA PKCS#1 v1.5 with SHA-256 (Sign: the card hashes).
	AlgRS256 = "RS256"
	// AlgRSAPKCS1 is RSA PKCS#1 v1.5 (type 1 padding) over caller-supplied
	// data, as INTERNAL AUTHENTICATE computes it (Authenticate).
	AlgRSAPKCS1 = "RSA-PKCS1-v1_5"
)
