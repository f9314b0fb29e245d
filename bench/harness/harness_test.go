package harness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/pinentry"
	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
)

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       time.Duration
		err        bool
	}{
		{"plain", "1234 (cpsagent) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 10 0 100 0 0", 2870 * time.Millisecond, false},
		{"name with spaces and parens", "77 (a) b (c)) R 1 77 77 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 0 0", 30 * time.Millisecond, false},
		{"no parenthesis", "1234 cpsagent S 1", 0, true},
		{"truncated", "1 (x) S 1 2 3", 0, true},
		{"not a number", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a b 0 0", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStatCPU(tc.stat)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("ParseStatCPU = %v, %v; want %v, error %v", got, err, tc.want, tc.err)
			}
			if err != nil && !errors.Is(err, ErrProcFormat) {
				t.Fatalf("error %v is not ErrProcFormat", err)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	st := "Name:\tcpsagent\nVmHWM:\t   30000 kB\nVmRSS:\t   23728 kB\nThreads:\t10\n" +
		"voluntary_ctxt_switches:\t150\nnonvoluntary_ctxt_switches:\t7\n"
	f, err := ParseStatus(st)
	if err != nil {
		t.Fatal(err)
	}
	if f != (StatusFields{RSSKiB: 23728, HWMKiB: 30000, Threads: 10, VolCtx: 150, InvolCtx: 7}) {
		t.Fatalf("%+v", f)
	}
	for _, bad := range []string{"", "Name: x\n", "VmRSS: lots kB\n", "Threads: many\n"} {
		if _, err := ParseStatus(bad); !errors.Is(err, ErrProcFormat) {
			t.Errorf("ParseStatus(%q) = %v, want ErrProcFormat", bad, err)
		}
	}
}

func TestReadProcSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SKIPPED: /proc is Linux only")
	}
	a, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn a little CPU: the counter must move.
	deadline := time.Now().Add(100 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	b, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if a.RSSKiB <= 0 || a.Threads < 1 || a.FDs < 3 || b.CPU <= a.CPU || CPUPercent(a, b) <= 0 {
		t.Fatalf("implausible samples %+v -> %+v", a, b)
	}
}

func TestFlockExcludes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SKIPPED: no flock")
	}
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := flock(path, true, time.Now().Add(time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A second open file description conflicts with the first.
	if _, err := flock(path, false, time.Now().Add(200*time.Millisecond), nil); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("shared lock while held exclusively: %v", err)
	}
	unlock()
	u1, err := flock(path, false, time.Now().Add(time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer u1()
	u2, err := flock(path, false, time.Now().Add(time.Second), nil)
	if err != nil {
		t.Fatalf("two shared locks: %v", err)
	}
	u2()
}

// TestPinentryWrapper drives the generated wrapper with the agent's own
// pinentry client: plan steps in order, then the default; answers counted.
func TestPinentryWrapper(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SKIPPED: needs /bin/sh")
	}
	pe, err := NewPinentry(t.TempDir(), PinentryStep{PIN: "4321"})
	if err != nil {
		t.Fatal(err)
	}
	if err := pe.SetPlan([]PinentryStep{
		{PIN: "1111"},
		{Mode: pinentrytest.ModeCancel},
		{Mode: pinentrytest.ModeCrash},
		{Mode: pinentrytest.ModeHang},
	}); err != nil {
		t.Fatal(err)
	}
	c := pinentry.New(pinentry.Config{Program: pe.Program, DefaultTimeout: 5 * time.Second})
	ask := func(timeout time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		s, err := c.GetPIN(ctx, pinentry.Request{Kind: pinentry.PIN, Origin: DefaultOrigin, Operation: "test", TriesLeft: 3})
		if err != nil {
			return "", err
		}
		defer s.Wipe()
		return string(s.Bytes()), nil
	}
	if pin, err := ask(10 * time.Second); err != nil || pin != "1111" {
		t.Fatalf("step 1: %q %v", pin, err)
	}
	if _, err := ask(10 * time.Second); !errors.Is(err, pinentry.ErrCancelled) {
		t.Fatalf("step 2 (cancel): %v", err)
	}
	if _, err := ask(10 * time.Second); err == nil {
		t.Fatal("step 3 (crash): no error")
	}
	start := time.Now()
	if _, err := ask(500 * time.Millisecond); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("step 4 (hang): %v after %v", err, time.Since(start))
	}
	if pin, err := ask(10 * time.Second); err != nil || pin != "4321" {
		t.Fatalf("default step: %q %v", pin, err)
	}
	invs, err := pe.Invocations()
	if err != nil {
		t.Fatal(err)
	}
	if len(invs) != 5 || pe.Count() != 5 {
		t.Fatalf("%d invocations (count %d): %+v", len(invs), pe.Count(), invs)
	}
	wantModes := []string{"ok", "cancel", "crash", "hang", "ok"}
	wantAnswers := []int{1, 0, 0, 0, 1}
	for i, inv := range invs {
		if inv.N != i+1 || inv.Mode != wantModes[i] || inv.Answers != wantAnswers[i] || inv.GetPINs != 1 {
			t.Errorf("invocation %d: %+v (want mode %s, %d answer)", i+1, inv, wantModes[i], wantAnswers[i])
		}
		for _, c := range inv.Commands {
			if strings.Contains(c, "1111") || strings.Contains(c, "4321") {
				t.Errorf("a PIN reached the command log: %q", c)
			}
		}
	}
}

