package tray

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/consent"
	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/ledger"
	"github.com/cpsagent/cpsagent/internal/pinmgmt"
)

// fakeCard is a CardSource whose state the test sets.
type fakeCard struct {
	mu      sync.Mutex
	state   CardState
	reads   int // CardState calls
	changed chan struct{}
}

func newFakeCard(s CardState) *fakeCard { return &fakeCard{state: s, changed: make(chan struct{}, 1)} }

func (f *fakeCard) CardState(context.Context) CardState {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.state
}

func (f *fakeCard) Reads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

func (f *fakeCard) Watch(ctx context.Context, changed func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.changed:
			changed()
		}
	}
}

func (f *fakeCard) Set(s CardState) {
	f.mu.Lock()
	f.state = s
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

type fakeSites struct {
	mu      sync.Mutex
	s       consent.Sites
	revoked []string
}

func (f *fakeSites) Sites() consent.Sites { f.mu.Lock(); defer f.mu.Unlock(); return f.s }
func (f *fakeSites) Revoke(o string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = append(f.revoked, o)
	f.s.User = nil
	return nil
}

type fakeActivity struct{ es []ledger.Entry }

func (f *fakeActivity) Recent(n int) ([]ledger.Entry, error) { return f.es, nil }
func (f *fakeActivity) ExportCSV(w io.Writer) error          { return ledger.WriteCSV(w, f.es) }
func (f *fakeActivity) ExportJSON(w io.Writer) error         { return ledger.WriteJSON(w, f.es) }

type fakeFlows struct {
	started chan string
	release chan pinmgmt.Result
}

func (f *fakeFlows) ChangePIN(ctx context.Context, reader string) pinmgmt.Result {
	f.started <- "change:" + reader
	return <-f.release
}
func (f *fakeFlows) Unblock(ctx context.Context, reader string) pinmgmt.Result {
	f.started <- "unblock:" + reader
	return <-f.release
}

// waitMenu waits until the menu satisfies ok.
func waitMenu(t *testing.T, updates <-chan Menu, ok func(Menu) bool) Menu {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-updates:
			if ok(m) {
				return m
			}
		case <-timeout:
			t.Fatal("the menu never reached the expected state")
		}
	}
}

func label(m Menu, id string) string { it, _ := m.Find(id); return it.Label }

