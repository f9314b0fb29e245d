//go:build unix

package pinentry

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
	"github.com/cpsagent/cpsagent/internal/testutil/xvfb"
)

// fake is a Client running the fake pinentry, with its command log and the
// pids of the programs it started.
type fake struct {
	*Client
	logFile string
	mu      sync.Mutex
	pids    []int
	started chan int // receives each pid (buffered)
	logBuf  *bytes.Buffer
}

func newFake(t *testing.T, o pinentrytest.Options, tune func(*Config)) *fake {
	t.Helper()
	dir := t.TempDir()
	o.LogFile = filepath.Join(dir, "commands.log")
	if len(o.PINs) > 0 && o.StateFile == "" {
		o.StateFile = filepath.Join(dir, "state")
	}
	f := &fake{logFile: o.LogFile, started: make(chan int, 16), logBuf: &bytes.Buffer{}}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&lockedWriter{buf: f.logBuf}), zap.DebugLevel)
	cfg := Config{
		Program:         pinentrytest.Path(),
		Env:             o.Env(),
		MinConfirmDelay: -1,
		KillGrace:       2 * time.Second,
		Logger:          zap.New(core),
	}
	if tune != nil {
		tune(&cfg)
	}
	f.Client = New(cfg)
	f.onStart = func(pid int) {
		f.mu.Lock()
		f.pids = append(f.pids, pid)
		f.mu.Unlock()
		f.started <- pid
	}
	t.Cleanup(func() { f.assertNoProcessLeft(t) })
	return f
}

type lockedWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (f *fake) commands(t *testing.T) []string {
	t.Helper()
	cmds, err := pinentrytest.ReadLog(f.logFile)
	if err != nil {
		t.Fatal(err)
	}
	return cmds
}

// waitForCommand waits until the fake logged a command starting with prefix.
func (f *fake) waitForCommand(t *testing.T, prefix string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range f.commands(t) {
			if strings.HasPrefix(c, prefix) {
				return
			}
		}
		time.Sleep(5 * time.Millisecond) // polling a file: there is nothing to wait on
	}
	t.Fatalf("the fake pinentry never received %s; got %q", prefix, f.commands(t))
}

// assertNoProcessLeft checks that every program started is gone, with its
// process group. A Client returns only after reaping its program, so this
// holds at once; the loop only absorbs the kernel delivering SIGKILL to
// other members of the group.
func (f *fake) assertNoProcessLeft(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, pid := range f.pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pinentry process %d still exists (kill 0: %v)", pid, err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for syscall.Kill(-pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d still has members (kill 0: %v)", pid, err)
		}
	}
}

func pinRequest() Request {
	return Request{
		Kind:        PIN,
		Origin:      "https://portail.example.fr",
		Operation:   "signature d'un document",
		Description: "Ordonnance n°42",
		Holder:      "Dr Jeanne MARTIN",
		Reader:      "Virtual PCD 00 00",
		TriesLeft:   3,
		Timeout:     20 * time.Second,
	}
}

func TestGetPINOK(t *testing.T) {
	t.Parallel()
	f := newFake(t, pinentrytest.Options{PIN: "9731"}, nil)
	s, err := f.GetPIN(context.Background(), pinRequest())
	if err != nil {
		t.Fatal(err)
	}
	if got := string(s.Bytes()); got != "9731" {
		t.Fatalf("PIN = %q, want 9731", got)
	}
	s.Wipe()
	if s.Bytes() != nil || s.Len() != 0 {
		t.Fatal("Wipe left bytes")
	}

	cmds := f.commands(t)
	want := []string{"SETTIMEOUT 20", "SETTITLE ", "SETDESC ", "SETPROMPT ", "SETOK ", "SETCANCEL ", "GETPIN", "BYE"}
	if len(cmds) != len(want) {
		t.Fatalf("commands = %q, want prefixes %q", cmds, want)
	}
	for i, c := range cmds {
		if !strings.HasPrefix(c, want[i]) {
			t.Errorf("command %d = %q, want prefix %q", i, c, want[i])
		}
	}
	desc := cmds[2]
	for _, part := range []string{"https://portail.example.fr", "signature d'un document", "Dr Jeanne MARTIN", "Essais restants : 3", "%0A", "« Ordonnance n°42 »"} {
		if !strings.Contains(desc, part) {
			t.Errorf("SETDESC lacks %q: %q", part, desc)
		}
	}
	all := strings.Join(cmds, "\n") + f.logBuf.String()
	if strings.Contains(all, "9731") {
		t.Fatal("the PIN appears in the commands or in the agent log")
	}
	if !strings.Contains(f.logBuf.String(), `"outcome":"ok"`) {
		t.Errorf("no outcome logged: %s", f.logBuf)
	}
}

func TestGetPINErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    pinentrytest.Options
		program string
		want    error
		notWant error
	}{
		{name: "cancel", opts: pinentrytest.Options{Mode: pinentrytest.ModeCancel}, want: ErrCancelled, notWant: context.Canceled},
		{name: "crash", opts: pinentrytest.Options{Mode: pinentrytest.ModeCrash}, want: ErrUnavailable},
		{name: "program timeout", opts: pinentrytest.Options{Mode: pinentrytest.ModeTimeout}, want: ErrTimeout, notWant: context.DeadlineExceeded},
		{name: "missing program", program: "/nonexistent/pinentry-none", want: ErrUnavailable},
		{name: "not a pinentry", program: "/bin/true", want: ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tt.opts, func(c *Config) {
				if tt.program != "" {
					c.Program = tt.program
				}
			})
			s, err := f.GetPIN(context.Background(), pinRequest())
			if s != nil {
				t.Fatal("a Secret was returned with an error")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.notWant != nil && errors.Is(err, tt.notWant) {
				t.Fatalf("err = %v, should not match %v", err, tt.notWant)
			}
		})
	}
}

func TestGetPINHangTimesOutAndKills(t *testing.T) {
	t.Parallel()
	// The program ignores SETTIMEOUT: it is killed Timeout+KillGrace after the start.
	f := newFake(t, pinentrytest.Options{Mode: pinentrytest.ModeHang}, func(c *Config) { c.KillGrace = 500 * time.Millisecond })
	r := pinRequest()
	r.Timeout = time.Second
	start := time.Now()
	_, err := f.GetPIN(context.Background(), r)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond || d > 10*time.Second {
		t.Fatalf("GetPIN returned after %v, want about 1.5 s", d)
	}
	// the cleanup checks that the program and its group are gone
}

func TestSubSecondTimeoutIsRoundedUp(t *testing.T) {
	t.Parallel()
	f := newFake(t, pinentrytest.Options{PIN: "1234"}, nil)
	r := pinRequest()
	r.Timeout = 200 * time.Millisecond // SETTIMEOUT 0 would mean no timeout
	if _, err := f.GetPIN(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if cmds := f.commands(t); !slices.Contains(cmds, "SETTIMEOUT 1") {
		t.Fatalf("commands = %q", cmds)
	}
}

func TestContextCancelKillsProgram(t *testing.T) {
	t.Parallel()
	for _, when := range []string{"at start", "during GETPIN", "during CONFIRM"} {
		t.Run(when, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, pinentrytest.Options{Mode: pinentrytest.ModeHang}, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				if when == "during CONFIRM" {
					d, err := f.Confirm(ctx, ConfirmRequest{Origin: "https://a.example", Timeout: time.Minute})
					if d != Refuse {
						err = errors.Join(err, errors.New("decision is not Refuse"))
					}
					done <- err
					return
				}
				r := pinRequest()
				r.Timeout = time.Minute
				s, err := f.GetPIN(ctx, r)
				if s != nil {
					err = errors.Join(err, errors.New("a Secret was returned"))
				}
				done <- err
			}()
			<-f.started
			switch when {
			case "during GETPIN":
				f.waitForCommand(t, "GETPIN")
			case "during CONFIRM":
				f.waitForCommand(t, "CONFIRM")
			}
			cancelled := time.Now()
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want ErrCancelled and context.Canceled", err)
				}
				if d := time.Since(cancelled); d > 3*time.Second { // promptly, with room for a loaded CI machine
					t.Fatalf("returned %v after the cancellation", d)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("GetPIN did not return after the context was cancelled")
			}
		})
	}
}

