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

// RunInstall is "cpsagent install": flags, then Install.
func RunInstall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	set := flag.NewFlagSet("install", flag.ContinueOnError)
	set.SetOutput(stderr)
	system := set.Bool("system", false, "also add the CA to the machine-wide store (asks for administrator rights)")
	trustOnly := set.Bool("trust-only", false, "only the trust stores, no autostart (the agent's unit runs this at each start)")
	quiet := set.Bool("quiet", false, "print nothing but errors")
	cfgFile := set.String("config", "", "config `FILE` (to find a non-default state directory)")
	stateDir := set.String("state-dir", "", "state `DIR` (default: as the agent)")
	set.Usage = func() {
		fmt.Fprintf(stderr, "usage: cpsagent install [flags]\n\n"+
			"Trusts the agent's local CA in this user's browsers (Chromium and Firefox NSS\n"+
			"databases on Linux, the user's root store on Windows, the login keychain on\n"+
			"macOS) and starts the agent with the session. Run it as the user, not as\n"+
			"root. Running it again is safe: it only adds what is missing.\n\n")
		set.PrintDefaults()
	}
	if err := set.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if set.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, set.Arg(0))
	}
	dir, err := resolveStateDir(*cfgFile, *stateDir, stderr)
	if err != nil {
		return err
	}
	ca, err := loadCA(dir)
	if err != nil {
		return err
	}
	out := stdout
	if *quiet {
		out = io.Discard
	}
	rep, err := Install(ctx, Options{StateDir: dir, CA: ca, System: *system, TrustOnly: *trustOnly, Out: out})
	if err == nil && !*quiet {
		fmt.Fprintf(stdout, "cpsagent install: done (%d added, %d already there, %d skipped); CA fingerprint SHA-256 %s\n",
			len(rep.Added), len(rep.Kept), len(rep.Skipped), Fingerprint(ca))
		fmt.Fprintln(stdout, "Restart the browsers that were open so that they read the new certificate.")
	}
	return err
}

// RunUninstall is "cpsagent uninstall": flags, then Uninstall.
func RunUninstall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	set := flag.NewFlagSet("uninstall", flag.ContinueOnError)
	set.SetOutput(stderr)
	purge := set.Bool("purge", false, "also delete the state directory: local CA, ledger of signatures, logs")
	noOptOut := set.Bool("no-opt-out", false, "do not stop a package-wide autostart for this user (used by the packages' removal scripts)")
	quiet := set.Bool("quiet", false, "print nothing but errors")
	cfgFile := set.String("config", "", "config `FILE` (to find a non-default state directory)")
	stateDir := set.String("state-dir", "", "state `DIR` (default: as the agent)")
	set.Usage = func() {
		fmt.Fprintf(stderr, "usage: cpsagent uninstall [flags]\n\n"+
			"Removes exactly what \"cpsagent install\" added for this user (the CA from\n"+
			"every store, the autostart entries) and stops a package-wide autostart for\n"+
			"this user. The ledger and logs stay unless --purge.\n\n")
		set.PrintDefaults()
	}
	if err := set.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if set.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, set.Arg(0))
	}
	dir, err := resolveStateDir(*cfgFile, *stateDir, stderr)
	if err != nil {
		return err
	}
	out := stdout
	if *quiet {
		out = io.Discard
	}
	if info, err := RunningInstance(dir); err == nil && info != nil {
		fmt.Fprintf(out, "note: the agent still runs (pid %d); it stops at the end of the session, or quit it from its tray menu\n", info.PID)
	}
	rep, err := Uninstall(ctx, Options{StateDir: dir, Purge: *purge, NoOptOut: *noOptOut, Out: out})
	if err == nil && !*quiet {
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
