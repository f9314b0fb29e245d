package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/memreader"
	"github.com/cpsagent/cpsagent/internal/card/pcsc"
	"github.com/cpsagent/cpsagent/internal/card/pcsc/pcsctest"
	"github.com/cpsagent/cpsagent/internal/card/probe"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
)

// probeCard returns a virtual CPS3 with behaviour b and its trace.
func probeCard(t *testing.T, b virtual.Behaviour) (*virtual.Card, *syncBuffer) {
	t.Helper()
	cfg, err := virtual.Identity("medecin")
	if err != nil {
		t.Fatal(err)
	}
	trace := &syncBuffer{}
	cfg.Behaviour, cfg.Trace = b, trace
	c, err := virtual.NewCard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, trace
}

// memProbe makes `cpsagent probe` use an in-memory reader holding c.
func memProbe(t *testing.T, c *virtual.Card) {
	t.Helper()
	old := probeTransport
	t.Cleanup(func() { probeTransport = old })
	probeTransport = func() (card.Transport, func()) {
		tr := memreader.New("Mem Reader")
		if err := tr.Insert("Mem Reader", c); err != nil {
			t.Fatal(err)
		}
		return tr, func() {}
	}
}

func readReport(t *testing.T, path string) *probe.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r probe.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestProbeCommand(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	c, trace := probeCard(t, virtual.Behaviour{PINEncoding: "bcd"})
	memProbe(t, c)
	before := c.Stats()
	out, qout := filepath.Join(dir, "report.json"), filepath.Join(dir, "quirks.json")
	code, stdout, stderr := runCmd(t, "probe", "--out", out, "--quirks-out", qout)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.HasPrefix(stderr, "Sonde en lecture seule") || !strings.Contains(stderr, "never sends a PIN") {
		t.Fatalf("no announcement first on stderr: %q", stderr)
	}
	if d := c.Stats().Sub(before); d.Verifies != 0 || d.WrongSecrets != 0 || d.APDUs == 0 {
		t.Fatalf("card stats %+v", d)
	}
	for _, l := range strings.Split(trace.String(), "\n") {
		if f := strings.Fields(l); len(f) > 7 && f[1] == ">" && f[3] == "20" {
			t.Fatalf("VERIFY with data: %s", l)
		}
	}
	r := readReport(t, out)
	if r.Format != probe.ReportFormat || !r.Masked || r.Reader != "Mem Reader" || !strings.HasPrefix(r.Tool, "cpsagent probe ") {
		t.Fatalf("report %+v", r)
	}
	if !strings.Contains(stdout, "do NOT fit this card: pinEncoding") || !strings.Contains(stdout, "Report written to "+out) {
		t.Fatalf("summary:\n%s", stdout)
	}
	// The quirks file it wrote makes the agent's loader happy and says bcd.
	b, err := os.ReadFile(qout)
	if err != nil || strings.TrimSpace(string(b)) != "{\n  \"pinEncoding\": \"bcd\"\n}" {
		t.Fatalf("quirks file %q, %v", b, err)
	}
	// Compared with that file, the card fits.
	code, stdout, _ = runCmd(t, "probe", "--quirks", qout, "--out", "-")
	if code != 0 || !strings.Contains(stdout, `"format": "cpsagent-probe/1"`) {
		t.Fatalf("exit %d, stdout %.200s", code, stdout)
	}
	var r2 probe.Report
	if err := json.Unmarshal([]byte(stdout), &r2); err != nil || len(r2.Quirks.Changed) != 0 || r2.Quirks.Source != qout {
		t.Fatalf("with the quirks file: %v %+v", err, r2.Quirks)
	}
}

func TestProbeCommandErrors(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"pinEncodng": "bcd"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _ := probeCard(t, virtual.Behaviour{})
	memProbe(t, c)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"probe", "extra"}, exitUsage, "unexpected argument"},
		{[]string{"probe", "--bogus"}, exitUsage, "flag provided but not defined"},
		{[]string{"probe", "--quirks", bad}, exitUsage, `did you mean "pinEncoding"`},
		{[]string{"probe", "--reader", "Nope", "--out", filepath.Join(dir, "r.json")}, exitError, "no reader"},
	} {
		code, _, stderr := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, stderr)
		}
	}
	if code, _, _ := runCmd(t, "probe", "-h"); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
}

// TestProbeCommandPCSCD runs the command itself against pcscd with the
// virtual CPS3 in the vpcd slot of the shared test convention (pcsctest,
// default slot 0) under its flock /tmp/cpsagent-vpcd-slotN.lock.
func TestProbeCommandPCSCD(t *testing.T) {
	isolate(t)
	addr, reader := pcsctest.Require(t)
	pcsctest.LockSlot(t, addr)
	tr := pcsc.New(pcsc.Options{})
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	events := make(chan card.TransportEvent, 64)
	wctx, wcancel := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		_ = tr.Watch(wctx, func(ev card.TransportEvent) {
			if ev.Reader == reader {
				events <- ev
			}
		})
	}()
	defer func() { wcancel(); <-wdone }()
	wait := func(typ card.EventType) {
		t.Helper()
		for {
			select {
			case ev := <-events:
				if ev.Type == typ {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %s on %q", typ, reader)
			}
		}
	}
	wait(card.EventReaderAdded)
	if rs, err := tr.Readers(ctx); err == nil {
		for _, r := range rs {
			if r.Name == reader && r.CardPresent {
				wait(card.EventCardRemoved) // left by the previous user of the slot
			}
		}
	}
	c, trace := probeCard(t, virtual.Behaviour{})
	cctx, ccancel := context.WithCancel(context.Background())
	cdone := make(chan struct{})
	go func() {
		defer close(cdone)
		cl := &virtual.VPCDClient{Addr: addr, Card: c, Dial: pcsctest.Dial}
		if err := cl.Run(cctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, virtual.ErrCardPulled) {
			t.Logf("vpcd client: %v", err)
		}
	}()
	defer func() { ccancel(); <-cdone }()
	wait(card.EventCardInserted)

	before, pins := c.Stats(), c.PINStatus()
	out := filepath.Join(t.TempDir(), "report.json")
	code, stdout, stderr := runCmd(t, "probe", "--reader", reader, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if d := c.Stats().Sub(before); d.APDUs == 0 || d.Verifies != 0 || d.WrongSecrets != 0 || d.PINChanges != 0 || d.Unblocks != 0 ||
		d.Signatures != 0 || d.InternalAuths != 0 || d.Hashes != 0 || d.Deciphers != 0 || c.PINStatus() != pins {
		t.Fatalf("card counters moved: %+v, %+v → %+v", d, pins, c.PINStatus())
	}
	for _, l := range strings.Split(trace.String(), "\n") {
		if f := strings.Fields(l); len(f) > 7 && f[1] == ">" && f[3] == "20" {
			t.Fatalf("VERIFY with data: %s", l)
		}
	}
	r := readReport(t, out)
	for _, f := range r.Facts {
		if f.Verdict == probe.Contradicts || f.Verdict == probe.Inconclusive {
			t.Errorf("fact %s: %s (%s)", f.ID, f.Verdict, f.Observed)
		}
	}
	if r.Safety.Refused != 0 || string(r.Quirks.PolicyFile) != "{}" || !strings.Contains(stdout, "fit this card") {
		t.Fatalf("safety %+v, policy file %s\n%s", r.Safety, r.Quirks.PolicyFile, stdout)
	}
}