func TestContextDoneBeforeCall(t *testing.T) {
	t.Parallel()
	f := newFake(t, pinentrytest.Options{PIN: "1234"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.GetPIN(ctx, pinRequest()); !errors.Is(err, ErrCancelled) {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := f.Confirm(ctx, ConfirmRequest{}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	if len(f.pids) != 0 {
		t.Fatal("a program was started")
	}
}

func TestCallerDeadline(t *testing.T) {
	t.Parallel()
	f := newFake(t, pinentrytest.Options{Mode: pinentrytest.ModeHang}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r := pinRequest()
	r.Timeout = time.Minute
	if _, err := f.GetPIN(ctx, r); !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

// TestWrongThenRightPIN is the end-to-end pattern: the first dialog answers a
// wrong PIN, the second the right one, the third finds the list exhausted.
func TestWrongThenRightPIN(t *testing.T) {
	t.Parallel()
	f := newFake(t, pinentrytest.Options{PINs: []string{"0000", "1234"}}, nil)
	for _, want := range []string{"0000", "1234"} {
		s, err := f.GetPIN(context.Background(), pinRequest())
		if err != nil {
			t.Fatal(err)
		}
		if string(s.Bytes()) != want {
			t.Fatalf("PIN = %q, want %q", s.Bytes(), want)
		}
		s.Wipe()
	}
	if _, err := f.GetPIN(context.Background(), pinRequest()); !errors.Is(err, ErrCancelled) {
		t.Fatalf("third GetPIN: err = %v, want ErrCancelled", err)
	}
}

func TestMalformedPINIsAskedAgain(t *testing.T) {
	t.Parallel()
	t.Run("then valid", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, pinentrytest.Options{PINs: []string{"12a4", "1234"}}, nil)
		s, err := f.GetPIN(context.Background(), pinRequest())
		if err != nil {
			t.Fatal(err)
		}
		if string(s.Bytes()) != "1234" {
			t.Fatalf("PIN = %q", s.Bytes())
		}
		cmds := f.commands(t)
		i := slices.Index(cmds, "GETPIN")
		if i < 0 || len(cmds) < i+3 || !strings.HasPrefix(cmds[i+1], "SETERROR Le code doit comporter exactement 4 chiffres") || cmds[i+2] != "GETPIN" {
			t.Fatalf("commands = %q", cmds)
		}
	})
	t.Run("three times", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, pinentrytest.Options{PINs: []string{"123", "12345", "", "1234"}}, nil)
		_, err := f.GetPIN(context.Background(), pinRequest())
		if !errors.Is(err, ErrPINFormat) {
			t.Fatalf("err = %v, want ErrPINFormat", err)
		}
		if n := strings.Count(strings.Join(f.commands(t), "\n"), "GETPIN"); n != 3 {
			t.Fatalf("%d GETPIN, want 3", n)
		}
	})
	t.Run("PUK", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, pinentrytest.Options{PINs: []string{"1234", "12345678"}}, nil)
		r := pinRequest()
		r.Kind = PUK
		s, err := f.GetPIN(context.Background(), r)
		if err != nil || string(s.Bytes()) != "12345678" {
			t.Fatalf("GetPIN = %q, %v", s.Bytes(), err)
		}
		if !slices.ContainsFunc(f.commands(t), func(c string) bool { return strings.HasPrefix(c, "SETERROR Le code doit comporter exactement 8") }) {
			t.Fatalf("no PUK format error: %q", f.commands(t))
		}
	})
}

