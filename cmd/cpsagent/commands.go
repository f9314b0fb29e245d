package main

import (
	"context"
	"fmt"
	"io"
	"sort"
)

// A command is one subcommand of cpsagent. run gets the arguments after
// the command name; it returns usageError for command-line mistakes and
// flag.ErrHelp after printing its help.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is filled by register, from an init function in each
// subcommand's own file (serve.go, vcard.go, version.go; later verify.go,
// demoportal.go, doctor.go, install.go).
var commands = map[string]command{}

// defaultCommand runs when the first argument is a flag or absent.
const defaultCommand = "serve"

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("cpsagent: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

func init() {
	register(command{name: "help", summary: "list the commands", run: func(_ context.Context, _ []string, stdout, _ io.Writer) error {
		usage(stdout)
		return nil
	}})
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: cpsagent [command] [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		def := ""
		if n == defaultCommand {
			def = " (default)"
		}
		fmt.Fprintf(w, "  %-16s %s%s\n", n, commands[n].summary, def)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'cpsagent COMMAND -h' for the flags of a command.")
}
