package consent

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/pinentry"
	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
)

// counting wraps the real pinentry client and counts dialogs.
type counting struct {
	c *pinentry.Client
	n atomic.Int32
}

func (c *counting) Confirm(ctx context.Context, r pinentry.ConfirmRequest) (pinentry.Decision, error) {
	c.n.Add(1)
	return c.c.Confirm(ctx, r)
}

func fakePinentry(t *testing.T, o pinentrytest.Options) (*counting, string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the scripted pinentry is a POSIX sh script")
	}
	log := filepath.Join(t.TempDir(), "pinentry.log")
	o.LogFile = log
	return &counting{c: pinentry.New(pinentry.Config{Program: pinentrytest.Path(), Env: o.Env()})}, log
}

func confirms(t *testing.T, log string) (n int, descs []string) {
	t.Helper()
	lines, err := pinentrytest.ReadLog(log)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		switch {
		case l == "CONFIRM":
			n++
		case strings.HasPrefix(l, "SETDESC "):
			descs = append(descs, l)
		}
	}
	return n, descs
}

// TestScriptedPinentryBurst: 20 parallel requests from one unknown origin
// through the real pinentry client and the scripted Assuan program: one
// CONFIRM is sent, and every request gets the "always" answer.
func TestScriptedPinentryBurst(t *testing.T) {
	// The delay keeps the dialog open while the burst arrives, and is above
	// pinentry's 1 s minimum for a trusted "allow" answer.
	p, log := fakePinentry(t, pinentrytest.Options{Mode: pinentrytest.ModeConfirmNotOK, Delay: 1200 * time.Millisecond})
	dir := t.TempDir()
	m := newManager(t, Config{StateDir: dir, Prompter: p})
	const n = 20
	var wg sync.WaitGroup
	var allowed atomic.Int32
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := m.Decide(t.Context(), "https://xn--caf-dma.example"); ok {
				allowed.Add(1)
			} else {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != n {
		t.Fatalf("%d allowed, want %d", allowed.Load(), n)
	}
	if got := p.n.Load(); got != 1 {
		t.Fatalf("%d Confirm calls, want 1", got)
	}
	nConfirm, descs := confirms(t, log)
	if nConfirm != 1 {
		t.Fatalf("%d CONFIRM commands reached pinentry, want 1", nConfirm)
	}
	// The dialog names the origin decoded and raw.
	d := strings.Join(descs, "\n")
	for _, want := range []string{"https://café.example", "https://xn--caf-dma.example"} {
		if !strings.Contains(d, want) {
			t.Errorf("dialog text lacks %q: %s", want, d)
		}
	}
	if m.Lookup("https://xn--caf-dma.example") != SourceUser {
		t.Fatal("always not recorded")
	}
	// Restart: no dialog.
	m2 := newManager(t, Config{StateDir: dir, Prompter: p})
	if ok, _ := m2.Decide(t.Context(), "https://xn--caf-dma.example"); !ok || p.n.Load() != 1 {
		t.Fatal("asked again after a restart")
	}
}

func TestScriptedPinentryOutcomes(t *testing.T) {
	tests := []struct {
		mode    string
		delay   time.Duration
		allowed bool
		reason  error
	}{
		{pinentrytest.ModeConfirmOK, 1100 * time.Millisecond, true, nil},
		{pinentrytest.ModeConfirmOK, 0, false, ErrRefused}, // answered too fast twice: not trusted
		{pinentrytest.ModeConfirmCancel, 0, false, ErrRefused},
		{pinentrytest.ModeTimeout, 0, false, ErrTimeout},
		{pinentrytest.ModeCrash, 0, false, ErrNoPrompter},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			p, _ := fakePinentry(t, pinentrytest.Options{Mode: tt.mode, Delay: tt.delay})
			m := newManager(t, Config{Prompter: p})
			ok, err := m.Decide(t.Context(), site)
			if ok != tt.allowed || tt.reason != nil && !errors.Is(err, tt.reason) {
				t.Fatalf("Decide = %v, %v; want %v, %v", ok, err, tt.allowed, tt.reason)
			}
		})
	}
	t.Run("hang", func(t *testing.T) {
		p, _ := fakePinentry(t, pinentrytest.Options{Mode: pinentrytest.ModeHang})
		m := newManager(t, Config{Prompter: p, DialogTimeout: 300 * time.Millisecond})
		start := time.Now()
		ok, err := m.Decide(t.Context(), site)
		if ok || !errors.Is(err, ErrTimeout) {
			t.Fatalf("Decide = %v, %v", ok, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("took %v", d)
		}
	})
}