func TestBusy(t *testing.T) {
	t.Parallel()
	f := newFake(t, pinentrytest.Options{Mode: pinentrytest.ModeHang}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := f.GetPIN(ctx, pinRequest())
		done <- err
	}()
	<-f.started
	start := time.Now()
	if _, err := f.GetPIN(context.Background(), pinRequest()); !errors.Is(err, ErrBusy) {
		t.Fatalf("second GetPIN: err = %v, want ErrBusy", err)
	}
	if d, err := f.Confirm(context.Background(), ConfirmRequest{}); !errors.Is(err, ErrBusy) || d != Refuse {
		t.Fatalf("Confirm while busy = %v, %v", d, err)
	}
	if d := time.Since(start); d > 2*time.Second { // at once (no dialog is started), with room for a loaded machine
		t.Fatalf("ErrBusy took %v", d)
	}
	cancel()
	if err := <-done; !errors.Is(err, ErrCancelled) {
		t.Fatalf("first GetPIN: %v", err)
	}
	// the Prompter is free again (same Client, now answering a PIN)
	f.cfg.Env = pinentrytest.Options{PIN: "1234"}.Env()
	if _, err := f.GetPIN(context.Background(), pinRequest()); err != nil {
		t.Fatalf("GetPIN after the first dialog closed: %v", err)
	}
}

func TestConfirm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode    string
		want    Decision
		wantErr error
	}{
		{pinentrytest.ModeConfirmOK, AllowOnce, nil},
		{pinentrytest.ModeConfirmNotOK, AllowAlways, nil},
		{pinentrytest.ModeConfirmCancel, Refuse, nil},
		{pinentrytest.ModeCancel, Refuse, nil},
		{pinentrytest.ModeTimeout, Refuse, ErrTimeout},
		{pinentrytest.ModeCrash, Refuse, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, pinentrytest.Options{Mode: tt.mode}, nil)
			d, err := f.Confirm(context.Background(), ConfirmRequest{Origin: "https://xn--caf-dma.example", Operation: "lecture du certificat", Timeout: 30 * time.Second})
			if d != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Confirm = %v, %v; want %v, %v", d, err, tt.want, tt.wantErr)
			}
			if tt.mode == pinentrytest.ModeCrash {
				return
			}
			cmds := f.commands(t)
			for _, want := range []string{"SETOK Autoriser _une fois", "SETNOTOK _Toujours autoriser ce site", "SETCANCEL _Refuser", "CONFIRM"} {
				if !slices.Contains(cmds, want) {
					t.Errorf("commands lack %q: %q", want, cmds)
				}
			}
		})
	}
}

func TestConfirmTooFast(t *testing.T) {
	t.Parallel()
	t.Run("instant answers are not trusted", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, pinentrytest.Options{Mode: pinentrytest.ModeConfirmNotOK}, func(c *Config) { c.MinConfirmDelay = time.Hour })
		d, err := f.Confirm(context.Background(), ConfirmRequest{Origin: "https://a.example"})
		if err != nil || d != Refuse {
			t.Fatalf("Confirm = %v, %v; want Refuse", d, err)
		}
		cmds := f.commands(t)
		i := slices.Index(cmds, "CONFIRM")
		if i < 0 || len(cmds) < i+3 || !strings.HasPrefix(cmds[i+1], "SETERROR Réponse trop rapide") || cmds[i+2] != "CONFIRM" {
			t.Fatalf("commands = %q", cmds)
		}
		if !strings.Contains(f.logBuf.String(), "too fast") {
			t.Errorf("not logged: %s", f.logBuf)
		}
	})
	t.Run("slow answer is trusted", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, pinentrytest.Options{Mode: pinentrytest.ModeConfirmOK, Delay: 300 * time.Millisecond},
			func(c *Config) { c.MinConfirmDelay = 200 * time.Millisecond })
		d, err := f.Confirm(context.Background(), ConfirmRequest{Origin: "https://a.example"})
		if err != nil || d != AllowOnce {
			t.Fatalf("Confirm = %v, %v; want AllowOnce", d, err)
		}
	})
	t.Run("instant refusal is accepted", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, pinentrytest.Options{Mode: pinentrytest.ModeConfirmCancel}, func(c *Config) { c.MinConfirmDelay = time.Hour })
		d, err := f.Confirm(context.Background(), ConfirmRequest{})
		if err != nil || d != Refuse || strings.Count(strings.Join(f.commands(t), "\n"), "CONFIRM") != 1 {
			t.Fatalf("Confirm = %v, %v; commands %q", d, err, f.commands(t))
		}
	})
}

