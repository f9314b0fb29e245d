package api

import "github.com/cpsagent/cpsagent/internal/card"

// TEMPORARY until internal/card's engine lands: the shape of card.Snapshot
// as announced. Replace with `type Snapshot = card.Snapshot` and adapt
// statusOf; nothing else in the package reads Snapshot fields.
type Snapshot struct {
	PCSCAvailable bool
	Readers       []card.Reader
}

// statusOf is the only reader of Snapshot fields.
func statusOf(s Snapshot) (pcscAvailable bool, readers []card.Reader) {
	return s.PCSCAvailable, s.Readers
}
