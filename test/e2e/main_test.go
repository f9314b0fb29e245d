// Package e2e drives the real cpsagent binary: `cpsagent vcard` serves the
// virtual CPS3 card to pcscd through vpcd slot 0, `cpsagent serve` talks to
// it through PC/SC and asks the PIN through a scripted pinentry program,
// and the tests act as a web portal over HTTPS and WSS, verifying every
// signature with code that shares nothing with the agent (crypto/rsa,
// openssl cms).
//
// pcscd must be running (with vsmartcard-vpcd installed). Under CI=true a
// missing pcscd fails; elsewhere those tests skip with the reason. The
// pcscd restart test runs only with CPSAGENT_PCSCD_RESTART_OK=1, because it
// kills and restarts the machine's pcscd.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// agentBin is the cpsagent binary built once for the whole package.
var agentBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cpsagent-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	agentBin = filepath.Join(dir, "cpsagent")
	if runtime.GOOS == "windows" {
		agentBin += ".exe"
	}
	args := []string{"build", "-o", agentBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/cpsagent/cpsagent/cmd/cpsagent")
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building cpsagent: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// moduleRoot is the directory of go.mod (two levels up from test/e2e).
func moduleRoot() string {
	wd, _ := os.Getwd()
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/cpsagent/cpsagent") {
			return d
		}
	}
	return filepath.Join(wd, "..", "..")
}
