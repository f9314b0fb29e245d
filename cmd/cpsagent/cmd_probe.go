package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/cps"
	"github.com/cpsagent/cpsagent/internal/card/pcsc"
	"github.com/cpsagent/cpsagent/internal/card/probe"
	"github.com/cpsagent/cpsagent/internal/config"
	"github.com/cpsagent/cpsagent/internal/logging"
)

func init() {
	register(command{name: "probe", summary: "read-only check of the card in a reader; writes a report for the maintainers (docs/field-test.md)", run: probeCommand})
}

// probeTransport is the reader stack of `cpsagent probe` (tests put an
// in-memory reader here).
var probeTransport = func() (card.Transport, func()) {
	t := pcsc.New(pcsc.Options{})
	return t, func() { _ = t.Close() }
}

// loadAgentQuirks returns the card quirks the agent runs with: the shipped
// defaults, or the machine policy directory's quirks.json when it exists.
// An invalid file stops the agent: running with card facts the
// administrator did not mean is worse than not starting.
func loadAgentQuirks(log *zap.Logger) (cps.Quirks, error) {
	q, src, err := cps.LoadQuirks(config.QuirksFile())
	if err != nil {
		return cps.Quirks{}, fmt.Errorf("card quirks: %w (fix or remove the file)", err)
	}
	shipped, _ := cps.ShippedQuirks()
	if changed := cps.DiffQuirks(shipped, q); len(changed) > 0 {
		log.Warn("card quirks changed by the policy directory", logging.Name("file", src), logging.Name("changed", strings.Join(changed, ",")))
	}
	return q, nil
}

// probeCommand: cpsagent probe [--reader NAME] [--out FILE] [--unmasked]
// [--quirks FILE] [--quirks-out FILE].
func probeCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := config.NewFlagSet("probe", stderr)
	reader := fs.String("reader", "", "reader `NAME` (default: the only reader holding a card)")
	out := fs.String("out", "", "write the JSON report to `FILE` (default: cpsagent-probe-DATE.json in the current directory; - for standard output)")
	unmasked := fs.Bool("unmasked", false, "keep the card number, national id and names in the report (they are masked by default)")
	quirksPath := fs.String("quirks", "", "compare the card with this quirks `FILE` (default: "+config.QuirksFile()+" when it exists, else the built-in quirks)")
	quirksOut := fs.String("quirks-out", "", "also write the quirks file that fits this card to `FILE`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cpsagent probe [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Checks the card in a reader with read-only commands only (no PIN, no counter change, no")
		fmt.Fprintln(stderr, "signature, no write) and writes a JSON report for the cpsagent maintainers. See docs/field-test.md.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}

	// The announcement comes before anything touches a reader.
	fmt.Fprintln(stderr, probe.Statement)
	fmt.Fprintln(stderr)

	var (
		q   cps.Quirks
		src string
		err error
	)
	if *quirksPath != "" {
		q, err = cps.LoadQuirksFile(*quirksPath)
		src = *quirksPath
	} else {
		q, src, err = cps.LoadQuirks(config.QuirksFile())
	}
	if err != nil {
		return usageError{fmt.Errorf("quirks: %w", err)}
	}

	t, closeT := probeTransport()
	defer closeT()
	runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rep, err := probe.Run(runCtx, t, probe.Options{Reader: *reader, Unmasked: *unmasked, Quirks: q, QuirksSource: src,
		Tool: "cpsagent probe " + Version()})
	if err != nil {
		return fmt.Errorf("%w (readers are listed by 'cpsagent doctor'; name one with --reader)", err)
	}

	summary := stdout
	path := *out
	switch path {
	case "-":
		summary = stderr
		if err := rep.WriteJSON(stdout); err != nil {
			return err
		}
	default:
		if path == "" {
			path = "cpsagent-probe-" + rep.Time.Format("20060102-150405") + ".json"
		}
		var b strings.Builder
		if err := rep.WriteJSON(&b); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if *unmasked {
			mode = 0o600
		}
		if err := os.WriteFile(path, []byte(b.String()), mode); err != nil {
			return fmt.Errorf("writing the report: %w", err)
		}
	}
	rep.WriteSummary(summary)
	if *quirksOut != "" {
		if err := os.WriteFile(*quirksOut, append(append([]byte(nil), rep.Quirks.PolicyFile...), '\n'), 0o644); err != nil {
			return fmt.Errorf("writing the quirks file: %w", err)
		}
		fmt.Fprintf(summary, "Quirks file written to %s.\n", *quirksOut)
	}
	if path != "-" {
		masked := "masked: card number and national id hidden"
		if *unmasked {
			masked = "NOT masked: it contains the card number and the holder's identity"
		}
		fmt.Fprintf(summary, "\nReport written to %s (%s).\nRapport écrit dans %s : envoyez-le aux mainteneurs de cpsagent (docs/field-test.md).\n", path, masked, path)
	}
	return nil
}
