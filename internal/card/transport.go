package card

import "context"

// Transport is what the engine needs from a reader stack: PC/SC in
// production (package pcsc), an in-process reader in tests and demos
// (package memreader). Implementations return this package's errors
// (ErrPCSCUnavailable, ErrNoReader, ErrNoCard, ErrCardRemoved, ErrCardReset)
// so the engine never sees a PC/SC code.
type Transport interface {
	// Readers lists the readers and whether a card is present.
	Readers(ctx context.Context) ([]ReaderState, error)
	// Watch follows readers and cards until ctx ends, calling emit from a
	// single goroutine: first the current state (EventServiceRestored once
	// the service answers, then EventReaderAdded and EventCardInserted for
	// what is present), then every change. While the service is down it
	// emits EventCardRemoved/EventReaderRemoved for what it had reported,
	// then EventServiceLost, and retries by itself. It returns nil when ctx
	// ends.
	Watch(ctx context.Context, emit func(TransportEvent)) error
	// Begin gives exclusive access to the card in reader for one step of
	// an operation (a PC/SC transaction). The caller must call End.
	Begin(ctx context.Context, reader string) (Session, error)
}

// ReaderState is a reader as a Transport sees it.
type ReaderState struct {
	Name        string
	CardPresent bool
	ATR         []byte
}

// TransportEvent is a reader/card change reported by Transport.Watch. Type
// is one of EventReaderAdded, EventReaderRemoved, EventCardInserted,
// EventCardRemoved, EventServiceLost, EventServiceRestored.
type TransportEvent struct {
	Type   EventType
	Reader string
	ATR    []byte // EventCardInserted
}

// Session is exclusive access to one card, obtained from Transport.Begin.
type Session interface {
	// Transmit sends one command APDU and returns the response with SW1 SW2.
	Transmit(cmd []byte) ([]byte, error)
	// ATR of the card.
	ATR() []byte
	// Insertion identifies the card's stay in the reader: two sessions with
	// the same value talked to the same card, never removed in between.
	Insertion() uint64
	// End releases the card. reset asks for a card reset, which clears the
	// card's verified PIN state (and its current file).
	End(reset bool) error
}