func TestAddStats(t *testing.T) {
	// addStats must add every counter (it is built on virtual.Stats.Sub).
	v, err := NewVCard(VCardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := v.Card().Transmit([]byte{0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00})
	if err != nil || len(resp) < 2 {
		t.Fatal(resp, err)
	}
	one := v.Card().Stats()
	sum := addStats(one, one)
	if sum.APDUs != 2*one.APDUs || sum.BytesIn != 2*one.BytesIn || sum.BytesOut != 2*one.BytesOut || one.APDUs != 1 {
		t.Fatalf("addStats(%+v) = %+v", one, sum)
	}
}

func TestProblemCode(t *testing.T) {
	good := Result{Status: 409, Header: map[string][]string{"Content-Type": {"application/problem+json"}},
		Body: []byte(`{"type":"https://cpsagent.github.io/problems/card_absent","title":"No card","status":409,"code":"card_absent","detail":"x","detailFr":"y"}`)}
	if code, err := ProblemCode(good); err != nil || code != "card_absent" {
		t.Fatalf("%q %v", code, err)
	}
	for name, r := range map[string]Result{
		"unknown code":  {Status: 409, Header: good.Header, Body: []byte(`{"type":"https://cpsagent.github.io/problems/nope","title":"t","status":409,"code":"nope","detail":"x","detailFr":"y"}`)},
		"wrong status":  {Status: 400, Header: good.Header, Body: good.Body},
		"plain text":    {Status: 409, Header: map[string][]string{"Content-Type": {"text/plain"}}, Body: good.Body},
		"no french":     {Status: 409, Header: good.Header, Body: []byte(`{"type":"https://cpsagent.github.io/problems/card_absent","title":"No card","status":409,"code":"card_absent","detail":"x","detailFr":""}`)},
		"extra field":   {Status: 409, Header: good.Header, Body: []byte(`{"type":"https://cpsagent.github.io/problems/card_absent","title":"No card","status":409,"code":"card_absent","detail":"x","detailFr":"y","stack":"z"}`)},
		"trailing data": {Status: 409, Header: good.Header, Body: append(append([]byte{}, good.Body...), []byte(`{}`)...)},
		"not json":      {Status: 500, Header: good.Header, Body: []byte("oops")},
	} {
		if _, err := ProblemCode(r); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
