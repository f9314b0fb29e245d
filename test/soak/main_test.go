// Package soak is the fault and soak harness (issue 8): concurrent portal
// clients against the real agent binary, on the virtual CPS3 card through
// pcscd and vpcd slot 0, while faults are injected — the card pulled at a
// random APDU, the reader unplugged (vpcd socket closed), a slow card,
// pinentry crashing, hanging, cancelling or timing out, wrong PINs, clients
// going away in the middle of the PIN prompt, and, only with
// CPSAGENT_PCSCD_RESTART_OK=1, pcscd stopped and restarted. It checks that
// every request ends with a verified success or a well-formed typed
// problem, that none is lost or answered twice, that the card's PIN counter
// never moves without a PIN the (fake) user typed, and that the agent's
// goroutines, file descriptors and memory return to their baseline.
//
//	go test ./test/soak/ -run TestSoak -v        # CI size: 400 requests or 60 s
//	go test -race ./test/soak/ -run '^TestSoak$' -v -timeout 90m \
//	    -soak.ops=10000 -soak.duration=60m -soak.report=$PWD/build/soak/report.json   # full size
//
// Under CI=true a missing pcscd is a failure. docs/performance.md describes
// the faults, the invariants and the results.
//
// The tests in regress_test.go run in-process (no pcscd): they pin the bugs
// the soak, the benchmarks and the HTTP fuzzer found.
package soak

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/bench/harness"
)

var (
	flagOps      = flag.Int("soak.ops", 400, "portal requests to send (the soak stops at this count or at -soak.duration)")
	flagDuration = flag.Duration("soak.duration", 60*time.Second, "time limit of the load phase")
	flagClients  = flag.Int("soak.clients", 6, "concurrent portal clients")
	flagSeed     = flag.Int64("soak.seed", 0, "random seed (0: from the clock; the seed is printed)")
	flagFaults   = flag.Duration("soak.fault-every", 1500*time.Millisecond, "mean time between two injected faults")
	flagLatency  = flag.String("soak.latency", "instant", "the card's base latency model (instant, cps3, cps3-trace); slow windows come on top")
	flagKinds    = flag.String("soak.faults", "pull,unplug,slow,restart", "fault kinds to inject (pull: card pulled at an APDU, unplug: vpcd socket closed, slow: slow card windows, restart: pcscd restart, only with CPSAGENT_PCSCD_RESTART_OK=1)")
	flagThink    = flag.Duration("soak.think", 400*time.Millisecond, "mean pause of a client between two requests")
	flagReport   = flag.String("soak.report", "", "also write the report as JSON to this file")
)

var (
	buildOnce sync.Once
	buildDir  string
	agentBin  string
	buildErr  error
)

// agent builds the cpsagent binary once per test process (with -race when
// the tests run with -race).
func agent(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "cpsagent-soak-")
		if buildErr != nil {
			return
		}
		agentBin = filepath.Join(buildDir, "cpsagent")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		buildErr = harness.BuildAgent(ctx, agentBin, harness.BuildOptions{Race: raceEnabled})
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return agentBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}
