package tray

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/consent"
	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/ledger"
	"github.com/cpsagent/cpsagent/internal/testutil/xvfb"
)

// childEnv switches the test binary into the tray child: the tray must run on
// the main goroutine, and a GTK failure must not kill the test runner.
const childEnv = "CPSAGENT_TRAY_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(trayChild(mode))
	}
	os.Exit(m.Run())
}

// trayChild runs the tray (or the headless mode) with a fake card. With a
// tray it walks the icon through every state, then clicks Quit; headless it
// changes the card state (which nobody must read: no menu is shown) and
// quits. It prints READY, APPLIED <icon> (from the systray glue), STATE,
// CARDREADS and EXIT lines for the parent.
func trayChild(mode string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	quitCtx, quit := context.WithCancel(ctx)
	card := newFakeCard(ready())
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	c := NewController(Config{
		Card:     card,
		Sites:    &fakeSites{s: consent.Sites{UserAdditions: true, User: []consent.Grant{{Origin: "https://portail.example.fr"}}}},
		Activity: &fakeActivity{es: []ledger.Entry{{Time: t0, Origin: "https://portail.example.fr", Operation: ledger.OpSign, Result: "ok"}}},
		Lang:     i18n.FR,
		Version:  "test",
		Quit:     quit,
		Refresh:  time.Hour,
	})
	applied := make(chan Menu, 64)
	testOnlyApplied = func(m Menu) {
		fmt.Printf("APPLIED %s\n", m.Icon)
		select {
		case applied <- m:
		default:
		}
	}
	opts := Options{Headless: mode == "headless", OnReady: func(tray bool) {
		fmt.Printf("READY tray=%v\n", tray)
		go func() {
			if !tray {
				card.Set(ready())
				time.Sleep(300 * time.Millisecond) // what a refresh loop would need to react
				fmt.Printf("CARDREADS %d\n", card.Reads())
				c.Handle(ctx, IDQuit)
				return
			}
			var source <-chan Menu = applied
			states := []CardState{
				{ServiceUp: true, Readers: []ReaderState{{Name: "R"}}},
				{ServiceUp: true},
				with(func(c *CardState) { c.Busy = true }),
				{},
				with(func(c *CardState) { c.Readers[0].PINBlocked = true }),
				ready(),
			}
			for _, s := range states {
				want, _ := IconFor(s, i18n.For(i18n.FR))
				card.Set(s)
				for m := range source {
					if m.Icon == want {
						fmt.Printf("STATE %s\n", want)
						break
					}
				}
			}
			c.Handle(ctx, IDQuit)
		}()
	}}
	err := Run(quitCtx, c, opts)
	if ctx.Err() != nil {
		fmt.Println("TIMEOUT")
		return 3
	}
	fmt.Printf("EXIT err=%v\n", err)
	return 0
}

// runChild re-executes the test binary as the tray child with env added to a
// clean environment (no display, no D-Bus unless given).
func runChild(t *testing.T, mode string, env []string, wrap ...string) string {
	t.Helper()
	var clean []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", childEnv:
			continue
		}
		clean = append(clean, kv)
	}
	args := append(append([]string{}, wrap...), os.Args[0], "-test.run=^$")
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(append(clean, childEnv+"="+mode), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tray child (%s, %v): %v\n%s", mode, env, err, out)
	}
	return string(out)
}

func checkChild(t *testing.T, out string, tray bool) {
	t.Helper()
	if !strings.Contains(out, fmt.Sprintf("READY tray=%v\n", tray)) {
		t.Fatalf("no READY tray=%v:\n%s", tray, out)
	}
	if tray {
		for _, icon := range []Icon{IconNoCard, IconNoReader, IconBusy, IconError, IconWarning, IconReady} {
			if !strings.Contains(out, "STATE "+string(icon)+"\n") {
				t.Errorf("state %s never reached", icon)
			}
			if !strings.Contains(out, "APPLIED "+string(icon)+"\n") {
				t.Errorf("the systray glue never showed %s", icon)
			}
		}
	} else if !strings.Contains(out, "CARDREADS 0\n") {
		// Headless, no menu is shown: reading the card (or anything) for it
		// would cost APDUs and wake the idle agent (issue 8).
		t.Errorf("headless, the controller read the card state:\n%s", out)
	}
	if !strings.Contains(out, "EXIT err=<nil>") {
		t.Fatalf("no clean exit:\n%s", out)
	}
	if t.Failed() {
		t.Log(out)
	}
}

// TestTrayUnderXvfb starts the real tray on a private X server, with and
// without a D-Bus session bus, walks it through every state and quits from
// the menu's Quit action.
func TestTrayUnderXvfb(t *testing.T) {
	display := xvfb.Start(t)
	t.Run("no D-Bus session", func(t *testing.T) {
		out := runChild(t, "tray", []string{"DISPLAY=" + display})
		checkChild(t, out, trayBuilt)
	})
	t.Run("D-Bus session", func(t *testing.T) {
		xvfb.Require(t, "dbus-run-session")
		out := runChild(t, "tray", []string{"DISPLAY=" + display}, "dbus-run-session", "--")
		checkChild(t, out, trayBuilt)
	})
	t.Run("--headless with a display", func(t *testing.T) {
		out := runChild(t, "headless", []string{"DISPLAY=" + display})
		checkChild(t, out, false)
	})
}

// TestHeadless: with no display at all, or a display that is gone, the same
// code runs without a tray, and ends cleanly.
func TestHeadless(t *testing.T) {
	t.Run("no display", func(t *testing.T) {
		checkChild(t, runChild(t, "tray", nil), false)
	})
	t.Run("stale DISPLAY", func(t *testing.T) {
		checkChild(t, runChild(t, "tray", []string{"DISPLAY=unix:59713"}), false)
	})
	t.Run("stale WAYLAND_DISPLAY", func(t *testing.T) {
		checkChild(t, runChild(t, "tray", []string{"WAYLAND_DISPLAY=wayland-59713", "XDG_RUNTIME_DIR=" + t.TempDir()}), false)
	})
}
