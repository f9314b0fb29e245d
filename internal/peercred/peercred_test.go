package peercred

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
)

func netip4(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// TestListenerDecisions drives the Accept loop with a fake lookup.
func TestListenerDecisions(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name        string
		owner       User
		err         error
		wantServed  bool
		wantRefusal bool
		wantUnsupp  bool
	}{
		{"same user", "1000", nil, true, false, false},
		{"other user", "1001", nil, false, true, false},
		{"lookup failed", "", boom, false, true, false},
		{"not found", "", ErrNotFound, false, true, false},
		{"unsupported", "", ErrUnsupported, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var refusals, unsupported atomic.Int32
			pl := &listener{
				allow:         "1000",
				lookup:        func(net.Conn) (User, error) { return tt.owner, tt.err },
				onRefuse:      func(Refusal) { refusals.Add(1) },
				onUnsupported: func(error) { unsupported.Add(1) },
			}
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			for range 2 { // unsupported is reported once only
				if got := pl.check(c1); got != tt.wantServed {
					t.Fatalf("check = %v, want %v", got, tt.wantServed)
				}
			}
			if (refusals.Load() == 2) != tt.wantRefusal {
				t.Fatalf("refusals = %d", refusals.Load())
			}
			if (unsupported.Load() == 1) != tt.wantUnsupp {
				t.Fatalf("unsupported reported %d times", unsupported.Load())
			}
		})
	}
}

func TestRefusalString(t *testing.T) {
	a := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5}
	if s := (Refusal{Remote: a, Owner: "1001"}).String(); s != "refused connection from 127.0.0.1:5: owned by user 1001" {
		t.Fatal(s)
	}
	if s := (Refusal{Remote: a, Err: ErrNotFound}).String(); s != "refused connection from 127.0.0.1:5: owner unknown: peercred: peer socket not found" {
		t.Fatal(s)
	}
}
