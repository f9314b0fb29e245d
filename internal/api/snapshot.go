package api

import "github.com/cpsagent/cpsagent/internal/card"

// Snapshot is the engine's cached status.
type Snapshot = card.Snapshot

// statusOf is the only reader of Snapshot fields.
func statusOf(s Snapshot) (pcscAvailable bool, readers []card.Reader) {
	return s.ServiceUp, s.Readers
}
