//go:build unix

package pinentry

// Tests with the real pinentry programs. With CI=true a missing program is a
// failure; otherwise the test is skipped with the reason.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/cpsagent/cpsagent/internal/testutil/xvfb"
)

// terminal is the master side of a pty, with everything read from it.
type terminal struct {
	master, slave *os.File
	mu            sync.Mutex
	screen        bytes.Buffer
	updated       chan struct{}
}

func newTerminal(t *testing.T) *terminal {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{master: master, slave: slave, updated: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 1024)
		for {
			n, err := master.Read(b)
			if n > 0 {
				term.mu.Lock()
				term.screen.Write(b[:n])
				term.mu.Unlock()
				select {
				case term.updated <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		slave.Close()
		master.Close()
		<-done
	})
	return term
}

// waitFor waits until the terminal shows s after position from, and returns
// the position after it.
func (term *terminal) waitFor(t *testing.T, s string, from int) int {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		term.mu.Lock()
		screen := term.screen.String()
		term.mu.Unlock()
		if i := strings.Index(screen[from:], s); i >= 0 {
			return from + i + len(s)
		}
		select {
		case <-term.updated:
		case <-timeout:
			t.Fatalf("the terminal never showed %q; it shows %q", s, screen)
		}
	}
}

func (term *terminal) ttyClient(t *testing.T, tune func(*Config)) *Client {
	cfg := Config{
		Program:         "pinentry-tty",
		Args:            []string{"--ttyname", term.slave.Name(), "--ttytype", "xterm"},
		MinConfirmDelay: -1,
		KillGrace:       10 * time.Second,
	}
	if tune != nil {
		tune(&cfg)
	}
	return New(cfg)
}

func TestRealPinentryTTY(t *testing.T) {
	xvfb.Require(t, "pinentry-tty")
	t.Parallel()

	t.Run("PIN", func(t *testing.T) {
		t.Parallel()
		term := newTerminal(t)
		c := term.ttyClient(t, nil)
		type result struct {
			s   *Secret
			err error
		}
		done := make(chan result, 1)
		go func() {
			r := pinRequest()
			r.TriesLeft, r.LastTry = 1, true
			s, err := c.GetPIN(context.Background(), r)
			done <- result{s, err}
		}()
		pos := term.waitFor(t, "ATTENTION : dernier essai", 0)
		term.waitFor(t, "Code porteur (4 chiffres) :", pos)
		if _, err := term.master.Write([]byte("1234\r")); err != nil {
			t.Fatal(err)
		}
		res := <-done
		if res.err != nil {
			t.Fatal(res.err)
		}
		if string(res.s.Bytes()) != "1234" {
			t.Fatalf("PIN = %q", res.s.Bytes())
		}
		res.s.Wipe()
	})

	t.Run("malformed then valid", func(t *testing.T) {
		t.Parallel()
		term := newTerminal(t)
		c := term.ttyClient(t, nil)
		done := make(chan error, 1)
		var got string
		go func() {
			s, err := c.GetPIN(context.Background(), pinRequest())
			if err == nil {
				got = string(s.Bytes())
			}
			done <- err
		}()
		pos := term.waitFor(t, "(4 chiffres) :", 0)
		term.master.Write([]byte("12a\r"))
		pos = term.waitFor(t, "Le code doit comporter exactement 4 chiffres", pos)
		term.waitFor(t, "(4 chiffres) :", pos)
		term.master.Write([]byte("5678\r"))
		if err := <-done; err != nil || got != "5678" {
			t.Fatalf("GetPIN = %q, %v", got, err)
		}
	})

	for _, tt := range []struct {
		key  string
		want Decision
	}{{"u", AllowOnce}, {"t", AllowAlways}, {"r", Refuse}} {
		t.Run("confirm "+tt.key, func(t *testing.T) {
			t.Parallel()
			term := newTerminal(t)
			c := term.ttyClient(t, nil)
			type result struct {
				d   Decision
				err error
			}
			done := make(chan result, 1)
			go func() {
				d, err := c.Confirm(context.Background(), ConfirmRequest{Origin: "https://xn--caf-dma.example", Operation: "lecture du certificat"})
				done <- result{d, err}
			}()
			pos := term.waitFor(t, "https://xn--caf-dma.example", 0)
			term.waitFor(t, "]? ", pos)
			term.master.Write([]byte(tt.key))
			res := <-done
			if res.err != nil || res.d != tt.want {
				t.Fatalf("Confirm = %v, %v; want %v", res.d, res.err, tt.want)
			}
		})
	}

	t.Run("program timeout", func(t *testing.T) {
		t.Parallel()
		term := newTerminal(t)
		c := term.ttyClient(t, nil) // KillGrace 10 s: the timeout must come from pinentry itself
		r := pinRequest()
		r.Timeout = time.Second
		start := time.Now()
		_, err := c.GetPIN(context.Background(), r)
		if !errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want pinentry's own ErrTimeout", err)
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Fatalf("took %v", d)
		}
	})

	t.Run("context cancel kills", func(t *testing.T) {
		t.Parallel()
		term := newTerminal(t)
		c := term.ttyClient(t, nil)
		pids := make(chan int, 1)
		c.onStart = func(pid int) { pids <- pid }
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := c.GetPIN(ctx, pinRequest())
			done <- err
		}()
		term.waitFor(t, "(4 chiffres) :", 0)
		cancel()
		if err := <-done; !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if err := syscall.Kill(<-pids, 0); !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("pinentry-tty still running: %v", err)
		}
	})
}

