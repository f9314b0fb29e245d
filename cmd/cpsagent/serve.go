package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/api"
	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/config"
	"github.com/cpsagent/cpsagent/internal/consent"
	"github.com/cpsagent/cpsagent/internal/install"
	"github.com/cpsagent/cpsagent/internal/localca"
	"github.com/cpsagent/cpsagent/internal/logging"
	"github.com/cpsagent/cpsagent/internal/peercred"
	"github.com/cpsagent/cpsagent/internal/pinentry"
)

// debugMetricsEnv turns on GET /v1/debug/metrics (leak tests only).
const debugMetricsEnv = "CPSAGENT_DEBUG_METRICS"

func init() {
	register(command{name: "serve", summary: "run the agent: HTTPS API on 127.0.0.1 and [::1]", run: serve})
}

// serve runs the agent until SIGINT/SIGTERM (ctx) or the tray's Quit. It
// must run on the main goroutine: the tray (systray) takes it when a
// display is available.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		if errors.Is(err, config.ErrUsage) || errors.Is(err, config.ErrInvalid) {
			return usageError{err}
		}
		return err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	// One agent per user (per state directory), taken before the log file
	// is opened: a second start says where the first one runs and exits
	// with status 3 (*install.AlreadyRunningError, see run).
	releaseInstance, err := install.AcquireInstance(cfg.StateDir)
	if err != nil {
		return err
	}
	defer releaseInstance()
	log, err := logging.New(logging.Options{Level: cfg.LogLevel, Dir: filepath.Join(cfg.StateDir, "logs"), Console: stderr})
	if err != nil {
		return err
	}
	defer log.Close()
	log.Info("starting", logging.Name("version", Version()), logging.Name("stateDir", cfg.StateDir),
		logging.Name("config", cfg.ConfigFile), logging.Name("log", log.Path))

	// Bind first: a port already taken must fail loudly before anything else.
	lns, err := listen(ctx, cfg, log.Logger)
	if err != nil {
		return err
	}
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	// Serve this OS user only: on a shared host every session shares the
	// loopback interface (docs/admin.md §5).
	served, err := peercred.Wrap(lns,
		peercred.OnRefuse(func(r peercred.Refusal) {
			reason := "another OS user"
			if r.Err != nil {
				reason = "owner not found"
			}
			log.Info("connection refused: not from this OS user", logging.Name("reason", reason))
		}),
		peercred.OnUnsupported(func(err error) {
			log.Warn("connections from other OS users cannot be told apart on this system: every local connection is served", logging.Err(err))
		}))
	if err != nil {
		return fmt.Errorf("peer check: %w", err)
	}
	lns = served

	ca, changes, err := localca.Ensure(filepath.Join(cfg.StateDir, "tls"))
	if err != nil {
		return fmt.Errorf("local CA: %w", err)
	}
	if changes.CACreated || changes.CARenewed {
		log.Warn("new local CA", logging.Name("caFile", ca.CACertFile()), logging.Name("fingerprint", ca.Fingerprint()))
	}
	// Published once the CA exists: whoever reads instance.json (a second
	// start, the doctor, tests) finds tls/ca.pem beside it.
	if err := publishInstance(cfg.StateDir, lns); err != nil {
		log.Warn("instance.json not written (cpsagent doctor will not find this agent)", logging.Err(err))
	}

	// The tray's Quit ends serve like a signal.
	ctx, quit := context.WithCancel(ctx)
	defer quit()
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	// The trust stores follow the CA (renewal, deferred install); in the
	// background: Windows and macOS may ask the user to confirm.
	trustDone := make(chan struct{})
	go func() {
		defer close(trustDone)
		refreshTrust(runCtx, cfg.StateDir, ca, changes, log.Logger)
	}()
	defer func() { cancelRun(); <-trustDone }()

	// Refuse a bad allow-list before anything opens the ledger.
	for _, o := range cfg.AllowOrigins {
		if _, err := api.ParseAllowedOrigin(o); err != nil {
			return usageError{fmt.Errorf("api: %w", err)}
		}
	}
	eng, stopCards, err := openCards(runCtx, cfg, log.Logger)
	if err != nil {
		return err
	}
	// Released last: after the API stopped every operation in flight.
	defer stopCards()

	prompter := pinentry.New(pinentry.Config{
		Program:        cfg.Pinentry,
		DefaultTimeout: time.Duration(cfg.PINTimeout),
		Logger:         log.Logger,
	})
	// Site consent (machine policy, allow-list, the user's answers, the
	// consent dialog), the activity ledger, the PIN flows and the tray.
	d, err := newDesktop(cfg, desktopCards{eng}, prompter, log.Logger, quit)
	if err != nil {
		return err
	}
	rl := cfg.RateLimit
	if rl == nil {
		rl = &config.RateLimit{}
	}
	srv, err := api.New(api.Options{
		AllowedOrigins: cfg.AllowOrigins,
		Consent:        siteConsent{d.Consent},
		Ledger:         d.Ledger,
		Version:        Version(),
		PINTimeout:     time.Duration(cfg.PINTimeout),
		RateBurst:      rl.Burst,
		RatePerMinute:  rl.PerMinute,
		Logger:         log.Logger,
		DebugMetrics:   os.Getenv(debugMetricsEnv) == "1",
	}, eng, prompter)
	if err != nil {
		_ = d.Ledger.Close()
		return usageError{err}
	}
	sites := d.Consent.Sites()
	switch {
	case !sites.UserAdditions && len(sites.Policy) == 0:
		log.Warn("the machine policy allows no origin: every web request will be refused", logging.Name("policy", sites.PolicyPath))
	case len(sites.Policy)+len(sites.Config)+len(sites.User) == 0:
		log.Warn("no allowed origin yet: each site will ask for consent (or use --allow-origin, the machine policy)")
	}
	for _, o := range sites.Policy {
		log.Info("allowed origin", logging.Origin(o), logging.Name("source", string(consent.SourcePolicy)))
	}
	for _, o := range sites.Config {
		log.Info("allowed origin", logging.Origin(o), logging.Name("source", string(consent.SourceConfig)))
	}

	go renewLoop(runCtx, cfg.StateDir, ca, log.Logger)

	for _, ln := range lns {
		fmt.Fprintf(stdout, "cpsagent listening on https://%s\n", ln.Addr())
	}
	// The tray (or the headless mode) on this goroutine, the API beside it.
	err = d.runDesktop(ctx, cfg.Headless, func(ctx context.Context) error {
		return srv.Run(ctx, lns, ca.TLSConfig())
	})
	log.Info("stopped")
	return err
}

