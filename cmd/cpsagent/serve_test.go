package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/card"
	"github.com/cpsagent/cpsagent/internal/card/memreader"
	"github.com/cpsagent/cpsagent/internal/card/virtual"
	"github.com/cpsagent/cpsagent/internal/install"
	"github.com/cpsagent/cpsagent/internal/localca"
	"github.com/cpsagent/cpsagent/internal/pinentry/pinentrytest"
)

func readInstance(t *testing.T, stateDir string) install.InstanceInfo {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, install.InstanceInfoFile))
	if err != nil {
		t.Fatal(err)
	}
	var info install.InstanceInfo
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// TestServeSecondInstance: a second start for the same user (state
// directory) exits with status 3 and says where the first one runs; the
// first one keeps serving; once it stopped, a start works again.
func TestServeSecondInstance(t *testing.T) {
	dir := isolate(t)
	state := filepath.Join(dir, "state")
	a := startServe(t, state)
	info := readInstance(t, state)
	if info.PID != os.Getpid() || "https://127.0.0.1:"+strconv.Itoa(info.Port) != a.base || len(info.Addrs) != 1 || info.Version != Version() {
		t.Fatalf("instance.json %+v, agent at %s", info, a.base)
	}
	code, _, errs := runCmd(t, "serve", "--virtual-card", "--listen", "127.0.0.1:0", "--state-dir", state,
		"--allow-origin", "https://portal.test", "--pinentry", pinentrytest.Path())
	if code != install.ExitAlreadyRunning {
		t.Fatalf("second start: exit %d, want %d\n%s", code, install.ExitAlreadyRunning, errs)
	}
	for _, want := range []string{"already running", "pid " + strconv.Itoa(os.Getpid()), a.base} {
		if !strings.Contains(errs, want) {
			t.Errorf("second start's message lacks %q: %s", want, errs)
		}
	}
	// The second start stopped before opening the first one's log file.
	logb, err := os.ReadFile(filepath.Join(state, "logs", "cpsagent.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(logb), `"starting"`); n != 1 {
		t.Errorf("%d \"starting\" lines in the log, want 1", n)
	}
	if resp := a.get(t, "/v1/status"); resp.StatusCode != 200 {
		t.Fatalf("first agent after the second start: %d", resp.StatusCode)
	}
	if code := a.stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, a.stderr)
	}
	if _, err := os.Stat(filepath.Join(state, install.InstanceInfoFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("instance.json left behind: %v", err)
	}
	b := startServe(t, state)
	if resp := b.get(t, "/v1/status"); resp.StatusCode != 200 {
		t.Fatalf("restart: %d", resp.StatusCode)
	}
}

// serveDefault starts serve with the default listen addresses and returns
// its first "listening" line's base URL and a stop function.
func serveDefault(t *testing.T, state string) (string, func() int) {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	stderr := &syncBuffer{}
	go func() {
		done <- run(ctx, []string{"serve", "--virtual-card", "--state-dir", state, "--allow-origin", "https://portal.test",
			"--pinentry", pinentrytest.Path()}, pw, stderr)
		pw.Close()
	}()
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var base string
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatalf("serve exited:\n%s", stderr)
		}
		base = strings.TrimPrefix(l, "cpsagent listening on ")
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not start:\n%s", stderr)
	}
	go func() {
		for range lines {
		}
	}()
	stop := func() int {
		cancel()
		select {
		case c := <-done:
			done <- c
			return c
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not stop")
			return -1
		}
	}
	t.Cleanup(func() { stop() })
	return base, stop
}

// TestServeDefaultPortRange: with the default addresses, each agent takes
// the first port of 47180–47199 free on both loopback addresses, so a
// second user's agent (here: another state directory) takes the next one.
func TestServeDefaultPortRange(t *testing.T) {
	dir := isolate(t)
	port := func(base string) int {
		_, p, err := net.SplitHostPort(strings.TrimPrefix(base, "https://"))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(p)
		if n < install.PortFirst || n > install.PortLast || !strings.HasPrefix(base, "https://127.0.0.1:") {
			t.Fatalf("agent at %s, want 127.0.0.1 and a port in %d-%d", base, install.PortFirst, install.PortLast)
		}
		return n
	}
	baseA, stopA := serveDefault(t, filepath.Join(dir, "a"))
	pa := port(baseA)
	baseB, stopB := serveDefault(t, filepath.Join(dir, "b"))
	pb := port(baseB)
	if pa == pb {
		t.Fatalf("both agents on %d", pa)
	}
	if got := readInstance(t, filepath.Join(dir, "b")).Port; got != pb {
		t.Fatalf("instance.json port %d, agent on %d", got, pb)
	}
	if a, b := stopA(), stopB(); a != 0 || b != 0 {
		t.Fatalf("exit %d %d", a, b)
	}
}

