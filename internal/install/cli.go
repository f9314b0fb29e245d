package install

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cpsagent/cpsagent/internal/config"
	"github.com/cpsagent/cpsagent/internal/localca"
)

// ErrUsage wraps command-line mistakes of RunInstall and RunUninstall
// (exit status 2).
var ErrUsage = errors.New("usage")

// TLSDir is the localca directory inside the state directory (as serve
// uses it).
const TLSDir = "tls"

// cliFlags is the flag set of install or uninstall with the flags both
// share: --quiet, --config and --state-dir.
type cliFlags struct {
	set               *flag.FlagSet
	stderr            io.Writer
	quiet             bool
	cfgFile, stateDir string
}

// newCLIFlags returns the flag set of "cpsagent name"; about is the help
// text printed between the usage line and the flags.
func newCLIFlags(name, about string, stderr io.Writer) *cliFlags {
	f := &cliFlags{set: flag.NewFlagSet(name, flag.ContinueOnError), stderr: stderr}
	f.set.SetOutput(stderr)
	f.set.BoolVar(&f.quiet, "quiet", false, "print nothing but errors")
	f.set.StringVar(&f.cfgFile, "config", "", "config `FILE` (to find a non-default state directory)")
	f.set.StringVar(&f.stateDir, "state-dir", "", "state `DIR` (default: as the agent)")
	f.set.Usage = func() {
		fmt.Fprintf(stderr, "usage: cpsagent %s [flags]\n\n%s\n\n", name, about)
		f.set.PrintDefaults()
	}
	return f
}

// parse parses args (flags only, ErrUsage for a mistake) and returns the
// state directory the agent uses and where to report: stdout, or nowhere
// with --quiet.
func (f *cliFlags) parse(args []string, stdout io.Writer) (stateDir string, out io.Writer, err error) {
	if err := f.set.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", nil, err
		}
		return "", nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if f.set.NArg() > 0 {
		return "", nil, fmt.Errorf("%w: unexpected argument %q", ErrUsage, f.set.Arg(0))
	}
	dir, err := resolveStateDir(f.cfgFile, f.stateDir, f.stderr)
	if err != nil {
		return "", nil, err
	}
	if f.quiet {
		return dir, io.Discard, nil
	}
	return dir, stdout, nil
}

// RunInstall is "cpsagent install": flags, then Install.
func RunInstall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newCLIFlags("install",
		"Trusts the agent's local CA in this user's browsers (Chromium and Firefox NSS\n"+
			"databases on Linux, the user's root store on Windows, the login keychain on\n"+
			"macOS) and starts the agent with the session. Run it as the user, not as\n"+
			"root. Running it again is safe: it only adds what is missing.", stderr)
	system := f.set.Bool("system", false, "also add the CA to the machine-wide store (asks for administrator rights)")
	trustOnly := f.set.Bool("trust-only", false, "only the trust stores, no autostart (the agent's unit runs this at each start)")
	dir, out, err := f.parse(args, stdout)
	if err != nil {
		return err
	}
	ca, err := loadCA(dir)
	if err != nil {
		return err
	}
	rep, err := Install(ctx, Options{StateDir: dir, CA: ca, System: *system, TrustOnly: *trustOnly, Out: out})
	if err == nil && !f.quiet {
		fmt.Fprintf(stdout, "cpsagent install: done (%d added, %d already there, %d skipped); CA fingerprint SHA-256 %s\n",
			len(rep.Added), len(rep.Kept), len(rep.Skipped), Fingerprint(ca))
		fmt.Fprintln(stdout, "Restart the browsers that were open so that they read the new certificate.")
	}
	return err
}

// RunUninstall is "cpsagent uninstall": flags, then Uninstall.
func RunUninstall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newCLIFlags("uninstall",
		"Removes exactly what \"cpsagent install\" added for this user (the CA from\n"+
			"every store, the autostart entries) and stops a package-wide autostart for\n"+
			"this user. The ledger and logs stay unless --purge.", stderr)
	purge := f.set.Bool("purge", false, "also delete the state directory: local CA, ledger of signatures, logs")
	noOptOut := f.set.Bool("no-opt-out", false, "do not stop a package-wide autostart for this user (used by the packages' removal scripts)")
	dir, out, err := f.parse(args, stdout)
	if err != nil {
		return err
	}
	if info, err := RunningInstance(dir); err == nil && info != nil {
		fmt.Fprintf(out, "note: the agent still runs (pid %d); it stops at the end of the session, or quit it from its tray menu\n", info.PID)
	}
	rep, err := Uninstall(ctx, Options{StateDir: dir, Purge: *purge, NoOptOut: *noOptOut, Out: out})
	if err == nil && !f.quiet {
		fmt.Fprintf(stdout, "cpsagent uninstall: done (%d removed)\n", len(rep.Removed))
	}
	return err
}

// resolveStateDir finds the state directory the agent uses: --state-dir,
// else the config file's stateDir, else the per-OS default.
func resolveStateDir(cfgFile, stateDir string, stderr io.Writer) (string, error) {
	var args []string
	if cfgFile != "" {
		args = append(args, "--config", cfgFile)
	}
	if stateDir != "" {
		args = append(args, "--state-dir", stateDir)
	}
	cfg, err := config.Load(args, stderr)
	if err != nil {
		return "", err
	}
	return cfg.StateDir, nil
}

// loadCA returns the local CA. While an agent runs, its ca.pem is only
// read (localca must not be loaded by two processes at once); otherwise
// localca creates it if needed, as the agent's next start would.
func loadCA(stateDir string) (*x509.Certificate, error) {
	dir := filepath.Join(stateDir, TLSDir)
	if _, err := RunningInstance(stateDir); !errors.Is(err, ErrNotRunning) {
		b, err := os.ReadFile(filepath.Join(dir, localca.CAFile))
		if err != nil {
			return nil, fmt.Errorf("install: reading the running agent's CA: %w", err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("install: %s: no certificate", filepath.Join(dir, localca.CAFile))
		}
		return x509.ParseCertificate(blk.Bytes)
	}
	a, _, err := localca.Ensure(dir)
	if err != nil {
		return nil, fmt.Errorf("install: local CA: %w", err)
	}
	return a.CACert(), nil
}
