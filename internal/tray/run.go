package tray

import (
	"context"
	"os"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/i18n"
)

// testOnlyApplied, when set by a test, is called by the systray glue after
// it copied a menu into the native items.
var testOnlyApplied func(Menu)

// Options of Run.
type Options struct {
	// Headless runs without a tray even when a display is available
	// (--headless).
	Headless bool
	// Getenv reads the environment (tests); nil: os.Getenv.
	Getenv func(string) string
	// OnReady is called once the tray is shown, or once the headless mode is
	// chosen (with tray false).
	OnReady func(tray bool)
	Logger  *zap.Logger
}

// Run shows the tray icon and menu of c until ctx ends (the agent stops, or
// the user chose Quit, which calls Config.Quit), then returns. It also runs
// c's refresh loop, only when a tray shows the menu: headless, the
// controller reads nothing and the agent stays asleep between requests.
//
// Run must be called from the main goroutine (systray takes the main OS
// thread). With no display, with --headless, or in a binary built with the
// notray tag, it runs headless: no tray, same agent, and it still returns
// when ctx ends. It never exits the process itself.
func Run(ctx context.Context, c *Controller, opts Options) error {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	reason := ""
	switch {
	case !trayBuilt:
		reason = i18n.T(c.cfg.Lang, i18n.TrayNoTrayBuild)
	case opts.Headless:
		reason = i18n.T(c.cfg.Lang, i18n.TrayHeadlessFlag)
	default:
		if ok, why := DisplayAvailable(getenv); !ok {
			reason = i18n.T(c.cfg.Lang, i18n.TrayNoDisplay)
			log.Debug("no display", zap.String("detail", why))
		}
	}
	if reason != "" {
		log.Info(i18n.T(i18n.EN, i18n.TrayHeadless, reason))
		if opts.OnReady != nil {
			opts.OnReady(false)
		}
		return c.idle(ctx)
	}
	return runTray(ctx, c, opts, log)
}
