package pinmgmt

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/pinentry"
	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
)

// TestScriptedPinentry runs the flows through the real pinentry client and
// the scripted Assuan program: a wrong PIN, the right one, then the PIN is
// blocked and unblocked with the PUK.
func TestScriptedPinentry(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the scripted pinentry is a POSIX sh script")
	}
	r := newRig(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "pinentry.log")
	client := func(pins ...string) *pinentry.Client {
		return pinentry.New(pinentry.Config{
			Program: pinentrytest.Path(),
			Env:     pinentrytest.Options{PINs: pins, StateFile: filepath.Join(t.TempDir(), "n"), LogFile: log}.Env(),
			Logger:  r.log,
		})
	}
	fr := func(p pinentry.Prompter) *Flows {
		f := r.flows(p)
		f.Lang = i18n.FR
		return f
	}
	f := fr(client(badPIN, newPIN, newPIN, oldPIN, newPIN, newPIN))
	if res := f.ChangePIN(t.Context(), reader); !res.OK() {
		t.Fatalf("change: %+v", res)
	}
	// Block the PIN (the current one is newPIN now), then unblock.
	f = fr(client(badPIN, oldPIN, oldPIN, badPIN, oldPIN, oldPIN, badPIN, oldPIN, oldPIN))
	if res := f.ChangePIN(t.Context(), reader); res.OK() || res.Code != "pin_blocked" && res.Code != "pin_incorrect" {
		t.Fatalf("blocking: %+v", res)
	}
	f = fr(client(puk, oldPIN, oldPIN))
	if res := f.Unblock(t.Context(), reader); !res.OK() {
		t.Fatalf("unblock: %+v", res)
	}
	lines, err := pinentrytest.ReadLog(log)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(lines, "\n")
	// Tries left and the last-try warning reached the dialogs (French).
	for _, want := range []string{"Essais restants : 3", "Essais restants : 2", "Essais restants : 1", "dernier essai", "Code de déblocage (8 chiffres)"} {
		if !strings.Contains(all, want) {
			t.Errorf("no dialog showed %q", want)
		}
	}
	if n := strings.Count(all, "GETPIN"); n != 6+9+3 {
		t.Errorf("%d GETPIN, want 18", n)
	}
	r.assertNoSecrets(t)
	for _, code := range []string{oldPIN, newPIN, badPIN, puk} {
		if strings.Contains(all, code) {
			t.Errorf("a command to pinentry contains %s", code)
		}
	}
}
