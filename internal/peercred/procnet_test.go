package peercred

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// procHex renders an address as the kernel prints it on this host.
func procHex(a netip.AddrPort) string {
	b := a.Addr().AsSlice()
	var sb strings.Builder
	for i := 0; i < len(b); i += 4 {
		w := binary.NativeEndian.Uint32(b[i:])
		sb.WriteString(strings.ToUpper(hexWord(w)))
	}
	return sb.String() + ":" + strings.ToUpper(hex16(a.Port()))
}

func hexWord(w uint32) string {
	const digits = "0123456789abcdef"
	var out [8]byte
	for i := 7; i >= 0; i-- {
		out[i] = digits[w&0xf]
		w >>= 4
	}
	return string(out[:])
}

func hex16(p uint16) string { return hexWord(uint32(p))[4:] }

func procLine(sl int, local, remote netip.AddrPort, uid string) string {
	return "   " + itoa(sl) + ": " + procHex(local) + " " + procHex(remote) +
		" 01 00000000:00000000 00:00000000 00000000  " + uid + "        0 123456 1 0000000000000000 20 4 30 10 -1"
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}

func TestParseProcRow(t *testing.T) {
	v4a := netip.MustParseAddrPort("127.0.0.1:47180")
	v4b := netip.MustParseAddrPort("127.0.0.1:51234")
	v6a := netip.MustParseAddrPort("[::1]:47180")
	v6m := netip.MustParseAddrPort("[::ffff:127.0.0.1]:40000")
	tests := []struct {
		name    string
		line    string
		want    procRow
		wantErr bool
	}{
		{"ipv4", procLine(0, v4b, v4a, "1000"), procRow{v4b, v4a, 1000}, false},
		{"ipv6", procLine(12, v6a, netip.MustParseAddrPort("[::1]:1"), "0"), procRow{v6a, netip.MustParseAddrPort("[::1]:1"), 0}, false},
		{"v4-mapped", procLine(3, v6m, v6a, "65534"), procRow{v6m, v6a, 65534}, false},
		// Literal lines as printed by an x86-64 kernel (little-endian words).
		{"literal", "  0: 0100007F:B84C 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1001 0 4242 1", procRow{
			netip.MustParseAddrPort("127.0.0.1:47180"), netip.MustParseAddrPort("127.0.0.1:8080"), 1001}, false},
		{"header", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode", procRow{}, true},
		{"short", "0: 0100007F:1F90", procRow{}, true},
		{"bad hex", "0: 0100007G:1F90 0100007F:1F90 01 0:0 0:0 0 1000 0 1", procRow{}, true},
		{"bad port", "0: 0100007F:1F9 0100007F:1F90 01 0:0 0:0 0 1000 0 1", procRow{}, true},
		{"odd length", "0: 0100007:1F90 0100007F:1F90 01 0:0 0:0 0 1000 0 1", procRow{}, true},
		{"bad uid", "0: 0100007F:1F90 0100007F:1F90 01 0:0 0:0 0 -1 0 1", procRow{}, true},
		{"uid too big", "0: 0100007F:1F90 0100007F:1F90 01 0:0 0:0 0 4294967296 0 1", procRow{}, true},
		{"no colon", "0 0100007F:1F90 0100007F:1F90 01 0:0 0:0 0 1 0 1", procRow{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "literal" && binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
				t.Skip("the literal line is from a little-endian kernel")
			}
			got, err := parseProcRow(tt.line)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseProcRow(%q) = %+v, want error", tt.line, got)
				}
				if !errors.Is(err, errProcSyntax) {
					t.Fatalf("error %v does not wrap errProcSyntax", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseProcRow(%q): %v", tt.line, err)
			}
			if got != tt.want {
				t.Fatalf("parseProcRow(%q) = %+v, want %+v", tt.line, got, tt.want)
			}
		})
	}
}

func TestFindProcRow(t *testing.T) {
	srv := netip.MustParseAddrPort("127.0.0.1:47180")
	cli := netip.MustParseAddrPort("127.0.0.1:50000")
	other := netip.MustParseAddrPort("127.0.0.1:50001")
	listing := strings.Join([]string{
		"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
		procLine(0, srv, netip.MustParseAddrPort("0.0.0.0:0"), "1000"), // the listener
		"garbage line that is skipped",
		procLine(1, srv, cli, "1000"),   // our accepted socket (owned by the agent)
		procLine(2, other, srv, "1002"), // someone else
		procLine(3, cli, srv, "1001"),   // the peer: this one
	}, "\n") + "\n"
	uid, ok, err := findProcRow(strings.NewReader(listing), cli, srv)
	if err != nil || !ok || uid != 1001 {
		t.Fatalf("findProcRow = %d, %v, %v; want 1001, true, nil", uid, ok, err)
	}
	// The mapped form of the same address matches (dual-stack sockets).
	mapped := netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), cli.Port())
	if uid, ok, _ := findProcRow(strings.NewReader(listing), mapped, srv); !ok || uid != 1001 {
		t.Fatalf("mapped lookup = %d, %v", uid, ok)
	}
	if _, ok, _ := findProcRow(strings.NewReader(listing), netip.MustParseAddrPort("127.0.0.1:1"), srv); ok {
		t.Fatal("found a row that is not there")
	}
}

func FuzzParseProcRow(f *testing.F) {
	f.Add(procLine(0, netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"), "1000"))
	f.Add(procLine(9, netip.MustParseAddrPort("[::1]:47180"), netip.MustParseAddrPort("[::1]:3"), "0"))
	f.Add("  sl  local_address rem_address   st")
	f.Add("0: :: :: 0 0 0 0 0")
	f.Fuzz(func(t *testing.T, line string) {
		row, err := parseProcRow(line)
		if err != nil {
			return
		}
		// A parsed row prints back to a row that parses to the same value.
		again, err := parseProcRow(procLine(0, row.Local, row.Remote, itoa(int(row.UID))))
		if err != nil || again != row {
			t.Fatalf("round trip: %+v → %+v, %v", row, again, err)
		}
	})
}