func TestControllerFollowsCard(t *testing.T) {
	card := newFakeCard(CardState{ServiceUp: true})
	c := NewController(Config{Card: card, Lang: i18n.EN, Refresh: time.Hour})
	updates, stop := c.Updates()
	defer stop()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	waitMenu(t, updates, func(m Menu) bool { return m.Icon == IconNoReader })
	card.Set(ready())
	m := waitMenu(t, updates, func(m Menu) bool { return m.Icon == IconReady })
	if label(m, IDHolder) != "Marie CURIE — Médecin" {
		t.Errorf("holder %q", label(m, IDHolder))
	}
	card.Set(with(func(c *CardState) { c.Busy = true }))
	waitMenu(t, updates, func(m Menu) bool { return m.Icon == IconBusy })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestControllerPINFlow(t *testing.T) {
	card := newFakeCard(ready())
	flows := &fakeFlows{started: make(chan string, 2), release: make(chan pinmgmt.Result)}
	c := NewController(Config{Card: card, PIN: flows, Lang: i18n.EN, Refresh: time.Hour})
	updates, stop := c.Updates()
	defer stop()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go c.Run(ctx)
	waitMenu(t, updates, func(m Menu) bool { return m.Icon == IconReady })

	c.Handle(ctx, IDChangePIN)
	if got := <-flows.started; got != "change:Reader 0" {
		t.Fatalf("flow %q", got)
	}
	m := waitMenu(t, updates, func(m Menu) bool { return label(m, IDChangePIN) == "Change the PIN… (in progress)" })
	if it, _ := m.Find(IDUnblockPIN); it.Enabled {
		t.Fatal("second flow possible while one runs")
	}
	// A second click while the flow runs does nothing.
	c.Handle(ctx, IDChangePIN)
	c.Handle(ctx, IDUnblockPIN)
	flows.release <- pinmgmt.Result{Message: "Your PIN has been changed."}
	m = waitMenu(t, updates, func(m Menu) bool { return label(m, IDNotice) == "Your PIN has been changed." })
	if it, _ := m.Find(IDChangePIN); !it.Enabled {
		t.Fatal("change PIN not enabled again")
	}
	select {
	case f := <-flows.started:
		t.Fatalf("a second flow started: %s", f)
	default:
	}
	// Disabled item: no card → clicking does nothing.
	card.Set(CardState{ServiceUp: true, Readers: []ReaderState{{Name: "R"}}})
	waitMenu(t, updates, func(m Menu) bool { return m.Icon == IconNoCard })
	c.Handle(ctx, IDUnblockPIN)
	select {
	case f := <-flows.started:
		t.Fatalf("flow started without a card: %s", f)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestControllerSitesAndExport(t *testing.T) {
	sites := &fakeSites{s: consent.Sites{UserAdditions: true, User: []consent.Grant{{Origin: "https://user.fr"}}}}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	act := &fakeActivity{es: []ledger.Entry{{Time: t0, Origin: "https://user.fr", Operation: ledger.OpSign, SHA256: ledger.Digest([]byte("x")), Result: "ok"}}}
	var opened []string
	var mu sync.Mutex
	exportDir := filepath.Join(t.TempDir(), "exports")
	quit := make(chan struct{})
	c := NewController(Config{
		Card: newFakeCard(ready()), Sites: sites, Activity: act, Lang: i18n.FR, Refresh: time.Hour,
		ExportDir: exportDir, LogDir: "/var/log/x", Version: "9.9",
		Open: func(p string) error { mu.Lock(); opened = append(opened, p); mu.Unlock(); return nil },
		Quit: func() { close(quit) },
		Now:  func() time.Time { return t0 },
		Doctor: func(context.Context) (string, error) {
			return "/tmp/report.txt", nil
		},
	})
	updates, stop := c.Updates()
	defer stop()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	m := waitMenu(t, updates, func(m Menu) bool { _, ok := m.Find(PrefixRevoke + "https://user.fr"); return ok })

	c.Handle(ctx, PrefixRevoke+"https://user.fr")
	m = waitMenu(t, updates, func(m Menu) bool { _, ok := m.Find(PrefixRevoke + "https://user.fr"); return !ok })
	if label(m, IDNotice) != "https://user.fr n'est plus autorisé" {
		t.Errorf("notice %q", label(m, IDNotice))
	}
	// Information-only items do nothing.
	c.Handle(ctx, PrefixEntry+"0")
	c.Handle(ctx, "no-such-item")

	c.Handle(ctx, IDExportCSV)
	m = waitMenu(t, updates, func(m Menu) bool { return strings.HasPrefix(label(m, IDNotice), "Journal exporté") })
	path := filepath.Join(exportDir, "cpsagent-activity-20261125-100000.csv")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("time,origin,operation,certSerial,sha256,result\n2026-11-25T10:00:00Z,https://user.fr,sign,")) {
		t.Errorf("export %q", b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("export mode %v", st.Mode().Perm())
	}
	// Same second again: the file exists, the export fails visibly.
	c.Handle(ctx, IDExportCSV)
	waitMenu(t, updates, func(m Menu) bool { return strings.HasPrefix(label(m, IDNotice), "Échec de l'export") })
	c.Handle(ctx, IDExportJSON)
	waitMenu(t, updates, func(m Menu) bool { return strings.HasSuffix(label(m, IDNotice), ".json") })

	c.Handle(ctx, IDOpenLogs)
	c.Handle(ctx, IDDoctor)
	// The diagnostics run in their own goroutine and end by clearing the
	// notice: wait for them (the report opened) before the next notice, or
	// the menu with the About text can be replaced before it is read.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		done := slices.Contains(opened, "/tmp/report.txt")
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the diagnostics report was not opened: %v", opened)
		}
	}
	c.Handle(ctx, IDAbout)
	waitMenu(t, updates, func(m Menu) bool { return label(m, IDNotice) == "cpsagent 9.9 — agent local pour la carte CPS" })
	c.Handle(ctx, IDQuit)
	<-quit
	cancel()
	if err := <-done; err != nil { // waits for the actions
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]bool{exportDir: true, "/var/log/x": true, "/tmp/report.txt": true}
	for _, p := range opened {
		delete(want, p)
	}
	if len(want) != 0 {
		t.Errorf("not opened: %v (opened %v)", want, opened)
	}
}

func TestControllerDoctorError(t *testing.T) {
	c := NewController(Config{Lang: i18n.EN, Refresh: time.Hour,
		Doctor: func(context.Context) (string, error) { return "", errors.New("boom") }})
	updates, stop := c.Updates()
	defer stop()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go c.Run(ctx)
	c.Handle(ctx, IDDoctor)
	waitMenu(t, updates, func(m Menu) bool { return label(m, IDNotice) == "Diagnostics failed: boom" })
}
