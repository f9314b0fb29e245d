package peercred

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

func putPort(b []byte, p uint16) { binary.BigEndian.PutUint16(b, p) }

func table4(rows ...tableRow) []byte {
	b := make([]byte, 4+len(rows)*tcpRow4Size)
	binary.LittleEndian.PutUint32(b, uint32(len(rows)))
	for i, r := range rows {
		x := b[4+i*tcpRow4Size:]
		binary.LittleEndian.PutUint32(x[0:], 5) // MIB_TCP_STATE_ESTAB
		a := r.Local.Addr().As4()
		copy(x[4:8], a[:])
		putPort(x[8:], r.Local.Port())
		a = r.Remote.Addr().As4()
		copy(x[12:16], a[:])
		putPort(x[16:], r.Remote.Port())
		binary.LittleEndian.PutUint32(x[20:], r.PID)
	}
	return b
}

func table6(rows ...tableRow) []byte {
	b := make([]byte, 4+len(rows)*tcpRow6Size)
	binary.LittleEndian.PutUint32(b, uint32(len(rows)))
	for i, r := range rows {
		x := b[4+i*tcpRow6Size:]
		a := r.Local.Addr().As16()
		copy(x[0:16], a[:])
		putPort(x[20:], r.Local.Port())
		a = r.Remote.Addr().As16()
		copy(x[24:40], a[:])
		putPort(x[44:], r.Remote.Port())
		binary.LittleEndian.PutUint32(x[48:], 5)
		binary.LittleEndian.PutUint32(x[52:], r.PID)
	}
	return b
}

func TestParseTCPTable(t *testing.T) {
	srv4 := netip.MustParseAddrPort("127.0.0.1:47180")
	cli4 := netip.MustParseAddrPort("127.0.0.1:50123")
	srv6 := netip.MustParseAddrPort("[::1]:47180")
	cli6 := netip.MustParseAddrPort("[::1]:50124")
	rows4 := []tableRow{{srv4, cli4, 10}, {cli4, srv4, 4242}}
	rows6 := []tableRow{{srv6, cli6, 10}, {cli6, srv6, 4343}}

	tests := []struct {
		name    string
		b       []byte
		ipv6    bool
		local   netip.AddrPort
		remote  netip.AddrPort
		wantPID uint32
		wantOK  bool
		wantErr bool
	}{
		{"ipv4 peer", table4(rows4...), false, cli4, srv4, 4242, true, false},
		{"ipv4 own socket", table4(rows4...), false, srv4, cli4, 10, true, false},
		{"ipv4 absent", table4(rows4...), false, netip.MustParseAddrPort("127.0.0.1:1"), srv4, 0, false, false},
		{"ipv6 peer", table6(rows6...), true, cli6, srv6, 4343, true, false},
		{"empty", table4(), false, cli4, srv4, 0, false, false},
		{"too short", []byte{1, 0}, false, cli4, srv4, 0, false, true},
		{"count too big", table4(rows4...)[:30], false, cli4, srv4, 0, false, true},
		{"ipv6 count too big", table6(rows6...)[:60], true, cli6, srv6, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := parseTCPTable(tt.b, tt.ipv6)
			if tt.wantErr {
				if !errors.Is(err, errTableSyntax) {
					t.Fatalf("err = %v, want errTableSyntax", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pid, ok := findTableRow(rows, tt.local, tt.remote)
			if pid != tt.wantPID || ok != tt.wantOK {
				t.Fatalf("findTableRow = %d, %v; want %d, %v", pid, ok, tt.wantPID, tt.wantOK)
			}
		})
	}
}

func FuzzParseTCPTable(f *testing.F) {
	f.Add(table4(tableRow{netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"), 7}), false)
	f.Add(table6(tableRow{netip.MustParseAddrPort("[::1]:1"), netip.MustParseAddrPort("[::1]:2"), 7}), true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, false)
	f.Fuzz(func(t *testing.T, b []byte, ipv6 bool) {
		rows, err := parseTCPTable(b, ipv6)
		if err != nil {
			return
		}
		// Re-encoding what was parsed gives a table that parses the same.
		var again []tableRow
		if ipv6 {
			again, err = parseTCPTable(table6(rows...), true)
		} else {
			again, err = parseTCPTable(table4(rows...), false)
		}
		if err != nil || len(again) != len(rows) {
			t.Fatalf("round trip: %v, %d rows vs %d", err, len(again), len(rows))
		}
		for i := range rows {
			if again[i] != rows[i] {
				t.Fatalf("row %d: %+v vs %+v", i, again[i], rows[i])
			}
		}
	})
}
