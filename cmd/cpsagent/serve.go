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
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/api"
	"github.com/cpsagent/cpsagent/internal/config"
	"github.com/cpsagent/cpsagent/internal/localca"
	"github.com/cpsagent/cpsagent/internal/logging"
	"github.com/cpsagent/cpsagent/internal/pinentry"
)

// debugMetricsEnv turns on GET /v1/debug/metrics (leak tests only).
const debugMetricsEnv = "CPSAGENT_DEBUG_METRICS"

func init() {
	register(command{name: "serve", summary: "run the agent: HTTPS API on 127.0.0.1 and [::1]", run: serve})
}

// serve runs the agent until SIGINT/SIGTERM (ctx).
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

	ca, changes, err := localca.Ensure(filepath.Join(cfg.StateDir, "tls"))
	if err != nil {
		return fmt.Errorf("local CA: %w", err)
	}
	if changes.CACreated || changes.CARenewed {
		log.Warn("new local CA: add it to the trust stores", logging.Name("caFile", ca.CACertFile()), logging.Name("fingerprint", ca.Fingerprint()))
	}

	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	cards, stopCards, err := openCards(runCtx, cfg, log.Logger)
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
	rl := cfg.RateLimit
	if rl == nil {
		rl = &config.RateLimit{}
	}
	srv, err := api.New(api.Options{
		AllowedOrigins: cfg.AllowOrigins,
		Version:        Version(),
		PINTimeout:     time.Duration(cfg.PINTimeout),
		RateBurst:      rl.Burst,
		RatePerMinute:  rl.PerMinute,
		Logger:         log.Logger,
		DebugMetrics:   os.Getenv(debugMetricsEnv) == "1",
	}, cards, prompter)
	if err != nil {
		return usageError{err}
	}
	if len(cfg.AllowOrigins) == 0 {
		log.Warn("no allowed origin: every web request will be refused (use --allow-origin)")
	}
	for _, o := range srv.AllowedOrigins() {
		log.Info("allowed origin", logging.Origin(o))
	}

	go renewLoop(runCtx, ca, log.Logger)

	for _, ln := range lns {
		fmt.Fprintf(stdout, "cpsagent listening on https://%s\n", ln.Addr())
	}
	err = srv.Run(ctx, lns, ca.TLSConfig())
	log.Info("stopped")
	return err
}

// listen binds every configured address. With the default pair, an
// address family that the host does not have (no IPv6 loopback) is
// skipped with a warning; any other failure, and any failure on an address
// the user asked for, stops the agent.
func listen(ctx context.Context, cfg *config.Config, log *zap.Logger) ([]net.Listener, error) {
	defaults := config.Defaults().Listen
	isDefault := len(cfg.Listen) == len(defaults)
	for i := range defaults {
		isDefault = isDefault && cfg.Listen[i] == defaults[i]
	}
	var lns []net.Listener
	for _, a := range cfg.Listen {
		ap, err := config.ParseListen(a)
		if err != nil {
			return nil, usageError{err}
		}
		ln, err := api.Listen(ctx, ap)
		if err != nil {
			if isDefault && ap.Addr().Is6() && (errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT)) {
				log.Warn("no IPv6 loopback: listening on 127.0.0.1 only", logging.Err(err))
				continue
			}
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

// renewLoop renews the TLS server certificate before it expires.
func renewLoop(ctx context.Context, ca *localca.Authority, log *zap.Logger) {
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
		if ch.CACreated || ch.CARenewed {
			log.Warn("new local CA: add it to the trust stores", logging.Name("caFile", ca.CACertFile()))
		}
	}
}
