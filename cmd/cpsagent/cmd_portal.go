package main

import (
	"context"
	"errors"
	"io"

	"github.com/cpsagent/cpsagent/internal/demoportal"
	"github.com/cpsagent/cpsagent/internal/verifycmd"
)

// The portal-side commands (web/, internal/demoportal, internal/verifycmd).
func init() {
	register(command{name: "demo-portal", summary: "serve the demo portal (login and signature with the card) on https://127.0.0.1:47190",
		run: usageErrors(demoportal.RunCommand, demoportal.ErrUsage)})
	register(command{name: "verify", summary: "verify an authentication token or a .p7s signature (exit 1: refused)",
		run: usageErrors(verifycmd.RunCommand, verifycmd.ErrUsage)})
}

// usageErrors maps a package's usage sentinel to usageError (exit status 2).
func usageErrors(run func(context.Context, []string, io.Writer, io.Writer) error, sentinel error) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		err := run(ctx, args, stdout, stderr)
		if err != nil && errors.Is(err, sentinel) {
			return usageError{err}
		}
		return err
	}
}