func TestRealPinentryGTK2(t *testing.T) {
	xvfb.Require(t, "pinentry-gtk-2", "xdotool", "import")
	display := os.Getenv("DISPLAY")
	if display == "" {
		display = xvfb.Start(t)
	}
	c := New(Config{Program: "pinentry-gtk-2", Env: []string{"DISPLAY=" + display}, MinConfirmDelay: -1})
	waitWindow := func() {
		xvfb.Run(t, display, "xdotool", "search", "--sync", "--onlyvisible", "--class", "pinentry")
	}
	shot := func(name string) { xvfb.Screenshot(t, display, name) }

	// Subtests run in sequence: they share the display and the keyboard.
	t.Run("PIN", func(t *testing.T) {
		done := make(chan error, 1)
		var got string
		go func() {
			r := pinRequest()
			r.Origin = "https://xn--caf-dma.example"
			r.TriesLeft, r.LastTry = 1, true
			s, err := c.GetPIN(context.Background(), r)
			if err == nil {
				got = string(s.Bytes())
				s.Wipe()
			}
			done <- err
		}()
		waitWindow()
		xvfb.Run(t, display, "xdotool", "type", "4321")
		shot("pinentry-gtk2-pin.png")
		xvfb.Run(t, display, "xdotool", "key", "Return")
		if err := <-done; err != nil || got != "4321" {
			t.Fatalf("GetPIN = %q, %v", got, err)
		}
	})

	for _, tt := range []struct {
		key  string
		want Decision
	}{
		{"Return", Refuse}, // the focused button of the three-button dialog is Cancel
		{"alt+u", AllowOnce},
		{"alt+t", AllowAlways},
		{"Escape", Refuse},
	} {
		t.Run("confirm "+tt.key, func(t *testing.T) {
			type result struct {
				d   Decision
				err error
			}
			done := make(chan result, 1)
			go func() {
				d, err := c.Confirm(context.Background(), ConfirmRequest{
					Origin: "https://xn--caf-dma.example", Operation: "lecture du certificat",
					Holder: "Dr Jeanne MARTIN", Description: "Connexion au DMP\n« faux texte de l'agent »",
				})
				done <- result{d, err}
			}()
			waitWindow()
			if tt.key == "Return" {
				shot("pinentry-gtk2-confirm.png")
			}
			xvfb.Run(t, display, "xdotool", "key", tt.key)
			if res := <-done; res.err != nil || res.d != tt.want {
				t.Fatalf("Confirm = %v, %v; want %v", res.d, res.err, tt.want)
			}
		})
	}
}
