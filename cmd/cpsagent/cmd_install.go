package main

import (
	"context"
	"errors"
	"io"

	"github.com/cpsagent/cpsagent/internal/config"
	"github.com/cpsagent/cpsagent/internal/install"
	_ "github.com/cpsagent/cpsagent/internal/winres" // Windows icon and version resource (a .syso made by packaging/build.sh)
)

func init() {
	register(command{name: "install", summary: "trust the local CA in this user's browsers and start the agent with the session", run: installCmd(install.RunInstall)})
	register(command{name: "uninstall", summary: "remove what install added (keeps the ledger unless --purge)", run: installCmd(install.RunUninstall)})
}

// installCmd maps the install package's usage errors to exit status 2.
func installCmd(f func(context.Context, []string, io.Writer, io.Writer) error) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		err := f(ctx, args, stdout, stderr)
		if errors.Is(err, install.ErrUsage) || errors.Is(err, config.ErrUsage) || errors.Is(err, config.ErrInvalid) {
			return usageError{err}
		}
		return err
	}
}