// siteConsent is the consent manager as the API's gate sees it: Decide
// (which may open the dialog) and a lookup that never asks.
type siteConsent struct{ *consent.Manager }

// Allowed reports whether origin may use the agent now, without a dialog.
func (c siteConsent) Allowed(origin string) bool {
	s := c.Lookup(origin)
	return s != consent.SourceNone && s != consent.SourceDenied
}

// errIdentityPending: the engine has not read the identity of the card
// just inserted yet.
var errIdentityPending = errors.New("the card's identity is being read")

// desktopCards is the engine as the tray reads it. A card just inserted is
// left to the engine's own identity read, which announces
// identity-available to the pages and gives up when someone else holds
// the reader: the tray reads the card (holder, PIN counters) only once the
// engine knows its serial number, and retries at its next refresh (the
// identity-available event triggers one).
type desktopCards struct{ *card.Engine }

func (d desktopCards) identityKnown(reader string) bool {
	for _, r := range d.Status().Readers {
		if r.Name == reader {
			return r.Card != nil && r.Card.Serial != ""
		}
	}
	return false
}

func (d desktopCards) Card(ctx context.Context, reader string) (*card.CardData, error) {
	if !d.identityKnown(reader) {
		return nil, errIdentityPending
	}
	return d.Engine.Card(ctx, reader)
}

func (d desktopCards) PINStatus(ctx context.Context, reader string) (card.PINStatus, error) {
	if !d.identityKnown(reader) {
		return card.PINStatus{}, errIdentityPending
	}
	return d.Engine.PINStatus(ctx, reader)
}

// publishInstance writes instance.json: where this agent listens, for a
// second start and for "cpsagent doctor".
func publishInstance(stateDir string, lns []net.Listener) error {
	info := install.InstanceInfo{Version: Version()}
	for _, ln := range lns {
		info.Addrs = append(info.Addrs, ln.Addr().String())
		if tcp, ok := ln.Addr().(*net.TCPAddr); ok && info.Port == 0 {
			info.Port = tcp.Port
		}
	}
	if exe, err := os.Executable(); err == nil {
		info.Executable = exe
	}
	return install.PublishInstance(stateDir, info)
}

// listen binds the listeners. With the default addresses, it takes the
// first port of install.PortFirst…PortLast (47180–47199) where both
// 127.0.0.1 and ::1 are free (127.0.0.1 alone on a host without IPv6
// loopback): another user's agent on a shared host, or a squatter, moves
// this one to the next port. Addresses given with --listen are bound as
// given: any failure stops the agent.
func listen(ctx context.Context, cfg *config.Config, log *zap.Logger) ([]net.Listener, error) {
	defaults := config.Defaults().Listen
	isDefault := len(cfg.Listen) == len(defaults)
	for i := range defaults {
		isDefault = isDefault && cfg.Listen[i] == defaults[i]
	}
	if isDefault {
		lns, port, err := install.ListenLoopback(ctx, api.Listen, install.PortFirst, install.PortLast)
		if err != nil {
			return nil, err
		}
		if len(lns) == 1 {
			log.Warn("no IPv6 loopback: listening on 127.0.0.1 only")
		}
		if port != install.PortFirst {
			log.Info("port 47180 is taken (another user's agent or another program): using the next free port", logging.Name("port", strconv.Itoa(port)))
		}
		return lns, nil
	}
	var lns []net.Listener
	for _, a := range cfg.Listen {
		ap, err := config.ParseListen(a)
		if err != nil {
			return nil, usageError{err}
		}
		ln, err := api.Listen(ctx, ap)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	if len(lns) == 0 {
		return nil, errors.New("no address to listen on")
	}
	return lns, nil
}

// renewLoop renews the TLS server certificate before it expires, and
// refreshes the trust stores when that renewed the CA.
func renewLoop(ctx context.Context, stateDir string, ca *localca.Authority, log *zap.Logger) {
	for {
		wait := time.Until(ca.NextRenewal())
		if wait < time.Minute {
			wait = time.Minute
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ch, err := ca.Renew(time.Now())
		if err != nil {
			log.Error("certificate renewal failed", logging.Err(err))
			continue
		}
		if ch.TrustStoreUpdateNeeded() {
			log.Warn("new local CA", logging.Name("caFile", ca.CACertFile()), logging.Name("fingerprint", ca.Fingerprint()))
			refreshTrust(ctx, stateDir, ca, ch, log)
		}
	}
}
