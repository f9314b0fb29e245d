package main

// The desktop side of the agent: `cpsagent doctor`, and the helpers serve
// uses to run the tray (or the headless mode), the site consent, the
// activity ledger and the PIN-management flows.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/card/pcsc"
	"github.com/cpsagent/cpsagent/internal/config"
	"github.com/cpsagent/cpsagent/internal/consent"
	"github.com/cpsagent/cpsagent/internal/doctor"
	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/install"
	"github.com/cpsagent/cpsagent/internal/ledger"
	"github.com/cpsagent/cpsagent/internal/pinentry"
	"github.com/cpsagent/cpsagent/internal/pinmgmt"
	"github.com/cpsagent/cpsagent/internal/tray"
)

func init() {
	register(command{name: "doctor", summary: "diagnose: smart-card service, readers, card, agent port, certificate, policy", run: runDoctor})
}

// runDoctor is `cpsagent doctor [--lang fr|en] [--json] [--bundle FILE]`.
// It reads the same configuration as serve (file and defaults) and talks to
// PC/SC directly, so it works whether the agent runs or not.
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, cfgErr := config.Load(nil, io.Discard)
	if cfgErr != nil {
		cfg = config.Defaults()
		if dir, err := config.StateDir(); err == nil {
			cfg.StateDir = dir
		}
	}
	t := pcsc.New(pcsc.Options{})
	defer t.Close()
	// The card quirks the agent would run with, so that cards are
	// recognised as the agent recognises them; a bad file is the quirks
	// check's finding (and the built-in quirks are used here).
	quirks, err := loadAgentQuirks(zap.NewNop())
	if err != nil {
		quirks = cps.DefaultQuirks()
	}
	deps := doctorDeps(cfg, cfgErr, card.New(t, card.Options{Quirks: quirks}), t.Begin)
	err = doctor.Main(ctx, args, stdout, stderr, deps)
	switch {
	case errors.Is(err, doctor.ErrUsage):
		return usageError{err}
	case errors.Is(err, doctor.ErrProblems):
		return errors.New("problems found (see above)")
	}
	return err
}

// doctorDeps builds the doctor's view of this installation.
func doctorDeps(cfg *config.Config, cfgErr error, readers interface {
	Readers(context.Context) ([]card.Reader, error)
}, begin func(context.Context, string) (card.Session, error)) doctor.Deps {
	// The port of the running agent (it may have moved off 47180 when the
	// port was taken), else the configured one.
	agentURL := doctor.DefaultAgentURL
	if len(cfg.Listen) > 0 {
		if ap, err := config.ParseListen(cfg.Listen[0]); err == nil {
			agentURL = "https://" + ap.String()
		}
	}
	if info, err := install.RunningInstance(cfg.StateDir); err == nil && info != nil && info.Port > 0 {
		agentURL = fmt.Sprintf("https://127.0.0.1:%d", info.Port)
	}
	return doctor.Deps{
		Version:           Version(),
		Readers:           readers.Readers,
		Begin:             begin,
		AgentURL:          agentURL,
		TLSDir:            filepath.Join(cfg.StateDir, "tls"),
		ConfigFile:        cfg.ConfigFile,
		ConfigErr:         cfgErr,
		AllowOrigins:      cfg.AllowOrigins,
		PolicyPath:        consent.DefaultPolicyPath(),
		QuirksPath:        config.QuirksFile(),
		StateDir:          cfg.StateDir,
		LogDir:            filepath.Join(cfg.StateDir, "logs"),
		Pinentry:          cfg.Pinentry,
		BrowserPolicyRoot: "/",
	}
}

// desktopEngine is what the desktop side needs from the card engine;
// *card.Engine implements it.
type desktopEngine interface {
	tray.Engine
	pinmgmt.Engine
	Readers(ctx context.Context) ([]card.Reader, error)
}

// desktop holds the consent manager and the ledger (which the API uses) and
// the tray controller.
type desktop struct {
	Consent *consent.Manager
	Ledger  *ledger.Ledger
	ctrl    *tray.Controller
	log     *zap.Logger
}

// newDesktop builds consent, ledger, PIN flows and the tray controller.
// quit is what the tray's Quit does (cancel serve's context).
func newDesktop(cfg *config.Config, eng desktopEngine, prompter *pinentry.Client, log *zap.Logger, quit func()) (*desktop, error) {
	lang := i18n.Detect()
	policy, perr := consent.LoadPolicy(consent.DefaultPolicyPath())
	if perr != nil {
		log.Error("machine policy unusable: no site may be added (fail-closed)", zap.Error(perr))
	}
	cm, err := consent.New(consent.Config{
		StateDir: cfg.StateDir,
		Static:   cfg.AllowOrigins,
		Policy:   policy,
		Prompter: prompter,
		Lang:     lang,
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	led, err := ledger.Open(cfg.StateDir, ledger.Options{})
	if err != nil {
		return nil, err
	}
	flows := &pinmgmt.Flows{Engine: eng, Prompter: prompter, Ledger: led, Lang: lang,
		Timeout: time.Duration(cfg.PINTimeout), Logger: log}
	d := &desktop{Consent: cm, Ledger: led, log: log}
	d.ctrl = tray.NewController(tray.Config{
		Card:      tray.EngineSource(eng),
		Sites:     cm,
		Activity:  led,
		PIN:       flows,
		Doctor:    d.doctorReport(cfg, eng),
		LogDir:    filepath.Join(cfg.StateDir, "logs"),
		ExportDir: filepath.Join(cfg.StateDir, "exports"),
		Quit:      quit,
		Lang:      lang,
		Version:   Version(),
		Logger:    log,
	})
	// The menu follows changes as they happen; nothing polls.
	cm.OnChange(d.ctrl.Refresh)
	led.OnRecord(d.ctrl.Refresh)
	return d, nil
}

// doctorReport runs the diagnostics for the tray and writes the report (in
// the session's language) to <state>/doctor/report-<time>.txt.
func (d *desktop) doctorReport(cfg *config.Config, eng desktopEngine) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		deps := doctorDeps(cfg, nil, eng, nil) // the engine owns the card: no exclusive-access probe from inside
		r := doctor.Run(ctx, deps)
		dir := filepath.Join(cfg.StateDir, "doctor")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
		path := filepath.Join(dir, "report-"+r.Time.Format("20060102-150405")+".txt")
		var b strings.Builder
		if err := r.WriteText(&b, i18n.Detect()); err != nil {
			return "", err
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			return "", fmt.Errorf("writing the report: %w", err)
		}
		return path, nil
	}
}

// runDesktop runs serveAPI in a goroutine and the tray (or the headless
// mode) on the calling goroutine, which must be main's: systray owns the
// main OS thread. It returns serveAPI's error once both have stopped. The
// tray's Quit, a signal (ctx) or the API stopping ends both.
func (d *desktop) runDesktop(ctx context.Context, headless bool, serveAPI func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- serveAPI(ctx)
		cancel()
	}()
	if err := tray.Run(ctx, d.ctrl, tray.Options{Headless: headless, Logger: d.log}); err != nil {
		d.log.Warn("tray", zap.Error(err))
	}
	cancel()
	err := <-errc
	if cerr := d.Ledger.Close(); cerr != nil {
		d.log.Warn("closing the ledger", zap.Error(cerr))
	}
	return err
}
