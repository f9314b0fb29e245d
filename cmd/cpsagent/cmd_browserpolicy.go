package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/cpsagent/cpsagent/internal/browserpolicy"
	"github.com/cpsagent/cpsagent/internal/config"
	"github.com/cpsagent/cpsagent/internal/consent"
)

func init() {
	register(command{name: "browser-policies", summary: "print the browser policies that spare the allowed portals the Local Network Access prompt (--write: install them, Linux)", run: runBrowserPolicies})
}

// browserPolicySources are where the default origins come from (tests
// replace them).
var browserPolicySources = func() (consent.Policy, []string, error) {
	p, err := consent.LoadPolicy(consent.DefaultPolicyPath())
	if err != nil {
		return p, nil, err
	}
	cfg, err := config.Load(nil, io.Discard)
	if err != nil {
		return p, nil, fmt.Errorf("configuration: %w", err)
	}
	return p, cfg.AllowOrigins, nil
}

// runBrowserPolicies is `cpsagent browser-policies [--format F]
// [--allow-origin O ...] [--write [--root DIR]]`.
func runBrowserPolicies(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("browser-policies", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "chrome", "output `FORMAT`: chrome (Chrome/Chromium/Edge managed JSON), firefox (policies.json), reg (Windows), mobileconfig (macOS)")
	var origins originList
	fs.Var(&origins, "allow-origin", "portal `ORIGIN` (https://host[:port]) to pre-allow (repeatable; default: the machine policy's and the configuration's allowOrigins)")
	write := fs.Bool("write", false, "Linux: write the Chrome/Chromium/Edge files and merge Firefox's policies.json instead of printing (run as root)")
	root := fs.String("root", "/", "with --write: file-system `DIR` the policy paths are under")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cpsagent browser-policies [--format chrome|firefox|reg|mobileconfig] [--allow-origin ORIGIN ...] [--write [--root DIR]]")
		fmt.Fprintln(stderr, "Prints the browser policies that let the allowed portals reach the agent without the Local Network Access")
		fmt.Fprintln(stderr, "prompt (docs/admin.md §4); --write installs them on Linux: cpsagent.json in each Chrome/Chromium/Edge managed")
		fmt.Fprintln(stderr, "policy directory, LocalNetworkAccess merged into /etc/firefox/policies/policies.json (a changed file is kept as .bak).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	case *write && given["format"]:
		return usageError{errors.New("--format prints a policy; --write installs the Linux ones: use one or the other")}
	case given["root"] && !*write:
		return usageError{errors.New("--root only applies to --write")}
	case *write && runtime.GOOS != "linux":
		return usageError{errors.New("--write is for Linux; on Windows import --format reg (or use the ADMX), on macOS install --format mobileconfig")}
	case *root == "":
		return usageError{errors.New("--root: empty directory")}
	}
	var render func([]string) ([]byte, error)
	switch *format {
	case "chrome":
		render = browserpolicy.ChromeJSON
	case "firefox":
		render = browserpolicy.FirefoxJSON
	case "reg":
		render = browserpolicy.Reg
	case "mobileconfig":
		render = browserpolicy.MobileConfig
	default:
		return usageError{fmt.Errorf("--format %q: must be chrome, firefox, reg or mobileconfig", *format)}
	}

	var list []string
	if given["allow-origin"] {
		var err error
		if list, err = browserpolicy.Normalize(origins); err != nil {
			return usageError{err}
		}
	} else {
		p, cfgOrigins, err := browserPolicySources()
		if err != nil {
			return err
		}
		if list, err = browserpolicy.Enforced(p, cfgOrigins); err != nil {
			return fmt.Errorf("%w (fix it, or give the origins with --allow-origin)", err)
		}
	}
	if len(list) == 0 {
		return usageError{errors.New("no allowed origin to pre-allow: none in the machine policy nor the configuration (allowOrigins); give them with --allow-origin")}
	}

	if !*write {
		out, err := render(list)
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}
	changes, werr := browserpolicy.Write(*root, list)
	for _, c := range changes {
		line := fmt.Sprintf("%-15s %s: %s", c.Browser.Name, c.Path, c.Action)
		if c.Backup != "" {
			line += " (previous file kept as " + c.Backup + ")"
		}
		fmt.Fprintln(stdout, line)
	}
	if werr != nil {
		return werr
	}
	rep, _ := browserpolicy.Check(*root, list)
	if rep.Checked() == 0 {
		fmt.Fprintln(stdout, "No Chrome, Chromium, Edge or Firefox installation found: nothing written.")
		return nil
	}
	if rep.Missing() {
		// Another file of a managed directory, later in name order, sets
		// the same policy: Chrome takes that one.
		for _, f := range rep.Facts() {
			fmt.Fprintln(stderr, "  "+f)
		}
		return errors.New("some origins are still not pre-allowed: another policy file overrides cpsagent.json (see above)")
	}
	fmt.Fprintf(stdout, "%d origin(s) pre-allowed: %s. Restart the browsers (or open chrome://policy and reload).\n", len(list), strings.Join(list, ", "))
	return nil
}

// originList is a repeatable string flag.
type originList []string

func (o *originList) String() string     { return strings.Join(*o, ",") }
func (o *originList) Set(v string) error { *o = append(*o, v); return nil }