// TestSec28_FastAnswersNotTrusted (security.md §6 item 28): keystrokes
// aimed at a web page that land in a dialog as it opens approve nothing.
// An "allow" answer to the consent dialog that comes back sooner than
// MinConfirmDelay (1 s by default) is asked again with a warning, and a
// second early answer is a refusal; a refusal is taken at once; an answer
// given after reading is trusted. In the PIN dialog, Enter on an empty field is
// a malformed code: asked again, and after 3 an error with no code
// returned (nothing reaches the card). In the real programs no button
// means "allow" by default: pinentry-gtk-2 focuses Cancel ("Refuser"), so
// Return refuses; pinentry-tty has no default and takes Return as an
// invalid selection.
func TestSec28_FastAnswersNotTrusted(t *testing.T) {
	t.Parallel()
	// The scripted pinentry answers at once; those answers are judged
	// against a 10 s minimum, so that a stalled machine cannot make them
	// look slow. The answer given after reading is judged against the
	// default (1 s, also checked by TestConfigDefaults).
	const atOnce = 10 * time.Second
	tests := []struct {
		name     string
		opts     pinentrytest.Options
		minDelay time.Duration // Config.MinConfirmDelay, 0 for the default
		pin      bool          // a PIN dialog, else the consent dialog
		want     Decision
		wantErr  error
		dialogs  int    // CONFIRM or GETPIN commands received
		warnings string // SETERROR prefix expected between them
	}{
		{"allow once, at once", pinentrytest.Options{Mode: pinentrytest.ModeConfirmOK}, atOnce, false, Refuse, nil, 2, "SETERROR Réponse trop rapide"},
		{"always allow, at once", pinentrytest.Options{Mode: pinentrytest.ModeConfirmNotOK}, atOnce, false, Refuse, nil, 2, "SETERROR Réponse trop rapide"},
		{"refuse, at once", pinentrytest.Options{Mode: pinentrytest.ModeConfirmCancel}, atOnce, false, Refuse, nil, 1, ""},
		{"allow once, after reading", pinentrytest.Options{Mode: pinentrytest.ModeConfirmOK, Delay: 1500 * time.Millisecond}, 0, false, AllowOnce, nil, 1, ""},
		{"Enter in the PIN dialog", pinentrytest.Options{PIN: ""}, 0, true, Refuse, ErrPINFormat, 3, "SETERROR Le code doit comporter exactement 4 chiffres"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tt.opts, func(c *Config) { c.MinConfirmDelay = tt.minDelay })
			var d Decision
			var err error
			if tt.pin {
				var s *Secret
				s, err = f.GetPIN(context.Background(), pinRequest())
				if s != nil {
					t.Fatal("a code was returned")
				}
			} else {
				d, err = f.Confirm(context.Background(), ConfirmRequest{Origin: "https://portail.example.fr", Operation: "accès à la carte"})
			}
			if d != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("answer %v, %v; want %v, %v", d, err, tt.want, tt.wantErr)
			}
			cmds := f.commands(t)
			ask := "CONFIRM"
			if tt.pin {
				ask = "GETPIN"
			}
			asked := 0
			for i, c := range cmds {
				if c != ask {
					continue
				}
				asked++
				if asked > 1 {
					if !strings.HasPrefix(cmds[i-1], tt.warnings) || tt.warnings == "" {
						t.Errorf("no warning before asking again: %q", cmds)
					}
				}
			}
			if asked != tt.dialogs {
				t.Fatalf("%d %s, want %d: %q", asked, ask, tt.dialogs, cmds)
			}
			if !tt.pin && !slices.Contains(cmds, "SETCANCEL _Refuser") {
				t.Errorf("Cancel is not the refusal: %q", cmds)
			}
		})
	}

	t.Run("pinentry-tty: Return is no answer", func(t *testing.T) {
		xvfb.Require(t, "pinentry-tty")
		t.Parallel()
		term := newTerminal(t)
		c := term.ttyClient(t, nil) // MinConfirmDelay off: the program's own default is under test
		done := make(chan Decision, 1)
		go func() {
			d, _ := c.Confirm(context.Background(), ConfirmRequest{Origin: "https://portail.example.fr", Timeout: 30 * time.Second})
			done <- d
		}()
		pos := term.waitFor(t, "]? ", 0)
		term.master.Write([]byte("\r"))
		pos = term.waitFor(t, "Invalid selection", pos)
		select {
		case d := <-done:
			t.Fatalf("Return answered %v", d)
		default:
		}
		term.waitFor(t, "]? ", pos)
		term.master.Write([]byte("r"))
		if d := <-done; d != Refuse {
			t.Fatalf("r answered %v", d)
		}
	})

	t.Run("pinentry-gtk-2: Return refuses", func(t *testing.T) {
		xvfb.Require(t, "pinentry-gtk-2", "xdotool", "Xvfb")
		display := xvfb.Start(t)
		c := New(Config{Program: "pinentry-gtk-2", Env: []string{"DISPLAY=" + display}, MinConfirmDelay: -1})
		done := make(chan Decision, 1)
		go func() {
			d, _ := c.Confirm(context.Background(), ConfirmRequest{Origin: "https://portail.example.fr", Timeout: 30 * time.Second})
			done <- d
		}()
		xvfb.Run(t, display, "xdotool", "search", "--sync", "--onlyvisible", "--class", "pinentry")
		xvfb.Run(t, display, "xdotool", "key", "Return")
		if d := <-done; d != Refuse {
			t.Fatalf("Return answered %v", d)
		}
	})
}

