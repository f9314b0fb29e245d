package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/cpsagent/cpsagent/internal/i18n"
)

// ErrProblems is returned by Main when a check failed (exit status 1).
var ErrProblems = errors.New("doctor: problems found")

// Main is `cpsagent doctor [--lang fr|en] [--json] [--bundle FILE]`: it runs
// the checks, prints the report (in the OS language unless --lang) and
// optionally writes a redacted support bundle. It returns ErrProblems when a
// check failed, flag.ErrHelp for -h, and a usage error (wrapping
// ErrUsage) for bad flags.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, d Deps) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	lang := fs.String("lang", "", "report language: fr or en (default: the session's language)")
	asJSON := fs.Bool("json", false, "print the report as JSON (both languages)")
	bundle := fs.String("bundle", "", "also write a redacted support bundle (zip) to this `file`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cpsagent doctor [--lang fr|en] [--json] [--bundle FILE]")
		fmt.Fprintln(stderr, "Checks the smart-card service, readers, cards, the agent's port and certificate, configuration and policy.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	l := i18n.Detect()
	switch *lang {
	case "":
	case "fr", "en":
		l = i18n.Lang(*lang)
	default:
		return fmt.Errorf("%w: --lang must be fr or en", ErrUsage)
	}
	r := Run(ctx, d)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r.JSON()); err != nil {
			return err
		}
	} else if err := r.WriteText(stdout, l); err != nil {
		return err
	}
	if *bundle != "" {
		if err := WriteBundle(*bundle, r, d); err != nil {
			return err
		}
		fmt.Fprintln(stderr, i18n.T(l, i18n.DoctorBundleWritten, *bundle))
	}
	if r.Worst() == Fail {
		return ErrProblems
	}
	return nil
}

// ErrUsage marks a command-line mistake.
var ErrUsage = errors.New("doctor: usage")
