package virtual

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card/apdu"
)

func TestStatePersistsAcrossRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.json")
	c := newTestCard(t, func(cfg *Config) { cfg.StateFile = path })
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("state file not created: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v", info.Mode().Perm())
	}
	for _, pin := range []string{"0000", "1111", "2222"} {
		verifyPIN(t, c, pin)
	}
	wantSW(t, "blocked", rawHex(t, c, "00 20 00 01"), apdu.SWAuthBlocked)

	// Next run: still blocked, even with other keys in the config (the file wins).
	c2, err := NewCard(Config{StateFile: path})
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	wantSW(t, "still blocked", rawHex(t, c2, "00 20 00 01"), apdu.SWAuthBlocked)
	if c2.Serial() != c.Serial() || !c2.Config().SignKey.Equal(c.Config().SignKey) ||
		!bytes.Equal(c2.Config().AuthCert, c.Config().AuthCert) || c2.Config().Holder != "medecin" {
		t.Error("identity not kept")
	}
	if !StateHasIdentity(path) {
		t.Error("StateHasIdentity false")
	}
	// Unblock and change the PIN; a third run sees both.
	rawHex(t, c2, "00 20 00 02 08 31 32 33 34 35 36 37 38")
	wantSW(t, "unblock", rawHex(t, c2, "00 2C 02 01 04 39 38 37 36"), apdu.SWSuccess)
	c3, err := NewCard(Config{StateFile: path})
	if err != nil {
		t.Fatal(err)
	}
	wantSW(t, "new PIN", verifyPIN(t, c3, "9876"), apdu.SWSuccess)
	if st := c3.PINStatus(); st.PUKUsesLeft != 99 || st.PINTriesLeft != 3 {
		t.Errorf("status %+v", st)
	}
	if c3.StateError() != nil {
		t.Error(c3.StateError())
	}
	// No temporary files left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries", len(entries))
	}
}

func TestStateFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewCard(Config{StateFile: bad}); !errors.Is(err, ErrState) {
		t.Errorf("bad JSON: %v", err)
	}
	old := filepath.Join(dir, "old.json")
	b, _ := json.Marshal(savedState{Version: 99})
	_ = os.WriteFile(old, b, 0o600)
	if _, err := NewCard(Config{StateFile: old}); !errors.Is(err, ErrState) {
		t.Errorf("bad version: %v", err)
	}
	// A state file with counters only takes its identity from the config;
	// counters outside their range are clamped.
	partial := filepath.Join(dir, "partial.json")
	uses := 500
	b, _ = json.Marshal(savedState{Version: stateVersion, PIN: savedCHV{Value: "2468", TriesLeft: 9}, PUK: savedCHV{TriesLeft: -3, UsesLeft: &uses}})
	_ = os.WriteFile(partial, b, 0o600)
	c := newTestCard(t, func(cfg *Config) { cfg.StateFile = partial })
	if st := c.PINStatus(); st.PINTriesLeft != 3 || st.PUKTriesLeft != 0 || st.PUKUsesLeft != 100 {
		t.Errorf("clamped %+v", st)
	}
	wantSW(t, "PIN from file", verifyPIN(t, c, "2468"), apdu.SWSuccess)
	// Unwritable state: the card keeps answering and reports the error. A
	// directory where the file was makes the rename fail, even for root.
	target := filepath.Join(dir, "card.json")
	c2 := newTestCard(t, func(cfg *Config) { cfg.StateFile = target })
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wantSW(t, "wrong PIN", verifyPIN(t, c2, "0000"), 0x63C2)
	if !errors.Is(c2.StateError(), ErrState) {
		t.Errorf("state error %v", c2.StateError())
	}
	wantSW(t, "counter kept in memory", rawHex(t, c2, "00 20 00 01"), 0x63C2)
}
