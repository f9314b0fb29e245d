// Command cpsagent is the desktop agent that lets web portals use a French
// health-professional smart card (CPS) through a local HTTPS API.
//
//	cpsagent [serve] [flags]   run the agent (the default command)
//	cpsagent vcard [flags]     serve the virtual CPS card to pcscd through vpcd
//	cpsagent version           print the version
//	cpsagent help              list the commands
//
// Each subcommand lives in its own file and registers itself in the table
// of commands.go, so adding one never touches another.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cpsagent/cpsagent/internal/install"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError marks a command-line mistake (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// run dispatches to a subcommand and turns its error into an exit status.
// The context is cancelled by SIGINT or SIGTERM.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := defaultCommand
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "cpsagent: unknown command %q\n\n", name)
		usage(stderr)
		return exitUsage
	}
	err := cmd.run(ctx, args, stdout, stderr)
	var ue usageError
	var running *install.AlreadyRunningError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "cpsagent %s: %v\n", name, err)
		return exitUsage
	case errors.As(err, &running):
		// Another agent of this user runs: status 3 (the systemd unit's
		// RestartPreventExitStatus), and where it is.
		fmt.Fprintf(stderr, "cpsagent %s: %v\n", name, err)
		return running.ExitCode()
	default:
		fmt.Fprintf(stderr, "cpsagent %s: %v\n", name, err)
		return exitError
	}
}
