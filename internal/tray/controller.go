package tray

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/consent"
	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/ledger"
	"github.com/cpsagent/cpsagent/internal/pinmgmt"
)

// CardSource tells the tray about readers and cards. EngineSource adapts
// the card engine.
type CardSource interface {
	// CardState returns the current state (it may read the card's public
	// identity, never with a PIN).
	CardState(ctx context.Context) CardState
	// Watch calls changed whenever the state may have changed, until ctx
	// ends.
	Watch(ctx context.Context, changed func())
}

// SiteList is the consent manager as the tray uses it (*consent.Manager).
type SiteList interface {
	Sites() consent.Sites
	Revoke(origin string) error
}

// Activity is the ledger as the tray uses it (*ledger.Ledger).
type Activity interface {
	Recent(n int) ([]ledger.Entry, error)
	ExportCSV(w io.Writer) error
	ExportJSON(w io.Writer) error
}

// PINFlows runs the PIN-management flows (*pinmgmt.Flows).
type PINFlows interface {
	ChangePIN(ctx context.Context, reader string) pinmgmt.Result
	Unblock(ctx context.Context, reader string) pinmgmt.Result
}

// Config wires a Controller. Every dependency but Card may be nil; the
// matching items then do nothing.
type Config struct {
	Card     CardSource
	Sites    SiteList
	Activity Activity
	PIN      PINFlows
	// Doctor runs the diagnostics and returns the path of the report it
	// wrote (opened with Open).
	Doctor func(ctx context.Context) (reportPath string, err error)
	// Open shows a file or folder to the user. Default: OpenPath.
	Open func(path string) error
	// LogDir is opened by "open the log folder".
	LogDir string
	// ExportDir receives ledger exports (created 0700 when missing).
	ExportDir string
	// Quit stops the agent (cancels the daemon's context).
	Quit    func()
	Lang    i18n.Lang
	Version string
	// Refresh, when positive, also re-reads everything periodically. The
	// default (0) is event-driven only: card events, and Refresh calls
	// (the agent wires the site list's and the ledger's change hooks to
	// it), so an idle agent never wakes up.
	Refresh time.Duration
	Logger  *zap.Logger
	// Now stamps export file names (tests).
	Now func() time.Time
}

// Controller keeps the tray state and performs the menu actions. It is
// independent of any tray library.
type Controller struct {
	cfg Config
	log *zap.Logger

	mu      sync.Mutex
	state   State
	menu    Menu
	subs    map[chan Menu]struct{}
	poke    chan struct{}
	actions sync.WaitGroup
}

// NewController returns a Controller for cfg.
func NewController(cfg Config) *Controller {
	if cfg.Open == nil {
		cfg.Open = OpenPath
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	c := &Controller{
		cfg:  cfg,
		log:  log.Named("tray"),
		subs: map[chan Menu]struct{}{},
		poke: make(chan struct{}, 1),
	}
	c.state = State{Lang: cfg.Lang, Version: cfg.Version, Sites: consent.Sites{UserAdditions: true}}
	c.menu = Build(c.state)
	return c
}

// Menu returns the current menu.
func (c *Controller) Menu() Menu {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.menu
}

// State returns the current state.
func (c *Controller) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Updates returns a channel that receives the menu each time it changes
// (only the latest one is kept when the reader is slow), and a function that
// stops the updates.
func (c *Controller) Updates() (<-chan Menu, func()) {
	ch := make(chan Menu, 1)
	c.mu.Lock()
	c.subs[ch] = struct{}{}
	ch <- c.menu
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, ch)
		c.mu.Unlock()
	}
}

// Refresh asks the Run loop to re-read the state now.
func (c *Controller) Refresh() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// Run keeps the state up to date until ctx ends: on every card change and
// every Refresh call (and every Config.Refresh when set). It then waits for
// the running actions to end.
func (c *Controller) Run(ctx context.Context) error {
	if c.cfg.Card != nil {
		go c.cfg.Card.Watch(ctx, c.Refresh)
	}
	var tick <-chan time.Time
	if c.cfg.Refresh > 0 {
		t := time.NewTicker(c.cfg.Refresh)
		defer t.Stop()
		tick = t.C
	}
	for {
		c.refresh(ctx)
		select {
		case <-ctx.Done():
			c.actions.Wait()
			return nil
		case <-c.poke:
		case <-tick:
		}
	}
}

// idle is Run without a tray: nobody sees the menu, so nothing is read
// (no card access, no file, no timer); it waits for ctx and the running
// actions.
func (c *Controller) idle(ctx context.Context) error {
	<-ctx.Done()
	c.actions.Wait()
	return nil
}

func (c *Controller) refresh(ctx context.Context) {
	var cs CardState
	if c.cfg.Card != nil {
		cs = c.cfg.Card.CardState(ctx)
	}
	var sites consent.Sites
	if c.cfg.Sites != nil {
		sites = c.cfg.Sites.Sites()
	} else {
		sites.UserAdditions = true
	}
	var recent []ledger.Entry
	if c.cfg.Activity != nil {
		var err error
		if recent, err = c.cfg.Activity.Recent(MaxActivity); err != nil {
			c.log.Warn("reading the activity ledger", zap.Error(err))
		}
	}
	c.update(func(s *State) {
		s.Card, s.Sites, s.Recent = cs, sites, recent
	})
}

