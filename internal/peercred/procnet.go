package peercred

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// procRow is one socket row of /proc/net/tcp or /proc/net/tcp6.
type procRow struct {
	Local, Remote netip.AddrPort
	UID           uint32
}

// errProcSyntax is wrapped by every parse error of a /proc/net/tcp row.
var errProcSyntax = errors.New("peercred: malformed /proc/net/tcp row")

// parseProcRow parses one data row (not the header):
//
//	sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
//	0: 0100007F:B87C 0100007F:B82C 01 00000000:00000000 00:00000000 00000000  1000 0 123 …
//
// Addresses are the kernel's 32-bit words printed in host byte order.
func parseProcRow(line string) (procRow, error) {
	f := strings.Fields(line)
	if len(f) < 8 || !strings.HasSuffix(f[0], ":") {
		return procRow{}, fmt.Errorf("%w: %d fields", errProcSyntax, len(f))
	}
	local, err := parseProcAddr(f[1])
	if err != nil {
		return procRow{}, err
	}
	remote, err := parseProcAddr(f[2])
	if err != nil {
		return procRow{}, err
	}
	uid, err := strconv.ParseUint(f[7], 10, 32)
	if err != nil {
		return procRow{}, fmt.Errorf("%w: uid %q", errProcSyntax, f[7])
	}
	return procRow{Local: local, Remote: remote, UID: uint32(uid)}, nil
}

// parseProcAddr parses "0100007F:1F90" (IPv4) or a 32-hex-digit IPv6
// address and a port.
func parseProcAddr(s string) (netip.AddrPort, error) {
	host, port, ok := strings.Cut(s, ":")
	if !ok || len(port) != 4 {
		return netip.AddrPort{}, fmt.Errorf("%w: address %q", errProcSyntax, s)
	}
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: port %q", errProcSyntax, port)
	}
	raw, err := hex.DecodeString(host)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("%w: address %q", errProcSyntax, host)
	}
	// Each 32-bit word was printed as a number in host order: turn it back
	// into the bytes the kernel holds (network order).
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a, uint16(p)), nil
}

// findProcRow scans a /proc/net/tcp{,6} listing for the socket whose local
// address is local and remote address is remote (IPv4-mapped IPv6
// addresses compare equal to their IPv4 form) and returns its uid.
// Malformed rows are skipped.
func findProcRow(r io.Reader, local, remote netip.AddrPort) (uint32, bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 64*1024)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			if strings.Contains(line, "local_address") {
				continue
			}
		}
		row, err := parseProcRow(line)
		if err != nil {
			continue
		}
		if sameAddrPort(row.Local, local) && sameAddrPort(row.Remote, remote) {
			return row.UID, true, nil
		}
	}
	return 0, false, sc.Err()
}

func sameAddrPort(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && a.Addr().Unmap() == b.Addr().Unmap()
}
