//go:build unix

package pinmgmt

import (
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/pinentry"
	"github.com/cpsagent/cpsagent/internal/testutil/xvfb"
)

// TestRealPinentryGTK2ChangePIN changes the PIN of the virtual card through
// real pinentry-gtk-2 dialogs typed into with xdotool: a wrong current PIN
// first, then the right one; the retry dialog (tries left and the card's
// answer) is screenshotted into the artifacts folder.
func TestRealPinentryGTK2ChangePIN(t *testing.T) {
	xvfb.Require(t, "pinentry-gtk-2", "xdotool", "import", "Xvfb")
	display := xvfb.Start(t)
	r := newRig(t)
	f := r.flows(pinentry.New(pinentry.Config{Program: "pinentry-gtk-2", Env: []string{"DISPLAY=" + display}, Logger: r.log}))
	f.Lang = i18n.FR
	done := make(chan Result, 1)
	go func() { done <- f.ChangePIN(t.Context(), reader) }()

	prev := ""
	// next waits for the dialog of a new pinentry process (window ids are
	// reused by the X server; process ids are not).
	next := func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			ws := strings.Fields(xvfb.Run(t, display, "xdotool", "search", "--sync", "--onlyvisible", "--class", "pinentry"))
			if len(ws) == 1 {
				if pid := xvfb.Run(t, display, "xdotool", "getwindowpid", ws[0]); pid != prev {
					prev = pid
					return
				}
			}
			time.Sleep(50 * time.Millisecond) // the previous dialog is still closing
		}
		t.Fatal("no new pinentry window")
	}
	for i, code := range []string{badPIN, newPIN, newPIN, oldPIN, newPIN, newPIN} {
		next()
		xvfb.Run(t, display, "xdotool", "type", code)
		if i == 3 {
			xvfb.Screenshot(t, display, "pin-change-retry-pinentry-gtk2.png")
		}
		xvfb.Run(t, display, "xdotool", "key", "Return")
	}
	res := <-done
	if !res.OK() {
		t.Fatalf("change PIN: %+v", res)
	}
	if st := r.status(t); st.TriesLeft != 3 {
		t.Fatalf("counter %+v", st)
	}
	r.assertNoSecrets(t)
	es, _ := r.ledger.Entries()
	if len(es) != 2 || es[0].Result != "pin_incorrect" || es[1].Result != "ok" {
		t.Fatalf("ledger %+v", es)
	}
}
