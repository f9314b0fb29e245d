//go:build notray

package tray

import (
	"context"

	"go.uber.org/zap"
)

// trayBuilt is false in binaries built with -tags notray: no GTK, no cgo
// needed for the tray; Run always runs headless.
const trayBuilt = false

func runTray(ctx context.Context, c *Controller, _ Options, _ *zap.Logger) error {
	return c.Run(ctx)
}
