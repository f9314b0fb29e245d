package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/memreader"
	"github.com/cpsagent/cpsagent/internal/card/pcsc"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
	"github.com/cpsagent/cpsagent/internal/config"
	"github.com/cpsagent/cpsagent/internal/logging"
)

// VirtualReaderName is the in-process reader of --virtual-card.
const VirtualReaderName = "cpsagent virtual reader"

// openCards starts the card engine on PC/SC, or on the in-process virtual
// card with --virtual-card. stop cancels the engine and waits until it has
// released the card; it runs after the API has stopped every operation.
// The engine serves both the API (api.CardService) and the tray.
func openCards(ctx context.Context, cfg *config.Config, log *zap.Logger) (*card.Engine, func(), error) {
	var t card.Transport
	if cfg.VirtualCard != "" {
		mr, err := virtualTransport(cfg, log)
		if err != nil {
			return nil, nil, err
		}
		t = mr
	} else {
		t = pcsc.New(pcsc.Options{Logger: log.Named("pcsc")})
	}
	quirks, err := loadAgentQuirks(log)
	if err != nil {
		return nil, nil, err
	}
	eng := card.New(t, card.Options{Logger: log.Named("card"), Quirks: quirks})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := eng.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("card engine stopped", logging.Err(err))
		}
	}()
	stop := func() {
		cancel()
		<-done
		log.Info("card released")
	}
	return eng, stop, nil
}

// virtualTransport puts a fresh virtual CPS3 card of the configured
// identity into an in-process reader, and writes the test PKI chain that
// issued its certificates to <state dir>/virtual/chain.pem, for portals that
// verify signatures during a demo. The card lives in memory only: every
// start gives new keys, a fresh PIN counter and a new chain.
func virtualTransport(cfg *config.Config, log *zap.Logger) (*memreader.Transport, error) {
	vcfg, err := virtual.Identity(cfg.VirtualCard)
	if err != nil {
		return nil, usageError{err}
	}
	vc, err := virtual.NewCard(vcfg)
	if err != nil {
		return nil, err
	}
	mr := memreader.New(VirtualReaderName)
	if err := mr.Insert(VirtualReaderName, vc); err != nil {
		return nil, err
	}
	pki, err := virtual.IdentityPKI()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.StateDir, "virtual")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	chain := filepath.Join(dir, "chain.pem")
	if err := pki.WriteChainPEM(chain); err != nil {
		return nil, fmt.Errorf("virtual card chain: %w", err)
	}
	log.Warn("using the in-process VIRTUAL card (test identity, not a real CPS)",
		logging.Name("identity", cfg.VirtualCard), logging.Reader(VirtualReaderName), logging.Name("chain", chain))
	return mr, nil
}
