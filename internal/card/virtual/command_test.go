package virtual

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cpsagent/cpsagent/internal/card/cps"
)

// syncBuffer is a bytes.Buffer safe for the command's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunCommandFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := RunCommand(context.Background(), []string{"--list"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if out.String() != "cpe\ninfirmier\nmedecin\n" {
		t.Errorf("--list: %q", out.String())
	}
	for _, args := range [][]string{
		{"--bogus"},
		{"extra"},
		{"--latency", "warp"},
		{"--identity", "nobody"},
		{"--transport", "t9"},
	} {
		if err := RunCommand(context.Background(), args, &out, &errOut); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestRunCommandServesVPCD(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	state, tracePath := filepath.Join(dir, "card.json"), filepath.Join(dir, "trace.log")

	runOnce := func(args ...string) string {
		ctx, cancel := context.WithCancel(context.Background())
		var out, errOut syncBuffer
		done := make(chan error, 1)
		go func() { done <- RunCommand(ctx, args, &out, &errOut) }()
		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		d := &driver{t: t, conn: conn}
		d.send([]byte{vpcdGetATR})
		if got := d.recv(); !bytes.Equal(got, cps.ATRCPS3Contact) {
			t.Errorf("ATR %x", got)
		}
		d.send([]byte{vpcdPowerOn})
		d.send([]byte{0x00, 0x20, 0x00, 0x01, 0x04, '0', '0', '0', '0'})
		if got := d.recv(); !bytes.Equal(got, []byte{0x63, 0xC2}) && !bytes.Equal(got, []byte{0x63, 0xC1}) {
			t.Errorf("wrong PIN answer %x", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunCommand: %v (%s)", err, errOut.String())
		}
		_ = conn.Close()
		return out.String()
	}

	out := runOnce("--vpcd", ln.Addr().String(), "--identity", "infirmier", "--state", state, "--trace", tracePath, "--latency", "instant")
	for _, want := range []string{"identity: infirmier", "serial:   9921384602 (Cryptolib: 99213846)", "PIN:      1234 (3 tries left)", "PUK:      12345678", "card inserted", "card removed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Second run: the card comes from the state file, with its counter.
	out = runOnce("--vpcd", ln.Addr().String(), "--state", state)
	if !strings.Contains(out, "identity: infirmier") || !strings.Contains(out, "(2 tries left)") {
		t.Errorf("second run:\n%s", out)
	}
	tr, err := os.ReadFile(tracePath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(tr), "> 00 20 00 01 04 ** ** ** **") || strings.Contains(string(tr), "30 30 30 30") {
		t.Errorf("trace:\n%s", tr)
	}
}
