package peercred

import (
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	modiphlpapi             = windows.NewLazySystemDLL("iphlpapi.dll")
	procGetExtendedTcpTable = modiphlpapi.NewProc("GetExtendedTcpTable")
)

const tcpTableOwnerPIDConnections = 4 // TCP_TABLE_OWNER_PID_CONNECTIONS

func self() (User, error) {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return "", fmt.Errorf("peercred: reading the process token: %w", err)
	}
	return User(u.User.Sid.String()), nil
}

func owner(us, peer netip.AddrPort) (User, error) {
	ipv6 := !peer.Addr().Is4() && !peer.Addr().Is4In6()
	b, err := extendedTCPTable(ipv6)
	if err != nil {
		return "", err
	}
	rows, err := parseTCPTable(b, ipv6)
	if err != nil {
		return "", err
	}
	pid, ok := findTableRow(rows, peer, us)
	if !ok {
		return "", fmt.Errorf("%w: %v → %v", ErrNotFound, peer, us)
	}
	return processUser(pid)
}

// extendedTCPTable calls GetExtendedTcpTable, growing the buffer while the
// table grows between the size query and the copy.
func extendedTCPTable(ipv6 bool) ([]byte, error) {
	af := uintptr(windows.AF_INET)
	if ipv6 {
		af = windows.AF_INET6
	}
	size := uint32(16 * 1024)
	for range 8 {
		b := make([]byte, size)
		r, _, _ := procGetExtendedTcpTable.Call(
			uintptr(unsafe.Pointer(&b[0])),
			uintptr(unsafe.Pointer(&size)),
			0, // unsorted
			af,
			tcpTableOwnerPIDConnections,
			0,
		)
		switch windows.Errno(r) {
		case windows.ERROR_SUCCESS:
			return b[:size], nil
		case windows.ERROR_INSUFFICIENT_BUFFER:
			size += 4 * 1024
			continue
		default:
			return nil, fmt.Errorf("peercred: GetExtendedTcpTable: %w", windows.Errno(r))
		}
	}
	return nil, fmt.Errorf("peercred: GetExtendedTcpTable: table keeps growing")
}

// processUser returns the SID of the user owning process pid. Another
// user's process usually cannot be opened by a standard user: that error
// is returned, and Listener refuses the connection.
func processUser(pid uint32) (User, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return "", fmt.Errorf("peercred: opening process %d: %w", pid, err)
	}
	defer windows.CloseHandle(h)
	var tok windows.Token
	if err := windows.OpenProcessToken(h, windows.TOKEN_QUERY, &tok); err != nil {
		return "", fmt.Errorf("peercred: opening the token of process %d: %w", pid, err)
	}
	defer tok.Close()
	u, err := tok.GetTokenUser()
	if err != nil {
		return "", fmt.Errorf("peercred: reading the token of process %d: %w", pid, err)
	}
	return User(u.User.Sid.String()), nil
}
