package pinentry

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"time"

	gopinentry "github.com/twpayne/go-pinentry/v4"
	"go.uber.org/zap"
)

// Defaults of [Config].
const (
	DefaultTimeout         = 60 * time.Second
	DefaultKillGrace       = 3 * time.Second
	DefaultMinConfirmDelay = time.Second
	maxFormatAttempts      = 3
)

// Config selects and tunes the pinentry program.
type Config struct {
	// Program is the pinentry program, a path or a name looked up in PATH.
	// Empty selects the platform default (see the default_*.go files): on
	// Linux the first of pinentry-gnome3, pinentry-gtk-2, pinentry-qt,
	// pinentry when DISPLAY or WAYLAND_DISPLAY is set, else pinentry-curses
	// or pinentry-tty (with --ttyname $GPG_TTY when set); pinentry-mac on
	// macOS; Gpg4win's pinentry.exe on Windows.
	Program string
	// Args are extra arguments, e.g. {"--ttyname", "/dev/pts/3"}.
	Args []string
	// Env is added to the agent's environment for the program ("KEY=value";
	// also consulted for DISPLAY, WAYLAND_DISPLAY and GPG_TTY when choosing
	// the default program).
	Env []string
	// DefaultTimeout applies to requests without a Timeout (0: 60 s). It is
	// sent to the program (SETTIMEOUT).
	DefaultTimeout time.Duration
	// KillGrace is how long after the timeout a program that ignored
	// SETTIMEOUT is killed, and how long it gets to exit after BYE (0: 3 s).
	KillGrace time.Duration
	// MinConfirmDelay: an "allow" answer to a consent dialog that arrives
	// sooner than this after the dialog was asked for is not trusted (0: 1 s;
	// negative: no check). See the package documentation.
	MinConfirmDelay time.Duration
	// Logger receives non-secret events (program, dialog, origin, outcome,
	// duration). Nil: no logging.
	Logger *zap.Logger
}

// Client is a [Prompter] that runs a pinentry program, one dialog at a time.
// It is safe for concurrent use; a call made while a dialog is open fails with
// [ErrBusy].
type Client struct {
	cfg Config
	log *zap.Logger
	sem chan struct{}

	onStart func(pid int) // test hook, called with the pid of each program started
}

var _ Prompter = (*Client)(nil)

// New returns a Client for cfg.
func New(cfg Config) *Client {
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = DefaultTimeout
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = DefaultKillGrace
	}
	if cfg.MinConfirmDelay == 0 {
		cfg.MinConfirmDelay = DefaultMinConfirmDelay
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Client{cfg: cfg, log: log.Named("pinentry"), sem: make(chan struct{}, 1)}
}

// GetPIN shows a PIN dialog and returns the code typed. A code that does not
// have the format of r.Kind is refused in the same dialog (with an error line)
// up to 3 times, then GetPIN fails with ErrPINFormat or ErrPUKFormat; no
// malformed code is ever returned. No Secret is returned once ctx is done.
func (c *Client) GetPIN(ctx context.Context, r Request) (*Secret, error) {
	if err := ctx.Err(); err != nil {
		return nil, classify(ctx, err)
	}
	if !c.acquire() {
		return nil, ErrBusy
	}
	defer c.release()

	m := language(r.Lang)
	formatMsg := m.formatPIN
	if r.Kind == PUK {
		formatMsg = m.formatPUK
	}
	var secret *Secret
	err := c.dialog(ctx, dialogSpec{name: "pin", kind: r.Kind.String(), origin: r.Origin, timeout: r.Timeout, texts: PINTexts(r)},
		func(p *proc) error {
			for attempt := 1; ; attempt++ {
				s, err := p.getPIN()
				if err != nil {
					return err
				}
				verr := r.Kind.Validate(s.b)
				if verr == nil {
					secret = s
					return nil
				}
				s.Wipe()
				if attempt >= maxFormatAttempts {
					return verr
				}
				if err := p.command("SETERROR " + escape(formatMsg)); err != nil {
					return err
				}
			}
		})
	if err == nil && ctx.Err() != nil {
		err = classify(ctx, ctx.Err())
	}
	if err != nil {
		secret.Wipe()
		return nil, err
	}
	return secret, nil
}

// Confirm shows the three-button consent dialog: OK is AllowOnce, NotOK is
// AllowAlways, Cancel (or closing the dialog) is Refuse with a nil error. A
// timeout gives Refuse and ErrTimeout; any error gives Refuse.
func (c *Client) Confirm(ctx context.Context, cr ConfirmRequest) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Refuse, classify(ctx, err)
	}
	if !c.acquire() {
		return Refuse, ErrBusy
	}
	defer c.release()

	m := language(cr.Lang)
	decision := Refuse
	err := c.dialog(ctx, dialogSpec{name: "confirm", origin: cr.Origin, timeout: cr.Timeout, texts: ConfirmTexts(cr)},
		func(p *proc) error {
			for attempt := 1; ; attempt++ {
				asked := time.Now()
				d, err := confirmDecision(p.transact("CONFIRM", nil))
				if err != nil {
					return err
				}
				if d == Refuse || c.cfg.MinConfirmDelay < 0 || time.Since(asked) >= c.cfg.MinConfirmDelay {
					decision = d
					return nil
				}
				c.log.Warn("consent answered too fast, not trusted",
					zap.String("origin", sanitize(cr.Origin, maxOriginRunes)), zap.Int("attempt", attempt))
				if attempt >= 2 {
					decision = Refuse
					return nil
				}
				if err := p.command("SETERROR " + escape(m.tooFast)); err != nil {
					return err
				}
			}
		})
	if err == nil && ctx.Err() != nil {
		err = classify(ctx, ctx.Err())
	}
	if err != nil {
		return Refuse, err
	}
	return decision, nil
}

