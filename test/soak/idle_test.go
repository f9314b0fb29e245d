package soak

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/bench/harness"
	"github.com/cpsagent/cpsagent/internal/testutil"
)

// TestRegressionIdleAgentDoesNotWakeUp: issue 8 wants an agent that does
// not wake up when nothing happens (idle CPU < 0.1 %). The first benchmark
// run measured 0 context switches in 30 s for `cpsagent serve
// --virtual-card` (headless); once serve started the desktop controller
// even without a tray (cmd/cpsagent, internal/tray Controller.Run), the
// agent wakes every 5 s (Config.Refresh) to re-read the site list and the
// activity ledger files from disk, for a menu nobody can see: about 30
// context switches in 30 s. Found by the benchmark's idle measurement.
//
// Expected: headless, no periodic refresh (refresh on events only: card
// changes, ledger appends, consent changes), or no controller at all.
func TestRegressionIdleAgentDoesNotWakeUp(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SKIPPED: /proc is Linux only")
	}
	dir := t.TempDir()
	// The shipped build (the race runtime has background threads of its
	// own), whatever the tests' mode.
	bin := filepath.Join(dir, "cpsagent")
	if err := harness.BuildAgent(context.Background(), bin, harness.BuildOptions{Release: true}); err != nil {
		t.Fatal(err)
	}
	a, err := harness.StartAgent(context.Background(), harness.AgentOptions{Bin: bin, Dir: filepath.Join(dir, "agent"),
		Args: []string{"--virtual-card=medecin"}, LogLevel: "warn"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Kill()
	if err := a.WaitCard(context.Background(), "cpsagent virtual reader", true, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	a.Client.CloseIdleConnections()
	// Start-up work (first GC, the runtime returning memory to the OS) may
	// go on for a while on a loaded machine: the agent passes when one
	// window of 8 s, within a minute, shows it asleep. The bug (a 5 s
	// refresh timer) cost about 6 context switches per tick, in every
	// window.
	const window, maxWakeups = 8 * time.Second, 2
	var seen []string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		s0, err := harness.ReadProc(a.PID())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(window)
		s1, err := harness.ReadProc(a.PID())
		if err != nil {
			t.Fatal(err)
		}
		w := s1.Wakeups() - s0.Wakeups()
		seen = append(seen, fmt.Sprintf("%d (CPU %v)", w, s1.CPU-s0.CPU))
		if w <= maxWakeups {
			t.Logf("idle %v: %d context switches, CPU %v, %d threads (windows: %v)", window, w, s1.CPU-s0.CPU, s1.Threads, seen)
			return
		}
	}
	t.Fatalf("the idle agent kept waking up: context switches per %v window: %v (want a window with at most %d)", window, seen, maxWakeups)
}

// TestRegressionHeadlessOperationSendsOnlyItsAPDUs: after a signature the
// card must see only the signature's APDUs (8: PIN status, SELECT DF 0001,
// VERIFY, MSE HT, MSE DST, PSO HASH, PSO CDS, GET RESPONSE). With the
// desktop controller running headless, the agent then reads the PIN
// counter (and the identity) again for the tray's menu: 1 to 4 more APDUs
// per operation (up to 100 ms of a CPS3's time), which also keeps the
// reader busy when the portal's next request arrives. Found by the
// benchmark ("agent logged 8 APDUs for an operation, the card counted 11").
//
// Expected: no card traffic for a menu that is not shown (headless); with
// a tray, take the counter from the operation itself (its VERIFY without
// data, and a successful VERIFY means full tries) instead of asking the card.
func TestRegressionHeadlessOperationSendsOnlyItsAPDUs(t *testing.T) {
	testutil.RequirePCSCD(t)
	unlock, err := harness.LockSlot0(15*time.Minute, false, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	dir := t.TempDir()
	vc, err := harness.NewVCard(harness.VCardOptions{StateFile: filepath.Join(dir, "card.json")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	startVCard(t, ctx, vc)
	defer vc.Stop()
	pe, err := harness.NewPinentry(filepath.Join(dir, "pinentry"), harness.PinentryStep{PIN: vc.Card().Config().PIN})
	if err != nil {
		t.Fatal(err)
	}
	env := []string{}
	if d := os.Getenv("DISPLAY"); d != "" {
		t.Logf("DISPLAY=%s removed: the agent runs headless", d)
	}
	a, err := harness.StartAgent(ctx, harness.AgentOptions{Bin: agent(t), Dir: filepath.Join(dir, "agent"), Pinentry: pe.Program, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Kill()
	if err := a.WaitCard(ctx, vc.Reader(), true, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // whatever follows the insertion
	body := fmt.Sprintf(`{"dataToSign":"YWJj","reader":%q}`, vc.Reader())
	for i := 0; i < 3; i++ {
		before := vc.Stats()
		r := a.Do(ctx, http.MethodPost, "/v1/sign", body)
		if r.Err != nil || r.Status != http.StatusOK {
			t.Fatalf("sign: %v %d %s", r.Err, r.Status, r.Body)
		}
		time.Sleep(2 * time.Second) // anything the agent sends after answering
		if n := vc.Stats().Sub(before).APDUs; n != 8 {
			t.Fatalf("signature %d: the card saw %d APDUs, want the signature's 8", i, n)
		}
	}
}