func TestDefaultProgramLinux(t *testing.T) {
	if _, err := os.Stat("/proc/self"); err != nil {
		t.Skip("not Linux")
	}
	installed := func(names ...string) func(string) (string, error) {
		return func(n string) (string, error) {
			if slices.Contains(names, n) {
				return "/usr/bin/" + n, nil
			}
			return "", errors.New("not found")
		}
	}
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	tests := []struct {
		name     string
		getenv   func(string) string
		lookPath func(string) (string, error)
		want     string
		wantArgs []string
		wantErr  bool
	}{
		{"X11 gnome3 first", env("DISPLAY", ":0"), installed("pinentry-gtk-2", "pinentry-gnome3", "pinentry-curses"), "/usr/bin/pinentry-gnome3", nil, false},
		{"wayland gtk2", env("WAYLAND_DISPLAY", "wayland-0"), installed("pinentry-gtk-2", "pinentry-curses"), "/usr/bin/pinentry-gtk-2", nil, false},
		{"X11 only generic", env("DISPLAY", ":0"), installed("pinentry"), "/usr/bin/pinentry", nil, false},
		{"no display curses", env("GPG_TTY", "/dev/pts/4"), installed("pinentry-gtk-2", "pinentry-curses", "pinentry-tty"), "/usr/bin/pinentry-curses", []string{"--ttyname", "/dev/pts/4"}, false},
		{"no display tty", env(), installed("pinentry-tty"), "/usr/bin/pinentry-tty", nil, false},
		{"nothing", env("DISPLAY", ":0"), installed("pinentry-curses"), "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, args, err := defaultProgram(tt.getenv, tt.lookPath)
			if tt.wantErr {
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("err = %v, want ErrUnavailable", err)
				}
				return
			}
			if err != nil || got != tt.want || !slices.Equal(args, tt.wantArgs) {
				t.Fatalf("defaultProgram = %q %q %v, want %q %q", got, args, err, tt.want, tt.wantArgs)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := New(Config{})
	if c.cfg.MinConfirmDelay != time.Second || c.cfg.DefaultTimeout != time.Minute || c.cfg.KillGrace != 3*time.Second {
		t.Fatalf("defaults = %+v", c.cfg)
	}
	if New(Config{MinConfirmDelay: -1}).cfg.MinConfirmDelay >= 0 {
		t.Fatal("a negative MinConfirmDelay must stay negative (check off)")
	}
}

func TestConfigEnvOverridesGetenv(t *testing.T) {
	c := New(Config{Env: []string{"DISPLAY=:1", "X=1", "DISPLAY=:7"}})
	if got := c.getenv("DISPLAY"); got != ":7" {
		t.Fatalf("getenv = %q", got)
	}
}
