//go:build !linux && !windows

package peercred

import (
	"net/netip"
	"os"
	"strconv"
)

// macOS and the BSDs: not implemented. The approach for macOS, for a later
// version that can be tested on a Mac: sysctl "net.inet.tcp.pcblist_n"
// (unix.SysctlRaw) returns xinpcb_n/xsocket_n records; the xsocket_n of the
// row whose local/foreign address and port are our remote/local pair
// carries so_uid, the owner (the same data netstat and lsof read, without
// cgo). LOCAL_PEERCRED/LOCAL_PEERPID only exist for Unix-domain sockets.
// Multi-user macOS is fast user switching only (no RDS-style concurrent
// sessions), so the agent allows local connections there and says so once
// in its log.

func self() (User, error) { return User(strconv.Itoa(os.Geteuid())), nil }

func owner(us, peer netip.AddrPort) (User, error) { return "", ErrUnsupported }
