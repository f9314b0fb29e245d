package fuzzhttp

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/bench/harness"
)

// TestCorpusAgainstBinary replays the request and frame corpora against the
// real binary (`cpsagent serve --virtual-card=medecin`, the fake pinentry
// answering the virtual card's PIN): listener, TLS, server timeouts and
// configuration as shipped. It then checks that the agent's goroutines came
// back to where they were and that it stops cleanly.
func TestCorpusAgainstBinary(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SKIPPED: the fake pinentry needs /bin/sh")
	}
	if testing.Short() {
		t.Skip("SKIPPED in -short mode (builds the agent)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "cpsagent")
	ctx := context.Background()
	if err := harness.BuildAgent(ctx, bin, harness.BuildOptions{Race: raceEnabled}); err != nil {
		t.Fatal(err)
	}
	pe, err := harness.NewPinentry(filepath.Join(dir, "pinentry"), harness.PinentryStep{PIN: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := harness.StartAgent(ctx, harness.AgentOptions{Bin: bin, Dir: filepath.Join(dir, "agent"), Pinentry: pe.Program,
		DebugMetrics: true, Args: []string{"--virtual-card=medecin"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Kill()
	tg := &target{addr: strings.TrimPrefix(a.Base, "https://"), tls: &tls.Config{RootCAs: a.Roots}, client: a.Client,
		origin: harness.DefaultOrigin, headerWait: 10 * time.Second}
	if err := tg.alive(); err != nil {
		t.Fatal(err)
	}
	m0, err := a.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range corpus {
		if e.slow {
			continue
		}
		t.Run(e.name, func(t *testing.T) { runEntry(t, tg, e) })
	}
	for _, e := range wsCorpus {
		t.Run("ws "+e.name, func(t *testing.T) { runWS(t, tg, e) })
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		a.Client.CloseIdleConnections()
		m, err := a.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m["goroutines"] <= m0["goroutines"]+3 && m["websockets"] == 0 && m["operations"] == 0 {
			t.Logf("goroutines %d → %d", m0["goroutines"], m["goroutines"])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the corpus: %v (before %v)", m, m0)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("agent exit: %v\n%s", err, a.Output())
	}
	for _, bad := range []string{"DATA RACE", "panic:"} {
		if strings.Contains(a.Output(), bad) {
			t.Fatalf("the agent printed %q:\n%s", bad, a.Output())
		}
	}
	_ = os.Remove(bin)
}
