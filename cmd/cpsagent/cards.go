package main

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/api"
	"github.com/cpsagent/cpsagent/internal/config"
)

// openCards starts the card engine on PC/SC, or on the in-process virtual
// card with --virtual-card. stop cancels the engine and waits until it
// released the card.
// TEMPORARY: wired once internal/card's engine lands.
func openCards(ctx context.Context, cfg *config.Config, log *zap.Logger) (api.CardService, func(), error) {
	return nil, func() {}, errors.New("card engine not available in this build")
}