// confirmDecision maps the answer to CONFIRM. Errors that are not a button
// are returned.
func confirmDecision(err error) (Decision, error) {
	if err == nil {
		return AllowOnce, nil
	}
	var ae *gopinentry.AssuanError
	if errors.As(err, &ae) {
		switch ae.Code {
		case codeNotConfirmed:
			return AllowAlways, nil
		case codeCancelled:
			return Refuse, nil
		}
	}
	return Refuse, err
}

func (c *Client) acquire() bool {
	select {
	case c.sem <- struct{}{}:
		return true
	default:
		return false
	}
}

func (c *Client) release() { <-c.sem }

type dialogSpec struct {
	name, kind, origin string
	timeout            time.Duration
	texts              Texts
}

// dialog starts the program, sends the texts and runs fn. The program is
// killed when ctx is done or timeout+KillGrace has passed.
func (c *Client) dialog(ctx context.Context, spec dialogSpec, fn func(*proc) error) (err error) {
	started := time.Now()
	prog, args, err := c.program()
	defer func() { c.logOutcome(spec, prog, started, err) }()
	if err != nil {
		return err
	}
	timeout := spec.timeout
	if timeout <= 0 {
		timeout = c.cfg.DefaultTimeout
	}
	hardCtx, cancel := context.WithTimeout(ctx, timeout+c.cfg.KillGrace)
	defer cancel()

	p := newProc(hardCtx, c.cfg.Env, c.cfg.KillGrace)
	p.onStart = c.onStart
	defer p.Close()
	t := spec.texts
	opts := []gopinentry.ClientOption{
		gopinentry.WithBinaryName(prog),
		gopinentry.WithArgs(args),
		gopinentry.WithProcess(p),
		gopinentry.WithCommandf("SETTIMEOUT %d", int64((timeout+time.Second-1)/time.Second)),
		gopinentry.WithTitle(t.Title),
		gopinentry.WithDesc(t.Description),
	}
	for _, o := range []struct {
		text string
		opt  func(string) gopinentry.ClientOption
	}{{t.Prompt, gopinentry.WithPrompt}, {t.OK, gopinentry.WithOK}, {t.NotOK, gopinentry.WithNotOK}, {t.Cancel, gopinentry.WithCancel}, {t.Error, gopinentry.WithError}} {
		if o.text != "" {
			opts = append(opts, o.opt(o.text))
		}
	}
	client, err := gopinentry.NewClient(opts...)
	if err != nil {
		return classify(hardCtx, err)
	}
	err = fn(p)
	formatErr := errors.Is(err, ErrPINFormat) || errors.Is(err, ErrPUKFormat)
	var ae *gopinentry.AssuanError
	if err == nil || formatErr || errors.As(err, &ae) {
		// The program is alive and answering: say BYE, but do not wait for
		// it longer than KillGrace.
		t := time.AfterFunc(c.cfg.KillGrace, p.kill)
		_ = client.Close()
		t.Stop()
	} else {
		p.kill()
	}
	if err == nil || formatErr {
		return err
	}
	return classify(hardCtx, err)
}

func (c *Client) logOutcome(spec dialogSpec, prog string, started time.Time, err error) {
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, ErrCancelled):
		outcome = "cancelled"
	case errors.Is(err, ErrTimeout):
		outcome = "timeout"
	case errors.Is(err, ErrPINFormat), errors.Is(err, ErrPUKFormat):
		outcome = "bad format"
	default:
		outcome = "unavailable"
	}
	fields := []zap.Field{
		zap.String("dialog", spec.name),
		zap.String("origin", sanitize(spec.origin, maxOriginRunes)),
		zap.String("program", prog),
		zap.String("outcome", outcome),
		zap.Duration("duration", time.Since(started)),
	}
	if spec.kind != "" {
		fields = append(fields, zap.String("kind", spec.kind))
	}
	if err != nil && outcome == "unavailable" {
		fields = append(fields, zap.Error(err))
		c.log.Warn("pinentry dialog failed", fields...)
		return
	}
	c.log.Info("pinentry dialog", fields...)
}

// program returns the program to run and its arguments.
func (c *Client) program() (string, []string, error) {
	if c.cfg.Program != "" {
		return c.cfg.Program, c.cfg.Args, nil
	}
	prog, args, err := defaultProgram(c.getenv, exec.LookPath)
	if err != nil {
		return "", nil, err
	}
	return prog, append(args, c.cfg.Args...), nil
}

// getenv reads Config.Env (last entry wins) and then the process environment.
func (c *Client) getenv(key string) string {
	for i := len(c.cfg.Env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(c.cfg.Env[i], "="); ok && k == key {
			return v
		}
	}
	return os.Getenv(key)
}