// update changes the state under the lock and publishes the menu if it
// changed.
func (c *Controller) update(f func(*State)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.state)
	m := Build(c.state)
	if reflect.DeepEqual(m, c.menu) {
		return
	}
	c.menu = m
	for ch := range c.subs {
		select { // keep only the latest menu
		case <-ch:
		default:
		}
		ch <- m
	}
}

func (c *Controller) notice(s string) { c.update(func(st *State) { st.Notice = s }) }

// Handle performs the action of the menu item id. Long actions (PIN flows,
// diagnostics) run in their own goroutine; Handle returns at once. Items
// that are disabled in the current menu do nothing.
func (c *Controller) Handle(ctx context.Context, id string) {
	m := c.Menu()
	if it, ok := m.Find(id); !ok || !it.Enabled || !it.Visible {
		c.log.Debug("ignored click on a disabled item", zap.String("item", id))
		return
	}
	p := i18n.For(c.cfg.Lang)
	switch {
	case id == IDQuit:
		if c.cfg.Quit != nil {
			c.cfg.Quit()
		}
	case id == IDChangePIN || id == IDUnblockPIN:
		c.startFlow(ctx, id)
	case id == IDDoctor:
		c.goAction(func() {
			if c.cfg.Doctor == nil {
				return
			}
			c.notice(p.T(i18n.TrayDoctorRunning))
			path, err := c.cfg.Doctor(ctx)
			if err != nil {
				c.notice(p.T(i18n.TrayDoctorFailed, err))
				return
			}
			c.notice("")
			c.open(path)
		})
	case id == IDOpenLogs:
		c.goAction(func() { c.open(c.cfg.LogDir) })
	case id == IDAbout:
		c.notice(p.T(i18n.TrayAboutText, c.cfg.Version))
	case id == IDExportCSV || id == IDExportJSON:
		c.goAction(func() { c.export(id == IDExportJSON) })
	case strings.HasPrefix(id, PrefixRevoke):
		origin := strings.TrimPrefix(id, PrefixRevoke)
		if c.cfg.Sites == nil {
			return
		}
		if err := c.cfg.Sites.Revoke(origin); err != nil {
			c.log.Warn("revoking a site", zap.String("origin", origin), zap.Error(err))
			return
		}
		c.notice(p.T(i18n.TraySiteRevoked, origin))
		c.Refresh()
	}
}

func (c *Controller) goAction(f func()) {
	c.actions.Add(1)
	go func() {
		defer c.actions.Done()
		f()
	}()
}

// startFlow runs one PIN flow at a time, on the primary reader.
func (c *Controller) startFlow(ctx context.Context, id string) {
	if c.cfg.PIN == nil {
		return
	}
	started := false
	var reader string
	c.update(func(s *State) {
		if s.Flow != "" {
			return
		}
		r, _ := s.Card.Primary()
		reader = r.Name
		s.Flow, s.Notice, started = id, "", true
	})
	if !started {
		return
	}
	c.goAction(func() {
		var res pinmgmt.Result
		if id == IDChangePIN {
			res = c.cfg.PIN.ChangePIN(ctx, reader)
		} else {
			res = c.cfg.PIN.Unblock(ctx, reader)
		}
		c.update(func(s *State) { s.Flow, s.Notice = "", res.Message })
		c.Refresh()
	})
}

func (c *Controller) open(path string) {
	if path == "" {
		return
	}
	if err := c.cfg.Open(path); err != nil {
		c.notice(i18n.T(c.cfg.Lang, i18n.TrayOpenFailed, path, err))
	}
}

// export writes the whole ledger to a new file in ExportDir and opens the
// folder.
func (c *Controller) export(asJSON bool) {
	p := i18n.For(c.cfg.Lang)
	if c.cfg.Activity == nil || c.cfg.ExportDir == "" {
		return
	}
	ext, write := "csv", c.cfg.Activity.ExportCSV
	if asJSON {
		ext, write = "json", c.cfg.Activity.ExportJSON
	}
	path, err := func() (string, error) {
		if err := os.MkdirAll(c.cfg.ExportDir, 0o700); err != nil {
			return "", err
		}
		name := fmt.Sprintf("cpsagent-activity-%s.%s", c.cfg.Now().Format("20060102-150405"), ext)
		path := filepath.Join(c.cfg.ExportDir, name)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", err
		}
		if err := write(f); err != nil {
			f.Close()
			os.Remove(path)
			return "", err
		}
		return path, f.Close()
	}()
	if err != nil {
		c.notice(p.T(i18n.TrayExportFailed, err))
		return
	}
	c.notice(p.T(i18n.TrayExported, path))
	c.open(c.cfg.ExportDir)
}