func TestDecideTrust(t *testing.T) {
	const cur, old = "aaaa", "bbbb"
	manifest := func(fp string) *install.Manifest { return &install.Manifest{CA: install.CAInfo{SHA256: fp}} }
	created := localca.Changes{CACreated: true, LeafIssued: true}
	renewed := localca.Changes{CARenewed: true, LeafIssued: true}
	none := localca.Changes{}
	tests := []struct {
		name     string
		m        *install.Manifest
		err      error
		changes  localca.Changes
		deferred bool
		want     trustAction
	}{
		{"never installed, first start", nil, install.ErrNoManifest, created, false, trustNone},
		{"never installed, restart", nil, install.ErrNoManifest, none, false, trustNone},
		{"never installed, CA renewed", nil, install.ErrNoManifest, renewed, false, trustNone},
		{"MSI with CPSAGENT_NOTRUST, first start", nil, install.ErrNoManifest, created, true, trustFirst},
		{"MSI with CPSAGENT_NOTRUST, later start", nil, install.ErrNoManifest, none, true, trustNone},
		{"installed, nothing changed", manifest(cur), nil, none, false, trustNone},
		{"installed, CA renewed now", manifest(cur), nil, renewed, false, trustRefresh},
		{"installed, CA renewed earlier, stores behind", manifest(old), nil, none, false, trustRefresh},
		{"installed, CA recreated", manifest(old), nil, created, false, trustRefresh},
		{"damaged manifest", nil, fmt.Errorf("install: %s is damaged", install.ManifestFile), renewed, true, trustNone},
	}
	for _, tt := range tests {
		if got := decideTrust(tt.m, tt.err, cur, tt.changes, tt.deferred); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestServeNeverTrustsWithoutInstall: a first start on a machine where
// nothing was installed creates the CA and leaves the browsers alone (no
// manifest, no NSS database in the home directory).
func TestServeNeverTrustsWithoutInstall(t *testing.T) {
	home := isolate(t)
	state := filepath.Join(home, "state")
	a := startServe(t, state)
	a.stop(t)
	if _, err := os.Stat(filepath.Join(state, install.ManifestFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("manifest written: %v", err)
	}
	for _, p := range []string{".pki", ".local/share/pki", ".mozilla"} {
		if _, err := os.Stat(filepath.Join(home, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s touched: %v", p, err)
		}
	}
}

// TestDesktopCardsLeavesTheInsertionToTheEngine: the tray reads a card
// (holder, PIN counters) as soon as it is inserted. Through desktopCards
// those reads wait for the engine's own identity read, which announces
// identity-available to the pages and gives up when someone else holds the
// reader: with the tray hammering the reader at every insertion, the event
// still comes each time.
func TestDesktopCardsLeavesTheInsertionToTheEngine(t *testing.T) {
	vcfg, err := virtual.Identity("medecin")
	if err != nil {
		t.Fatal(err)
	}
	vc, err := virtual.NewCard(vcfg)
	if err != nil {
		t.Fatal(err)
	}
	mr := memreader.New("R")
	eng := card.New(mr, card.Options{})
	d := desktopCards{eng}
	events, unsub := eng.Subscribe()
	defer unsub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if _, err := d.Card(ctx, "R"); !errors.Is(err, errIdentityPending) {
		t.Fatalf("Card before any card: %v", err)
	}
	if _, err := d.PINStatus(ctx, "R"); !errors.Is(err, errIdentityPending) {
		t.Fatalf("PINStatus before any card: %v", err)
	}
	for round := range 10 {
		if err := mr.Insert("R", vc); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		hammered := make(chan struct{})
		go func() { // the tray, reading the card as soon as it is there
			defer close(hammered)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := d.PINStatus(ctx, "R"); err != nil && !errors.Is(err, errIdentityPending) && !errors.Is(err, card.ErrBusy) {
					t.Errorf("PINStatus: %v", err)
				}
				if _, err := d.Card(ctx, "R"); err != nil && !errors.Is(err, errIdentityPending) && !errors.Is(err, card.ErrBusy) {
					t.Errorf("Card: %v", err)
				}
			}
		}()
		timeout := time.After(10 * time.Second)
	wait:
		for {
			select {
			case ev := <-events:
				if ev.Type == card.EventIdentityReady {
					break wait
				}
			case <-timeout:
				close(stop)
				<-hammered
				t.Fatalf("round %d: no identity-available while the tray reads the card", round)
			}
		}
		close(stop)
		<-hammered
		if cd, err := d.Card(ctx, "R"); err != nil || cd.Serial == "" {
			t.Fatalf("Card after identity-available: %+v %v", cd, err)
		}
		if st, err := d.PINStatus(ctx, "R"); err != nil || st.TriesLeft != 3 {
			t.Fatalf("PINStatus: %+v %v", st, err)
		}
		mr.Remove("R")
		for ev := range events {
			if ev.Type == card.EventCardRemoved {
				break
			}
		}
	}
}
