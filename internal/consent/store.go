package consent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cpsagent/cpsagent/internal/atomicfile"
)

// StoreFile is the name of the user's "always allowed" list in the state
// directory.
const StoreFile = "consent.json"

// Grant is an origin the user chose to always allow.
type Grant struct {
	Origin string    `json:"origin"`
	Added  time.Time `json:"added"`
}

type storeFile struct {
	Version int     `json:"version"`
	Always  []Grant `json:"alwaysAllowed"`
}

// loadStore reads the user's list. A missing file is an empty list; a
// damaged file is reported and treated as empty (it is rewritten on the next
// change), so nothing is allowed by mistake.
func loadStore(path string) ([]Grant, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("consent: reading %s: %w", path, err)
	}
	var sf storeFile
	if err := json.Unmarshal(data, &sf); err != nil {
		return nil, fmt.Errorf("consent: %s is damaged, ignoring it: %w", path, err)
	}
	var out []Grant
	for _, g := range sf.Always {
		n, err := NormalizeOrigin(g.Origin)
		if err != nil {
			continue
		}
		g.Origin = n
		if !slices.ContainsFunc(out, func(h Grant) bool { return h.Origin == n }) {
			out = append(out, g)
		}
	}
	return out, nil
}

// saveStore writes the list atomically: a temporary file in the same
// directory, synced, then renamed over the old one, so a crash leaves either
// the old or the new list, never a torn one. Mode 0600.
func saveStore(path string, grants []Grant) error {
	data, err := json.MarshalIndent(storeFile{Version: 1, Always: grants}, "", "  ")
	if err != nil {
		return fmt.Errorf("consent: encoding: %w", err)
	}
	data = append(data, '\n')
	return writeFileAtomic(path, data)
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("consent: creating %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("consent: saving: %w", err)
	}
	return nil
}
