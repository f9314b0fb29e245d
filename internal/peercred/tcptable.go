package peercred

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Windows GetExtendedTcpTable with TCP_TABLE_OWNER_PID_* fills a buffer
// with a DWORD count followed by fixed-size rows (little-endian DWORDs;
// addresses in network byte order; ports in network byte order in the low
// 16 bits of a DWORD). The parsers live here, without a build tag, so that
// they are tested and fuzzed on every OS.

const (
	tcpRow4Size = 24 // MIB_TCPROW_OWNER_PID
	tcpRow6Size = 56 // MIB_TCP6ROW_OWNER_PID
)

var errTableSyntax = errors.New("peercred: malformed TCP table")

type tableRow struct {
	Local, Remote netip.AddrPort
	PID           uint32
}

// parseTCPTable parses a MIB_TCPTABLE_OWNER_PID (ipv6 false) or a
// MIB_TCP6TABLE_OWNER_PID (ipv6 true).
func parseTCPTable(b []byte, ipv6 bool) ([]tableRow, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: %d bytes", errTableSyntax, len(b))
	}
	n := binary.LittleEndian.Uint32(b)
	size := tcpRow4Size
	if ipv6 {
		size = tcpRow6Size
	}
	if uint64(n)*uint64(size) > uint64(len(b)-4) {
		return nil, fmt.Errorf("%w: %d rows do not fit in %d bytes", errTableSyntax, n, len(b))
	}
	rows := make([]tableRow, 0, n)
	for i := 0; i < int(n); i++ {
		r := b[4+i*size : 4+(i+1)*size]
		if ipv6 {
			rows = append(rows, tableRow{
				Local:  netip.AddrPortFrom(netip.AddrFrom16([16]byte(r[0:16])), port(r[20:24])),
				Remote: netip.AddrPortFrom(netip.AddrFrom16([16]byte(r[24:40])), port(r[44:48])),
				PID:    binary.LittleEndian.Uint32(r[52:56]),
			})
			continue
		}
		rows = append(rows, tableRow{
			Local:  netip.AddrPortFrom(netip.AddrFrom4([4]byte(r[4:8])), port(r[8:12])),
			Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte(r[12:16])), port(r[16:20])),
			PID:    binary.LittleEndian.Uint32(r[20:24]),
		})
	}
	return rows, nil
}

// port reads a port stored in network order in the first two bytes of a
// DWORD.
func port(b []byte) uint16 { return binary.BigEndian.Uint16(b[:2]) }

// findTableRow returns the PID owning the row with the given local and
// remote addresses.
func findTableRow(rows []tableRow, local, remote netip.AddrPort) (uint32, bool) {
	for _, r := range rows {
		if sameAddrPort(r.Local, local) && sameAddrPort(r.Remote, remote) {
			return r.PID, true
		}
	}
	return 0, false
}
