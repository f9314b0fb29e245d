//go:build unix

package consent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/pinentry"
	"github.com/cpsagent/cpsagent/internal/testutil/xvfb"
)

// TestRealPinentryGTK2Consent drives the real consent dialog (pinentry-gtk-2
// under a private Xvfb) with xdotool: a burst of requests from an
// internationalised origin opens one window, which is screenshotted into
// the artifacts folder; "always allow" (Alt+T) answers every request and is
// kept. A second origin is refused with Escape.
func TestRealPinentryGTK2Consent(t *testing.T) {
	xvfb.Require(t, "pinentry-gtk-2", "xdotool", "import", "Xvfb")
	display := xvfb.Start(t)
	client := pinentry.New(pinentry.Config{Program: "pinentry-gtk-2", Env: []string{"DISPLAY=" + display}})
	p := &counting{c: client}
	dir := t.TempDir()
	m := newManager(t, Config{StateDir: dir, Prompter: p, Lang: i18n.FR})
	windows := func() []string {
		out := xvfb.Run(t, display, "xdotool", "search", "--sync", "--onlyvisible", "--class", "pinentry")
		return strings.Fields(out)
	}

	const origin = "https://xn--caf-dma.example"
	const n = 5
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Decide(context.Background(), origin); err != nil {
				errs <- err
			}
		}()
	}
	ws := windows()
	if len(ws) != 1 {
		t.Fatalf("%d dialog windows, want 1", len(ws))
	}
	title := xvfb.Run(t, display, "xdotool", "getwindowname", ws[0])
	if !strings.Contains(title, "Autoriser un site") {
		t.Errorf("window title %q", title)
	}
	shot := xvfb.Screenshot(t, display, "consent-dialog-pinentry-gtk2.png")
	// pinentry ignores an "allow" given in the first second after the dialog
	// appears (clickjacking defence): answer like a person who read it.
	time.Sleep(1200 * time.Millisecond)
	xvfb.Run(t, display, "xdotool", "key", "alt+t")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request refused: %v", err)
	}
	if got := p.n.Load(); got != 1 {
		t.Fatalf("%d dialogs, want 1", got)
	}
	if m.Lookup(origin) != SourceUser {
		t.Fatal("always allow not recorded")
	}
	if _, err := os.Stat(filepath.Join(dir, StoreFile)); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 5000 {
		t.Fatalf("screenshot %s looks empty: %v", shot, err)
	}

	// Another origin: Escape closes the dialog → refused, then the cooldown
	// refuses without a dialog.
	done := make(chan error, 1)
	go func() {
		_, err := m.Decide(context.Background(), "https://portail.example.fr:8443")
		done <- err
	}()
	windows()
	xvfb.Run(t, display, "xdotool", "key", "Escape")
	if err := <-done; !errors.Is(err, ErrRefused) {
		t.Fatalf("Escape: %v", err)
	}
	if _, err := m.Decide(context.Background(), "https://portail.example.fr:8443"); !errors.Is(err, ErrRecentRefusal) {
		t.Fatalf("after a refusal: %v", err)
	}
	if got := p.n.Load(); got != 2 {
		t.Fatalf("%d dialogs, want 2", got)
	}
}
